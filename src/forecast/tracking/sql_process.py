"""The sales process (docs/tracking.md, 6) as DuckDB aggregates over the warehouse.

The same tables as :func:`forecast.tracking.process.process` and
:func:`~forecast.tracking.process.stage_table` on the CRM read into memory: the prospects in,
qualified and converted per group, the open leads gone without a contact for
:data:`~forecast.tracking.process.NO_CONTACT_DAYS` (each open lead's last done activity found in
DuckDB, not among ten million activities in memory), and per group and open stage the stays
entered, advanced and lost, the time in stage and the deals stuck in it. A *stay* is built by the
in-memory rules (:func:`~forecast.tracking.process.stays`): a deal's stage changes in time order
(ties in the warehouse's order), repeated stages one stay, a stay's end the next change or the
deal's close, its result ``advanced``, ``lost``, ``back`` or ``open``. Counts are the same
integers; days, medians and quantiles the same numbers up to rounding
(``tests/unit/test_tracking_sql_reports.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd

from forecast.tracking.common import Row, add_rate, check_grouping, rows_per_group
from forecast.tracking.data import ALL_LABEL, known_groups
from forecast.tracking.funnel import DAYS_PER_MONTH
from forecast.tracking.periods import Period
from forecast.tracking.process import GROUPINGS, NO_CONTACT_DAYS, STAGE_GROUPINGS, STUCK_QUANTILE
from forecast.tracking.sql_cut import IN_PERIOD, SOURCE_KEYS, SqlCut, _text, by_group, group_label
from forecast.tracking.stats import NAN

_DAYS = "(epoch_us({end}) - epoch_us({start})) / 1e6 / 86400.0"
"""SQL: the days from ``start`` to ``end`` as the reports' :func:`~forecast.tracking.data.days`."""


def process(
    cut: SqlCut,
    period: Period,
    by: str = "channel",
    only: Collection[str] | None = None,
    *,
    brief: bool = False,
) -> pd.DataFrame:
    """:func:`forecast.tracking.process.process` of the CRM ``cut`` describes, in DuckDB.

    Args:
        cut: The warehouse cut at the report's as-of.
        period: The period.
        by: rep, team, manager, region, source or channel.
        only: Only these groups' rows and ``(all)``.
        brief: The new and qualified leads alone (no open leads' last contacts).
    """
    check_grouping("process", by, GROUPINGS, "leads carry no product; see the stage table")
    cutoff = min(period.end, cut.as_of)
    created, changed = (IN_PERIOD.format(column=c) for c in ("created_at", "status_changed_at"))
    qualified = f"({IN_PERIOD.format(column='converted_at')}) OR (status = 'qualified' AND {changed})"
    counts = by_group(
        by,
        f"""SELECT {{by}} AS grp,
            count(*) FILTER (WHERE {created}) AS prospects,
            count(*) FILTER (WHERE {created} AND channel = 'inbound') AS inbound_prospects,
            count(*) FILTER (WHERE {created} AND channel = 'outbound') AS outbound_prospects,
            count(*) FILTER (WHERE {created} AND converted_at IS NOT NULL) AS converted,
            count(*) FILTER (WHERE {qualified}) AS qualified,
            count(*) FILTER (WHERE ({created}) OR ({qualified})) AS seen
        FROM leads_k""",
    )
    rows = cut.query(counts, cut.bounds(period), sources=False, cold=False).to_dict("records")
    figures = {group_label(r["grp"]): r for r in rows}
    silent = None if brief else _silent_open_leads(cut, by, {"cutoff": cutoff.to_pydatetime()})
    months = period.days / DAYS_PER_MONTH

    def compute(group: str) -> Row:
        f = figures.get(group)
        c = int(f["prospects"]) if f else 0
        row: Row = {
            "prospects": c,
            "inbound_prospects": int(f["inbound_prospects"]) if f else 0,
            "outbound_prospects": int(f["outbound_prospects"]) if f else 0,
        }
        q = int(f["qualified"]) if f else 0
        row["qualified"] = q
        row["qualified_per_month"] = q / months if months > 0 else NAN
        add_rate(row, "lead_conversion", int(f["converted"]) if f else 0, c)
        if silent is not None:
            n, quiet = silent.get(group, (0, 0))
            row["open_leads"] = n
            add_rate(row, "open_leads_silent", quiet, n)
        return row

    seen = {g for g, r in figures.items() if int(r["seen"]) and g != ALL_LABEL}
    return rows_per_group(cut.reps, by, known_groups(cut.reps, by, seen), compute, only=only)


def _silent_open_leads(cut: SqlCut, by: str, bounds: dict[str, object]) -> dict[str, tuple[int, int]]:
    """Per group: the leads open at the cutoff, and how many went without a contact for too long.

    A lead's last contact is its last done activity before the cutoff (its creation without one).
    """
    silent = _DAYS.format(end="$cutoff", start="coalesce(c.last_contact, o.created_at)")
    sql = f"""
, open_leads AS (
    SELECT * FROM leads_k
    WHERE created_at < $cutoff AND status IN ('new', 'working', 'qualified') AND converted_at IS NULL
),
contacts AS (
    SELECT a.lead_id, max(a.occurred_at) AS last_contact
    FROM activities a SEMI JOIN open_leads o ON o.lead_id = a.lead_id
    WHERE a.occurred_at < $cutoff AND coalesce(a.outcome, 'completed') <> 'scheduled'
    GROUP BY a.lead_id
)
{
        by_group(
            by,
            f'''SELECT o.{{by}} AS grp, count(*) AS open_leads,
            count(*) FILTER (WHERE {silent} > {NO_CONTACT_DAYS}) AS silent
        FROM open_leads o LEFT JOIN contacts c ON c.lead_id = o.lead_id''',
        )
    }"""
    rows = cut.query(sql, bounds, sources=False, cold=False).to_dict("records")
    return {group_label(r["grp"]): (int(r["open_leads"]), int(r["silent"])) for r in rows}


def stage_table(
    cut: SqlCut, period: Period, by: str = "channel", only: Collection[str] | None = None
) -> pd.DataFrame:
    """:func:`forecast.tracking.process.stage_table` of the CRM ``cut`` describes, in DuckDB.

    Args:
        cut: The warehouse cut at the report's as-of.
        period: The period.
        by: Any grouping (deals carry a product).
        only: Only these groups' rows and ``(all)``'s.

    Returns:
        One row per group and open stage (empty without a stay in an open stage).
    """
    check_grouping("process", by, STAGE_GROUPINGS)
    stages = list(cut.pipeline.open_stages)
    cutoff = min(period.end, cut.as_of)
    bounds = {**cut.bounds(period), "cutoff": cutoff.to_pydatetime()}
    sql = (
        stays_sql(cut)
        + f"""
, limits AS (
    SELECT stage, quantile_cont(days, {STUCK_QUANTILE}) AS stuck_limit_days
    FROM stays_c WHERE left_at < $cutoff GROUP BY stage
),
marked AS (
    SELECT s.*, l.stuck_limit_days,
        {IN_PERIOD.format(column="s.entered_at")} AS entered,
        {IN_PERIOD.format(column="s.left_at")} AS ended,
        s.entered_at < $cutoff AND NOT coalesce(s.left_at < $cutoff, false) AS current,
        {_DAYS.format(end="$cutoff", start="s.entered_at")} AS age
    FROM stays_c s LEFT JOIN limits l ON l.stage = s.stage
)
SELECT {by} AS grp, stage,
    count(*) FILTER (WHERE entered) AS entered,
    count(*) FILTER (WHERE entered AND result = 'advanced') AS advanced,
    count(*) FILTER (WHERE entered AND result = 'lost') AS lost,
    count(*) FILTER (WHERE entered AND result = 'open') AS still_open,
    median(days) FILTER (WHERE ended) AS days_median,
    avg(days) FILTER (WHERE ended) AS days_mean,
    count(*) FILTER (WHERE ended) AS days_n,
    count(*) FILTER (WHERE current) AS in_stage,
    count(*) FILTER (WHERE current AND age > stuck_limit_days) AS stuck,
    max(stuck_limit_days) AS stuck_limit_days
FROM marked GROUP BY GROUPING SETS ((grp, stage), (stage))"""
    )
    frame = cut.query(sql, bounds, sources=by in SOURCE_KEYS, cold=False)
    if frame.empty:  # no stay in an open stage
        return pd.DataFrame()
    cells = {(group_label(r["grp"]), str(r["stage"])): r for r in frame.to_dict("records")}
    limit_of = {
        stage: float(r["stuck_limit_days"])
        for (group, stage), r in cells.items()
        if group == ALL_LABEL
        and r["stuck_limit_days"] is not None
        and r["stuck_limit_days"] == r["stuck_limit_days"]
    }
    seen = {group for (group, _), r in cells.items() if group != ALL_LABEL and int(r["entered"])}
    groups = [g for g in known_groups(cut.reps, by, seen) if only is None or g in only]
    rows = [
        _stage_row(by, group, stage, cells.get((group, stage)), limit_of.get(stage, NAN))
        for group in [*groups, ALL_LABEL]
        for stage in stages
    ]
    return pd.DataFrame(rows)


def _stage_row(by: str, group: str, stage: str, cell: Mapping[Any, Any] | None, limit: float) -> Row:
    """One group's row of one stage (``cell``: its aggregates, ``None`` without a stay)."""

    def count(name: str) -> int:
        return int(cell[name]) if cell else 0

    row: Row = {by: group, "stage": stage, "entered": count("entered")}
    advanced, lost = count("advanced"), count("lost")
    row.update(advanced=advanced, lost=lost, still_open=count("still_open"))
    add_rate(row, "stage_conversion", advanced, advanced + lost)
    n = count("days_n")
    row["days_median"] = float(cell["days_median"]) if cell and n else NAN
    row["days_mean"] = float(cell["days_mean"]) if cell and n else NAN
    row["days_n"] = n
    row["stuck_limit_days"] = limit
    row["in_stage"] = count("in_stage")
    stuck = count("stuck") if limit == limit else 0
    row["stuck"] = stuck
    add_rate(row, "stuck_share", stuck, row["in_stage"] if limit == limit else 0)
    return row


def stays_sql(cut: SqlCut) -> str:
    """``, stays_c AS (...)``: every stay in an open stage before the as-of, with its deal's keys.

    stays_c: opportunity_id, stage, entered_at, left_at (NULL while in it), result, days, and the
    deal's product, source and channel (where the query has them), rep, team, manager, region;
    ``change``: the row of the stage change that began the stay (with the deal and its time, the
    order of :func:`forecast.tracking.process.stays`' rows).
    """
    pipeline = cut.pipeline
    orders = ", ".join(f"({_text(s.name)}, {int(s.order)})" for s in pipeline.stages) or "(NULL, NULL)"
    closed = ", ".join(_text(s.name) for s in pipeline.stages if s.is_closed) or "NULL"
    lost = ", ".join(_text(name) for name in pipeline.lost_stages) or "NULL"
    return f"""
, orders(name, ord) AS (VALUES {orders}),
changes AS (
    SELECT h.opportunity_id, h.stage, h.entered_at, h.rowid AS nth,
        lag(h.stage) OVER (PARTITION BY h.opportunity_id ORDER BY h.entered_at, h.rowid) AS before
    FROM stage_history h SEMI JOIN deals_c d ON d.opportunity_id = h.opportunity_id
    WHERE h.entered_at < $as_of
),
moves AS (
    SELECT opportunity_id, stage, entered_at, nth,
        lead(stage) OVER (PARTITION BY opportunity_id ORDER BY entered_at, nth) AS next_stage,
        lead(entered_at) OVER (PARTITION BY opportunity_id ORDER BY entered_at, nth) AS next_at
    FROM changes WHERE before IS NULL OR stage <> before
),
stays_c AS (
    SELECT m.opportunity_id, m.stage, m.entered_at, m.nth AS change,
        d.* EXCLUDE (
            opportunity_id, created_at, closed_at, outcome, amount, known_amount, loss_reason, stage, nth
        ),
        CASE WHEN m.next_stage IS NOT NULL THEN m.next_at
            WHEN d.outcome = 'open' THEN NULL ELSE d.closed_at END AS left_at,
        CASE WHEN m.next_stage IS NULL THEN
                CASE WHEN d.outcome = 'open' THEN 'open'
                    WHEN d.outcome = 'won' THEN 'advanced' ELSE 'lost' END
            WHEN m.next_stage IN ({lost}) THEN 'lost'
            WHEN n.ord > s.ord THEN 'advanced' ELSE 'back' END AS result,
        {_DAYS.format(end="left_at", start="m.entered_at")} AS days
    FROM moves m
    JOIN deals_c d ON d.opportunity_id = m.opportunity_id
    LEFT JOIN orders s ON s.name = m.stage
    LEFT JOIN orders n ON n.name = m.next_stage
    WHERE m.stage NOT IN ({closed})
)"""
