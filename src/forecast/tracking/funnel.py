"""Funnel metrics (docs/tracking.md, 4): open pipeline, losses, win rate, cycle, velocity, growth.

``pipeline_velocity`` = open opportunities × win rate × average won deal size / mean cycle length
(days): revenue the open pipeline produces per day at the period's rates.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from forecast.tracking.common import (
    Row,
    add_rate,
    amount_sum,
    check_grouping,
    memo,
    narrow,
    per_group,
    subset,
    truth,
)
from forecast.tracking.data import GROUPINGS, TrackingData, days, whole_history
from forecast.tracking.periods import Period, month_starts
from forecast.tracking.stats import NAN, rate_ratio_test, safe_div

DAYS_PER_MONTH = 365.25 / 12


def open_at(opps: pd.DataFrame, when: pd.Timestamp) -> pd.DataFrame:
    """Deals open at ``when``: created before it and not closed before it."""
    return opps[(opps["created_at"] < when) & ~(opps["closed_at"] < when)]


def stage_win_rates(data: TrackingData, before: pd.Timestamp) -> dict[str, float]:
    """Historical win rate from each open stage: won / closed among deals that reached it.

    Uses deals closed before ``before``. Without stage history, every stage gets the overall rate.
    """
    opps = data.opportunities
    closed = opps[opps["closed_at"] < before]
    overall = safe_div(float((closed["outcome"] == "won").sum()), float(len(closed)))
    if not data.has_stage_history or whole_history(data, "stage_win_rates").empty:
        return dict.fromkeys(data.pipeline.open_stages, overall)
    pairs = _stage_deals(data)
    if pairs is None:
        hist = data.stage_history[data.stage_history["opportunity_id"].isin(closed["opportunity_id"])]
        won = set(closed.loc[closed["outcome"] == "won", "opportunity_id"])
        rates: dict[str, float] = {}
        for stage in data.pipeline.open_stages:
            reached = set(hist.loc[hist["stage"] == stage, "opportunity_id"])
            rates[stage] = safe_div(float(len(reached & won)), float(len(reached))) if reached else overall
        return rates
    stage_at, deal_at, stages = pairs
    is_closed = truth(opps["closed_at"] < before)
    is_won = is_closed & truth(opps["outcome"] == "won")
    reached_n = np.bincount(stage_at[is_closed[deal_at]], minlength=len(stages))
    won_n = np.bincount(stage_at[is_won[deal_at]], minlength=len(stages))
    code = {stage: i for i, stage in enumerate(stages)}
    rates = {}
    for stage in data.pipeline.open_stages:
        i = code.get(stage)
        n_reached = int(reached_n[i]) if i is not None else 0
        rates[stage] = safe_div(float(won_n[i]), float(n_reached)) if i is not None and n_reached else overall
    return rates


def _stage_deals(data: TrackingData) -> tuple[np.ndarray, np.ndarray, list[Any]] | None:
    """Each distinct (stage, deal) of the stage history: the stage's code, the deal's position.

    Kept per stage history and deals (the frames must not change): a cut-off's win rates by stage
    are then counts of the closed deals among them. ``None`` where the deals' ids are not a key
    (missing or repeated ids), which the sets of :func:`stage_win_rates` handle.
    """
    hist, opps = data.stage_history, data.opportunities
    held: tuple[pd.DataFrame, tuple[np.ndarray, np.ndarray, list[Any]] | None] = memo(
        hist, "distinct stages and deals", lambda: (opps, _distinct_stage_deals(hist, opps))
    )
    return held[1] if held[0] is opps else _distinct_stage_deals(hist, opps)


def _distinct_stage_deals(
    hist: pd.DataFrame, opps: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, list[Any]] | None:
    """:func:`_stage_deals`, computed."""
    ids = pd.Index(opps["opportunity_id"])
    if ids.hasnans or not ids.is_unique:
        return None
    deal_at = ids.get_indexer(hist["opportunity_id"])
    stage_at, stages = pd.factorize(hist["stage"])
    keep = (deal_at >= 0) & (stage_at >= 0)
    key = np.unique(stage_at[keep].astype(np.int64) * len(ids) + deal_at[keep])
    return (key // len(ids)).astype(np.intp), (key % len(ids)).astype(np.intp), list(stages)


def funnel(
    data: TrackingData,
    period: Period,
    by: str = "rep",
    only: Collection[str] | None = None,
    *,
    weights: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Funnel metrics per group for one period.

    Args:
        data: The tracking data.
        period: The period; open pipeline is measured at its end (or at as-of if earlier).
        by: Any grouping.
        only: Only these groups' rows and ``(all)`` (:func:`~forecast.tracking.common.per_group`).
        weights: Each open stage's historical win rate at the cutoff (:func:`stage_win_rates`;
            ``None``: computed from ``data``, which then holds every deal and stage change).

    Returns:
        One row per group plus ``(all)``.
    """
    check_grouping("funnel", by, GROUPINGS)
    opps = data.opportunities
    cutoff = min(period.end, data.as_of)
    prev = period.previous()
    weights = stage_win_rates(data, cutoff) if weights is None else weights
    read = (by, "amount", "stage", "outcome", "created_at", "closed_at")  # the columns a group's row reads
    open_now = narrow(open_at(opps, cutoff), *read)
    created = narrow(opps[period.contains(opps["created_at"])], by)
    closed = narrow(opps[period.contains(opps["closed_at"])], *read)
    closed_prev = narrow(opps[prev.contains(opps["closed_at"])], *read)
    elapsed = max((cutoff - period.start) / pd.Timedelta(days=1), 0.0)

    def compute(group: str) -> Row:
        row: Row = {}
        o = subset(open_now, by, group)
        row["open_opportunities"] = len(o)
        row["open_value"] = amount_sum(o)
        stage_p = o["stage"].map(weights).astype(float)
        row["weighted_pipeline"] = float(
            (pd.to_numeric(o["amount"], errors="coerce").fillna(0) * stage_p).sum()
        )
        row["new_opportunities"] = len(subset(created, by, group))
        d = subset(closed, by, group)
        won = d[d["outcome"] == "won"]
        lost = d[d["outcome"] == "lost"]
        row["won"], row["lost"] = len(won), len(lost)
        row["won_value"] = amount_sum(won)
        row["lost_value"] = amount_sum(lost)
        row["lost_per_day"] = safe_div(len(lost), elapsed)
        row["lost_per_week"] = safe_div(len(lost) * 7, elapsed)
        row["lost_per_month"] = safe_div(len(lost) * DAYS_PER_MONTH, elapsed)
        add_rate(row, "win_rate", len(won), len(won) + len(lost))
        row["avg_deal_size"] = (
            float(won["amount"].mean()) if len(won) and won["amount"].notna().any() else NAN
        )
        cycle = days(won["closed_at"] - won["created_at"])
        row["cycle_days"] = float(cycle.mean()) if len(cycle) else NAN
        row["cycle_days_median"] = float(cycle.median()) if len(cycle) else NAN
        row["cycle_days_n"] = len(cycle)
        velocity = row["open_opportunities"] * row["win_rate"] * row["avg_deal_size"]
        row["pipeline_velocity"] = safe_div(velocity, row["cycle_days"]) if row["cycle_days"] > 0 else NAN
        p = subset(closed_prev, by, group)
        won_prev = p[p["outcome"] == "won"]
        row["won_prev"] = len(won_prev)
        row["won_value_prev"] = amount_sum(won_prev)
        row["growth"] = safe_div(row["won_value"] - row["won_value_prev"], row["won_value_prev"])
        row["growth_p_value"] = rate_ratio_test(len(won), period.days, len(won_prev), prev.days)
        return row

    return per_group(data, by, [open_now, created, closed], compute, only=only)


def monthly(data: TrackingData, period: Period, months: int = 12) -> pd.DataFrame:
    """Team totals per month for the ``months`` months ending with the period, with m/m growth."""
    opps = data.opportunities
    end = min(period.end, data.as_of)
    starts = month_starts(end - pd.DateOffset(months=months), end)[-months:]
    rows = []
    for start in starts:
        stop = min(start + pd.offsets.MonthBegin(1), end)
        p = Period(start, stop, "month", start.strftime("%Y-%m"))
        closed = opps[p.contains(opps["closed_at"])]
        won = closed[closed["outcome"] == "won"]
        row: Row = {
            "month": p.label,
            "complete": bool(stop == start + pd.offsets.MonthBegin(1)),
            "new_opportunities": int(p.contains(opps["created_at"]).sum()),
            "won": len(won),
            "lost": int((closed["outcome"] == "lost").sum()),
            "won_value": amount_sum(won),
        }
        add_rate(row, "win_rate", len(won), len(closed))
        rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty:
        prev = out["won_value"].shift(1)
        out["growth"] = [safe_div(v - p, p) for v, p in zip(out["won_value"], prev, strict=True)]
    return out


def loss_reasons(data: TrackingData, period: Period) -> pd.DataFrame:
    """Lost deals by reason in the period and the period before."""
    opps = data.opportunities
    lost = opps[opps["outcome"] == "lost"]
    prev = period.previous()
    now = lost[period.contains(lost["closed_at"])]["loss_reason"].fillna("(not recorded)").value_counts()
    before = lost[prev.contains(lost["closed_at"])]["loss_reason"].fillna("(not recorded)").value_counts()
    out = pd.concat({"lost": now, "lost_prev": before}, axis=1).fillna(0).astype(int)
    out.index.name = "loss_reason"
    return out.sort_values(["lost", "lost_prev"], ascending=False).reset_index()
