"""Logging to stderr (stdout is reserved for results and ``--json`` documents)."""

from __future__ import annotations

import logging
from functools import cache

from rich.console import Console
from rich.logging import RichHandler


@cache
def stderr_console() -> Console:
    """The console every progress bar and log line writes to (created on first use)."""
    return Console(stderr=True)


def configure_logging(level: str = "INFO") -> None:
    """Send the ``forecast`` logger's records to stderr through rich.

    Args:
        level: A logging level name.
    """
    logger = logging.getLogger("forecast")
    logger.handlers.clear()
    handler = RichHandler(console=stderr_console(), show_path=False, show_time=False, markup=False)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def get_logger(name: str) -> logging.Logger:
    """Return a child of the ``forecast`` logger."""
    return logging.getLogger(name if name.startswith("forecast") else f"forecast.{name}")
