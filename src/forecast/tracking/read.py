"""The tracking read in DuckDB: the large event tables cut and given their keys in SQL.

:func:`forecast.tracking.data.prepare` takes every table into pandas first, then cuts the activities
and engagement events at the as-of and gives each activity its lead's source and channel, its
deal's product and size band and its rep's team, manager and region. On a large CRM (ten million
activities) that is most of the time and memory of the read: every activity is copied into pandas,
copied again by the cut and looked up key by key. :func:`load` reads the small tables as before and
prepares them with the same function (:func:`~forecast.tracking.data.prepare_keys`), and asks DuckDB
for the events already cut and joined to those keys, in the warehouse's row order: one pandas copy
of the rows kept. The frames are the same, value for value and type for type
(``tests/unit/test_tracking_read.py``); where the pandas read would repeat rows (a key that is not
unique) or a table is missing, :func:`load` is that read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from forecast.data.as_of import EVENT_TIMES
from forecast.data.schema import TABLES
from forecast.timeutil import as_of_after, resolve_as_of
from forecast.tracking.data import (
    SHARED_TABLES,
    Keys,
    TrackingData,
    _empty,
    _typed,
    attribute_activities,
    prepare,
    prepare_keys,
    read_frames,
)

_NULLABLE: dict[np.dtype[Any], pd.api.extensions.ExtensionDtype] = {
    np.dtype(bool): pd.BooleanDtype(),
    np.dtype("int8"): pd.Int8Dtype(),
    np.dtype("int16"): pd.Int16Dtype(),
    np.dtype("int32"): pd.Int32Dtype(),
    np.dtype("int64"): pd.Int64Dtype(),
    np.dtype("uint8"): pd.UInt8Dtype(),
    np.dtype("uint16"): pd.UInt16Dtype(),
    np.dtype("uint32"): pd.UInt32Dtype(),
    np.dtype("uint64"): pd.UInt64Dtype(),
}
"""DuckDB gives a column with a null as pandas' nullable type, one without as numpy's: the type of a
column of the whole table, which a cut may have changed."""


def load(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp | None = None) -> TrackingData:
    """The warehouse prepared at ``as_of`` (default: midnight after the last event), events cut in SQL.

    The same :class:`TrackingData` as ``prepare(*read_frames(con), as_of)``.

    Raises:
        ValueError: If no as-of is given and nothing is dated.
    """
    present = {str(r[0]) for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if not all(name in present for name in SHARED_TABLES) or not _timed(con, present):
        frames, pipeline = read_frames(con)
        return prepare(frames, pipeline, as_of)
    when = resolve_as_of(as_of, lambda: _default_as_of(con, present))
    frames, pipeline = read_frames(con, skip=SHARED_TABLES)
    t = {name: _typed(frames[name], name) for name in TABLES if name not in SHARED_TABLES}
    t |= {name: _empty(name) for name in SHARED_TABLES}
    keys = prepare_keys(t, pipeline, when)
    lead_keys = keys.leads[["lead_id", "source", "channel", "converted_at"]]
    if not (
        lead_keys["lead_id"].is_unique
        and keys.deal_keys["opportunity_id"].is_unique
        and _object(lead_keys["lead_id"])
        and _object(keys.deal_keys["opportunity_id"])
    ):  # the pandas read merges (rows may repeat): that read
        frames, pipeline = read_frames(con)
        return prepare(frames, pipeline, when)
    activities = _activities(con, when, keys)
    engagement = _cut(con, "engagement_events", when)
    return keys.tracking_data(activities, engagement, frames.get("lead_scores"))


def _timed(con: duckdb.DuckDBPyConnection, present: set[str]) -> bool:
    """Whether the event tables hold every canonical column, and every event time is a timestamp.

    DuckDB then compares the events' times with the as-of, and finds the latest event, as pandas
    would (:func:`prepare` leaves timestamps as they are read).
    """
    for table in SHARED_TABLES:
        types = _types(con, table)
        for spec in TABLES[table].columns:
            if spec.name not in types or (spec.kind == "timestamp" and types[spec.name] != "TIMESTAMP"):
                return False
    for table, cols in EVENT_TIMES.items():
        if table in present:
            types = _types(con, table)
            if any(types.get(col) != "TIMESTAMP" for col in cols if col in types):
                return False
    return True


def _types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """``table``'s columns and their DuckDB types."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def _object(keys: pd.Series) -> bool:
    """Whether ``keys`` are of the dtype DuckDB gives a text column (the pandas lookup needs the same)."""
    return keys.dtype == np.dtype(object)


def _default_as_of(con: duckdb.DuckDBPyConnection, present: set[str]) -> pd.Timestamp:
    """:func:`forecast.tracking.data.default_as_of` of the warehouse's tables, asked of DuckDB."""
    latest: list[pd.Timestamp] = []
    for table, cols in EVENT_TIMES.items():
        if table not in present:
            continue
        row = con.execute(f'SELECT {", ".join(f"max({c})" for c in cols)} FROM "{table}"').fetchone()
        latest += [pd.Timestamp(v) for v in row or () if v is not None and pd.notna(v)]
    if not latest:
        raise ValueError("the warehouse holds no dated events: nothing to report")
    return as_of_after(max(latest))


def _cut(con: duckdb.DuckDBPyConnection, table: str, when: pd.Timestamp) -> pd.DataFrame:
    """``table``'s rows before ``when`` in the warehouse's order, typed as the whole table reads."""
    cols = ", ".join(f'"{c.name}"' for c in TABLES[table].columns)
    sql = f'SELECT {cols} FROM "{table}" WHERE occurred_at < $when ORDER BY rowid'
    return _fetch(con, table, sql, when)


def _fetch(con: duckdb.DuckDBPyConnection, table: str, sql: str, when: pd.Timestamp) -> pd.DataFrame:
    """The rows of ``sql`` (of ``table``'s columns, and others) as :func:`read_frames` types them.

    Fetched in chunks, each text column's values shared across its rows (one string object per
    distinct value, as a lookup of keys gives them, not one per row: ten million activities hold a
    few thousand reps, types and outcomes), and a column whose whole table holds a null in the
    nullable type DuckDB gives it then (a chunk without one would be numpy's).
    """
    nullable = _nullable_columns(con, table)  # first: a query ends the connection's pending result
    result = con.execute(sql, {"when": when.to_pydatetime()})
    pools: dict[str, dict[Any, Any]] = {}
    chunks: list[pd.DataFrame] = []
    while True:
        chunk = result.fetch_df_chunk(_VECTORS)
        if len(chunk) == 0 and chunks:
            break
        for col in chunk.columns:
            if col in nullable and chunk[col].dtype in _NULLABLE:
                chunk[col] = chunk[col].astype(_NULLABLE[chunk[col].to_numpy().dtype])
            elif chunk[col].dtype == np.dtype(object):
                chunk[col] = _shared(chunk[col], pools.setdefault(col, {}))
        chunks.append(chunk)
        if len(chunk) == 0:
            break
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


_VECTORS = 128
"""DuckDB vectors (2,048 rows each) per fetched chunk: about 262,000 rows."""
_POOLED = 10_000
"""A text column with at most this many values in a chunk shares them with the other chunks."""


def _shared(values: pd.Series, pool: dict[Any, Any]) -> pd.Series:
    """``values`` with each distinct value one object (the first seen in ``pool``); missing: ``None``."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) * 2 > len(values):  # mostly distinct (ids): nothing to share
        return values
    canon = np.empty(len(uniques) + 1, dtype=object)
    if len(uniques) <= _POOLED:  # a few values: one object each across the chunks
        canon[:-1] = [pool.setdefault(u, u) for u in uniques]
    else:  # many (lead ids): one object each within the chunk
        canon[:-1] = uniques.to_numpy(dtype=object)
    canon[-1] = None  # code -1: DuckDB's missing text
    return pd.Series(canon.take(codes), index=values.index, name=values.name)


def _nullable_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """``table``'s boolean and integer columns that hold a null (DuckDB gives them a nullable type)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    narrow = [str(name) for name, kind in rows if str(kind) in _NARROW_TYPES]
    if not narrow:
        return set()
    counts = con.execute(f'SELECT {", ".join(f"count(*) - count({c})" for c in narrow)} FROM "{table}"')
    nulls = counts.fetchone() or ()
    return {col for col, missing in zip(narrow, nulls, strict=True) if missing}


_NARROW_TYPES = {
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
}


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, frames: dict[str, pd.DataFrame]) -> Iterator[None]:
    """``frames`` visible to ``con``'s queries by name while inside."""
    for name, frame in frames.items():
        con.register(name, frame)
    try:
        yield
    finally:
        for name in frames:
            con.unregister(name)


def _activities(con: duckdb.DuckDBPyConnection, when: pd.Timestamp, keys: Keys) -> pd.DataFrame:
    """The activities before ``when`` with their keys and flags, as :func:`prepare` attributes them.

    DuckDB cuts them and looks up each one's lead and deal (their positions in the prepared leads and
    deal keys); :func:`~forecast.tracking.data.attribute_activities` then takes the keys at those
    positions and flags them, as it does after its own lookups.
    """
    cols = ", ".join(f'a."{c.name}"' for c in TABLES["activities"].columns)
    sql = f"""
        SELECT {cols}, coalesce(l.pos, -1) AS lead_row, coalesce(d.pos, -1) AS deal_row
        FROM activities a
        LEFT JOIN tracking_lead_rows l ON a.lead_id = l.lead_id
        LEFT JOIN tracking_deal_rows d ON a.opportunity_id = d.opportunity_id
        WHERE a.occurred_at < $when
        ORDER BY a.rowid
    """
    registered = {
        "tracking_lead_rows": _positions(keys.leads, "lead_id"),
        "tracking_deal_rows": _positions(keys.deal_keys, "opportunity_id"),
    }
    with _registered(con, registered):
        frame = _fetch(con, "activities", sql, when)
    rows = (frame.pop("lead_row").to_numpy(np.int64), frame.pop("deal_row").to_numpy(np.int64))
    return attribute_activities(frame, keys.leads, keys.deal_keys, keys.reps, rows)


def _positions(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Each row's ``key`` and position (``pos``) in ``frame``."""
    return pd.DataFrame(
        {key: frame[key].to_numpy(dtype=object), "pos": np.arange(len(frame), dtype=np.int64)}
    )
