"""Re-applying an export's preparation to new raw rows: the spec and :class:`FlatExportPreparer`.

The preparer is pickled inside logged models; old pickles name it
``forecast.features.tabular.FlatExportPreparer``, which stays importable.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from forecast.features.flat.parse import (
    BOOL_FALSE,
    BOOL_TRUE,
    bool_values,
    guess_dayfirst,
    missing_kind,
    parse_dates,
    parse_numbers,
)
from forecast.features.flat.roles import kept_levels
from forecast.features.flat.schema import DAYS_BEFORE_SUFFIX, MISSING_KIND_SUFFIX, OTHER_LEVEL, PRESENT, Role

SPEC_VERSION = 1
"""Version of :meth:`FlatExport.preparer_spec`'s layout."""
BooleanMode = Literal["filled", "native", "words", "numbers"]


def _boolean_mode(values: pd.Series) -> BooleanMode:
    """How :func:`feature_values` reads a boolean column (the same decisions, in the same order)."""
    if values.dropna().astype(str).str.strip().nunique() == 1:
        return "filled"
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return "native"
    return "words" if bool_values(values) is not None else "numbers"


def feature_spec(column: str, values: pd.Series, role: Role, *, from_raw: bool) -> dict[str, Any]:
    """Spec of one feature made from candidate ``column`` (placeholders already missing)."""
    spec: dict[str, Any] = {
        "feature": column,
        "source": column if from_raw else column[: -len(MISSING_KIND_SUFFIX)],
        "derived_from": "value" if from_raw else "missing_kind",
        "role": role,
    }
    if role == "categorical":
        spec["levels"] = kept_levels(values.astype("string").str.strip().dropna())
    elif role == "boolean":
        spec["boolean_mode"] = _boolean_mode(values)
    elif role == "datetime":
        spec["feature"] = f"{column}{DAYS_BEFORE_SUFFIX}"
        spec["dayfirst"] = guess_dayfirst(values)
    return spec


def preparation_spec(
    features: list[dict[str, Any]],
    *,
    id_column: str | None,
    time_column: str | None,
    time_dayfirst: bool | None,
) -> dict[str, Any]:
    """The whole preparation spec (:meth:`FlatExport.preparer_spec`'s layout) from its feature specs."""
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


def mask_placeholders(values: pd.Series) -> pd.Series:
    """``values`` with placeholders as missing (as :func:`normalise_missing` does)."""
    placeholder = missing_kind(values).notna() & values.notna()
    return values.mask(placeholder) if placeholder.any() else values


def is_number_dtype(values: pd.Series) -> bool:
    """Whether ``values`` are already typed as numbers (or booleans), not text."""
    return bool(pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def _bool_words(values: pd.Series) -> pd.Series:
    """Yes/no words (``yes``, ``true``, ``y``, ``1`` / ``no``, ``false``, …) as 1.0/0.0, else NaN."""
    low = values.astype("string").str.strip().str.lower()
    words = pd.Series(np.nan, index=values.index, dtype="float64")
    words[low.isin(BOOL_TRUE).fillna(False).astype(bool).to_numpy()] = 1.0
    words[low.isin(BOOL_FALSE).fillna(False).astype(bool).to_numpy()] = 0.0
    return words


def numbers_of(values: pd.Series, role: str, mode: str | None) -> pd.Series:
    """A numeric or boolean feature of new rows (typed or text), read as the training rows were."""
    if is_number_dtype(values):
        return values.astype("float64")
    if role == "numeric" or mode == "numbers":
        return parse_numbers(values)
    words = _bool_words(values)
    if mode == "words":
        return words
    return words.where(words.notna(), parse_numbers(values))  # "native" at training, text now


def _apply_feature(values: pd.Series, spec: dict[str, Any], as_of: pd.Series | None) -> pd.Series:
    role = spec["role"]
    if role == "categorical":
        text = values.astype("string").str.strip()
        capped = text.where(text.isin(spec["levels"]) | text.isna(), OTHER_LEVEL)
        return capped.astype(object).where(capped.notna(), np.nan)
    if role == "datetime":
        assert as_of is not None
        dates = parse_dates(values, spec["dayfirst"])
        return ((as_of - dates).dt.total_seconds() / 86400.0).astype("float64")
    mode = spec.get("boolean_mode")
    if mode == "filled":
        return values.notna().astype("float64")
    return numbers_of(values, role, mode)


def spec_time(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.Series:
    """The spec's time column of ``frame`` as dates (placeholders and unparseable values: NaT)."""
    values = frame[spec["time_column"]]
    return parse_dates(values.mask(missing_kind(values).notna()), spec["time_dayfirst"])


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
        as_of = spec_time(frame, spec) if any(f["role"] == "datetime" for f in features) else None
        out: dict[str, pd.Series] = {}
        for feature in features:
            raw = frame[feature["source"]]
            if feature["derived_from"] == "missing_kind":
                values = missing_kind(raw).fillna(PRESENT).astype(object)
            else:
                values = mask_placeholders(raw)
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
        values = mask_placeholders(raw[feature["source"]])
        text = values.astype(object).where(values.isna(), values.astype(str).str.strip())
        out[feature["name"]] = text.where(text.notna(), None).to_numpy()
    return out
