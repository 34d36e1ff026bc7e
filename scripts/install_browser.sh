#!/usr/bin/env bash
# Install what scripts/browser_test.py needs: Debian's chromium (the browser test drives it over the DevTools
# pipe, so no chromedriver or Python package is needed). Safe to rerun: does nothing when chromium is there.
# Needs root (or sudo) and Debian's package archive; set CHROMIUM=/path/to/chrome to use another build instead.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(chromium --version 2>/dev/null || echo '?')"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; install Chromium or Chrome yourself and pass --chromium PATH (or set CHROMIUM)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else echo "install_browser: run as root (or install sudo)" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
echo "installed: $(chromium --version)"
