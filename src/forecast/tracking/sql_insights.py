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
from forecast.tracking.stats import safe_div


@dataclass(frozen=True)
class Part:
    """The part of the CRM the insights of a period read, and what DuckDB aggregated of the whole.

    Attributes:
        data: The deals and reps, each deal's last stage change before the as of, the window's
            activities and the leads they and the deals name.
        given: What the rules would derive from the whole CRM, aggregated in DuckDB: the period's
            goals by rep (they read a year of leads), the stays in a stage the rules read and the
            stage win rates at the cut-off (so the part's stage changes are each deal's last).
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
    data = load_recent(cut.con, cut.as_of, since, cutoff, last_changes=True)
    if data is None:
        return None
    given = Aggregated(
        goals=goals(cut, period, "rep"),
        stays=_stays(cut, period) if data.has_stage_history else None,
        stage_win_rates=_stage_win_rates(cut, cutoff),
    )
    return Part(data, given)


def _stage_win_rates(cut: SqlCut, cutoff: pd.Timestamp) -> dict[str, float]:
    """:func:`forecast.tracking.funnel.stage_win_rates` at ``cutoff`` of the CRM ``cut`` describes.

    Of the deals closed before ``cutoff``, the share won, overall and among those that were ever in
    each open stage before the as of (a stage none of them was in: the overall share); the same
    counts, so the same rates, as the in-memory function's.
    """
    sql = """
, closed AS (SELECT opportunity_id, outcome = 'won' AS won FROM deals_c WHERE closed_at < $cutoff),
reached AS (
    SELECT DISTINCT h.stage, h.opportunity_id FROM stage_history h
    SEMI JOIN deals_c d ON d.opportunity_id = h.opportunity_id
    WHERE h.entered_at < $as_of AND h.stage IS NOT NULL
)
SELECT true AS whole, NULL AS stage, count(*) AS n, count(*) FILTER (WHERE won) AS won FROM closed
UNION ALL
SELECT false, r.stage, count(*), count(*) FILTER (WHERE c.won)
FROM reached r JOIN closed c ON c.opportunity_id = r.opportunity_id GROUP BY r.stage"""
    rows = cut.query(sql, {"cutoff": cutoff.to_pydatetime()}, sources=False, cold=False)
    closed, won = 0, 0
    counts: dict[str, tuple[int, int]] = {}
    for whole, stage, n, k in rows.itertuples(index=False):
        if whole:
            closed, won = int(n), int(k)
        else:
            counts[str(stage)] = (int(n), int(k))
    overall = safe_div(float(won), float(closed))
    return {
        stage: safe_div(float(counts[stage][1]), float(counts[stage][0])) if stage in counts else overall
        for stage in cut.pipeline.open_stages
    }


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
WHERE (entered_at >= $start AND entered_at < $end) OR (left_at >= $before AND left_at < $end)
    OR (entered_at < $cutoff AND NOT coalesce(left_at < $cutoff, false))
ORDER BY opportunity_id ASC NULLS LAST, entered_at ASC NULLS LAST, change ASC"""
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
