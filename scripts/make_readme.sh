#!/usr/bin/env bash
# README.md from nbs/index.ipynb where quarto (and so nbdev_readme) is not installed: nbconvert to markdown,
# with links to the chapters pointed into nbs/.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/jupyter nbconvert --to markdown nbs/index.ipynb --stdout 2>/dev/null \
  | sed -E 's#\]\(([0-9][0-9]_[a-z_]+\.ipynb)\)#](nbs/\1)#g' > README.md
