"""Funnel metrics (docs/tracking.md, 4) from the deals DuckDB cuts and selects over the warehouse.

The funnel reads only deals: those open at the cutoff, created or closed in the period, closed in
the period before, and, for the monthly table, created or closed in its twelve months. DuckDB cuts
every deal at the as of (:class:`~forecast.tracking.sql_cut.SqlCut`: the close undone if later,
the stage and amount of the last change before it, a deal open then in a closed stage in the last
open one) and hands over those deals alone, in the table's order; each stage's historical win rate
is counted in SQL. The tables are then made by the in-memory report's own functions
(:func:`~forecast.tracking.funnel.funnel`, :func:`~forecast.tracking.funnel.monthly`,
:func:`~forecast.tracking.funnel.loss_reasons`) over those deals, so the same rules and the same
order of rows (``tests/unit/test_tracking_sql_reports.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import pandas as pd

from forecast.tracking.common import check_grouping
from forecast.tracking.data import GROUPINGS, TrackingData, _empty
from forecast.tracking.funnel import funnel as funnel_table
from forecast.tracking.funnel import loss_reasons as loss_table
from forecast.tracking.funnel import monthly as monthly_table
from forecast.tracking.periods import Period, month_starts
from forecast.tracking.sql_cut import SOURCE_KEYS, SqlCut
from forecast.tracking.stats import safe_div

_COLUMNS = ("opportunity_id", "created_at", "closed_at", "outcome", "stage", "loss_reason")


def funnel(cut: SqlCut, period: Period, by: str = "rep", only: Collection[str] | None = None) -> pd.DataFrame:
    """:func:`forecast.tracking.funnel.funnel` of the CRM ``cut`` describes, its deals from DuckDB."""
    check_grouping("funnel", by, GROUPINGS)
    cutoff = min(period.end, cut.as_of)
    prev = period.previous()
    times = {
        **cut.bounds(period),
        "cutoff": cutoff.to_pydatetime(),
        "prev_start": prev.start.to_pydatetime(),
        "prev_end": prev.end.to_pydatetime(),
    }
    where = """(created_at < $cutoff AND NOT coalesce(closed_at < $cutoff, false))
        OR (created_at >= $start AND created_at < $end) OR (closed_at >= $start AND closed_at < $end)
        OR (closed_at >= $prev_start AND closed_at < $prev_end)"""
    deals = _deals(cut, by, where, times)
    return funnel_table(_view(cut, deals), period, by, only, weights=_stage_win_rates(cut, cutoff))


def monthly(cut: SqlCut, period: Period, by: str = "rep", only: object = None) -> pd.DataFrame:
    """:func:`forecast.tracking.funnel.monthly` (the team's twelve months) of the CRM ``cut`` describes."""
    end = min(period.end, cut.as_of)
    starts = month_starts(end - pd.DateOffset(months=12), end)[-12:]
    first = starts[0] if len(starts) else end
    times = {"first": pd.Timestamp(first).to_pydatetime(), "last": end.to_pydatetime()}
    where = "(created_at >= $first AND created_at < $last) OR (closed_at >= $first AND closed_at < $last)"
    return monthly_table(_view(cut, _deals(cut, None, where, times)), period)


def loss_reasons(cut: SqlCut, period: Period, by: str = "rep", only: object = None) -> pd.DataFrame:
    """:func:`forecast.tracking.funnel.loss_reasons` of the CRM ``cut`` describes."""
    prev = period.previous()
    times = {
        "first": min(prev.start, period.start).to_pydatetime(),
        "last": max(prev.end, period.end).to_pydatetime(),
    }
    where = "outcome = 'lost' AND closed_at >= $first AND closed_at < $last"
    return loss_table(_view(cut, _deals(cut, None, where, times)), period)


def _deals(cut: SqlCut, by: str | None, where: str, times: Mapping[str, object]) -> pd.DataFrame:
    """The deals as known at the as of that ``where`` keeps, in the table's order, with ``by``."""
    keys = [] if by is None or by in _COLUMNS else [by]
    columns = ", ".join([*_COLUMNS, *keys, "known_amount AS amount"])
    sql = f" SELECT {columns} FROM deals_c WHERE {where} ORDER BY nth"
    return cut.query(sql, times, sources=by in SOURCE_KEYS, cold=False)


def _view(cut: SqlCut, deals: pd.DataFrame) -> TrackingData:
    """The cut as the in-memory funnel reads it: its reps and these deals (no event)."""
    return TrackingData(
        as_of=cut.as_of,
        pipeline=cut.pipeline,
        reps=cut.reps,
        leads=_empty("leads"),
        opportunities=deals,
        stage_history=_empty("stage_history"),
        activities=_empty("activities"),
        engagement=_empty("engagement_events"),
        quotas=_empty("quotas"),
        has_stage_history=cut.has_stage_history,
    )


def _stage_win_rates(cut: SqlCut, cutoff: pd.Timestamp) -> dict[str, float]:
    """:func:`forecast.tracking.funnel.stage_win_rates` at ``cutoff``, counted in DuckDB.

    Of the deals closed before the cutoff, the share won among those that ever entered each open
    stage before the as of; a stage none of them entered, or a CRM without stage changes, takes
    the share won of them all.
    """
    sql = """
, closed AS (SELECT opportunity_id, outcome = 'won' AS won FROM deals_c WHERE closed_at < $cutoff),
pairs AS (
    SELECT DISTINCT h.stage, h.opportunity_id FROM stage_history h
    SEMI JOIN deals_c d ON d.opportunity_id = h.opportunity_id WHERE h.entered_at < $as_of
)
SELECT p.stage, count(c.opportunity_id) AS reached, count(*) FILTER (WHERE c.won) AS won,
    (SELECT count(*) FROM closed) AS closed, (SELECT count(*) FILTER (WHERE won) FROM closed) AS won_all
FROM pairs p LEFT JOIN closed c ON c.opportunity_id = p.opportunity_id
GROUP BY p.stage"""
    rows = cut.query(sql, {"cutoff": cutoff.to_pydatetime()}, sources=False, cold=False)
    totals = cut.query(
        " SELECT count(*) AS closed, count(*) FILTER (WHERE outcome = 'won') AS won FROM deals_c"
        " WHERE closed_at < $cutoff",
        {"cutoff": cutoff.to_pydatetime()},
        sources=False,
        cold=False,
    ).iloc[0]
    overall = safe_div(float(totals["won"]), float(totals["closed"]))
    open_stages = cut.pipeline.open_stages
    if not cut.has_stage_history or rows.empty:
        return dict.fromkeys(open_stages, overall)
    by_stage = {str(r["stage"]): (int(r["reached"]), int(r["won"])) for r in rows.to_dict("records")}
    rates = {}
    for stage in open_stages:
        reached, won = by_stage.get(stage, (0, 0))
        rates[stage] = safe_div(float(won), float(reached)) if reached else overall
    return rates
