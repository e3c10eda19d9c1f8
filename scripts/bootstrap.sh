#!/usr/bin/env bash
# Set up forecast from nothing: install uv if missing, create .venv from uv.lock.
# Prints the command to run uv with (for the Makefile).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v uv >/dev/null 2>&1; then
  UV="uv"
elif python3 -m uv --version >/dev/null 2>&1; then
  UV="python3 -m uv"
else
  echo "forecast: installing uv from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check uv >&2 \
    || python3 -m pip install --quiet --disable-pip-version-check --user uv >&2
  UV="python3 -m uv"
fi
$UV sync --frozen --quiet >&2
echo "$UV"
