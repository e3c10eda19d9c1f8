"""The linear decomposition of the small-data logistic model (:class:`LogisticBaseline`).

Shared by the reasons (:mod:`forecast.scoring.contributions`), the pipeline's logistic prior
(:mod:`forecast.models.pipeline`), the array scorer (:mod:`forecast.scoring.fastpath`) and
training (:func:`store_training_means`, called by :mod:`forecast.models.crossfit`). It depends on
the baseline only, so none of them imports another to reach it: it used to live in the former
``models/explain.py``, which imported the other two, a cycle hidden by function-level imports.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.models.baselines import LogisticBaseline

TRAINING_MEANS_ATTR = "explain_training_means_"
"""Attribute of a fitted :class:`LogisticBaseline` holding its transformed columns' training means."""


def logistic_matrix(model: LogisticBaseline, prepared: pd.DataFrame) -> np.ndarray:
    """The model's transformed design (one-hot, scaled numbers, missing indicators) of ``prepared``."""
    preprocess = model.pipeline_.named_steps["preprocess"]
    return np.asarray(preprocess.transform(prepared[model.categorical_ + model.numeric_]), dtype=np.float64)


def logistic_layout(model: LogisticBaseline) -> tuple[list[str], np.ndarray]:
    """Source input column and default reference value of every transformed column, in output order."""
    preprocess = model.pipeline_.named_steps["preprocess"]
    owners: list[str] = []
    reference: list[float] = []
    for name, transformer, cols in preprocess.transformers_:
        if name == "remainder" or isinstance(transformer, str):
            continue
        cols = [str(c) for c in cols]
        steps = dict(transformer.steps)
        if "one_hot" in steps:
            encoder = steps["one_hot"]
            infrequent = encoder.infrequent_categories_
            for i, col in enumerate(cols):
                rare = infrequent[i]
                n_out = len(encoder.categories_[i]) - (len(rare) - 1 if rare is not None else 0)
                owners += [col] * n_out
                reference += [1.0 / n_out] * n_out
        else:  # numeric: scaled values, then scaled missing indicators (training mean 0)
            for out in transformer.get_feature_names_out(cols):
                owner = out if out in cols else out.removeprefix("missingindicator_")
                owners.append(owner)
                reference.append(0.0)
    return owners, np.asarray(reference, dtype=np.float64)


def logistic_contributions(
    model: LogisticBaseline, prepared: pd.DataFrame, columns: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per input column contributions and the per-row bias of a fitted :class:`LogisticBaseline`."""
    owners, reference = logistic_layout(model)
    means = getattr(model, TRAINING_MEANS_ATTR, None)
    if means is not None and len(means) == len(reference):
        reference = np.asarray(means, dtype=np.float64)
    lr = model.pipeline_.named_steps["model"]
    coef = np.asarray(lr.coef_[0], dtype=np.float64)
    if len(owners) != coef.size:  # pragma: no cover - guards against a changed preprocessing layout
        raise RuntimeError(f"cannot map {coef.size} logistic coefficients onto {len(owners)} columns")
    design = logistic_matrix(model, prepared)
    position = {c: i for i, c in enumerate(columns)}
    owner_matrix = np.zeros((coef.size, len(columns)))
    owner_matrix[np.arange(coef.size), [position[o] for o in owners]] = 1.0
    values = ((design - reference) * coef) @ owner_matrix
    bias = np.full(len(prepared), float(lr.intercept_[0]) + float(coef @ reference))
    return values, bias


def store_training_means(pipeline: Pipeline, X_train: pd.DataFrame) -> Pipeline:  # noqa: N803
    """Remember the training means of a logistic model's transformed columns (for its reasons).

    Call it once after fitting a small-data logistic pipeline, with the rows it was fitted on; the
    means are pickled with the model. LightGBM pipelines are returned unchanged.

    Args:
        pipeline: A fitted scoring pipeline.
        X_train: The rows the model was fitted on (raw columns).

    Returns:
        ``pipeline`` (changed in place).
    """
    model = pipeline.steps[-1][1]
    if isinstance(model, LogisticBaseline):
        prepared = pipeline[:-1].transform(X_train)
        design = logistic_matrix(model, prepared)
        setattr(model, TRAINING_MEANS_ATTR, design.mean(axis=0))
    return pipeline
