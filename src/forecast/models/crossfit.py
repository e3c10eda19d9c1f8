"""The fitting procedure of every binary model: trees, tree count and calibrator, all cross-fitted.

:func:`fit_calibrated` is run twice by :func:`forecast.training.binary.train_binary`: on the rows
before the test cut (the *evaluation* model, which produces every test metric) and on all labelled
rows (the *final* model, which is logged and served). Running the same procedure both times makes the test
metrics a measurement of what is served.

For LightGBM (:class:`~forecast.models.pipeline.CalibratedLGBMClassifier`):

1. the rows are dealt into ``folds`` folds of whole entities (stratified by whether the entity
   has a positive row);
2. per held-out fold (``fitted_folds`` of them: all for full cross-fitting, one by default in
   ``training/*.yaml`` to keep the cost at two fits), the pipeline is fitted on the other folds
   with early stopping on this one; the tree count is the minimum of the held-out folds' *mean*
   log loss;
3. the held-out probabilities at that tree count are the calibrator's rows: the method (``auto``:
   sigmoid or isotonic by cross-validated Brier score on them) and the calibrator are fitted on
   predictions of models that never trained on those rows;
4. the trees are refitted on all rows with that tree count; the calibrator is applied to them.

With too few entities of a class for two folds, the rows are split by time order instead (the
older part fits, the newer one stops early and calibrates) and the summary says so. The small-data
logistic model has no calibrator and is fitted on all rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from forecast.errors import InsufficientDataError
from forecast.evaluate import classification_metrics
from forecast.models.baselines import LogisticBaseline
from forecast.models.logistic_terms import store_training_means
from forecast.models.pipeline import (
    CalibratedLGBMClassifier,
    apply_calibrator,
    fit_calibrator,
    fit_pipeline,
)
from forecast.models.survival import CurveCalibrationSet


def fit_calibrated(
    template: Pipeline,
    x: pd.DataFrame,
    y: np.ndarray,
    ids: pd.Series,
    *,
    folds: int = 3,
    fitted_folds: int | None = None,
    seed: int = 0,
    weight: np.ndarray | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit an unfitted pipeline (as :func:`~forecast.models.pipeline.build_pipeline` makes it).

    Args:
        template: The unfitted pipeline (``columns``, ``categories``, ``model`` steps).
        x: Feature rows.
        y: Their 0/1 labels.
        ids: Their entity ids (a fold keeps an entity whole).
        folds: Number of entity folds.
        fitted_folds: How many of them are held out in turn (default all: full cross-fitting;
            1: one held-out fold, a third of the cost, the calibrator learning from its rows).
        seed: Seed of the fold assignment.
        weight: Optional weight of each row (inverse-probability-of-censoring weights,
            :mod:`forecast.training.ipcw`): the trees, the early stopping and the calibrator
            weigh the rows by it. Only the LightGBM model takes weights.

    Returns:
        The fitted pipeline and a summary of how it was fitted (rows, entities, tree count,
        calibration, out-of-fold metrics).
    """
    summary: dict[str, Any] = {"rows": len(y), "entities": int(ids.nunique())}
    step = template.named_steps["model"]
    if weight is not None and not isinstance(step, CalibratedLGBMClassifier):
        raise ValueError("row weights are taken by the LightGBM model only")
    if not isinstance(step, CalibratedLGBMClassifier):
        final = clone(template)
        model = final.named_steps["model"]
        if isinstance(model, LogisticBaseline):
            # The preparation steps, then the model with the entity of each row: C="cv" keeps an
            # entity's rows within one fold.
            prep = Pipeline(final.steps[:-1]).fit(x, y)
            model.fit(prep.transform(x), np.asarray(y, dtype=int), groups=ids.to_numpy())
            store_training_means(final, x)
            note = "none (logistic regression)"
            if isinstance(model.C, str):
                summary["C"] = model.C_
            return final, {**summary, "calibration": note}
        fit_pipeline(final, x, y)
        return final, {**summary, "calibration": "none"}
    assignment = entity_folds(ids, y, folds, seed)
    if assignment is None:
        return _fit_in_time_order(template, x, y, summary, weight)
    w = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)
    parts: list[tuple[np.ndarray, Pipeline]] = []
    curves: list[np.ndarray] = []
    for k in _held_out(assignment, fitted_folds):
        held = assignment == k
        part = clone(template)
        part.named_steps["model"].set_params(calibration="none")
        fit_pipeline(
            part,
            x.loc[~held],
            y[~held],
            x.loc[held],
            y[held],
            sample_weight=None if weight is None else w[~held],
            valid_weight=None if weight is None else w[held],
        )
        curves.append(_validation_curve(part))
        parts.append((held, part))
    trees = _best_tree_count(curves)
    raw = np.full(len(y), np.nan)
    for held, part in parts:
        raw[held] = np.clip(part[-1].uncalibrated_proba(part[:-1].transform(x.loc[held]), trees), 0.0, 1.0)
    seen = ~np.isnan(raw)
    final = clone(template)
    final.named_steps["model"].set_params(n_estimators=trees)
    calibration_set = (raw[seen], y[seen]) if weight is None else (raw[seen], y[seen], w[seen])
    fit_pipeline(final, x, y, calibration_set=calibration_set, sample_weight=weight)
    method = final.named_steps["model"].calibration_
    briers = final.named_steps["model"].calibration_cv_brier_
    w_seen = None if weight is None else w[seen]
    checked = (
        raw[seen] if method == "none" else _calibrated_out_of_fold(raw[seen], y[seen], method, seed, w_seen)
    )
    oof = classification_metrics(y[seen], np.clip(checked, 0.0, 1.0), weight=w_seen)
    return final, {
        **summary,
        "n_estimators": trees,
        "calibration": method,
        "calibration_rows": int(seen.sum()),
        "folds": int(assignment.max()) + 1,
        "held_out_folds": len(parts),
        "calibration_cv_brier": briers,
        "oof": {k: round(float(v), 6) for k, v in oof.items()},
    }


def _fit_in_time_order(
    template: Pipeline,
    x: pd.DataFrame,
    y: np.ndarray,
    summary: dict[str, Any],
    weight: np.ndarray | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Too few entities for folds: the older 80% fits, the newer 20% stops early and calibrates."""
    cut = int(len(y) * 0.8)
    if len(np.unique(y[:cut])) < 2 or len(np.unique(y[cut:])) < 2:
        raise InsufficientDataError(
            f"{len(y)} rows ({int(y.sum())} positive) cannot be split into fitting and calibration "
            "rows that both hold the two classes"
        )
    final = clone(template)
    fit_pipeline(
        final,
        x.iloc[:cut],
        y[:cut],
        x.iloc[cut:],
        y[cut:],
        sample_weight=None if weight is None else weight[:cut],
        valid_weight=None if weight is None else weight[cut:],
    )
    model = final.named_steps["model"]
    return final, {
        **summary,
        "rows": cut,
        "n_estimators": int(model.best_iteration_),
        "calibration": model.calibration_,
        "calibration_rows": f"the newest {len(y) - cut} rows (too few entities of a class for folds)",
    }


def _calibrated_out_of_fold(
    raw: np.ndarray, y: np.ndarray, method: str, seed: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """Held-out probabilities calibrated out of fold too (5 folds; the procedure's own check)."""
    out = np.empty(len(y))
    n_splits = int(min(5, np.bincount(y, minlength=2).min()))
    if n_splits < 2:
        return apply_calibrator(method, fit_calibrator(method, raw, y, weight), raw)
    for fit_idx, held in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(
        raw.reshape(-1, 1), y
    ):
        part = None if weight is None else weight[fit_idx]
        calibrator = fit_calibrator(method, raw[fit_idx], y[fit_idx], part)
        out[held] = apply_calibrator(method, calibrator, raw[held])
    return out


def _held_out(assignment: np.ndarray, fitted_folds: int | None) -> range:
    """The folds held out in turn: all of them, or the first ``fitted_folds``."""
    k = int(assignment.max()) + 1
    return range(k if fitted_folds is None else max(1, min(fitted_folds, k)))


def entity_folds(
    ids: pd.Series | Sequence[Any], y: np.ndarray, n_folds: int, seed: int, *, both_classes: bool = True
) -> np.ndarray | None:
    """A fold number per row: whole entities per fold, stratified by "the entity has a positive row".

    Args:
        ids: Entity id per row.
        y: 0/1 per row (for a hazard: whether the close was observed).
        n_folds: Folds wanted.
        seed: Seed of the assignment.
        both_classes: Every training part must hold both classes (a classifier); otherwise only
            positives (a hazard needs observed closes, not open deals).

    Returns:
        The fold of each row, or ``None`` when fewer than two folds meet that.
    """
    keys = np.asarray(ids)
    per_entity = pd.Series(np.asarray(y, dtype=int)).groupby(keys, sort=True).max()
    counts = np.bincount(per_entity.to_numpy(), minlength=2)
    k = int(min(n_folds, counts.min() if both_classes else counts[1]))
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    order = per_entity.index.to_numpy()[rng.permutation(len(per_entity))]
    labels = per_entity.loc[order].to_numpy()
    fold_of = np.empty(len(order), dtype=np.int64)
    for cls in (0, 1):
        where = np.flatnonzero(labels == cls)
        fold_of[where] = np.arange(len(where)) % k
    folds = pd.Series(fold_of, index=order).loc[keys].to_numpy()
    needed = 2 if both_classes else 1
    for f in range(k):
        if len(np.unique(np.asarray(y)[folds != f])) < needed or not (folds == f).any():
            return None
    return np.asarray(folds)


def fit_hazard(
    template: Pipeline,
    x: pd.DataFrame,
    durations: np.ndarray,
    events: np.ndarray,
    followup: np.ndarray,
    causes: np.ndarray | None,
    ids: pd.Series,
    *,
    calibrate: bool = True,
    folds: int = 3,
    fitted_folds: int | None = None,
    seed: int = 0,
) -> tuple[Pipeline, dict[str, Any]]:
    """The time-to-close procedure: the same cross-fitting as :func:`fit_calibrated`.

    Per entity fold, the hazard is fitted on the other folds with early stopping on this one; the
    tree count is the minimum of the folds' mean held-out log loss; the isotonic calibrators of
    the cumulative curves learn from the folds' held-out curves at that count; the hazard is
    refitted on all rows with that count.

    Args:
        template: Unfitted pipeline whose model is a
            :class:`~forecast.models.survival.DiscreteTimeHazard`.
        x: Feature rows.
        durations: Days from as_of to the close (or to the data's end).
        events: Whether the close was observed.
        followup: Days each row was followed.
        causes: Cause of each close (1 = won, 2 = lost, 0 open), or ``None``.
        ids: Entity ids (a fold keeps an entity whole).
        calibrate: Fit the curves' calibrators.
        folds: Number of entity folds.
        fitted_folds: How many of them are held out in turn (default all).
        seed: Seed of the fold assignment.

    Raises:
        InsufficientDataError: Too few deals with a close for two folds.
    """
    assignment = entity_folds(ids, np.asarray(events, dtype=int), folds, seed, both_classes=False)
    if assignment is None:
        raise InsufficientDataError("too few deals with an observed close to cross-fit a time-to-close model")

    parts = _hazard_folds(template, x, durations, events, causes, assignment, fitted_folds)
    trees = _best_tree_count([_validation_curve(part) for _, part in parts])
    calibration_set = (
        _held_out_curves(parts, x, trees, durations, events, followup, causes) if calibrate else None
    )
    final = clone(template)
    final.named_steps["model"].set_params(n_estimators=trees)
    prep = final[:-1].fit(x)
    final.named_steps["model"].fit(
        prep.transform(x), durations, events, causes=causes, calibration_set=calibration_set
    )
    return final, {
        "rows": len(x),
        "entities": int(ids.nunique()),
        "n_estimators": trees,
        "folds": int(assignment.max()) + 1,
        "held_out_folds": len(parts),
        "calibration": "isotonic per edge on held-out curves" if calibrate else "none",
    }


def _held_out_curves(
    parts: list[tuple[np.ndarray, Pipeline]],
    x: pd.DataFrame,
    trees: int,
    durations: np.ndarray,
    events: np.ndarray,
    followup: np.ndarray,
    causes: np.ndarray | None,
) -> CurveCalibrationSet:
    """The folds' uncalibrated curves of their held-out rows at ``trees`` trees, to calibrate on.

    Args:
        parts: Each fold's held-out positions and the pipeline fitted without them.
        x: Feature rows.
        trees: The tree count chosen over all folds.
        durations: Days from as_of to the close (or to the data's end).
        events: Whether the close was observed.
        followup: Days each row was followed.
        causes: Cause of each close, or ``None``.
    """
    n, k_edges = len(x), len(parts[0][1].named_steps["model"].edges)
    closed_by = np.zeros((n, k_edges))
    won_by: np.ndarray | None = None if causes is None else np.zeros((n, k_edges))
    seen = np.zeros(n, dtype=bool)
    for held, part in parts:
        c_k, w_k = part.named_steps["model"].raw_curves(part[:-1].transform(x.iloc[held]), trees)
        closed_by[held] = c_k
        seen[held] = True
        if won_by is not None and w_k is not None:
            won_by[held] = w_k
    return CurveCalibrationSet(
        closed_by[seen],
        None if won_by is None else won_by[seen],
        durations[seen],
        events[seen],
        followup[seen],
        None if causes is None else causes[seen],
    )


def _hazard_folds(
    template: Pipeline,
    x: pd.DataFrame,
    durations: np.ndarray,
    events: np.ndarray,
    causes: np.ndarray | None,
    assignment: np.ndarray,
    fitted_folds: int | None,
) -> list[tuple[np.ndarray, Pipeline]]:
    """Per held-out fold, the hazard fitted on the other folds with early stopping on this one.

    Args:
        template: :func:`fit_hazard`'s unfitted hazard pipeline.
        x: Feature rows.
        durations: Their durations, events and causes (``None``: one cause), as in
            :func:`fit_hazard`.
        events: See ``durations``.
        causes: See ``durations``.
        assignment: Each row's fold.
        fitted_folds: How many folds are held out in turn (default all).

    Returns:
        Each held-out fold's positions and the pipeline fitted without them.
    """

    def cause(idx: np.ndarray) -> np.ndarray | None:
        return None if causes is None else causes[idx]

    parts: list[tuple[np.ndarray, Pipeline]] = []
    for k in _held_out(assignment, fitted_folds):
        held = np.flatnonzero(assignment == k)
        rest = np.flatnonzero(assignment != k)
        part = clone(template)
        prep = part[:-1].fit(x.iloc[rest])
        part.named_steps["model"].fit(
            prep.transform(x.iloc[rest]),
            durations[rest],
            events[rest],
            eval_set=(prep.transform(x.iloc[held]), durations[held], events[held], cause(held)),
            causes=cause(rest),
        )
        parts.append((held, part))
    return parts


def _validation_curve(part: Pipeline) -> np.ndarray:
    """The held-out loss after each boosting round of a fold's model (its first validation metric)."""
    results = part.named_steps["model"].model_.evals_result_
    return np.asarray(next(iter(next(iter(results.values())).values())), dtype=float)


def _best_tree_count(curves: list[np.ndarray]) -> int:
    """The tree count minimising the folds' mean held-out loss (over the rounds every fold ran)."""
    length = min(len(c) for c in curves)
    return int(np.argmin(np.mean([c[:length] for c in curves], axis=0))) + 1
