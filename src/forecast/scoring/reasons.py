"""Reason codes: the features that raised and lowered each score most, in words a sales rep understands.

Every score comes with its top positive and negative factors (docs/models.md).
:func:`reasons_from_contributions` (called by :func:`reason_codes`, which first computes the
contributions with :func:`forecast.scoring.contributions.contributions`) chooses the ``top_k``
largest positive and most negative contributions of each row with numpy over the whole matrix;
text (:func:`forecast.scoring.phrasing.phrase`) is built only for the chosen cells, once per
distinct (feature, value). Choosing and phrasing the reasons adds little to the cost of the
contributions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.scoring.contributions import contributions
from forecast.scoring.phrasing import phrases

MIN_CONTRIBUTION = 1e-6
"""Contributions smaller than this in absolute value are never reasons."""


def reason_codes(
    pipeline: Pipeline,
    X: pd.DataFrame,  # noqa: N803
    descriptions: Mapping[str, str],
    *,
    top_k: int = 3,
    kinds: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The features that raised and lowered each row's score most, in plain words.

    Args:
        pipeline: A fitted scoring pipeline (see :func:`contributions`).
        X: Raw rows with the pipeline's input columns.
        descriptions: Plain-words meaning per feature (e.g. from the feature catalogue); features
            without one are shown as ``<feature> = <value>``.
        top_k: Reasons per direction.
        kinds: ``numeric`` / ``categorical`` / ``boolean`` per feature (default: from ``X``'s dtypes).

    Returns:
        ``reason_up_1..top_k`` (largest positive contribution first) and ``reason_down_1..top_k``
        (most negative first), strings or ``None``, with the same index as ``X``.
    """
    return reasons_from_contributions(contributions(pipeline, X), X, descriptions, top_k=top_k, kinds=kinds)


def reason_columns(top_k: int) -> list[str]:
    """Names of the reason columns for ``top_k`` reasons per direction."""
    return [f"reason_up_{i}" for i in range(1, top_k + 1)] + [f"reason_down_{i}" for i in range(1, top_k + 1)]


def reasons_from_contributions(
    contrib: pd.DataFrame,
    X: pd.DataFrame,  # noqa: N803
    descriptions: Mapping[str, str],
    *,
    top_k: int = 3,
    kinds: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Reason codes from a contribution matrix (as :func:`reason_codes`, contributions given).

    Args:
        contrib: Per-row contributions, one column per feature (rows aligned with ``X``).
        X: The raw rows (the reasons quote their values).
        descriptions: Plain-words meaning per feature.
        top_k: Reasons per direction.
        kinds: Feature kinds (default: from ``X``'s dtypes).

    Returns:
        The reason columns (see :func:`reason_codes`), indexed like ``X``.
    """
    if len(contrib) != len(X):
        raise ValueError(f"contributions have {len(contrib)} rows but X has {len(X)}")
    out = reason_array(
        contrib.to_numpy(dtype=np.float64),
        [str(c) for c in contrib.columns],
        lambda feature: X[feature].to_numpy(),
        lambda feature: (kinds.get(feature) if kinds is not None else None) or dtype_kind(X[feature]),
        descriptions,
        top_k=top_k,
    )
    return pd.DataFrame(out, index=X.index, columns=reason_columns(top_k))


def reason_array(
    values: np.ndarray,
    features: Sequence[str],
    raw: Callable[[str], np.ndarray],
    kind: Callable[[str], str | None],
    descriptions: Mapping[str, str],
    *,
    top_k: int = 3,
) -> np.ndarray:
    """The reason columns of :func:`reasons_from_contributions` as an object array, without frames.

    Args:
        values: Contributions, shape (n, features).
        features: The feature of each column of ``values``.
        raw: The raw values of a feature's column (the reasons quote them).
        kind: A feature's kind for the wording.
        descriptions: Plain-words meaning per feature.
        top_k: Reasons per direction.

    Returns:
        Shape (n, 2 * top_k): ``reason_up_1..top_k`` then ``reason_down_1..top_k``, text or ``None``.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    n, f = values.shape
    k = min(top_k, f)
    out = np.full((n, 2 * top_k), None, dtype=object)
    if n and k:
        up_idx, up_ok = _top(np.where(values >= MIN_CONTRIBUTION, values, -np.inf), k)
        down_idx, down_ok = _top(np.where(values <= -MIN_CONTRIBUTION, -values, -np.inf), k)
        chosen = np.concatenate([up_idx, down_idx], axis=1)
        ok = np.concatenate([up_ok, down_ok], axis=1)
        slots = np.concatenate([np.arange(k), top_k + np.arange(k)])
        rows, cells = np.nonzero(ok)
        feats = chosen[rows, cells]
        order = np.argsort(feats, kind="stable")
        rows, cells, feats = rows[order], cells[order], feats[order]
        starts = np.flatnonzero(np.r_[True, feats[1:] != feats[:-1]]) if feats.size else np.array([], int)
        ends = np.r_[starts[1:], feats.size]
        for start, end in zip(starts, ends, strict=True):
            feature = features[feats[start]]
            chosen_raw = raw(feature)[rows[start:end]]
            out[rows[start:end], slots[cells[start:end]]] = phrases(
                feature, chosen_raw, descriptions.get(feature), kind(feature)
            )
    return out


def _top(score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the ``k`` largest scores per row (descending) and whether each is finite."""
    f = score.shape[1]
    if k < f:
        part = np.argpartition(-score, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(score, part, axis=1)
        # descending score; ties by column index so results do not depend on the partition
        order = np.lexsort((part, -picked), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
    else:
        idx = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return idx, np.isfinite(np.take_along_axis(score, idx, axis=1))


def dtype_kind(column: pd.Series) -> str | None:
    """A column's kind for the wording when none is given: ``boolean``, ``categorical``, ``None``."""
    types = pd.api.types
    if types.is_bool_dtype(column):
        return "boolean"
    if types.is_numeric_dtype(column):
        return None
    return "categorical"


def describe(catalogue: Sequence[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Descriptions and kinds by feature name from a feature catalogue (``Feature`` records).

    Args:
        catalogue: Objects with ``name``, ``description`` and ``kind`` (e.g. ``feature_catalogue(entity)``).

    Returns:
        ``(descriptions, kinds)`` for :func:`reason_codes`.
    """
    return {f.name: f.description for f in catalogue}, {f.name: f.kind for f in catalogue}
