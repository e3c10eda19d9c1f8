"""The sync's state in the warehouse: the exports done (``sync_exports``) and the cycles (``sync_cycles``).

Both are written in one transaction at the end of a cycle (:func:`commit_cycle`). An export is done
once ingested (or rejected: its content would be rejected again); the next cycles skip any export
with the same content hash. A cycle stopped before its commit leaves no trace here, so the next
cycle finds its exports again and redoes them (ingest is idempotent: rows are upserted by key and
rejects are not recorded twice).
"""

from __future__ import annotations

import json

import duckdb

from forecast.data.warehouse import Warehouse
from forecast.sync.report import CycleReport

EXPORTS_TABLE = "sync_exports"
CYCLES_TABLE = "sync_cycles"
_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {EXPORTS_TABLE} (
        sha256 VARCHAR, export VARCHAR, files JSON, status VARCHAR, ingest_id VARCHAR,
        rows_written BIGINT, rows_rejected BIGINT, reason VARCHAR, cycle_id VARCHAR,
        committed_at TIMESTAMP)""",
    f"""CREATE TABLE IF NOT EXISTS {CYCLES_TABLE} (
        cycle_id VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, seconds DOUBLE,
        source VARCHAR, source_format VARCHAR, target VARCHAR, files_seen INTEGER,
        files_ingested INTEGER, files_skipped INTEGER, files_rejected INTEGER, rows_scored BIGINT,
        rows_exported BIGINT, export_files JSON, errors JSON, notes JSON)""",
)


def done_hashes(warehouse: Warehouse) -> set[str]:
    """The content hashes of the exports earlier cycles ingested or rejected (none: no warehouse yet)."""
    if not warehouse.path.exists():
        return set()
    with warehouse.connect(read_only=True) as con:
        try:
            rows = con.execute(f"SELECT DISTINCT sha256 FROM {EXPORTS_TABLE}").fetchall()
        except duckdb.CatalogException:
            return set()
    return {str(r[0]) for r in rows}


def commit_cycle(warehouse: Warehouse, report: CycleReport) -> None:
    """Record the cycle and its done exports in one transaction.

    An ingested export is recorded as done only when the cycle had no error (else the next cycle
    redoes it, and with it the scoring and export that failed); a rejected one always is.
    """
    done = [o for o in report.outcomes if o.status == "rejected" or not report.errors]
    assert report.finished_at is not None
    when = report.finished_at.to_pydatetime()
    with warehouse.connect() as con:
        con.begin()
        try:
            for ddl in _DDL:
                con.execute(ddl)
            rows = [
                [
                    o.export.sha256,
                    str(o.export.path),
                    json.dumps(list(o.export.files)),
                    o.status,
                    o.ingest_id,
                    o.rows_written,
                    o.rows_rejected,
                    o.reason,
                    report.cycle_id,
                    when,
                ]
                for o in done
            ]
            if rows:
                con.executemany(f"INSERT INTO {EXPORTS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            con.execute(
                f"INSERT INTO {CYCLES_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    report.cycle_id,
                    report.started_at.to_pydatetime(),
                    when,
                    report.seconds,
                    report.source,
                    report.source_format,
                    report.target,
                    report.files_seen,
                    report.files_ingested,
                    report.files_skipped,
                    report.files_rejected,
                    report.total_scored,
                    report.rows_exported,
                    json.dumps(report.export_files),
                    json.dumps(report.errors),
                    json.dumps(report.notes),
                ],
            )
            con.commit()
        except BaseException:
            con.rollback()
            raise
