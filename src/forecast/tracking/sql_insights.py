"""The insights (docs/tracking.md, 7) of the part of the CRM their rules read, selected by DuckDB.

The rules of :func:`forecast.tracking.insights.insights` read every deal, stage change and rep, but
of the activities only those of the period and of the :data:`~forecast.tracking.insights.NEGLECT_DAYS`
before its cut-off (cold calls, emails and selling time in the period; the open deals' recent
touches), and of the leads only those of a deal or of one of those activities (a cold-called
lead's conversion and size, a replied lead's conversion). On a large CRM that is a twentieth of
the activities and a third of the leads: :func:`forecast.tracking.read.load_recent` reads that
part, each row as the whole read gives it, and the goals (which read a year of leads) are
aggregated in SQL (:func:`forecast.tracking.sql_goals.goals`). The insights are then the in-memory
rules' own, over that part (``tests/unit/test_tracking_sql_reports.py`` holds the document equal to
the one of the CRM read whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forecast.tracking.adjust import adjusted as adjusted_of
from forecast.tracking.common import check_grouping
from forecast.tracking.data import GROUPINGS, TrackingData
from forecast.tracking.insights import NEGLECT_DAYS, Aggregated, InsightConfig, InsightReport, stays_read
from forecast.tracking.insights import insights as insights_of
from forecast.tracking.periods import Period
from forecast.tracking.read import load_recent
from forecast.tracking.sql_cut import NotInSqlError, SqlCut
from forecast.tracking.sql_goals import goals
from forecast.tracking.sql_process import stays_sql


@dataclass(frozen=True)
class Part:
    """The part of the CRM the insights of a period read, and what DuckDB aggregated of the whole.

    Attributes:
        data: The deals, stage changes and reps, the window's activities and the leads they name.
        given: The period's goals by rep (they read a year of leads) and the stays in a stage the
            rules read, aggregated in DuckDB.
    """

    data: TrackingData
    given: Aggregated

    def insights(self, period: Period, config: InsightConfig | None = None) -> InsightReport:
        """The insights of ``period`` (the one the part was read for), by the in-memory rules."""
        return insights_of(self.data, period, config, given=self.given)


def read_part(cut: SqlCut, period: Period) -> Part | None:
    """The part of the CRM the insights of ``period`` read (``None``: not readable so, the module's).

    Read on the cut's connection; the rules (:meth:`Part.insights`) need it no more.
    """
    cutoff = min(period.end, cut.as_of)
    since = min(period.start, cutoff - pd.Timedelta(days=NEGLECT_DAYS))
    data = load_recent(cut.con, cut.as_of, since, cutoff)
    if data is None:
        return None
    given = Aggregated(
        goals=goals(cut, period, "rep"),
        stays=_stays(cut, period) if data.has_stage_history else None,
    )
    return Part(data, given)


def _stays(cut: SqlCut, period: Period) -> pd.DataFrame:
    """The stays the rules of ``period`` read (:func:`stays_read`), as :func:`stays` gives them.

    In its row order (each deal's stays in time order, the deals by id) and with the columns the
    rules read; the rows it skips change no insight.
    """
    bounds = {k: v.to_pydatetime() for k, v in stays_read(period, cut.as_of).items()}
    sql = (
        stays_sql(cut)
        + """
SELECT opportunity_id, stage, entered_at, left_at, result, days, rep, product FROM stays_c
WHERE (left_at >= $before AND left_at < $end)
    OR (entered_at < $cutoff AND NOT coalesce(left_at < $cutoff, false))
ORDER BY opportunity_id, entered_at, change"""
    )
    return cut.query(sql, bounds, sources=False, cold=False)


def insights(cut: SqlCut, period: Period, config: InsightConfig | None = None) -> InsightReport | None:
    """:func:`forecast.tracking.insights.insights` of the CRM ``cut`` describes, from the part it reads.

    ``None`` where the warehouse's part cannot be read as the whole read reads it
    (:func:`~forecast.tracking.read.load_recent`): the caller reads the CRM.
    """
    part = read_part(cut, period)
    return None if part is None else part.insights(period, config)


def adjusted(cut: SqlCut, period: Period, by: str = "rep") -> pd.DataFrame:
    """:func:`forecast.tracking.adjust.adjusted` of the part of the CRM it reads: the period's.

    Its trials are the deals closed, the leads cold-called and the emails sent in the period: of the
    activities only the period's (before the as of), of the leads those they name.

    Raises:
        NotInSqlError: The part cannot be read as the whole read reads it (read the CRM).
    """
    check_grouping("adjusted", by, [g for g in GROUPINGS if g != "product"], "activities carry no product")
    data = load_recent(cut.con, cut.as_of, min(period.start, cut.as_of), period.end)
    if data is None:
        raise NotInSqlError(
            "the part of the CRM the adjusted rates read cannot be read as the whole read reads it"
        )
    return adjusted_of(data, period, by)
