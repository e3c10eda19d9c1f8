"""Activity effectiveness across the team (docs/tracking.md, 5) as DuckDB aggregates over the warehouse.

The same table as :func:`forecast.tracking.effectiveness.effectiveness` on the CRM read into memory:
the period's reply rate and call length per group, its new opportunities against the period
before, and the correlation of new opportunities with calls and with emails over the group's
rep-weeks (each rep's outbound calls, outbound emails and new opportunities per ISO week of the
window, a week in which the rep did and opened nothing left out). DuckDB counts the rep-weeks
(tens of thousands of rows on a CRM of ten million activities) and the period's figures; the
correlations and intervals are computed here by the in-memory report's functions. Counts are the
same integers; means and correlations the same numbers up to the order of addition
(``tests/unit/test_tracking_sql_effectiveness.py``).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from forecast.tracking.common import Row, add_rate, check_grouping, rows_per_group
from forecast.tracking.data import ALL_LABEL, known_groups
from forecast.tracking.effectiveness import CORRELATION_WEEKS, GROUPINGS, add_new_deals
from forecast.tracking.periods import Period
from forecast.tracking.sql_cut import IN_PERIOD, SOURCE_KEYS, SqlCut, by_group, group_label, mean_interval_of

_REPLIED = "type = 'email' AND direction = 'outbound' AND email_replied IS NOT NULL"
_CONNECTED = "type = 'call' AND outcome = 'completed' AND duration_seconds IS NOT NULL"
_COUNTED = ("calls", "emails", "new_opportunities")


def effectiveness(
    cut: SqlCut, period: Period, by: str = "team", only: Collection[str] | None = None
) -> pd.DataFrame:
    """:func:`forecast.tracking.effectiveness.effectiveness` of the CRM ``cut`` describes, in DuckDB.

    Args:
        cut: The warehouse cut at the report's as-of.
        period: The period.
        by: team, manager, region, source, channel (or rep).
        only: Only these groups' rows and ``(all)``.
    """
    check_grouping("effectiveness", by, GROUPINGS, "activities on leads carry no product")
    prev = period.previous()
    end = min(period.end, cut.as_of)
    start = min(period.start, end - pd.Timedelta(weeks=CORRELATION_WEEKS))
    figures = _period_figures(cut, by, cut.bounds(period))
    created = _created(cut, by, period, prev)
    weeks = _rep_weeks(cut, by, {"start": start.to_pydatetime(), "end": end.to_pydatetime()})
    none = {name: np.zeros(0) for name in _COUNTED}

    def compute(group: str) -> Row:
        row: Row = {}
        replied_n, replied, minutes = figures.get(group, (0, 0, mean_interval_of(0, None, None)))
        add_rate(row, "reply_rate", replied, replied_n)
        mean, n, lo, hi = minutes
        row.update(
            avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
        )
        add_new_deals(row, created.get(group, (0, 0)), (period, prev), weeks.get(group, none))
        return row

    seen = set(figures) | {g for g, (new, _) in created.items() if new}
    seen.discard(ALL_LABEL)
    return rows_per_group(cut.reps, by, known_groups(cut.reps, by, seen), compute, only=only)


def _period_figures(
    cut: SqlCut, by: str, bounds: Mapping[str, object]
) -> dict[str, tuple[int, int, tuple[float, int, float, float]]]:
    """Each group's emails with a known reply, those replied to, and its connected calls' minutes."""
    sql = by_group(
        by,
        f"""SELECT {{by}} AS grp,
            count(*) FILTER (WHERE {_REPLIED}) AS replied_n,
            count(*) FILTER (WHERE {_REPLIED} AND email_replied) AS replied,
            count(*) FILTER (WHERE {_CONNECTED}) AS minutes_n,
            avg(duration_seconds / 60) FILTER (WHERE {_CONNECTED}) AS minutes_mean,
            stddev_samp(duration_seconds / 60) FILTER (WHERE {_CONNECTED}) AS minutes_sd
        FROM acts_c WHERE done AND {IN_PERIOD.format(column="occurred_at")}""",
    )
    return {
        group_label(row["grp"]): (
            int(row["replied_n"]),
            int(row["replied"]),
            mean_interval_of(int(row["minutes_n"]), row["minutes_mean"], row["minutes_sd"]),
        )
        for row in cut.query(sql, bounds, sources=by in SOURCE_KEYS, cold=False).to_dict("records")
    }


def _created(cut: SqlCut, by: str, period: Period, prev: Period) -> dict[str, tuple[int, int]]:
    """Each group's deals created in the period and in the period before."""
    now, before = cut.bounds(period), cut.bounds(prev)
    sql = by_group(
        by,
        """SELECT {by} AS grp,
            count(*) FILTER (WHERE created_at >= $start AND created_at < $end) AS new,
            count(*) FILTER (WHERE created_at >= $prev_start AND created_at < $prev_end) AS new_prev
        FROM deals_c""",
    )
    rows = cut.query(
        sql,
        {**now, "prev_start": before["start"], "prev_end": before["end"]},
        sources=by in SOURCE_KEYS,
        cold=False,
    ).to_dict("records")
    return {group_label(row["grp"]): (int(row["new"]), int(row["new_prev"])) for row in rows}


def _rep_weeks(cut: SqlCut, by: str, window: Mapping[str, object]) -> dict[str, dict[str, np.ndarray]]:
    """Each group's rep-weeks of the window (``(all)``: every rep's), as arrays of their counts.

    A rep-week of a group: a rep and an ISO week with a done outbound activity of the group's, or a
    deal of the group's created, in the window.
    """
    sql = f"""
, acts_w AS (
    SELECT grp, rep, week,
        count(*) FILTER (WHERE type = 'call') AS calls, count(*) FILTER (WHERE type = 'email') AS emails
    FROM (SELECT {by} AS grp, rep, date_trunc('week', occurred_at) AS week, type FROM acts_c
          WHERE done AND direction = 'outbound' AND {IN_PERIOD.format(column="occurred_at")})
    GROUP BY GROUPING SETS ((grp, rep, week), (rep, week))
),
deals_w AS (
    SELECT grp, rep, week, count(*) AS new_opportunities
    FROM (SELECT {by} AS grp, rep, date_trunc('week', created_at) AS week FROM deals_c
          WHERE {IN_PERIOD.format(column="created_at")})
    GROUP BY GROUPING SETS ((grp, rep, week), (rep, week))
)
SELECT coalesce(a.grp, d.grp) AS grp, coalesce(a.calls, 0) AS calls, coalesce(a.emails, 0) AS emails,
    coalesce(d.new_opportunities, 0) AS new_opportunities
FROM acts_w a FULL OUTER JOIN deals_w d
    ON a.grp IS NOT DISTINCT FROM d.grp AND a.rep = d.rep AND a.week = d.week
ORDER BY grp NULLS FIRST, coalesce(a.rep, d.rep), coalesce(a.week, d.week)"""
    frame = cut.query(sql, window, sources=by in SOURCE_KEYS, cold=False)
    groups = frame["grp"].to_numpy(dtype=object)
    total = int(frame["grp"].isna().sum())  # the total's rows come first (NULLS FIRST)
    columns = {name: frame[name].to_numpy(dtype=float) for name in _COUNTED}
    out = {ALL_LABEL: {name: values[:total] for name, values in columns.items()}}
    starts = [total, *(k for k in range(total + 1, len(groups)) if groups[k] != groups[k - 1]), len(groups)]
    for begin, stop in itertools.pairwise(starts):
        if begin < stop:
            out[str(groups[begin])] = {name: values[begin:stop] for name, values in columns.items()}
    return out
