"""Role inference: which columns are ids, numbers, categories, yes/no, dates, free text or constant.

:func:`infer_roles` decides a role per input column; :func:`feature_values` turns a column into the
model-ready feature of its role.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.features.flat.names import NUMBER_ID_TOKENS, name_tokens
from forecast.features.flat.parse import bool_values, parse_dates, parse_numbers
from forecast.features.flat.schema import OTHER_LEVEL, Role

NUMERIC_MIN_SHARE = 0.95
DATETIME_MIN_SHARE = 0.90
ID_UNIQUE_SHARE = 0.90
ID_MIN_ROWS = 20
ID_HIGH_CARDINALITY = 200
TEXT_MIN_MEAN_LENGTH = 30
TEXT_MIN_MEAN_WORDS = 4
TEXT_MIN_UNIQUE_SHARE = 0.5
RARE_LEVEL_MIN_COUNT = 5
RARE_LEVEL_MIN_SHARE = 0.01
MAX_LEVELS = 50
ID_MONOTONE_SHARE = 0.95
"""Integers that grow (or shrink) from one row to the next in at least this share of steps are a sequence."""
ID_MIN_FILLED = 0.9
"""A number is an id only when filled in at least this share of rows (a sparse number, e.g. an invoice
number filled once a deal is won, is judged by the leakage rules instead)."""


@dataclass(frozen=True)
class ColumnRole:
    """The role inferred for one input column.

    Attributes:
        name: Column name in the export.
        role: What the column is used as.
        missing_share: Share of rows missing after placeholders became missing.
        n_unique: Distinct non-missing values.
        note: Plain-words explanation (why excluded, how converted).
    """

    name: str
    role: Role
    missing_share: float
    n_unique: int
    note: str = ""


def _classify(values: pd.Series, name: str) -> tuple[Role, str]:
    """Role and note of one feature candidate (placeholders already missing)."""
    present = values.dropna()
    n = len(present)
    if n == 0:
        return "constant", "entirely missing; excluded"
    if pd.api.types.is_bool_dtype(values):
        return ("boolean", "") if present.nunique() == 2 else _single_value(values)
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime", ""
    if pd.api.types.is_numeric_dtype(values):
        return _classify_numbers(values.astype("float64"), name, "", len(values))
    text = present.astype(str).str.strip()
    n_unique = text.nunique()
    if n_unique == 1:
        return _single_value(values)
    if bool_values(text) is not None:
        return "boolean", "two values read as yes/no"
    numbers = parse_numbers(text)
    if numbers.notna().mean() >= NUMERIC_MIN_SHARE:
        bad = int(numbers.isna().sum())
        note = f"{bad} value(s) that are not numbers set missing" if bad else ""
        return _classify_numbers(numbers, name, note or "read as numbers from text", len(values))
    if parse_dates(text).notna().mean() >= DATETIME_MIN_SHARE:
        return "datetime", ""
    unique_share = n_unique / n
    if (
        text.str.len().mean() >= TEXT_MIN_MEAN_LENGTH
        and text.str.count(r"\S+").mean() >= TEXT_MIN_MEAN_WORDS
        and unique_share >= TEXT_MIN_UNIQUE_SHARE
    ):
        return "text", "free text (long, mostly unique values); excluded"
    if n >= ID_MIN_ROWS and (
        unique_share >= ID_UNIQUE_SHARE or (n_unique > ID_HIGH_CARDINALITY and unique_share >= 0.5)
    ):
        return "id", f"id-like ({n_unique} distinct values in {n} rows); excluded"
    levels = kept_levels(text)
    rare = n_unique - len(levels)
    return "categorical", f"{rare} rare level(s) grouped as {OTHER_LEVEL}" if rare else ""


def _classify_numbers(numbers: pd.Series, name: str, note: str, n_rows: int) -> tuple[Role, str]:
    present = numbers.dropna()
    if present.nunique() == 1:
        return _single_value(numbers)
    if set(present.unique()) <= {0.0, 1.0}:
        return "boolean", "0/1 values"
    integral = bool(np.all(np.mod(present.to_numpy(), 1) == 0))
    if integral and len(present) >= max(ID_MIN_ROWS, ID_MIN_FILLED * n_rows):
        evidence = numeric_id_evidence(present, name)
        if evidence:
            return "id", f"id-like number ({'; '.join(evidence)}); excluded"
    return "numeric", note


def numeric_id_evidence(values: pd.Series, name: str) -> list[str]:
    """Why integers ``values`` (missing dropped, in row order) identify rows rather than measure them.

    An integer column is an id when it is unique and either named like an id (a token of
    :data:`NUMBER_ID_TOKENS`: *id*, *number*, *no*, *code*, …) or a sequence (near-monotone in row
    order, :data:`ID_MONOTONE_SHARE`); or when it is named like an id and of very high cardinality
    (at least :data:`ID_UNIQUE_SHARE` of its values distinct). A count or an amount is rarely unique,
    never a sequence in file order, and not named like an id.

    Args:
        values: The column's non-missing integer values, in row order.
        name: The column name.

    Returns:
        The evidence, in plain words (empty: not an id).
    """
    n = len(values)
    distinct = int(values.nunique())
    steps = np.diff(values.to_numpy(dtype="float64"))
    monotone = max(float((steps > 0).mean()), float((steps < 0).mean())) if len(steps) else 0.0
    id_words = [t for t in name_tokens(name) if t in NUMBER_ID_TOKENS]
    unique = distinct == n
    sequence = monotone >= ID_MONOTONE_SHARE
    named = bool(id_words)
    if not ((unique and (named or sequence)) or (named and distinct >= ID_UNIQUE_SHARE * n)):
        return []
    evidence = [f"{distinct} distinct integers in {n} rows"]
    if sequence:
        evidence.append(f"a sequence in row order ({monotone:.0%} of steps in one direction)")
    if named:
        evidence.append(f"named like an id ({', '.join(repr(w) for w in id_words)})")
    return evidence


def _single_value(values: pd.Series) -> tuple[Role, str]:
    if values.notna().all():
        return "constant", "one value in every row; excluded"
    return "boolean", "one value or blank: used as a filled (1) / blank (0) indicator"


def kept_levels(text: pd.Series) -> list[str]:
    """Levels of a categorical frequent enough to keep (the others are pooled as :data:`OTHER_LEVEL`)."""
    counts = text.value_counts()
    minimum = max(RARE_LEVEL_MIN_COUNT, RARE_LEVEL_MIN_SHARE * len(text))
    kept = counts[counts >= minimum].index[:MAX_LEVELS]
    return [str(v) for v in kept]


def infer_roles(
    frame: pd.DataFrame, *, id_column: str | None, target_column: str, time_column: str | None
) -> list[ColumnRole]:
    """Infer every column's role.

    Rules, in order: id / target / time columns by name; entirely missing or a single value in every
    row -> ``constant``; one value or blank -> ``boolean`` (filled indicator); two values such as
    yes/no, true/false, y/n or 0/1 -> ``boolean``; at least 95% of values numbers (``1,234``,
    ``€1,200``, ``45%`` accepted) -> ``numeric`` (unique integers named like an id -> ``id``); at least
    90% dates -> ``datetime``; long (≥ 30 characters, ≥ 4 words on average), mostly unique strings ->
    ``text``; unique or near-unique strings (≥ 90% distinct, or > 200 levels and ≥ 50% distinct) ->
    ``id``; other strings -> ``categorical`` (levels under max(5, 1% of rows) grouped as ``__other__``,
    at most 50 levels kept).

    Args:
        frame: The export after :func:`normalise_missing`.
        id_column: The id column (``None`` when the id is the row number).
        target_column: The target column.
        time_column: The date column giving ``as_of``, if any.

    Returns:
        One :class:`ColumnRole` per column, in column order.
    """
    fixed: dict[str, Role] = {target_column: "target"}
    if id_column is not None:
        fixed[id_column] = "id"
    if time_column is not None:
        fixed[time_column] = "time"
    roles: list[ColumnRole] = []
    for column in frame.columns:
        values = frame[column]
        missing = round(float(values.isna().mean()), 4) if len(values) else 0.0
        n_unique = int(values.nunique(dropna=True))
        if column in fixed:
            roles.append(ColumnRole(column, fixed[column], missing, n_unique, "given or inferred"))
            continue
        role, note = _classify(values, column)
        roles.append(ColumnRole(column, role, missing, n_unique, note))
    return roles


def feature_values(values: pd.Series, role: Role, as_of: pd.Series) -> pd.Series | None:
    """The model-ready feature for one column (``None`` when the role yields no feature)."""
    if role == "numeric":
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return values.astype("float64")
        return parse_numbers(values)
    if role == "boolean":
        present = values.dropna()
        if present.astype(str).str.strip().nunique() == 1:
            return values.notna().astype("float64")
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            return values.astype("float64")
        parsed = bool_values(values)
        return parsed if parsed is not None else parse_numbers(values)
    if role == "categorical":
        text = values.astype("string").str.strip()
        levels = kept_levels(text.dropna())
        capped = text.where(text.isin(levels) | text.isna(), OTHER_LEVEL)
        return capped.astype(object).where(capped.notna(), np.nan)
    if role == "datetime" and as_of.notna().any():
        dates = parse_dates(values)
        return ((as_of - dates).dt.total_seconds() / 86400.0).astype("float64")
    return None
