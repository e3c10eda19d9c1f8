"""Input checks of rows to score: per-row problems that keep a row out of a batch score (rejects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecast.errors import truncate
from forecast.features.flat.parse import missing_kind, parse_dates
from forecast.features.flat.preparer import is_number_dtype, mask_placeholders, numbers_of, spec_time

_ERROR_COLUMNS = ["row", "column", "rule", "value", "message"]


def score_input_errors(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Per-row problems that should keep rows out of a batch score (the rejects file).

    Rules: ``missing_id`` (empty id, when the id column is present), ``duplicate_id`` (every row of an
    id that occurs more than once), ``not_a_number`` (a value in a column the model reads as a number,
    i.e. a numeric feature or a yes/no feature read as 1/0, that neither parses nor is a placeholder),
    ``unparseable_date`` (a value in the time column or a date feature's column that is not a date and
    not a placeholder). Missing values and placeholders are not problems: the model scores them as
    missing. Absent columns are not reported here (:meth:`FlatExportPreparer.transform` raises).

    Args:
        frame: Raw rows to score (row ``i`` of the frame is data row ``i + 1``).
        spec: :meth:`FlatExport.preparer_spec`.

    Returns:
        Columns ``row`` (1-based data row), ``column``, ``rule``, ``value`` (the raw text) and
        ``message``, ordered by row; rows not listed are scoreable.
    """
    frame = frame.rename(columns=str) if not all(isinstance(c, str) for c in frame.columns) else frame
    found = _Found(pd.Series(np.arange(1, len(frame) + 1), index=frame.index))
    _id_errors(frame, spec.get("id_column"), found)
    _value_errors(frame, spec["features"], found)
    _time_errors(frame, spec, found)
    if not found.parts:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else object) for c in _ERROR_COLUMNS})
    errors = pd.concat(found.parts, ignore_index=True)
    errors["row"] = errors["row"].astype("int64")
    return errors.sort_values("row", kind="stable").reset_index(drop=True)[_ERROR_COLUMNS]


@dataclass
class _Found:
    """The problems found so far, one frame per rule and column (:func:`score_input_errors`)."""

    rows: pd.Series
    """Each frame row's 1-based data row."""
    parts: list[pd.DataFrame] = field(default_factory=list)

    def add(self, mask: pd.Series, column: str, rule: str, values: pd.Series, message: str) -> None:
        """Record the rows of ``mask``; ``message`` may use ``{value!r}`` and ``{column!r}``."""
        hit = mask.fillna(False).astype(bool).to_numpy()
        if hit.any():
            raw = [None if _missing(v) else truncate(v) for v in values[hit]]
            self.parts.append(
                pd.DataFrame(
                    {
                        "row": self.rows[hit].to_numpy(),
                        "column": column,
                        "rule": rule,
                        "value": raw,
                        "message": [message.format(value=v, column=column) for v in raw],
                    }
                )
            )


def _id_errors(frame: pd.DataFrame, id_column: str | None, found: _Found) -> None:
    """``missing_id`` and ``duplicate_id`` rows, when the id column is present."""
    if id_column is None or id_column not in frame.columns:
        return
    ids = frame[id_column]
    key = ids.astype("string").str.strip()
    empty = key.isna() | (key == "")
    found.add(empty, id_column, "missing_id", ids, "the id column {column!r} is empty")
    repeated = (key.duplicated(keep=False) & ~empty).fillna(False).astype(bool)
    for value, group in found.rows[repeated.to_numpy()].groupby(key[repeated].to_numpy()):
        mask = repeated & (key == value)
        listed = ", ".join(str(r) for r in group)
        found.add(mask, id_column, "duplicate_id", ids, f"id {{value!r}} appears in rows {listed}")


def _value_errors(frame: pd.DataFrame, features: list[dict[str, Any]], found: _Found) -> None:
    """``not_a_number`` and ``unparseable_date`` values in the raw columns the features read as is."""
    checked: set[str] = set()
    for feature in features:
        source = feature["source"]
        if feature["derived_from"] != "value" or source in checked or source not in frame.columns:
            continue
        checked.add(source)
        values = frame[source]
        if is_number_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            continue
        present = mask_placeholders(values).notna()
        mode = feature.get("boolean_mode")
        if feature["role"] == "numeric" or (feature["role"] == "boolean" and mode != "filled"):
            bad = present & numbers_of(values, feature["role"], mode).isna()
            expects = "a number" if feature["role"] == "numeric" else "yes/no (or 1/0)"
            found.add(bad, source, "not_a_number", values, f"{{column!r}} expects {expects}, got {{value!r}}")
        elif feature["role"] == "datetime":
            bad = present & parse_dates(values, feature["dayfirst"]).isna()
            found.add(bad, source, "unparseable_date", values, "{column!r} expects a date, got {value!r}")


def _time_errors(frame: pd.DataFrame, spec: dict[str, Any], found: _Found) -> None:
    """``unparseable_date`` values of the time column, when it is present and not already dates."""
    time_column = spec.get("time_column")
    if time_column is None or time_column not in frame.columns:
        return
    values = frame[time_column]
    if pd.api.types.is_datetime64_any_dtype(values):
        return
    present = values.notna() & missing_kind(values).isna()
    bad = present & spec_time(frame, spec).isna()
    found.add(
        bad,
        time_column,
        "unparseable_date",
        values,
        "the time column {column!r} expects a date, got {value!r}",
    )


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
