#!/usr/bin/env bash
# Create .venv (if missing) and install weight_merging with its dev tools into it, through the lock
# (requirements-lock.txt: the exact versions the project is tested with), then check that every library imports.
# Safe to rerun. `FRESH=1 bash scripts/setup.sh` starts from a new .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ "${FRESH:-0}" = 1 ] && rm -rf .venv
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -c requirements-lock.txt pip
.venv/bin/python -m pip install -q -c requirements-lock.txt -e ".[dev]"
.venv/bin/python scripts/check_env.py
