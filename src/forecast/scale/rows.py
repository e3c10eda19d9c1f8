"""What runs on the executors: the local scorer's own row scoring over each pandas batch.

Each function takes the iterator of pandas batches Spark's ``mapInPandas`` hands over (the input
columns plus ``_source_row``, the 1-based row number in the whole input, and ``_duplicate``, whether
the same key came earlier in it) and yields frames in the job's output schema. The models come from
a broadcast :class:`ScoringModels`, deserialized once per Python worker, not once per task.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast.batch import score_snapshot_rows, snapshot_rejects
from forecast.registry import LoadedModel
from forecast.scoring.close_dates import close_date_columns
from forecast.scoring.scored import REJECT_COLUMNS

SOURCE_ROW = "_source_row"
DUPLICATE = "_duplicate"


@dataclass(frozen=True)
class ScoringModels:
    """The models a job scores with: the main one and, for deals, the time-to-close one."""

    model: LoadedModel
    closing: LoadedModel | None = None


def _split(batch: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A batch without the job's columns, its row numbers and its duplicate flags."""
    rows = batch[SOURCE_ROW].to_numpy(dtype=np.int64)
    duplicate = batch[DUPLICATE].to_numpy(dtype=bool)
    return batch.drop(columns=[SOURCE_ROW, DUPLICATE]).reset_index(drop=True), rows, duplicate


def score_rows(
    batch: pd.DataFrame, models: ScoringModels, *, reasons: bool, scored_at: pd.Timestamp
) -> pd.DataFrame:
    """The scores of a batch's scoreable rows, as the local scorer writes them (with close dates).

    ``scored_at`` is the job's one time of scoring (the local scorer stamps a file with one too).
    """
    frame, rows, duplicate = _split(batch)
    scored = score_snapshot_rows(models.model, frame, duplicate, source_rows=rows, reasons=reasons)
    scores = scored.scores.reset_index(drop=True)
    if models.closing is not None and scored.features is not None:
        extra = close_date_columns(models.closing, scored.features).reset_index(drop=True)
        scores = pd.concat([scores, extra], axis=1)
    scores["scored_at"] = scored_at
    return scores


def score_batches(
    batches: Iterator[pd.DataFrame],
    handle: Any,
    columns: Sequence[str],
    reasons: bool,
    scored_at: pd.Timestamp,
) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` function: the scores of each batch in the output's ``columns``.

    ``handle`` is the broadcast of the :class:`ScoringModels`.
    """
    models: ScoringModels = handle.value
    for batch in batches:
        scores = score_rows(batch, models, reasons=reasons, scored_at=scored_at)
        if len(scores):  # an empty frame's untyped columns do not convert to the schema
            yield scores.reindex(columns=list(columns))


def reject_rows(batch: pd.DataFrame, models: ScoringModels) -> pd.DataFrame:
    """The reject records of a batch (no scoring), every value but ``source_row`` as text."""
    frame, rows, duplicate = _split(batch)
    rejects, _, _ = snapshot_rejects(models.model, frame, duplicate, source_rows=rows)
    out = rejects.reindex(columns=REJECT_COLUMNS)
    for column in REJECT_COLUMNS[1:]:
        out[column] = [_text(v) for v in out[column]]
    out["source_row"] = out["source_row"].astype(np.int64)
    return out


def reject_batches(batches: Iterator[pd.DataFrame], handle: Any) -> Iterator[pd.DataFrame]:
    """``mapInPandas`` function: the reject records of each batch (``handle``: the models' broadcast)."""
    models: ScoringModels = handle.value
    for batch in batches:
        rejects = reject_rows(batch, models)
        if len(rejects):
            yield rejects


def _text(value: Any) -> str | None:
    """A rejects value as text (``None`` when missing), as it reads in the local rejects CSV."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    return str(value)
