"""Parsing raw export values: the target into 0/1, placeholders into missing, numbers, dates, yes/no.

A CSV holds text; these helpers read it the same way when the export is prepared and when new rows
are scored (:mod:`forecast.features.flat.preparer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from forecast import timeutil
from forecast.errors import InputError
from forecast.features.flat.schema import MISSING_KIND_SUFFIX, PRESENT

_SELECT_RE = r"(please )?(select|choose|pick)( (one|an? option|an? value|an? item|from list))?"
_NA_WORDS = frozenset({"n/a", "#n/a", "n.a", "null", "nan", "nil", "#null!", "not applicable"})
_UNKNOWN_WORDS = frozenset({"unknown", "unk", "?", "not known", "not specified", "unspecified"})
_DASHES = frozenset({"-", "--", "---", "—", "–"})
_STRIP_CHARS = " .()[]<>*:-–—"
_POSITIVE = frozenset(
    {
        "yes", "y", "1", "1.0", "true", "t", "won", "win", "closed won", "converted", "success",
        "successful", "subscribed", "positive", "purchased", "bought", "signed", "accepted",
    }
)  # fmt: skip
_NEGATIVE = frozenset(
    {
        "no", "n", "0", "0.0", "false", "f", "lost", "loss", "lose", "closed lost", "not converted",
        "unconverted", "failure", "failed", "fail", "not subscribed", "unsubscribed", "negative",
        "rejected", "declined", "disqualified",
    }
)  # fmt: skip
_UNLABELLED = frozenset({"open", "pending", "in progress"})
BOOL_TRUE = frozenset({"yes", "y", "true", "t", "1"})
BOOL_FALSE = frozenset({"no", "n", "false", "f", "0"})


def _normalise_word(values: pd.Series) -> pd.Series:
    text = values.astype("string").str.strip().str.lower()
    return text.str.replace(r"[_\-/]+", " ", regex=True).str.replace(r"\s+", " ", regex=True)


def parse_target(values: pd.Series) -> tuple[pd.Series, str]:
    """Map a target column to 0/1.

    Case-insensitive vocabularies: yes/no, y/n, 1/0, true/false, won/lost, closed won/closed lost,
    converted/not converted, success/failure, subscribed/not subscribed, … Placeholders and
    "open" / "pending" / "in progress" become missing (rows kept as a scoring set). A column with
    exactly two distinct values of which one is unknown gets the opposite of the known one; two
    unknown values make the less frequent one positive (ties: the alphabetically last).

    Args:
        values: The raw target column.

    Returns:
        The labels (``Int64`` 0/1, ``<NA>`` where missing) and the raw value mapped to 1 (several
        spellings joined by " / "; "" when no row is positive).

    Raises:
        ValueError: Three or more distinct values of which some cannot be mapped; the message names them.
    """
    kind = missing_kind(values)
    norm = _normalise_word(values).mask(kind.notna())
    norm = norm.mask(norm.isin(_UNLABELLED))
    counts = norm.value_counts()
    mapping: dict[str, int] = {v: 1 for v in counts.index if v in _POSITIVE}
    mapping |= {v: 0 for v in counts.index if v in _NEGATIVE}
    unmapped = [v for v in counts.index if v not in mapping]
    if unmapped:
        if len(counts) == 2 and len(unmapped) == 1:
            (known,) = [v for v in counts.index if v in mapping]
            mapping[unmapped[0]] = 1 - mapping[known]
        elif len(counts) == 2:
            ordered = sorted(counts.index, key=lambda v: (int(counts[v]), [-ord(c) for c in str(v)]))
            mapping = {ordered[0]: 1, ordered[1]: 0}
        else:
            raw = sorted({str(r).strip() for r, n in zip(values, norm, strict=True) if n in unmapped})
            shown = raw if len(raw) <= 8 else [*raw[:8], f"… {len(raw) - 8} more"]
            where = f"{values.name!r}: " if values.name is not None else ""
            raise InputError(
                f"{where}values {shown} cannot be read as a yes/no outcome (expected two values or "
                f"yes/no, won/lost, converted/not converted, 1/0, true/false); found {len(counts)} "
                "distinct values. Name the outcome column as the target, or map its values to two outcomes",
                parameter="target",
            )
    labels = norm.map(mapping).astype("Int64")
    labels.name = values.name
    raw_positive = values[labels == 1].astype(str).str.strip().value_counts()
    return labels, " / ".join(str(v) for v in raw_positive.index)


def missing_kind(values: pd.Series) -> pd.Series:
    """Per cell: ``<NA>`` when present, else ``blank`` or ``placeholder:<kind>``."""
    kind = pd.Series(pd.NA, index=values.index, dtype="object")
    if pd.api.types.is_object_dtype(values) or isinstance(values.dtype, pd.StringDtype | pd.CategoricalDtype):
        kind = _per_unique(values.astype(object), _placeholder_kind, "object")
    kind[values.isna()] = "blank"
    return kind.where(kind.notna(), pd.NA)


def _placeholder_kind(values: pd.Series) -> pd.Series:
    kind = pd.Series(pd.NA, index=values.index, dtype="object")
    text = values.astype("string").str.strip().str.lower()
    key = text.str.strip(_STRIP_CHARS)
    present = kind.isna()
    rules = [
        ("blank", text == ""),
        ("placeholder:dash", text.isin(_DASHES)),
        ("placeholder:select", key.str.fullmatch(_SELECT_RE)),
        ("placeholder:na", key.isin(_NA_WORDS) | text.isin(_NA_WORDS)),
        ("placeholder:unknown", key.isin(_UNKNOWN_WORDS) | text.isin(_UNKNOWN_WORDS)),
    ]
    for name, hit in rules:
        mask = present & hit.fillna(False).astype(bool)
        kind[mask] = name
        present &= ~mask
    return kind


def normalise_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn placeholders into missing values, keeping the kind of missing where it can carry signal.

    Placeholders (case-insensitive, surrounding spaces, brackets and dots ignored): blank cells and
    whitespace (kind ``blank``, like cells already missing); "Select", "Please select", "-- select --",
    "Choose one" (``placeholder:select``); "N/A", "#N/A", "null", "nan", "not applicable"
    (``placeholder:na``); "-", "--", "—" (``placeholder:dash``); "unknown", "?", "not specified"
    (``placeholder:unknown``). "NA" and "None" are left alone (a region, a real answer).

    Rule for the extra column: for each column where a placeholder occurred and the missing cells
    are of two or more kinds (e.g. "Select" left untouched on a form vs a field never shown, i.e.
    blank), ``<col>__missing_kind`` is added right after the column with values ``present``,
    ``blank``, ``placeholder:select``, … With a single kind, the missing value itself already says
    everything, so no column is added.

    Args:
        frame: Raw columns.

    Returns:
        A new frame with placeholders as missing and the ``__missing_kind`` columns inserted.
    """
    out: dict[str, pd.Series] = {}
    for column in frame.columns:
        values = frame[column]
        kind = missing_kind(values)
        placeholder = kind.notna() & values.notna()
        out[column] = values.mask(placeholder) if placeholder.any() else values
        kinds = set(kind.dropna())
        if placeholder.any() and len(kinds) >= 2:
            out[f"{column}{MISSING_KIND_SUFFIX}"] = kind.fillna(PRESENT).astype(object)
    return pd.DataFrame(out, index=frame.index)


def _per_unique(values: pd.Series, func: Callable[[pd.Series], pd.Series], dtype: Any) -> pd.Series:
    """Apply a vectorised string function to the distinct non-missing values only, then map back."""
    uniques = pd.Series(pd.unique(values.dropna()), dtype=object)
    lookup = pd.Series(func(uniques).to_numpy(), index=uniques.to_numpy())
    return values.map(lookup).astype(dtype)


def parse_numbers(text: pd.Series) -> pd.Series:
    """Parse strings such as ``1,234``, ``€1,200``, ``45%`` or ``1200 EUR`` as floats (else NaN)."""
    return _per_unique(text, _parse_numbers_unique, "float64")


def _parse_numbers_unique(text: pd.Series) -> pd.Series:
    t = text.astype("string").str.strip()
    t = t.str.replace(r"^(?:[€$£¥]|(?i:eur|usd|gbp)\b)\s*|\s*(?:[€$£¥]|\b(?i:eur|usd|gbp))$", "", regex=True)
    t = t.str.replace(r"\s*%$", "", regex=True)
    thousands = t.str.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?").fillna(False).astype(bool)
    t = t.where(~thousands, t.str.replace(",", "", regex=False))
    return pd.to_numeric(t, errors="coerce").astype("float64")


_DATE_RE = (
    r"\d{4}-\d{1,2}-\d{1,2}(?:[ T].*)?"
    r"|\d{4}/\d{1,2}/\d{1,2}(?:[ T].*)?"
    r"|\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(?:[ T].*)?"
)


def parse_dates(values: pd.Series, dayfirst: bool | None = None) -> pd.Series:
    """Parse dates (ISO, ``d/m/Y`` or ``m/d/Y``: day first when a first field exceeds 12) to naive UTC.

    ``dayfirst`` fixes the reading of ``d/m/Y`` vs ``m/d/Y`` (as learnt on training rows); ``None``
    decides from ``values`` themselves.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return timeutil.to_utc_naive(values).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    return _per_unique(values, lambda u: _parse_dates_unique(u, dayfirst), "datetime64[ns]")


def guess_dayfirst(values: pd.Series) -> bool | None:
    """Whether slash/dot dates in ``values`` read day first (a first field exceeds 12, no second one does).

    ``None`` for typed dates (nothing to learn: text dates seen later decide for themselves).
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return None
    text = pd.Series(pd.unique(values.dropna()), dtype=object).astype("string").str.strip()
    looks = text.str.fullmatch(_DATE_RE).fillna(False).astype(bool)
    parts = text[looks].str.extract(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-]").astype(float)
    return bool((parts[0] > 12).any() and not (parts[1] > 12).any())


def _parse_dates_unique(values: pd.Series, dayfirst: bool | None = None) -> pd.Series:
    text = values.astype("string").str.strip()
    looks = text.str.fullmatch(_DATE_RE).fillna(False).astype(bool)
    if dayfirst is None:
        dayfirst = bool(guess_dayfirst(text[looks]))
    parsed = pd.to_datetime(text.where(looks), errors="coerce", format="mixed", dayfirst=dayfirst, utc=True)
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def bool_values(text: pd.Series) -> pd.Series | None:
    """1.0 / 0.0 / NaN when the non-missing values are one true word and one false word, else None."""
    uniques = pd.Series(pd.unique(text.dropna()), dtype=object)
    low = uniques.astype(str).str.strip().str.lower()
    distinct = set(low)
    if len(distinct) != 2 or not (distinct & BOOL_TRUE and distinct & BOOL_FALSE):
        return None
    lookup = pd.Series(low.isin(BOOL_TRUE).astype("float64").to_numpy(), index=uniques.to_numpy())
    return text.map(lookup).astype("float64")
