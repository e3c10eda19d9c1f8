"""Logging to stderr (stdout is reserved for results and ``--json`` documents)."""

from __future__ import annotations

import logging
from functools import cache

from rich.console import Console
from rich.logging import RichHandler

HARMLESS_LIBRARY_RECORDS: dict[str, tuple[str, ...]] = {
    # forecast saves its own estimators (LightGBM inside a scikit-learn pipeline) and loads only
    # models it registered in its own store, so the general warning about unpickling untrusted
    # files says nothing actionable; skops does not trust these classes (see registry.py).
    "mlflow.sklearn": ("Saving scikit-learn models in the pickle",),
    "mlflow.lightgbm": ("Saving the models in the pickle",),
    # uv environments have no pip; MLflow then writes an unpinned ``pip`` into conda.yaml, which
    # forecast never uses (models are served from this project's locked environment).
    "mlflow.utils.environment": ("Failed to resolve installed pip version",),
    # Facts about MLflow's own bookkeeping (a new sqlite store, the lock file it records).
    "mlflow.utils.uv_utils": ("Detected uv project",),
    "mlflow.store.db.utils": ("Creating initial MLflow database tables", "Updating database tables"),
}
"""Per library logger, the starts of messages known to be harmless, with why (not printed)."""


class _DropKnownHarmless(logging.Filter):
    """Drop a logger's records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_known_library_noise() -> None:
    """Filter the library log records listed in :data:`HARMLESS_LIBRARY_RECORDS` (idempotent).

    The filters sit on the libraries' own loggers, so they hold whatever handlers the libraries
    configure when imported later; every other record, and every warning, still reaches stderr.
    """
    for name, prefixes in HARMLESS_LIBRARY_RECORDS.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _DropKnownHarmless)]:
            logger.removeFilter(old)
        logger.addFilter(_DropKnownHarmless(prefixes))


@cache
def stderr_console() -> Console:
    """The console every progress bar and log line writes to (created on first use)."""
    return Console(stderr=True)


def configure_logging(level: str = "INFO") -> None:
    """Send the ``forecast`` logger's records to stderr through rich, and quiet known library noise.

    Args:
        level: A logging level name.
    """
    logger = logging.getLogger("forecast")
    logger.handlers.clear()
    handler = RichHandler(console=stderr_console(), show_path=False, show_time=False, markup=False)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    quiet_known_library_noise()


def get_logger(name: str) -> logging.Logger:
    """Return a child of the ``forecast`` logger."""
    return logging.getLogger(name if name.startswith("forecast") else f"forecast.{name}")
