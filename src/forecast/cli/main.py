"""The Typer app, global options and what every command shares.

Results go to stdout (a rich table, or one JSON document with ``--json``); logs and progress
bars go to stderr. Exit codes: 0 success, 1 unexpected failure, 2 bad input (the message names
the file and the problem; nothing was written).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from forecast.cli.global_options import GlobalOptionsGroup
from forecast.config import Settings, load_settings
from forecast.errors import InputError, cli_message, parameter_name
from forecast.logging import configure_logging, get_logger, stderr_console
from forecast.timeutil import parse_time

app = typer.Typer(
    name="forecast",
    cls=GlobalOptionsGroup,
    help="Sales-tracking intelligence: turn CRM history into scores, forecasts, flags and decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]

_NAMED = "NAME, NAME@alias or NAME:version; used even if trained on another warehouse (with a warning)."
ModelsOpt = Annotated[
    str | None,
    typer.Option(
        "--models",
        help="Name the models by role: role=REF,... (e.g. deal_win=deal_win_maven,time_to_close=ttc:3). "
        "By default each role uses its champion, which must have been trained on this warehouse.",
    ),
]
CloseModelOpt = Annotated[
    str | None,
    typer.Option("--close-model", help=f"Time-to-close model (default: time_to_close's champion): {_NAMED}"),
]
ChurnModelOpt = Annotated[
    str | None,
    typer.Option("--churn-model", help=f"Churn model behind p_churn (default: its champion): {_NAMED}"),
]

backtest_app = typer.Typer(
    help="Point-in-time backtests: rebuild the past, forecast with models trained before it, compare.",
    no_args_is_help=True,
)
app.add_typer(backtest_app, name="backtest")


def mlflow_project_store() -> str | None:
    """The tracking store of the run ``mlflow run`` opened for this process, else ``None``.

    Under ``mlflow run training -e ...`` (the MLproject) MLflow has already started the run forecast
    logs into (``MLFLOW_RUN_ID``) in the store ``MLFLOW_TRACKING_URI`` names; any other store has
    no such run. ``--mlflow-tracking-uri`` still wins.
    """
    if os.environ.get("MLFLOW_RUN_ID") and os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return None


def context_settings(ctx: typer.Context) -> Settings:
    """The settings the global options made (``--warehouse``, ``--log-level``, ...) for this command."""
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


@app.callback()
def main(
    ctx: typer.Context,
    warehouse: Annotated[
        Path | None, typer.Option(help="DuckDB warehouse file (env FORECAST_WAREHOUSE).")
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI (env FORECAST_MLFLOW_TRACKING_URI).")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level (env FORECAST_LOG_LEVEL).")] = None,
) -> None:
    """Global settings: environment variables with the FORECAST_ prefix, overridden by these options."""
    settings = load_settings(
        warehouse=warehouse,
        mlflow_tracking_uri=mlflow_tracking_uri or mlflow_project_store(),
        log_level=log_level,
    )
    configure_logging(settings.log_level)
    ctx.obj = settings


def refs_or_exit(
    as_json: bool,
    defaults: dict[str, tuple[str, str]],
    named: Mapping[str, str | None] | None = None,
    models: str | None = None,
) -> dict[str, Any]:
    """The model of each role (:func:`forecast.binding.model_refs`); a bad reference exits 2."""
    from forecast.binding import model_refs

    try:
        return model_refs(defaults, named, models)
    except InputError as exc:
        fail(as_json, cli_message(exc))


def emit(as_json: bool, payload: dict[str, Any], render: Callable[[Console], None]) -> None:
    """Print the result: JSON on stdout, or a human rendering on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str, indent=2) + "\n")
    else:
        render(Console())


def fail(as_json: bool, message: str, code: int = 2) -> NoReturn:
    """Report a clear error (stderr, and a JSON document on stdout with ``--json``) and exit."""
    get_logger("cli").error(message)
    if as_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message}) + "\n")
    raise typer.Exit(code)


@contextmanager
def input_errors(as_json: bool, bad_input: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Map errors to exit codes: ``bad_input`` (and :class:`InputError`) exit 2, anything else 1.

    Bad input is reported with its message only (it names the file, column and what to do). Any
    other exception is a bug: it exits 1 with its type and message, and its traceback is logged at
    DEBUG (``--log-level DEBUG``).

    Args:
        as_json: Also print a JSON error document on stdout.
        bad_input: Exception types that mean the user's input is wrong.
    """
    expected: tuple[type[BaseException], ...] = (InputError, *bad_input)
    try:
        yield
    except typer.Exit:
        raise
    except KeyError as exc:  # a LookupError, but from a missing dict key or column: a bug
        _internal(as_json, exc)
    except expected as exc:
        fail(as_json, cli_message(exc).strip("'\""))
    except Exception as exc:
        _internal(as_json, exc)


def _internal(as_json: bool, exc: BaseException) -> NoReturn:
    get_logger("cli").debug("internal error", exc_info=exc)
    fail(
        as_json,
        f"internal error ({type(exc).__name__}: {str(exc).strip(chr(39))}); this is a bug in forecast, "
        "not in your input: rerun with --log-level DEBUG for the traceback and report it",
        code=1,
    )


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[str, float | None], None]]:
    """A progress bar on stderr; yields ``update(description, fraction or None)``."""
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=1.0)

        def update(description: str, fraction: float | None = None) -> None:
            bar.update(task, description=f"{label}: {description}", completed=fraction)

        yield update


_TIME_HELP = "ISO date or timestamp; an offset is converted to UTC, none means UTC."


def parse_as_of(value: str | None, as_json: bool = False, option: str = "--as-of") -> pd.Timestamp | None:
    """``None`` when the option was not given, else its time (naive UTC); a bad value exits 2."""
    return None if value is None else parse_date(value, option, as_json)


def as_of_option(help_text: str) -> Any:
    """The one ``--as-of`` option; ``help_text`` says what the command does then, and its default.

    Use as ``as_of: Annotated[str | None, as_of_option("Score as of this time (default: ...).")] = None``
    and parse with :func:`parse_as_of`.
    """
    return typer.Option("--as-of", help=f"{help_text} {_TIME_HELP}")


TargetOpt = Annotated[str | None, typer.Option(help="Target column of --table.")]
IdOpt = Annotated[str | None, typer.Option("--id", help="Id column of --table.")]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Date column of --table.")]
KeepOpt = Annotated[list[str] | None, typer.Option("--keep-column", help="Keep a column flagged as leakage.")]

FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="Source format: canonical, maven or salesforce.")
]
AsOfOpt = Annotated[str | None, as_of_option("Reject timestamps after this time (default: now).")]
EncodingOpt = Annotated[str, typer.Option(help="Text encoding of CSV files.")]
DelimiterOpt = Annotated[str, typer.Option(help="CSV delimiter.")]
PipelineOpt = Annotated[
    Path | None, typer.Option("--pipeline", help="YAML pipeline definition (canonical format only).")
]


def parse_date(value: str, option: str, as_json: bool) -> pd.Timestamp:
    """The time of a required option (``--from``, ``--to``), naive UTC; a bad value exits 2."""
    try:
        return parse_time(value, parameter_name(option))
    except InputError as exc:
        fail(as_json, cli_message(exc))
