"""Data commands: simulate, ingest, validate, quality, and the main job (run)."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import duckdb
import typer
from rich.console import Console

from forecast.cli.main import (
    AsOfOpt,
    DelimiterOpt,
    EncodingOpt,
    FormatOpt,
    JsonOpt,
    PipelineOpt,
    app,
    context_settings,
    emit,
    fail,
    input_errors,
    parse_as_of,
    progress_bar,
)
from forecast.cli.render import (
    WideOpt,
    render_counts,
    render_ingest,
    render_quality,
    render_rules,
    render_training,
)
from forecast.config import Settings
from forecast.data.ingest import IngestReport, RejectsRefusedError, SourceFormat, ingest, refusal_message
from forecast.data.pipeline import SalesPipeline
from forecast.data.pipeline_learn import PipelineLearnError
from forecast.data.quality import quality_summary
from forecast.data.sources.base import SourceError
from forecast.data.validate import RULES
from forecast.data.warehouse import PipelineConflictError, Warehouse, WarehouseBusyError
from forecast.errors import cli_message
from forecast.logging import get_logger
from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE

if TYPE_CHECKING:
    import pandas as pd


RejectShareOpt = Annotated[
    float | None,
    typer.Option(
        "--max-reject-share",
        min=0.0,
        max=1.0,
        help="Refuse the import when one rule rejects more than this share of a table "
        "(default FORECAST_MAX_REJECT_SHARE, 0.05; 1 never refuses).",
    ),
]

# ---------------------------------------------------------------------------- simulate


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for the canonical files and the ground truth.")],
    leads: Annotated[
        int | None, typer.Option(min=100, help="Number of leads (default: 20000, or the world's).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: 42, or the world's).")] = None,
    start: Annotated[str | None, typer.Option(help="First day of the history (default: 2024-01-01).")] = None,
    months: Annotated[
        int | None, typer.Option(min=1, help="Months of history (default: 24, or the world's).")
    ] = None,
    world: Annotated[
        str | None,
        typer.Option(
            help="A preset world (history-3m, stages-8, win-10, cycle-200, drift, turnover, …) "
            "or a .yaml/.json world file; see docs/simulator.md."
        ),
    ] = None,
    file_format: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    as_json: JsonOpt = False,
) -> None:
    """Write a realistic simulated CRM (canonical files) with its ground truth."""
    from forecast.data.simulation.worlds import World, load_world

    try:
        spec = load_world(world) if world is not None else World(name="default")
    except ValueError as exc:
        fail(as_json, cli_message(exc))
    updates: dict[str, Any] = {}
    if leads is not None:
        updates["n_leads"] = leads
    if seed is not None:
        updates["seed"] = seed
    if months is not None:
        updates["months"] = months
        if leads is None and spec.n_leads is not None:
            updates["n_leads"] = spec.leads_for(months)
    if start is not None:
        try:
            updates["start"] = date.fromisoformat(start)
        except ValueError:
            fail(as_json, f"--start {start!r} is not an ISO date (YYYY-MM-DD)")
    if world is None and leads is None:
        updates["n_leads"] = 20_000
    spec = spec.model_copy(update=updates)
    summary = _simulate_config(out, spec.to_config(), file_format, as_json)
    if spec.stages is not None:
        summary["pipeline_file"] = str(_write_pipeline(out, spec.pipeline()))
    emit(as_json, summary, lambda c: render_counts(c, "Simulated CRM", summary["rows"]))


def _write_pipeline(out: Path, pipeline: SalesPipeline) -> Path:
    """Write the simulated pipeline next to the data (``forecast ingest --pipeline`` reads it)."""
    import yaml

    path = out / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def _simulate(
    out: Path, leads: int, seed: int, start: str, months: int, file_format: str, as_json: bool
) -> dict[str, Any]:
    from forecast.data.simulate import SimulationConfig

    try:
        start_date = date.fromisoformat(start)
    except ValueError:
        fail(as_json, f"--start {start!r} is not an ISO date (YYYY-MM-DD)")
    config = SimulationConfig(n_leads=leads, seed=seed, start=start_date, months=months)
    return _simulate_config(out, config, file_format, as_json)


def _simulate_config(out: Path, config: Any, file_format: str, as_json: bool) -> dict[str, Any]:
    from forecast.main_job import simulate_files

    if file_format not in ("parquet", "csv"):
        fail(as_json, f"--format must be parquet or csv, not {file_format!r}")
    with progress_bar("simulate") as update:
        return simulate_files(config, out, file_format, update)  # type: ignore[arg-type]


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
    max_reject_share: float | None = None,
) -> IngestReport:
    pipeline_path = pipeline_file or settings.pipeline_file
    share = settings.max_reject_share if max_reject_share is None else max_reject_share
    try:
        pipeline = SalesPipeline.from_yaml(pipeline_path) if pipeline_path else None
    except (OSError, ValueError, KeyError) as exc:
        fail(as_json, f"{pipeline_path}: not a valid pipeline definition ({exc})")
    as_of_ts = parse_as_of(as_of, as_json)
    warehouse = Warehouse(settings.warehouse)  # a dry run reads it if it exists, writes nothing
    try:
        with progress_bar("validate" if dry_run else "ingest") as update:
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
                max_reject_share=share,
            )
    except RejectsRefusedError as exc:
        _refuse(as_json, exc.report, str(exc))
    except (SourceError, PipelineConflictError, WarehouseBusyError, PipelineLearnError) as exc:
        fail(as_json, cli_message(exc))
    except ValueError as exc:
        fail(as_json, f"{path}: cannot import ({exc})")
    except duckdb.Error as exc:
        fail(as_json, f"{path}: the warehouse {settings.warehouse} refused the import ({exc})")
    if report.refused:  # a dry run judges as the ingest would, and says so
        _refuse(as_json, report, refusal_message(report).replace("nothing was written", "would be", 1))
    return report


def _ingest_json(report: IngestReport) -> dict[str, Any]:
    """An import's report as ``--json`` prints it."""
    return {"ok": True, **report.as_dict()}


def _refuse(as_json: bool, report: IngestReport, message: str) -> NoReturn:
    """An import refused by the reject guard: the report (JSON) or its tables, the reasons, exit 2."""
    if as_json:
        document = {"ok": False, "error": message, **report.as_dict()}
        sys.stdout.write(json.dumps(document, default=str, indent=2) + "\n")
    else:
        render_ingest(Console(), report)
    get_logger("cli").error(message)
    raise typer.Exit(2)


def _check_format(value: str, as_json: bool) -> SourceFormat:
    if value not in ("canonical", "maven", "salesforce"):
        fail(as_json, f"--format must be canonical, maven or salesforce, not {value!r}")
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
    max_reject_share: RejectShareOpt = None,
    wide: WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import CRM exports into the warehouse (bad rows go to `rejects`; all-or-nothing write)."""
    fmt = _check_format(file_format, as_json)
    result = _run_ingest(
        context_settings(ctx),
        path,
        fmt,
        dry_run=False,
        as_of=as_of,
        encoding=encoding,
        delimiter=delimiter,
        pipeline_file=pipeline_file,
        as_json=as_json,
        max_reject_share=max_reject_share,
    )
    emit(as_json, _ingest_json(result), lambda c: render_ingest(c, result, wide))


@app.command("validate")
def validate_cmd(
    ctx: typer.Context,
    path: Annotated[Path | None, typer.Argument(help="A file or a folder of exports.")] = None,
    file_format: FormatOpt = "canonical",
    as_of: AsOfOpt = None,
    encoding: EncodingOpt = "utf-8",
    delimiter: DelimiterOpt = ",",
    pipeline_file: PipelineOpt = None,
    max_reject_share: RejectShareOpt = None,
    rules: Annotated[bool, typer.Option("--rules", help="List the validation rules and exit.")] = False,
    wide: WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Check exports against the canonical model without writing anything (a dry run of ingest)."""
    if rules:
        emit(as_json, {"rules": RULES}, lambda c: render_rules(c))
        return
    if path is None:
        fail(as_json, "give a PATH to validate (or --rules)")
    fmt = _check_format(file_format, as_json)
    result = _run_ingest(
        context_settings(ctx),
        path,
        fmt,
        dry_run=True,
        as_of=as_of,
        encoding=encoding,
        delimiter=delimiter,
        pipeline_file=pipeline_file,
        as_json=as_json,
        max_reject_share=max_reject_share,
    )
    emit(as_json, _ingest_json(result), lambda c: render_ingest(c, result, wide))


# ---------------------------------------------------------------------------- quality / run


@app.command()
def quality(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Print the warehouse's data-quality summary."""
    settings = context_settings(ctx)
    try:
        summary = quality_summary(Warehouse(settings.warehouse))
    except FileNotFoundError as exc:
        fail(as_json, cli_message(exc))
    emit(as_json, {"ok": True, **summary}, lambda c: render_quality(c, summary))


def _iso(when: pd.Timestamp | None) -> str | None:
    return None if when is None else when.isoformat()


@app.command()
def run(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the simulated CRM (default: <data_dir>/crm).")
    ] = None,
    leads: Annotated[int, typer.Option(min=100, help="Number of simulated leads.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    wide: WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The main job on the embedded default: simulate, ingest, check quality, train, promote, score."""
    from forecast.main_job import main_job

    with input_errors(as_json, (SourceError, PipelineConflictError, PipelineLearnError)):
        try:
            result = main_job(context_settings(ctx), out=out, leads=leads, seed=seed, steps=progress_bar)
        except RejectsRefusedError as exc:
            _refuse(as_json, exc.report, str(exc))

    def render(c: Console) -> None:
        render_ingest(c, result.ingest, wide)
        render_quality(c, result.quality)
        render_training(c, result.lead_model, wide)
        scored = result.lead_scores
        c.print(
            f"scored {scored.scored:,} open leads as of {_iso(scored.as_of)} (bands {scored.bands}); "
            f"{scored.rejected} rejected"
        )
        for stem in (DEAL_WIN, TIME_TO_CLOSE):
            render_training(c, result.deal_models[stem], wide)
        deal_scores = result.deal_scores
        if isinstance(deal_scores, str):
            c.print(f"[yellow]open deals not scored:[/yellow] {deal_scores}")
        else:
            c.print(
                f"scored {deal_scores.scored:,} open deals as of {_iso(deal_scores.as_of)} "
                f"(mean p_win {deal_scores.mean_score}, bands {deal_scores.bands}); "
                f"{deal_scores.rejected} rejected; {'; '.join(deal_scores.notes)}"
            )
        if isinstance(result.revenue, str):
            c.print(f"[yellow]no revenue forecast:[/yellow] {result.revenue}")
        else:
            from forecast.cli.revenue import render_revenue

            render_revenue(c, result.revenue, wide)
        pages = result.dashboard
        if isinstance(pages, str):
            c.print(f"[yellow]dashboard pages:[/yellow] {pages}")
        elif pages.ok:
            c.print(f"dashboard pages computed in {pages.seconds:.1f} s, kept in {pages.store}")
        else:
            c.print(f"[yellow]dashboard pages:[/yellow] {pages.not_kept} not kept (see the log above)")
        c.print("[bold]Outputs[/bold]")
        for key, value in result.outputs.items():
            c.print(f"  {key}: {value}")

    emit(as_json, result.to_dict(), render)
