"""Validate a canonical import in bounded memory: row rules chunk by chunk, batch rules in DuckDB.

The in-memory path (:func:`forecast.data.validate.validate_batch`) holds every table in pandas;
at a million leads that peaks near 13 GiB. Here each file is read in chunks
(:mod:`forecast.data.chunked`). A chunk is coerced and checked by the same row rules
(:func:`~forecast.data.validate.validate_chunk`: coercion, pandera, temporal order, future
timestamps, outcome consistency) and appended to a table of a staging DuckDB file, with its
position, its key as text and whether it is still valid; its reject records go to a staged rejects
table. The rules that need the whole batch then run as SQL over the staged tables, with the same
semantics as the in-memory path:

- **duplicate keys:** every later occurrence (file order, then row order) of a complete key among
  rows still valid;
- **foreign keys** against the valid rows of the batch and the warehouse's rows, repeated until no
  new row is rejected, each pass against the keys valid at its start, only for tables that
  reference a table with new rejects;
- **history before created:** a stage change dated (by day) before its deal's ``created_at``,
  the import's valid deals overriding the warehouse's.

Only rejected rows come back to pandas (to format their records as the in-memory path does).
The staging file lives beside the warehouse and is deleted when the import ends; DuckDB spills to
disk beyond its memory limit, so memory stays bounded whatever the input.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pandas as pd

from forecast.data.chunked import TableChunks
from forecast.data.pipeline import SalesPipeline
from forecast.data.schema import SQL_TYPES, TABLE_ORDER, TABLES
from forecast.data.sources.base import RawTable
from forecast.data.staged_batch import StagedBatch, quote
from forecast.data.validate import (
    REJECT_COLUMNS,
    TableCounts,
    _as_text,
    _present_columns,
    _validate_raw,
    key_text,
)

if TYPE_CHECKING:
    from forecast.config import Settings

CATALOG = "temp"


@dataclass(frozen=True)
class StreamOptions:
    """When a canonical import streams through DuckDB, and how.

    Attributes:
        chunk_rows: Rows per chunk read and checked at a time (``FORECAST_INGEST_CHUNK_ROWS``).
        min_bytes: A canonical import whose files hold more bytes than this streams; smaller ones
            are validated in pandas at once (``FORECAST_INGEST_STREAM_BYTES``; ``0``: always stream).
        memory_limit: DuckDB's memory limit while streaming; beyond it DuckDB spills to the staging
            folder (``FORECAST_INGEST_MEMORY_LIMIT``).
    """

    chunk_rows: int = 250_000
    min_bytes: int = 64_000_000
    memory_limit: str = "1GB"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> StreamOptions:
        """The options of ``settings`` (default: :func:`forecast.config.load_settings`)."""
        from forecast.config import load_settings

        s = settings or load_settings()
        return cls(s.ingest_chunk_rows, s.ingest_stream_bytes, s.ingest_memory_limit)

    def applies(self, path: Path) -> bool:
        """Whether the import at ``path`` (a file or a folder of files) is large enough to stream."""
        if self.min_bytes <= 0:
            return True
        if path.is_file():
            return path.stat().st_size > self.min_bytes
        if not path.is_dir():
            return False
        files = [p for p in path.iterdir() if p.is_file() and p.stem in TABLES]
        return sum(p.stat().st_size for p in files) > self.min_bytes


@contextmanager
def staging(con: duckdb.DuckDBPyConnection, directory: Path | None, options: StreamOptions) -> Iterator[str]:
    """Set ``con`` up for staging in its temporary tables; delete what spilled to disk when done.

    Temporary tables need no write-ahead log nor checkpoint (an attached staging file cost both)
    and may be made on a read-only connection (a dry run). Beyond the memory limit DuckDB spills
    them to a new folder beside the warehouse, removed when the import ends.

    Args:
        con: The import's connection (it may be read-only).
        directory: Where to spill (beside the warehouse; ``None``: the system's temp dir).
        options: The memory limit.

    Yields:
        The staging catalog's name (``temp``).
    """
    folder = Path(tempfile.mkdtemp(prefix=".forecast-staging-", dir=directory))
    spill = str(folder / "spill").replace("'", "''")
    con.execute(f"SET memory_limit = '{options.memory_limit.replace(chr(39), '')}'")
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    try:
        yield CATALOG
    finally:
        with suppress(duckdb.Error):  # the connection may already be broken
            names = con.execute(
                "SELECT table_name FROM duckdb_tables() "
                "WHERE temporary AND starts_with(table_name, 'staged_')"
            ).fetchall()
            for (name,) in names:
                con.execute(f"DROP TABLE temp.{quote(name)}")
        shutil.rmtree(folder, ignore_errors=True)


class _Rejects:
    """Appends reject records to the staged rejects table, numbering them in order."""

    def __init__(self, con: duckdb.DuckDBPyConnection, batch: StagedBatch) -> None:
        self.con = con
        self.batch = batch
        columns = ", ".join(
            f"{quote(c)} {'BIGINT' if c == 'source_row' else 'VARCHAR'}" for c in REJECT_COLUMNS
        )
        con.execute(f"CREATE TEMP TABLE staged_rejects ({columns}, __seq BIGINT)")

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        frame = frame[REJECT_COLUMNS].assign(
            __seq=np.arange(self.batch.rejects_count, self.batch.rejects_count + len(frame))
        )
        self.con.register("_staged_rejects", frame)
        try:
            self.con.execute(f"INSERT INTO {self.batch.rejects} BY NAME SELECT * FROM _staged_rejects")
        finally:
            self.con.unregister("_staged_rejects")
        self.batch.rejects_count += len(frame)


def stage_files(
    con: duckdb.DuckDBPyConnection,
    catalog: str,
    files: list[tuple[str, TableChunks]],
    *,
    pipeline: SalesPipeline,
    as_of: pd.Timestamp,
    notes: list[str],
    warehouse_catalog: str | None,
    progress: Callable[[str], None] | None = None,
) -> StagedBatch:
    """Stage every file chunk by chunk, then apply the batch rules in SQL.

    Args:
        con: The import's connection, with ``catalog`` attached.
        catalog: The staging catalog (:func:`staging`).
        files: ``(table, opened file)`` pairs, in the order the adapter found them.
        pipeline: The pipeline stages are checked against.
        as_of: Nothing (except planned dates) may be later than this (naive UTC).
        notes: The adapter's notes.
        warehouse_catalog: The warehouse's catalog in ``con`` (foreign keys may point to its rows);
            ``None`` when the import is judged on its own.
        progress: Called with the table name as each file starts.

    Returns:
        The staged batch: counts, present columns, and the staged tables and rejects.
    """
    batch = StagedBatch(catalog, {}, pipeline, list(notes))
    rejects = _Rejects(con, batch)
    parts: dict[str, int] = {}
    for table, chunks in files:
        if progress is not None:
            progress(table)
        part = parts.get(table, -1) + 1
        parts[table] = part
        _stage_file(con, batch, rejects, table, part, chunks, pipeline, as_of)
    for table in [t for t in TABLE_ORDER if t in batch.counts]:
        _duplicate_keys(con, batch, rejects, table)
    _cross_table_rules(con, batch, rejects, warehouse_catalog)
    for table, tc in batch.counts.items():
        row = con.execute(f"SELECT count(*) FILTER (__ok), count(*) FROM {batch.table(table)}").fetchone()
        assert row is not None
        tc.valid = int(row[0])
        tc.rejected = int(row[1]) - tc.valid
    return batch


def _stage_file(
    con: duckdb.DuckDBPyConnection,
    batch: StagedBatch,
    rejects: _Rejects,
    table: str,
    part: int,
    chunks: TableChunks,
    pipeline: SalesPipeline,
    as_of: pd.Timestamp,
) -> None:
    spec = TABLES[table]
    source = str(chunks.path)
    header = pd.DataFrame({c: pd.Series([], dtype=object) for c in chunks.columns})
    layout, _ = _validate_raw(RawTable(table, header, source, pd.Series([], dtype="int64")), pipeline, as_of)
    columns = list(layout.columns)
    if table not in batch.counts:
        batch.counts[table] = TableCounts()
        batch.columns[table] = columns
        kinds = {c.name: c.kind for c in spec.columns}
        ddl = ", ".join(
            ["__part INTEGER", "__row BIGINT", "__ok BOOLEAN"]
            + [f"{quote(c)} {SQL_TYPES[kinds[c]] if c in kinds else 'VARCHAR'}" for c in columns]
        )
        con.execute(f"CREATE TEMP TABLE {quote('staged_t_' + table)} ({ddl})")
    else:  # a second file of one table (an adapter's): new extra columns join the staged table
        for c in columns:
            if c not in batch.columns[table]:
                con.execute(f"ALTER TABLE {batch.table(table)} ADD COLUMN {quote(c)} VARCHAR")
                batch.columns[table].append(c)
    tc = batch.counts[table]
    tc.files.append(source)
    seen = dict.fromkeys(batch.present_columns.get(table, []))
    seen.update(dict.fromkeys(_present_columns(RawTable(table, header, source, pd.Series([])), layout)))
    for first, frame in chunks:
        raw = RawTable(table, frame, source, pd.Series(np.arange(first, first + len(frame))))
        coerced, failures = _validate_raw(raw, pipeline, as_of)
        staged = coerced.assign(
            __part=part, __row=raw.source_row.to_numpy(), __ok=~failures.failed_mask(len(coerced))
        )
        con.register("_staged_chunk", staged)
        try:
            con.execute(f"INSERT INTO {batch.table(table)} BY NAME SELECT * FROM _staged_chunk")
        finally:
            con.unregister("_staged_chunk")
        if failures.rows:
            rejects.add(failures.to_frame(raw, key_text(coerced, spec.key)))
        tc.read += len(coerced)
    batch.present_columns[table] = [c for c in batch.columns[table] if c in seen]


def _record(
    con: duckdb.DuckDBPyConnection,
    batch: StagedBatch,
    rejects: _Rejects,
    table: str,
    bad: pd.DataFrame,
    column: str,
    rule: str,
    message: pd.Series | str,
) -> None:
    """Stage reject records for the rows of ``bad`` (``__part``, ``__row``, the key columns, ``value``)."""
    if bad.empty:
        return
    files = dict(enumerate(batch.counts[table].files))
    rejects.add(
        pd.DataFrame(
            {
                "table": table,
                "source_file": bad["__part"].map(files).to_numpy(),
                "source_row": bad["__row"].to_numpy(dtype="int64"),
                "key": key_text(bad, TABLES[table].key).to_numpy(),
                "column": column,
                "rule": rule,
                "value": _as_text(bad["value"]).to_numpy(),
                "message": message if isinstance(message, str) else message.to_numpy(),
            }
        )
    )


def _reject_rows(con: duckdb.DuckDBPyConnection, batch: StagedBatch, table: str, bad: pd.DataFrame) -> None:
    """Mark the rows of ``bad`` (``__part``, ``__row``) as no longer valid."""
    if bad.empty:
        return
    con.register("_staged_bad", bad[["__part", "__row"]])
    try:
        con.execute(
            f"UPDATE {batch.table(table)} t SET __ok = false FROM _staged_bad b "
            "WHERE t.__part = b.__part AND t.__row = b.__row"
        )
    finally:
        con.unregister("_staged_bad")


def _duplicate_keys(
    con: duckdb.DuckDBPyConnection, batch: StagedBatch, rejects: _Rejects, table: str
) -> None:
    """Reject every later occurrence of a complete primary key among the rows still valid."""
    key = list(TABLES[table].key)
    cols = ", ".join(quote(k) for k in key)
    complete = " AND ".join(f"{quote(k)} IS NOT NULL" for k in key)
    bad = con.execute(
        f"""SELECT __part, __row, {cols} FROM (
              SELECT __part, __row, {cols},
                     row_number() OVER (PARTITION BY {cols} ORDER BY __part, __row) AS n
              FROM {batch.table(table)} WHERE __ok AND {complete})
            WHERE n > 1 ORDER BY __part, __row"""
    ).df()
    bad["value"] = key_text(bad, tuple(key))
    label = key[0] if len(key) == 1 else "+".join(key)
    _record(
        con,
        batch,
        rejects,
        table,
        bad,
        label,
        "duplicate_key",
        f"duplicate {label}: an earlier row of this import has the same key",
    )
    _reject_rows(con, batch, table, bad)


def _warehouse_rows(warehouse_catalog: str | None, table: str, columns: list[str]) -> str:
    """A query of ``columns`` of the warehouse's ``table`` (no rows without a warehouse)."""
    if warehouse_catalog is None:
        types = {c.name: SQL_TYPES[c.kind] for c in TABLES[table].columns}
        nulls = ", ".join(f"NULL::{types[c]} AS {quote(c)}" for c in columns)
        return f"(SELECT {nulls} WHERE false)"
    return f"(SELECT {', '.join(quote(c) for c in columns)} FROM {quote(warehouse_catalog)}.{quote(table)})"


def _cross_table_rules(
    con: duckdb.DuckDBPyConnection, batch: StagedBatch, rejects: _Rejects, warehouse_catalog: str | None
) -> None:
    """Foreign keys and history-after-creation, repeated until no new row is rejected."""
    targets_all = {fk.table for spec in TABLES.values() for fk in spec.foreign_keys}
    dirty: set[str] | None = None
    while dirty is None or dirty:
        for target in targets_all:
            pk = quote(TABLES[target].key[0])
            own = (
                f" UNION SELECT {pk} FROM {batch.table(target)} WHERE __ok AND {pk} IS NOT NULL"
                if target in batch.counts
                else ""
            )
            stored = _warehouse_rows(warehouse_catalog, target, [TABLES[target].key[0]])
            con.execute(  # no NULL key: NOT IN a set holding NULL would match nothing
                f"CREATE OR REPLACE TEMP TABLE {quote('staged_valid_' + target)} AS "
                f"SELECT {pk} AS k FROM {stored} WHERE {pk} IS NOT NULL{own}"
            )
        for table in batch.counts:
            if len(TABLES[table].key) == 1:
                pk = quote(TABLES[table].key[0])
                con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {quote('staged_rejected_' + table)} AS "
                    f"SELECT DISTINCT {pk} AS k FROM {batch.table(table)} WHERE NOT __ok AND {pk} IS NOT NULL"
                )
        newly: set[str] = set()
        for table in [t for t in TABLE_ORDER if t in batch.counts]:
            targets = {fk.table for fk in TABLES[table].foreign_keys}
            if table == "stage_history":
                targets.add("opportunities")
            if dirty is not None and not targets & dirty:
                continue
            found = _foreign_keys(con, batch, rejects, table)
            if table == "stage_history":
                found |= _history_after_created(con, batch, rejects, warehouse_catalog)
            if found:
                newly.add(table)
        dirty = newly


def _foreign_keys(con: duckdb.DuckDBPyConnection, batch: StagedBatch, rejects: _Rejects, table: str) -> bool:
    """Check every foreign key of ``table`` against the keys valid at the pass's start."""
    bad_rows: list[pd.DataFrame] = []
    keys = ", ".join(quote(k) for k in TABLES[table].key)
    for fk in TABLES[table].foreign_keys:
        col = quote(fk.column)
        valid = f"temp.{quote('staged_valid_' + fk.table)}"
        if fk.table in batch.counts:
            rejected = f"temp.{quote('staged_rejected_' + fk.table)}"
            cascaded = f"{col} IN (SELECT k FROM {rejected})"
        else:
            cascaded = "false"
        bad = con.execute(
            f"""SELECT __part, __row, {keys}, {col} AS value, {cascaded} AS cascaded
            FROM {batch.table(table)}
            WHERE __ok AND {col} IS NOT NULL AND {col} NOT IN (SELECT k FROM {valid})
            ORDER BY __part, __row"""
        ).df()
        if bad.empty:
            continue
        message = pd.Series(
            np.where(
                bad["cascaded"].to_numpy(dtype=bool),
                f"{fk.column}: that row of {fk.table} was itself rejected in this import",
                f"{fk.column}: no such row in {fk.table} (neither in this import nor in the warehouse)",
            )
        )
        _record(con, batch, rejects, table, bad, fk.column, "foreign_key", message)
        bad_rows.append(bad)
    for bad in bad_rows:
        _reject_rows(con, batch, table, bad)
    return bool(bad_rows)


def _history_after_created(
    con: duckdb.DuckDBPyConnection, batch: StagedBatch, rejects: _Rejects, warehouse_catalog: str | None
) -> bool:
    """Reject stage changes dated (by day) before their deal's ``created_at``."""
    own = (
        f"""SELECT opportunity_id, created_at FROM {batch.table("opportunities")} WHERE __ok
            QUALIFY row_number() OVER (PARTITION BY opportunity_id ORDER BY __part DESC, __row DESC) = 1"""
        if "opportunities" in batch.counts
        else "SELECT NULL::VARCHAR AS opportunity_id, NULL::TIMESTAMP AS created_at WHERE false"
    )
    stored = _warehouse_rows(warehouse_catalog, "opportunities", ["opportunity_id", "created_at"])
    keys = ", ".join(f"h.{quote(k)}" for k in TABLES["stage_history"].key)
    bad = con.execute(
        f"""WITH own AS ({own}),
        lookup AS (
            SELECT opportunity_id, created_at FROM own
            UNION ALL
            SELECT s.opportunity_id, s.created_at FROM {stored} s
            WHERE s.opportunity_id NOT IN (SELECT opportunity_id FROM own WHERE opportunity_id IS NOT NULL)
        )
        SELECT h.__part, h.__row, {keys}, h.entered_at AS value
        FROM {batch.table("stage_history")} h JOIN lookup l ON h.opportunity_id = l.opportunity_id
        WHERE h.__ok AND l.created_at IS NOT NULL AND h.entered_at::DATE < l.created_at::DATE
        ORDER BY h.__part, h.__row"""
    ).df()
    _record(
        con,
        batch,
        rejects,
        "stage_history",
        bad,
        "entered_at",
        "history_before_created",
        "entered_at is before the deal's created_at",
    )
    _reject_rows(con, batch, "stage_history", bad)
    return not bad.empty


def rejects_summary(
    con: duckdb.DuckDBPyConnection, batch: StagedBatch
) -> tuple[list[dict[str, object]], list[dict[str, object]], pd.DataFrame]:
    """The staged rejects as the report needs them.

    Returns:
        Records per (table, rule, column), most first; the first 20 records; and per (table, rule,
        column) the distinct source rows rejected (``rows``), for
        :func:`forecast.data.reject_guard.excessive_from_counts`.
    """
    by_rule = con.execute(
        f"""SELECT "table", rule, "column", count(*) AS records FROM {batch.rejects}
        GROUP BY ALL ORDER BY records DESC, "table", rule, "column" """
    ).df()
    sample = con.execute(f"SELECT * FROM {batch.rejects_query()} LIMIT 20").df()
    groups = con.execute(
        f"""SELECT "table", rule, "column", count(DISTINCT (source_file, source_row)) AS rows
        FROM {batch.rejects} GROUP BY ALL ORDER BY ALL"""
    ).df()
    return _records(by_rule), _records(sample), groups


def reject_examples(
    con: duckdb.DuckDBPyConnection, batch: StagedBatch, table: str, rule: str, column: str
) -> tuple[str, ...]:
    """Up to three distinct rejected values of one (table, rule, column), in record order."""
    rows = con.execute(
        f"""SELECT "value" FROM {batch.rejects}
        WHERE "table" = ? AND rule = ? AND "column" IS NOT DISTINCT FROM ? AND "value" IS NOT NULL
        GROUP BY "value" ORDER BY min(__seq) LIMIT 3""",
        [table, rule, column],
    ).fetchall()
    return tuple(str(r[0]) for r in rows)


def _records(frame: pd.DataFrame) -> list[dict[str, object]]:
    out = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{str(k): v.item() if hasattr(v, "item") else v for k, v in r.items()} for r in out]
