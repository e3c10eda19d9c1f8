"""Sales goals (docs/tracking.md, 3): goals against bookings, and what is still needed.

A quota row covers the days ``period_start`` to ``period_end`` inclusive; a goal for any period is
the quota pro-rated by calendar days of overlap. Bookings are the amounts of deals won (by
``closed_at``). Goals of a team come from its team rows, else from the sum of its reps' rows; the
``(all)`` row from company rows, else team rows, else rep rows; managers and regions sum their
reps' rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking.common import (
    Row,
    amount_at,
    amounts,
    check_grouping,
    group_rows,
    memo,
    per_group,
    subset,
    truth,
)
from forecast.tracking.data import ALL_LABEL, TrackingData, days, group_values
from forecast.tracking.periods import Period
from forecast.tracking.stats import NAN, mean_skipna, safe_div

GROUPINGS = ("rep", "team", "manager", "region")
REFERENCE_DAYS = 365


def _quota_intervals(quotas: pd.DataFrame) -> pd.DataFrame:
    q = quotas.copy()
    q["start"] = pd.to_datetime(q["period_start"]).dt.normalize()
    q["stop"] = pd.to_datetime(q["period_end"]).dt.normalize() + pd.Timedelta(days=1)
    q["amount"] = pd.to_numeric(q["amount"], errors="coerce")
    q["owner_type"] = q["owner_type"].astype(str)
    q["owner_id"] = q["owner_id"].astype(str)
    return q[q["stop"] > q["start"]]


def goal_between(rows: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """Pro-rated goal of quota rows over ``[start, end)`` (``nan`` when no row overlaps).

    :func:`goals_between` for one range.
    """
    return goals_between(rows, ((start, end),))[0]


def goals_between(rows: pd.DataFrame, bounds: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> list[float]:
    """:func:`goal_between` of quota rows over each range ``[start, end)``, the rows read once.

    In numpy (a per-rep table asks it thousands of times of a few rows each, the revenue forecast
    for every group and period at once); the same arithmetic as :func:`_goal_between_frame`, so the
    same value to the last bit, and that function itself for rows of other types or a range not
    exact in the rows' time unit.
    """
    if rows.empty:
        return [NAN] * len(bounds)
    shares = _shares(rows, bounds)
    out = []
    for i, (start, end) in enumerate(bounds):
        column = shares[i] if shares is not None else None
        if column is None:  # rows of other types, or a range not exact in the rows' unit
            out.append(_goal_between_frame(rows, start, end))
        elif column is _EMPTY or not column[0].any():
            out.append(NAN)
        else:
            covering, value = column
            out.append(float(value[covering].sum()))
    return out


_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _goal_between_frame(rows: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> float:
    """:func:`goal_between` in pandas (rows of other types)."""
    if rows.empty or end <= start:
        return NAN
    overlap_start = rows["start"].where(rows["start"] > start, start)
    overlap_end = rows["stop"].where(rows["stop"] < end, end)
    overlap = days(overlap_end - overlap_start).clip(lower=0)
    length = days(rows["stop"] - rows["start"])
    covering = overlap > 0
    if not covering.any():
        return NAN
    return float((rows["amount"] * overlap / length)[covering].sum())


def quota_rows(data: TrackingData, by: str, group: str) -> pd.DataFrame:
    """The quota rows that make up the goal of one group (in the quotas table's order).

    Kept per quotas, reps, grouping and group (the forecast asks each group's once a period, for
    thousands of reps): the frame must not be changed.
    """
    kept = _kept(data, by)
    if kept is None:  # the same quotas with other reps: computed, not kept
        return _quota_rows(data, by, group)
    rows = kept[1].get(group)
    if rows is None:
        rows = kept[1][group] = _intervals(data).iloc[quota_positions(data, by, group)]
    return rows


def quota_positions(data: TrackingData, by: str, group: str) -> np.ndarray:
    """The positions (ascending) of :func:`quota_rows` among the quotas' intervals (:func:`_intervals`)."""
    kept = _kept(data, by)
    if kept is None:
        return _quota_positions(data, by, group)
    at = kept[0].get(group)
    if at is None:
        at = kept[0][group] = _quota_positions(data, by, group)
    return at


def _kept(data: TrackingData, by: str) -> tuple[dict[str, np.ndarray], dict[str, pd.DataFrame]] | None:
    """The positions and rows of each group asked so far (``None`` when the quotas met other reps)."""
    held: tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, pd.DataFrame]] = memo(
        data.quotas, f"quota positions and rows by {by}", lambda: (data.reps, {}, {})
    )
    return (held[1], held[2]) if held[0] is data.reps else None


def _intervals(data: TrackingData) -> pd.DataFrame:
    """The quotas as intervals ``[start, stop)`` with a numeric amount (those of no length left out)."""
    return memo(data.quotas, "quota intervals", lambda: _owners(_quota_intervals(data.quotas)))[0]


def _quota_rows(data: TrackingData, by: str, group: str) -> pd.DataFrame:
    """:func:`quota_rows`, computed."""
    return _intervals(data).iloc[_quota_positions(data, by, group)]


def _quota_positions(data: TrackingData, by: str, group: str) -> np.ndarray:
    """:func:`quota_positions`, computed."""
    q, owners = memo(data.quotas, "quota intervals", lambda: _owners(_quota_intervals(data.quotas)))
    reps = data.reps
    if group == ALL_LABEL:
        for owner in ("company", "team", "rep"):
            at = np.flatnonzero((q["owner_type"] == owner).to_numpy())
            if len(at):
                return at
        return _NONE
    if by == "rep":
        return owners.get(("rep", group), _NONE)
    if by == "team":
        team_rows = owners.get(("team", group), _NONE)
        if len(team_rows):
            return team_rows
    members = memo(reps, f"members by {by}", lambda: reps.groupby(by)["rep_id"].agg(set).to_dict())
    found = [owners[("rep", m)] for m in members.get(group, ()) if ("rep", m) in owners]
    return np.sort(np.concatenate(found)) if found else _NONE


_NONE = np.array([], dtype=np.intp)


def goal_table(
    data: TrackingData, by: str, groups: Sequence[str], bounds: Sequence[tuple[pd.Timestamp, pd.Timestamp]]
) -> np.ndarray:
    """:func:`goal_between` of each group's :func:`quota_rows` over each range, shape (groups, ranges).

    Each row's share of each range is computed once for all the quotas; a group's goal then adds
    its rows' shares, in their order, as :func:`goals_between` adds them: the same value to the
    last bit, for thousands of reps at once. Rows of other types, or a range not exact in the rows'
    time unit, take :func:`goals_between` (:func:`_goal_between_frame`) group by group.
    """
    q = _intervals(data)
    at = [quota_positions(data, by, g) for g in groups]
    out = np.full((len(groups), len(bounds)), NAN)
    shares = _shares(q, bounds)
    for j, (start, end) in enumerate(bounds):
        column = shares[j] if shares is not None else None
        for i, rows in enumerate(at):
            if not len(rows):
                continue  # no quota row: no goal
            if column is None:
                out[i, j] = goals_between(q.iloc[rows], ((start, end),))[0]
            elif column is not _EMPTY:
                covering, value = column
                mine = covering[rows]
                if mine.any():
                    out[i, j] = float(value[rows][mine].sum())
    return out


_EMPTY: tuple[np.ndarray, np.ndarray] = (np.zeros(0, dtype=bool), np.zeros(0))
"""A range that ends before it starts: no goal."""


def _shares(
    q: pd.DataFrame, bounds: Sequence[tuple[pd.Timestamp, pd.Timestamp]]
) -> list[tuple[np.ndarray, np.ndarray] | None] | None:
    """Per range, which quota rows overlap it and each row's share of it (a missing amount as 0).

    :func:`goals_between`'s arithmetic, row by row; ``None`` for the whole table where it takes
    :func:`_goal_between_frame`, and for a range not exact in the rows' time unit.
    """
    begins, stops = q["start"].to_numpy(), q["stop"].to_numpy()
    if begins.dtype.kind != "M" or stops.dtype.kind != "M" or q["amount"].dtype != np.float64:
        return None
    common = np.promote_types(begins.dtype, stops.dtype)
    unit = np.datetime_data(common)[0]
    if unit not in _PER_SECOND:
        return None
    per_day = _PER_SECOND[unit]
    begins, stops = begins.astype(common), stops.astype(common)
    length = (stops - begins).astype(np.int64) / per_day / 86400.0
    amount = q["amount"].to_numpy()
    out: list[tuple[np.ndarray, np.ndarray] | None] = []
    for start, end in bounds:
        if end <= start:
            out.append(_EMPTY)
            continue
        lo = pd.Timestamp(start).to_datetime64().astype(common)
        hi = pd.Timestamp(end).to_datetime64().astype(common)
        if pd.Timestamp(lo) != start or pd.Timestamp(hi) != end:
            out.append(None)
            continue
        overlap = (np.minimum(stops, hi) - np.maximum(begins, lo)).astype(np.int64) / per_day / 86400.0
        overlap = np.where(overlap < 0, 0, overlap)
        values = amount * overlap / length
        out.append((overlap > 0, np.where(np.isnan(values), 0.0, values)))
    return out


def _owners(q: pd.DataFrame) -> tuple[pd.DataFrame, dict[tuple[str, str], np.ndarray]]:
    """The quota intervals and, by (owner type, owner id), their row positions (ascending)."""
    found = q.groupby(["owner_type", "owner_id"], sort=False).indices
    out: dict[tuple[str, str], np.ndarray] = {}
    for key, rows in found.items():
        pair: tuple[object, object] = key  # type: ignore[assignment]  # grouped by two columns
        out[(str(pair[0]), str(pair[1]))] = np.sort(np.asarray(rows))
    return q, out


def goals(data: TrackingData, period: Period, by: str = "rep") -> pd.DataFrame:
    """Goals, bookings and what is still needed, per group.

    Args:
        data: The tracking data.
        period: The period.
        by: rep, team, manager or region (quotas belong to people, not to sources or products).

    Returns:
        One row per group plus ``(all)``. A group without a goal for the period has ``goal`` nan.
    """
    check_grouping("goals", by, GROUPINGS, "quotas belong to reps, teams and the company")
    opps = data.opportunities
    when = GoalTimes.of(period, data.as_of)
    won = opps[(opps["outcome"] == "won") & opps["closed_at"].notna()]
    in_period = won[period.contains(won["closed_at"])]
    ytd = won[(won["closed_at"] >= when.year_start) & (won["closed_at"] < when.cutoff)]
    ref_closed = opps[(opps["closed_at"] >= when.ref_start) & (opps["closed_at"] < when.cutoff)]
    leads = data.leads
    ref_leads = leads[(leads["created_at"] >= when.ref_start) & (leads["created_at"] < when.cutoff)]
    won_rows, ytd_rows = group_rows(in_period, by), group_rows(ytd, by)
    won_amount, ytd_amount = amounts(in_period), amounts(ytd)
    rates_of = _ReferenceRates(ref_closed, ref_leads, by)
    team_rates = rates_of(ALL_LABEL)
    groups = [*group_values(data, by, in_period), ALL_LABEL]  # per_group's groups
    table = dict(zip(groups, goal_table(data, by, groups, when.bounds(period)).tolist(), strict=True))

    def compute(group: str) -> Row:
        w = won_rows(group)
        won_value, won_ytd = amount_at(won_amount, w), amount_at(ytd_amount, ytd_rows(group))
        return goal_row(table[group], period, (len(w), won_value, won_ytd), rates_of(group), team_rates, when)

    return per_group(data, by, [in_period], compute)


@dataclass(frozen=True)
class GoalTimes:
    """The times a goals table reads: the cutoff, the year's start, the reference year's, the days left."""

    cutoff: pd.Timestamp
    year_start: pd.Timestamp
    ref_start: pd.Timestamp
    days_left: float

    @classmethod
    def of(cls, period: Period, as_of: pd.Timestamp) -> GoalTimes:
        """The times of ``period`` as of ``as_of``."""
        cutoff = min(period.end, as_of)
        return cls(
            cutoff=cutoff,
            year_start=(period.end - pd.Timedelta(days=1)).normalize().replace(month=1, day=1),
            ref_start=cutoff - pd.Timedelta(days=REFERENCE_DAYS),
            days_left=max((period.end - max(as_of, period.start)) / pd.Timedelta(days=1), 0.0),
        )

    def bounds(self, period: Period) -> tuple[tuple[pd.Timestamp, pd.Timestamp], ...]:
        """The ranges of the goals: the period, its last month, its year, the year to the cutoff."""
        month_end = (period.end - pd.Timedelta(days=1)).normalize()
        month_start = month_end.replace(day=1)
        return (
            (period.start, period.end),
            (month_start, month_start + pd.offsets.MonthBegin(1)),
            (self.year_start, self.year_start + pd.DateOffset(years=1)),
            (self.year_start, self.cutoff),
        )


def goal_row(
    goals: Sequence[float],
    period: Period,
    won: tuple[int, float, float],
    rates: dict[str, float],
    team_rates: dict[str, float],
    when: GoalTimes,
) -> Row:
    """One group's row of the goals table.

    Args:
        goals: Its goal over each of :meth:`GoalTimes.bounds` (``nan``: no quota row).
        period: The period.
        won: Its deals won in the period, their value, and the value won in the year to the cutoff.
        rates: Its reference year's mean won amount, win rate and lead conversion (:class:`_ReferenceRates`).
        team_rates: The same of everyone, for a rate the group lacks.
        when: The table's times.
    """
    goal, monthly, year, ytd = goals
    row: Row = {}
    row["goal"] = goal
    row["daily_goal"] = safe_div(goal, period.days)
    row["weekly_goal"] = row["daily_goal"] * 7
    row["monthly_goal"] = monthly
    row["year_goal"] = year
    row["won_deals"], row["won_value"], won_ytd = won
    row["attainment"] = safe_div(row["won_value"], goal) if goal > 0 else NAN
    row["remaining"] = max(goal - row["won_value"], 0.0) if goal == goal else NAN
    row["won_ytd"] = won_ytd
    row["ytd_goal"] = ytd
    row["ytd_attainment"] = safe_div(row["won_ytd"], row["ytd_goal"]) if row["ytd_goal"] > 0 else NAN
    rates = dict(rates)
    for key, value in rates.items():
        if value != value or value <= 0:
            rates[key] = team_rates[key]
    row.update({f"ref_{k}": v for k, v in rates.items()})
    row["deals_needed"] = _ceil(safe_div(row["remaining"], rates["avg_won_amount"]))
    row["opportunities_needed"] = _ceil(safe_div(row["deals_needed"], rates["win_rate"]))
    row["prospects_needed"] = _ceil(safe_div(row["opportunities_needed"], rates["lead_conversion"]))
    row["days_left"] = when.days_left
    row["needed_per_day"] = safe_div(row["remaining"], when.days_left)
    return row


class _ReferenceRates:
    """A group's rates of the reference year: mean won amount, win rate and lead conversion.

    Read from numpy columns at the group's row positions; the mean won amount is pandas' mean of
    the same amounts in the same order, so each rate is the one a per-group filter gives.
    """

    def __init__(self, closed: pd.DataFrame, leads: pd.DataFrame, by: str) -> None:
        self.closed_rows, self.lead_rows = group_rows(closed, by), group_rows(leads, by)
        self.won = (closed["outcome"] == "won").to_numpy(dtype=bool, na_value=False)
        self.amount = closed["amount"].to_numpy()
        self.converted = leads["converted_at"].notna().to_numpy(dtype=bool, na_value=False)

    def __call__(self, group: str) -> dict[str, float]:
        closed, leads = self.closed_rows(group), self.lead_rows(group)
        won = self.amount[closed[self.won[closed]]]
        return {
            "avg_won_amount": mean_skipna(won),
            "win_rate": safe_div(len(won), len(closed)),
            "lead_conversion": safe_div(float(self.converted[leads].sum()), len(leads)),
        }


def _ceil(value: float) -> float:
    return float(math.ceil(value - 1e-9)) if value == value else NAN


def daily(data: TrackingData, period: Period, by: str = "rep", only: str | None = None) -> pd.DataFrame:
    """Daily and cumulative bookings against the pro-rated goal, per group and day of the period.

    ``only``: the rows of that group alone (the same rows as the whole table's for it; a rep among
    thousands need not compute the others).
    """
    check_grouping("goals", by, GROUPINGS, "quotas belong to reps, teams and the company")
    opps = data.opportunities
    cutoff = min(period.end, data.as_of)
    won = opps[(opps["outcome"] == "won") & period.contains(opps["closed_at"])]
    won = won[[c for c in (by, "amount") if c in won.columns]].assign(day=won["closed_at"].dt.normalize())
    days = pd.date_range(period.start, cutoff - pd.Timedelta(microseconds=1), freq="D")
    groups = [*group_values(data, by, won), ALL_LABEL]
    chosen = groups if only is None else [g for g in groups if g == only]
    if not chosen or len(days) == 0:  # no day (a period starting at the as of): no row for any group
        return _daily_frames(data, by, won, days, chosen[:1])
    won_value = _won_by_day(won, by, days, chosen)
    goal = daily_goal_table(data, by, chosen, days)
    cumulative_won, cumulative_goal = np.cumsum(won_value, axis=1), np.cumsum(goal, axis=1)
    return pd.DataFrame(
        {
            by: np.repeat(np.array(chosen, dtype=object), len(days)),
            "day": np.tile(days.date, len(chosen)),
            "won_value": won_value.ravel(),
            "daily_goal": goal.ravel(),
            "cumulative_won": cumulative_won.ravel(),
            "cumulative_goal": cumulative_goal.ravel(),
            "cumulative_gap": (cumulative_goal - cumulative_won).ravel(),
        }
    )


def _won_by_day(won: pd.DataFrame, by: str, days: pd.DatetimeIndex, groups: list[str]) -> np.ndarray:
    """Won value per group (rows, ``(all)`` included) and day (columns); 0 where nothing was won.

    One grouped sum over the won deals; each cell adds the same amounts in the same order as a sum
    over that group's deals alone, so to the same value.
    """
    amounts = pd.to_numeric(won["amount"], errors="coerce").fillna(0)
    out = np.zeros((len(groups), len(days)))
    if by in won.columns:
        cells = amounts.groupby([won[by].astype(str).rename("group"), won["day"]]).sum().unstack("day")
        cells = cells.reindex(index=groups, columns=days)
        out = cells.fillna(0.0).to_numpy(dtype=float)  # a cell no deal reached: nothing won
    if ALL_LABEL in groups:
        whole = amounts.groupby(won["day"]).sum().reindex(days, fill_value=0.0)
        out[groups.index(ALL_LABEL)] = whole.to_numpy(dtype=float)
    return out


def _daily_frames(
    data: TrackingData, by: str, won: pd.DataFrame, days: pd.DatetimeIndex, groups: list[str]
) -> pd.DataFrame:
    """:func:`daily` one group at a time (a table without days, or without groups)."""
    frames = []
    for group in groups:
        w = subset(won, by, group)
        sums = pd.to_numeric(w["amount"], errors="coerce").fillna(0).groupby(w["day"]).sum()
        values = sums.reindex(days, fill_value=0.0).to_numpy()
        goal_day = daily_goals(quota_rows(data, by, group), days)
        frame = pd.DataFrame({by: group, "day": days.date, "won_value": values, "daily_goal": goal_day})
        frame["cumulative_won"] = frame["won_value"].cumsum()
        frame["cumulative_goal"] = frame["daily_goal"].cumsum(skipna=False)
        frame["cumulative_gap"] = frame["cumulative_goal"] - frame["cumulative_won"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def daily_goal_table(
    data: TrackingData, by: str, groups: Sequence[str], days: pd.DatetimeIndex
) -> np.ndarray:
    """:func:`daily_goals` of each group's :func:`quota_rows`, shape (groups, days), for every group at once.

    Each quota row's share of each day is computed once (:func:`_shares`, for the rows that overlap
    the days); a
    group's goal of a day is then its one covering row's share, or, where several rows cover the
    day, the sum of their shares in their order, as :func:`goals_between` adds them: the same
    value to the last bit. Rows or days of other types take :func:`daily_goals` group by group.
    """
    q = _intervals(data)
    at = [quota_positions(data, by, g) for g in groups]
    out = np.full((len(groups), len(days)), NAN)
    one = pd.Timedelta(days=1)
    shares, near = None, _NONE
    if len(days) and days.tz is None and q["start"].dtype.kind == "M" and q["stop"].dtype.kind == "M":
        near = np.flatnonzero(truth((q["stop"] > days[0]) & (q["start"] < days[-1] + one)))
        shares = _shares(q.iloc[near], [(d, d + one) for d in days])  # the others cover no day
    if shares is None or any(s is None for s in shares):  # rows or days of other types
        for i, rows in enumerate(at):
            out[i] = daily_goals(q.iloc[rows], days)
        return out
    covering = np.stack([s[0] for s in shares if s is not None])  # (days, rows near them)
    value = np.stack([s[1] for s in shares if s is not None])
    local = np.full(len(q), -1, dtype=np.intp)
    local[near] = np.arange(len(near))
    for i, rows in enumerate(at):
        mine = local[rows]
        mine = mine[mine >= 0]  # the group's rows that overlap a day, in their order
        if not len(mine):
            continue
        cov, val = covering[:, mine], value[:, mine]
        count = cov.sum(axis=1)
        single = count == 1
        out[i, single] = np.where(cov[single], val[single], 0.0).sum(axis=1)  # x + 0.0 is x
        for d in np.flatnonzero(count > 1):
            out[i, d] = float(val[d][cov[d]].sum())
    return out


def daily_goals(rows: pd.DataFrame, days: pd.DatetimeIndex) -> list[float]:
    """The goal of each day of ``days`` (midnights), as :func:`goal_between` over ``[day, day + 1)``.

    Days on which every quota row overlaps by the same time (most of a month's days) share one
    :func:`goal_between` call, so the values are its own to the bit; a period of 90 days over a
    monthly quota asks it about three times instead of 90.
    """
    one = pd.Timedelta(days=1)
    begins, stops = rows["start"].to_numpy(), rows["stop"].to_numpy()
    if rows.empty or len(days) == 0 or begins.dtype.kind != "M" or stops.dtype.kind != "M":
        return [goal_between(rows, d, d + one) for d in days]
    lo = days.to_numpy()
    if lo.dtype.kind != "M":  # zoned days: one call each
        return [goal_between(rows, d, d + one) for d in days]
    unit = np.promote_types(np.promote_types(begins.dtype, stops.dtype), lo.dtype)
    b, e, lo = begins.astype(unit), stops.astype(unit), lo.astype(unit)
    hi = lo + np.timedelta64(1, "D").astype(f"m8[{np.datetime_data(unit)[0]}]")
    overlap = np.minimum(e[None, :], hi[:, None]) - np.maximum(b[None, :], lo[:, None])
    pattern = np.maximum(overlap.astype(np.int64), 0)  # a day's overlap with each row (none: 0)
    known: dict[bytes, float] = {}
    out = []
    for i, day in enumerate(days):
        key = pattern[i].tobytes()
        if key not in known:
            known[key] = goal_between(rows, day, day + one)
        out.append(known[key])
    return out
