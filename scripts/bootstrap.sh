#!/usr/bin/env bash
# Set up forecast from nothing: find or fetch uv, create .venv from uv.lock.
# Prints the command to run uv with (for the Makefile).
# uv is looked for on PATH, as a module of python3, in .tools/bin (fetched earlier); else pip
# installs it (for the user where the system is not writable); where pip is missing or refuses
# (PEP 668 "externally-managed-environment" on Debian 12 and Ubuntu 24.04), the standard library
# fetches the binary from PyPI into .tools/bin (scripts/get_uv.py). No sudo in any case.
set -euo pipefail
cd "$(dirname "$0")/.."
pip_quiet=(--quiet --disable-pip-version-check)
if command -v uv >/dev/null 2>&1; then
  UV="uv"
elif python3 -m uv --version >/dev/null 2>&1; then
  UV="python3 -m uv"
elif [ -x .tools/bin/uv ]; then
  UV="$PWD/.tools/bin/uv"
elif { python3 -m pip install "${pip_quiet[@]}" uv || python3 -m pip install "${pip_quiet[@]}" --user uv; } >/dev/null 2>&1 \
    && python3 -m uv --version >/dev/null 2>&1; then
  echo "forecast: installed uv from PyPI with pip" >&2
  UV="python3 -m uv"
else
  echo "forecast: pip cannot install uv here; fetching its binary from PyPI into .tools/bin" >&2
  UV="$(python3 scripts/get_uv.py)"
fi
# uv trusts the system's certificate store, as Debian's pip and Python do: with its bundled roots a
# network that inspects TLS with its own authority (a company proxy) fails with "UnknownIssuer".
# The setting's name depends on the release (UV_SYSTEM_CERTS since 0.13; UV_NATIVE_TLS before).
if [ -z "${UV_SYSTEM_CERTS:-}${UV_NATIVE_TLS:-}" ]; then
  if $UV help sync 2>/dev/null | grep -q UV_SYSTEM_CERTS; then
    UV="env UV_SYSTEM_CERTS=true $UV"
  else
    UV="env UV_NATIVE_TLS=true $UV"
  fi
fi
$UV sync --frozen --quiet >&2
# LightGBM's wheel loads the system's OpenMP runtime; without it every model fails to import with
# "libgomp.so.1: cannot open shared object file". Say so here, with the fix, rather than mid-run.
if ! python3 -c "import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library('gomp') else 1)" 2>/dev/null; then
  echo "forecast: LightGBM needs the system's OpenMP runtime (libgomp.so.1), which is not installed." >&2
  echo "  Debian/Ubuntu: sudo apt-get install libgomp1; Fedora/RHEL: sudo dnf install libgomp;" >&2
  echo "  Alpine: apk add libgomp. Then run the command again." >&2
  exit 1
fi
echo "$UV"
