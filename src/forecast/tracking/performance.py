"""Sales performance per rep (docs/tracking.md, 1): the activity comparison report.

Counts activities that happened in the period (``outcome = scheduled`` is a plan, not an activity
done, and is left out) and the deals created, won and lost in it.
"""

from __future__ import annotations

import pandas as pd

from forecast.tracking.common import Row, add_rate, amount_sum, check_grouping, per_group, subset
from forecast.tracking.data import TrackingData
from forecast.tracking.periods import Period
from forecast.tracking.stats import NAN, mean_interval

GROUPINGS = ("rep", "team", "manager", "region", "source", "channel")
MEETING_TYPES = ("meeting", "demo")
MEETING_FAILED = ("cancelled", "declined", "no_show")


def performance(data: TrackingData, period: Period, by: str = "rep") -> pd.DataFrame:
    """Activity comparison per group for one period.

    Args:
        data: The tracking data.
        period: The period.
        by: rep, team, manager, region, source or channel (activities on leads have no product).

    Returns:
        One row per group plus ``(all)``; rates come with ``_n``, ``_lo`` and ``_hi`` columns.
    """
    check_grouping("performance", by, GROUPINGS, "activities on leads carry no product")
    acts = data.activities
    acts = acts[period.contains(acts["occurred_at"]) & acts["done"]]
    opps = data.opportunities
    created = opps[period.contains(opps["created_at"])]
    closed = opps[period.contains(opps["closed_at"])]
    leads = data.leads.set_index("lead_id")["converted_at"]

    def compute(group: str) -> Row:
        a = subset(acts, by, group)
        row: Row = {}
        calls = a[(a["type"] == "call") & (a["direction"] == "outbound")]
        row["calls"] = len(calls)
        cold = a[a["cold"]]
        row["cold_calls"] = len(cold)
        first_call = cold.groupby("lead_id")["occurred_at"].min()
        conv = leads.reindex(first_call.index)
        row["cold_called_leads"] = len(first_call)
        add_rate(row, "cold_call_conversion", int((conv > first_call).sum()), len(first_call))
        row["cold_call_opportunities"] = int((conv > first_call).sum())
        all_calls = a[a["type"] == "call"]
        row["call_hours"] = float(all_calls["duration_seconds"].fillna(0).sum()) / 3600
        connected = all_calls[(all_calls["outcome"] == "completed") & all_calls["duration_seconds"].notna()]
        mean, n, lo, hi = mean_interval(connected["duration_seconds"] / 60)
        row.update(
            avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
        )
        emails = a[(a["type"] == "email") & (a["direction"] == "outbound")]
        row["emails_sent"] = len(emails)
        opened = emails["email_opened"].dropna().astype(bool)
        replied = emails["email_replied"].dropna().astype(bool)
        row["emails_opened"] = int(opened.sum())
        add_rate(row, "open_rate", int(opened.sum()), len(opened))
        row["email_replies"] = int(replied.sum())
        add_rate(row, "reply_rate", int(replied.sum()), len(replied))
        row["sms_sent"] = int(((a["type"] == "sms") & (a["direction"] != "inbound")).sum())
        meetings = a[a["type"].isin(MEETING_TYPES)]
        row["meetings_completed"] = int((meetings["outcome"] == "completed").sum())
        for outcome in MEETING_FAILED:
            row[f"meetings_{outcome}"] = int((meetings["outcome"] == outcome).sum())
        decided = meetings[meetings["outcome"].isin(("completed", *MEETING_FAILED))]
        add_rate(row, "meeting_held_rate", row["meetings_completed"], len(decided))
        c = subset(created, by, group)
        row["new_opportunities"] = len(c)
        row["value_created"] = amount_sum(c)
        d = subset(closed, by, group)
        won = d[d["outcome"] == "won"]
        row["won"] = len(won)
        row["won_value"] = amount_sum(won)
        row["lost"] = int((d["outcome"] == "lost").sum())
        add_rate(row, "win_rate", len(won), len(won) + row["lost"])
        row["selling_hours"] = float(a["duration_seconds"].fillna(0).sum()) / 3600
        row["won_value_per_selling_hour"] = (
            row["won_value"] / row["selling_hours"] if row["selling_hours"] > 0 else NAN
        )
        return row

    return per_group(data, by, [acts, created, closed], compute)
