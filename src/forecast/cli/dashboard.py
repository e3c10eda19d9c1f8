"""``forecast dashboard``: the sales manager's pages (uvicorn over :mod:`forecast.dashboard.app`)."""

from __future__ import annotations

import ipaddress
import sys
from typing import Annotated

import typer

from forecast.cli.main import app, context_settings, fail

LOOPBACK = "127.0.0.1"

DASHBOARD_HELP = (
    "Serve the sales manager's dashboard: read-only pages (Overview, Reps, Pipeline, Insights, Models) "
    "over the warehouse (--warehouse) and the registry's champions, with the CLI's numbers. Filters "
    "live in the URL. With FORECAST_API_TOKEN set the pages need a login with the token; without "
    "one the dashboard listens on loopback only unless --host is given (docs/dashboard.md)."
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command(help=DASHBOARD_HELP)
def dashboard(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8050,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default 127.0.0.1; another needs to be given explicitly)."),
    ] = None,
) -> None:
    """Start the dashboard in this process until interrupted."""
    import uvicorn

    from forecast.dashboard.app import create_app

    settings = context_settings(ctx)
    if not settings.warehouse.is_file():
        fail(False, f"no warehouse at {settings.warehouse}: run `forecast ingest` (or `forecast run`) first")
    try:
        application = create_app(settings)
    except ValueError as exc:  # a blank FORECAST_API_TOKEN
        fail(False, str(exc))
    bind = host or LOOPBACK
    if not is_loopback(bind) and settings.api_token is None:
        print(
            f"forecast: warning: the dashboard listens on {bind} without FORECAST_API_TOKEN: anyone who "
            "reaches this address reads the pages",
            file=sys.stderr,
            flush=True,
        )
    login = " (log in with FORECAST_API_TOKEN)" if settings.api_token is not None else ""
    print(f"forecast: dashboard on http://{bind}:{port}/{login}", file=sys.stderr, flush=True)
    uvicorn.run(application, host=bind, port=port, log_level="warning", access_log=False)
