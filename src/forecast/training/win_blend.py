"""Fit the competing-risks hazard a deal-win classifier is blended with (``models.win_blend``).

The hazard learns from every deal snapshot, censored ones included, on the classifier's own
encoded columns. For the evaluation it is fitted on what the test cut knew: the snapshots of the
fitting deals dated before the cut, their outcomes censored at the cut; for the served model, on
every snapshot. Both fits use the time-to-close procedure (:func:`~forecast.models.crossfit.fit_hazard`:
entity folds, tree count from held-out folds, isotonic curves calibrated on held-out curves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from forecast.errors import InsufficientDataError
from forecast.models.config import TrainingConfig
from forecast.models.crossfit import fit_hazard
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.models.survival import DiscreteTimeHazard
from forecast.models.win_blend import blended_pipeline
from forecast.training import ipcw
from forecast.training.inputs import ModelInput

DURATION, EVENT, FOLLOWUP, WON = ipcw.DAYS_TO_CLOSE, ipcw.CLOSE_OBSERVED, ipcw.FOLLOW_UP, ipcw.WON
COLUMNS = ipcw.COLUMNS
"""Columns of the deal snapshots the hazard learns from (the same outcome columns as the weights)."""


@dataclass(frozen=True)
class HazardRows:
    """Snapshots for the hazard: positions in the model input's frame and their (censored) outcomes."""

    rows: np.ndarray
    durations: np.ndarray
    events: np.ndarray
    followup: np.ndarray
    causes: np.ndarray


def applies(data: ModelInput, config: TrainingConfig, pipeline: Pipeline) -> bool:
    """Whether this model is blended: a weight is set, the snapshots carry outcomes, the model is LightGBM."""
    return (
        config.win_blend.hazard_weight > 0
        and config.entity == "opportunity"
        and all(c in data.frame.columns for c in COLUMNS)
        and isinstance(pipeline.steps[-1][1], CalibratedLGBMClassifier)
    )


def hazard_rows(data: ModelInput, cut: pd.Timestamp | None = None, without: Any = ()) -> HazardRows:
    """The snapshots the hazard learns from, as known at ``cut`` (default: the data's end).

    Args:
        data: The deal snapshots (every one, censored ones included).
        cut: Outcomes after it are unknown: snapshots dated at or after it are left out, the others'
            closes after it count as still open at it.
        without: Entity ids to leave out (the test slice's deals).
    """
    frame = data.frame
    durations = frame[DURATION].to_numpy(dtype=float)
    events = frame[EVENT].astype("boolean").fillna(False).to_numpy(dtype=bool)
    followup = frame[FOLLOWUP].to_numpy(dtype=float)
    won = frame[WON].astype("boolean").fillna(False).to_numpy(dtype=bool)
    keep = np.isfinite(durations) & ~frame[data.id_column].isin(list(without)).to_numpy()
    if cut is not None:
        known = (cut - pd.to_datetime(frame[str(data.time_column)])).dt.total_seconds().to_numpy() / 86400.0
        keep &= known > 0
        seen = np.where(keep, known, 0.0)
        events = events & (durations <= seen)
        durations = np.minimum(durations, seen)
        followup = np.minimum(followup, seen)
    keep &= durations > 0
    rows = np.flatnonzero(keep)
    causes = np.where(events, np.where(won, 1, 2), 0)
    return HazardRows(rows, durations[rows], events[rows], followup[rows], causes[rows])


def fit_win_hazard(
    pipeline: Pipeline, data: ModelInput, rows: HazardRows, config: TrainingConfig
) -> tuple[DiscreteTimeHazard, dict[str, Any]]:
    """The competing-risks hazard on ``rows``, encoded by the fitted classifier pipeline's own steps.

    Raises:
        InsufficientDataError: Too few closes of both kinds to fit and cross-fit it.
    """
    sd = config.small_data
    closes = int(rows.events.sum())
    wins = int((rows.causes == 1).sum())
    if (
        closes < sd.min_minority
        or wins < sd.absolute_min_minority
        or closes - wins < sd.absolute_min_minority
    ):
        raise InsufficientDataError(
            f"{len(rows.rows)} snapshots with {wins} wins and {closes - wins} losses: too few closes "
            "to fit the win hazard"
        )
    encoded = pipeline[:-1].transform(data.frame[data.features].iloc[rows.rows])
    lgbm = config.lightgbm
    hazard = DiscreteTimeHazard(
        edges=[float(x) for x in config.survival.edges],
        proba_days=float(config.survival.proba_days),
        n_estimators=lgbm.n_estimators,
        learning_rate=config.win_blend.learning_rate,
        num_leaves=lgbm.num_leaves,
        min_child_samples=config.win_blend.min_child_samples,
        subsample=lgbm.subsample,
        colsample_bytree=lgbm.colsample_bytree,
        reg_lambda=lgbm.reg_lambda,
        early_stopping_rounds=lgbm.early_stopping_rounds,
        random_state=config.seed,
    )
    template = Pipeline([("encoded", FunctionTransformer()), ("model", hazard)])
    ids = data.frame[data.id_column].iloc[rows.rows].reset_index(drop=True)
    try:
        fitted, info = fit_hazard(
            template,
            encoded.reset_index(drop=True),
            rows.durations,
            rows.events,
            rows.followup,
            rows.causes,
            ids,
            calibrate=config.survival.calibrate,
            folds=config.final_fit.folds,
            fitted_folds=config.final_fit.held_out(len(rows.rows)),
            seed=config.seed,
        )
    except ValueError as exc:
        raise InsufficientDataError(str(exc)) from exc
    model = fitted.named_steps["model"]
    assert isinstance(model, DiscreteTimeHazard)
    return model, {**info, "wins": wins, "losses": closes - wins}


def blend(
    pipeline: Pipeline,
    data: ModelInput,
    rows: HazardRows,
    config: TrainingConfig,
    *,
    weight: float | None = None,
    reach: bool = False,
) -> tuple[Pipeline, dict[str, Any]]:
    """``pipeline`` blended with a hazard fitted on ``rows`` (:func:`fit_win_hazard`).

    Args:
        pipeline: The fitted classifier pipeline.
        data: The deal snapshots.
        rows: The hazard's snapshots (:func:`hazard_rows`).
        config: The training config (its horizon resolved).
        weight: The hazard's weight (default: ``win_blend.hazard_weight``; 0 serves only the tail).
        reach: Also count the hazard's wins after the label horizon, up to ``snapshots.p_win_days``
            (the served model; the evaluation's labels stop at the horizon).
    """
    hazard, info = fit_win_hazard(pipeline, data, rows, config)
    days = float(config.snapshots.horizon_days)
    w = config.win_blend.hazard_weight if weight is None else weight
    far = config.snapshots.p_win_days if reach else None
    return blended_pipeline(pipeline, hazard, w, days, None if far is None else float(far)), info


def reach_days(config: TrainingConfig) -> float | None:
    """The days p_win reaches past the label horizon (``snapshots.p_win_days``), ``None`` if it does not."""
    far = config.snapshots.p_win_days
    return float(far) if far is not None and far > config.snapshots.horizon_days else None
