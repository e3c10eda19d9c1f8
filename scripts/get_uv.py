"""Fetch uv from PyPI into ``.tools/bin/uv`` with the standard library only.

The last resort of ``scripts/bootstrap.sh``: a stock Debian or Ubuntu Python may have no pip, or
a pip that refuses to install anything (PEP 668, "externally-managed-environment"). The uv wheel
on PyPI holds a static binary; this script downloads the wheel for this machine, checks its
SHA-256 against PyPI's, and extracts the binary. No sudo, nothing outside the project folder.

Usage: ``python3 scripts/get_uv.py`` (prints the binary's path). ``FORECAST_UV_VERSION`` picks
another version than the pinned one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import stat
import sys
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

VERSION = "0.13.9"
"""The uv release the project is set up and tested with."""

TAGS = {
    ("Linux", "x86_64"): "manylinux_2_17_x86_64",
    ("Linux", "aarch64"): "manylinux_2_17_aarch64",
    ("Darwin", "arm64"): "macosx_11_0_arm64",
    ("Darwin", "x86_64"): "macosx_10_12_x86_64",
}


def wheel_url(version: str) -> tuple[str, str]:
    """The download address and SHA-256 of the uv wheel for this machine."""
    key = (platform.system(), platform.machine())
    if key not in TAGS:
        raise SystemExit(f"get_uv: no uv wheel known for {key[0]} {key[1]}; install uv by hand")
    index = "https://pypi.org/pypi/uv/json"
    with urllib.request.urlopen(index, timeout=60) as answer:
        files = json.load(answer).get("releases", {}).get(version, [])
    for file in files:
        if file["packagetype"] == "bdist_wheel" and TAGS[key] in file["filename"]:
            # a mirror may answer with addresses relative to the index page
            return urllib.parse.urljoin(index, file["url"]), file["digests"]["sha256"]
    raise SystemExit(f"get_uv: PyPI has no uv {version} wheel tagged {TAGS[key]}")


def main() -> None:
    """Download, check and extract uv; print its path."""
    root = Path(__file__).resolve().parents[1]
    target = root / ".tools" / "bin" / "uv"
    if not target.exists():
        version = os.environ.get("FORECAST_UV_VERSION", VERSION)
        url, sha256 = wheel_url(version)
        with urllib.request.urlopen(url, timeout=300) as answer:
            data = answer.read()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise SystemExit(f"get_uv: the download of {url} does not match PyPI's SHA-256")
        with zipfile.ZipFile(io.BytesIO(data)) as wheel:
            names = [n for n in wheel.namelist() if n.endswith("/scripts/uv")]
            if not names:
                raise SystemExit(f"get_uv: no uv binary inside {url}")
            binary = wheel.read(names[0])
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        partial.write_bytes(binary)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(target)
    print(target)


if __name__ == "__main__":
    sys.exit(main())
