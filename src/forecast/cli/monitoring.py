"""Monitoring commands: monitor (drift, data quality, calibration -> one verdict) and retrain."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from forecast.cli.main import (
    JsonOpt,
    ModelsOpt,
    app,
    context_settings,
    emit,
    fail,
    progress_bar,
    refs_or_exit,
)
from forecast.cli.models import MODELS, default_config, load_config
from forecast.data.sources.base import SourceError
from forecast.errors import InputError, cli_message

if TYPE_CHECKING:
    from forecast.monitoring.job import MonitorSummary

MONITOR_HELP = (
    "Monitor a champion: Evidently drift (features and prediction) and data quality, plus our "
    "calibration (Brier, ECE, reliability by decile) where outcomes have arrived, judged by the policy "
    "in training/monitoring.yaml. Reports go to <outputs>/monitoring/<model>/<time>/ and to MLflow."
    "\n\nExit codes: 0 ok, 10 warn, 11 retrain, 2 bad input (unknown model, no champion, unreadable "
    "or empty data), 1 unexpected failure."
)

RETRAIN_HELP = (
    "Train a challenger on the warehouse's latest data, apply the promotion gate and log why."
    "\n\nExit codes: 0 promoted, 3 trained but refused by the gate (the champion stays), 2 bad input "
    "or too little data, 1 unexpected failure."
)

ModelOpt = Annotated[str, typer.Option("--model", help="Model: lead-scoring, deal-win, time-to-close, …")]
ConfigOpt = Annotated[Path | None, typer.Option(help="Training config (default: training/<model>.yaml).")]


def available_models() -> list[str]:
    """CLI names of the models: the known ones and every training config in ``training/``."""
    names = set(MODELS)
    folder = default_config("x").parent
    if folder.is_dir():
        names |= {p.stem.replace("_", "-") for p in folder.glob("*.yaml") if p.stem != "monitoring"}
    return sorted(names)


def resolve_model(name: str, as_json: bool, config: Path | None = None) -> str:
    """The config stem of a CLI model name (``lead-scoring`` -> ``lead_scoring``), or fail (exit 2)."""
    from forecast.cli.models import check_model_name

    check_model_name(name, "--model", as_json)
    stem = MODELS.get(name, name.replace("-", "_"))
    if config is None and not default_config(stem).is_file():
        fail(as_json, f"unknown model {name!r}; known: {', '.join(available_models())}")
    return stem


def default_policy() -> Path:
    """The repository's ``training/monitoring.yaml``."""
    return default_config("monitoring")


@app.command("monitor", help=MONITOR_HELP)
def monitor(
    ctx: typer.Context,
    model: ModelOpt,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Reference rows (snapshot features, CSV/Parquet); default: the champion's logged reference."
        ),
    ] = None,
    current: Annotated[
        Path | None,
        typer.Option(
            help="Current rows (snapshot features, CSV/Parquet); default: the warehouse's latest period."
        ),
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Policy (default: training/monitoring.yaml).")] = None,
    config: ConfigOpt = None,
    models: ModelsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Monitor a champion and give one verdict (see the exit codes above).

    Against the warehouse, the champion must have been trained on it; ``--models
    <model_name>=NAME[@alias|:version]`` monitors another version, wherever it was trained.
    """
    from forecast.monitoring.job import MonitoringError, monitor_job
    from forecast.monitoring.policy import MonitoringPolicy

    settings = context_settings(ctx)
    stem = resolve_model(model, as_json, config)
    cfg = load_config(stem, config, as_json, None)
    ref = refs_or_exit(as_json, {cfg.model_name: (cfg.model_name, "--models")}, None, models)[cfg.model_name]
    try:
        rules = MonitoringPolicy.from_yaml(policy or default_policy())
    except ValueError as exc:
        fail(as_json, cli_message(exc))
    for path in (reference, current):
        if path is not None and not path.is_file():
            fail(as_json, f"{path}: no such file")
    try:
        with progress_bar(f"monitor {cfg.model_name}") as update:
            summary = monitor_job(
                settings,
                cfg,
                rules,
                reference_path=reference,
                current_path=current,
                progress=lambda m: update(m, None),
                model_ref=ref,
            )
    except (MonitoringError, SourceError, FileNotFoundError, InputError) as exc:  # ModelBindingError too
        fail(as_json, cli_message(exc).strip("'\""))
    emit(as_json, summary.to_dict(), lambda c: _render_monitor(c, summary))
    raise typer.Exit(summary.exit_code)


def _render_monitor(console: Console, s: MonitorSummary) -> None:
    verdict = s.verdict.verdict
    colour = {"ok": "green", "warn": "yellow", "retrain": "red"}[verdict]
    console.print(f"[bold]{s.model_name}[/bold] v{s.model_version}: verdict [bold {colour}]{verdict}[/]")
    console.print(f"  reference: {s.reference.source} ({s.reference.rows:,} rows)")
    console.print(f"  current:   {s.current.source} ({s.current.rows:,} rows)")
    for reason in s.verdict.reasons:
        console.print(f"  - {reason}")
    for note in s.verdict.notes:
        console.print(f"  [dim]note: {note}[/dim]")
    table = Table(title="criteria")
    for col in ("criterion", "level", "value", "finding"):
        table.add_column(col)
    for f in s.verdict.findings:
        table.add_row(f.criterion, f.level, f"{f.value:.4f}", f.message[:120])
    console.print(table)
    console.print(f"  report: {s.files['report_html']}\n  json:   {s.files['report_json']}")


@app.command("retrain", help=RETRAIN_HELP)
def retrain(ctx: typer.Context, model: ModelOpt, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Retrain a model and promote it if the gate says so (see the exit codes above)."""
    from forecast.errors import InsufficientDataError
    from forecast.monitoring.job import retrain_job

    settings = context_settings(ctx)
    stem = resolve_model(model, as_json, config)
    cfg = load_config(stem, config, as_json, None)
    try:
        with progress_bar(f"retrain {cfg.model_name}") as update:
            summary = retrain_job(settings, cfg, progress=lambda m: update(m, None))
    except (InsufficientDataError, SourceError, FileNotFoundError, LookupError, ValueError, KeyError) as exc:
        fail(as_json, cli_message(exc).strip("'\""))

    def render(c: Console) -> None:
        verdict = "promoted to champion" if summary.promoted else "refused by the gate (champion kept)"
        trained = summary.training
        c.print(f"[bold]{trained.model_name}[/bold] v{trained.version}: {verdict}")
        c.print(f"  why: {summary.reason}")
        c.print(f"  run: {trained.run_id} in experiment {trained.experiment!r}")

    emit(as_json, summary.to_dict(), render)
    raise typer.Exit(summary.exit_code)
