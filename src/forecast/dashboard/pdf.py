"""Printing an HTML file to PDF with headless Chromium (``chromium --headless --print-to-pdf``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from forecast.io import atomic_write

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
"""The programs tried, in order, on ``PATH``."""
TIMEOUT_S = 120


class BrowserMissingError(RuntimeError):
    """No headless browser to print with."""


def find_browser() -> str | None:
    """The first of :data:`BROWSERS` on ``PATH`` (``None``: none)."""
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def require_browser() -> str:
    """The browser to print with.

    Raises:
        BrowserMissingError: None of :data:`BROWSERS` is on ``PATH``.
    """
    browser = find_browser()
    if browser is None:
        raise BrowserMissingError(
            f"--pdf needs a headless Chromium and none of {', '.join(BROWSERS)} is on PATH: install "
            "one (Debian: apt-get install chromium) or leave out --pdf"
        )
    return browser


def print_pdf(source: Path, target: Path, browser: str | None = None) -> None:
    """Print the HTML file ``source`` to ``target`` (written atomically).

    Args:
        source: A self-contained HTML file (nothing is fetched: the browser gets no network to use).
        target: The PDF.
        browser: The program (default: :func:`require_browser`).

    Raises:
        BrowserMissingError: No browser.
        RuntimeError: The browser failed or wrote no PDF (its last output lines say why).
    """
    program = browser or require_browser()

    def write(path: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="forecast-pdf-") as profile:
            command = [
                program,
                "--headless",
                "--disable-gpu",
                "--no-pdf-header-footer",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--print-to-pdf={path}",
                source.resolve().as_uri(),
            ]
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"{program} did not print {source} within {TIMEOUT_S} s") from exc
        with path.open("rb") as pdf:
            ok = pdf.read(5) == b"%PDF-"
        if done.returncode != 0 or not ok:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"{program} could not print {source} (exit {done.returncode}): {tail}")

    atomic_write(target, write)
