"""Sales performance per rep (docs/tracking.md, 1) as DuckDB aggregates over the warehouse.

The same table as :func:`forecast.tracking.performance.performance` on the CRM read into memory,
from one aggregate query per part (the period's activities, the cold calls' first call per lead,
the deals created and closed) over the cut of :class:`~forecast.tracking.sql_cut.SqlCut`: one row
per group is fetched, not ten million activities. Counts are the same integers; the sums of
seconds and amounts and the mean call length are the same numbers up to the order in which
floating-point values are added (``tests/unit/test_tracking_sql_performance.py``: relative
difference below 1e-12). The rows are written by the in-memory report's own functions
(:func:`~forecast.tracking.performance.performance_row`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pandas as pd

from forecast.tracking.common import Row, check_grouping, rows_per_group
from forecast.tracking.data import ALL_LABEL, known_groups
from forecast.tracking.performance import (
    GROUPINGS,
    MEETING_FAILED,
    ActivityFigures,
    DealFigures,
    performance_row,
)
from forecast.tracking.periods import Period
from forecast.tracking.sql_cut import IN_PERIOD, SOURCE_KEYS, SqlCut, by_group, group_label, mean_interval_of

_OUTBOUND = "direction = 'outbound'"
_EMAIL = f"type = 'email' AND {_OUTBOUND}"
_COUNTS = {
    "calls": f"type = 'call' AND {_OUTBOUND}",
    "cold_calls": "cold",
    "emails_sent": _EMAIL,
    "opened_n": f"{_EMAIL} AND email_opened IS NOT NULL",
    "opened": f"{_EMAIL} AND email_opened",
    "replied_n": f"{_EMAIL} AND email_replied IS NOT NULL",
    "replied": f"{_EMAIL} AND email_replied",
    "sms_sent": "type = 'sms' AND coalesce(direction, '') <> 'inbound'",
    **{
        f"held_{o}": f"type IN ('meeting', 'demo') AND outcome = '{o}'"
        for o in ("completed", *MEETING_FAILED)
    },
}
"""What :class:`~forecast.tracking.performance.ActivityFigures` counts: SQL conditions on a done activity."""
_CONNECTED = "type = 'call' AND outcome = 'completed' AND duration_seconds IS NOT NULL"


def performance(
    cut: SqlCut,
    period: Period,
    by: str = "rep",
    only: Collection[str] | None = None,
    *,
    brief: bool = False,
) -> pd.DataFrame:
    """:func:`forecast.tracking.performance.performance` of the CRM ``cut`` describes, aggregated in DuckDB.

    Args:
        cut: The warehouse cut at the report's as-of.
        period: The period.
        by: rep, team, manager, region, source or channel.
        only: Only these groups' rows and ``(all)``.
        brief: The counts and the deals' figures alone (no cold calls' conversions, call hours,
            call lengths or selling time).
    """
    check_grouping("performance", by, GROUPINGS, "activities on leads carry no product")
    bounds = cut.bounds(period)
    activities = _activities(cut, by, bounds, timed=not brief)
    deals = _deals(cut, by, bounds)
    cold = None if brief else _cold_calls(cut, by, bounds)
    seen = {str(g) for g in activities} | {str(g) for g, d in deals.items() if d[1]}
    empty = _empty_figures(timed=not brief)
    no_deals = DealFigures(0, 0.0, 0, 0.0, 0)

    def compute(group: str) -> Row:
        figures = activities.get(group, empty)
        deal = deals.get(group, (no_deals, False))[0]
        return performance_row(figures, None if cold is None else cold.get(group, (0, 0)), deal)

    seen.discard(ALL_LABEL)
    return rows_per_group(cut.reps, by, known_groups(cut.reps, by, seen), compute, only=only)


def _activities(
    cut: SqlCut, by: str, bounds: Mapping[str, object], timed: bool
) -> dict[str, ActivityFigures]:
    """Each group's activity figures (``(all)``'s too) over the done activities in the period."""
    counts = [f"count(*) FILTER (WHERE {cond}) AS {name}" for name, cond in _COUNTS.items()]
    timings = [
        "coalesce(sum(duration_seconds) FILTER (WHERE type = 'call'), 0) AS call_seconds",
        f"count(*) FILTER (WHERE {_CONNECTED}) AS minutes_n",
        f"avg(duration_seconds / 60) FILTER (WHERE {_CONNECTED}) AS minutes_mean",
        f"stddev_samp(duration_seconds / 60) FILTER (WHERE {_CONNECTED}) AS minutes_sd",
        "coalesce(sum(duration_seconds), 0) AS selling_seconds",
    ]
    period = IN_PERIOD.format(column="occurred_at")
    select = ", ".join(counts + (timings if timed else []))
    sql = by_group(by, f"SELECT {{by}} AS grp, {select} FROM acts_c WHERE done AND {period}")
    out: dict[str, ActivityFigures] = {}
    for row in cut.query(sql, bounds, sources=by in SOURCE_KEYS).to_dict("records"):
        label = group_label(row["grp"])
        counted = {name: int(row[name]) for name in _COUNTS}
        if not timed:
            out[label] = ActivityFigures(counted)
            continue
        out[label] = ActivityFigures(
            counts=counted,
            call_seconds=float(row["call_seconds"]),
            minutes=mean_interval_of(int(row["minutes_n"]), row["minutes_mean"], row["minutes_sd"]),
            selling_seconds=float(row["selling_seconds"]),
        )
    return out


def _empty_figures(timed: bool) -> ActivityFigures:
    """The figures of a group without a done activity in the period."""
    counted = dict.fromkeys(_COUNTS, 0)
    if not timed:
        return ActivityFigures(counted)
    return ActivityFigures(counted, 0.0, mean_interval_of(0, None, None), 0.0)


def _deals(cut: SqlCut, by: str, bounds: Mapping[str, object]) -> dict[str, tuple[DealFigures, bool]]:
    """Each group's deals created, won and lost in the period, and whether it has any of them."""
    created, closed = (IN_PERIOD.format(column=c) for c in ("created_at", "closed_at"))
    sql = by_group(
        by,
        f"""SELECT {{by}} AS grp,
            count(*) FILTER (WHERE {created}) AS new_opportunities,
            coalesce(sum(amount) FILTER (WHERE {created}), 0) AS value_created,
            count(*) FILTER (WHERE {closed} AND outcome = 'won') AS won,
            coalesce(sum(amount) FILTER (WHERE {closed} AND outcome = 'won'), 0) AS won_value,
            count(*) FILTER (WHERE {closed} AND outcome = 'lost') AS lost,
            count(*) FILTER (WHERE ({created}) OR ({closed})) AS seen
        FROM deals_c""",
    )
    out: dict[str, tuple[DealFigures, bool]] = {}
    for row in cut.query(sql, bounds, sources=by in SOURCE_KEYS, cold=False).to_dict("records"):
        label = group_label(row["grp"])
        figures = DealFigures(
            new_opportunities=int(row["new_opportunities"]),
            value_created=float(row["value_created"]),
            won=int(row["won"]),
            won_value=float(row["won_value"]),
            lost=int(row["lost"]),
        )
        out[label] = (figures, int(row["seen"]) > 0)
    return out


def _cold_calls(cut: SqlCut, by: str, bounds: Mapping[str, object]) -> dict[str, tuple[int, int]]:
    """Per group (and in all): the leads cold-called in the period, and how many converted after.

    A lead converted after the group's first cold call to it counts (after the first cold call of
    all, for ``(all)``), as :func:`forecast.tracking.performance._cold_call_conversions` counts.
    """
    period = IN_PERIOD.format(column="occurred_at")
    sql = f"""
, firsts AS (
    SELECT grp, lead_id, min(occurred_at) AS first_call, grouping(grp) AS total
    FROM (SELECT {by} AS grp, lead_id, occurred_at FROM acts_c WHERE done AND cold AND {period})
    GROUP BY GROUPING SETS ((grp, lead_id), (lead_id))
)
SELECT f.total, f.grp, count(*) AS leads, count(*) FILTER (WHERE l.converted_at > f.first_call) AS converted
FROM firsts f LEFT JOIN leads_c l ON l.lead_id = f.lead_id
GROUP BY f.total, f.grp"""
    out: dict[str, tuple[int, int]] = {}
    for row in cut.query(sql, bounds, sources=by in SOURCE_KEYS).to_dict("records"):
        label = ALL_LABEL if int(row["total"]) else str(row["grp"])
        out[label] = (int(row["leads"]), int(row["converted"]))
    return out
