"""Data-quality summary of the warehouse: sizes, date ranges, completeness, rejects and warnings."""

from __future__ import annotations

from typing import Any

import duckdb

from forecast.data.schema import TABLES
from forecast.data.warehouse import Warehouse

_TIME_COLUMN = {
    "reps": "hired_at",
    "accounts": "created_at",
    "leads": "created_at",
    "opportunities": "created_at",
    "stage_history": "entered_at",
    "activities": "occurred_at",
    "engagement_events": "occurred_at",
    "quotas": "period_start",
}


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _table_summary(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, Any]:
    spec = TABLES[table]
    n = int(_one(con, f'SELECT count(*) FROM "{table}"'))
    time_col = _TIME_COLUMN[table]
    lo, hi = con.execute(f'SELECT min("{time_col}"), max("{time_col}") FROM "{table}"').fetchone() or (
        None,
        None,
    )
    completeness: dict[str, float] = {}
    if n:
        exprs = ", ".join(f'avg(("{c.name}" IS NOT NULL)::INT)' for c in spec.columns)
        values = con.execute(f'SELECT {exprs} FROM "{table}"').fetchone() or ()
        completeness = {c.name: round(float(v), 4) for c, v in zip(spec.columns, values, strict=True)}
    all_cols = [r[0] for r in con.execute(f'DESCRIBE "{table}"').fetchall()]
    custom = [c for c in all_cols if c not in spec.column_names]
    return {
        "rows": n,
        "time_column": time_col,
        "from": _iso(lo),
        "to": _iso(hi),
        "completeness": completeness,
        "custom_columns": custom,
    }


def _facts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    facts["leads_by_status"] = dict(
        con.execute("SELECT status, count(*) FROM leads GROUP BY 1 ORDER BY 1").fetchall()
    )
    n_leads = sum(facts["leads_by_status"].values())
    facts["lead_conversion_rate"] = (
        round(facts["leads_by_status"].get("converted", 0) / n_leads, 4) if n_leads else None
    )
    facts["opportunities_by_outcome"] = dict(
        con.execute("SELECT outcome, count(*) FROM opportunities GROUP BY 1 ORDER BY 1").fetchall()
    )
    won = facts["opportunities_by_outcome"].get("won", 0)
    lost = facts["opportunities_by_outcome"].get("lost", 0)
    facts["win_rate_closed"] = round(won / (won + lost), 4) if won + lost else None
    median_cycle = _one(
        con,
        "SELECT median(date_diff('day', created_at, closed_at)) FROM opportunities WHERE outcome = 'won'",
    )
    facts["median_cycle_days_won"] = None if median_cycle is None else float(median_cycle)
    facts["won_amount"] = _one(con, "SELECT sum(amount) FROM opportunities WHERE outcome = 'won'")
    facts["open_pipeline_amount"] = _one(con, "SELECT sum(amount) FROM opportunities WHERE outcome = 'open'")
    facts["activities_by_type"] = dict(
        con.execute("SELECT type, count(*) FROM activities GROUP BY 1 ORDER BY 1").fetchall()
    )
    reply = _one(
        con,
        "SELECT avg(email_replied::INT) FROM activities "
        "WHERE type = 'email' AND direction = 'outbound' AND email_replied IS NOT NULL",
    )
    facts["email_reply_rate"] = None if reply is None else round(float(reply), 4)
    facts["engagement_by_type"] = dict(
        con.execute("SELECT type, count(*) FROM engagement_events GROUP BY 1 ORDER BY 1").fetchall()
    )
    return facts


def _warnings(con: duckdb.DuckDBPyConnection, tables: dict[str, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for table, what in (
        ("leads", "lead scoring has nothing to learn from"),
        ("stage_history", "deal features cannot know a deal's stage at an earlier date"),
        ("activities", "activity features and rep activity metrics will be empty"),
        ("engagement_events", "prospect behaviour features will be empty"),
        ("quotas", "goal tracking and P(hit quota) are unavailable"),
    ):
        if tables[table]["rows"] == 0:
            out.append(f"no {table}: {what}")
    if tables["opportunities"]["rows"] and tables["stage_history"]["rows"]:
        missing = _one(
            con,
            "SELECT count(*) FROM opportunities o ANTI JOIN stage_history h USING (opportunity_id)",
        )
        if missing:
            out.append(f"{missing} opportunities have no stage history")
    n_rejects = _one(con, 'SELECT count(DISTINCT ("table", source_file, source_row)) FROM rejects')
    if n_rejects:
        out.append(f"{n_rejects} source rows were rejected; see the rejects table")
    return out


def quality_summary(warehouse: Warehouse) -> dict[str, Any]:
    """Summarise the warehouse for a data-quality check.

    Args:
        warehouse: The warehouse to read.

    Returns:
        ``tables`` (rows, date range, completeness per column, custom columns), ``facts`` (status
        mixes, conversion and win rates, cycle length, activity mix, reply rate), ``rejects``
        (records per table and rule), ``ingests`` (the import log) and ``warnings``.
    """
    with warehouse.connect(read_only=True) as con:
        tables = {t: _table_summary(con, t) for t in TABLES}
        rejects = [
            {"table": t, "rule": r, "records": int(n)}
            for t, r, n in con.execute(
                'SELECT "table", rule, count(*) FROM rejects GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2'
            ).fetchall()
        ]
        ingests = [
            {"ingest_id": i, "finished_at": _iso(f), "source_format": s, "source_path": p}
            for i, f, s, p in con.execute(
                "SELECT ingest_id, finished_at, source_format, source_path FROM ingest_log "
                "ORDER BY finished_at"
            ).fetchall()
        ]
        return {
            "warehouse": str(warehouse.path),
            "tables": tables,
            "facts": _facts(con),
            "rejects": rejects,
            "ingests": ingests,
            "warnings": _warnings(con, tables),
        }
