"""The revenue forecast: open deals (win probability × close-date distribution) plus future deals.

Pure functions over frames and arrays; the models come in fitted (from the registry or from a
backtest's point-in-time training) and nothing here reads or writes files.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast.errors import InputError
from forecast.models.survival import survival_at
from forecast.revenue.calendar import FLAT, CalendarProfile, calendar_shares, period_span
from forecast.revenue.montecarlo import booking_probabilities, simulate_new_deals, simulate_open_deals
from forecast.revenue.new_deals import NewDealModel
from forecast.revenue.shock import NO_SHOCK, CommonShock, shifted
from forecast.tracking.periods import Period

ALL = "(all)"
GROUPINGS = ("rep", "team", "region")


def period_grid(as_of: pd.Timestamp, n: int, by: str) -> list[Period]:
    """The ``n`` calendar periods (week, month or quarter) from the one containing ``as_of``.

    Raises:
        InputError: For another ``by`` or ``n < 1``.
    """
    if n < 1:
        raise InputError("must be at least 1", parameter="periods")
    day = pd.Timestamp(as_of).normalize()
    if by == "week":
        start = day - pd.Timedelta(days=day.weekday())
        bounds = [start + pd.Timedelta(weeks=i) for i in range(n + 1)]
        return [
            Period(s, e, "week", f"{s.isocalendar().year}-W{s.isocalendar().week:02d}")
            for s, e in itertools.pairwise(bounds)
        ]
    if by == "month":
        start = day.replace(day=1)
        bounds = [start + pd.DateOffset(months=i) for i in range(n + 1)]
        return [Period(s, e, "month", s.strftime("%Y-%m")) for s, e in itertools.pairwise(bounds)]
    if by == "quarter":
        start = day.replace(day=1, month=3 * ((day.month - 1) // 3) + 1)
        bounds = [start + pd.DateOffset(months=3 * i) for i in range(n + 1)]
        return [
            Period(s, e, "quarter", f"{s.year}-Q{(s.month - 1) // 3 + 1}")
            for s, e in itertools.pairwise(bounds)
        ]
    raise InputError(f"{by!r}: use week, month or quarter", parameter="by")


def close_shares(
    closed_by: np.ndarray,
    edges: Sequence[float],
    as_of: pd.Timestamp,
    periods: Sequence[Period],
    horizon_days: float,
    calendar: CalendarProfile | None = None,
) -> np.ndarray:
    """P(close in period k | the deal closes within ``horizon_days``), shape (n, K).

    Args:
        closed_by: Cumulative curve at ``edges`` of the event whose timing matters: the win
            incidence P(won by t) when the close model has it, else P(closed by t) = 1 - S(t).
        edges: The curve's edges (days after as_of).
        as_of: Forecast time.
        periods: The periods.
        horizon_days: The win probability's horizon: a win's date is drawn within it.
        calendar: The CRM's month-of-quarter profile of wins (:mod:`forecast.revenue.calendar`);
            where it is applied, the timing within the horizon follows it.
    """
    if calendar is not None and calendar.applied:
        return calendar_shares(closed_by, edges, as_of, periods, horizon_days, calendar)
    f_h = survival_at(closed_by, edges, horizon_days)
    out = np.zeros((closed_by.shape[0], len(periods)))
    for k, p in enumerate(periods):
        a, b = period_span(p, as_of, horizon_days)
        out[:, k] = survival_at(closed_by, edges, b) - survival_at(closed_by, edges, a)
    return np.where(f_h[:, None] > 1e-9, out / np.maximum(f_h[:, None], 1e-9), 0.0)


@dataclass
class RevenueForecast:
    """The forecast table and the simulations behind it.

    Attributes:
        table: One row per period and group (and ``(all)``).
        sims: Simulated revenue still to book, shape (n_sims, K, G + 1) (last group = all).
        shock: The common shocks drawn (the models' own error).
        calendar: The month-of-quarter profile of wins the timing followed.
    """

    table: pd.DataFrame
    sims: np.ndarray
    shock: CommonShock = NO_SHOCK
    calendar: CalendarProfile = FLAT


def forecast_revenue(
    *,
    deals: pd.DataFrame,
    p_win: np.ndarray,
    closed_by: np.ndarray,
    edges: Sequence[float],
    horizon_days: float,
    new_deals: NewDealModel | None,
    as_of: pd.Timestamp,
    periods: Sequence[Period],
    groups: list[str],
    won_to_date: np.ndarray,
    quotas: np.ndarray | None = None,
    avg_won_amount: np.ndarray | None = None,
    n_sims: int = 10_000,
    seed: int = 0,
    shock: CommonShock | None = None,
    calendar: CalendarProfile | None = None,
) -> RevenueForecast:
    """Simulate the revenue of each period and group.

    Each simulation draws one common win shock (a logit shift of every deal's win probability,
    open and future; its centre, the deal models' steady bias where the shock has one, moves the
    open deals only) and one volume shock (a multiplier of the number of new deals) from
    ``shock``; the quantiles and P(hit quota) come from the same draws.

    Args:
        deals: Open deals at as_of with ``amount`` and ``group`` (one of ``groups``).
        p_win: Their win probabilities.
        closed_by: Their cumulative win-timing (or close-timing) curves at ``edges``.
        edges: Survival curve edges (days after as_of).
        horizon_days: Horizon of ``p_win`` (wins close within it).
        new_deals: Model of deals not created yet (``None``: open deals only).
        as_of: The forecast time.
        periods: Forecast periods.
        groups: Group names.
        won_to_date: Revenue already won in each period before as_of, shape (K, G).
        quotas: Goal of each period and group, shape (K, G + 1) (last = all; nan = none).
        avg_won_amount: Average won deal per group, shape (G + 1,), for "deals needed".
        n_sims: Simulations.
        seed: Random seed.
        shock: Spreads of the common shocks (``None``: none, deals independent).
        calendar: The CRM's month-of-quarter profile of wins (``None``: flat): it moves the open
            deals' wins within their horizon and scales the new deals' expected wins per period.
    """
    calendar = calendar or FLAT
    rng = np.random.default_rng(seed)
    shock = shock or NO_SHOCK
    win_shift, new_shift, volume = shock.draw_parts(n_sims, rng)
    g = len(groups)
    index = {name: i for i, name in enumerate(groups)}
    group_idx = deals["group"].map(index).to_numpy(dtype=int)
    amounts = pd.to_numeric(deals["amount"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    q = booking_probabilities(p_win, close_shares(closed_by, edges, as_of, periods, horizon_days, calendar))
    sims = simulate_open_deals(
        q, amounts, group_idx, g, n_sims, rng, p_win=p_win, shift=win_shift if win_shift.any() else None
    )
    from_open = sims.mean(axis=0)
    k = len(periods)
    everything = np.empty((n_sims, k, g + 1))  # the groups' simulations and their sum (the last)
    if new_deals is not None:
        # the centre is the deal models' steady bias: the new deals' win rate is their cohorts'
        new = _simulate_new(new_deals, as_of, periods, new_shift, volume, n_sims, rng, calendar)
        from_new = new.mean(axis=0)
        np.add(sims, new, out=everything[:, :, :g])
        del new
    else:
        from_new = np.zeros((k, g))
        everything[:, :, :g] = sims
    del sims
    np.sum(everything[:, :, :g], axis=2, out=everything[:, :, g])
    pipeline = np.bincount(group_idx, weights=amounts, minlength=g)
    parts = _Parts(
        won=_with_all(won_to_date),
        from_open=_with_all(from_open),
        from_new=_with_all(from_new),
        pipeline=np.append(pipeline, pipeline.sum()),
    )
    totals = np.empty((g + 1, n_sims))  # one period's totals, a row per group
    stats = []
    for ki in range(k):
        for c0 in range(0, g + 1, 64):  # transposed by blocks of groups (a cache's worth)
            c1 = min(c0 + 64, g + 1)
            np.add(everything[:, ki, c0:c1].T, parts.won[ki][c0:c1, None], out=totals[c0:c1])
        stats.append(_Stats.of(totals, quotas[ki] if quotas is not None else None))
    rows = [
        _period_row(p, name, ki, gi, stats[ki], parts, quotas, avg_won_amount)
        for ki, p in enumerate(periods)
        for gi, name in enumerate([*groups, ALL])
    ]
    return RevenueForecast(pd.DataFrame(rows), everything, shock, calendar)


def _simulate_new(
    new_deals: NewDealModel,
    as_of: pd.Timestamp,
    periods: Sequence[Period],
    win_shift: np.ndarray,
    volume: np.ndarray,
    n_sims: int,
    rng: np.random.Generator,
    calendar: CalendarProfile = FLAT,
) -> np.ndarray:
    """Simulated wins of deals not created yet, under each simulation's common shocks, shape (n_sims, K, G).

    Args:
        new_deals: Model of deals not created yet.
        as_of: The forecast time.
        periods: Forecast periods.
        win_shift: Each simulation's logit shift of the win rates.
        volume: Each simulation's log multiplier of the number of new deals.
        n_sims: Simulations.
        rng: The forecast's random generator (drawn from after the open deals).
        calendar: The month-of-quarter profile: each period's expected wins times its mean intensity.
    """
    bounds = [(p.start, p.end) for p in periods]
    pairs = new_deals.pair_weights(as_of, bounds)
    mu = new_deals.expected_wins(as_of, bounds, pairs)
    if calendar.applied:
        mu = mu * calendar.period_factors(as_of, bounds)[:, None]
    w = np.clip(new_deals.win_rate, 0.0, 1.0)
    scale = np.exp(volume)[:, None]

    def factor(gi: int) -> np.ndarray:
        """Group ``gi``'s multiplier per simulation (its column of the shocks' factor)."""
        mine = w[None, gi : gi + 1]
        return (shifted(mine, win_shift[:, None]) / np.maximum(mine, 1e-12) * scale)[:, 0]

    return simulate_new_deals(mu, new_deals.amount_pools, n_sims, rng, factor, pair_weights=pairs)


def _with_all(a: np.ndarray) -> np.ndarray:
    """A (K, G) table with the all-groups column appended, shape (K, G + 1)."""
    return np.concatenate([a, a.sum(axis=1, keepdims=True)], axis=1)


@dataclass(frozen=True)
class _Stats:
    """One period's simulated totals summed up per group (shape (G + 1,) each).

    Each group's figures are those of its own column of simulations, as numpy gives them for that
    column alone (a quantile, a mean and a share along the rows of a contiguous copy are the same
    numbers, to the last bit, as on the column).
    """

    p10: np.ndarray
    p50: np.ndarray
    p90: np.ndarray
    expected: np.ndarray
    p_hit: np.ndarray

    @classmethod
    def of(cls, totals: np.ndarray, quotas: np.ndarray | None) -> _Stats:
        """The figures of ``totals`` (G + 1, n_sims), C-contiguous, against ``quotas`` (G + 1,) or none.

        ``totals`` is used up (the quantiles partition it in place).
        """
        expected = totals.mean(axis=1)
        p_hit = np.full(totals.shape[0], math.nan)
        if quotas is not None:
            goal = np.asarray(quotas, dtype=float)
            asked = np.flatnonzero((goal == goal) & (goal > 0))
            p_hit[asked] = (totals[asked] >= goal[asked, None]).mean(axis=1)
        p10, p50, p90 = np.quantile(totals, [0.1, 0.5, 0.9], axis=1, overwrite_input=True)
        return cls(p10, p50, p90, expected, p_hit)


@dataclass(frozen=True)
class _Parts:
    """What each period and group's revenue is made of, shape (K, G + 1) (``pipeline``: (G + 1,))."""

    won: np.ndarray
    from_open: np.ndarray
    from_new: np.ndarray
    pipeline: np.ndarray


def _period_row(
    p: Period,
    name: str,
    ki: int,
    gi: int,
    stats: _Stats,
    parts: _Parts,
    quotas: np.ndarray | None,
    avg_won_amount: np.ndarray | None,
) -> dict[str, Any]:
    """One row of the forecast table: a period and group's quantiles, parts and quota odds.

    Args:
        p: The period.
        name: The group (or ``(all)``).
        ki: The period's position.
        gi: The group's position (the last: all groups).
        stats: The period's simulated totals summed up per group.
        parts: Won to date, expected from open and new deals, open pipeline.
        quotas: Goal of each period and group, or ``None``.
        avg_won_amount: Average won deal per group, or ``None``.
    """
    p10, p50, p90 = stats.p10[gi], stats.p50[gi], stats.p90[gi]
    quota = float(quotas[ki, gi]) if quotas is not None else math.nan
    expected = float(stats.expected[gi])
    won = parts.won[ki, gi]
    remaining = max(quota - won, 0.0) if quota == quota else math.nan
    avg = float(avg_won_amount[gi]) if avg_won_amount is not None else math.nan
    pipeline = parts.pipeline[gi]
    return {
        "period": p.label,
        "start": p.start,
        "end": p.end,
        "group": name,
        "won_to_date": float(won),
        "expected": expected,
        "p10": float(p10),
        "p50": float(p50),
        "p90": float(p90),
        "from_open_deals": float(parts.from_open[ki, gi]),
        "from_new_deals": float(parts.from_new[ki, gi]),
        "quota": quota,
        "p_hit_quota": float(stats.p_hit[gi]) if quota == quota and quota > 0 else math.nan,
        "gap_to_goal": quota - expected if quota == quota else math.nan,
        "open_pipeline": float(pipeline),
        "pipeline_coverage": float(pipeline / remaining) if remaining and remaining > 0 else math.nan,
        "deals_needed": float(math.ceil(remaining / avg - 1e-9))
        if remaining == remaining and avg == avg and avg > 0
        else math.nan,
        "projected_attainment": expected / quota if quota == quota and quota > 0 else math.nan,
    }
