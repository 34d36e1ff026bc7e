#!/usr/bin/env bash
# Refresh requirements-lock.txt on purpose: resolve the newest versions that settings.ini allows into a scratch venv,
# check that every library imports and `pip check` passes, run the test suite in it, and only then write the new lock.
# Review `git diff requirements-lock.txt` and run `bash scripts/run.sh --preset study --compare nbs/results/study` before committing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SCRATCH=${SCRATCH:-.venv-lock}
rm -rf "$SCRATCH"; "$PY" -m venv "$SCRATCH"
"$SCRATCH/bin/python" -m pip install -q --upgrade pip
"$SCRATCH/bin/python" -m pip install -q -e ".[dev]"
"$SCRATCH/bin/python" scripts/check_env.py
"$SCRATCH/bin/python" scripts/test_notebooks.py
{ sed -n '1,3p' requirements-lock.txt
  echo "pip==$("$SCRATCH/bin/python" -m pip --version | cut -d' ' -f2)"
  "$SCRATCH/bin/python" -m pip freeze --exclude-editable | grep -v '^weight.merging'; } > requirements-lock.txt.new
mv requirements-lock.txt.new requirements-lock.txt
echo "requirements-lock.txt refreshed from $SCRATCH; review it with: git diff requirements-lock.txt"
