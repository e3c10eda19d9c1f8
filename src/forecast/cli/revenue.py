"""Revenue commands: ``forecast revenue`` (forecast against quota) and ``forecast backtest revenue``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
import typer
from rich.console import Console

from forecast.cli.main import (
    CloseModelOpt,
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
from forecast.cli.render import Column, WideOpt, compact, print_table, rate_with_interval, share
from forecast.errors import cli_message
from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE

if TYPE_CHECKING:
    from forecast.revenue.job import RevenueForecast


CalendarOpt = Annotated[
    bool,
    typer.Option(
        help="Let the wins' timing follow the CRM's month-of-quarter profile where its wins bunch "
        "(--no-calendar: timing flat in the calendar; docs/revenue.md)."
    ),
]
WinLevelOpt = Annotated[
    str,
    typer.Option(
        "--win-level",
        help="Where the open deals' win probability comes from: deal_win (the deal-win model), hazard "
        "(the time-to-close model's P(won within the horizon)), blend (their mean) or auto (the one "
        "closest to the won amount of the past months); docs/revenue.md compares them.",
    ),
]
WIN_LEVEL_CHOICES = ("deal_win", "blend", "hazard", "auto")


@app.command()
def revenue(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        as_of_option("Forecast as of this time (default: midnight after the warehouse's last day)."),
    ] = None,
    periods: Annotated[int, typer.Option(min=1, max=24, help="How many periods to forecast.")] = 3,
    by: Annotated[str, typer.Option(help="Period length: week, month or quarter.")] = "month",
    group: Annotated[
        str | None, typer.Option(help="Split by rep, team or region (default: the whole team).")
    ] = None,
    sims: Annotated[int, typer.Option(min=100, max=200_000, help="Monte Carlo simulations.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    output: Annotated[Path | None, typer.Option(help="Also write the table (.csv or .parquet).")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Win-probability model: NAME, NAME@alias or NAME:version (default: deal_win's champion, "
            "which must have been trained on this warehouse); a named one is used even if trained "
            "elsewhere (with a warning)."
        ),
    ] = None,
    close_model: CloseModelOpt = None,
    models: ModelsOpt = None,
    win_level: WinLevelOpt = "deal_win",
    calendar: CalendarOpt = True,
    wide: WideOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Revenue per period with P10/P50/P90 against quota, from the open pipeline and future deals.

    Roles of --models: deal_win, time_to_close.
    """
    from forecast.io import write_frame
    from forecast.revenue.calendar import CalendarSettings
    from forecast.revenue.forecast import GROUPINGS
    from forecast.revenue.job import revenue_job

    if by not in ("week", "month", "quarter"):
        fail(as_json, f"--by {by!r}: use week, month or quarter")
    if win_level not in WIN_LEVEL_CHOICES:
        fail(as_json, f"--win-level {win_level!r}: use one of {', '.join(WIN_LEVEL_CHOICES)}")
    if group is not None and group not in GROUPINGS:
        fail(as_json, f"--group {group!r}: use one of {', '.join(GROUPINGS)}")
    if output is not None and output.suffix.lower() not in (".csv", ".parquet"):
        fail(as_json, f"{output}: --output must end in .csv or .parquet")
    settings = context_settings(ctx)
    when = parse_as_of(as_of, as_json)
    refs = refs_or_exit(
        as_json,
        {DEAL_WIN: (DEAL_WIN, "--model"), TIME_TO_CLOSE: (TIME_TO_CLOSE, "--close-model")},
        {DEAL_WIN: model, TIME_TO_CLOSE: close_model},
        models,
    )
    try:
        with progress_bar("revenue") as update:
            update("forecasting", None)
            payload = revenue_job(
                settings,
                as_of=when,
                periods=periods,
                by=by,
                group=group,
                n_sims=sims,
                seed=seed,
                refs=refs,
                win_level=win_level,
                calendar=CalendarSettings(include=calendar),
            )
    except (FileNotFoundError, LookupError, ValueError) as exc:  # ModelBindingError is a ValueError
        fail(as_json, cli_message(exc).strip("'\""))
    if output is not None:
        write_frame(
            pd.DataFrame(payload.forecast), output, "csv" if output.suffix.lower() == ".csv" else "parquet"
        )
        payload = replace(payload, output=output)
    emit(as_json, payload.to_dict(), lambda c: render_revenue(c, payload, wide))


_REVENUE_COLUMNS = [
    Column("period", "left", label=True),
    Column("group", "left", label=True),
    Column("won so far"),
    Column("P10"),
    Column("P50"),
    Column("P90"),
    Column("quota"),
    Column("P(hit)"),
    Column("expected", essential=False),
    Column("gap to goal", essential=False),
    Column("open pipeline", essential=False),
    Column("coverage", essential=False),
    Column("deals needed", essential=False),
]
"""The revenue table: the essential columns fit 80 characters; ``--wide`` adds the rest."""


def _revenue_cells(row: dict[str, Any]) -> list[str]:
    """One forecast row as the cells of :data:`_REVENUE_COLUMNS` (compact money, whole percentages)."""
    coverage, needed = row.get("pipeline_coverage"), row.get("deals_needed")
    return [
        str(row.get("period")),
        "" if row.get("group") is None else str(row["group"]),
        *(compact(row.get(k)) for k in ("won_to_date", "p10", "p50", "p90", "quota")),
        share(row.get("p_hit_quota")),
        *(compact(row.get(k)) for k in ("expected", "gap_to_goal", "open_pipeline")),
        "—" if coverage is None else f"{coverage:.1f}×",
        "—" if needed is None else f"{needed:.0f}",
    ]


def _coverage(m: dict[str, Any]) -> str:
    """P10-P90 coverage with its 95% interval and count: ``100% [57–100] n=5``."""
    return rate_with_interval(
        m["coverage_p10_p90"],
        m.get("coverage_p10_p90_lo"),
        m.get("coverage_p10_p90_hi"),
        m.get("coverage_p10_p90_n"),
    )


def render_revenue(console: Console, payload: RevenueForecast, wide: bool = False) -> None:
    """The revenue forecast as tables: the headline period, then every period (``wide``: every column)."""
    console.print(
        f"[bold]Revenue forecast[/bold] as of {payload.as_of.isoformat()} "
        f"({payload.simulations:,} simulations; "
        f"models {payload.models}); {payload.open_deals:,} open deals worth "
        f"{compact(payload.open_pipeline)}"
    )
    print_table(console, _REVENUE_COLUMNS, [_revenue_cells(row) for row in payload.forecast], wide=wide)
    err = payload.model_error
    if err.get("win_shock_sigma") is not None:
        console.print(
            f"band includes the models' own error: win log-odds shared shift sd {err['win_shock_sigma']:.2f} "
            f"and new-deal volume sd {err['volume_shock_sigma']:.2f}, from {int(err['win_shock_cuts'])} "
            "past months of their errors (docs/revenue.md)"
        )
    if err.get("win_level") not in (None, "deal_win"):
        console.print(
            f"open deals' win level: {err['win_level']} (closest to the won amount of the past months: "
            + ", ".join(f"{k} WAPE {v:.2f}" for k, v in (err.get("win_level_errors") or {}).items())
            + ")"
        )
    from forecast.revenue.calendar import describe

    bunching = describe(payload.calendar or {})
    if bunching is not None:
        console.print(bunching)
    g = payload.goals
    console.print(
        f"{g.period}: goal {compact(g.goal)} (weekly {compact(g.weekly_goal)}, daily "
        f"{compact(g.daily_goal)}); won so far {compact(g.won_to_date)} against {compact(g.goal_to_date)} "
        f"due by now (pace {share(g.pace_to_date)}); projected {compact(g.projected)} = "
        f"{share(g.projected_attainment)} of goal; P(hit) {share(g.p_hit_quota)}"
    )


@backtest_app.command("revenue")
def backtest_revenue_command(
    ctx: typer.Context,
    date_from: Annotated[str, typer.Option("--from", help="First as_of (start of a period).")],
    date_to: Annotated[str, typer.Option("--to", help="Last as_of.")],
    every: Annotated[str, typer.Option(help="Period: week, month or quarter.")] = "month",
    retrain_every: Annotated[
        int, typer.Option(min=1, help="Retrain the models every this many periods (1: every period).")
    ] = 1,
    sims: Annotated[int, typer.Option(min=100, max=100_000, help="Monte Carlo simulations.")] = 5_000,
    group: Annotated[
        str | None, typer.Option(help="Also forecast per rep, team or region (coverage per group).")
    ] = None,
    win_config: Annotated[
        Path | None, typer.Option(help="Win-model config (default: training/deal_win.yaml).")
    ] = None,
    close_config: Annotated[
        Path | None, typer.Option(help="Close-date config (default: training/time_to_close.yaml).")
    ] = None,
    model_error: Annotated[
        bool,
        typer.Option(
            help="Widen the band with common shocks estimated from the models' own recent errors "
            "(--no-model-error: deals independent given their probabilities, the band of luck alone)."
        ),
    ] = True,
    calendar: CalendarOpt = True,
    win_level: WinLevelOpt = "deal_win",
    as_json: JsonOpt = False,
) -> None:
    """Forecast each past period with models trained before it; WAPE, bias, pinball, coverage vs baselines."""
    from forecast.cli.models import load_config
    from forecast.errors import InsufficientDataError
    from forecast.revenue.calendar import CalendarSettings
    from forecast.revenue.engine import ShockSettings
    from forecast.revenue.job import backtest_job

    if every not in ("week", "month", "quarter"):
        fail(as_json, f"--every {every!r}: use week, month or quarter")
    if group is not None and group not in ("rep", "team", "region"):
        fail(as_json, f"--group {group!r}: use one of rep, team, region")
    if win_level not in WIN_LEVEL_CHOICES:
        fail(as_json, f"--win-level {win_level!r}: use one of {', '.join(WIN_LEVEL_CHOICES)}")
    start, end = parse_date(date_from, "--from", as_json), parse_date(date_to, "--to", as_json)
    if end < start:
        fail(as_json, f"--to {end.date()} is before --from {start.date()}")
    settings = context_settings(ctx)
    win = load_config(DEAL_WIN, win_config, as_json, None)
    close = load_config(TIME_TO_CLOSE, close_config, as_json, None)
    try:
        with progress_bar("backtest") as update:
            backtest = backtest_job(
                settings,
                date_from=start,
                date_to=end,
                every=every,
                retrain_every=retrain_every,
                n_sims=sims,
                win_config=win,
                close_config=close,
                by=group,
                shock=ShockSettings(include=model_error, win_level=win_level),
                calendar=CalendarSettings(include=calendar),
                progress=lambda m: update(m, None),
            )
    except (FileNotFoundError, LookupError, InsufficientDataError, ValueError) as exc:
        fail(as_json, cli_message(exc).strip("'\""))
    result = backtest.result

    def render(c: Console) -> None:
        cols = ["period", "actual", "p10", "p50", "p90", "stage_weighted", "run_rate"]
        print_table(
            c,
            [Column("period", "left", label=True), *(Column(k) for k in cols[1:])],
            [[str(row[k]) if k == "period" else compact(row[k]) for k in cols] for row in backtest.periods()],
            "Backtest: forecast against what was won",
        )
        m = result.metrics
        c.print(
            f"WAPE: model {m['model']['wape']:.3f}, stage-weighted {m['stage_weighted']['wape']:.3f}, "
            f"run rate {m['run_rate']['wape']:.3f}; bias {m['model']['bias']:+.3f}; "
            f"P10-P90 coverage {_coverage(m['model'])}; mean pinball {m['model']['pinball_mean']:.3f}"
        )
        if result.metrics.get(f"model_by_{group}"):
            g = result.metrics[f"model_by_{group}"]
            c.print(
                f"per {group}: {int(g['cells'])} forecasts, P10-P90 coverage {_coverage(g)}, "
                f"WAPE {g['wape']:.3f}"
            )
        c.print(f"logged to MLflow experiment {backtest.experiment!r}, run {backtest.run_id}")

    emit(as_json, backtest.to_dict(), render)
