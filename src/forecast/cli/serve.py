"""``forecast serve``: start the HTTP service (BentoML) on the registry's champions."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from forecast.cli.main import ModelsOpt, app, context_settings, fail
from forecast.config import Settings
from forecast.errors import InputError, cli_message

SERVICE = "forecast.serving.service:ForecastService"

SERVE_HELP = (
    "Serve lead scores, win probabilities, close dates, flags and revenue forecasts over HTTP "
    "(BentoML), from the registry's champions; a promotion is picked up without a restart. "
    "OpenAPI at /docs.json, its UI at /. With FORECAST_API_TOKEN set, every endpoint but the "
    "health probes needs 'Authorization: Bearer <token>'. --models serves other versions by role "
    "(lead_scoring, deal_win, time_to_close, churn_risk, churn_risk_leads), a flat-export lead model "
    "included (POST /score_export); with --warehouse, a default champion must have been trained on it."
)


def check_models(settings: Settings, models: str | None, warehouse: bool) -> list[str]:
    """Check the models to serve before starting: a bad ``--models``, or a champion of another warehouse.

    With ``--warehouse`` the warehouse gets its identity here (the service opens it read-only), and
    each default champion must have been trained on it; a model named with ``--models`` is served
    wherever it was trained (the returned warnings say so).

    Raises:
        InputError: A bad mapping, or a default champion bound elsewhere (with the fix).
    """
    from forecast.binding import CurrentWarehouse, check_binding, peek
    from forecast.serving.store import served_refs

    refs = served_refs(settings.model_copy(update={"serve_models": models or ""}))
    current = CurrentWarehouse.of(settings.warehouse) if warehouse else None
    warnings = []
    for ref in refs.values():
        found = peek(ref, settings)
        if found is None:
            if ref.explicit:
                raise InputError(
                    f"{ref.option} names {ref}, which the registry does not hold (an alias needs a "
                    "promoted or aliased version; name an exact one as NAME:VERSION)"
                )
            continue
        version, meta = found
        warning = check_binding(meta, ref.name, version, ref, current)
        if warning is not None:
            warnings.append(warning)
    return warnings


def service_environment(
    settings: Settings,
    *,
    warehouse: bool,
    reload_seconds: float | None,
    workers: int,
    run_dir: Path,
    models: str | None = None,
) -> dict[str, str]:
    """The environment the service process reads its settings from (paths made absolute).

    ``run_dir`` receives the reload signal the workers share and, unless ``BENTOML_CONFIG`` is
    already set, the BentoML configuration with the number of workers.
    """
    env = dict(os.environ)
    env["FORECAST_RELOAD_SIGNAL"] = str(run_dir / "reload")
    if "BENTOML_CONFIG" in env:
        print(f"forecast: BENTOML_CONFIG is set: its worker count applies, not {workers}", file=sys.stderr)
    else:
        config = run_dir / "bentoml.yaml"
        config.write_text(f"services:\n  forecast:\n    workers: {workers}\n")
        env["BENTOML_CONFIG"] = str(config)
    env["BENTOML_DO_NOT_TRACK"] = "true"
    env["FORECAST_WAREHOUSE"] = str(settings.warehouse.resolve())
    env["FORECAST_MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    env["FORECAST_SERVE_WAREHOUSE"] = "true" if warehouse else "false"
    env["FORECAST_SERVE_MODELS"] = models or ""
    if reload_seconds is not None:
        env["FORECAST_RELOAD_SECONDS"] = str(reload_seconds)
    return env


def serve_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line of the service."""
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


@app.command(help=SERVE_HELP)
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    warehouse: Annotated[
        bool,
        typer.Option(
            "--warehouse/--no-warehouse",
            help="Read the warehouse (--warehouse PATH of forecast, or FORECAST_WAREHOUSE): revenue of "
            "its whole pipeline and flags learned from its history.",
        ),
    ] = False,
    reload_seconds: Annotated[
        float | None,
        typer.Option(
            min=0, help="Check the champion aliases this often (default 30; 0: only POST /admin/reload)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Worker processes (default 2, FORECAST_SERVE_WORKERS).")
    ] = None,
    models: ModelsOpt = None,
) -> None:
    """Start the service in this process (it replaces the CLI process)."""
    settings = context_settings(ctx)
    if warehouse and not settings.warehouse.is_file():
        fail(
            False,
            f"no warehouse at {settings.warehouse}: run `forecast ingest` (or `forecast run`) first, "
            "or drop --warehouse",
        )
    try:
        for warning in check_models(settings, models, warehouse):
            print(f"forecast: {warning}", file=sys.stderr, flush=True)
    except InputError as exc:
        fail(False, cli_message(exc))
    run_dir = Path(tempfile.mkdtemp(prefix="forecast-serve-"))
    env = service_environment(
        settings,
        warehouse=warehouse,
        reload_seconds=reload_seconds,
        workers=workers or settings.serve_workers,
        run_dir=run_dir,
        models=models,
    )
    command = serve_command(host, port)
    print(f"forecast: serving on http://{host}:{port} (OpenAPI: /docs.json)", file=sys.stderr, flush=True)
    os.execve(command[0], command, env)
