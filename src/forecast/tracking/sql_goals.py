"""Sales goals (docs/tracking.md, 3) with the deals and leads aggregated in DuckDB over the warehouse.

The same table as :func:`forecast.tracking.goals.goals` on the CRM read into memory: per group the
deals won in the period and their value, the value won in the year to the cutoff, and the reference
year's mean won amount, win rate and lead conversion are counted in SQL over
:class:`~forecast.tracking.sql_cut.SqlCut`; the goals come from the quota rows by the in-memory
code (:func:`~forecast.tracking.goals.goal_table`: the quotas are a few rows per rep and month),
and each row is written by :func:`~forecast.tracking.goals.goal_row`. Counts are the same
integers; sums and means the same numbers up to the order of addition
(``tests/unit/test_tracking_sql_reports.py``).
"""

from __future__ import annotations

import pandas as pd

from forecast.tracking.common import Row, check_grouping, rows_per_group
from forecast.tracking.data import ALL_LABEL, TrackingData, _empty, _typed, known_groups
from forecast.tracking.goals import GROUPINGS, GoalTimes, goal_row, goal_table
from forecast.tracking.periods import Period
from forecast.tracking.sql_cut import SqlCut, by_group, group_label
from forecast.tracking.stats import NAN, safe_div

_WON = "outcome = 'won' AND closed_at IS NOT NULL"


def goals(cut: SqlCut, period: Period, by: str = "rep") -> pd.DataFrame:
    """:func:`forecast.tracking.goals.goals` of the CRM ``cut`` describes, its counts in DuckDB.

    Args:
        cut: The warehouse cut at the report's as-of.
        period: The period.
        by: rep, team, manager or region.
    """
    check_grouping("goals", by, GROUPINGS, "quotas belong to reps, teams and the company")
    when = GoalTimes.of(period, cut.as_of)
    times = {
        **cut.bounds(period),
        "cutoff": when.cutoff.to_pydatetime(),
        "year_start": when.year_start.to_pydatetime(),
        "ref_start": when.ref_start.to_pydatetime(),
    }
    in_period = f"{_WON} AND closed_at >= $start AND closed_at < $end"
    in_year = f"{_WON} AND closed_at >= $year_start AND closed_at < $cutoff"
    ref = "closed_at >= $ref_start AND closed_at < $cutoff"
    deals = by_group(
        by,
        f"""SELECT {{by}} AS grp,
            count(*) FILTER (WHERE {in_period}) AS won_deals,
            coalesce(sum(amount) FILTER (WHERE {in_period}), 0) AS won_value,
            coalesce(sum(amount) FILTER (WHERE {in_year}), 0) AS won_ytd,
            count(*) FILTER (WHERE {ref}) AS ref_closed,
            count(*) FILTER (WHERE {ref} AND outcome = 'won') AS ref_won,
            avg(known_amount) FILTER (WHERE {ref} AND outcome = 'won') AS ref_avg
        FROM deals_c""",
    )
    won = {
        group_label(r["grp"]): r
        for r in cut.query(deals, times, sources=False, cold=False).to_dict("records")
    }
    created = "created_at >= $ref_start AND created_at < $cutoff"
    leads = by_group(
        by,
        f"""SELECT {{by}} AS grp, count(*) FILTER (WHERE {created}) AS ref_leads,
            count(*) FILTER (WHERE {created} AND converted_at IS NOT NULL) AS ref_converted
        FROM leads_k""",
    )
    lead_times = {k: times[k] for k in ("ref_start", "cutoff")}
    rows = cut.query(leads, lead_times, sources=False, cold=False).to_dict("records")
    converted = {group_label(r["grp"]): (int(r["ref_converted"]), int(r["ref_leads"])) for r in rows}

    def rates(group: str) -> dict[str, float]:
        w = won.get(group)
        closed, won_n = (int(w["ref_closed"]), int(w["ref_won"])) if w else (0, 0)
        mean = w["ref_avg"] if w else None
        k, n = converted.get(group, (0, 0))
        return {
            "avg_won_amount": NAN if mean is None or mean != mean else float(mean),
            "win_rate": safe_div(won_n, closed),
            "lead_conversion": safe_div(float(k), n),
        }

    seen = {g for g, r in won.items() if g != ALL_LABEL and int(r["won_deals"])}
    groups = [*known_groups(cut.reps, by, seen), ALL_LABEL]
    table = dict(
        zip(groups, goal_table(_quota_view(cut), by, groups, when.bounds(period)).tolist(), strict=True)
    )
    team_rates = rates(ALL_LABEL)

    def compute(group: str) -> Row:
        w = won.get(group)
        figures = (int(w["won_deals"]), float(w["won_value"]), float(w["won_ytd"])) if w else (0, 0.0, 0.0)
        return goal_row(table[group], period, figures, rates(group), team_rates, when)

    return rows_per_group(cut.reps, by, groups[:-1], compute)


def _quota_view(cut: SqlCut) -> TrackingData:
    """What :func:`~forecast.tracking.goals.goal_table` reads of the cut: its reps and quotas (no event)."""
    from forecast.tracking.read import read_table
    from forecast.tracking.sql_cut import _present

    quotas = _typed(read_table(cut.con, "quotas", _present(cut.con)), "quotas")
    empty = {name: _empty(name) for name in ("leads", "opportunities", "stage_history", "activities")}
    return TrackingData(
        as_of=cut.as_of,
        pipeline=cut.pipeline,
        reps=cut.reps,
        leads=empty["leads"],
        opportunities=empty["opportunities"],
        stage_history=empty["stage_history"],
        activities=empty["activities"],
        engagement=_empty("engagement_events"),
        quotas=quotas,
    )
