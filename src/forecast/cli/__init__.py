"""The ``forecast`` command line: one Typer app, commands grouped by concern.

``main`` holds the app and the shared helpers; ``data``, ``features``, ``models``, ``monitoring`` and ``tracking`` register
their commands on it when imported here.
"""

from forecast.cli import data, features, models, monitoring, tracking  # noqa: F401  (registers the commands)
from forecast.cli.main import app

__all__ = ["app"]
