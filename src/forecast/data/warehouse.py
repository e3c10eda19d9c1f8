"""The warehouse: one DuckDB file with a table per canonical entity, ``rejects`` and ``ingest_log``.

Each warehouse has an identity (:func:`warehouse_id`): a UUID written once into ``warehouse_meta``
when the file is first opened for writing, stable across imports. A model records the identity of
the warehouse it was trained on, so that scoring another CRM with it is refused by default.

All writes of one import happen in a single transaction: either every valid row, reject and log
entry lands, or nothing does. Rows are upserted by primary key, so importing the same files twice
changes nothing and a later export updates only what changed.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from forecast.data.pipeline import SalesPipeline
from forecast.data.schema import SQL_TYPES, TABLE_ORDER, TABLES
from forecast.data.staged_batch import StagedBatch
from forecast.data.validate import REJECT_COLUMNS, ValidatedBatch, WarehouseView
from forecast.errors import InputError

_META_DDL = [
    """CREATE TABLE IF NOT EXISTS rejects (
        "table" VARCHAR, source_file VARCHAR, source_row BIGINT, "key" VARCHAR, "column" VARCHAR,
        rule VARCHAR, "value" VARCHAR, message VARCHAR, ingest_id VARCHAR, ingested_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS ingest_log (
        ingest_id VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, source_format VARCHAR,
        source_path VARCHAR, as_of TIMESTAMP, counts JSON, notes JSON)""",
    """CREATE TABLE IF NOT EXISTS pipeline_stages (
        pipeline VARCHAR, stage VARCHAR, stage_order INTEGER, is_closed BOOLEAN, is_won BOOLEAN)""",
    """CREATE TABLE IF NOT EXISTS warehouse_meta ("key" VARCHAR, "value" VARCHAR)""",
]
IDENTITY_KEY = "warehouse_id"
"""The ``warehouse_meta`` key of the warehouse's identity."""


_LOCK_HOLDER = re.compile(r"Could not set lock on file.*?\(PID (\d+)\)", re.DOTALL)


class WarehouseBusyError(InputError):
    """Another process holds the warehouse file's lock (DuckDB allows one writer, or many readers).

    Attributes:
        name: The warehouse file's name (not its path: the message may reach an HTTP client).
        pid: The holder's process id, when DuckDB names it.
    """

    def __init__(self, name: str, pid: int | None) -> None:
        self.name = name
        self.pid = pid
        holder = f" (PID {pid})" if pid is not None else ""
        super().__init__(f"the warehouse {name} is in use by another process{holder}, try again")


def _lock_holder(exc: duckdb.Error) -> tuple[bool, int | None]:
    """Whether ``exc`` is DuckDB's file-lock conflict, and the holder's PID if it says."""
    match = _LOCK_HOLDER.search(str(exc))
    if match:
        return True, int(match.group(1))
    return "Could not set lock on file" in str(exc), None


def connect_duckdb(
    path: str = ":memory:", read_only: bool = False, lock_wait: float | None = None
) -> duckdb.DuckDBPyConnection:
    """Open DuckDB with its own progress bar off: it would draw on stdout, reserved for results.

    A file another process holds (an import writing, a service reading) is retried with growing
    pauses (0.05 s doubling to 1 s) for up to ``lock_wait`` seconds.

    Args:
        path: The database file, or ``:memory:``.
        read_only: Open read-only (many readers may share a file; not with a writer).
        lock_wait: Seconds to wait for a held lock (default: ``FORECAST_WAREHOUSE_LOCK_WAIT``).

    Raises:
        WarehouseBusyError: The lock was still held after ``lock_wait`` seconds.
    """
    if lock_wait is None and path != ":memory:":
        from forecast.config import load_settings

        lock_wait = load_settings().warehouse_lock_wait
    deadline = time.monotonic() + (lock_wait or 0.0)
    pause = 0.05
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except duckdb.IOException as exc:
            locked, pid = _lock_holder(exc)
            if not locked:
                raise
            left = deadline - time.monotonic()
            if left <= 0:
                raise WarehouseBusyError(Path(path).name, pid) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)
    con.execute("SET enable_progress_bar = false")
    return con


class PipelineConflictError(Exception):
    """The import's pipeline differs from the one the warehouse's deals follow."""


@dataclass
class UpsertCounts:
    """What an upsert did to one table."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Warehouse:
    """A DuckDB warehouse file.

    Args:
        path: The DuckDB file; its folder is created if needed.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open a connection (created with the schema if the file is new and not read-only)."""
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no warehouse here yet; run `forecast ingest` first")
        if not read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect_duckdb(str(self.path), read_only=read_only)
        try:
            if not read_only:
                self._ensure_schema(con)
            yield con
        finally:
            con.close()

    @staticmethod
    def _ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
        for spec in TABLES.values():
            cols = ", ".join(f"{_q(c.name)} {SQL_TYPES[c.kind]}" for c in spec.columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS {_q(spec.name)} ({cols})")
        for ddl in _META_DDL:
            con.execute(ddl)
        if _read_identity(con) is None:  # a new warehouse, or one created before identities
            con.execute("INSERT INTO warehouse_meta VALUES (?, ?)", [IDENTITY_KEY, str(uuid.uuid4())])

    def identity(self) -> str:
        """The warehouse's identity (a UUID), given to it now if it was created without one.

        Read-only when the identity exists; a warehouse created before identities gets one on this
        first read (a short write, which waits for a held lock like any other).

        Raises:
            FileNotFoundError: No warehouse at this path.
        """
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no warehouse here yet; run `forecast ingest` first")
        with self.connect(read_only=True) as con:
            found = _read_identity(con)
        if found is not None:
            return found
        with self.connect() as con:  # _ensure_schema gives it one
            found = _read_identity(con)
        assert found is not None
        return found

    # ------------------------------------------------------------------ reads

    def read_table(self, table: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Return a whole table as a frame (canonical and custom columns)."""
        cols = "*" if columns is None else ", ".join(_q(c) for c in columns)
        with self.connect(read_only=True) as con:
            return con.execute(f"SELECT {cols} FROM {_q(table)}").df()

    def pipeline(self) -> SalesPipeline | None:
        """The pipeline stored with the warehouse's deals, if any."""
        if not self.path.exists():
            return None
        with self.connect(read_only=True) as con:
            return read_pipeline(con)

    def stored_pipeline(self) -> tuple[SalesPipeline | None, bool]:
        """The stored pipeline (if any) and whether the warehouse holds deals that follow it."""
        if not self.path.exists():
            return None, False
        with self.connect(read_only=True) as con:
            pipeline = read_pipeline(con)
            try:
                row = con.execute("SELECT count(*) FROM opportunities").fetchone()
            except duckdb.CatalogException:
                row = None
        return pipeline, bool(row is not None and row[0] > 0)

    # ------------------------------------------------------------------ writes

    def load(
        self,
        batch: ValidatedBatch,
        *,
        source_format: str,
        source_path: str,
        as_of: pd.Timestamp,
        started_at: pd.Timestamp,
    ) -> tuple[str, dict[str, UpsertCounts]]:
        """Write a validated batch in one transaction (see :func:`write_batch`)."""
        with self.connect() as con:
            return write_batch(
                con,
                batch,
                source_format=source_format,
                source_path=source_path,
                as_of=as_of,
                started_at=started_at,
            )


def write_batch(
    con: duckdb.DuckDBPyConnection,
    batch: ValidatedBatch | StagedBatch,
    *,
    source_format: str,
    source_path: str,
    as_of: pd.Timestamp,
    started_at: pd.Timestamp,
) -> tuple[str, dict[str, UpsertCounts]]:
    """Write a validated batch through an open connection, in one transaction.

    Args:
        con: A writable connection to the warehouse.
        batch: Valid rows and rejects: in pandas, or staged in DuckDB (a streamed import, whose
            staging catalog ``con`` has attached).
        source_format: The adapter used.
        source_path: The path imported.
        as_of: The as-of time validation used.
        started_at: When the import started.

    Returns:
        The ingest id and per-table upsert counts.

    Raises:
        PipelineConflictError: The warehouse holds deals of another pipeline (nothing is written).
    """
    ingest_id = uuid.uuid4().hex[:12]
    upserts: dict[str, UpsertCounts] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        _store_pipeline(con, batch)
        if isinstance(batch, StagedBatch):
            for table in TABLE_ORDER:
                if table in batch.counts:
                    upserts[table] = _upsert_staged(con, batch, table)
            if batch.rejects_count:
                _insert_rejects_from(con, batch.rejects_query(), ingest_id, started_at)
        else:
            for table in TABLE_ORDER:
                if table in batch.tables:
                    present = batch.present_columns.get(table)
                    upserts[table] = _upsert(con, table, batch.tables[table], present)
            _insert_rejects(con, batch.rejects, ingest_id, started_at)
        counts = {t: {**c.as_dict(), **vars(upserts[t])} for t, c in batch.counts.items()}
        con.execute(
            "INSERT INTO ingest_log VALUES (?, ?, now()::TIMESTAMP, ?, ?, ?, ?, ?)",
            [
                ingest_id,
                started_at.to_pydatetime(),
                source_format,
                source_path,
                as_of.to_pydatetime(),
                json.dumps(counts),
                json.dumps(batch.notes),
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return ingest_id, upserts


def _store_pipeline(con: duckdb.DuckDBPyConnection, batch: ValidatedBatch | StagedBatch) -> None:
    has_deals = any(
        c.read > 0 for t in ("opportunities", "stage_history") if (c := batch.counts.get(t)) is not None
    )
    current = read_pipeline(con)
    if current is not None and current.names != batch.pipeline.names:
        n_deals = con.execute("SELECT count(*) FROM opportunities").fetchone()
        if has_deals and n_deals is not None and n_deals[0] > 0:
            raise PipelineConflictError(
                f"the warehouse's deals follow pipeline {current.name!r} ({', '.join(current.names)}); "
                f"this import follows {batch.pipeline.name!r} ({', '.join(batch.pipeline.names)}). "
                "Use another warehouse (--warehouse) or map the stages first."
            )
    if has_deals or current is None:
        con.execute("DELETE FROM pipeline_stages")
        con.executemany(
            "INSERT INTO pipeline_stages VALUES (?, ?, ?, ?, ?)",
            [[batch.pipeline.name, s.name, s.order, s.is_closed, s.is_won] for s in batch.pipeline.stages],
        )


def _read_identity(con: duckdb.DuckDBPyConnection) -> str | None:
    try:
        row = con.execute(
            'SELECT "value" FROM warehouse_meta WHERE "key" = ? LIMIT 1', [IDENTITY_KEY]
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return None if row is None else str(row[0])


def warehouse_id(path: Path) -> str:
    """The identity of the warehouse at ``path`` (see :meth:`Warehouse.identity`)."""
    return Warehouse(path).identity()


def read_pipeline(con: duckdb.DuckDBPyConnection) -> SalesPipeline | None:
    """The pipeline stored in the warehouse (``pipeline_stages``), or ``None`` where none is stored."""
    try:
        rows = con.execute(
            "SELECT pipeline, stage, is_closed, is_won FROM pipeline_stages ORDER BY rowid"
        ).fetchall()
    except duckdb.CatalogException:
        return None
    if not rows:
        return None
    return SalesPipeline.from_dict(
        {"name": rows[0][0], "stages": [{"name": r[1], "is_closed": r[2], "is_won": r[3]} for r in rows]}
    )


def _stored_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, tuple[str, str]]:
    """The table's columns as ``{lower-case name: (stored name, SQL type)}`` (SQL names ignore case)."""
    rows = con.execute(f"DESCRIBE {_q(table)}").fetchall()
    return {str(r[0]).lower(): (str(r[0]), str(r[1])) for r in rows}


def _prepare_columns(
    con: duckdb.DuckDBPyConnection, table: str, columns: list[str]
) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """Give the columns the table's spelling and add the columns the table lacks.

    A column the table already has up to case (``region`` vs a stored ``Region``) takes the stored
    name, since SQL names ignore case. New custom columns are added as VARCHAR (custom columns
    are text, see ``coerce_frame``); a missing canonical column (an older warehouse) gets its type.

    Returns:
        The columns' names as stored and the table's columns (see :func:`_stored_columns`).
    """
    canonical = {c.name: c for c in TABLES[table].columns}
    stored = _stored_columns(con, table)
    names = [stored[c.lower()][0] if c.lower() in stored else c for c in columns]
    for col in names:
        if col.lower() not in stored:
            sql_type = SQL_TYPES[canonical[col].kind] if col in canonical else "VARCHAR"
            con.execute(f"ALTER TABLE {_q(table)} ADD COLUMN {_q(col)} {sql_type}")
            stored[col.lower()] = (col, sql_type)
    return names, stored


def _incoming_select(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: list[str],
    stored: dict[str, tuple[str, str]],
    source: str,
) -> str:
    """A query over the relation ``source`` (columns ``columns``) whose values fit the table's column types.

    A custom column an older warehouse stored with another type than VARCHAR keeps its type while
    every incoming value casts to it (the values are cast with TRY_CAST); otherwise the column is
    converted to VARCHAR first, so no value is lost and the import does not fail.
    """
    canonical = {c.name for c in TABLES[table].columns}
    parts = []
    for col in columns:
        sql_type = stored[col.lower()][1]
        if col in canonical or sql_type == "VARCHAR":
            parts.append(_q(col))
            continue
        failing = con.execute(
            f"SELECT count(*) FROM {source} WHERE {_q(col)} IS NOT NULL "
            f"AND TRY_CAST({_q(col)} AS {sql_type}) IS NULL"
        ).fetchone()
        if failing is not None and failing[0] > 0:
            con.execute(f"ALTER TABLE {_q(table)} ALTER COLUMN {_q(col)} SET DATA TYPE VARCHAR")
            stored[col.lower()] = (col, "VARCHAR")
            parts.append(_q(col))
        else:
            parts.append(f"TRY_CAST({_q(col)} AS {sql_type}) AS {_q(col)}")
    return f"(SELECT {', '.join(parts)} FROM {source})"


def _upsert(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, present: list[str] | None = None
) -> UpsertCounts:
    """Insert new keys, replace changed rows, leave identical rows alone.

    Only the ``present`` columns (default: all) are written: columns the warehouse has but this
    import lacks (custom or canonical) keep their stored values on updated rows and are NULL on
    new rows. Custom columns new to the warehouse are added.
    """
    if present is not None:
        keep = set(present)
        frame = frame[[c for c in frame.columns if c in keep]]
    names, stored = _prepare_columns(con, table, list(frame.columns))
    if frame.empty:
        return UpsertCounts()
    frame = frame.set_axis(names, axis=1)
    con.register("_incoming", frame)
    try:
        return _upsert_from(con, table, "_incoming", names, stored)
    finally:
        con.unregister("_incoming")


def _upsert_staged(con: duckdb.DuckDBPyConnection, batch: StagedBatch, table: str) -> UpsertCounts:
    """:func:`_upsert` from the valid rows of a staged table (its present columns only)."""
    columns = batch.present_columns[table]
    names, stored = _prepare_columns(con, table, columns)
    if batch.counts[table].valid == 0:
        return UpsertCounts()
    renamed = ", ".join(f"{_q(c)} AS {_q(n)}" for c, n in zip(columns, names, strict=True))
    source = f"(SELECT {renamed} FROM {batch.table(table)} WHERE __ok)"
    return _upsert_from(con, table, source, names, stored)


def _upsert_from(
    con: duckdb.DuckDBPyConnection,
    table: str,
    source: str,
    columns: list[str],
    stored: dict[str, tuple[str, str]],
) -> UpsertCounts:
    """The upsert of :func:`_upsert` from the relation ``source`` (its ``columns`` named as stored)."""
    spec = TABLES[table]
    incoming = _incoming_select(con, table, columns, stored, source)
    if con.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {_q(table)})").fetchone() == (True,):
        # An empty table (a first import): every row is new; no join needed. Keys are unique (the
        # duplicate-key rule kept only the first of each), so this equals the general path.
        con.execute(f"INSERT INTO {_q(table)} BY NAME SELECT * FROM {incoming} i")
        after = con.execute(f"SELECT count(*) FROM {_q(table)}").fetchone()
        assert after is not None
        return UpsertCounts(int(after[0]), 0, 0)
    key_join = " AND ".join(f"i.{_q(k)} = t.{_q(k)}" for k in spec.key)
    differs = (
        " OR ".join(
            f"i.{_q(c)}::VARCHAR IS DISTINCT FROM t.{_q(c)}::VARCHAR" for c in columns if c not in spec.key
        )
        or "FALSE"
    )
    keys = ", ".join(_q(k) for k in spec.key)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _changes AS
        SELECT {", ".join("i." + _q(k) for k in spec.key)},
               (t.{_q(spec.key[0])} IS NULL) AS is_new,
               (t.{_q(spec.key[0])} IS NOT NULL AND ({differs})) AS is_changed
        FROM {incoming} i LEFT JOIN {_q(table)} t ON {key_join}"""
    )
    row = con.execute(
        "SELECT count(*) FILTER (is_new), count(*) FILTER (is_changed), "
        "count(*) FILTER (NOT is_new AND NOT is_changed) FROM _changes"
    ).fetchone()
    assert row is not None
    counts = UpsertCounts(int(row[0]), int(row[1]), int(row[2]))
    if counts.updated:
        written = set(columns)
        missing = [name for name, _ in stored.values() if name not in written]
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _old AS SELECT t.* FROM {_q(table)} t
            SEMI JOIN (SELECT * FROM _changes WHERE is_changed) c USING ({keys})"""
        )
        con.execute(
            f"DELETE FROM {_q(table)} t USING (SELECT * FROM _changes WHERE is_changed) c "
            f"WHERE {' AND '.join(f't.{_q(k)} = c.{_q(k)}' for k in spec.key)}"
        )
        select = ", ".join([f"i.{_q(c)}" for c in columns] + [f"o.{_q(c)}" for c in missing])
        con.execute(
            f"""INSERT INTO {_q(table)} BY NAME SELECT {select} FROM {incoming} i
            JOIN (SELECT * FROM _changes WHERE is_changed) c USING ({keys})
            LEFT JOIN _old o USING ({keys})"""
        )
    if counts.inserted:
        con.execute(
            f"""INSERT INTO {_q(table)} BY NAME SELECT i.* FROM {incoming} i
            JOIN (SELECT * FROM _changes WHERE is_new) c USING ({keys})"""
        )
    return counts


def _insert_rejects(
    con: duckdb.DuckDBPyConnection, rejects: pd.DataFrame, ingest_id: str, at: pd.Timestamp
) -> None:
    """Append rejects not already recorded (same table, file, row, column, rule and value)."""
    if rejects.empty:
        return
    con.register("new_rejects", rejects[REJECT_COLUMNS])
    try:
        _insert_rejects_from(con, "new_rejects", ingest_id, at)
    finally:
        con.unregister("new_rejects")


def _insert_rejects_from(
    con: duckdb.DuckDBPyConnection, source: str, ingest_id: str, at: pd.Timestamp
) -> None:
    """:func:`_insert_rejects` from the relation ``source`` (columns :data:`REJECT_COLUMNS`)."""
    columns = ", ".join(f"s.{_q(c)}" for c in REJECT_COLUMNS)
    con.execute(
        f"""INSERT INTO rejects SELECT n.* FROM (SELECT {columns}, ?::VARCHAR, ?::TIMESTAMP FROM {source} s) n
        ANTI JOIN rejects r ON n."table" = r."table" AND n.source_file = r.source_file
         AND n.source_row = r.source_row AND n."column" IS NOT DISTINCT FROM r."column"
         AND n.rule = r.rule AND n."value" IS NOT DISTINCT FROM r."value" """,
        [ingest_id, at.to_pydatetime()],
    )


class DuckDBView(WarehouseView):
    """Validation's view of an open warehouse connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def keys(self, table: str) -> pd.Index:
        """Existing primary keys of ``table``."""
        pk = TABLES[table].key[0]
        values = self.con.execute(f"SELECT {_q(pk)} FROM {_q(table)}").fetchnumpy()[pk]
        return pd.Index(values, dtype=object)

    def frame(self, table: str, columns: list[str]) -> pd.DataFrame:
        """Existing rows of ``table`` restricted to ``columns``."""
        return self.con.execute(f"SELECT {', '.join(_q(c) for c in columns)} FROM {_q(table)}").df()
