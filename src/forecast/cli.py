"""The ``forecast`` command line.

Results go to stdout (a rich table, or one JSON document with ``--json``); logs and progress
bars go to stderr. Exit codes: 0 success, 1 unexpected failure, 2 bad input (the message names
the file and the problem; nothing was written).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, NoReturn

import duckdb
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from forecast.config import Settings, load_settings
from forecast.data.ingest import SourceFormat, ingest
from forecast.data.pipeline import Pipeline
from forecast.data.quality import quality_summary
from forecast.data.sources.base import SourceError
from forecast.data.validate import RULES
from forecast.data.warehouse import PipelineConflictError, Warehouse
from forecast.logging import configure_logging, get_logger, stderr_console

app = typer.Typer(
    name="forecast",
    help="Sales-tracking intelligence: turn CRM history into scores, forecasts, flags and decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


@app.callback()
def main(
    ctx: typer.Context,
    warehouse: Annotated[
        Path | None, typer.Option(help="DuckDB warehouse file [env: FORECAST_WAREHOUSE].")
    ] = None,
    mlflow_tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking URI [env: FORECAST_MLFLOW_TRACKING_URI].")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [env: FORECAST_LOG_LEVEL].")] = None,
) -> None:
    """Global settings: environment variables with the FORECAST_ prefix, overridden by these options."""
    settings = load_settings(
        warehouse=warehouse, mlflow_tracking_uri=mlflow_tracking_uri, log_level=log_level
    )
    configure_logging(settings.log_level)
    ctx.obj = settings


def _emit(as_json: bool, payload: dict[str, Any], render: Callable[[Console], None]) -> None:
    """Print the result: JSON on stdout, or a human rendering on stdout."""
    if as_json:
        sys.stdout.write(json.dumps(payload, default=str, indent=2) + "\n")
    else:
        render(Console())


def _fail(as_json: bool, message: str, code: int = 2) -> NoReturn:
    """Report a clear error (stderr, and a JSON document on stdout with ``--json``) and exit."""
    get_logger("cli").error(message)
    if as_json:
        sys.stdout.write(json.dumps({"ok": False, "error": message}) + "\n")
    raise typer.Exit(code)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[str, float | None], None]]:
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


def _parse_as_of(value: str | None, as_json: bool = False) -> pd.Timestamp | None:
    if value is None:
        return None
    problem = f"--as-of {value!r} is not an ISO date or timestamp"
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        _fail(as_json, problem)
    if pd.isna(ts):  # "" and "nat" parse to NaT, which would silently disable the future rule
        _fail(as_json, problem)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


# ---------------------------------------------------------------------------- simulate


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for the canonical files and the ground truth.")],
    leads: Annotated[int, typer.Option(min=100, help="Number of leads.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 42,
    start: Annotated[str, typer.Option(help="First day of the simulated history.")] = "2024-01-01",
    months: Annotated[int, typer.Option(min=3, help="Months of history.")] = 24,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    as_json: JsonOpt = False,
) -> None:
    """Write a realistic simulated CRM (canonical files) with its ground truth."""
    summary = _simulate(out, leads, seed, start, months, file_format, as_json)
    _emit(as_json, summary, lambda c: _render_counts(c, "Simulated CRM", summary["rows"]))


def _simulate(
    out: Path, leads: int, seed: int, start: str, months: int, file_format: str, as_json: bool
) -> dict[str, Any]:
    from forecast.data.simulate import SimulationConfig, simulate_crm

    if file_format not in ("parquet", "csv"):
        _fail(as_json, f"--format must be parquet or csv, not {file_format!r}")
    try:
        start_date = date.fromisoformat(start)
    except ValueError:
        _fail(as_json, f"--start {start!r} is not an ISO date (YYYY-MM-DD)")
    config = SimulationConfig(n_leads=leads, seed=seed, start=start_date, months=months)
    with _progress("simulate") as update:
        sim = simulate_crm(config, progress=update)
        update("writing files", None)
        files = sim.write(out, fmt=file_format)  # type: ignore[arg-type]
    return {
        "ok": True,
        "out": str(out),
        "seed": seed,
        "end": sim.end.isoformat(),
        "rows": {name: len(frame) for name, frame in {**sim.tables, **sim.truth}.items()},
        "files": [str(f) for f in files],
    }


# ---------------------------------------------------------------------------- ingest / validate


def _run_ingest(
    settings: Settings,
    path: Path,
    file_format: SourceFormat,
    *,
    dry_run: bool,
    as_of: str | None,
    encoding: str,
    delimiter: str,
    pipeline_file: Path | None,
    as_json: bool,
) -> dict[str, Any]:
    pipeline_path = pipeline_file or settings.pipeline_file
    try:
        pipeline = Pipeline.from_yaml(pipeline_path) if pipeline_path else None
    except (OSError, ValueError, KeyError) as exc:
        _fail(as_json, f"{pipeline_path}: not a valid pipeline definition ({exc})")
    as_of_ts = _parse_as_of(as_of, as_json)
    warehouse = Warehouse(settings.warehouse)  # a dry run reads it if it exists, writes nothing
    try:
        with _progress("validate" if dry_run else "ingest") as update:
            report = ingest(
                path,
                file_format,
                warehouse,
                dry_run=dry_run,
                as_of=as_of_ts,
                encoding=encoding,
                delimiter=delimiter,
                pipeline=pipeline,
                progress=lambda msg: update(msg, None),
            )
    except (SourceError, PipelineConflictError) as exc:
        _fail(as_json, str(exc))
    except ValueError as exc:
        _fail(as_json, f"{path}: cannot import ({exc})")
    except duckdb.Error as exc:
        _fail(as_json, f"{path}: the warehouse {settings.warehouse} refused the import ({exc})")
    return {"ok": True, **report.as_dict()}


FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help="Source format: canonical, maven or salesforce.")
]
AsOfOpt = Annotated[
    str | None, typer.Option(help="Reject timestamps after this time (default: now). ISO date/time, UTC.")
]
EncodingOpt = Annotated[str, typer.Option(help="Text encoding of CSV files.")]
DelimiterOpt = Annotated[str, typer.Option(help="CSV delimiter.")]
PipelineOpt = Annotated[
    Path | None, typer.Option("--pipeline", help="YAML pipeline definition (canonical format only).")
]


def _check_format(value: str, as_json: bool) -> SourceFormat:
    if value not in ("canonical", "maven", "salesforce"):
        _fail(as_json, f"--format must be canonical, maven or salesforce, not {value!r}")
    return value  # type: ignore[return-value]


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A file or a folder of exports.")],
    file_format: FormatOpt = "canonical",
    as_of: AsOfOpt = None,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    pipeline_file: PipelineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import CRM exports into the warehouse (bad rows go to `rejects`; all-or-nothing write)."""
    fmt = _check_format(file_format, as_json)
    result = _run_ingest(
        _settings(ctx),
        path,
        fmt,
        dry_run=False,
        as_of=as_of,
        encoding=encoding,
        delimiter=delimiter,
        pipeline_file=pipeline_file,
        as_json=as_json,
    )
    _emit(as_json, result, lambda c: _render_ingest(c, result))


@app.command("validate")
def validate_cmd(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="A file or a folder of exports.")] = None,
    file_format: FormatOpt = "canonical",
    as_of: AsOfOpt = None,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    pipeline_file: PipelineOpt = None,
    rules: Annotated[bool, typer.Option("--rules", help="List the validation rules and exit.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check exports against the canonical model without writing anything (a dry run of ingest)."""
    if rules:
        _emit(as_json, {"rules": RULES}, lambda c: _render_rules(c))
        return
    if path is None:
        _fail(as_json, "give a PATH to validate (or --rules)")
    fmt = _check_format(file_format, as_json)
    result = _run_ingest(
        _settings(ctx),
        path,
        fmt,
        dry_run=True,
        as_of=as_of,
        encoding=encoding,
        delimiter=delimiter,
        pipeline_file=pipeline_file,
        as_json=as_json,
    )
    _emit(as_json, result, lambda c: _render_ingest(c, result))


# ---------------------------------------------------------------------------- quality / run


@app.command()
def quality(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the warehouse's data-quality summary."""
    settings = _settings(ctx)
    try:
        summary = quality_summary(Warehouse(settings.warehouse))
    except FileNotFoundError as exc:
        _fail(as_json, str(exc))
    _emit(as_json, {"ok": True, **summary}, lambda c: _render_quality(c, summary))


@app.command()
def run(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the simulated CRM [default: <data_dir>/crm].")
    ] = None,
    leads: Annotated[int, typer.Option(min=100, help="Number of simulated leads.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    as_json: JsonOpt = False,
) -> None:
    """The main job on the embedded default: simulate, ingest, check quality, train, promote, score."""
    from forecast.batch import score_job
    from forecast.jobs import train_model_job

    settings = _settings(ctx)
    folder = out or settings.data_dir / "crm"
    sim = _simulate(folder, leads, seed, "2024-01-01", 24, "parquet", as_json)
    result = _run_ingest(
        settings,
        folder,
        "canonical",
        dry_run=False,
        as_of=None,
        encoding="utf-8",
        delimiter=",",
        pipeline_file=None,
        as_json=as_json,
    )
    summary = quality_summary(Warehouse(settings.warehouse))
    config = _load_config("lead_scoring", None, as_json, None)
    with _progress("lead scoring") as update:
        trained = train_model_job(settings, config, promote_after=True, progress=lambda m: update(m, None))
        scores_path = settings.outputs_dir / "lead_scores.parquet"
        scored = score_job(
            settings,
            model_name=config.model_name,
            output=scores_path,
            write_to_warehouse=True,
            progress=update,
        )
    ui = f"uv run mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} --port 5000"
    outputs = {
        "warehouse": str(settings.warehouse),
        "lead_scores": str(scored["output"]),
        "model_card": str(settings.models_dir / config.model_name / "model_card.md"),
        "mlflow_ui": ui,
    }
    payload = {
        "ok": True,
        "simulation": sim,
        "ingest": result,
        "quality": summary,
        "lead_scoring": trained,
        "lead_scores": scored,
        "outputs": outputs,
    }

    def render(c: Console) -> None:
        _render_ingest(c, result)
        _render_quality(c, summary)
        _render_training(c, trained)
        c.print(
            f"scored {scored['scored']:,} open leads as of {scored['as_of']} (bands {scored['bands']}); "
            f"{scored['rejected']} rejected"
        )
        c.print("[bold]Outputs[/bold]")
        for key, value in outputs.items():
            c.print(f"  {key}: {value}")

    _emit(as_json, payload, render)


# ---------------------------------------------------------------------------- features


@app.command()
def features(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Parquet file for the snapshot table.")],
    entity: Annotated[str | None, typer.Option(help="lead or opportunity (warehouse snapshots).")] = None,
    as_of: Annotated[
        list[str] | None, typer.Option("--as-of", help="An as_of date (repeat for several).")
    ] = None,
    as_of_every: Annotated[
        str | None, typer.Option("--as-of-every", help="Cadence such as 7d, 2w or 1m.")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="First as_of (default: first event).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last as_of (default: the data's end).")] = None,
    horizon_days: Annotated[
        int | None, typer.Option(min=1, help="Label horizon in days (default 90).")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="A flat CRM export (CSV/Parquet) instead of the warehouse.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column of --table.")] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="Id column of --table.")] = None,
    time_column: Annotated[str | None, typer.Option("--time", help="Date column of --table.")] = None,
    keep_column: Annotated[
        list[str] | None, typer.Option("--keep-column", help="Keep a column flagged as leakage.")
    ] = None,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    as_json: JsonOpt = False,
) -> None:
    """Write a point-in-time snapshot feature table (warehouse) or a flat export's feature table."""
    if table is not None:
        summary = _flat_features(
            table, target, id_column, time_column, keep_column or [], encoding, delimiter, out, as_json
        )
    else:
        summary = _warehouse_features(
            _settings(ctx), entity, as_of, as_of_every, date_from, date_to, horizon_days, out, as_json
        )
    _emit(as_json, {"ok": True, **summary}, lambda c: _render_features(c, summary))


def _warehouse_features(
    settings: Settings,
    entity: str | None,
    as_of: list[str] | None,
    every: str | None,
    date_from: str | None,
    date_to: str | None,
    horizon_days: int | None,
    out: Path,
    as_json: bool,
) -> dict[str, Any]:
    from forecast.features.build import build_feature_table
    from forecast.features.snapshots import LabelConfig, as_of_grid, parse_every
    from forecast.features.source import warehouse_source
    from forecast.io import write_frame

    if entity not in ("lead", "opportunity"):
        _fail(as_json, "--entity must be lead or opportunity (or give --table for a flat export)")
    if bool(as_of) == bool(every):
        _fail(as_json, "give either --as-of DATE (repeatable) or --as-of-every CADENCE")
    labels = LabelConfig() if horizon_days is None else LabelConfig(horizon_days, horizon_days)
    try:
        with warehouse_source(settings.warehouse) as src, _progress(f"features ({entity})") as update:
            if as_of:
                dates = [_parse_date(d, "--as-of", as_json) for d in as_of]
            else:
                assert every is not None
                start = _parse_date(date_from, "--from", as_json) if date_from else _first_event(src)
                end = _parse_date(date_to, "--to", as_json) if date_to else src.data_end()
                dates = as_of_grid(start, end, parse_every(every))
            table = build_feature_table(
                src,
                entity,  # type: ignore[arg-type]
                dates,
                labels,
                progress=lambda m: update(m, None),
            )
            update("writing", None)
            write_frame(table.frame, out)
    except (FileNotFoundError, ValueError) as exc:
        _fail(as_json, str(exc))
    return {"out": str(out), **table.summary(), "features": table.catalogue()}


def _first_event(src: Any) -> pd.Timestamp:
    """The day after the first lead or deal was created (the first date anything is alive)."""
    row = src.con.execute(
        "SELECT least((SELECT min(created_at) FROM leads), (SELECT min(created_at) FROM opportunities))"
    ).fetchone()
    if not row or row[0] is None:
        raise ValueError("the warehouse has no leads or opportunities")
    return pd.Timestamp(row[0]).normalize() + pd.Timedelta(days=1)


def _parse_date(value: str | None, option: str, as_json: bool) -> pd.Timestamp:
    if not value:
        _fail(as_json, f"{option} is empty")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        _fail(as_json, f"{option} {value!r} is not an ISO date (YYYY-MM-DD)")
    if ts is pd.NaT:
        _fail(as_json, f"{option} is empty")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _flat_features(
    table: Path,
    target: str | None,
    id_column: str | None,
    time_column: str | None,
    keep: list[str],
    encoding: str,
    delimiter: str,
    out: Path,
    as_json: bool,
) -> dict[str, Any]:
    from forecast.features.tabular import load_flat_export
    from forecast.io import write_frame

    if not target:
        _fail(as_json, "--table needs --target COLUMN")
    try:
        export = load_flat_export(
            table,
            target=target,
            id_column=id_column,
            time_column=time_column,
            keep_columns=keep,
            encoding=encoding,
            delimiter=delimiter,
        )
    except (SourceError, ValueError) as exc:
        _fail(as_json, str(exc))
    for warning in export.warnings:
        get_logger("features").warning(warning)
    write_frame(export.table, out)
    return {"out": str(out), "entity": "flat_export", **export.summary()}


# ---------------------------------------------------------------------------- train / promote

train_app = typer.Typer(
    help="Train a model, log it to MLflow and register it as challenger.", no_args_is_help=True
)
promote_app = typer.Typer(
    help="Apply the promotion gate: challenger replaces champion if better.", no_args_is_help=True
)
app.add_typer(train_app, name="train")
app.add_typer(promote_app, name="promote")

MODELS = {"lead-scoring": "lead_scoring"}
"""CLI model names and their config stems (``training/<stem>.yaml``)."""


def default_config(stem: str) -> Path:
    """The repository's ``training/<stem>.yaml`` (next to the installed source tree)."""
    return Path(__file__).resolve().parents[2] / "training" / f"{stem}.yaml"


def _load_config(stem: str, path: Path | None, as_json: bool, model_name: str | None) -> Any:
    from forecast.models.config import TrainingConfig

    config_path = path or default_config(stem)
    try:
        config = TrainingConfig.from_yaml(config_path)
    except ValueError as exc:
        _fail(as_json, str(exc))
    if model_name:
        config = config.model_copy(update={"model_name": model_name})
    return config


@train_app.command("lead-scoring")
def train_lead_scoring(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option(help="Training config [default: training/lead_scoring.yaml].")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="Train on a flat CRM export (CSV/Parquet) instead.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target column of --table.")] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="Id column of --table.")] = None,
    time_column: Annotated[str | None, typer.Option("--time", help="Date column of --table.")] = None,
    keep_column: Annotated[
        list[str] | None, typer.Option("--keep-column", help="Keep a column flagged as leakage.")
    ] = None,
    drop_column: Annotated[
        list[str] | None,
        typer.Option("--drop-column", help="Leave a column of --table out (e.g. known only later)."),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name [default: lead_scoring].")
    ] = None,
    promote_after: Annotated[
        bool, typer.Option("--promote/--no-promote", help="Apply the promotion gate after training.")
    ] = False,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    as_json: JsonOpt = False,
) -> None:
    """Train lead scoring on the warehouse's lead snapshots, or on a flat export (--table)."""
    from forecast.jobs import train_model_job
    from forecast.train import InsufficientDataError

    settings = _settings(ctx)
    cfg = _load_config("lead_scoring", config, as_json, model_name)
    try:
        with _progress(f"train {cfg.model_name}") as update:
            summary = train_model_job(
                settings,
                cfg,
                table=table,
                target=target,
                id_column=id_column,
                time_column=time_column,
                keep_columns=keep_column or [],
                drop_columns=drop_column or [],
                encoding=encoding,
                delimiter=delimiter,
                promote_after=promote_after,
                progress=lambda m: update(m, None),
            )
    except (InsufficientDataError, SourceError, FileNotFoundError, LookupError, ValueError, KeyError) as exc:
        _fail(as_json, str(exc).strip("'\""))
    for warning in summary.get("warnings", []):
        get_logger("train").warning(warning)
    _emit(as_json, summary, lambda c: _render_training(c, summary))


@promote_app.command("lead-scoring")
def promote_lead_scoring(
    ctx: typer.Context,
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name [default: lead_scoring].")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Config with the promotion gate.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote the lead-scoring challenger if it passes the gate."""
    _promote(ctx, "lead_scoring", model_name, config, as_json)


def _promote(
    ctx: typer.Context, stem: str, model_name: str | None, config: Path | None, as_json: bool
) -> None:
    from forecast.registry import promote

    settings = _settings(ctx)
    cfg = _load_config(stem, config, as_json, model_name)
    try:
        decision = promote(cfg.model_name, settings, max_auc_drop=cfg.promotion.max_auc_drop)
    except LookupError as exc:
        _fail(as_json, str(exc).strip("'\""))
    payload = {"ok": True, **decision.as_dict()}

    def render(c: Console) -> None:
        verdict = "promoted" if decision.promoted else "kept the champion"
        c.print(f"{decision.model_name} v{decision.challenger_version}: {verdict} ({decision.reason})")

    _emit(as_json, payload, render)


score_app = typer.Typer(
    help="Batch scoring with the champion model (every row scored or rejected).", no_args_is_help=True
)
app.add_typer(score_app, name="score")


@score_app.command("leads")
def score_leads(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option(help="Output file (.csv or .parquet); rejects go next to it.")],
    input_path: Annotated[
        Path | None, typer.Option("--input", help="A file in the shape the model was trained on.")
    ] = None,
    from_warehouse: Annotated[
        bool, typer.Option("--from-warehouse", help="Score the warehouse's open leads.")
    ] = False,
    model: Annotated[
        str, typer.Option(help="Registered model name (its champion is used).")
    ] = "lead_scoring",
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this time (default: the latest event in the warehouse).")
    ] = None,
    write_back: Annotated[
        bool, typer.Option("--write-back", help="Also store the scores in the warehouse.")
    ] = False,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    as_json: JsonOpt = False,
) -> None:
    """Score leads: p_convert, score 0-100, band A-D and the top reasons, for every row."""
    _score(ctx, output, input_path, from_warehouse, model, as_of, write_back, encoding, delimiter, as_json)


def _score(
    ctx: typer.Context,
    output: Path,
    input_path: Path | None,
    from_warehouse: bool,
    model: str,
    as_of: str | None,
    write_back: bool,
    encoding: str,
    delimiter: str,
    as_json: bool,
) -> None:
    from forecast.batch import ScoringError, score_job
    from forecast.registry import client

    if (input_path is None) == (not from_warehouse):
        _fail(as_json, "give exactly one of --input FILE or --from-warehouse")
    settings = _settings(ctx)
    client(settings)
    when = _parse_date(as_of, "--as-of", as_json) if as_of else None
    try:
        with _progress("score") as update:
            summary = score_job(
                settings,
                model_name=model,
                output=output,
                input_path=input_path,
                as_of=when,
                write_to_warehouse=write_back,
                encoding=encoding,
                delimiter=delimiter,
                progress=update,
            )
    except (ScoringError, SourceError, LookupError, FileNotFoundError, ValueError) as exc:
        _fail(as_json, str(exc).strip("'\""))

    def render(c: Console) -> None:
        c.print(
            f"scored {summary['scored']:,} of {summary['rows_in']:,} rows with {summary['model_name']} "
            f"v{summary['model_version']}"
            + (f" as of {summary['as_of']}" if summary["as_of"] else "")
            + f"; {summary['rejected']:,} rejected"
        )
        c.print(
            f"  output: {summary['output']}\n  rejects: {summary['rejects']}\n  bands: {summary['bands']}"
        )

    _emit(as_json, summary, render)


def _render_training(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        f"[bold]{summary['model_name']}[/bold] v{summary['version']} ({summary['model_kind']}) logged to "
        f"{summary['tracking_uri']}, experiment {summary['experiment']!r}, run {summary['run_id']}"
    )
    for note in summary["notes"]:
        console.print(f"[yellow]note:[/yellow] {note}")
    table = Table(title="Test slice: model against baselines")
    for c in ("model", "roc_auc", "pr_auc", "brier", "log_loss", "ece"):
        table.add_column(c, justify="right" if c != "model" else "left")
    rows = [("model", summary["metrics"]), *summary["baselines"].items()]
    for name, m in rows:
        table.add_row(name, *(_num(m.get(k)) for k in ("roc_auc", "pr_auc", "brier", "log_loss", "ece")))
    console.print(table)
    if "promotion" in summary:
        p = summary["promotion"]
        console.print(f"promotion: {'promoted' if p['promoted'] else 'not promoted'} ({p['reason']})")


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------------------- rendering


def _render_counts(console: Console, title: str, rows: dict[str, int]) -> None:
    table = Table(title=title)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in rows.items():
        table.add_row(name, f"{n:,}")
    console.print(table)


def _render_ingest(console: Console, result: dict[str, Any]) -> None:
    written = result["warehouse"] is not None
    verb = "Ingested" if written else "Validated (dry run)"
    title = f"{verb}: {result['source_path']} ({result['source_format']})"
    table = Table(title=title)
    cols = ["read", "valid", "rejected"] + (["inserted", "updated", "unchanged"] if written else [])
    table.add_column("table")
    for c in cols:
        table.add_column(c, justify="right")
    for name, t in result["tables"].items():
        table.add_row(name, *(f"{t.get(c, 0):,}" for c in cols))
    console.print(table)
    if result["rejects_by_rule"]:
        rej = Table(title="Rejects by rule (details in the warehouse's rejects table)")
        for c in ("table", "column", "rule", "records"):
            rej.add_column(c)
        for r in result["rejects_by_rule"][:15]:
            rej.add_row(r["table"], str(r["column"]), r["rule"], f"{r['records']:,}")
        console.print(rej)
        for r in result["sample_rejects"][:5]:
            console.print(
                f"  {r['source_file']} row {r['source_row']} [{r['key']}] {r['column']}: "
                f"{r['rule']} - {r['message']} (value {r['value']!r})"
            )
    for note in result["notes"]:
        console.print(f"[dim]note: {note}[/dim]")


def _render_quality(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title=f"Data quality: {summary['warehouse']}")
    for c in ("table", "rows", "from", "to", "least complete columns"):
        table.add_column(c)
    for name, t in summary["tables"].items():
        worst = sorted(t["completeness"].items(), key=lambda kv: kv[1])[:3]
        gaps = ", ".join(f"{k} {v:.0%}" for k, v in worst if v < 1.0) or "complete"
        table.add_row(name, f"{t['rows']:,}", (t["from"] or "")[:10], (t["to"] or "")[:10], gaps)
    console.print(table)
    facts = summary["facts"]
    lines = [
        f"lead conversion rate: {_pct(facts['lead_conversion_rate'])}",
        f"win rate (closed deals): {_pct(facts['win_rate_closed'])}",
        f"median sales cycle (won): {facts['median_cycle_days_won']} days",
        f"opportunities: {facts['opportunities_by_outcome']}",
        f"email reply rate: {_pct(facts['email_reply_rate'])}",
        f"activities: {facts['activities_by_type']}",
    ]
    for line in lines:
        console.print(f"  {line}")
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}")


def _render_features(console: Console, summary: dict[str, Any]) -> None:
    console.print(f"[bold]{summary.get('entity')}[/bold] feature table written to {summary['out']}")
    for key in (
        "rows",
        "entities",
        "as_of_dates",
        "as_of_from",
        "as_of_to",
        "data_end",
        "horizon_days",
        "n_features",
    ):
        if key in summary:
            console.print(f"  {key}: {summary[key]}")
    labels = summary.get("labels")
    if isinstance(labels, dict):
        for name, info in labels.items():
            console.print(f"  {name}: {info}")
    for warning in summary.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {warning}")


def _render_rules(console: Console) -> None:
    table = Table(title="Validation rules")
    table.add_column("rule")
    table.add_column("meaning")
    for rule, meaning in RULES.items():
        table.add_row(rule, meaning)
    console.print(table)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


if __name__ == "__main__":  # pragma: no cover
    app()
