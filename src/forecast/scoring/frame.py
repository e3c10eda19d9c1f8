"""Score a frame with a loaded model: probability, score (0-100), band and reasons of each row.

:func:`score_frame` is what the batch job and the service call; for a LightGBM pipeline it encodes
each chunk once (:mod:`forecast.scoring.fastpath`) and takes the probabilities and the reasons
from the same matrix (:func:`fast_proba_and_reasons`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.scoring import fastpath
from forecast.scoring.bands import band_of
from forecast.scoring.contributions import contributions
from forecast.scoring.model import ScoringModel
from forecast.scoring.reasons import (
    dtype_kind,
    reason_array,
    reason_codes,
    reason_columns,
    reasons_from_contributions,
)

CHUNK = 20_000
"""Rows scored at a time (bounded memory, progress between chunks)."""


def score_frame(
    model: ScoringModel,
    features: pd.DataFrame,
    ids: pd.Series,
    *,
    reasons_on: pd.DataFrame | None = None,
    reason_pipeline: Pipeline | None = None,
    reason_text: pd.DataFrame | None = None,
    progress: Callable[[str, float | None], None] | None = None,
    reasons: bool = True,
) -> pd.DataFrame:
    """Probability, score, band and reasons of each row (in chunks, with progress).

    Args:
        model: The loaded model (pipeline and metadata).
        features: What the pipeline takes.
        ids: The entity id of each row.
        reasons_on: The frame reasons read values from (default: ``features``).
        reason_pipeline: The pipeline reasons decompose (default: the model's).
        progress: Called with a description and the fraction done.
        reasons: Whether to add the reasons (TreeSHAP is most of the cost of scoring).
        reason_text: The values the reasons quote, aligned with ``reasons_on`` (default: its own
            values); a flat export's raw text, so that reasons read ``Yes``, not ``1``.
    """
    meta = model.meta
    score_name = meta.score_name
    descriptions = dict(meta.descriptions)
    kinds = dict.fromkeys(meta.categorical, "categorical")
    parts = []
    n = len(features)
    fast = None
    if reasons_on is None and reason_pipeline is None:
        fast = fastpath.coded(model.pipeline)
        fast = fast if fast is not None and isinstance(fast.model, CalibratedLGBMClassifier) else None
    for start in range(0, max(n, 1), CHUNK):
        chunk = features.iloc[start : start + CHUNK]
        if chunk.empty:
            break
        why: dict[str, np.ndarray] | None = None
        frame: pd.DataFrame | None = None
        if not reasons:
            p = (
                fast.predict_proba(fast.encode(chunk))
                if fast is not None
                else fastpath.predict_proba(model.pipeline, chunk)
            )[:, 1]
        elif fast is not None:  # one encoding for the probabilities and the reasons
            p, texts = fast_proba_and_reason_array(fast, chunk, descriptions, kinds)
            why = dict(zip(reason_columns(3), texts.T, strict=True))
        else:
            p = fastpath.predict_proba(model.pipeline, chunk)[:, 1]
            on = (reasons_on if reasons_on is not None else features).iloc[start : start + CHUNK]
            if reason_text is None:
                frame = reason_codes(
                    reason_pipeline or model.pipeline, on, descriptions, top_k=3, kinds=kinds
                )
            else:
                frame = reasons_from_contributions(
                    contributions(reason_pipeline or model.pipeline, on),
                    reason_text.iloc[start : start + CHUNK],
                    descriptions,
                    top_k=3,
                    kinds=kinds | dict.fromkeys(reason_text.columns, "categorical"),
                )
            why = {str(column): frame[column].to_numpy() for column in frame.columns}
        parts.append(
            {
                "id": ids.iloc[start : start + CHUNK].to_numpy(),
                score_name: np.round(p, 6),
                "score": np.rint(p * 100).astype(int),
                "band": band_of(p, meta.bands),
                **(why or {}),
            }
        )
        if progress is not None:
            progress("scoring", min(1.0, (start + len(chunk)) / n))
    if not parts:
        out = pd.DataFrame(columns=["id", score_name, "score", "band"])
        out["model_name"] = model.name
        out["model_version"] = model.version
        out["scored_at"] = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        return out
    # one frame built at once: inserting columns one by one cost more than scoring one row
    columns: dict[str, Any] = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    columns["model_name"] = model.name
    columns["model_version"] = model.version
    columns["scored_at"] = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    return pd.DataFrame(columns, index=features.index[: sum(len(part["id"]) for part in parts)])


def fast_proba_and_reasons(
    fast: fastpath.CodedPipeline, chunk: pd.DataFrame, descriptions: dict[str, str], kinds: dict[str, str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """``predict_proba`` and ``reason_codes`` of a chunk from one encoded matrix (the same numbers).

    ``chunk`` may hold more columns than the model's (only its own are encoded and explained).
    """
    codes = fast.encode(chunk)
    p = fast.predict_proba(codes)[:, 1]
    contrib = pd.DataFrame(fast.contributions(codes)[:, :-1], index=chunk.index, columns=fast.columns)
    return p, reasons_from_contributions(contrib, chunk, descriptions, top_k=3, kinds=kinds)


def fast_proba_and_reason_array(
    fast: fastpath.CodedPipeline, chunk: pd.DataFrame, descriptions: dict[str, str], kinds: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fast_proba_and_reasons` with the reasons as an (n, 6) object array (no frames around them).

    What a request of a few records wants: the same probabilities and the same reasons.
    """
    return proba_and_reason_array(
        fast,
        fast.encode(chunk),
        lambda feature: chunk[feature].to_numpy(),
        lambda feature: kinds.get(feature) or dtype_kind(chunk[feature]),
        descriptions,
    )


def proba_and_reason_array(
    fast: fastpath.CodedPipeline,
    codes: np.ndarray,
    raw: Callable[[str], np.ndarray],
    kind: Callable[[str], str | None],
    descriptions: dict[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fast_proba_and_reason_array` from the encoded rows and their raw values (any container).

    Args:
        fast: The classifier's array path.
        codes: ``fast.encode`` of the rows.
        raw: A feature's raw values (the reasons quote them).
        kind: A feature's kind for the wording.
        descriptions: Plain-words meaning per feature.
    """
    proba, contrib = fast.proba_and_contributions(codes)
    p, values = proba[:, 1], contrib[:, :-1]
    why = reason_array(values, fast.columns, raw, kind, descriptions, top_k=3)
    return p, why
