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
    key_runs,
    memo,
    per_group,
)
from forecast.tracking.data import ALL_LABEL, TrackingData
from forecast.tracking.periods import Period
from forecast.tracking.stats import NAN, mean_interval

GROUPINGS = ("rep", "team", "manager", "region", "source", "channel")
MEETING_TYPES = ("meeting", "demo")
MEETING_FAILED = ("cancelled", "declined", "no_show")
BRIEF_LEFT_OUT = (
    "cold_called_leads",
    "cold_call_conversion",
    "cold_call_opportunities",
    "call_hours",
    "avg_call_minutes",
    "selling_hours",
    "won_value_per_selling_hour",
)
"""The columns (and their rates' ``_n``, ``_lo``, ``_hi``) a brief table leaves out."""


def performance(
    data: TrackingData,
    period: Period,
    by: str = "rep",
    only: Collection[str] | None = None,
    *,
    brief: bool = False,
) -> pd.DataFrame:
    """Activity comparison per group for one period.

    Args:
        data: The tracking data.
        period: The period.
        by: rep, team, manager, region, source or channel (activities on leads have no product).
        only: Only these groups' rows and ``(all)`` (:func:`~forecast.tracking.common.per_group`).
        brief: The counts of activities and the deals' figures alone (:data:`BRIEF_LEFT_OUT`:
            not the cold calls' conversions, the calls' hours and lengths or the selling time, the
            costly part at a quarter of a large CRM): the same values as the whole table's, for
            a comparison of headline figures with another period.

    Returns:
        One row per group plus ``(all)``; rates come with ``_n``, ``_lo`` and ``_hi`` columns.
    """
    check_grouping("performance", by, GROUPINGS, "activities on leads carry no product")
    opps = data.opportunities
    created = opps[period.contains(opps["created_at"])]
    closed = opps[period.contains(opps["closed_at"])]
    period_acts = _period_activities(data.activities, period, by)
    figures = period_acts.activity.figures(period_acts.codes, period_acts.groups, timed=not brief)
    cold = None if brief else _cold_call_conversions(period_acts, conversions(data.leads))
    created_rows, closed_rows = (group_rows(f, by) for f in (created, closed))
    created_amount, closed_amount = amounts(created), amounts(closed)
    closed_won = (closed["outcome"] == "won").to_numpy(dtype=bool, na_value=False)
    closed_lost = (closed["outcome"] == "lost").to_numpy(dtype=bool, na_value=False)

    def compute(group: str) -> Row:
        c, d = created_rows(group), closed_rows(group)
        won = d[closed_won[d]]
        deals = DealFigures(
            new_opportunities=len(c),
            value_created=amount_at(created_amount, c),
            won=len(won),
            won_value=amount_at(closed_amount, won),
            lost=int(closed_lost[d].sum()),
        )
        return performance_row(figures(group), None if cold is None else cold.get(group, (0, 0)), deals)

    return per_group(data, by, [period_acts.groups_seen, created, closed], compute, only=only)


@dataclass(frozen=True)
class DealFigures:
    """One group's deals in the period: created (and their value), won (and their value), lost."""

    new_opportunities: int
    value_created: float
    won: int
    won_value: float
    lost: int


def performance_row(counted: ActivityFigures, cold: tuple[int, int] | None, deals: DealFigures) -> Row:
    """One group's row of the report from its activity figures, cold calls' conversions and deals.

    Args:
        counted: The group's activity figures (without durations: a brief row).
        cold: Its leads cold-called and how many of them converted after (``None``: a brief row).
        deals: Its deals' figures.
    """
    row = counted.row(cold)
    row["new_opportunities"] = deals.new_opportunities
    row["value_created"] = deals.value_created
    row["won"] = deals.won
    row["won_value"] = deals.won_value
    row["lost"] = deals.lost
    add_rate(row, "win_rate", deals.won, deals.won + deals.lost)
    if counted.selling_seconds is None:
        return row
    row["selling_hours"] = counted.selling_seconds / 3600
    row["won_value_per_selling_hour"] = (
        row["won_value"] / row["selling_hours"] if row["selling_hours"] > 0 else NAN
    )
    return row


def conversions(leads: pd.DataFrame) -> pd.Series:
    """Each lead's conversion time by lead id (``NaT``: never), once per leads frame (do not change it).

    Every grouping and period of the report reads the same one (an index of a million leads on a
    large CRM takes a second).
    """

    def compute() -> pd.Series:
        times = leads.set_index("lead_id")["converted_at"]
        return times[~times.index.duplicated()]  # a lead id given twice: its first row's

    return memo(leads, "conversion times by lead", compute)


@dataclass(frozen=True)
class _PeriodActivities:
    """The period's done activities as the report reads them.

    Attributes:
        activity: Their figures' columns.
        codes: Each one's group, a position in ``groups`` (-1: none, where the frame has no ``by``).
        groups: The groups' labels (``by`` as text).
        cold_leads: The lead id of each cold call among them, in their order.
        cold_times: The time of each of those cold calls.
        groups_seen: A frame whose ``by`` column holds the groups among them.
    """

    activity: _Activities
    codes: np.ndarray
    groups: np.ndarray
    cold_leads: pd.Series
    cold_times: np.ndarray
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
        if by in done.columns:
            codes, texts = text_codes(done[by])
        else:
            codes, texts = np.full(len(done), -1, dtype=np.int8), np.array([], dtype=object)
        cold = done.loc[activity.cold]
        return _PeriodActivities(
            activity, codes, texts, cold["lead_id"], cold["occurred_at"].to_numpy(), done
        )
    rows = index.rows[index.within(period.start, period.end)]
    columns: _Columns = memo(acts, "performance columns", lambda: _Columns.of(acts))
    activity = _Activities.at(columns, rows)
    codes, texts = coded_texts(acts, by)
    at = codes[rows]
    seen = pd.DataFrame({by: texts[np.flatnonzero(np.bincount(at, minlength=len(texts)))]})
    cold = rows[activity.cold]
    leads, times = acts["lead_id"].iloc[cold], acts["occurred_at"].iloc[cold].to_numpy()
    return _PeriodActivities(activity, at, texts, leads, times, seen)


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
    wanted = np.array([text in values for text in texts], dtype=bool)
    return wanted[codes[rows]]


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

    def figures(
        self, codes: np.ndarray, groups: np.ndarray, timed: bool = True
    ) -> Callable[[str], ActivityFigures]:
        """Each group's figures, by label (``(all)``'s too, and a group without activities in it).

        Args:
            codes: Each activity's group, a position in ``groups`` (-1: none).
            groups: The groups' labels.
            timed: Whether to add up the durations too (the calls' hours and lengths, the
                selling time); without them, the counts alone.

        Counts are tallied for every group at once; each sum of durations and each mean adds a
        group's values in their order, as a filter of the group's rows does.
        """
        n = len(groups)
        grouped = codes >= 0
        at = codes[grouped]
        email_opened = self.outbound_email & self.opened_known
        email_replied = self.outbound_email & self.replied_known
        masks = {
            "calls": self.outbound_call,
            "cold_calls": self.cold,
            "emails_sent": self.outbound_email,
            "opened_n": email_opened,
            "opened": email_opened & self.opened,
            "replied_n": email_replied,
            "replied": email_replied & self.replied,
            "sms_sent": self.sms,
            **{f"held_{o}": mask for o, mask in self.meeting_outcomes.items()},
        }
        counts = {name: np.bincount(at[mask[grouped]], minlength=n).tolist() for name, mask in masks.items()}
        all_counts = {name: int(mask.sum()) for name, mask in masks.items()}
        group_counts = [{name: values[k] for name, values in counts.items()} for k in range(n)]
        if not timed:
            by_count = {str(g): ActivityFigures(group_counts[k]) for k, g in enumerate(groups)}
            by_count[ALL_LABEL] = ActivityFigures(all_counts)
            no_count = ActivityFigures(dict.fromkeys(masks, 0))
            return lambda group: by_count.get(group, no_count)
        split = _Split.of(codes, n)
        call_seconds = split.segments(self.call_or_zero, self.call)
        minutes = split.segments(self.connected_minutes, self.call)
        selling = split.segments(self.duration_or_zero)
        by_label = {
            str(label): ActivityFigures(
                counts=group_counts[k],
                call_seconds=float(call_seconds[k].sum()),
                minutes=mean_interval(minutes[k]),
                selling_seconds=float(selling[k].sum()),
            )
            for k, label in enumerate(groups)
        }
        by_label[ALL_LABEL] = ActivityFigures(
            counts=all_counts,
            call_seconds=float(self.call_or_zero[self.call].sum()),
            minutes=mean_interval(self.connected_minutes[self.call]),
            selling_seconds=float(self.duration_or_zero.sum()),
        )
        empty = np.zeros(0)
        none = ActivityFigures(
            counts=dict.fromkeys(masks, 0),
            call_seconds=float(empty.sum()),
            minutes=mean_interval(empty),
            selling_seconds=float(empty.sum()),
        )
        return lambda group: by_label.get(group, none)


@dataclass(frozen=True)
class _Split:
    """Rows ordered by their code (``0 … n - 1``; -1 first, in no group), each code's in row order."""

    order: np.ndarray
    codes: np.ndarray
    n: int

    @classmethod
    def of(cls, codes: np.ndarray, n: int) -> _Split:
        """The split of ``codes`` (sorted once, for every column read through it)."""
        if n < 2**15:  # numpy sorts 16-bit integers by radix: a quarter's million rows in milliseconds
            codes = codes.astype(np.int16, copy=False)
        return cls(np.argsort(codes, kind="stable"), codes, n)

    def segments(self, values: np.ndarray, mask: np.ndarray | None = None) -> list[np.ndarray]:
        """Each code's ``values`` (of the rows where ``mask`` holds), in row order: slices of one copy."""
        order = self.order if mask is None else self.order[mask[self.order]]
        bounds = np.searchsorted(self.codes[order], np.arange(self.n + 1)).tolist()
        ordered = values[order]
        return [ordered[bounds[k] : bounds[k + 1]] for k in range(self.n)]


@dataclass(frozen=True)
class ActivityFigures:
    """One group's activity figures before they are written as a row.

    Attributes:
        counts: The counted activities by name (``calls``, ``emails_sent``, ``held_completed``, …).
        call_seconds: The calls' seconds (``None``: not added up).
        minutes: The connected calls' mean minutes, its count and interval (:func:`mean_interval`).
        selling_seconds: Every activity's seconds.
    """

    counts: dict[str, int]
    call_seconds: float | None = None
    minutes: tuple[float, int, float, float] | None = None
    selling_seconds: float | None = None

    def row(self, cold: tuple[int, int] | None) -> Row:
        """The activity figures as the report's columns, with the cold calls' leads and conversions.

        Without ``cold``, or without the durations, their columns are left out (a brief table).
        """
        c = self.counts
        out: Row = {"calls": c["calls"], "cold_calls": c["cold_calls"]}
        if cold is not None:
            cold_called_leads, conversions = cold
            out["cold_called_leads"] = cold_called_leads
            add_rate(out, "cold_call_conversion", conversions, cold_called_leads)
            out["cold_call_opportunities"] = conversions
        if self.call_seconds is not None and self.minutes is not None:
            out["call_hours"] = self.call_seconds / 3600
            mean, n, lo, hi = self.minutes
            out.update(
                avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
            )
        out["emails_sent"] = c["emails_sent"]
        out["emails_opened"] = c["opened"]
        add_rate(out, "open_rate", c["opened"], c["opened_n"])
        out["email_replies"] = c["replied"]
        add_rate(out, "reply_rate", c["replied"], c["replied_n"])
        out["sms_sent"] = c["sms_sent"]
        held = {o: c[f"held_{o}"] for o in ("completed", *MEETING_FAILED)}
        out["meetings_completed"] = held["completed"]
        for o in MEETING_FAILED:
            out[f"meetings_{o}"] = held[o]
        add_rate(out, "meeting_held_rate", held["completed"], sum(held.values()))
        return out


def _cold_call_conversions(period: _PeriodActivities, converted: pd.Series) -> dict[str, tuple[int, int]]:
    """Per group: the leads cold-called in the period, and how many converted after their first one.

    A lead converted after the group's first cold call to it counts (``converted`` is each lead's
    conversion time, ``NaT`` when never); a cold call without a lead is not a lead cold-called.
    The first call of each lead (and of each group and lead) is found by sorting codes: no pandas
    grouping per period.
    """
    known = period.cold_leads.notna().to_numpy(dtype=bool, na_value=False)
    lead_codes, leads = pd.factorize(period.cold_leads[known])
    times = period.cold_times[known]
    groups = period.codes[period.activity.cold][known]
    converted_at = converted.reindex(leads).to_numpy()

    def first_calls(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The earliest of ``rows`` for each distinct key (keys are ``keys[rows]``)."""
        by_time = rows[np.argsort(times[rows], kind="stable")]
        order, starts = key_runs(keys[by_time])
        return by_time[order[starts]]

    def after(first: np.ndarray) -> np.ndarray:
        return np.asarray(converted_at[lead_codes[first]] > times[first], dtype=bool)

    every = first_calls(lead_codes.astype(np.int64), np.arange(len(times)))
    out = {ALL_LABEL: (len(every), int(after(every).sum()))}
    grouped = np.flatnonzero(groups >= 0)
    keys = groups.astype(np.int64) * max(len(leads), 1) + lead_codes
    first = first_calls(keys, grouped)
    n = len(period.groups)
    sizes = np.bincount(groups[first], minlength=n)
    converted_after = np.bincount(groups[first], weights=after(first), minlength=n)
    for k in np.flatnonzero(sizes):
        out[str(period.groups[k])] = (int(sizes[k]), int(converted_after[k]))
    return out
