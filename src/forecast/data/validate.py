"""Validate raw source tables against the canonical model; split them into valid rows and rejects.

Validation runs in three passes, all vectorised:

1. **Coercion** of every canonical column to its kind (strings stripped, numbers, booleans,
   ISO 8601 timestamps converted to naive UTC). A value that does not parse is a reject.
2. **Row rules** through the table's pandera schema (required values, allowed values, known
   stages, lower bounds) plus duplicate keys, temporal order, future timestamps and the outcome's
   consistency with ``closed_at`` and the stage.
3. **Cross-table rules**: every foreign key must resolve to a valid row of this batch or to a row
   already in the warehouse (repeated until nothing changes, since rejecting a row can orphan
   another), and a deal's stage history cannot start before the deal was created.

Every rejected row gets one reject record per rule it breaks (file, row, key, column, rule,
offending value and a message), and ``valid + rejected = read`` holds per table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, cast

import numpy as np
import pandas as pd
import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc

from forecast import timeutil
from forecast.data.pipeline import SalesPipeline
from forecast.data.schema import TABLE_ORDER, TABLES, Column, TableSpec, pandera_schema
from forecast.data.sources.base import RawTable, SourceBatch
from forecast.errors import truncate

REJECT_COLUMNS = ["table", "source_file", "source_row", "key", "column", "rule", "value", "message"]

RULES: dict[str, str] = {
    "not_a_number": "a numeric column holds text that is not a finite number (e.g. 12k, inf)",
    "not_an_integer": "an integer column holds a fractional number",
    "not_a_boolean": "a boolean column holds something other than true/false/yes/no/1/0",
    "unparseable_timestamp": "a date or time that is not ISO 8601 (YYYY-MM-DD[THH:MM:SS[+HH:MM]])",
    "out_of_range": (
        "a number or date the warehouse cannot store: an integer beyond 64 bits, or a date outside "
        "1677-09-21 to 2262-04-11 (e.g. a 9999-12-31 placeholder)"
    ),
    "blank_row": "a row with no value at all (a blank line or only delimiters inside a CSV file)",
    "required": "a required value is missing",
    "allowed_values": "a value outside the column's allowed set",
    "unknown_stage": "a stage that is not part of the pipeline",
    "min_value": "a number below the column's minimum (e.g. a negative amount)",
    "duplicate_key": "the primary key already appeared earlier in this import (the first is kept)",
    "temporal_order": "a date before the date it must follow (e.g. closed before created)",
    "future_timestamp": "a timestamp after the ingest time or the explicit --as-of",
    "outcome_consistency": "outcome, closed_at and stage disagree (e.g. won without closed_at)",
    "foreign_key": "a reference to a row that exists neither in this import nor in the warehouse",
    "history_before_created": "a stage change dated before its deal was created",
}
"""Every rule a row can break, with its meaning (shown by ``forecast validate --rules``)."""

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


class WarehouseView:
    """What validation may ask of the warehouse: existing keys and columns of existing rows.

    The default view is empty (validation of a batch on its own).
    """

    def keys(self, table: str) -> pd.Index:
        """Existing primary keys of a single-key table."""
        return pd.Index([], dtype=object)

    def frame(self, table: str, columns: list[str]) -> pd.DataFrame:
        """Existing rows of ``table`` restricted to ``columns``."""
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


@dataclass
class TableCounts:
    """Row accounting of one table in one import."""

    read: int = 0
    valid: int = 0
    rejected: int = 0
    files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """Plain dict for JSON output."""
        return {"read": self.read, "valid": self.valid, "rejected": self.rejected, "files": self.files}


@dataclass
class ValidatedBatch:
    """The outcome of validating a :class:`SourceBatch`.

    Attributes:
        tables: Valid rows per table: canonical columns first (typed), then extra columns (text).
        rejects: One record per broken rule, columns :data:`REJECT_COLUMNS`.
        counts: Row accounting per table.
        pipeline: The pipeline stages were checked against.
        notes: The adapter's notes.
        present_columns: Per table, the columns of ``tables`` that the source files actually had
            (union over the table's files); the others were added as nulls. The warehouse writes
            only these, so a file lacking a column does not erase stored values. A table missing
            here is written with all its columns.
    """

    tables: dict[str, pd.DataFrame]
    rejects: pd.DataFrame
    counts: dict[str, TableCounts]
    pipeline: SalesPipeline
    notes: list[str]
    present_columns: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class _Failures:
    """Reject records collected for one raw table (row positions refer to its frame)."""

    rows: list[np.ndarray] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    values: list[pd.Series] = field(default_factory=list)
    messages: list[pd.Series | str] = field(default_factory=list)
    skip: np.ndarray | None = None
    """Rows no further rule is reported for (blank rows: one ``blank_row`` record is enough)."""

    def add(
        self,
        mask: pd.Series | np.ndarray,
        column: str,
        rule: str,
        values: pd.Series,
        message: pd.Series | str,
    ) -> None:
        """Record a failure of ``rule`` on ``column`` for rows where ``mask`` is true."""
        flags = np.asarray(mask, dtype=bool)
        if self.skip is not None:
            flags = flags & ~self.skip
        positions = np.flatnonzero(flags)
        if positions.size == 0:
            return
        self.rows.append(positions)
        self.columns.append(column)
        self.rules.append(rule)
        self.values.append(values.iloc[positions].reset_index(drop=True))
        self.messages.append(
            message.iloc[positions].reset_index(drop=True) if isinstance(message, pd.Series) else message
        )

    def failed_mask(self, n: int) -> np.ndarray:
        """Boolean mask of rows with at least one failure."""
        mask = np.zeros(n, dtype=bool)
        for positions in self.rows:
            mask[positions] = True
        return mask

    def failed_pairs(self) -> set[tuple[int, str]]:
        """(row, column) pairs that already failed (to avoid reporting one cause twice)."""
        return {(int(r), c) for rows, c in zip(self.rows, self.columns, strict=True) for r in rows}

    def to_frame(self, raw: RawTable, keys: pd.Series) -> pd.DataFrame:
        """Reject records as a frame with :data:`REJECT_COLUMNS`."""
        parts = []
        for rows, column, rule, values, message in zip(
            self.rows, self.columns, self.rules, self.values, self.messages, strict=True
        ):
            parts.append(
                pd.DataFrame(
                    {
                        "table": raw.table,
                        "source_file": raw.source_file,
                        "source_row": raw.source_row.iloc[rows].to_numpy(),
                        "key": keys.iloc[rows].to_numpy(),
                        "column": column,
                        "rule": rule,
                        "value": _as_text(values).to_numpy(),
                        "message": message if isinstance(message, str) else message.to_numpy(),
                    }
                )
            )
        return pd.concat(parts, ignore_index=True) if parts else empty_rejects()


def empty_rejects() -> pd.DataFrame:
    """An empty rejects frame with the right columns."""
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "source_row" else object) for c in REJECT_COLUMNS}
    )


def _as_text(values: pd.Series) -> pd.Series:
    out = values.astype(object).where(values.notna(), None)
    return out.map(lambda v: None if v is None else truncate(v))  # a hostile cell is not echoed whole


# --------------------------------------------------------------------------- coercion


def _coerce_str(s: pd.Series) -> pd.Series:
    """Text with surrounding whitespace removed; empty text is missing.

    Columns that hold only strings (the usual case) are trimmed by Arrow in C++; anything else
    (ids read as numbers) goes through Python once per value.
    """
    out = s.astype(object).where(s.notna(), None)
    if pd.api.types.infer_dtype(out, skipna=True) not in ("string", "empty"):
        out = out.map(lambda v: v if v is None or isinstance(v, str) else _num_text(v))
    trimmed = pc.utf8_trim_whitespace(pa.array(out, type=pa.string(), from_pandas=True))
    blank = pc.equal(trimmed, "")
    cleaned = pc.if_else(blank, pa.scalar(None, pa.string()), trimmed)
    return pd.Series(cleaned.to_numpy(zero_copy_only=False), index=s.index, dtype=object)


def _num_text(v: object) -> str:
    """Text of a non-string value; integral floats lose their ``.0`` (ids read as numbers)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TS_MIN, _TS_MAX = pd.Timestamp.min, pd.Timestamp.max
_TS_RANGE = f"{_TS_MIN:%Y-%m-%d} to {_TS_MAX:%Y-%m-%d}"
_TS_MIN_PY, _TS_MAX_PY = _TS_MIN.ceil("us").to_pydatetime(), _TS_MAX.floor("us").to_pydatetime()
_INT_RANGE = f"outside the 64-bit integer range ({_INT64_MIN} to {_INT64_MAX})"


def _coerce_column(s: pd.Series, col: Column, failures: _Failures) -> pd.Series:
    """Coerce one column to its kind, recording values that do not parse or cannot be stored."""
    if col.kind == "str":
        return _coerce_str(s)
    present = s.notna()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        text = _coerce_str(s)
        present = text.notna()
    else:
        text = s
    if col.kind in ("int", "float"):
        return _coerce_number(s, text, present, col, failures)
    if col.kind == "bool":
        if pd.api.types.is_bool_dtype(text.dtype):
            return text.astype("boolean")
        lowered = _coerce_str(text).str.lower()
        is_true, is_false = lowered.isin(list(_TRUE)), lowered.isin(list(_FALSE))
        mapped = pd.Series(pd.NA, index=text.index, dtype="boolean")
        mapped[is_true] = True
        mapped[is_false] = False
        bad = present & ~(is_true | is_false)
        failures.add(bad, col.name, "not_a_boolean", s, f"{col.name}: expected true/false")
        return mapped
    return _coerce_timestamp(s, text, present, col, failures)


def _coerce_number(
    s: pd.Series, text: pd.Series, present: pd.Series, col: Column, failures: _Failures
) -> pd.Series:
    """Numbers: text that is not a number, infinities and integers beyond 64 bits are rejects."""
    if col.kind == "int" and pd.api.types.is_integer_dtype(text.dtype):  # native ints: no float detour
        if pd.api.types.is_unsigned_integer_dtype(text.dtype):
            unsigned = text.astype("UInt64")
            huge = (unsigned > _INT64_MAX).fillna(False).astype(bool)
            failures.add(huge, col.name, "out_of_range", s, f"{col.name}: {_INT_RANGE}")
            return unsigned.mask(huge).astype("Int64")
        return text.astype("Int64")
    num = pd.to_numeric(text, errors="coerce") if text.dtype == object else text.astype("float64")
    num = num.astype("float64")
    bad = present & num.isna()
    failures.add(bad, col.name, "not_a_number", s, f"{col.name}: not a number")
    infinite = num.notna() & ~np.isfinite(num)
    failures.add(infinite, col.name, "not_a_number", s, f"{col.name}: not a finite number")
    num = num.where(~infinite)
    if col.kind == "float":
        return num
    frac = num.notna() & (num != np.round(num))
    failures.add(frac, col.name, "not_an_integer", s, f"{col.name}: not a whole number")
    num = num.where(~frac)
    # Beyond 2**53 a float no longer holds every integer: judge (and keep) those few values exactly.
    large = (num.abs() >= 2.0**53).to_numpy()
    if not large.any():
        return num.round().astype("Int64")
    exact = [_exact_int(v) for v in text[large]]
    beyond = np.zeros(len(num), dtype=bool)
    beyond[np.flatnonzero(large)] = [v is None or not _INT64_MIN <= v <= _INT64_MAX for v in exact]
    failures.add(beyond, col.name, "out_of_range", s, f"{col.name}: {_INT_RANGE}")
    out = num.where(~large).round().astype("Int64")
    kept = [v for v in exact if v is not None and _INT64_MIN <= v <= _INT64_MAX]
    positions = np.flatnonzero(large & ~beyond)
    out.iloc[positions] = pd.Series(kept, index=out.index[positions], dtype="Int64")
    return out


def _exact_int(value: object) -> int | None:
    """The exact integer a large whole number stands for (``None`` if it cannot be read exactly)."""
    if isinstance(value, float):  # a float from Parquet is exactly the integer it holds
        return int(value)
    try:
        return int(Decimal(str(value).strip()))
    except (ArithmeticError, ValueError):
        return None


def _coerce_timestamp(
    s: pd.Series, text: pd.Series, present: pd.Series, col: Column, failures: _Failures
) -> pd.Series:
    """Timestamps to naive UTC nanoseconds; dates beyond pandas' nanosecond range are rejects."""
    message = f"{col.name}: outside the supported date range {_TS_RANGE}"
    if pd.api.types.is_datetime64_any_dtype(text.dtype):
        ts = timeutil.to_utc_naive(text)
        if ts.dtype != np.dtype("datetime64[ns]"):  # Parquet keeps µs/ms/s, which reach year 9999
            unit = cast(Literal["s", "ms", "us"], ts.dt.unit)
            lo, hi = _TS_MIN.ceil("s").as_unit(unit), _TS_MAX.floor("s").as_unit(unit)
            outside = ts.notna() & ((ts < lo) | (ts > hi))
            failures.add(outside, col.name, "out_of_range", s, message)
            ts = ts.where(~outside)
        return ts.astype("datetime64[ns]")
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = present & parsed.isna()
    if bad.any():  # valid ISO 8601 but beyond pandas' range, or not a date at all?
        beyond = np.zeros(len(text), dtype=bool)
        beyond[np.flatnonzero(bad.to_numpy())] = [_beyond_ns_range(v) for v in text[bad]]
        failures.add(beyond, col.name, "out_of_range", s, message)
        bad = bad & ~beyond
    failures.add(
        bad,
        col.name,
        "unparseable_timestamp",
        s,
        f"{col.name}: not an ISO 8601 date or timestamp (YYYY-MM-DD[THH:MM:SS[+HH:MM]])",
    )
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _beyond_ns_range(value: object) -> bool:
    """Whether ``value`` is a valid ISO 8601 date or time that pandas cannot hold (e.g. 9999-12-31)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return False
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        except OverflowError:  # 9999-12-31T23:00-05:00 is past year 9999 in UTC
            return True
    return not (_TS_MIN_PY <= moment <= _TS_MAX_PY)


def coerce_frame(raw: RawTable, failures: _Failures) -> pd.DataFrame:
    """Return ``raw.frame`` with canonical columns coerced (missing ones added as nulls) and extras as text.

    Extra (custom) columns are kept as trimmed text whatever their type in the file, so one
    column's type cannot drift between imports (a Parquet number, later ``n/a`` in a CSV). An
    extra column whose name equals a canonical one up to case (Salesforce's ``Type`` beside
    ``type``) is renamed with an ``_extra`` suffix, since the warehouse's names ignore case.
    """
    spec = TABLES[raw.table]
    frame = raw.frame
    out: dict[str, pd.Series] = {}
    n = len(frame)
    for col in spec.columns:
        if col.name in frame.columns:
            out[col.name] = _coerce_column(frame[col.name], col, failures)
        else:
            out[col.name] = _coerce_column(pd.Series([None] * n, dtype=object), col, failures)
    taken = {name.lower() for name in out}
    for extra in frame.columns:
        if extra in out:
            continue
        name = str(extra)
        while name.lower() in taken:  # SQL names are case-insensitive: "Type" would clash with "type"
            name += "_extra"
        taken.add(name.lower())
        out[name] = _coerce_str(frame[extra])
    return pd.DataFrame(out, index=pd.RangeIndex(n))


def _present_columns(raw: RawTable, frame: pd.DataFrame) -> list[str]:
    """Columns of the coerced ``frame`` that ``raw`` really had (not added as nulls); keys always."""
    spec = TABLES[raw.table]
    canonical = {c.name for c in spec.columns}
    return [c for c in frame.columns if c not in canonical or c in raw.frame.columns or c in spec.key]


# --------------------------------------------------------------------------- row rules


def _original(raw: pd.DataFrame, frame: pd.DataFrame, column: str) -> pd.Series:
    """The values as the source gave them (reject records show what the user wrote)."""
    return raw[column] if column in raw.columns else frame[column]


def _pandera_rules(
    frame: pd.DataFrame, raw: pd.DataFrame, spec: TableSpec, pipeline: SalesPipeline, failures: _Failures
) -> None:
    schema = pandera_schema(spec, pipeline.names)
    try:
        schema.validate(frame, lazy=True)
    except pdv.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        already = failures.failed_pairs()
        rule_of = _check_rules(spec)
        for (column, check, number), group in cases.groupby(
            ["column", "check", "check_number"], dropna=False, sort=True
        ):
            idx = group["index"].dropna().astype("int64").to_numpy()
            idx = np.array([i for i in idx if (int(i), column) not in already], dtype="int64")
            if idx.size == 0:
                continue
            if check == "not_nullable":
                rule, message = "required", f"{column}: required value is missing"
            else:
                rule, message = rule_of[(str(column), int(number))]
            mask = np.zeros(len(frame), dtype=bool)
            mask[idx] = True
            failures.add(mask, str(column), rule, _original(raw, frame, str(column)), message)


def _check_rules(spec: TableSpec) -> dict[tuple[str, int], tuple[str, str]]:
    """Map (column, pandera check number) to (rule, message), in the order pandera_schema adds checks."""
    out: dict[tuple[str, int], tuple[str, str]] = {}
    for col in spec.columns:
        n = 0
        if col.allowed is not None:
            out[(col.name, n)] = (
                "allowed_values",
                f"{col.name}: allowed values are {', '.join(col.allowed)}",
            )
            n += 1
        if col.name in spec.stage_columns:
            out[(col.name, n)] = ("unknown_stage", f"{col.name}: not a stage of the pipeline")
            n += 1
        if col.min_value is not None:
            out[(col.name, n)] = ("min_value", f"{col.name}: must be >= {col.min_value:g}")
            n += 1
    return out


def _temporal_rules(frame: pd.DataFrame, spec: TableSpec, as_of: pd.Timestamp, failures: _Failures) -> None:
    for order in spec.orders:
        earlier, later = frame[order.earlier], frame[order.later]
        # Day granularity: many CRMs store close dates as dates, created dates as timestamps.
        bad = earlier.notna() & later.notna() & (later.dt.normalize() < earlier.dt.normalize())
        if not bad.any():
            continue
        msg = pd.Series("", index=frame.index, dtype=object)
        msg[bad] = (
            f"{order.later} ("
            + later[bad].dt.strftime("%Y-%m-%d")
            + f") is before {order.earlier} ("
            + earlier[bad].dt.strftime("%Y-%m-%d")
            + ")"
        )
        failures.add(bad, order.later, "temporal_order", later, msg)
    for col in spec.columns:
        if col.kind != "timestamp" or col.future_ok:
            continue
        s = frame[col.name]
        bad = s.notna() & (s > as_of)
        failures.add(
            bad, col.name, "future_timestamp", s, f"{col.name}: after the as-of time {as_of.isoformat()}"
        )


def _outcome_rules(frame: pd.DataFrame, pipeline: SalesPipeline, failures: _Failures) -> None:
    outcome, closed, stage = frame["outcome"], frame["closed_at"], frame["stage"]
    won, lost, open_ = set(pipeline.won_stages), set(pipeline.lost_stages), set(pipeline.open_stages)
    closed_no_date = outcome.isin(["won", "lost"]) & closed.isna()
    failures.add(closed_no_date, "closed_at", "outcome_consistency", closed, "closed deal without closed_at")
    open_with_date = (outcome == "open") & closed.notna()
    failures.add(open_with_date, "closed_at", "outcome_consistency", closed, "open deal with a closed_at")
    known = stage.isin(pipeline.names)
    expected = np.select(
        [stage.isin(list(won)), stage.isin(list(lost)), stage.isin(list(open_))], ["won", "lost", "open"], ""
    )
    mismatch = known & outcome.isin(["open", "won", "lost"]) & (outcome != expected)
    failures.add(
        mismatch,
        "outcome",
        "outcome_consistency",
        outcome,
        "outcome " + outcome.astype(str) + " disagrees with stage " + stage.astype(str),
    )


def key_text(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.Series:
    """The primary key of each row as text (composite keys joined with ``|``)."""
    parts = [_as_text(frame[k]).fillna("") for k in key]
    out = parts[0]
    for p in parts[1:]:
        out = out + "|" + p
    return out


_BLANK = "empty row: no value in any column (a blank line?)"


def _validate_raw(
    raw: RawTable, pipeline: SalesPipeline, as_of: pd.Timestamp
) -> tuple[pd.DataFrame, _Failures]:
    spec = TABLES[raw.table]
    failures = _Failures()
    frame = coerce_frame(raw, failures)
    # A blank line inside a CSV (or a row of empty cells) is one reject, not one per required column.
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        failures.add(blank, "*", "blank_row", pd.Series([None] * len(frame), dtype=object), _BLANK)
        failures.skip = blank
    _pandera_rules(frame, raw.frame, spec, pipeline, failures)
    _temporal_rules(frame, spec, as_of, failures)
    if spec.name == "opportunities":
        _outcome_rules(frame, pipeline, failures)
    return frame, failures


# --------------------------------------------------------------------------- the batch


@dataclass
class _Part:
    raw: RawTable
    frame: pd.DataFrame
    failures: _Failures


def validate_batch(
    batch: SourceBatch,
    *,
    as_of: pd.Timestamp,
    warehouse: WarehouseView | None = None,
    progress: Callable[[str], None] | None = None,
) -> ValidatedBatch:
    """Validate every table of a batch.

    Args:
        batch: What the adapter read.
        as_of: Nothing (except planned dates) may be later than this (naive UTC).
        warehouse: Existing rows that foreign keys may point to (default: none).
        progress: Called with the table name as each table starts.

    Returns:
        Valid rows, rejects and the row accounting.
    """
    view = warehouse or WarehouseView()
    parts: dict[str, list[_Part]] = {}
    for raw in batch.tables:
        if progress is not None:
            progress(raw.table)
        frame, failures = _validate_raw(raw, batch.pipeline, as_of)
        parts.setdefault(raw.table, []).append(_Part(raw, frame, failures))
    _duplicate_keys(parts)
    _cross_table_rules(parts, view)
    tables: dict[str, pd.DataFrame] = {}
    counts: dict[str, TableCounts] = {}
    present: dict[str, list[str]] = {}
    rejects: list[pd.DataFrame] = []
    for table in TABLE_ORDER:
        if table not in parts:
            continue
        spec = TABLES[table]
        valid_parts = []
        tc = TableCounts()
        seen: dict[str, None] = {}  # an ordered set
        for part in parts[table]:
            seen.update(dict.fromkeys(_present_columns(part.raw, part.frame)))
            n = len(part.frame)
            failed = part.failures.failed_mask(n)
            tc.read += n
            tc.rejected += int(failed.sum())
            tc.valid += int((~failed).sum())
            tc.files.append(part.raw.source_file)
            valid_parts.append(part.frame.loc[~failed])
            if part.failures.rows:
                rejects.append(part.failures.to_frame(part.raw, key_text(part.frame, spec.key)))
        tables[table] = pd.concat(valid_parts, ignore_index=True) if len(valid_parts) > 1 else valid_parts[0]
        tables[table] = tables[table].reset_index(drop=True)
        counts[table] = tc
        present[table] = [c for c in tables[table].columns if c in seen]
    all_rejects = pd.concat(rejects, ignore_index=True) if rejects else empty_rejects()
    return ValidatedBatch(tables, all_rejects, counts, batch.pipeline, list(batch.notes), present)


def _live(part: _Part) -> np.ndarray:
    return ~part.failures.failed_mask(len(part.frame))


def _duplicate_keys(parts: dict[str, list[_Part]]) -> None:
    """Reject every later occurrence of a primary key within the import (across files too)."""
    for table, plist in parts.items():
        key = list(TABLES[table].key)
        seen: pd.DataFrame | None = None
        for part in plist:
            live = _live(part)
            keys = part.frame[key].copy()
            complete = keys.notna().all(axis=1).to_numpy() & live
            dup = np.zeros(len(keys), dtype=bool)
            cand = keys.loc[complete]
            within = cand.duplicated(keep="first").to_numpy()
            earlier = np.zeros(len(cand), dtype=bool)
            if seen is not None and len(seen):
                earlier = pd.MultiIndex.from_frame(cand).isin(pd.MultiIndex.from_frame(seen))
            dup[np.flatnonzero(complete)] = within | earlier
            label = key[0] if len(key) == 1 else "+".join(key)
            part.failures.add(
                dup,
                label,
                "duplicate_key",
                key_text(part.frame, tuple(key)) if dup.any() else part.frame[key[0]],
                f"duplicate {label}: an earlier row of this import has the same key",
            )
            fresh = cand.loc[~(within | earlier)]
            seen = fresh if seen is None else pd.concat([seen, fresh], ignore_index=True)


def _cross_table_rules(parts: dict[str, list[_Part]], view: WarehouseView) -> None:
    """Foreign keys and the history-after-creation rule, repeated until no new row is rejected.

    After the first pass only tables that reference a table with new rejects are checked again.
    """
    dirty: set[str] | None = None  # None: check everything
    while dirty is None or dirty:
        valid_keys = _valid_keys(parts, view)
        rejected_keys = _rejected_keys(parts)
        newly: set[str] = set()
        for table in TABLE_ORDER:
            targets = {fk.table for fk in TABLES[table].foreign_keys}
            if table == "stage_history":
                targets.add("opportunities")
            if dirty is not None and not targets & dirty:
                continue
            for part in parts.get(table, []):
                before = int(part.failures.failed_mask(len(part.frame)).sum())
                _foreign_keys(part, valid_keys, rejected_keys)
                if table == "stage_history":
                    _history_after_created(part, parts, view)
                if int(part.failures.failed_mask(len(part.frame)).sum()) != before:
                    newly.add(table)
        dirty = newly


def _valid_keys(parts: dict[str, list[_Part]], view: WarehouseView) -> dict[str, pd.Index]:
    out: dict[str, pd.Index] = {}
    targets = {fk.table for spec in TABLES.values() for fk in spec.foreign_keys}
    for table in targets:
        pk = TABLES[table].key[0]
        pieces = [view.keys(table)]
        for part in parts.get(table, []):
            pieces.append(pd.Index(part.frame.loc[_live(part), pk].dropna()))
        out[table] = pieces[0].append(pieces[1:]).unique() if len(pieces) > 1 else pieces[0]
    return out


def _rejected_keys(parts: dict[str, list[_Part]]) -> dict[str, pd.Index]:
    """Primary keys of single-key tables whose rows were rejected in this import."""
    out: dict[str, pd.Index] = {}
    for table, plist in parts.items():
        spec = TABLES[table]
        if len(spec.key) != 1:
            continue
        pieces = [pd.Index(p.frame.loc[~_live(p), spec.key[0]].dropna()) for p in plist]
        out[table] = pieces[0].append(pieces[1:]) if len(pieces) > 1 else pieces[0]
    return out


def _foreign_keys(part: _Part, valid_keys: dict[str, pd.Index], rejected_keys: dict[str, pd.Index]) -> None:
    spec = TABLES[part.raw.table]
    live = _live(part)  # rows already rejected are not checked again (one cause is enough)
    for fk in spec.foreign_keys:
        s = part.frame[fk.column]
        bad = live & s.notna().to_numpy() & ~s.isin(valid_keys[fk.table]).to_numpy()
        if not bad.any():
            continue
        cascaded = s.isin(rejected_keys.get(fk.table, pd.Index([])))
        message = pd.Series(
            np.where(
                cascaded,
                f"{fk.column}: that row of {fk.table} was itself rejected in this import",
                f"{fk.column}: no such row in {fk.table} (neither in this import nor in the warehouse)",
            ),
            index=s.index,
        )
        part.failures.add(bad, fk.column, "foreign_key", s, message)


def _history_after_created(part: _Part, parts: dict[str, list[_Part]], view: WarehouseView) -> None:
    live = _live(part)
    if not live.any():
        return
    created = view.frame("opportunities", ["opportunity_id", "created_at"])
    pieces = [created] + [
        p.frame.loc[_live(p), ["opportunity_id", "created_at"]] for p in parts.get("opportunities", [])
    ]
    pieces = [p.astype({"created_at": "datetime64[ns]"}) for p in pieces if len(p)]
    if not pieces:
        return
    lookup = pd.concat(pieces, ignore_index=True).drop_duplicates("opportunity_id", keep="last")
    created_at = part.frame["opportunity_id"].map(lookup.set_index("opportunity_id")["created_at"])
    entered = part.frame["entered_at"]
    bad = live & (created_at.notna() & (entered.dt.normalize() < created_at.dt.normalize())).to_numpy()
    part.failures.add(
        bad,
        "entered_at",
        "history_before_created",
        entered,
        "entered_at is before the deal's created_at",
    )
