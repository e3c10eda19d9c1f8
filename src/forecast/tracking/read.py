"""The tracking read in DuckDB and Arrow: the large event tables cut in SQL, keyed on codes.

:func:`forecast.tracking.data.prepare` takes every table into pandas first, then cuts the activities
and engagement events at the as-of and gives each activity its lead's source and channel, its
deal's product and size band and its rep's team, manager and region. On a large CRM (ten million
activities) that is most of the time and memory of the read: every activity's text is made a Python
string per row, copied again by the cut and looked up key by key. :func:`load` prepares the small
tables with the same function (:func:`~forecast.tracking.data.prepare_keys`) and asks DuckDB for the
events already cut, in the warehouse's row order, handed over through Arrow: each text column
dictionary-encoded (a code per row, one string per distinct value), each lead and deal looked up
once per distinct id, and the keys and flags computed on the codes, each column one take of its
distinct values. The frames are the same, value for value and type for type
(``tests/unit/test_tracking_read.py``, ``tests/unit/test_tracking_read_gaps.py``); where the pandas
read would repeat rows (a key that is not unique) or a table is missing, :func:`load` is that read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from forecast.data.as_of import EVENT_TIMES
from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.data.schema import TABLES
from forecast.data.warehouse import read_pipeline
from forecast.timeutil import as_of_after, resolve_as_of
from forecast.tracking.data import (
    KEYED_TABLES,
    NONE_LABEL,
    REP_KEYS,
    SHARED_TABLES,
    Keys,
    TrackingData,
    _empty,
    _typed,
    attribute_activities,
    prepare,
    prepare_keys,
    read_frames,
    taken,
)


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
    frames, pipeline = _read_tables(con, present)
    t = {name: _typed(frames[name], name) for name in KEYED_TABLES}
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


def load_recent(
    con: duckdb.DuckDBPyConnection,
    as_of: pd.Timestamp,
    since: pd.Timestamp,
    until: pd.Timestamp | None = None,
    *,
    last_changes: bool = False,
) -> TrackingData | None:
    """The warehouse prepared at ``as_of`` as :func:`load` prepares it, but for its events: a part of it.

    Its activities are those from ``since`` and before ``until`` (at most ``as_of``, the default);
    its leads those of a deal or of one of those activities; it has no engagement event and no
    written score. Every deal, stage change, rep and goal is there. Each row kept is the row
    :func:`load` gives, value for value: what reads only those activities and the leads they and
    the deals name (the insights,
    :func:`forecast.tracking.sql_insights.insights`) reads the same data, without the ten million
    activities and million leads of a large CRM. ``None`` where :func:`load` would not take this
    path (a table missing, event times that are not timestamps, a lead or deal id given twice, ids
    that are not text).

    ``last_changes``: of the stage changes, only each deal's last before ``as_of`` (the one the
    deals as known then take their stage, amount and expected close from: the same deals), for a
    reader that takes what it would derive from the whole history from DuckDB (the insights'
    stays and stage win rates); ``has_stage_history`` is still whether the warehouse has any.
    """
    present = {str(r[0]) for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    if not all(name in present for name in SHARED_TABLES) or not _timed(con, present):
        return None
    end = as_of if until is None else min(until, as_of)
    window = {"since": since.to_pydatetime(), "until": end.to_pydatetime()}
    leads = """lead_id IN (SELECT lead_id FROM opportunities)
        OR lead_id IN (SELECT lead_id FROM activities WHERE occurred_at >= $since AND occurred_at < $until)"""
    parts = {"leads": (leads, window)}
    if last_changes:
        parts["stage_history"] = (_LAST_CHANGES, {"when": as_of.to_pydatetime()})
    frames, pipeline = _read_tables(con, present, parts, scores=False)
    t = {name: _typed(frames[name], name) for name in KEYED_TABLES}
    t |= {name: _empty(name) for name in SHARED_TABLES}
    keys = prepare_keys(t, pipeline, as_of)
    if last_changes and "stage_history" in present:  # whether the source recorded any
        recorded = con.execute("SELECT EXISTS (SELECT 1 FROM stage_history)").fetchone()
        keys = replace(keys, has_stage_history=bool(recorded and recorded[0]))
    if not (
        keys.leads["lead_id"].is_unique
        and keys.deal_keys["opportunity_id"].is_unique
        and _object(keys.leads["lead_id"])
        and _object(keys.deal_keys["opportunity_id"])
    ):
        return None
    data = keys.tracking_data(_activities(con, end, keys, since), _empty("engagement_events"), None)
    return replace(data, last_changes_only=True) if last_changes else data


def _read_tables(
    con: duckdb.DuckDBPyConnection,
    present: set[str],
    parts: dict[str, tuple[str, dict[str, Any]]] | None = None,
    scores: bool = True,
) -> tuple[dict[str, pd.DataFrame], SalesPipeline]:
    """``read_frames(con)``'s :data:`~forecast.tracking.data.KEYED_TABLES`, through Arrow where types allow.

    The same frames, value for value and type for type (:func:`_column`); a table with a column of
    another type (a decimal, a date) is read as :func:`read_frames` reads it. The stage changes
    come in :data:`_ORDERS`' order, the one :func:`~forecast.tracking.data.prepare_keys` sorts them
    into (it sorts no more where they are so: DuckDB sorts seven hundred thousand changes in a
    tenth of a second, pandas in three). ``parts``: by table, the SQL condition of the rows to read
    of it and its parameters (:func:`read_table`); ``scores``: whether the written lead scores are
    read too.
    """
    parts = parts or {}
    frames = {
        name: read_table(con, name, present, *parts.get(name, ("", {})), order=_ORDERS.get(name, ""))
        for name in KEYED_TABLES
    }
    if scores and "lead_scores" in present:
        frames["lead_scores"] = con.execute('SELECT * FROM "lead_scores"').df()
    pipeline = read_pipeline(con) if "pipeline_stages" in present else None
    return frames, pipeline or DEFAULT_PIPELINE


def read_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    present: set[str],
    where: str = "",
    parameters: dict[str, Any] | None = None,
    order: str = "",
) -> pd.DataFrame:
    """Canonical table ``name`` as :func:`~forecast.tracking.data.read_frames` reads it.

    Through Arrow where its columns' types allow; empty where the warehouse lacks it. With
    ``where`` (SQL, its ``parameters``), only the rows it keeps, in the table's order, each as the
    whole table's read gives it (a column's type is the whole table's). With ``order`` (SQL), its
    rows in that order (ties in the table's).
    """
    if name not in present:
        return _empty(name)
    spec = TABLES[name]
    sql = f'SELECT {", ".join(f"{chr(34)}{c.name}{chr(34)}" for c in spec.columns)} FROM "{name}"'
    types = _types(con, name)
    if where:
        sql = f"{sql} WHERE {where}"
    if where or order:
        sql = f"{sql} ORDER BY {order + ', ' if order else ''}rowid ASC"
    if all(types.get(c.name) in _ARROW_TYPES for c in spec.columns):
        return _arrow_frame(_arrow(con, sql, parameters=parameters), _nullable_columns(con, name))
    return con.execute(sql, parameters or {}).df()


def _timed(con: duckdb.DuckDBPyConnection, present: set[str]) -> bool:
    """Whether the event tables are typed for the cut in SQL and through Arrow.

    They must hold every canonical column, every event time a timestamp, and every column of a type
    Arrow hands over as ``df()`` does (:data:`_ARROW_TYPES`). DuckDB then compares the events' times
    with the as-of and finds the latest event as pandas would (:func:`prepare` leaves timestamps as
    they are read), and the events cut through Arrow are typed as the pandas read types them.
    """
    for table in SHARED_TABLES:
        types = _types(con, table)
        for spec in TABLES[table].columns:
            if spec.name not in types or (spec.kind == "timestamp" and types[spec.name] != "TIMESTAMP"):
                return False
            if types[spec.name] not in _ARROW_TYPES:  # Arrow would convert it unlike df() (a decimal)
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
    arrow = _arrow(con, f'SELECT {cols} FROM "{table}" WHERE occurred_at < $when', when)
    return _arrow_frame(arrow, _nullable_columns(con, table))


def _arrow_frame(arrow: pa.Table, nullable: set[str]) -> pd.DataFrame:
    """``arrow`` as DuckDB's ``df()`` gives it (:func:`_column`), its first column an id."""
    return _frame(
        {
            name: _column(arrow.column(name), name in nullable, i == 0)
            for i, name in enumerate(arrow.column_names)
        }
    )


def _arrow(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    when: pd.Timestamp | None = None,
    parameters: dict[str, Any] | None = None,
) -> pa.Table:
    """The rows of ``sql`` (a scan of one table) in the table's order, as an Arrow table.

    Fetched in batches of :data:`_VECTORS` DuckDB vectors. DuckDB keeps a scan's rows in the table's
    order unless ``preserve_insertion_order`` is off: only then is the query sorted (by ``rowid``;
    a sort of ten million rows costs seconds).
    """
    params = {**(parameters or {}), **({} if when is None else {"when": when.to_pydatetime()})}
    ordered = sql if "ORDER BY" in sql else _ordered(con, sql)
    reader = con.execute(ordered, params).to_arrow_reader(_VECTORS * 2048)
    return reader.read_all()


def _ordered(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    """``sql`` (a scan of one table), sorted by ``rowid`` unless DuckDB keeps the table's order."""
    kept = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    return sql if kept and kept[0] is True else f"{sql} ORDER BY rowid ASC"


_LAST_CHANGES = """rowid IN (
    SELECT arg_max(rowid, (entered_at, rowid)) FROM stage_history WHERE entered_at < $when
    GROUP BY opportunity_id
)"""
"""SQL: each deal's last stage change before ``$when`` (of those at one time, the last in the table):
the one :func:`forecast.data.as_of.deals_at` takes."""

_ORDERS = {"stage_history": "opportunity_id ASC NULLS LAST, entered_at ASC NULLS LAST"}
"""The order a table is read in where not the table's (:func:`_read_tables`; written out whole, not
left to the session's ``default_order`` and ``default_null_order``)."""

_CODED = ("type", "direction", "rep_id", "lead_id", "opportunity_id", "outcome")
"""The activities' text columns :func:`_activities` works on as codes (each must come as text)."""

_VECTORS = 128
"""DuckDB vectors (2,048 rows each) per fetched batch: about 262,000 rows."""


def _column(values: pa.ChunkedArray, nullable: bool, distinct: bool) -> Any:
    """An Arrow column as DuckDB's ``df()`` gives it of the whole table (:func:`read_frames`' types).

    Text: an object array, ``None`` where missing; unless ``distinct`` (an id), its values are
    dictionary-encoded first, so each distinct value is one string object shared by its rows (ten
    million activities hold a few thousand reps, types and outcomes), not one per row. A boolean or
    integer column whose whole table holds a null (``nullable``): pandas' nullable type, as DuckDB
    gives it; else numpy's (missing floats NaN, times NaT).
    """
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if distinct:
            return values.to_numpy()
        codes, canon = _codes(values)
        return canon.take(codes)
    if nullable and (pa.types.is_boolean(kind) or pa.types.is_integer(kind)):
        data = _writable(
            values.fill_null(pa.scalar(False if pa.types.is_boolean(kind) else 0, kind)).to_numpy()
        )
        mask = values.is_null().to_numpy()
        if data.dtype == np.dtype(bool):
            return pd.arrays.BooleanArray(data, mask)
        return pd.arrays.IntegerArray(data, mask)  # Int8, …, UInt64: as data
    return _writable(values.to_numpy())


def _writable(array: np.ndarray) -> np.ndarray:
    """``array``, copied where it is Arrow's read-only memory (a frame's columns may be written to)."""
    return array if array.flags.writeable else array.copy()


def _codes(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's code (the missing: the last) and the distinct text values, then ``None``."""
    encoded = pc.dictionary_encode(values.combine_chunks() if values.num_chunks != 1 else values.chunk(0))
    canon = np.empty(len(encoded.dictionary) + 1, dtype=object)
    canon[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)
    canon[-1] = None
    codes = encoded.indices.fill_null(len(canon) - 1).to_numpy().astype(np.intp, copy=False)
    return codes, canon


def _frame(columns: dict[str, Any]) -> pd.DataFrame:
    """A frame of ``columns`` (arrays of one length), numbered from 0."""
    return pd.DataFrame(columns, copy=False)


def _nullable_columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """``table``'s boolean and integer columns that hold a null (DuckDB gives them a nullable type)."""
    narrow = [name for name, kind in _types(con, table).items() if kind in _NARROW_TYPES]
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
_ARROW_TYPES = {"VARCHAR", "TIMESTAMP", "DOUBLE", "FLOAT", *_NARROW_TYPES}
"""The DuckDB types Arrow hands over as ``df()`` does (:func:`_column`): not a decimal, a date, a
time zone, whose ``df()`` conversions differ."""


def _activities(
    con: duckdb.DuckDBPyConnection, when: pd.Timestamp, keys: Keys, since: pd.Timestamp | None = None
) -> pd.DataFrame:
    """The activities before ``when`` with their keys and flags, as :func:`prepare` attributes them.

    DuckDB cuts them and Arrow hands each text column over dictionary-encoded: a code per row and
    its few distinct values. Each activity's lead and deal (their positions in the prepared leads and
    deal keys) are looked up once per distinct id, the keys taken and filled, the ``done`` and
    ``cold`` flags and the rep's keys computed on those codes, and each column is one take of its
    distinct values: no pandas operation over the ten million rows of text
    (:func:`~forecast.tracking.data.attribute_activities` is the rule, and the reference of the
    tests).
    """
    cols = ", ".join(f'"{c.name}"' for c in TABLES["activities"].columns)
    sql = f"SELECT {cols} FROM activities WHERE occurred_at < $when"
    if since is not None:  # (:func:`load_recent`)
        arrow = _arrow(con, f"{sql} AND occurred_at >= $since", when, {"since": since.to_pydatetime()})
    else:
        arrow = _arrow(con, sql, when)
    nullable = _nullable_columns(con, "activities")
    coded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out: dict[str, Any] = {}
    for i, name in enumerate(arrow.column_names):
        values = arrow.column(name)
        if i and pa.types.is_string(values.type):
            coded[name] = codes, canon = _codes(values)
            out[name] = canon.take(codes)
        else:
            out[name] = _column(values, name in nullable, i == 0)
    if not set(_CODED) <= coded.keys() or not arrow.num_rows:  # a key typed otherwise: pandas
        frame = _frame(out)
        rows = (
            _rows(frame["lead_id"], keys.leads["lead_id"]),
            _rows(frame["opportunity_id"], keys.deal_keys["opportunity_id"]),
        )
        return attribute_activities(frame, keys.leads, keys.deal_keys, keys.reps, rows)
    lead_row = _found(coded["lead_id"], keys.leads["lead_id"])
    deal_row = _found(coded["opportunity_id"], keys.deal_keys["opportunity_id"])
    leads, deals = keys.leads, keys.deal_keys
    out["converted_at"] = taken(leads, ["converted_at"], lead_row)["converted_at"].array
    out["product"] = _filled([_at(deals["product"], deal_row)], NONE_LABEL)
    out["size_band"] = _filled([_at(deals["size_band"], deal_row)], np.nan)
    for key in ("source", "channel"):
        out[key] = _filled([_at(leads[key], lead_row), _at(deals[key], deal_row)], NONE_LABEL)
    on_lead = _present(coded["lead_id"]) & ~_present(coded["opportunity_id"])
    converted = np.asarray(out["converted_at"])
    not_yet = np.isnat(converted) | (converted > np.asarray(out["occurred_at"]))
    out["done"] = ~_equals(coded["outcome"], "scheduled")
    out["cold"] = _equals(coded["type"], "call") & _equals(coded["direction"], "outbound") & on_lead & not_yet
    out["cold"] &= out["done"]
    out["duration_seconds"] = pd.to_numeric(pd.Series(out["duration_seconds"]), errors="coerce").array
    rep_codes, rep_canon = coded["rep_id"]
    rep_canon = rep_canon.copy()
    rep_canon[-1] = NONE_LABEL  # a missing rep is labelled, as prepare labels it
    rep_canon = np.array([str(v) for v in rep_canon], dtype=object)  # as astype(str), NULs kept
    out["rep_id"] = rep_canon.take(rep_codes)
    rep_at = pd.Index(keys.reps["rep_id"]).get_indexer(rep_canon)
    for key in REP_KEYS:
        out[key] = _filled([_at(keys.reps[key], rep_at)], NONE_LABEL).take(rep_codes)
    out["rep"] = out["rep_id"]
    return _frame(out)


def _rows(ids: pd.Series, keys: pd.Series) -> np.ndarray:
    """The position of each of ``ids`` in ``keys`` (unique), -1 where absent or missing."""
    rows = pd.Index(keys).get_indexer(ids)
    rows[ids.isna().to_numpy()] = -1
    return rows.astype(np.int64)


def _found(coded: tuple[np.ndarray, np.ndarray], keys: pd.Series) -> np.ndarray:
    """Each row's position in ``keys`` (unique) of its coded id: -1 where absent or missing."""
    codes, canon = coded
    at = pd.Index(keys).get_indexer(canon)
    at[-1] = -1  # the missing id matches nothing (as in a join)
    return at.take(codes)


def _present(coded: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Where the coded text is present (not missing)."""
    codes, canon = coded
    return codes != len(canon) - 1


def _equals(coded: tuple[np.ndarray, np.ndarray], value: str) -> np.ndarray:
    """Where the coded text equals ``value``."""
    codes, canon = coded
    where = np.flatnonzero(canon[:-1] == value)
    return codes == where[0] if len(where) else np.zeros(len(codes), dtype=bool)


def _at(values: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The code of ``values`` at each of ``rows`` (-1: no row, or a missing value) and the distinct values."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.append(codes, -1).take(rows), np.asarray(uniques, dtype=object)


def _filled(parts: list[tuple[np.ndarray, np.ndarray]], fill: Any) -> np.ndarray:
    """The first present of ``parts`` (:func:`_at`'s) at each row, else ``fill``: a chain of ``fillna``."""
    canon = np.concatenate([*(values for _codes, values in parts), np.array([fill], dtype=object)])
    offsets = np.cumsum([0, *(len(values) for _codes, values in parts)])
    out = np.full(len(parts[0][0]), len(canon) - 1, dtype=np.intp)
    for (codes, _values), offset in reversed(list(zip(parts, offsets[:-1], strict=True))):
        out = np.where(codes >= 0, codes + offset, out)
    return canon.take(out)
