"""The Prospects list (docs/tracking.md, 2) from the rows DuckDB cuts, selects and looks up.

The list is one row per lead and deal open at the snapshot (the period's end, or the as of if
earlier). DuckDB cuts the warehouse at the as of (:class:`~forecast.tracking.sql_cut.SqlCut`) and
then at the snapshot, by the rules of :func:`forecast.tracking.prospects.prospects`:

- a lead is open then if created before it and ``new``, ``working`` or ``qualified`` then
  (:func:`~forecast.data.as_of.lead_status_at` of the lead as known at the as of);
- a deal is open then if created before it and not closed before it, with the stage, amount and
  expected close date of its last stage change before it where that change gives one, else those
  known at the as of; open in a closed stage, it is in the last open one;
- each prospect's last done activity before the snapshot and its earliest activity planned at or
  after it (by its deal, else its lead; ties in the table's order), its lead's engagement of the 30
  days before and last engagement, and its lead's latest written score not after the snapshot.

It hands over those rows alone (about a tenth of the leads of a large CRM), the leads and then the
deals in the tables' order, and the list is made by the in-memory report's own functions
(:func:`~forecast.tracking.prospects.prospect_rows`, :func:`~forecast.tracking.prospects.completed`):
the same rows in the same order (``tests/unit/test_tracking_sql_reports.py``).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from forecast.tracking.common import check_grouping
from forecast.tracking.periods import Period
from forecast.tracking.prospects import (
    BEHAVIOUR,
    BEHAVIOUR_DAYS,
    GROUPINGS,
    KEYS,
    OPEN_STATUSES,
    completed,
    empty_list,
    prospect_rows,
)
from forecast.tracking.sql_cut import SqlCut, _base_tables, _collated, _present, _text, last_change

_SCORE_TYPES = {"lead_id": {"VARCHAR"}, "score": {"DOUBLE"}, "band": {"VARCHAR"}, "as_of": {"TIMESTAMP"}}
"""The types of the written scores' columns the latest score is found for in SQL (``band`` optional)."""


_AS_DEALS = {
    "prospect_id": "opportunity_id",
    "status": "stage",
    "deal_size": "amount",
    "expected_close": "expected_close_date",
}
"""The deal rows' columns under the names of the deals' frame
(:func:`~forecast.tracking.prospects.prospect_rows`)."""


def prospects(cut: SqlCut, period: Period, by: str = "rep") -> pd.DataFrame:
    """:func:`forecast.tracking.prospects.prospects` of the CRM ``cut`` describes, its rows from DuckDB."""
    check_grouping("prospects", by, GROUPINGS, "leads carry no product")
    cutoff = min(period.end, cut.as_of)
    rows = _rows(cut, cutoff)
    is_lead = (rows["kind"] == "lead").to_numpy()
    deals = rows[~is_lead].rename(columns=_AS_DEALS)
    out = prospect_rows(rows[is_lead], deals)
    if out.empty:
        return empty_list(out)
    looked = rows.reset_index(drop=True)
    planned = looked[looked["next_action_at"].notna()].drop_duplicates("prospect_id")
    first = planned.set_index("prospect_id")[["next_action", "next_action_at"]].rename(
        columns={"next_action": "type", "next_action_at": "scheduled_for"}
    )
    behaviour = {name: looked[name].fillna(0).astype("int64") for name, _types in BEHAVIOUR}
    behaviour["last_engagement"] = looked["last_engagement"]
    return completed(out, cutoff, looked["last_contact"], first, behaviour, _scores(cut, cutoff), by)


def _rows(cut: SqlCut, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The open leads and then the open deals at ``cutoff``, in the tables' order, with their lookups."""
    pipeline = cut.pipeline
    opened = pipeline.open_stages
    open_stages = ", ".join(_text(name) for name in opened) or "NULL"
    last_open = _text(opened[-1]) if opened else "NULL"
    statuses = ", ".join(_text(s) for s in OPEN_STATUSES)
    keys = ", ".join(KEYS)
    engagement = "engagement_events" in _present(cut.con)
    counts = ", ".join(
        f"count(*) FILTER (WHERE occurred_at >= $since AND type IN ({', '.join(_text(t) for t in types)}))"
        f" AS {name}"
        for name, types in BEHAVIOUR
    )
    behaviour = (
        f"""SELECT e.lead_id AS id, {counts}, max(e.occurred_at) AS last_engagement
    FROM engagement_events e SEMI JOIN open_p p ON p.lead_id = e.lead_id
    WHERE e.occurred_at < $cutoff GROUP BY e.lead_id"""
        if engagement
        else "SELECT NULL::VARCHAR AS id, "
        + ", ".join(f"0 AS {name}" for name, _types in BEHAVIOUR)
        + ", NULL::TIMESTAMP AS last_engagement WHERE false"
    )
    sql = f"""
, changed AS ({last_change("$cutoff")}),
open_l AS (
    SELECT * FROM (
        SELECT lead_id AS prospect_id, 0 AS part, nth, lead_id, rep, rep AS rep_id, team, manager, region,
            source, channel, created_at,
            CASE WHEN converted_at < $cutoff THEN 'converted'
                WHEN status_changed_at < $cutoff THEN status ELSE 'working' END AS status
        FROM leads_k WHERE created_at < $cutoff)
    WHERE status IN ({statuses})
),
open_d AS (
    SELECT d.opportunity_id AS prospect_id, 1 AS part, d.nth, d.lead_id, d.rep, d.rep AS rep_id, d.team,
        d.manager, d.region, d.source, d.channel, d.created_at,
        CASE WHEN NOT coalesce(coalesce(c.stage, d.stage) IN ({open_stages}), false) AND {bool(opened)}
            THEN {last_open} ELSE coalesce(c.stage, d.stage) END AS status,
        CAST(coalesce(c.amount, d.known_amount) AS DOUBLE) AS deal_size,
        coalesce(c.expected_close_date, d.expected_close_date) AS expected_close
    FROM deals_c d LEFT JOIN changed c ON c.opportunity_id = d.opportunity_id
    WHERE d.created_at < $cutoff AND NOT coalesce(d.closed_at < $cutoff, false)
),
open_p AS (
    SELECT *, NULL::DOUBLE AS deal_size, NULL::TIMESTAMP AS expected_close FROM open_l
    UNION ALL BY NAME SELECT * FROM open_d
),
contacts AS (
    SELECT entity AS id, max(occurred_at) AS last_contact FROM (
        SELECT coalesce(opportunity_id, lead_id) AS entity, occurred_at FROM activities
        WHERE occurred_at < $cutoff AND coalesce(outcome, 'completed') <> 'scheduled')
    SEMI JOIN open_p p ON p.prospect_id = entity
    GROUP BY entity
),
planned AS (
    SELECT entity AS id, type, scheduled_for FROM (
        SELECT entity, type, scheduled_for,
            row_number() OVER (PARTITION BY entity ORDER BY scheduled_for, nth) AS n
        FROM (
            SELECT coalesce(opportunity_id, lead_id) AS entity, type, scheduled_for, rowid AS nth
            FROM activities WHERE occurred_at < $cutoff AND scheduled_for >= $cutoff)
        SEMI JOIN open_p p ON p.prospect_id = entity)
    WHERE n = 1
),
behaviour AS ({behaviour})
SELECT p.prospect_id, CASE WHEN p.part = 0 THEN 'lead' ELSE 'opportunity' END AS kind, p.lead_id, {keys},
    p.status, p.created_at, p.deal_size, p.expected_close, c.last_contact,
    n.type AS next_action, n.scheduled_for AS next_action_at,
    {", ".join(f"b.{name}" for name, _types in BEHAVIOUR)}, b.last_engagement
FROM open_p p
LEFT JOIN contacts c ON c.id = p.prospect_id
LEFT JOIN planned n ON n.id = p.prospect_id
LEFT JOIN behaviour b ON b.id = p.lead_id
ORDER BY p.part, p.nth"""
    times = {"cutoff": cutoff.to_pydatetime()}
    if engagement:  # (a parameter the query does not read is an error)
        times["since"] = (cutoff - pd.Timedelta(days=BEHAVIOUR_DAYS)).to_pydatetime()
    rows = cut.query(sql, times, sources=True, cold=False)
    if not engagement:  # the read's empty table: its times in nanoseconds
        rows["last_engagement"] = rows["last_engagement"].astype("datetime64[ns]")
    return rows


def _scores(cut: SqlCut, cutoff: pd.Timestamp) -> pd.DataFrame | None:
    """The written lead scores the list reads: each lead's latest not after ``cutoff`` (``None``: none).

    Found in SQL where the table has the columns of ``forecast score leads --write-back`` in their
    types; any other ``lead_scores`` table is read whole, as the in-memory read reads it.
    """
    con = cut.con
    if "lead_scores" not in _present(con):
        return None
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'lead_scores'"
    ).fetchall()
    types = {str(name): str(kind) for name, kind in rows}
    typed = all(types.get(c, "VARCHAR") in kinds for c, kinds in _SCORE_TYPES.items())
    plain = "lead_scores" in _base_tables(con) and not _collated(
        con, ("lead_scores",)
    )  # NOCASE: grouped otherwise
    if not (typed and plain and {"lead_id", "score", "as_of"} <= types.keys()):
        return con.execute('SELECT * FROM "lead_scores"').df()
    band = ", band" if "band" in types else ""
    try:
        return con.execute(
            f"""SELECT lead_id, score{band}, as_of FROM (
                SELECT lead_id, score{band}, as_of,
                    row_number() OVER (PARTITION BY lead_id ORDER BY as_of DESC, rowid DESC) AS n
                FROM lead_scores WHERE as_of <= $cutoff AND lead_id IS NOT NULL)
            WHERE n = 1""",
            {"cutoff": cutoff.to_pydatetime()},
        ).df()
    except duckdb.Error:  # (a table without a row id)
        return con.execute('SELECT * FROM "lead_scores"').df()
