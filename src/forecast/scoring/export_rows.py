"""Score rows in the shape of a flat export with a model trained on one (the job's files, the API)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.features.tabular import score_input_errors, values_as_written
from forecast.scoring.frame import score_frame
from forecast.scoring.model import ScoringModel
from forecast.scoring.scored import REJECT_COLUMNS, Scored, empty_rejects, warnings_column


def score_export_rows(
    model: ScoringModel, raw: pd.DataFrame, *, progress: Any = None, reasons: bool = True
) -> tuple[Scored, str, pd.DataFrame]:
    """Score rows in the shape of a flat export with a model trained on one (the batch job, the API).

    Rows the preparation refuses (:func:`forecast.features.tabular.score_input_errors`) are rejects;
    the others are scored, with reasons quoting their values as written.

    Returns:
        The scores and rejects, the id column, and the scored rows as given.

    Raises:
        KeyError: The rows lack a column the model needs (the message names it).
    """
    meta = model.meta
    spec = dict(meta.flat_spec or {})
    problems = score_input_errors(raw, spec)
    id_col = meta.id_column or "row_id"
    ids = raw[id_col] if id_col in raw else pd.Series(np.arange(1, len(raw) + 1), index=raw.index)
    bad_rows = set(problems["row"].astype(int)) if len(problems) else set()
    keep = ~np.isin(np.arange(1, len(raw) + 1), sorted(bad_rows))
    good = raw.loc[keep]
    prepared = model.pipeline.named_steps["prepare"].transform(good)
    inner = Pipeline(model.pipeline.steps[1:])
    scores = score_frame(
        model,
        good,
        ids.loc[keep],
        reasons_on=prepared,
        reason_pipeline=inner,
        reason_text=values_as_written(good, prepared, spec),
        progress=progress,
        reasons=reasons,
    )
    scores.insert(0, "source_row", np.flatnonzero(keep) + 1)
    scores["warnings"] = warnings_column(inner, prepared)
    # without an id column the id is the row number: source_row says it once
    scores = scores.rename(columns={"id": id_col}) if id_col in raw else scores.drop(columns="id")
    rejects = problems.rename(columns={"row": "source_row"})
    rejects.insert(1, "id", [None if r - 1 >= len(ids) else ids.iloc[r - 1] for r in rejects["source_row"]])
    out = Scored(scores, rejects[REJECT_COLUMNS] if len(rejects) else empty_rejects(), len(raw))
    return out, id_col, good
