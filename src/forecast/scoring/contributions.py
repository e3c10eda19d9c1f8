"""Contributions: how much each input column of a fitted pipeline moved each row's log-odds.

The maths of reason codes (docs/models.md); :mod:`forecast.scoring.reasons` chooses the largest of them
and :mod:`forecast.scoring.phrasing` puts them in words.

- LightGBM (:class:`~forecast.models.pipeline.CalibratedLGBMClassifier`): TreeSHAP values of the
  booster (``pred_contrib``), without the bias column. Per row, the contributions plus the bias
  equal the booster's raw log-odds exactly. They explain the trees' score, before calibration;
  the calibrator is monotone, so "raised" and "lowered" keep their meaning.
- Small-data logistic model (:class:`~forecast.models.baselines.LogisticBaseline`): the linear
  decomposition ``coef_j * (z_j - m_j)`` of every transformed column ``z_j`` against its training
  mean ``m_j``, summed back onto the input column it came from (a numeric column's scaled value and
  its missing-value indicator; a categorical column's one-hot columns). Numeric and indicator
  columns are standardised inside the model, so their training mean is exactly 0. One-hot columns
  use the training level frequencies stored by
  :func:`~forecast.models.logistic_terms.store_training_means`; without them (the fitted encoder
  does not keep frequencies) every level of a column is taken as equally frequent, i.e. a level's
  contribution is its coefficient minus the mean coefficient of the column's levels. Per row, the
  contributions plus ``intercept + sum_j coef_j * m_j`` equal the model's log-odds
  (:mod:`forecast.models.logistic_terms`).

TreeSHAP dominates the cost of scoring with reasons (benchmarks/RESULTS.md). For a LightGBM pipeline,
:func:`contributions` runs on the encoded float matrix of :mod:`forecast.scoring.fastpath` (the
booster called directly, the prior's design from lookup tables): the same numbers as through the
frames, about 0.3 ms for one row instead of 12-30 ms.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.models.baselines import LogisticBaseline
from forecast.models.logistic_terms import logistic_contributions
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.scoring.fastpath import coded


def input_columns(pipeline: Pipeline) -> list[str]:
    """The pipeline's input columns (its ``columns`` step), in model order."""
    return [str(c) for c in pipeline.named_steps["columns"].columns]


def contributions(pipeline: Pipeline, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """Per-row contribution (log-odds) of each input column of a fitted scoring pipeline.

    Args:
        pipeline: A fitted pipeline from :func:`~forecast.models.pipeline.build_pipeline` whose model
            is a :class:`CalibratedLGBMClassifier` or a :class:`LogisticBaseline` (see the module
            docstring for how each is decomposed).
        X: Raw rows with (at least) the pipeline's input columns.

    Returns:
        A float frame with the same index as ``X`` and one column per input column.

    Raises:
        KeyError: ``X`` lacks an input column.
        TypeError: The model is neither of the two supported kinds.
    """
    columns = input_columns(pipeline)
    model = pipeline.steps[-1][1]
    fast = coded(pipeline) if len(X) else None
    if fast is not None and isinstance(model, CalibratedLGBMClassifier):
        values = fast.contributions(fast.encode(X))[:, :-1]
        return pd.DataFrame(values, index=X.index, columns=columns)
    if fast is not None and callable(getattr(model, "contributions_codes", None)):  # time to close
        values = fast.hazard_contributions(fast.encode(X))[:, :-1]
        return pd.DataFrame(values, index=X.index, columns=columns)
    prepared = pipeline[:-1].transform(X)
    if isinstance(model, CalibratedLGBMClassifier):
        values = np.asarray(model.contributions(prepared), dtype=np.float64)[:, :-1]
    elif isinstance(model, LogisticBaseline):
        values, _ = logistic_contributions(model, prepared, columns)
    elif callable(getattr(model, "contributions", None)):  # e.g. a time-to-close hazard model
        values = np.asarray(model.contributions(prepared), dtype=np.float64)[:, :-1]
    else:
        raise TypeError(f"no reason codes for a {type(model).__name__} model")
    return pd.DataFrame(values, index=X.index, columns=columns)
