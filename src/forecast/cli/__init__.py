"""The ``forecast`` command line: one Typer app, commands grouped by concern.

``main`` holds the app and the shared helpers; ``dashboard``, ``data``, ``export``, ``features``,
``flags``, ``models``, ``monitoring``, ``revenue`` and ``tracking`` register their commands on it when
imported here.
"""

from forecast.cli import (  # noqa: F401  (registers the commands)
    dashboard,
    data,
    export,
    features,
    flags,
    models,
    monitoring,
    revenue,
    serve,
    sync,
    tracking,
)
from forecast.cli.main import app

__all__ = ["app"]
