#!/usr/bin/env bash
# README.md from nbs/index.ipynb where quarto (and so nbdev_readme) is not installed: nbconvert to markdown without
# code cells (the home page's only code cell is its hidden check that the table is the committed run's), with
# links to the chapters and to the committed results pointed into nbs/.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/jupyter nbconvert --to markdown nbs/index.ipynb --stdout --TemplateExporter.exclude_input=True --TemplateExporter.exclude_output=True 2>/dev/null \
  | sed -E 's#\]\(([0-9][0-9][a-z]?_[a-z_]+\.ipynb)\)#](nbs/\1)#g; s#\]\(results/#](nbs/results/#g' | cat -s > README.md
