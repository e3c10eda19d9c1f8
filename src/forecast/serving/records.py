"""The warehouse's records as the by-id routes read them: point-in-time features, without blocking ingests.

DuckDB lets one process write a file or many read it, never both: a service holding a read-only
connection would make every ``forecast ingest`` wait (up to ``FORECAST_WAREHOUSE_LOCK_WAIT``),
and an ingest holding the write lock would make every request wait or fail. So the service reads
the warehouse in short visits and answers from what it read:

- a **state** is what one visit saw of one version of the file: the default as-of (midnight after
  the last event, as ``forecast score``), every record id, and lazily the feature tables
  (``build_feature_table``, the batch scorer's) of the as-of dates asked for and the flags'
  histories;
- the version is the file's (and its write-ahead log's) size, modification time and inode, read
  with ``stat`` on every request (microseconds): an import changes it, and the next request, or
  the refresher thread (:meth:`WarehouseRecords.start_refreshing`), reads a new state;
- each visit opens the file read-only without waiting (``lock_wait=0``) and closes it as soon as
  the table is built; while an import holds the file, requests are answered from the state read
  before it (``stale``), and only what was never read answers 503 ``warehouse_busy``.

Why not a read-only connection per request: building one record's features is SQL over the
whole CRM (tens of milliseconds at best, ``benchmarks/RESULTS.md``), and a connection open at
every moment of a busy service would keep imports waiting. Why not a copy of the file: a copy per
worker per import costs the file's size on disk and its copy time, where a state costs the open
records' features (docs/serving.md, "Scores by record id").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.warehouse import WarehouseBusyError, connect_duckdb, read_pipeline
from forecast.features.build import ID_COLUMN, Entity, build_feature_table
from forecast.features.source import FeatureSource
from forecast.timeutil import utc_now

log = logging.getLogger(__name__)

MAX_DATES = 8
"""Feature tables kept per state (each an entity at one as-of): the default's and recent ``?as_of=``."""
BUSY_PAUSE = 0.25
"""Seconds between two visits to a warehouse found held by a writer (requests meanwhile use the state)."""

Fingerprint = tuple[int, ...]
ENTITIES: dict[Entity, str] = {"opportunity": "opportunities", "lead": "leads"}
"""Each entity read, and its table."""


def fingerprint(path: Path) -> Fingerprint:
    """The version of the warehouse file: size, mtime and inode of the file and its write-ahead log.

    Raises:
        FileNotFoundError: No warehouse at ``path``.
    """
    st = path.stat()
    try:
        wal = path.with_name(f"{path.name}.wal").stat()
        tail: tuple[int, ...] = (wal.st_size, wal.st_mtime_ns, wal.st_ino)
    except FileNotFoundError:
        tail = ()
    return (st.st_size, st.st_mtime_ns, st.st_ino, *tail)


@dataclass
class Table:
    """The features of ``entity``'s records open at ``as_of`` (the batch scorer's table).

    Attributes:
        frame: ``build_feature_table``'s frame: the id, ``as_of``, every feature (and labels).
        rows: Each id's row in ``frame``.
        derived: What the routes compute once from the whole table (the flags), by key.
    """

    entity: Entity
    as_of: pd.Timestamp
    frame: pd.DataFrame
    rows: dict[str, int]
    derived: dict[Any, Any] = field(default_factory=dict)

    def row(self, record_id: str) -> pd.DataFrame | None:
        """The one-row frame of ``record_id`` (``None``: not open at ``as_of``)."""
        i = self.rows.get(record_id)
        return None if i is None else self.frame.iloc[i : i + 1]


@dataclass
class State:
    """What one visit read of one version of the warehouse."""

    version: Fingerprint
    read_at: pd.Timestamp
    """When it was read (UTC)."""
    default_as_of: pd.Timestamp | None
    """Midnight after the last event (``None``: nothing dated yet)."""
    ids: dict[Entity, frozenset[str]]
    """Every record id of each entity, open or not (to tell a closed record from an unknown one)."""
    tables: OrderedDict[tuple[Entity, pd.Timestamp], Table] = field(default_factory=OrderedDict)
    histories: dict[Entity, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Found:
    """A feature table and the state it comes from.

    Attributes:
        stale: The warehouse has changed since (an import is writing it): the answer is the
            state before.
    """

    table: Table
    state: State
    stale: bool


class WarehouseRecords:
    """The states of one warehouse file, read on demand (one per worker).

    Args:
        path: The warehouse file.
        history: Reads a flags history from a source (``load_history`` with the flags config).
    """

    def __init__(self, path: Path, history: Callable[[FeatureSource, Entity], Any]) -> None:
        self.path = Path(path)
        self._load_history = history
        self._state: State | None = None
        self._lock = threading.Lock()
        self._busy_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- reading

    def cached(self, entity: Entity, as_of: pd.Timestamp | None, history: bool = False) -> Found | None:
        """The table of ``entity`` at ``as_of`` (``None``: the default) if the current state has it.

        With ``history``, only if the state also holds the entity's flags history. No I/O but
        ``stat``: what a request on the event loop may call.
        """
        state = self._state
        if state is None:
            return None
        try:
            current = fingerprint(self.path) == state.version
        except FileNotFoundError:
            return None
        found = _found(state, entity, as_of, history, stale=False)
        return found if current else None

    def table(self, entity: Entity, as_of: pd.Timestamp | None, history: bool = False) -> Found:
        """The table of ``entity`` at ``as_of`` (``None``: the default), read now if needed.

        Args:
            entity: ``lead`` or ``opportunity``.
            as_of: The moment (``None``: the warehouse's default, as ``forecast score``'s).
            history: Also read the entity's flags history (``state.histories[entity]``).

        Raises:
            FileNotFoundError: No warehouse.
            WarehouseBusyError: A writer holds the file and no state read before has the table.
            LookupError: Nothing dated in the warehouse (no default as-of).
            duckdb.Error: The warehouse cannot be read.
        """
        found = self.cached(entity, as_of, history)
        if found is not None:
            return found
        with self._lock:  # one visit at a time; the others wait and find its result
            try:
                with self._visit(self._state) as (src, state):
                    self._state = state
                    table = self._table_in(state, src, entity, as_of)
                    if history and entity not in state.histories:
                        state.histories[entity] = self._load_history(src, entity)
                    return Found(table, state, stale=False)
            except WarehouseBusyError:
                old = None if self._state is None else _found(self._state, entity, as_of, history, True)
                if old is None:
                    raise
                return old

    @contextmanager
    def _visit(self, state: State | None) -> Iterator[tuple[FeatureSource, State]]:
        """Open the file read-only without waiting; yield a source and the state of its version.

        ``state`` when the file has not changed since it was read, else a new one.
        """
        if time.monotonic() < self._busy_until:
            raise WarehouseBusyError(self.path.name, None)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no warehouse here yet; run `forecast ingest` first")
        try:
            con = connect_duckdb(str(self.path), read_only=True, lock_wait=0)
        except WarehouseBusyError:
            self._busy_until = time.monotonic() + BUSY_PAUSE
            raise
        try:
            version = fingerprint(self.path)  # under the read lock: no writer can change it now
            src = FeatureSource(con, read_pipeline(con) or DEFAULT_PIPELINE)
            if state is None or state.version != version:
                state = _new_state(src, version)
            yield src, state
        finally:
            con.close()

    @staticmethod
    def _table_in(state: State, src: FeatureSource, entity: Entity, as_of: pd.Timestamp | None) -> Table:
        when = state.default_as_of if as_of is None else as_of
        if when is None:
            raise LookupError("the warehouse holds no dated event yet: give as_of")
        key = (entity, when)
        table = state.tables.get(key)
        if table is None:
            frame = build_feature_table(src, entity, [when]).frame
            ids = frame[ID_COLUMN[entity]].astype(str)
            table = Table(entity, when, frame, {i: n for n, i in enumerate(ids)})
            state.tables[key] = table
            while len(state.tables) > MAX_DATES:
                state.tables.popitem(last=False)
        else:
            state.tables.move_to_end(key)
        return table

    # ------------------------------------------------------------- refreshing

    def current(self) -> State | None:
        """The state read last (``None``: none yet), whether or not the file has changed since."""
        return self._state

    def refresh(self) -> bool:
        """Read the default tables of both entities if the warehouse changed (or was never read).

        Returns:
            Whether a new state was read.
        """
        before = self._state
        try:
            for entity in ENTITIES:
                self.table(entity, None)
        except (WarehouseBusyError, FileNotFoundError, LookupError):
            return False
        return self._state is not before

    def start_refreshing(self, every_seconds: float, after: Callable[[], Any] | None = None) -> None:
        """Read the default tables now and after every change of the file (a daemon thread).

        The thread looks at the file every ``every_seconds`` (``<= 0``: only the first read), so
        that the first request after an import rarely waits for the new state; ``after`` is called
        after each look (the by-id routes compute their answers ahead there).
        """
        if self._thread is not None:
            return

        def loop() -> None:
            while True:
                try:
                    if self.refresh():
                        log.info("warehouse read: %s", self.describe())
                    if after is not None:
                        after()
                except Exception:  # pragma: no cover - a request reports the same error
                    log.exception("reading the warehouse failed")
                if every_seconds <= 0 or self._stop.wait(every_seconds):
                    return

        self._thread = threading.Thread(target=loop, name="forecast-warehouse-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the refresher thread."""
        self._stop.set()

    def describe(self) -> dict[str, Any]:
        """The current state: when it was read, its default as-of and the tables held."""
        state = self._state
        if state is None:
            return {"read_at": None}
        return {
            "read_at": state.read_at.isoformat(),
            "default_as_of": None if state.default_as_of is None else state.default_as_of.isoformat(),
            "tables": [
                {"entity": t.entity, "as_of": t.as_of.isoformat(), "records": len(t.rows)}
                for t in state.tables.values()
            ],
        }


def _found(
    state: State, entity: Entity, as_of: pd.Timestamp | None, history: bool, stale: bool
) -> Found | None:
    """The table (and history, if asked) of ``entity`` at ``as_of`` in ``state``, or ``None``."""
    when = state.default_as_of if as_of is None else as_of
    table = None if when is None else state.tables.get((entity, when))
    if table is None or (history and entity not in state.histories):
        return None
    return Found(table, state, stale)


def _new_state(src: FeatureSource, version: Fingerprint) -> State:
    """The default as-of and every record id of the warehouse behind ``src``."""
    try:
        default = src.default_as_of()
    except ValueError:  # nothing dated yet
        default = None
    ids = {
        entity: frozenset(str(v) for v in src.df(f"SELECT {ID_COLUMN[entity]} AS id FROM {table}")["id"])
        for entity, table in ENTITIES.items()
    }
    return State(version, utc_now().floor("s"), default, ids)
