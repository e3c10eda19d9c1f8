"""Bring-your-own flat export: one CSV or Parquet file from a CRM report turned into a feature table.

A sales team that has no warehouse can still train every model on a single export (a HubSpot or
Salesforce report, a spreadsheet): one row per lead or deal, an id column, a target column (yes/no,
Won/Lost, 1/0, …) and optionally a date column. This module

1. parses the target into 0/1 (:func:`parse_target`),
2. turns placeholders ("Select", "", "N/A", "-", "unknown") into missing values while keeping which
   kind of missing it was where more than one kind occurs (:func:`normalise_missing`),
3. infers each column's role (:func:`infer_roles`) and builds model-ready feature columns,
4. flags columns that leak the outcome (:func:`detect_leakage`) and excludes them unless kept.

The output (:class:`FlatExport`) holds the same kind of feature table as the warehouse snapshots:
``entity_id``, ``as_of`` (datetime64[ns], NaT without a date column), feature columns (float for
numeric and boolean features, object strings for categoricals) and ``label_target`` (Int64 0/1,
missing for rows without a target, which are kept as a scoring set).

Everything here is pure except :func:`load_flat_export`, which reads the file and calls
:func:`prepare_flat_export`. Results are deterministic (fixed fold seeds).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from forecast import timeutil
from forecast.categories import OTHER
from forecast.data.readers import read_table_file
from forecast.errors import InputError, truncate
from forecast.features.period_columns import period_level_columns

# --- output contract -------------------------------------------------------------------------------
ENTITY_ID = "entity_id"
"""Name of the id column in the feature table (as in the warehouse snapshots)."""
AS_OF = "as_of"
LABEL = "label_target"
ROW_ID = "row_id"
"""Name given to the 1-based row number when the export has no id column."""
MISSING_KIND_SUFFIX = "__missing_kind"
DAYS_BEFORE_SUFFIX = "__days_before_as_of"
OTHER_LEVEL = OTHER
"""Pooled level of rare values (owned by :mod:`forecast.categories`)."""
PRESENT = "present"

# --- leakage thresholds (documented in docs/features.md) --------------------------------------------
LEAKAGE_AUC = 0.98
"""A column whose value (or whose being filled) alone reaches this ROC-AUC is flagged."""
FILL_MIN_MISSING_SHARE = 0.20
"""The "filled almost only for one class" rule applies to columns missing in at least this share."""
FILL_CLASS_PURITY = 0.99
"""… when at least this share of the filled rows belong to one class …"""
FILL_SHARE_GAP = 0.5
"""… and the share of rows filled differs between the classes by at least this much."""
VALUE_CLASS_PURITY = 0.995
"""A categorical value whose rows belong to one class in at least this share (it exists for one outcome
only: a strong but imperfect predictor, e.g. a contract length whose "two year" level is 97% negative,
stays in) …"""
VALUE_MIN_CLASS_COVERAGE = 0.10
"""… and that covers at least this share of that class's rows …"""
VALUE_MIN_ROWS = 10
"""… and has at least this many rows is flagged, if it also passes the imbalance guard below."""
PURITY_LIFT = 0.2
"""Imbalance guard: inside the value, the other class must be at most this fraction of its base rate."""
AFTER_OUTCOME_TEXT = re.compile(
    r"\b(?:closed by|closed won|closed lost|lost to|won by|will revert|reverted|churned|cancell?ed|refunded|"
    r"already (?:a )?(?:customer|student|bought|purchased|enrolled)|not interested|converted|"
    r"signed (?:up|the contract)|invalid number|wrong number|switched off|ringing|do not call)\b",
    re.IGNORECASE,
)
"""Text a rep writes after the outcome (tags, notes): "Closed by Horizzon", "Lost to EINS", "Will revert"."""
AFTER_OUTCOME_MIN_SHARE = 0.05
"""The after-the-outcome text rule applies when such values fill at least this share of rows …"""
AFTER_OUTCOME_PURITY = 0.85
"""… and at least this share of the rows of each such value belong to one class."""
LATER_THAN_TIME_SHARE = 0.2
"""A date column dated after ``--time`` in at least this share of rows was written after the fact."""
N_FOLDS = 5
RANDOM_STATE = 0

# --- role inference thresholds ---------------------------------------------------------------------
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

Role = Literal["id", "target", "time", "numeric", "categorical", "boolean", "datetime", "text", "constant"]
FEATURE_ROLES: frozenset[str] = frozenset({"numeric", "categorical", "boolean", "datetime"})

# --- vocabularies ----------------------------------------------------------------------------------
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
_BOOL_TRUE = frozenset({"yes", "y", "true", "t", "1"})
_BOOL_FALSE = frozenset({"no", "n", "false", "f", "0"})

OUTCOME_TOKENS: frozenset[str] = frozenset(
    {
        "won", "lost", "loss", "closed", "close", "closing", "converted", "conversion", "status",
        "result", "results", "outcome", "stage", "disposition", "probability",
    }
)  # fmt: skip
"""Name tokens that speak of the outcome (matched on word tokens, case-insensitive)."""
OUTCOME_PHRASES: dict[str, str] = {
    "lastactivity": "last activity",
    "lastcontacted": "last contacted",
    "lastcontact": "last contact",
    "lastengagement": "last engagement",
    "closedate": "close date",
    "closedwon": "closed won",
    "closedlost": "closed lost",
    "dealstage": "deal stage",
    "lifecyclestage": "lifecycle stage",
    "leadstatus": "lead status",
    "lostreason": "lost reason",
    "isclosed": "is closed",
    "iswon": "is won",
    "forecastcategory": "forecast category",
    "stagename": "stage name",
}
"""Run-together names (HubSpot's ``hs_lastactivitydate``) matched inside the name without separators."""
_ID_TOKENS = frozenset({"id", "uuid", "guid"})
NUMBER_ID_TOKENS: frozenset[str] = frozenset(
    {"id", "uuid", "guid", "number", "no", "nr", "num", "code", "key", "ref", "reference", "record"}
)
"""Name tokens of a number that identifies a row ("Lead Number", "Account No", "Customer Code")."""
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


@dataclass(frozen=True)
class LeakageFlag:
    """A column suspected of leaking the outcome.

    Attributes:
        column: Feature column name.
        reason: Plain words, e.g. "predicts the target almost perfectly on its own (AUC 0.998)".
        evidence: The numbers behind the reason.
        confidence: ``high`` with near-perfect separation or two kinds of evidence of
            after-the-outcome content (name, text, dates after ``--time``, values or filling that
            exist for one outcome only), else ``medium``.
    """

    column: str
    reason: str
    evidence: dict[str, float]
    confidence: Literal["high", "medium"] = "medium"


@dataclass
class FlatExport:
    """A flat export turned into a feature table, with what was inferred, flagged and dropped.

    Attributes:
        table: ``entity_id``, ``as_of``, feature columns, ``label_target``.
        roles: One role per input column (plus ``row_id`` when it was created).
        leakage: Leakage flags (excluded unless kept).
        excluded: Input or feature columns not in the table (leakage, id-like, free text, constant,
            dates without a time column).
        kept_despite_flag: Flagged columns kept because they were named in ``keep_columns``.
        warnings: Plain-words warnings (one per excluded leakage column, duplicates, missing targets).
        id_column: Input column used as id (``row_id`` when created from the row number).
        target_column: Input target column.
        time_column: Input date column giving ``as_of``, if any.
        positive_label: The raw target value mapped to 1.
        duplicate_rows: Rows that exactly repeat an earlier row (ignoring the id column).
        column_auc: Single-column ROC-AUC (max of value and is-missing) of every candidate feature.
        preparation: How each feature column was made from the raw columns (levels, yes/no reading,
            date order), learnt on this export; read it through :meth:`preparer_spec`.
        period_columns: Feature columns that describe when a row was recorded rather than the row
            (a month, a monthly rate), with their evidence
            (:func:`~forecast.features.period_columns.period_level_columns`).
    """

    table: pd.DataFrame
    roles: list[ColumnRole]
    leakage: list[LeakageFlag]
    excluded: list[str]
    kept_despite_flag: list[str]
    warnings: list[str]
    id_column: str
    target_column: str
    time_column: str | None
    positive_label: str
    duplicate_rows: int = 0
    column_auc: dict[str, float] = field(default_factory=dict)
    preparation: dict[str, Any] = field(default_factory=dict, repr=False)
    period_columns: dict[str, float] = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        """Feature columns of :attr:`table` (everything but id, as_of and labels)."""
        return [c for c in self.table.columns if c not in (ENTITY_ID, AS_OF) and not c.startswith("label_")]

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary: rows, label rate, roles, leakage, exclusions and warnings."""
        labels = self.table[LABEL]
        labelled = int(labels.notna().sum())
        top = sorted(self.column_auc.items(), key=lambda kv: -kv[1])[:10]
        return {
            "rows": len(self.table),
            "rows_labelled": labelled,
            "rows_unlabelled": len(self.table) - labelled,
            "label_rate": round(float(labels.dropna().astype(float).mean()), 4) if labelled else None,
            "positive_label": self.positive_label,
            "id_column": self.id_column,
            "target_column": self.target_column,
            "time_column": self.time_column,
            "duplicate_rows": int(self.duplicate_rows),
            "feature_columns": self.feature_columns,
            "roles": [asdict(r) for r in self.roles],
            "leakage": [
                {
                    "column": f.column,
                    "reason": f.reason,
                    "confidence": f.confidence,
                    "evidence": {k: float(v) for k, v in f.evidence.items()},
                }
                for f in self.leakage
            ],
            "excluded": list(self.excluded),
            "kept_despite_flag": list(self.kept_despite_flag),
            "warnings": list(self.warnings),
            "strongest_columns": {k: round(float(v), 4) for k, v in top},
            "period_columns": dict(self.period_columns),
        }

    def preparer_spec(self) -> dict[str, Any]:
        """What :class:`FlatExportPreparer` needs to turn new raw rows into :attr:`feature_columns`.

        Returns:
            A JSON-serialisable dict (a copy): ``id_column`` (``None`` when the id is the row number),
            ``time_column``, ``time_dayfirst`` (how ``d/m/Y``-like dates read; ``None``: typed dates
            in training, text dates decide for themselves), ``inputs`` (the raw columns new rows must have),
            ``feature_columns`` and, per feature, its ``name``, ``source`` column, ``derived_from``
            (``value`` or ``missing_kind``), ``role`` and parsing info (``levels`` of a categorical,
            ``boolean_mode`` of a boolean, ``dayfirst`` of a date).

        Raises:
            ValueError: The export was not made by :func:`prepare_flat_export`.
        """
        if not self.preparation:
            raise ValueError("this FlatExport has no preparation spec (build it with prepare_flat_export)")
        return copy.deepcopy(self.preparation)

    def preparer(self) -> FlatExportPreparer:
        """A fitted :class:`FlatExportPreparer` that re-applies this export's preparation to new rows."""
        return FlatExportPreparer(self.preparer_spec())


# --- names -----------------------------------------------------------------------------------------
def name_tokens(name: str) -> list[str]:
    """Split a column name into lower-case word tokens (on ``_``, spaces, ``-``, ``.`` and camelCase)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def outcome_words(name: str) -> list[str]:
    """The outcome words found in a column name (empty when the name is innocent)."""
    tokens = name_tokens(name)
    hits = [t for t in tokens if t in OUTCOME_TOKENS]
    joined = "".join(tokens)
    hits += [words for p, words in OUTCOME_PHRASES.items() if p in joined and not any(h in p for h in hits)]
    return list(dict.fromkeys(hits))


def _looks_like_id_name(name: str) -> bool:
    tokens = name_tokens(name)
    return bool(tokens) and (tokens[-1] in _ID_TOKENS or name.strip().lower() in {"key", "record"})


def _source_of(feature: str) -> str:
    for suffix in (MISSING_KIND_SUFFIX, DAYS_BEFORE_SUFFIX):
        if feature.endswith(suffix):
            return feature[: -len(suffix)]
    return feature


# --- target ----------------------------------------------------------------------------------------
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
    kind = _missing_kind(values)
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
            where = f"target column {values.name!r}: " if values.name is not None else ""
            raise InputError(
                f"{where}target values {shown} cannot be read as a yes/no outcome (expected two values or "
                f"yes/no, won/lost, converted/not converted, 1/0, true/false); found {len(counts)} "
                "distinct values. Pass the outcome column as --target, or map its values to two outcomes"
            )
    labels = norm.map(mapping).astype("Int64")
    labels.name = values.name
    raw_positive = values[labels == 1].astype(str).str.strip().value_counts()
    return labels, " / ".join(str(v) for v in raw_positive.index)


# --- missing values --------------------------------------------------------------------------------
def _missing_kind(values: pd.Series) -> pd.Series:
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
        kind = _missing_kind(values)
        placeholder = kind.notna() & values.notna()
        out[column] = values.mask(placeholder) if placeholder.any() else values
        kinds = set(kind.dropna())
        if placeholder.any() and len(kinds) >= 2:
            out[f"{column}{MISSING_KIND_SUFFIX}"] = kind.fillna(PRESENT).astype(object)
    return pd.DataFrame(out, index=frame.index)


# --- parsing ---------------------------------------------------------------------------------------
def _per_unique(values: pd.Series, func: Callable[[pd.Series], pd.Series], dtype: Any) -> pd.Series:
    """Apply a vectorised string function to the distinct non-missing values only, then map back."""
    uniques = pd.Series(pd.unique(values.dropna()), dtype=object)
    lookup = pd.Series(func(uniques).to_numpy(), index=uniques.to_numpy())
    return values.map(lookup).astype(dtype)


def _parse_numbers(text: pd.Series) -> pd.Series:
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


def _parse_dates(values: pd.Series, dayfirst: bool | None = None) -> pd.Series:
    """Parse dates (ISO, ``d/m/Y`` or ``m/d/Y``: day first when a first field exceeds 12) to naive UTC.

    ``dayfirst`` fixes the reading of ``d/m/Y`` vs ``m/d/Y`` (as learnt on training rows); ``None``
    decides from ``values`` themselves.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return timeutil.to_utc_naive(values).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.astype("datetime64[ns]")
    return _per_unique(values, lambda u: _parse_dates_unique(u, dayfirst), "datetime64[ns]")


def _dayfirst(values: pd.Series) -> bool | None:
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
        dayfirst = bool(_dayfirst(text[looks]))
    parsed = pd.to_datetime(text.where(looks), errors="coerce", format="mixed", dayfirst=dayfirst, utc=True)
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")


def _bool_values(text: pd.Series) -> pd.Series | None:
    """1.0 / 0.0 / NaN when the non-missing values are one true word and one false word, else None."""
    uniques = pd.Series(pd.unique(text.dropna()), dtype=object)
    low = uniques.astype(str).str.strip().str.lower()
    distinct = set(low)
    if len(distinct) != 2 or not (distinct & _BOOL_TRUE and distinct & _BOOL_FALSE):
        return None
    lookup = pd.Series(low.isin(_BOOL_TRUE).astype("float64").to_numpy(), index=uniques.to_numpy())
    return text.map(lookup).astype("float64")


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
    if _bool_values(text) is not None:
        return "boolean", "two values read as yes/no"
    numbers = _parse_numbers(text)
    if numbers.notna().mean() >= NUMERIC_MIN_SHARE:
        bad = int(numbers.isna().sum())
        note = f"{bad} value(s) that are not numbers set missing" if bad else ""
        return _classify_numbers(numbers, name, note or "read as numbers from text", len(values))
    if _parse_dates(text).notna().mean() >= DATETIME_MIN_SHARE:
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
    levels = _kept_levels(text)
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


def _kept_levels(text: pd.Series) -> list[str]:
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


def _feature_values(values: pd.Series, role: Role, as_of: pd.Series) -> pd.Series | None:
    """The model-ready feature for one column (``None`` when the role yields no feature)."""
    if role == "numeric":
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return values.astype("float64")
        return _parse_numbers(values)
    if role == "boolean":
        present = values.dropna()
        if present.astype(str).str.strip().nunique() == 1:
            return values.notna().astype("float64")
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            return values.astype("float64")
        parsed = _bool_values(values)
        return parsed if parsed is not None else _parse_numbers(values)
    if role == "categorical":
        text = values.astype("string").str.strip()
        levels = _kept_levels(text.dropna())
        capped = text.where(text.isin(levels) | text.isna(), OTHER_LEVEL)
        return capped.astype(object).where(capped.notna(), np.nan)
    if role == "datetime" and as_of.notna().any():
        dates = _parse_dates(values)
        return ((as_of - dates).dt.total_seconds() / 86400.0).astype("float64")
    return None


# --- leakage ---------------------------------------------------------------------------------------
def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """max(AUC, 1 - AUC) of ``score`` for binary ``y``; 0.5 when undefined."""
    if len(np.unique(y)) < 2 or len(np.unique(score)) < 2:
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _numeric_auc(x: pd.Series, y: np.ndarray) -> float:
    """AUC of the raw value, with missing values ranked lowest or highest (whichever is better)."""
    values = x.to_numpy(dtype="float64")
    if np.isnan(values).all():
        return 0.5
    low, high = np.nanmin(values) - 1.0, np.nanmax(values) + 1.0
    return max(
        _auc(y, np.where(np.isnan(values), low, values)), _auc(y, np.where(np.isnan(values), high, values))
    )


def _oof_level_rate_auc(x: pd.Series, y: np.ndarray) -> float:
    """AUC of the per-level target rate computed out of fold (5-fold, fixed seed)."""
    codes, _ = pd.factorize(x.astype(object).where(x.notna(), "__missing__"))
    n_splits = min(N_FOLDS, int(np.bincount(y).min()))
    if n_splits < 2:
        return 0.5
    k = int(codes.max()) + 1
    encoded = np.empty(len(y), dtype="float64")
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=RANDOM_STATE)
    for train, test in folds.split(codes, y):
        counts = np.bincount(codes[train], minlength=k)
        sums = np.bincount(codes[train], weights=y[train], minlength=k)
        rate = np.where(counts > 0, sums / np.maximum(counts, 1), y[train].mean())
        encoded[test] = rate[codes[test]]
    return _auc(y, encoded)


def _is_categorical(x: pd.Series) -> bool:
    return bool(pd.api.types.is_object_dtype(x) or isinstance(x.dtype, pd.CategoricalDtype | pd.StringDtype))


def _class_words(cls: int, positive_label: str) -> str:
    return f"positive ({positive_label!r})" if cls == 1 else "negative"


def _fill_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    filled = x.notna().to_numpy()
    if (1 - filled.mean()) < FILL_MIN_MISSING_SHARE or not filled.any():
        return None
    pos_share = float(y[filled].mean())
    cls = int(pos_share >= 0.5)
    purity = pos_share if cls == 1 else 1 - pos_share
    fill_pos, fill_neg = float(filled[y == 1].mean()), float(filled[y == 0].mean())
    gap = abs(fill_pos - fill_neg)
    if purity < FILL_CLASS_PURITY or gap < FILL_SHARE_GAP:
        return None
    same, other = (fill_pos, fill_neg) if cls == 1 else (fill_neg, fill_pos)
    reason = (
        f"filled almost only for {_class_words(cls, positive_label)} rows ({purity:.0%} of filled rows; "
        f"filled in {same:.0%} of those rows vs {other:.0%} of the others)"
    )
    return reason, {"filled_class_purity": purity, "fill_share_gap": gap}


def _value_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    present = x.notna().to_numpy()
    if not present.any():
        return None
    levels = x[present].astype(str).to_numpy()
    yy = y[present]
    table = pd.crosstab(levels, yy)
    for cls in (0, 1):
        if cls not in table.columns:
            table[cls] = 0
    n_class = np.array([(y == 0).sum(), (y == 1).sum()], dtype=float)
    base = n_class / n_class.sum()
    best: tuple[float, str, int, float, float] | None = None
    for level, row in table.iterrows():
        counts = np.array([row[0], row[1]], dtype=float)
        total = counts.sum()
        cls = int(counts[1] > counts[0])
        purity = counts[cls] / total
        coverage = counts[cls] / n_class[cls] if n_class[cls] else 0.0
        other_rate = counts[1 - cls] / total
        if (
            total >= VALUE_MIN_ROWS
            and purity >= VALUE_CLASS_PURITY
            and coverage >= VALUE_MIN_CLASS_COVERAGE
            and other_rate <= PURITY_LIFT * base[1 - cls]
            and (best is None or coverage > best[0])
        ):
            best = (coverage, str(level), cls, purity, total)
    if best is None:
        return None
    coverage, level, cls, purity, total = best
    reason = (
        f"the value {level!r} appears almost only in {_class_words(cls, positive_label)} rows "
        f"({purity:.0%} of its {int(total)} rows; it covers {coverage:.0%} of that class)"
    )
    return reason, {"value_class_purity": float(purity), "value_class_coverage": float(coverage)}


def _text_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    """Values written after the outcome ("Closed by …", "Lost to …", "Will revert"), each mostly one class."""
    present = x.notna().to_numpy()
    if not present.any():
        return None
    text = x[present].astype(str)
    matches = pd.Series(text.unique()).loc[lambda u: u.str.contains(AFTER_OUTCOME_TEXT)]
    if matches.empty:
        return None
    hit = text.isin(set(matches)).to_numpy()
    share = float(hit.sum() / len(x))
    rates = pd.Series(y[present][hit]).groupby(text.to_numpy()[hit]).agg(["mean", "size"])
    purity = float((np.maximum(rates["mean"], 1 - rates["mean"]) * rates["size"]).sum() / rates["size"].sum())
    if share < AFTER_OUTCOME_MIN_SHARE or purity < AFTER_OUTCOME_PURITY:
        return None
    shown = ", ".join(repr(v) for v in list(matches)[:3])
    reason = (
        f"its values read as written after the outcome ({shown}: {share:.0%} of rows, "
        f"{purity:.0%} of them of one outcome)"
    )
    return reason, {"after_outcome_text_share": share, "after_outcome_text_purity": purity}


def _later_rule(x: pd.Series, y: np.ndarray, positive_label: str) -> tuple[str, dict[str, float]] | None:
    """A date feature (days before as_of) dated after ``--time`` in many rows."""
    days = x.to_numpy(dtype="float64")
    filled = ~np.isnan(days)
    if not filled.any():
        return None
    later = float((days[filled] < 0).mean())
    if later < LATER_THAN_TIME_SHARE:
        return None
    reason = f"dated after the --time column in {later:.0%} of the rows where it is filled"
    return reason, {"share_after_time": later}


def column_auc(features: pd.DataFrame, target: pd.Series) -> dict[str, tuple[float, float]]:
    """Single-column predictive power on the rows with a known target.

    Args:
        features: Feature columns (numeric floats or categorical strings).
        target: 0/1 labels aligned with ``features`` (missing = unlabelled, ignored).

    Returns:
        Per column ``(auc_value, auc_missing)``: the AUC of the value (numeric: raw value with missing
        ranked at either end; categorical: out-of-fold per-level target rate) and of the is-missing
        indicator, each as max(AUC, 1 - AUC).
    """
    known = target.notna().to_numpy()
    y = target[known].astype(int).to_numpy()
    out: dict[str, tuple[float, float]] = {}
    for column in features.columns:
        x = features[column][known]
        value_auc = _oof_level_rate_auc(x, y) if _is_categorical(x) else _numeric_auc(x.astype("float64"), y)
        out[column] = (value_auc, _auc(y, x.isna().to_numpy(dtype="float64")))
    return out


def detect_leakage(
    features: pd.DataFrame,
    target: pd.Series,
    roles: Sequence[ColumnRole] = (),
    *,
    positive_label: str = "1",
    auc: dict[str, tuple[float, float]] | None = None,
) -> list[LeakageFlag]:
    """Flag columns that probably leak the outcome.

    Measured on the rows with a known target:

    (a) predicts the target almost perfectly on its own: value AUC or is-missing AUC ≥ 0.98
        (see :func:`column_auc`);
    (b) filled almost only for one class: the column is missing in ≥ 20% of rows, ≥ 97% of its
        filled rows are of one class and the fill share differs between classes by ≥ 0.5; or one
        categorical (or boolean) value has ≥ 10 rows, ≥ 97% of them in one class, covers ≥ 10% of that
        class, and the other class is at most 0.2x as frequent inside it as overall (guards against
        imbalanced targets, where every value is mostly negative);
    (c) the name speaks of the outcome (:data:`OUTCOME_TOKENS`, :data:`OUTCOME_PHRASES`).

    Args:
        features: Candidate feature columns (not the target).
        target: 0/1 labels aligned with ``features``; missing labels are ignored.
        roles: Input column roles; columns whose source role is id, target or time are skipped.
        positive_label: Raw positive target value, for the reasons' wording.
        auc: Precomputed :func:`column_auc` (computed when omitted).

    Returns:
        One flag per flagged column, reasons joined by "; ", in column order.
    """
    skip = {r.name for r in roles if r.role in ("id", "target", "time")}
    columns = [c for c in features.columns if _source_of(c) not in skip]
    known = target.notna().to_numpy()
    y = target[known].astype(int).to_numpy()
    both_classes = len(np.unique(y)) == 2
    scores = auc if auc is not None else (column_auc(features[columns], target) if both_classes else {})
    flags: list[LeakageFlag] = []
    for column in columns:
        reasons: list[str] = []
        evidence: dict[str, float] = {}
        kinds = 0  # independent kinds of after-the-outcome evidence
        separates = False
        if both_classes:
            value_auc, missing_auc = scores[column]
            separates = max(value_auc, missing_auc) >= LEAKAGE_AUC
            if value_auc >= LEAKAGE_AUC:
                reasons.append(f"predicts the target almost perfectly on its own (AUC {value_auc:.3f})")
                evidence["auc"] = round(value_auc, 4)
            elif missing_auc >= LEAKAGE_AUC:
                reasons.append(
                    f"whether it is filled predicts the target almost perfectly (AUC {missing_auc:.3f})"
                )
                evidence["auc_missing"] = round(missing_auc, 4)
            x = features[column][known]
            categorical = _is_categorical(x)
            rules: list[Callable[..., tuple[str, dict[str, float]] | None]] = [_fill_rule]
            if categorical or x.nunique() <= 2:
                rules.append(_value_rule)
            if categorical:
                rules.append(_text_rule)
            if column.endswith(DAYS_BEFORE_SUFFIX):
                rules.append(_later_rule)
            for rule in rules:
                found = rule(x, y, positive_label)
                if found:
                    kinds += 1
                    reasons.append(found[0])
                    evidence |= {k: round(float(v), 4) for k, v in found[1].items()}
        words = outcome_words(_source_of(column))
        if words:
            kinds += 1
            quoted = ", ".join(repr(w) for w in words)
            reasons.append(
                f"its name speaks of the outcome ({quoted}); such fields are usually filled after the result"
            )
            evidence["name_match"] = 1.0
        if reasons:
            confidence: Literal["high", "medium"] = "high" if separates or kinds >= 2 else "medium"
            flags.append(LeakageFlag(column, "; ".join(reasons), evidence, confidence))
    return flags


# --- assembly --------------------------------------------------------------------------------------
def _require(frame: pd.DataFrame, column: str, what: str) -> None:
    if column not in frame.columns:
        raise InputError(f"{what} column {column!r} not found; available columns: {list(frame.columns)}")


def _infer_id_column(frame: pd.DataFrame, exclude: set[str]) -> str | None:
    for column in frame.columns:
        if column in exclude or not _looks_like_id_name(column):
            continue
        values = frame[column]
        if values.notna().all() and values.is_unique:
            return str(column)
    return None


_MODEL_UNSAFE = re.compile(r'[",:\[\]{}\x00-\x1f\x7f]')
"""Characters LightGBM refuses in a feature name (JSON specials; a newline or NUL breaks its list)."""


def _safe_name(column: str) -> str:
    if column in (ENTITY_ID, AS_OF) or column.startswith("label_"):
        column = f"raw_{column}"
    return _MODEL_UNSAFE.sub("_", column)


def safe_feature_names(columns: Sequence[str]) -> dict[str, str]:
    """Model-safe, unique feature names for an export's columns.

    A header may hold any character; LightGBM refuses ``"``, ``,``, ``:``, ``[``, ``]``, ``{``, ``}``
    and control characters in a feature name, and the reserved names (``entity_id``, ``as_of``,
    ``label_*``) must stay free. Each such character becomes ``_``; a name that then collides with
    another gets ``_2``, ``_3``, ... in column order.

    Args:
        columns: Feature column names, in order.

    Returns:
        Column -> safe name, for every column (most map to themselves).
    """
    taken: set[str] = set()
    out: dict[str, str] = {}
    for column in columns:
        name = base = _safe_name(column)
        n = 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out[column] = name
    return out


def prepare_flat_export(
    frame: pd.DataFrame,
    *,
    target: str,
    id_column: str | None = None,
    time_column: str | None = None,
    keep_columns: Sequence[str] = (),
) -> FlatExport:
    """Turn one flat export into a feature table (pure: no I/O).

    Args:
        frame: The export, one row per lead or deal (strings or native types).
        target: The outcome column.
        id_column: The id column; inferred when omitted (a unique column named like ``id``, ``*_id``,
            ``Record ID``), else ``row_id`` is created from the 1-based row number.
        time_column: A date column giving each row's ``as_of``; dates in other columns become "days
            before as_of" features. Without it ``as_of`` is NaT and other date columns are dropped.
        keep_columns: Flagged columns to keep anyway (each kept one gets a warning).

    Returns:
        The :class:`FlatExport`.

    Raises:
        ValueError: A named column is missing (the message lists the available ones), the target
            cannot be parsed, or the labelled rows do not contain both outcomes.
    """
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    _require(frame, target, "target")
    if id_column is not None:
        _require(frame, id_column, "id")
    if time_column is not None:
        _require(frame, time_column, "time")
    unknown = [c for c in keep_columns if c not in frame.columns]
    if unknown:
        raise InputError(f"keep column(s) {unknown} not found; available columns: {list(frame.columns)}")

    warnings: list[str] = []
    labels, positive_label = parse_target(frame[target])
    labelled = labels.dropna()
    if labelled.nunique() < 2:
        raise InputError(
            f"target column {target!r} needs both outcomes among its labelled rows; "
            f"found {labelled.value_counts().to_dict()}"
        )
    unlabelled = int(labels.isna().sum())
    if unlabelled:
        warnings.append(
            f"{unlabelled} row(s) have no value in {target!r}; kept with an empty label (a set to score)"
        )

    if id_column is None:
        id_column = _infer_id_column(frame, {target, *([time_column] if time_column else [])})
    if id_column is None:
        ids = pd.Series(np.arange(1, len(frame) + 1), name=ENTITY_ID)
    else:
        ids = frame[id_column].rename(ENTITY_ID)
        if not ids.is_unique:
            warnings.append(f"id column {id_column!r} has {int(ids.duplicated().sum())} repeated value(s)")
    duplicate_rows = int(frame.drop(columns=[id_column] if id_column else []).duplicated().sum())
    if duplicate_rows:
        warnings.append(
            f"note: {duplicate_rows} row(s) have the same values as an earlier row in every column but "
            "the id; distinct leads often share every recorded value, so they are kept (remove them only "
            "if they are the same lead exported twice)"
        )

    if time_column is not None:
        as_of = _parse_dates(frame[time_column].mask(_missing_kind(frame[time_column]).notna()))
        bad = int((as_of.isna() & frame[time_column].notna()).sum())
        if bad:
            warnings.append(
                f"{bad} value(s) of time column {time_column!r} are not dates; their as_of is empty"
            )
    else:
        as_of = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]")
    as_of = as_of.rename(AS_OF)

    fixed = [c for c in (id_column, target, time_column) if c is not None]
    candidates = normalise_missing(frame.drop(columns=fixed))
    roles = infer_roles(
        pd.concat([frame[fixed], candidates], axis=1),
        id_column=id_column,
        target_column=target,
        time_column=time_column,
    )
    if id_column is None:
        roles.insert(0, ColumnRole(ROW_ID, "id", 0.0, len(frame), "created from the 1-based row number"))
    by_name = {r.name: r for r in roles}

    excluded: list[str] = []
    features: dict[str, pd.Series] = {}
    specs: dict[str, dict[str, Any]] = {}
    for column in candidates.columns:
        role = by_name[column]
        if role.role not in FEATURE_ROLES:
            excluded.append(column)
            continue
        values = _feature_values(candidates[column], role.role, as_of)
        if values is None:
            excluded.append(column)
            roles[roles.index(role)] = ColumnRole(
                role.name, role.role, role.missing_share, role.n_unique,
                "dates without a time column cannot become features; excluded",
            )  # fmt: skip
            continue
        name = f"{column}{DAYS_BEFORE_SUFFIX}" if role.role == "datetime" else column
        features[name] = values
        specs[name] = _feature_spec(column, candidates[column], role.role, from_raw=column in frame.columns)
    feature_frame = pd.DataFrame(features, index=frame.index)

    scores = column_auc(feature_frame, labels)
    flags = detect_leakage(feature_frame, labels, roles, positive_label=positive_label, auc=scores)
    keep = set(keep_columns)
    kept: list[str] = []
    dropped_sources: set[str] = set()
    for flag in flags:
        source = _source_of(flag.column)
        if flag.column in keep or source in keep:
            kept.append(flag.column)
            warnings.append(
                f"kept column {flag.column!r} despite a leakage flag because it was named in keep_columns: "
                f"{flag.reason}"
            )
        else:
            excluded.append(flag.column)
            if source == flag.column:
                dropped_sources.add(source)
            warnings.append(
                f"excluded column {flag.column!r} as likely leakage ({flag.confidence} confidence): "
                f"{flag.reason}. Pass --keep-column {source!r} to keep it"
            )
    for column in feature_frame.columns:
        source = _source_of(column)
        if column not in excluded and column != source and source in dropped_sources and source not in keep:
            excluded.append(column)  # derived from an excluded column (missing kind, days before as_of)
    kept_features = [c for c in feature_frame.columns if c not in excluded]
    table = pd.concat(
        [ids.reset_index(drop=True), as_of, feature_frame[kept_features], labels.rename(LABEL)], axis=1
    )
    names = safe_feature_names(kept_features)
    renamed = {c: n for c, n in names.items() if n not in (c, f"raw_{c}")}
    if renamed:
        warnings.append(
            'renamed column(s) for the model (LightGBM refuses " , : [ ] { } and control characters '
            "in names): " + ", ".join(f"{truncate(c)!r} -> {n!r}" for c, n in renamed.items())
        )
    table.columns = [ENTITY_ID, AS_OF, *[names[c] for c in kept_features], LABEL]
    periods = period_level_columns(
        table[[names[c] for c in kept_features]], table[AS_OF] if time_column is not None else None
    )
    if periods:
        warnings.append(
            "period-level column(s) "
            + ", ".join(f"{c!r} (kappa {k:.2f})" for c, k in periods.items())
            + ": they hold one value over long runs of rows in time order, so they describe when a row "
            "was recorded, not the row; with a time-ordered split they enter the model only through a "
            "linear term, and with a random split the test rows share their periods with the training "
            "rows, so the metrics may be optimistic for rows of periods to come"
        )
    preparation = _preparation_spec(
        [specs[c] | {"name": names[c]} for c in kept_features],
        id_column=id_column,
        time_column=time_column,
        time_dayfirst=_dayfirst(frame[time_column]) if time_column is not None else None,
    )
    return FlatExport(
        table=table,
        roles=roles,
        leakage=flags,
        excluded=excluded,
        kept_despite_flag=kept,
        warnings=warnings,
        id_column=id_column or ROW_ID,
        target_column=target,
        time_column=time_column,
        positive_label=positive_label,
        duplicate_rows=duplicate_rows,
        column_auc={c: max(v) for c, v in scores.items()},
        preparation=preparation,
        period_columns=periods,
    )


def load_flat_export(
    path: Path,
    *,
    target: str,
    id_column: str | None = None,
    time_column: str | None = None,
    keep_columns: Sequence[str] = (),
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> FlatExport:
    """Read one CSV or Parquet export and turn it into a feature table.

    Args:
        path: The file (``.csv``, ``.parquet``).
        target: The outcome column.
        id_column: The id column (inferred when omitted).
        time_column: A date column giving ``as_of``.
        keep_columns: Flagged columns to keep anyway.
        encoding: Text encoding of a CSV file.
        delimiter: Field delimiter of a CSV file.

    Returns:
        The :class:`FlatExport` (see :func:`prepare_flat_export`).

    Raises:
        forecast.data.sources.base.SourceError: The file cannot be read (the message names it).
        ValueError: As :func:`prepare_flat_export`.
    """
    frame = read_table_file(Path(path), encoding=encoding, delimiter=delimiter)
    return prepare_flat_export(
        frame, target=target, id_column=id_column, time_column=time_column, keep_columns=keep_columns
    )


# --- scoring new rows ------------------------------------------------------------------------------
SPEC_VERSION = 1
"""Version of :meth:`FlatExport.preparer_spec`'s layout."""

BooleanMode = Literal["filled", "native", "words", "numbers"]


def _boolean_mode(values: pd.Series) -> BooleanMode:
    """How :func:`_feature_values` reads a boolean column (the same decisions, in the same order)."""
    if values.dropna().astype(str).str.strip().nunique() == 1:
        return "filled"
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return "native"
    return "words" if _bool_values(values) is not None else "numbers"


def _feature_spec(column: str, values: pd.Series, role: Role, *, from_raw: bool) -> dict[str, Any]:
    """Spec of one feature made from candidate ``column`` (placeholders already missing)."""
    spec: dict[str, Any] = {
        "feature": column,
        "source": column if from_raw else column[: -len(MISSING_KIND_SUFFIX)],
        "derived_from": "value" if from_raw else "missing_kind",
        "role": role,
    }
    if role == "categorical":
        spec["levels"] = _kept_levels(values.astype("string").str.strip().dropna())
    elif role == "boolean":
        spec["boolean_mode"] = _boolean_mode(values)
    elif role == "datetime":
        spec["feature"] = f"{column}{DAYS_BEFORE_SUFFIX}"
        spec["dayfirst"] = _dayfirst(values)
    return spec


def _preparation_spec(
    features: list[dict[str, Any]],
    *,
    id_column: str | None,
    time_column: str | None,
    time_dayfirst: bool | None,
) -> dict[str, Any]:
    inputs = list(dict.fromkeys(f["source"] for f in features))
    if time_column is not None and any(f["role"] == "datetime" for f in features):
        inputs.append(time_column)
    return {
        "version": SPEC_VERSION,
        "id_column": id_column,
        "time_column": time_column,
        "time_dayfirst": time_dayfirst,
        "inputs": inputs,
        "feature_columns": [f["name"] for f in features],
        "features": features,
    }


def _mask_placeholders(values: pd.Series) -> pd.Series:
    """``values`` with placeholders as missing (as :func:`normalise_missing` does)."""
    placeholder = _missing_kind(values).notna() & values.notna()
    return values.mask(placeholder) if placeholder.any() else values


def _is_number_dtype(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def _bool_words(values: pd.Series) -> pd.Series:
    """Yes/no words (``yes``, ``true``, ``y``, ``1`` / ``no``, ``false``, …) as 1.0/0.0, else NaN."""
    low = values.astype("string").str.strip().str.lower()
    words = pd.Series(np.nan, index=values.index, dtype="float64")
    words[low.isin(_BOOL_TRUE).fillna(False).astype(bool).to_numpy()] = 1.0
    words[low.isin(_BOOL_FALSE).fillna(False).astype(bool).to_numpy()] = 0.0
    return words


def _numbers_of(values: pd.Series, role: str, mode: str | None) -> pd.Series:
    """A numeric or boolean feature of new rows (typed or text), read as the training rows were."""
    if _is_number_dtype(values):
        return values.astype("float64")
    if role == "numeric" or mode == "numbers":
        return _parse_numbers(values)
    words = _bool_words(values)
    if mode == "words":
        return words
    return words.where(words.notna(), _parse_numbers(values))  # "native" at training, text now


def _apply_feature(values: pd.Series, spec: dict[str, Any], as_of: pd.Series | None) -> pd.Series:
    role = spec["role"]
    if role == "categorical":
        text = values.astype("string").str.strip()
        capped = text.where(text.isin(spec["levels"]) | text.isna(), OTHER_LEVEL)
        return capped.astype(object).where(capped.notna(), np.nan)
    if role == "datetime":
        assert as_of is not None
        dates = _parse_dates(values, spec["dayfirst"])
        return ((as_of - dates).dt.total_seconds() / 86400.0).astype("float64")
    mode = spec.get("boolean_mode")
    if mode == "filled":
        return values.notna().astype("float64")
    return _numbers_of(values, role, mode)


def _spec_time(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.Series:
    values = frame[spec["time_column"]]
    return _parse_dates(values.mask(_missing_kind(values).notna()), spec["time_dayfirst"])


class FlatExportPreparer(BaseEstimator, TransformerMixin):
    """Re-apply a flat export's preparation to new raw rows (the logged model's first step).

    New rows (strings as :func:`~forecast.data.readers.read_table_file` reads a CSV, or typed values)
    become the export's feature columns, with the same names, dtypes and order as
    :attr:`FlatExport.feature_columns`: placeholders become missing, numbers and yes/no values are
    read as in training, categorical levels are those kept in training (unseen and rare values become
    ``__other__``), missing-kind columns are recomputed, dates become days before ``as_of`` with the
    training's day/month order. Extra input columns are ignored and the target is not needed.

    Args:
        spec: :meth:`FlatExport.preparer_spec` (JSON-serialisable; learnt on the training export).
    """

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec

    def __sklearn_is_fitted__(self) -> bool:
        """Fitted as soon as it has a spec (learnt from the training export)."""
        return self.spec is not None

    def fit(self, X: Any = None, y: Any = None) -> FlatExportPreparer:  # noqa: N803
        """Nothing to learn: the spec was learnt from the training export."""
        self._spec()
        return self

    def _spec(self) -> dict[str, Any]:
        if self.spec is None:
            raise ValueError("FlatExportPreparer needs a spec: use FlatExport.preparer()")
        return self.spec

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        """The feature columns of raw rows ``X`` (same index as ``X``).

        Raises:
            KeyError: ``X`` lacks a raw column the features are made from (all such are named).
        """
        spec = self._spec()
        frame = X.rename(columns=str) if not all(isinstance(c, str) for c in X.columns) else X
        missing = [c for c in spec["inputs"] if c not in frame.columns]
        if missing:
            raise KeyError(f"input lacks the export's column(s) {missing} needed for the model's features")
        features = spec["features"]
        as_of = _spec_time(frame, spec) if any(f["role"] == "datetime" for f in features) else None
        out: dict[str, pd.Series] = {}
        for feature in features:
            raw = frame[feature["source"]]
            if feature["derived_from"] == "missing_kind":
                values = _missing_kind(raw).fillna(PRESENT).astype(object)
            else:
                values = _mask_placeholders(raw)
            out[feature["name"]] = _apply_feature(values, feature, as_of)
        return pd.DataFrame(out, index=X.index, columns=list(spec["feature_columns"]))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The feature column names."""
        return np.asarray(self._spec()["feature_columns"], dtype=object)


def values_as_written(raw: pd.DataFrame, features: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """The feature values of ``features`` as the file wrote them, for reasons a rep can read.

    A feature read from one raw column's value (a number, a yes/no, a category) shows the raw text
    (``Yes``, not ``1.0``; ``5191``, not ``5191.0``; a rare level as itself, not ``__other__``); a
    derived feature (a missing kind, days before ``as_of``) keeps its computed value.

    Args:
        raw: The raw rows (as read from the file), aligned with ``features``.
        features: :meth:`FlatExportPreparer.transform` of ``raw``.
        spec: :meth:`FlatExport.preparer_spec`.

    Returns:
        A frame like ``features`` (same index and columns), of objects.
    """
    out = features.astype(object)
    for feature in spec["features"]:
        if feature["derived_from"] != "value" or feature["role"] == "datetime":
            continue
        values = _mask_placeholders(raw[feature["source"]])
        text = values.astype(object).where(values.isna(), values.astype(str).str.strip())
        out[feature["name"]] = text.where(text.notna(), None).to_numpy()
    return out


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
    rows = pd.Series(np.arange(1, len(frame) + 1), index=frame.index)
    found: list[pd.DataFrame] = []

    def add(mask: pd.Series, column: str, rule: str, values: pd.Series, message: str) -> None:
        """Record the rows of ``mask``; ``message`` may use ``{value!r}`` and ``{column!r}``."""
        hit = mask.fillna(False).astype(bool).to_numpy()
        if hit.any():
            raw = [None if _missing(v) else truncate(v) for v in values[hit]]
            found.append(
                pd.DataFrame(
                    {
                        "row": rows[hit].to_numpy(),
                        "column": column,
                        "rule": rule,
                        "value": raw,
                        "message": [message.format(value=v, column=column) for v in raw],
                    }
                )
            )

    id_column = spec.get("id_column")
    if id_column is not None and id_column in frame.columns:
        ids = frame[id_column]
        key = ids.astype("string").str.strip()
        empty = key.isna() | (key == "")
        add(empty, id_column, "missing_id", ids, "the id column {column!r} is empty")
        repeated = (key.duplicated(keep=False) & ~empty).fillna(False).astype(bool)
        for value, group in rows[repeated.to_numpy()].groupby(key[repeated].to_numpy()):
            mask = repeated & (key == value)
            listed = ", ".join(str(r) for r in group)
            add(mask, id_column, "duplicate_id", ids, f"id {{value!r}} appears in rows {listed}")
    checked: set[str] = set()
    for feature in spec["features"]:
        source = feature["source"]
        if feature["derived_from"] != "value" or source in checked or source not in frame.columns:
            continue
        checked.add(source)
        values = frame[source]
        if _is_number_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            continue
        present = _mask_placeholders(values).notna()
        mode = feature.get("boolean_mode")
        if feature["role"] == "numeric" or (feature["role"] == "boolean" and mode != "filled"):
            bad = present & _numbers_of(values, feature["role"], mode).isna()
            expects = "a number" if feature["role"] == "numeric" else "yes/no (or 1/0)"
            add(bad, source, "not_a_number", values, f"{{column!r}} expects {expects}, got {{value!r}}")
        elif feature["role"] == "datetime":
            bad = present & _parse_dates(values, feature["dayfirst"]).isna()
            add(bad, source, "unparseable_date", values, "{column!r} expects a date, got {value!r}")
    time_column = spec.get("time_column")
    if time_column is not None and time_column in frame.columns:
        values = frame[time_column]
        if not pd.api.types.is_datetime64_any_dtype(values):
            present = values.notna() & _missing_kind(values).isna()
            bad = present & _spec_time(frame, spec).isna()
            add(
                bad,
                time_column,
                "unparseable_date",
                values,
                "the time column {column!r} expects a date, got {value!r}",
            )
    if not found:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else object) for c in _ERROR_COLUMNS})
    errors = pd.concat(found, ignore_index=True)
    errors["row"] = errors["row"].astype("int64")
    return errors.sort_values("row", kind="stable").reset_index(drop=True)[_ERROR_COLUMNS]


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
