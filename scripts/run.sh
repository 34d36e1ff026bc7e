#!/usr/bin/env bash
# The main command: set up .venv, then run the whole quick study (wm-run --preset quick: zoo, merger, evaluation, report).
# Other wm-run options pass through, e.g. `bash scripts/run.sh --preset standard`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/wm-run "$@"
