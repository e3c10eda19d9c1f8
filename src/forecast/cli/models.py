"""Model commands: train, promote, score."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from forecast.cli.main import (
    DelimiterOpt,
    EncodingOpt,
    IdOpt,
    JsonOpt,
    KeepOpt,
    TargetOpt,
    TimeOpt,
    _emit,
    _fail,
    _parse_date,
    _progress,
    _settings,
    app,
)
from forecast.cli.render import (
    _render_training,
)
from forecast.data.sources.base import SourceError
from forecast.logging import get_logger

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
    return Path(__file__).resolve().parents[3] / "training" / f"{stem}.yaml"


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
        Path | None, typer.Option(help="Training config (default: training/lead_scoring.yaml).")
    ] = None,
    table: Annotated[
        Path | None, typer.Option(help="Train on a flat CRM export (CSV/Parquet) instead.")
    ] = None,
    target: TargetOpt = None,
    id_column: IdOpt = None,
    time_column: TimeOpt = None,
    keep_column: KeepOpt = None,
    drop_column: Annotated[
        list[str] | None,
        typer.Option("--drop-column", help="Leave a column of --table out (e.g. known only later)."),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name (default: lead_scoring).")
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
        str | None, typer.Option(help="Registered model name (default: lead_scoring).")
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
