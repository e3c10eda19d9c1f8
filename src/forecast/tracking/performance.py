"""Sales performance per rep (docs/tracking.md, 1): the activity comparison report.

Counts activities that happened in the period (``outcome = scheduled`` is a plan, not an activity
done, and is left out) and the deals created, won and lost in it.

The counts are taken from numpy columns at each group's row positions (each frame is split by
group once), not from a pandas filter per group and metric: a CRM with thousands of reps gets its
table in about a second. Each figure is the one a per-group filter gives, to the last digit
(``tests/unit/test_tracking_performance.py`` keeps that filter as its reference).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking.activity_index import done_within
from forecast.tracking.common import (
    Row,
    add_rate,
    amount_at,
    amounts,
    check_grouping,
    group_rows,
    memo,
    per_group,
    truth,
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
    acts = done_within(data.activities, period.start, period.end)
    opps = data.opportunities
    created = opps[period.contains(opps["created_at"])]
    closed = opps[period.contains(opps["closed_at"])]
    converted = conversions(data.leads)
    activity = _Activities.of(acts)
    cold = _cold_call_conversions(acts, by, converted)
    act_rows, created_rows, closed_rows = (group_rows(f, by) for f in (acts, created, closed))
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


def _known_true(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether the value is known, and whether it is known and true."""
    known = values.notna().to_numpy(dtype=bool, na_value=False)
    true = np.zeros(len(values), dtype=bool)
    true[known] = values[known].astype(bool).to_numpy()
    return known, true


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
    def of(cls, acts: pd.DataFrame) -> _Activities:
        """The columns of ``acts``."""
        kind, direction, outcome = acts["type"], acts["direction"], acts["outcome"]
        duration = acts["duration_seconds"].to_numpy(dtype=float, na_value=np.nan)
        call = (kind == "call").to_numpy(dtype=bool, na_value=False)
        completed = (outcome == "completed").to_numpy(dtype=bool, na_value=False)
        connected = call & completed & ~np.isnan(duration)
        opened_known, opened = _known_true(acts["email_opened"])
        replied_known, replied = _known_true(acts["email_replied"])
        meeting = kind.isin(MEETING_TYPES).to_numpy(dtype=bool, na_value=False)
        return cls(
            outbound_call=call & (direction == "outbound").to_numpy(dtype=bool, na_value=False),
            cold=acts["cold"].to_numpy(dtype=bool, na_value=False),
            call=call,
            call_or_zero=np.where(call & ~np.isnan(duration), duration, 0.0),
            connected_minutes=np.where(connected, duration / 60, np.nan),
            outbound_email=truth((kind == "email") & (direction == "outbound")),
            opened_known=opened_known,
            opened=opened,
            replied_known=replied_known,
            replied=replied,
            sms=((kind == "sms") & (direction != "inbound")).to_numpy(dtype=bool, na_value=False),
            meeting_outcomes={o: meeting & truth(outcome == o) for o in ("completed", *MEETING_FAILED)},
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
