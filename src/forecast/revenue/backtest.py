"""Point-in-time backtest of the revenue forecast, beside two baselines.

At each past ``as_of`` the CRM is rebuilt as it stood then (:func:`forecast.data.as_of.crm_as_of`),
the win and close-date models are trained on that past alone (retrained every ``retrain_every``
as_of dates; a model trained earlier has seen even less), the forecast is made for the period
that starts at ``as_of``, and compared with what was actually won in it.

Baselines, on the same past:

- **stage-weighted pipeline**: each open deal's amount × the historical win rate of deals that
  reached its stage, all booked in the month of its expected close date (overdue dates in the
  first period) — what most CRMs call a forecast;
- **run rate**: the revenue won per day over the last 90 days, times the period's days.

Metrics over the backtest periods: WAPE (sum of absolute errors of the point forecast, the
median for the Monte Carlo, over the sum of actuals), bias, the pinball loss of P10 / P50 / P90
(scaled by the mean actual), and the coverage of the P10-P90 interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.as_of import crm_as_of
from forecast.data.pipeline import SalesPipeline
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.models.win_horizon import read_days
from forecast.revenue.calendar import CalendarSettings
from forecast.revenue.engine import (
    DealModels,
    HeldOutModels,
    NewDealSettings,
    ShockSettings,
    deal_group,
    forecast_with_open_deals,
    unseen_from,
)
from forecast.revenue.forecast import ALL
from forecast.tracking.periods import Period
from forecast.tracking.stats import wilson
from forecast.training.binary import train_binary
from forecast.training.datasets import resolve_horizon, snapshot_table, table_input
from forecast.training.survival import train_time_to_close

QUANTILES = (0.1, 0.5, 0.9)


def train_deal_models(
    tables: Mapping[str, pd.DataFrame],
    pipeline: SalesPipeline,
    as_of: pd.Timestamp,
    win_config: TrainingConfig,
    close_config: TrainingConfig,
) -> DealModels:
    """Train the win and close-date models on the CRM as it stood at ``as_of``."""
    past = crm_as_of(tables, as_of, pipeline)
    with frames_source(past, pipeline) as src:
        # Horizons read from the CRM as it stood at as_of (its cycle, its length), as a job would.
        win_config = resolve_horizon(src, win_config, data_end=as_of)
        close_config = resolve_horizon(src, close_config, data_end=as_of)
        h_win = win_config.snapshots.horizon_days
        h_close = close_config.snapshots.horizon_days
        win_table = snapshot_table(src, win_config, LabelConfig.both(h_win), data_end=as_of)
        close_table = (
            win_table
            if h_close == h_win and close_config.snapshots == win_config.snapshots
            else snapshot_table(src, close_config, LabelConfig.both(h_close), data_end=as_of)
        )
    win = train_binary(table_input(win_table, win_config.label), win_config)
    close = train_time_to_close(table_input(close_table, close_config.label), close_config)
    held_out = (
        HeldOutModels(win.eval_pipeline, close.eval_pipeline, unseen_from(win.splits, close.splits))
        if win.eval_pipeline is not None and close.eval_pipeline is not None
        else None
    )
    return DealModels(
        win.pipeline,
        close.pipeline,
        [float(e) for e in close_config.survival.edges],
        read_days(win.pipeline, h_win),
        {"trained_at": as_of.isoformat()},
        held_out,
        label_days=float(h_win),
    )


def stage_win_rates(tables: Mapping[str, pd.DataFrame]) -> pd.Series:
    """Historical win rate per stage: of the closed deals that were ever in a stage, the share won."""
    opps = tables["opportunities"]
    closed = opps[opps["outcome"].isin(["won", "lost"])][["opportunity_id", "outcome"]]
    history = tables.get("stage_history")
    if history is None or history.empty:
        rate = float((closed["outcome"] == "won").mean()) if len(closed) else 0.0
        return pd.Series({"__all__": rate})
    seen = history[["opportunity_id", "stage"]].drop_duplicates().merge(closed, on="opportunity_id")
    rates = (seen["outcome"] == "won").groupby(seen["stage"]).mean()
    overall = float((closed["outcome"] == "won").mean()) if len(closed) else 0.0
    return pd.concat([rates.astype(float), pd.Series({"__all__": overall})])


def stage_weighted(past: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, period: Period) -> float:
    """The stage-weighted pipeline forecast of one period (open deals only)."""
    opps = past["opportunities"]
    open_deals = opps[opps["outcome"] == "open"]
    rates = stage_win_rates(past)
    ecd = pd.to_datetime(open_deals["expected_close_date"], errors="coerce")
    ecd = ecd.where(ecd >= period.start, period.start)  # overdue: expected now
    inside = (ecd >= period.start) & (ecd < period.end)
    rate = open_deals["stage"].map(rates).fillna(rates["__all__"])
    amount = pd.to_numeric(open_deals["amount"], errors="coerce").fillna(0.0)
    return float((amount * rate)[inside].sum())


def run_rate(
    past: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, period: Period, days: float = 90
) -> float:
    """Revenue won per day over the last ``days`` days, times the period's length."""
    opps = past["opportunities"]
    closed = pd.to_datetime(opps["closed_at"])
    won = opps[(opps["outcome"] == "won") & (closed >= as_of - pd.Timedelta(days=days)) & (closed < as_of)]
    per_day = float(pd.to_numeric(won["amount"], errors="coerce").fillna(0.0).sum()) / days
    return per_day * float((period.end - period.start) / pd.Timedelta(days=1))


def actual_revenue(
    tables: Mapping[str, pd.DataFrame], period: Period, groups: pd.Series | None = None
) -> pd.Series:
    """Revenue actually won in the period (from the full history), per group and ``(all)``.

    Args:
        tables: The canonical frames.
        period: The period.
        groups: Group of each deal by opportunity_id (``None``: the total only).
    """
    opps = tables["opportunities"]
    closed = pd.to_datetime(opps["closed_at"])
    won = opps[(opps["outcome"] == "won") & (closed >= period.start) & (closed < period.end)]
    amounts = pd.to_numeric(won["amount"], errors="coerce").fillna(0.0)
    out = pd.Series({ALL: float(amounts.sum())})
    if groups is not None:
        per = amounts.groupby(won["opportunity_id"].map(groups).to_numpy()).sum()
        out = pd.concat([per.astype(float), out])
    return out


def pinball(actual: np.ndarray, forecast: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss."""
    diff = actual - forecast
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))


def backtest_metrics(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """WAPE, bias, pinball losses and coverage of the model and the baselines."""
    actual = table["actual"].to_numpy(dtype=float)
    total = float(actual.sum()) or 1.0
    scale = float(actual.mean()) or 1.0
    out: dict[str, dict[str, float]] = {}
    for name, column in (("model", "p50"), ("stage_weighted", "stage_weighted"), ("run_rate", "run_rate")):
        f = table[column].to_numpy(dtype=float)
        out[name] = {
            "wape": float(np.abs(f - actual).sum() / total),
            "bias": float((f - actual).sum() / total),
            "pinball_p50": pinball(actual, f, 0.5) / scale,
        }
    m = out["model"]
    for q in QUANTILES:
        m[f"pinball_p{int(q * 100)}"] = (
            pinball(actual, table[f"p{int(q * 100)}"].to_numpy(dtype=float), q) / scale
        )
    m["pinball_mean"] = float(np.mean([m[f"pinball_p{int(q * 100)}"] for q in QUANTILES]))
    inside = (table["p10"] <= table["actual"]) & (table["actual"] <= table["p90"])
    m.update(_coverage(inside))
    m["wape_expected"] = float(np.abs(table["expected"].to_numpy(dtype=float) - actual).sum() / total)
    return out


def _coverage(inside: pd.Series) -> dict[str, float]:
    """Share of forecasts whose P10-P90 band held the actual, with its 95% Wilson interval and n.

    A handful of periods cannot tell 100% from 80% coverage; the interval says how far apart
    those are (``coverage_p10_p90_lo``, ``_hi``, ``_n``).
    """
    rate = wilson(float(inside.sum()), float(len(inside)))
    return {
        "coverage_p10_p90": float(inside.mean()),
        "coverage_p10_p90_lo": rate.lo,
        "coverage_p10_p90_hi": rate.hi,
        "coverage_p10_p90_n": float(rate.n),
    }


def group_coverage(groups: pd.DataFrame) -> dict[str, float]:
    """Coverage of the P10-P90 interval and WAPE over every (period, group) forecast."""
    if groups.empty:
        return {}
    inside = (groups["p10"] <= groups["actual"]) & (groups["actual"] <= groups["p90"])
    total = float(groups["actual"].sum()) or 1.0
    return {
        "cells": float(len(groups)),
        **_coverage(inside),
        "wape": float((groups["p50"] - groups["actual"]).abs().sum() / total),
    }


@dataclass
class BacktestResult:
    """One row per backtest period, and the metrics."""

    table: pd.DataFrame
    metrics: dict[str, dict[str, float]]
    notes: list[str] = field(default_factory=list)
    groups: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per (period, group) forecasts and actuals when the backtest ran ``by`` a grouping."""


def backtest_revenue(
    tables: Mapping[str, pd.DataFrame],
    pipeline: SalesPipeline,
    dates: list[pd.Timestamp],
    period_of: Callable[[pd.Timestamp], Period],
    win_config: TrainingConfig,
    close_config: TrainingConfig,
    *,
    retrain_every: int = 1,
    by: str | None = None,
    new_deals: NewDealSettings | None = None,
    shock: ShockSettings | None = None,
    n_sims: int = 5_000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    calendar: CalendarSettings | None = None,
) -> BacktestResult:
    """Forecast the period starting at each date with models trained before it, and compare.

    Args:
        tables: Canonical frames (the full history; each step cuts them).
        pipeline: The sales pipeline.
        dates: The as_of dates (each forecasts ``period_of(date)``).
        period_of: The period forecast from a date.
        win_config: Training config of the win model.
        close_config: Training config of the close-date model.
        retrain_every: Retrain the models every this many dates (1: at every date).
        by: Also forecast per ``rep``, ``team`` or ``region`` (coverage per group and period).
        new_deals: Settings of the future-deals model.
        shock: How the common shocks are estimated at each as_of (``None``: defaults; the
            evidence is the models' errors on cuts before as_of, so nothing leaks).
        n_sims: Monte Carlo simulations.
        seed: Random seed.
        progress: Called with what is being done.
        calendar: How the month-of-quarter profile of wins is measured at each as_of (``None``:
            defaults; from the wins known then).
    """
    say = progress or (lambda _m: None)
    rows: list[dict[str, Any]] = []
    group_rows: list[pd.DataFrame] = []
    groups_of = deal_group(tables, by) if by is not None else None
    models: DealModels | None = None
    for i, as_of in enumerate(dates):
        if models is None or i % max(retrain_every, 1) == 0:
            say(f"training as of {as_of.date()}")
            models = train_deal_models(tables, pipeline, as_of, win_config, close_config)
        period = period_of(as_of)
        say(f"forecasting {period.label}")
        result, scored, _ = forecast_with_open_deals(
            tables,
            pipeline,
            as_of,
            models,
            [period],
            by=by,
            new_deals=new_deals,
            n_sims=n_sims,
            seed=seed + i,
            shock=shock,
            calendar=calendar,
        )
        actual = actual_revenue(tables, period, groups_of)
        row = result.table[result.table["group"] == ALL].iloc[0]
        if by is not None:
            cells = result.table[result.table["group"] != ALL][["group", "p10", "p50", "p90", "expected"]]
            cells = cells.assign(
                as_of=as_of, period=period.label, actual=cells["group"].map(actual).fillna(0.0).to_numpy()
            )
            group_rows.append(cells)
        past = crm_as_of(tables, as_of, pipeline)
        rows.append(
            {
                "as_of": as_of,
                "period": period.label,
                "models_trained_at": models.versions.get("trained_at"),
                "open_deals": len(scored),
                "actual": float(actual[ALL]),
                "expected": float(row["expected"]),
                "p10": float(row["p10"]),
                "p50": float(row["p50"]),
                "p90": float(row["p90"]),
                "from_open_deals": float(row["from_open_deals"]),
                "from_new_deals": float(row["from_new_deals"]),
                "stage_weighted": stage_weighted(past, as_of, period),
                "run_rate": run_rate(past, as_of, period),
                "win_shock_sigma": result.shock.win.sigma,
                "win_shock_cuts": result.shock.win.cuts,
                "volume_shock_sigma": result.shock.volume.sigma,
                "win_shock_centre": result.shock.centre,
                "win_level": result.shock.win_level,
                "calendar_applied": result.calendar.applied,
            }
        )
    table = pd.DataFrame(rows)
    metrics = backtest_metrics(table) if len(table) else {}
    groups = pd.concat(group_rows, ignore_index=True) if group_rows else pd.DataFrame()
    if len(groups):
        metrics[f"model_by_{by}"] = group_coverage(groups)
    return BacktestResult(table, metrics, groups=groups)
