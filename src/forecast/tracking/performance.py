"""Sales performance per rep (docs/tracking.md, 1): the activity comparison report.

Counts activities that happened in the period (``outcome = scheduled`` is a plan, not an activity
done, and is left out) and the deals created, won and lost in it.

The counts are taken from numpy columns at each group's row positions (each frame is split by
group once), not from a pandas filter per group and metric: a CRM with thousands of reps gets its
table in about a second. Each figure is the one a per-group filter gives, to the last digit
(``tests/unit/test_tracking_performance.py`` keeps that filter as its reference).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking.activity_index import built_activity_index, coded_texts, done_within, text_codes
from forecast.tracking.common import (
    Row,
    add_rate,
    amount_at,
    amounts,
    check_grouping,
    group_rows,
    memo,
    per_group,
    rows_of_groups,
    split_codes,
)
from forecast.tracking.data import ALL_LABEL, TrackingData
from forecast.tracking.periods import Period
from forecast.tracking.stats import NAN, mean_interval

GROUPINGS = ("rep", "team", "manager", "region", "source", "channel")
MEETING_TYPES = ("meeting", "demo")
MEETING_FAILED = ("cancelled", "declined", "no_show")


def performance(
    data: TrackingData, period: Period, by: str = "rep", only: Collection[str] | None = None
) -> pd.DataFrame:
    """Activity comparison per group for one period.

    Args:
        data: The tracking data.
        period: The period.
        by: rep, team, manager, region, source or channel (activities on leads have no product).
        only: Only these groups' rows and ``(all)`` (:func:`~forecast.tracking.common.per_group`).

    Returns:
        One row per group plus ``(all)``; rates come with ``_n``, ``_lo`` and ``_hi`` columns.
    """
    check_grouping("performance", by, GROUPINGS, "activities on leads carry no product")
    opps = data.opportunities
    created = opps[period.contains(opps["created_at"])]
    closed = opps[period.contains(opps["closed_at"])]
    converted = conversions(data.leads)
    period_acts = _period_activities(data.activities, period, by)
    activity, acts = period_acts.activity, period_acts.groups_seen
    cold = _cold_call_conversions(period_acts.cold_calls, by, converted)
    act_rows = period_acts.rows
    created_rows, closed_rows = (group_rows(f, by) for f in (created, closed))
    created_amount, closed_amount = amounts(created), amounts(closed)
    closed_won = (closed["outcome"] == "won").to_numpy(dtype=bool, na_value=False)
    closed_lost = (closed["outcome"] == "lost").to_numpy(dtype=bool, na_value=False)

    def compute(group: str) -> Row:
        rows = act_rows(group)
        row = activity.row(rows, *cold.get(group, (0, 0)))
        c = created_rows(group)
        row["new_opportunities"] = len(c)
        row["value_created"] = amount_at(created_amount, c)
        d = closed_rows(group)
        won = d[closed_won[d]]
        row["won"] = len(won)
        row["won_value"] = amount_at(closed_amount, won)
        row["lost"] = int(closed_lost[d].sum())
        add_rate(row, "win_rate", len(won), len(won) + row["lost"])
        row["selling_hours"] = float(activity.duration_or_zero[rows].sum()) / 3600
        row["won_value_per_selling_hour"] = (
            row["won_value"] / row["selling_hours"] if row["selling_hours"] > 0 else NAN
        )
        return row

    return per_group(data, by, [acts, created, closed], compute, only=only)


def conversions(leads: pd.DataFrame) -> pd.Series:
    """Each lead's conversion time by lead id (``NaT``: never), once per leads frame (do not change it).

    Every grouping and period of the report reads the same one (an index of a million leads on a
    large CRM takes a second).
    """
    return memo(leads, "conversion times by lead", lambda: leads.set_index("lead_id")["converted_at"])


@dataclass(frozen=True)
class _PeriodActivities:
    """The period's done activities as the report reads them.

    Attributes:
        activity: Their figures' columns.
        rows: A group's rows among them (ascending; every row for ``(all)``).
        cold_calls: The cold calls among them (their frame rows, in order).
        groups_seen: A frame whose ``by`` column holds the groups among them.
    """

    activity: _Activities
    rows: Callable[[str], np.ndarray]
    cold_calls: pd.DataFrame
    groups_seen: pd.DataFrame


def _period_activities(acts: pd.DataFrame, period: Period, by: str) -> _PeriodActivities:
    """The done activities of ``period``: from the coded activities where they are built, else the frame's.

    With the activity index built (:func:`~forecast.tracking.activity_index.built_activity_index`,
    by the effectiveness report or the dashboard's warm-up), the period is a comparison of
    integers and its columns the frame's, coded once (:class:`_Columns`): no text is compared and
    no frame taken for another period. The same rows, groups and figures either way.
    """
    index = built_activity_index(acts)
    if index is None or by not in acts.columns:
        done = done_within(acts, period.start, period.end)
        activity = _Activities.at(_Columns.of(done), slice(None))
        return _PeriodActivities(activity, group_rows(done, by), done.loc[activity.cold], done)
    rows = index.rows[index.within(period.start, period.end)]
    columns: _Columns = memo(acts, "performance columns", lambda: _Columns.of(acts))
    activity = _Activities.at(columns, rows)
    codes, texts = coded_texts(acts, by)
    at = codes[rows]
    rows_of = rows_of_groups(split_codes(at, texts), len(rows))
    seen = pd.DataFrame({by: texts[np.unique(at)]})
    return _PeriodActivities(activity, rows_of, acts.iloc[rows[activity.cold]], seen)


@dataclass(frozen=True, eq=False)
class _Columns:
    """What the report reads of each activity: type, outcome and direction as codes of their text.

    ``opened`` and ``replied``: 1 true, 0 false, -1 unknown; ``cold`` the prepared flag; ``duration``
    the seconds (``nan`` where missing); ``not_inbound`` pandas' ``direction != "inbound"`` (true for
    a missing direction of plain objects, false for a missing one of pandas' text type). Kept once
    per activities frame where the index is built.
    """

    kinds: tuple[np.ndarray, np.ndarray]
    outcomes: tuple[np.ndarray, np.ndarray]
    directions: tuple[np.ndarray, np.ndarray]
    not_inbound: np.ndarray
    opened: np.ndarray
    replied: np.ndarray
    cold: np.ndarray
    duration: np.ndarray

    @classmethod
    def of(cls, acts: pd.DataFrame) -> _Columns:
        """The columns of ``acts``."""
        return cls(
            kinds=_small(text_codes(acts["type"])),
            outcomes=_small(text_codes(acts["outcome"])),
            directions=_small(text_codes(acts["direction"])),
            not_inbound=(acts["direction"] != "inbound").to_numpy(dtype=bool, na_value=False),
            opened=_known_true(acts["email_opened"]),
            replied=_known_true(acts["email_replied"]),
            cold=acts["cold"].to_numpy(dtype=bool, na_value=False),
            duration=acts["duration_seconds"].to_numpy(dtype=float, na_value=np.nan),
        )


def _small(coded: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The codes in 8 bits where the texts are few (a type, outcome or direction: ten million rows, 10 MB)."""
    codes, texts = coded
    return (codes.astype(np.int8), texts) if len(texts) < 127 else coded


def _is(coded: tuple[np.ndarray, np.ndarray], rows: np.ndarray | slice, *values: str) -> np.ndarray:
    """Whether each of ``rows`` has one of ``values`` as its text (``column == value`` in pandas)."""
    codes, texts = coded
    wanted = [i for i, text in enumerate(texts) if text in values]
    return np.isin(codes[rows], wanted)


def _known_true(values: pd.Series) -> np.ndarray:
    """Per row: 1 where the value is known and true, 0 where known and false, -1 where missing."""
    known = values.notna().to_numpy(dtype=bool, na_value=False)
    out = np.full(len(values), -1, dtype=np.int8)
    out[known] = values[known].astype(bool).to_numpy()
    return out


@dataclass(frozen=True)
class _Activities:
    """The period's done activities as the numpy columns the report counts."""

    outbound_call: np.ndarray
    cold: np.ndarray
    call: np.ndarray
    call_or_zero: np.ndarray
    """A call's duration in seconds (0 when missing, and for anything but a call)."""
    connected_minutes: np.ndarray
    """A completed call's minutes (``nan`` for every other row)."""
    outbound_email: np.ndarray
    opened_known: np.ndarray
    opened: np.ndarray
    replied_known: np.ndarray
    replied: np.ndarray
    sms: np.ndarray
    meeting_outcomes: dict[str, np.ndarray]
    """Per outcome (completed and :data:`MEETING_FAILED`), whether the row is a meeting with it."""
    duration_or_zero: np.ndarray

    @classmethod
    def at(cls, columns: _Columns, rows: np.ndarray | slice) -> _Activities:
        """The activities at ``rows`` of the coded columns."""
        kind, outcome, direction = columns.kinds, columns.outcomes, columns.directions
        duration = columns.duration[rows]
        call = _is(kind, rows, "call")
        completed = _is(outcome, rows, "completed")
        connected = call & completed & ~np.isnan(duration)
        opened, replied = columns.opened[rows], columns.replied[rows]
        meeting = _is(kind, rows, *MEETING_TYPES)
        return cls(
            outbound_call=call & _is(direction, rows, "outbound"),
            cold=columns.cold[rows],
            call=call,
            call_or_zero=np.where(call & ~np.isnan(duration), duration, 0.0),
            connected_minutes=np.where(connected, duration / 60, np.nan),
            outbound_email=_is(kind, rows, "email") & _is(direction, rows, "outbound"),
            opened_known=opened >= 0,
            opened=opened == 1,
            replied_known=replied >= 0,
            replied=replied == 1,
            sms=_is(kind, rows, "sms") & columns.not_inbound[rows],
            meeting_outcomes={o: meeting & _is(outcome, rows, o) for o in ("completed", *MEETING_FAILED)},
            duration_or_zero=np.nan_to_num(duration, nan=0.0),
        )

    def row(self, rows: np.ndarray, cold_called_leads: int, conversions: int) -> Row:
        """The activity figures of the activities at ``rows`` (and their cold calls' conversions)."""
        out: Row = {"calls": int(self.outbound_call[rows].sum()), "cold_calls": int(self.cold[rows].sum())}
        out["cold_called_leads"] = cold_called_leads
        add_rate(out, "cold_call_conversion", conversions, cold_called_leads)
        out["cold_call_opportunities"] = conversions
        calls = rows[self.call[rows]]
        out["call_hours"] = float(self.call_or_zero[calls].sum()) / 3600
        mean, n, lo, hi = mean_interval(self.connected_minutes[calls])
        out.update(
            avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
        )
        emails = rows[self.outbound_email[rows]]
        out["emails_sent"] = len(emails)
        opened = self.opened[emails[self.opened_known[emails]]]
        replied = self.replied[emails[self.replied_known[emails]]]
        out["emails_opened"] = int(opened.sum())
        add_rate(out, "open_rate", int(opened.sum()), len(opened))
        out["email_replies"] = int(replied.sum())
        add_rate(out, "reply_rate", int(replied.sum()), len(replied))
        out["sms_sent"] = int(self.sms[rows].sum())
        held = {o: int(mask[rows].sum()) for o, mask in self.meeting_outcomes.items()}
        out["meetings_completed"] = held["completed"]
        for o in MEETING_FAILED:
            out[f"meetings_{o}"] = held[o]
        add_rate(out, "meeting_held_rate", held["completed"], sum(held.values()))
        return out


def _cold_call_conversions(acts: pd.DataFrame, by: str, converted: pd.Series) -> dict[str, tuple[int, int]]:
    """Per group: the leads cold-called in the period, and how many converted after their first one.

    A lead converted after the group's first cold call to it counts (``converted`` is each lead's
    conversion time, ``NaT`` when never); a cold call without a lead is not a lead cold-called.
    """
    cold = acts.loc[acts["cold"].to_numpy(dtype=bool, na_value=False) & acts["lead_id"].notna().to_numpy(), :]
    out: dict[str, tuple[int, int]] = {}
    keys: list[tuple[str, pd.Series | None]] = [(ALL_LABEL, None)]
    if by in cold.columns:
        keys.append(("", cold[by].astype(str)))
    for label, groups in keys:
        by_keys = [cold["lead_id"]] if groups is None else [groups, cold["lead_id"]]
        first = cold.groupby(by_keys, sort=False)["occurred_at"].min()
        lead = first.index if groups is None else first.index.get_level_values(1)
        after = (converted.reindex(lead).to_numpy() > first.to_numpy()).astype(int)
        if groups is None:
            out[label] = (len(first), int(after.sum()))
            continue
        counted = pd.DataFrame({"g": first.index.get_level_values(0), "after": after}).groupby("g")["after"]
        sizes, sums = counted.size(), counted.sum()
        for g in sizes.index:
            out[str(g)] = (int(sizes[g]), int(sums[g]))
    return out
