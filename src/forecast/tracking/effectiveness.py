"""Activity effectiveness across the team (docs/tracking.md, 5).

The correlation of new opportunities with calls (and with emails) is measured over *rep-weeks*:
each rep's outbound calls, outbound emails and new opportunities per ISO week, over the period or
the 26 weeks ending with it, whichever is longer (a month holds too few points). Weeks in which a
rep logged nothing and opened nothing are left out (not yet hired, away). Rep-weeks of one rep are
not independent, so read the interval as a lower bound on the uncertainty.
"""

from __future__ import annotations

import pandas as pd

from forecast.tracking.common import Row, add_rate, check_grouping, per_group, subset
from forecast.tracking.data import TrackingData
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
    times = acts["occurred_at"]
    keep = acts["done"] & (times >= start) & (times < end) & (acts["direction"] == "outbound")
    return acts.loc[keep, _columns(acts, by, _WEEK_COLUMNS)]


def effectiveness(data: TrackingData, period: Period, by: str = "team") -> pd.DataFrame:
    """Email reply rate, call duration, new opportunities vs the previous period and correlations.

    Args:
        data: The tracking data.
        period: The period.
        by: team, manager, region, source, channel (or rep).

    Returns:
        One row per group plus ``(all)``.
    """
    check_grouping("effectiveness", by, GROUPINGS, "activities on leads carry no product")
    acts = data.activities  # the rows and columns read are taken, not a copy of every activity
    in_period = acts.loc[
        acts["done"] & period.contains(acts["occurred_at"]), _columns(acts, by, _PERIOD_COLUMNS)
    ]
    opps = data.opportunities
    prev = period.previous()
    created = opps[period.contains(opps["created_at"])]
    created_prev = opps[prev.contains(opps["created_at"])]
    end = min(period.end, data.as_of)
    start = min(period.start, end - pd.Timedelta(weeks=CORRELATION_WEEKS))
    window = _week_rows(acts, by, start, end)

    def compute(group: str) -> Row:
        row: Row = {}
        a = subset(in_period, by, group)
        emails = a[(a["type"] == "email") & (a["direction"] == "outbound")]
        replied = emails["email_replied"].dropna().astype(bool)
        add_rate(row, "reply_rate", int(replied.sum()), len(replied))
        calls = a[(a["type"] == "call") & (a["outcome"] == "completed") & a["duration_seconds"].notna()]
        mean, n, lo, hi = mean_interval(calls["duration_seconds"] / 60)
        row.update(
            avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
        )
        new, new_prev = len(subset(created, by, group)), len(subset(created_prev, by, group))
        row["new_opportunities"] = new
        row["new_opportunities_prev"] = new_prev
        row["new_opportunities_change"] = safe_div(new - new_prev, new_prev)
        row["new_opportunities_p_value"] = rate_ratio_test(new, period.days, new_prev, prev.days)
        weeks = rep_weeks(subset(window, by, group), subset(opps, by, group), start, end)
        for name in ("calls", "emails"):
            c = correlation(weeks[name], weeks["new_opportunities"]) if len(weeks) else correlation([], [])
            key = f"corr_new_opportunities_{name}"
            row.update(
                {key: c.r, f"{key}_n": c.n, f"{key}_lo": c.lo, f"{key}_hi": c.hi, f"{key}_p_value": c.p_value}
            )
        return row

    return per_group(data, by, [in_period, created], compute)
