"""Activity effectiveness across the team (docs/tracking.md, 5).

The correlation of new opportunities with calls (and with emails) is measured over *rep-weeks*:
each rep's outbound calls, outbound emails and new opportunities per ISO week, over the period or
the 26 weeks ending with it, whichever is longer (a month holds too few points). Weeks in which a
rep logged nothing and opened nothing are left out (not yet hired, away). Rep-weeks of one rep are
not independent, so read the interval as a lower bound on the uncertainty.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking import rep_week_counts as counted
from forecast.tracking.activity_index import EMAIL, ActivityIndex, activity_index, coded_texts
from forecast.tracking.common import (
    Row,
    add_rate,
    check_grouping,
    group_rows,
    memo,
    per_group,
    positions,
    split_codes,
    truth,
)
from forecast.tracking.data import ALL_LABEL, TrackingData
from forecast.tracking.periods import Period
from forecast.tracking.stats import correlation, mean_interval, rate_ratio_test, safe_div

GROUPINGS = ("team", "manager", "region", "source", "channel", "rep")
CORRELATION_WEEKS = 26


def rep_weeks(acts: pd.DataFrame, opps: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Outbound calls, outbound emails and new opportunities per rep and ISO week in ``[start, end)``."""
    a = acts[(acts["occurred_at"] >= start) & (acts["occurred_at"] < end) & acts["done"]]
    a = a[a["direction"] == "outbound"]
    o = opps[(opps["created_at"] >= start) & (opps["created_at"] < end)]

    def week(times: pd.Series) -> pd.Series:
        return (times.dt.normalize() - pd.to_timedelta(times.dt.dayofweek, unit="D")).rename("week")

    calls = a[a["type"] == "call"].groupby(["rep_id", week(a.loc[a["type"] == "call", "occurred_at"])]).size()
    emails = (
        a[a["type"] == "email"].groupby(["rep_id", week(a.loc[a["type"] == "email", "occurred_at"])]).size()
    )
    any_act = a.groupby(["rep_id", week(a["occurred_at"])]).size()
    new = o.groupby(["rep_id", week(o["created_at"])]).size()
    frame = pd.concat(
        {"calls": calls, "emails": emails, "activities": any_act, "new_opportunities": new}, axis=1
    ).fillna(0)
    return frame.reset_index()


_PERIOD_COLUMNS = ("type", "direction", "email_replied", "outcome", "duration_seconds")
"""The columns of the period's activities a group's row reads."""
_WEEK_COLUMNS = ("rep_id", "occurred_at", "type", "direction", "done")
"""The columns of the activities :func:`rep_weeks` reads."""


def _columns(frame: pd.DataFrame, by: str, needed: tuple[str, ...]) -> list[str]:
    """``needed`` and the grouping column (if ``frame`` has it: a group's rows are then none)."""
    return list(dict.fromkeys([*([by] if by in frame.columns else []), *needed]))


def _week_rows(acts: pd.DataFrame, by: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The activities :func:`rep_weeks` keeps, in their order, in the columns it reads.

    Each group's rep-weeks are computed from these, not from every column of every activity (ten
    million on a large CRM): the same rows in the same order, so the same figures.
    """
    return _taken(acts, by, _window_positions(acts, start, end))


def _groups_week_rows(
    acts: pd.DataFrame, by: str, start: pd.Timestamp, end: pd.Timestamp, only: Collection[str]
) -> pd.DataFrame:
    """:func:`_week_rows`' rows of the groups ``only`` (in their order), without taking the others."""
    kept = _window_positions(acts, start, end)
    if by in acts.columns:
        kept = kept[acts[by].take(kept).astype(str).isin(list(only)).to_numpy()]
    return _taken(acts, by, kept)


def _window_positions(acts: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
    """The positions of the done outbound activities in ``[start, end)`` (found once per frame and window)."""

    def rows() -> np.ndarray:
        times = acts["occurred_at"]
        return np.flatnonzero(
            truth(acts["done"] & (times >= start) & (times < end) & (acts["direction"] == "outbound"))
        )

    return memo(acts, f"outbound done activities in {start.isoformat()}..{end.isoformat()}", rows)


def _taken(acts: pd.DataFrame, by: str, rows: np.ndarray) -> pd.DataFrame:
    """The activities at ``rows`` in the columns :func:`rep_weeks` reads (and ``by``)."""
    columns = acts.columns.get_indexer(pd.Index(_columns(acts, by, _WEEK_COLUMNS)))
    taken: pd.DataFrame = acts.iloc[rows, columns]
    return taken


def effectiveness(
    data: TrackingData, period: Period, by: str = "team", only: Collection[str] | None = None
) -> pd.DataFrame:
    """Email reply rate, call duration, new opportunities vs the previous period and correlations.

    Each group's figures come from numpy columns at its row positions, and its rep-weeks from one
    grouped count of the whole window split by group (:class:`_RepWeeks`): the rows and order a
    per-group :func:`rep_weeks` gives, so the same figures to the bit
    (``tests/unit/test_tracking_effectiveness.py``), for thousands of reps in about a second.

    Args:
        data: The tracking data.
        period: The period.
        by: team, manager, region, source, channel (or rep).
        only: Only these groups' rows and ``(all)`` (the whole table's rows of them, in order: a
            group's rep-weeks are counted from its own rows only).

    Returns:
        One row per group plus ``(all)``.
    """
    check_grouping("effectiveness", by, GROUPINGS, "activities on leads carry no product")
    acts = data.activities
    opps = data.opportunities
    prev = period.previous()
    created = opps[period.contains(opps["created_at"])]
    created_prev = opps[prev.contains(opps["created_at"])]
    end = min(period.end, data.as_of)
    start = min(period.start, end - pd.Timedelta(weeks=CORRELATION_WEEKS))
    index = activity_index(acts)
    weeks = _coded_rep_weeks(acts, index, opps, by, start, end, only)
    if weeks is None:
        weeks = _pandas_rep_weeks(acts, opps, by, start, end, only)
    done = (
        _PeriodActs.coded(acts, index, period, by)
        if index is not None
        else _PeriodActs.taken(acts, period, by)
    )
    period_rows = done.rows
    created_rows, prev_rows = group_rows(created, by), group_rows(created_prev, by)
    outbound_email, replied_known, replied_true = done.outbound_email, done.replied_known, done.replied_true
    connected, minutes = done.connected, done.minutes

    def compute(group: str) -> Row:
        row: Row = {}
        a = period_rows(group)
        emails = a[outbound_email[a]]
        answered = replied_true[emails[replied_known[emails]]]
        add_rate(row, "reply_rate", int(answered.sum()), len(answered))
        mean, n, lo, hi = mean_interval(minutes[a[connected[a]]])
        row.update(
            avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
        )
        add_new_deals(row, (len(created_rows(group)), len(prev_rows(group))), (period, prev), weeks(group))
        return row

    return per_group(data, by, [done.groups, created], compute, only=only)


def add_new_deals(
    row: Row, new: tuple[int, int], periods: tuple[Period, Period], counts: dict[str, np.ndarray]
) -> None:
    """Put a group's new deals against the period before and their rep-weeks' correlations in ``row``.

    Args:
        row: The group's row.
        new: Its deals created in the period and in the period before.
        periods: The period and the period before.
        counts: Its rep-weeks' calls, emails and new opportunities.
    """
    (now, before), (period, prev) = new, periods
    row["new_opportunities"] = now
    row["new_opportunities_prev"] = before
    row["new_opportunities_change"] = safe_div(now - before, before)
    row["new_opportunities_p_value"] = rate_ratio_test(now, period.days, before, prev.days)
    for name in ("calls", "emails"):
        c = correlation(counts[name], counts["new_opportunities"])
        key = f"corr_new_opportunities_{name}"
        row.update(
            {key: c.r, f"{key}_n": c.n, f"{key}_lo": c.lo, f"{key}_hi": c.hi, f"{key}_p_value": c.p_value}
        )


@dataclass(frozen=True, eq=False)
class _PeriodActs:
    """The period's done activities as the report reads them: each group's rows and numpy columns.

    Attributes:
        groups: A frame whose ``by`` column holds the period's groups (none: no such column).
        rows: Each group's row positions (ascending; every row for ``(all)``).
        outbound_email: Whether each row is an outbound email.
        replied_known: Whether its reply is known.
        replied_true: Whether it was replied to.
        connected: Whether it is a completed call with a duration.
        minutes: Its minutes where connected, else NaN.
    """

    groups: pd.DataFrame
    rows: Callable[[str], np.ndarray]
    outbound_email: np.ndarray
    replied_known: np.ndarray
    replied_true: np.ndarray
    connected: np.ndarray
    minutes: np.ndarray

    @staticmethod
    def coded(acts: pd.DataFrame, index: ActivityIndex, period: Period, by: str) -> _PeriodActs:
        """From the frame's coded activities: the period a comparison of integers, the groups a split."""
        at = index.within(period.start, period.end)
        minutes, replied = index.minutes[at], index.replied[at]
        every = np.arange(len(at))
        split: dict[str, np.ndarray] = {}
        groups = pd.DataFrame()
        if by in acts.columns:
            codes, texts = coded_texts(acts, by)
            split = split_codes(codes[index.rows[at]], texts)
            groups = pd.DataFrame({by: list(split)})

        def rows(group: str) -> np.ndarray:
            return every if group == ALL_LABEL else split.get(group, _NO_ROWS)

        return _PeriodActs(
            groups=groups,
            rows=rows,
            outbound_email=(index.kinds[at] == EMAIL) & index.outbound[at],
            replied_known=replied >= 0,
            replied_true=replied == 1,
            connected=~np.isnan(minutes),
            minutes=minutes,
        )

    @staticmethod
    def taken(acts: pd.DataFrame, period: Period, by: str) -> _PeriodActs:
        """From the period's rows taken out of the frame (where the index does not apply)."""
        in_period = acts.loc[
            acts["done"] & period.contains(acts["occurred_at"]), _columns(acts, by, _PERIOD_COLUMNS)
        ]
        kind, outcome = in_period["type"], in_period["outcome"]
        replied = in_period["email_replied"]
        replied_known = replied.notna().to_numpy(dtype=bool, na_value=False)
        replied_true = np.zeros(len(replied), dtype=bool)
        replied_true[replied_known] = replied[replied_known].astype(bool).to_numpy()
        duration = in_period["duration_seconds"]
        connected = truth((kind == "call") & (outcome == "completed") & duration.notna())
        return _PeriodActs(
            groups=in_period,
            rows=group_rows(in_period, by),
            outbound_email=truth((kind == "email") & (in_period["direction"] == "outbound")),
            replied_known=replied_known,
            replied_true=replied_true,
            connected=connected,
            minutes=np.where(connected, duration.to_numpy(dtype=float, na_value=np.nan) / 60, np.nan),
        )


_NO_ROWS = np.zeros(0, dtype=np.int64)


_GROUP = "_group"


@dataclass(frozen=True, eq=False)
class _Window:
    """The rows :func:`rep_weeks` counts: the window's activities and deals, with their ISO weeks.

    Attributes:
        acts: The done outbound activities in the window (:func:`_week_rows`' rows, or
            :func:`_groups_week_rows`' for some groups; in order).
        deals: The deals created in the window.
        act_weeks: Each activity's week (:func:`_week`), found once for every count of the window.
        deal_weeks: Each deal's week.
    """

    acts: pd.DataFrame
    deals: pd.DataFrame
    act_weeks: pd.Series
    deal_weeks: pd.Series

    @staticmethod
    def of(window: pd.DataFrame, opps: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> _Window:
        """``window`` (rows :func:`_week_rows` keeps, kept as they are) and the deals of ``[start, end)``."""
        deals = opps[(opps["created_at"] >= start) & (opps["created_at"] < end)]
        return _Window(window, deals, _week(window["occurred_at"]), _week(deals["created_at"]))

    def narrowed(self, acts: np.ndarray | None, deals: np.ndarray | None) -> _Window:
        """The window with the activities and deals where the masks are true (``None``: every one)."""
        if acts is None and deals is None:
            return self
        a = slice(None) if acts is None else acts
        d = slice(None) if deals is None else deals
        return _Window(self.acts[a], self.deals[d], self.act_weeks[a], self.deal_weeks[d])


class _RepWeeks:
    """Each group's rep-weeks (:func:`rep_weeks` of its window rows and deals), from one grouped count.

    ``table`` holds every counted group's rep-weeks, in the order :func:`rep_weeks` gives them
    (sorted by rep and week within each count, counts joined in the same order), each row's group
    in ``_labels``; ``whole`` every rep's (the ``(all)`` row's).
    """

    def __init__(self, table: dict[str, np.ndarray], whole: dict[str, np.ndarray]) -> None:
        """The groups of ``table`` (no ``_labels``: no group has rep-weeks) and everyone's ``whole``."""
        self.whole = whole
        self.table = table
        labels = table.get("_labels")
        self.split = {} if labels is None else positions(pd.Series(labels))

    def __call__(self, group: str) -> dict[str, np.ndarray]:
        """The calls, emails and new opportunities of the group's rep-weeks (empty when it has none)."""
        if group == ALL_LABEL:
            return self.whole
        rows = self.split.get(group)
        if rows is None:
            return {name: np.zeros(0) for name in _COUNTED}
        return {name: self.table[name][rows] for name in _COUNTED}


def _coded_rep_weeks(
    acts: pd.DataFrame,
    index: ActivityIndex | None,
    opps: pd.DataFrame,
    by: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    only: Collection[str] | None,
) -> _RepWeeks | None:
    """The rep-weeks of ``[start, end)`` from the activities' coded index (``None``: it does not apply).

    The same rows in the same order as :func:`_pandas_rep_weeks`
    (:mod:`~forecast.tracking.rep_week_counts`), without taking the window's rows out of the frame:
    a new window costs a comparison of integers and a count.
    """
    if index is None or not index.reps_are_text:
        return None
    deals = opps[(opps["created_at"] >= start) & (opps["created_at"] < end)]
    deal_weeks = _week(deals["created_at"]).to_numpy()
    everyone = counted.deals_side(deals, deal_weeks, None)
    if deal_weeks.dtype != np.int64 or everyone is None:
        return None

    def whole() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        counts = counted.group_counts(counted.activities_side(acts, index, start, end, None), everyone)
        return opps, {name: counts[name] for name in _COUNTED}

    held = memo(acts, f"coded rep-weeks of everyone in {start.isoformat()}..{end.isoformat()}", whole)
    a = counted.activities_side(acts, index, start, end, by) if by in acts.columns else None
    d = counted.deals_side(deals, deal_weeks, by) if by in deals.columns else None
    table = counted.wanted(counted.group_counts(a, d), only)
    return _RepWeeks(table, held[1] if held[0] is opps else whole()[1])


def _pandas_rep_weeks(
    acts: pd.DataFrame,
    opps: pd.DataFrame,
    by: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    only: Collection[str] | None,
) -> _RepWeeks:
    """The rep-weeks of ``[start, end)`` counted in pandas over the window's rows.

    The window's activities and the deals created in it are counted per group, rep and ISO week at
    once. With ``only``, the groups' table counts those groups' rows only: a group's counts and
    their order are the same (each count is per group, rep and week, sorted, a group's rows kept
    in order).
    """
    window = _Window.of(
        _week_rows(acts, by, start, end) if only is None else _groups_week_rows(acts, by, start, end, only),
        opps,
        start,
        end,
    )

    def everyone() -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        whole = window if only is None else _Window.of(_week_rows(acts, by, start, end), opps, start, end)
        return opps, _counts(whole, None, None)

    # every rep's rep-weeks (the (all) row's): the same for every grouping
    held = memo(acts, f"rep-weeks of everyone in {start.isoformat()}..{end.isoformat()}", everyone)
    whole = held[1] if held[0] is opps else everyone()[1]
    acts_w, deals = window.acts, window.deals
    a_label = acts_w[by].astype(str).rename(_GROUP) if by in acts_w.columns else None
    o_label = deals[by].astype(str).rename(_GROUP) if by in deals.columns else None
    if a_label is None and o_label is None:
        return _RepWeeks({}, whole)
    # a grouping one side lacks counts none of its rows; with ``only``, the groups asked for:
    # their rows (in order) are all their counts read
    wanted = None if only is None else list(only)
    keep_a = _kept(a_label, wanted, len(acts_w))
    keep_o = _kept(o_label, wanted, len(deals))
    empty = pd.Series([], dtype=str, name=_GROUP)
    table = _counts(
        window.narrowed(keep_a, keep_o),
        empty if a_label is None else a_label if keep_a is None else a_label[keep_a],
        empty if o_label is None else o_label if keep_o is None else o_label[keep_o],
    )
    return _RepWeeks(table, whole)


def _kept(labels: pd.Series | None, wanted: list[str] | None, n: int) -> np.ndarray | None:
    """Which of ``n`` rows a group's count reads: none without labels, ``None`` (all) without ``wanted``."""
    if labels is None:
        return np.zeros(n, dtype=bool)
    return None if wanted is None else labels.isin(wanted).to_numpy()


_COUNTED = ("calls", "emails", "new_opportunities")


def _week(times: pd.Series) -> pd.Series:
    """The ISO week of each time, as :func:`rep_weeks` groups it (its Monday, as a number of days).

    The days since 1970-01-01 (a Thursday) of the Monday at or before each time: the same groups
    in the same order as :func:`rep_weeks`' Monday timestamps. Times with a time zone (none in the
    warehouse) or missing ones take that function's own arithmetic.
    """
    values = times.to_numpy()
    if values.dtype.kind != "M" or np.isnat(values).any():  # (a missing time is no week: not grouped)
        return (times.dt.normalize() - pd.to_timedelta(times.dt.dayofweek, unit="D")).rename("week")
    days = values.astype("datetime64[D]").astype(np.int64)
    return pd.Series(days - (days + 3) % 7, index=times.index, name="week")


def _counts(window: _Window, a_label: pd.Series | None, o_label: pd.Series | None) -> dict[str, np.ndarray]:
    """:func:`rep_weeks`'s counts of the window's activities and of the deals created in it.

    With labels, the counts are per label too, and ``_labels`` says each row's.
    """
    a, o = window.acts, window.deals
    week_a, week_o = window.act_weeks, window.deal_weeks
    keys_a = [a["rep_id"], week_a] if a_label is None else [a_label, a["rep_id"], week_a]
    keys_o = [o["rep_id"], week_o] if o_label is None else [o_label, o["rep_id"], week_o]
    kind = a["type"]

    def counted(mask: pd.Series) -> pd.Series:
        return a[mask].groupby([k[mask] for k in keys_a]).size()

    frame = pd.concat(
        {
            "calls": counted(kind == "call"),
            "emails": counted(kind == "email"),
            "activities": a.groupby(keys_a).size(),
            "new_opportunities": o.groupby(keys_o).size(),
        },
        axis=1,
    ).fillna(0)
    out = {name: frame[name].to_numpy() for name in _COUNTED}
    if a_label is not None:
        out["_labels"] = frame.index.get_level_values(0).to_numpy()
    return out
