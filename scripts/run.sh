#!/usr/bin/env bash
# The main command: set up .venv, then build the quick zoo (pass other wm-zoo options to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/wm-zoo --preset quick "$@"
