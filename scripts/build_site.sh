#!/usr/bin/env bash
# The docs site where quarto is missing: nbdev's processed notebooks (_proc/) rendered by nbconvert to a static,
# offline HTML site in _docs/ (see scripts/build_site.py; options: --strict, --no-proc, --out DIR).
# Where quarto is installed, `nbdev_docs` builds the real site instead. Browse the result with
# `python -m http.server -d _docs` or test it with `python scripts/browser_test.py`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/build_site.py "$@"
