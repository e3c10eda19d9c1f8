"""Revenue commands: ``forecast revenue`` (forecast against quota) and ``forecast backtest revenue``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from forecast.cli.main import (
    JsonOpt,
    _emit,
    _fail,
    _parse_as_of,
    _parse_date,
    _progress,
    _settings,
    app,
    as_of_option,
    backtest_app,
)
from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE

_MONEY = ("won_to_date", "expected", "p10", "p50", "p90", "quota", "gap_to_goal", "open_pipeline")


def _money(value: Any) -> str:
    return "—" if value is None or value != value else f"{value:,.0f}"


def _share(value: Any) -> str:
    return "—" if value is None or value != value else f"{100 * value:.0f}%"


@app.command()
def revenue(
    ctx: typer.Context,
    as_of: Annotated[
        str | None, as_of_option("Forecast as of this time (default: midnight after the last event).")
    ] = None,
    periods: Annotated[int, typer.Option(min=1, max=24, help="How many periods to forecast.")] = 3,
    by: Annotated[str, typer.Option(help="Period length: week, month or quarter.")] = "month",
    group: Annotated[
        str | None, typer.Option(help="Split by rep, team or region (default: the whole team).")
    ] = None,
    sims: Annotated[int, typer.Option(min=100, max=200_000, help="Monte Carlo simulations.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    output: Annotated[Path | None, typer.Option(help="Also write the table (.csv or .parquet).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Revenue per period with P10/P50/P90 against quota, from the open pipeline and future deals."""
    from forecast.io import write_frame
    from forecast.revenue.forecast import GROUPINGS
    from forecast.revenue.run import revenue_job

    if by not in ("week", "month", "quarter"):
        _fail(as_json, f"--by {by!r}: use week, month or quarter")
    if group is not None and group not in GROUPINGS:
        _fail(as_json, f"--group {group!r}: use one of {', '.join(GROUPINGS)}")
    if output is not None and output.suffix.lower() not in (".csv", ".parquet"):
        _fail(as_json, f"{output}: --output must end in .csv or .parquet")
    settings = _settings(ctx)
    when = _parse_as_of(as_of, as_json)
    try:
        with _progress("revenue") as update:
            update("forecasting", None)
            payload = revenue_job(
                settings, as_of=when, periods=periods, by=by, group=group, n_sims=sims, seed=seed
            )
    except (FileNotFoundError, LookupError, ValueError) as exc:
        _fail(as_json, str(exc).strip("'\""))
    if output is not None:
        write_frame(
            pd.DataFrame(payload["forecast"]), output, "csv" if output.suffix.lower() == ".csv" else "parquet"
        )
        payload["output"] = str(output)
    _emit(as_json, payload, lambda c: _render_revenue(c, payload))


def _render_revenue(console: Console, payload: dict[str, Any]) -> None:
    console.print(
        f"[bold]Revenue forecast[/bold] as of {payload['as_of']} ({payload['simulations']:,} simulations; "
        f"models {payload['models']}); {payload['open_deals']:,} open deals worth "
        f"{_money(payload['open_pipeline'])}"
    )
    table = Table()
    cols = ["period", "group", *_MONEY, "p_hit_quota", "pipeline_coverage", "deals_needed"]
    for c in cols:
        table.add_column(c, justify="left" if c in ("period", "group") else "right")
    for row in payload["forecast"]:
        cells = []
        for c in cols:
            v = row.get(c)
            if c in _MONEY:
                cells.append(_money(v))
            elif c == "p_hit_quota":
                cells.append(_share(v))
            elif c == "pipeline_coverage":
                cells.append("—" if v is None else f"{v:.1f}×")
            elif c == "deals_needed":
                cells.append("—" if v is None else f"{v:.0f}")
            else:
                cells.append(str(v))
        table.add_row(*cells)
    console.print(table)
    err = payload.get("model_error") or {}
    if err.get("win_shock_sigma") is not None:
        console.print(
            f"band includes the models' own error: win log-odds shared shift sd {err['win_shock_sigma']:.2f} "
            f"and new-deal volume sd {err['volume_shock_sigma']:.2f}, from {int(err['win_shock_cuts'])} "
            "past months of their errors (docs/revenue.md)"
        )
    g = payload["goals"]
    console.print(
        f"{g['period']}: goal {_money(g['goal'])} (weekly {_money(g['weekly_goal'])}, daily "
        f"{_money(g['daily_goal'])}); won so far {_money(g['won_to_date'])} against {_money(g['goal_to_date'])} "
        f"due by now (pace {_share(g['pace_to_date'])}); projected {_money(g['projected'])} = "
        f"{_share(g['projected_attainment'])} of goal; P(hit) {_share(g['p_hit_quota'])}"
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
    as_json: JsonOpt = False,
) -> None:
    """Forecast each past period with models trained before it; WAPE, bias, pinball, coverage vs baselines."""
    from forecast.cli.models import _load_config
    from forecast.revenue.job import ShockSettings
    from forecast.revenue.run import backtest_job
    from forecast.train import InsufficientDataError

    if every not in ("week", "month", "quarter"):
        _fail(as_json, f"--every {every!r}: use week, month or quarter")
    if group is not None and group not in ("rep", "team", "region"):
        _fail(as_json, f"--group {group!r}: use one of rep, team, region")
    start, end = _parse_date(date_from, "--from", as_json), _parse_date(date_to, "--to", as_json)
    if end < start:
        _fail(as_json, f"--to {end.date()} is before --from {start.date()}")
    settings = _settings(ctx)
    win = _load_config(DEAL_WIN, win_config, as_json, None)
    close = _load_config(TIME_TO_CLOSE, close_config, as_json, None)
    try:
        with _progress("backtest") as update:
            result, logged = backtest_job(
                settings,
                date_from=start,
                date_to=end,
                every=every,
                retrain_every=retrain_every,
                n_sims=sims,
                win_config=win,
                close_config=close,
                by=group,
                shock=ShockSettings(include=model_error),
                progress=lambda m: update(m, None),
            )
    except (FileNotFoundError, LookupError, InsufficientDataError, ValueError) as exc:
        _fail(as_json, str(exc).strip("'\""))
    table = result.table.assign(as_of=result.table["as_of"].dt.strftime("%Y-%m-%d"))
    payload = {"ok": True, **logged, "metrics": result.metrics, "periods": table.to_dict("records")}

    def render(c: Console) -> None:
        t = Table(title="Backtest: forecast against what was won")
        cols = ["period", "actual", "p10", "p50", "p90", "stage_weighted", "run_rate"]
        for col in cols:
            t.add_column(col, justify="left" if col == "period" else "right")
        for row in payload["periods"]:
            t.add_row(*(str(row[c]) if c == "period" else _money(row[c]) for c in cols))
        c.print(t)
        m = result.metrics
        c.print(
            f"WAPE: model {m['model']['wape']:.3f}, stage-weighted {m['stage_weighted']['wape']:.3f}, "
            f"run rate {m['run_rate']['wape']:.3f}; bias {m['model']['bias']:+.3f}; "
            f"P10-P90 coverage {m['model']['coverage_p10_p90']:.0%}; mean pinball {m['model']['pinball_mean']:.3f}"
        )
        if result.metrics.get(f"model_by_{group}"):
            g = result.metrics[f"model_by_{group}"]
            c.print(
                f"per {group}: {int(g['cells'])} forecasts, P10-P90 coverage {g['coverage_p10_p90']:.0%}, "
                f"WAPE {g['wape']:.3f}"
            )
        c.print(f"logged to MLflow experiment {logged['experiment']!r}, run {logged['run_id']}")

    _emit(as_json, payload, render)
