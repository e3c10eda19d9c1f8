"""Flag commands: ``forecast flags`` (at-risk deals, leads going cold) and ``forecast backtest flags``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from forecast.cli.main import (
    ChurnModelOpt,
    JsonOpt,
    ModelsOpt,
    app,
    as_of_option,
    backtest_app,
    context_settings,
    emit,
    fail,
    parse_as_of,
    parse_date,
    progress_bar,
    refs_or_exit,
)
from forecast.errors import cli_message

EntityOpt = Annotated[str, typer.Option(help="deal, lead or both.")]
FlagsConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="Flags config (default: training/flags.yaml).")
]
_ENTITIES: dict[str, list[Any]] = {"deal": ["opportunity"], "lead": ["lead"], "both": ["opportunity", "lead"]}


def _config(path: Path | None, as_json: bool) -> Any:
    from forecast.flags.job import load_flags_config

    try:
        return load_flags_config(path)
    except ValueError as exc:
        fail(as_json, cli_message(exc))


def _entities(value: str, as_json: bool) -> list[Any]:
    if value not in _ENTITIES:
        fail(as_json, f"--entity {value!r} must be deal, lead or both")
    return _ENTITIES[value]


def _churn_models(
    entities: list[Any], cfg: Any, churn_model: str | None, models: str | None, as_json: bool
) -> dict[Any, Any]:
    """The churn model named for each entity (``--churn-model`` or ``--models``); defaults left out."""
    from forecast.flags.job import CHURN_ROLES

    if churn_model is not None and len(entities) > 1:
        fail(
            as_json,
            "--churn-model names one entity's churn model: add --entity deal or lead, or use "
            "--models churn_risk=NAME,churn_risk_leads=NAME",
        )
    defaults = {
        CHURN_ROLES["opportunity"]: (cfg.churn_risk.deal_model, "--churn-model"),
        CHURN_ROLES["lead"]: (cfg.churn_risk.lead_model, "--churn-model"),
    }
    named = {CHURN_ROLES[entities[0]]: churn_model} if churn_model is not None else {}
    refs = refs_or_exit(as_json, defaults, named, models)
    return {e: refs[CHURN_ROLES[e]] for e in entities if refs[CHURN_ROLES[e]].explicit}


@app.command("flags")
def flags(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, as_of_option("Flag as of this time (default: midnight after the warehouse's last day).")
    ] = None,
    entity: EntityOpt = "both",
    output: Annotated[
        Path | None, typer.Option(help="Write every flag (one row per entity and flag) to .csv or .parquet.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Most urgent flags to print.")] = 20,
    config: FlagsConfigOpt = None,
    churn_model: ChurnModelOpt = None,
    models: ModelsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """At-risk deals and leads going cold: every flag with its evidence and a suggested action.

    Roles of --models: churn_risk (deals), churn_risk_leads (leads); --churn-model names the churn
    model of the one entity flagged.
    """
    from forecast.flags.job import flags_job

    settings = context_settings(ctx)
    when = parse_as_of(as_of, as_json)
    cfg = _config(config, as_json)
    chosen = _entities(entity, as_json)
    churn_models = _churn_models(chosen, cfg, churn_model, models, as_json)
    try:
        with progress_bar("flags") as update:
            summary = flags_job(
                settings,
                as_of=when,
                entities=chosen,
                config=cfg,
                output=output,
                limit=limit,
                progress=lambda m: update(m, None),
                churn_models=churn_models,
            )
    except (FileNotFoundError, ValueError, LookupError) as exc:
        fail(as_json, cli_message(exc).strip("'\""))

    def render(c: Console) -> None:
        c.print(f"flags as of {summary.as_of.isoformat()} (horizon {summary.horizon_days} days)")
        for word, e in summary.entities.items():
            c.print(
                f"  {word}s open: {e.open:,}; at risk: {e.at_risk:,}; with any flag: {e.flagged:,}; "
                f"{e.churn_model}"
            )
            c.print(f"    by flag: {e.by_flag}")
            for flag, why in e.skipped_flags.items():
                c.print(f"    not evaluated: {flag} ({why})")
        if summary.top:
            c.print("[bold]Top flags[/bold]")
        for r in summary.top:  # one block per flag: evidence and action read whole at 80 columns
            c.print(f"  {r['entity']} [bold]{escape(str(r['id']))}[/bold]: {r['flag']} ({r['severity']})")
            c.print(f"    evidence: {escape(str(r['evidence']))}")
            c.print(f"    do: {escape(str(r['suggested_action']))}")
        if summary.output is not None:
            c.print(f"  all {summary.rows:,} flags: {summary.output}")

    emit(as_json, summary.to_dict(), render)


@backtest_app.command("flags")
def backtest_flags(
    ctx: typer.Context,
    date_from: Annotated[str, typer.Option("--from", help="First as_of date (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last as_of date (YYYY-MM-DD).")],
    entity: EntityOpt = "deal",
    target: Annotated[
        str | None,
        typer.Option(help="lost (lost / disqualified) or churn (also gone silent); default: config."),
    ] = None,
    config: FlagsConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Precision, recall, F1 and lift of the flags against actual losses in the next H days.

    Beside the fixed "no activity" rule at the same flag rate and p_churn at the same rate (a
    churn model trained only on what was known at --from). Logged to MLflow (flags_backtest).
    """
    from forecast.flags.job import ENTITY_WORD, backtest_job

    settings = context_settings(ctx)
    start = parse_date(date_from, "--from", as_json)
    end = parse_date(date_to, "--to", as_json)
    if target is not None and target not in ("lost", "churn"):
        fail(as_json, f"--target {target!r} must be lost or churn")
    cfg = _config(config, as_json)
    try:
        with progress_bar("backtest flags") as update:
            summary = backtest_job(
                settings,
                date_from=start,
                date_to=end,
                entities=_entities(entity, as_json),
                config=cfg,
                target=target,
                progress=lambda m: update(m, None),
            )
    except (FileNotFoundError, ValueError, LookupError) as exc:
        fail(as_json, cli_message(exc).strip("'\""))

    def render(c: Console) -> None:
        c.print(
            f"flags backtest {summary.date_from.isoformat()[:10]} .. {summary.date_to.isoformat()[:10]}, "
            f"target {summary.target} within {summary.horizon_days} days (MLflow run {summary.run_id})"
        )
        for backtest in summary.results:
            word, result = ENTITY_WORD[backtest.entity], backtest.as_dict()  # the tables as records
            table = Table(
                "method",
                "flag rate",
                "precision",
                "recall",
                "F1",
                "lift",
                title=f"{word}s ({result['as_of_dates']} dates)",
            )
            for m in result["methods"]:
                table.add_row(
                    m["method"], *(_fmt(m.get(k)) for k in ("flag_rate", "precision", "recall", "f1", "lift"))
                )
            c.print(table)
            flags_table = Table("flag", "severity", "flag rate", "precision", "recall", "lift")
            for f in result["per_flag"]:
                flags_table.add_row(
                    f["flag"],
                    f["severity"],
                    *(_fmt(f.get(k)) for k in ("flag_rate", "precision", "recall", "lift")),
                )
            c.print(flags_table)
            c.print(f"  p_churn ECE: {result['p_churn_ece']}")
            for note in result["notes"]:
                c.print(f"  note: {note}")

    emit(as_json, summary.to_dict(), render)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"
