"""Train and evaluate a calibrated binary scoring model on a feature table (no MLflow here).

One function, :func:`train_binary`, serves every binary model (lead scoring, deal win, churn risk):

1. keep rows with a known label; split by time (whole entities per split, purge gap before the
   test slice) or, without dates, stratified / by row order;
2. check data sufficiency: below the absolute minimum refuse with a clear message; below the
   sufficiency threshold fit a regularised logistic model instead of LightGBM, and say so;
3. fit the pipeline (:mod:`forecast.models.pipeline`) with early stopping and calibration on the
   validation split, and the baselines on the same training rows;
4. evaluate everything on the latest (test) slice: metrics, deciles, reliability, segments,
   feature importance.

MLflow logging and registration happen in :mod:`forecast.registry`, at the edge.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from forecast.errors import InputError
from forecast.evaluate import classification_metrics, decile_table, reliability_table, segment_calibration
from forecast.features.splits import time_splits
from forecast.models.baselines import (
    BaseRateClassifier,
    LogisticBaseline,
    NaiveBayesBaseline,
    StageWinRateBaseline,
)
from forecast.models.config import TrainingConfig
from forecast.models.explain import store_training_means
from forecast.models.pipeline import CalibratedLGBMClassifier, build_pipeline, fit_pipeline


class InsufficientDataError(ValueError):
    """Too few labelled rows (or rows of the rarer class) to train anything honest."""


@dataclass
class ModelInput:
    """What a model is trained on.

    Attributes:
        frame: The feature table (id, optional time column, features, labels).
        id_column: Entity id column.
        label: The 0/1 label column.
        features: Feature columns, in order.
        categorical: Which of them are categorical.
        time_column: Column of as_of dates (``None`` or all-missing: no time split).
        censored: Optional column flagging rows whose label is unknown yet.
        descriptions: Plain-words meaning of each feature (for reasons and the card).
    """

    frame: pd.DataFrame
    id_column: str
    label: str
    features: list[str]
    categorical: list[str]
    time_column: str | None = "as_of"
    censored: str | None = None
    descriptions: dict[str, str] = field(default_factory=dict)


@dataclass
class TrainResult:
    """A fitted model with its evaluation on the held-out slice."""

    pipeline: Pipeline
    model_kind: str
    notes: list[str]
    metrics: dict[str, float]
    baselines: dict[str, dict[str, float]]
    splits: dict[str, Any]
    data: dict[str, Any]
    deciles: pd.DataFrame
    reliability: dict[str, pd.DataFrame]
    segments: dict[str, pd.DataFrame]
    importance: pd.DataFrame
    calibration: dict[str, Any]
    test_frame: pd.DataFrame
    test_p: np.ndarray
    params: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable metrics and facts (what ``--json`` prints)."""
        return {
            "model_kind": self.model_kind,
            "notes": self.notes,
            "metrics": _finite(self.metrics),
            "baselines": {k: _finite(v) for k, v in self.baselines.items()},
            "calibration": self.calibration,
            "splits": self.splits,
            "data": self.data,
            "deciles": self.deciles.round(4).to_dict("records"),
            "segments": {k: v.round(4).to_dict("records") for k, v in self.segments.items()},
            "top_features": self.importance.head(15).round(4).to_dict("records"),
        }


def _finite(d: dict[str, float]) -> dict[str, float | None]:
    return {
        k: (None if v is None or (isinstance(v, float) and not np.isfinite(v)) else round(float(v), 6))
        for k, v in d.items()
    }


def data_identity(frame: pd.DataFrame, label: str, time_column: str | None) -> dict[str, Any]:
    """Hash, size, date range and label rate of the training data (logged with every model)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()
    times = frame[time_column] if time_column and time_column in frame else None
    has_time = times is not None and times.notna().any()
    return {
        "sha256": digest,
        "rows": len(frame),
        "columns": int(frame.shape[1]),
        "label_rate": round(float(frame[label].astype(float).mean()), 6) if len(frame) else None,
        "from": pd.Timestamp(times.min()).isoformat() if has_time and times is not None else None,
        "to": pd.Timestamp(times.max()).isoformat() if has_time and times is not None else None,
    }


def _split(
    data: ModelInput, frame: pd.DataFrame, config: TrainingConfig
) -> tuple[list[np.ndarray], dict[str, Any]]:
    s = config.split
    has_time = data.time_column is not None and frame[data.time_column].notna().any()
    if s.method == "time" and not has_time:
        raise InputError("--split time needs dates: name the date column with --time COLUMN")
    if s.method in ("random", "stratified"):
        has_time = False
    if has_time and frame[str(data.time_column)].isna().any():
        n = int(frame[str(data.time_column)].isna().sum())
        raise InputError(
            f"{n} labelled rows have no date in the time column; fix or drop them, or train without a time column"
        )
    if has_time:
        gap = s.gap_days if s.gap_days is not None else float(config.snapshots.horizon_days)
        splits = time_splits(
            frame,
            data.id_column,
            time_column=str(data.time_column),
            valid_fraction=s.valid_fraction,
            test_fraction=s.test_fraction,
            gap_days=gap,
        )
        return [splits.train, splits.valid, splits.test], {
            "method": "time",
            "gap_days": gap,
            **splits.summary(),
        }
    n = len(frame)
    positions = np.arange(n)
    y = frame[data.label].astype(int).to_numpy()
    method = s.method if s.method in ("random", "stratified") else s.without_time
    if method == "order":
        n_test, n_valid = int(n * s.test_fraction), int(n * s.valid_fraction)
        parts = [
            positions[: n - n_test - n_valid],
            positions[n - n_test - n_valid : n - n_test],
            positions[n - n_test :],
        ]
    else:
        strata = y if method == "stratified" else None
        rest, test = train_test_split(
            positions, test_size=s.test_fraction, stratify=strata, random_state=config.seed
        )
        share = s.valid_fraction / (1 - s.test_fraction)
        train, valid = train_test_split(
            rest, test_size=share, stratify=None if strata is None else y[rest], random_state=config.seed
        )
        parts = [np.sort(train), np.sort(valid), np.sort(test)]
    summary = {
        "method": "row_order" if method == "order" else method,
        "splits": {name: {"rows": len(p)} for name, p in zip(("train", "valid", "test"), parts, strict=True)},
    }
    return parts, summary


def _check_sufficiency(y: np.ndarray, config: TrainingConfig) -> tuple[bool, str | None]:
    """Return (use the small-data model, note); raise when too little to train at all."""
    sd = config.small_data
    n, minority = len(y), int(min(y.sum(), len(y) - y.sum()))
    if n < sd.absolute_min_rows or minority < sd.absolute_min_minority:
        raise InsufficientDataError(
            f"only {n} labelled rows with {minority} in the rarer class; at least {sd.absolute_min_rows} rows "
            f"and {sd.absolute_min_minority} of each class are needed to train and evaluate a model"
        )
    if n < sd.min_rows or minority < sd.min_minority:
        return True, (
            f"small data: {n} labelled rows, {minority} in the rarer class (sufficiency threshold: "
            f"{sd.min_rows} rows and {sd.min_minority} of the rarer class), so a regularised logistic "
            f"model (C={sd.logistic_c}) was trained instead of LightGBM"
        )
    return False, None


def _baselines(data: ModelInput) -> dict[str, Any]:
    out: dict[str, Any] = {
        "base_rate": BaseRateClassifier(),
        "naive_bayes": NaiveBayesBaseline(categorical=data.categorical or None),
        "logistic": LogisticBaseline(
            categorical=data.categorical, numeric=[f for f in data.features if f not in data.categorical]
        ),
    }
    if not data.categorical:
        out.pop("naive_bayes")
    if "stage" in data.features:
        out["stage_win_rate"] = StageWinRateBaseline(stage_column="stage")
    return out


def train_binary(data: ModelInput, config: TrainingConfig) -> TrainResult:
    """Train the calibrated model and its baselines; evaluate on the latest slice.

    Args:
        data: The feature table and its columns.
        config: Training configuration.

    Returns:
        The fitted pipeline and its evaluation.

    Raises:
        InsufficientDataError: Too little labelled data (a clear message, no stack trace in the CLI).
        ValueError: A split left empty, or a label column that is not 0/1.
    """
    frame = data.frame
    known = frame[data.label].notna()
    if data.censored is not None:
        known &= ~frame[data.censored].astype(bool)
    frame = frame.loc[known].reset_index(drop=True)
    y_all = frame[data.label].astype(int).to_numpy()
    small, note = _check_sufficiency(y_all, config)
    parts, split_summary = _split(data, frame, config)
    train, valid, test = parts
    for name, idx in zip(("train", "validation", "test"), parts, strict=True):
        if len(np.unique(y_all[idx])) < 2:
            raise InsufficientDataError(f"the {name} split has only one class; more labelled data is needed")
    x = frame[data.features]
    notes = [note] if note else []
    lgbm = config.lightgbm
    if small:
        model: Any = LogisticBaseline(
            categorical=data.categorical,
            numeric=[f for f in data.features if f not in data.categorical],
            C=config.small_data.logistic_c,
            random_state=config.seed,
        )
        kind = "logistic_small_data"
        fit_idx = np.concatenate([train, valid])
        pipeline = build_pipeline(data.features, [], model)
        pipeline.steps[1] = ("categories", "passthrough")
        fit_pipeline(pipeline, x.iloc[fit_idx], y_all[fit_idx])
        store_training_means(pipeline, x.iloc[fit_idx])  # exact reason codes for the linear model
    else:
        settings = lgbm.model_dump()
        # A prior column missing from this input (e.g. a flat export) is left out, like monotone
        # ones; without the column choosing its rows, there is no prior.
        settings["prior_features"] = [f for f in lgbm.prior_features if f in data.features]
        if lgbm.prior_fit_column is not None and lgbm.prior_fit_column not in data.features:
            settings["prior_features"] = []
        settings["prior_only"] = [f for f in lgbm.prior_only if f in settings["prior_features"]]
        model = CalibratedLGBMClassifier(
            **settings,
            monotone_increasing=[f for f in config.monotone_increasing if f in data.features],
            monotone_decreasing=[f for f in config.monotone_decreasing if f in data.features],
            random_state=config.seed,
        )
        kind = "lightgbm"
        pipeline = build_pipeline(data.features, data.categorical, model)
        fit_pipeline(pipeline, x.iloc[train], y_all[train], x.iloc[valid], y_all[valid])
    p_test = pipeline.predict_proba(x.iloc[test])[:, 1]
    y_test = y_all[test]
    metrics = classification_metrics(y_test, p_test)
    reliability = {"model": reliability_table(y_test, p_test)}
    baselines: dict[str, dict[str, float]] = {}
    # Baselines learn from the same rows as the model's trees (validation rows only steer the
    # model's early stopping and calibration), so the comparison is on equal information.
    bl_fit = np.concatenate([train, valid]) if small else train
    for name, est in _baselines(data).items():
        est.fit(x.iloc[bl_fit], y_all[bl_fit])
        p = est.predict_proba(x.iloc[test])[:, 1]
        baselines[name] = classification_metrics(y_test, p)
        reliability[name] = reliability_table(y_test, p)
    segments = {
        col: segment_calibration(y_test, p_test, frame[col].iloc[test].reset_index(drop=True))
        for col in config.segments
        if col in frame
    }
    step = pipeline.named_steps["model"]
    calibration: dict[str, Any] = {}
    if isinstance(step, CalibratedLGBMClassifier):
        calibration = {
            "method": step.calibration_,
            "cv_brier": step.calibration_cv_brier_,
            "best_iteration": step.best_iteration_,
        }
    test_frame = frame.iloc[test].reset_index(drop=True)
    return TrainResult(
        pipeline=pipeline,
        model_kind=kind,
        notes=notes,
        metrics=metrics,
        baselines=baselines,
        splits=split_summary,
        data=data_identity(frame, data.label, data.time_column),
        deciles=decile_table(y_test, p_test),
        reliability=reliability,
        segments=segments,
        importance=feature_importance(pipeline, data.features),
        calibration=calibration,
        test_frame=test_frame,
        test_p=p_test,
        params={"model_kind": kind, **({} if small else lgbm.model_dump()), "seed": config.seed},
    )


def _encodes(encoded: str, feature: str) -> bool:
    """Whether a logistic model's encoded column comes from ``feature``."""
    return encoded in (f"numeric__{feature}", f"numeric__missingindicator_{feature}") or encoded.startswith(
        f"categorical__{feature}_"
    )


def feature_importance(pipeline: Pipeline, features: list[str]) -> pd.DataFrame:
    """Share of total gain per feature (LightGBM) or absolute coefficient (logistic)."""
    step = pipeline.named_steps["model"]
    if isinstance(step, CalibratedLGBMClassifier):
        values = step.tree_gain()  # trees only: the prior's share is not split gain
    elif isinstance(step, LogisticBaseline):
        coef = step.coefficients().abs()
        values = np.array(
            [coef[[c for c in coef.index if _encodes(c, f)]].sum() for f in features], dtype=float
        )
    else:  # pragma: no cover - every trained model is one of the two
        values = np.zeros(len(features))
    total = values.sum() or 1.0
    table = pd.DataFrame({"feature": features, "importance": values / total})
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)
