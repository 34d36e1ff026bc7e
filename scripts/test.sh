#!/usr/bin/env bash
# The test command: set up .venv, then run every notebook's tests (nbdev_test) and print "N passed, N failed".
# Extra arguments go to nbdev_test, e.g. `bash scripts/test.sh --flags slow` also runs the slow cells.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python scripts/test_notebooks.py "$@"
