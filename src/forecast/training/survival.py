"""Train and evaluate the time-to-close model on deal snapshots (no MLflow here).

The same time split as every binary model (:mod:`forecast.training.binary`), then:

- the discrete-time LightGBM hazard (:class:`~forecast.models.survival.DiscreteTimeHazard`), with
  early stopping on the validation split;
- in the same experiment, the stage-only Kaplan-Meier baseline and the logistic hazard;
- on the test slice: concordance index and integrated Brier score on every snapshot (censored
  ones included), and the calibration of P(closes within ``proba_days``) on the snapshots whose
  follow-up covers those days (all of them, whatever happened: no bias towards quick closes).

The result is a :class:`~forecast.training.binary.TrainResult` whose headline ``metrics`` are those
of P(closes within ``proba_days``) plus ``c_index`` and ``ibs``, so the registry's promotion gate
applies unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from forecast.errors import InsufficientDataError
from forecast.evaluate import (
    classification_metrics,
    decile_table,
    paired_auc_gaps,
    reliability_table,
    segment_calibration,
)
from forecast.models.config import TrainingConfig
from forecast.models.crossfit import fit_hazard
from forecast.models.pipeline import build_pipeline
from forecast.models.survival import (
    DiscreteTimeHazard,
    LogisticHazard,
    StageKaplanMeier,
    survival_at,
    survival_quantile,
)
from forecast.training.binary import TrainResult, data_identity, paired_brier_gap
from forecast.training.inputs import ModelInput
from forecast.training.splits import evaluation_split
from forecast.training.survival_metrics import (
    c_index_gap_se,
    concordance_index,
    integrated_brier_score,
    restricted_mean_days,
)

DURATION = "label_days_to_close"
EVENT = "label_close_observed"
FOLLOWUP = "label_followup_days"


def within_label(days: float) -> str:
    """Name of the 0/1 column "closed within ``days`` days" added to the test slice."""
    return f"label_closed_within_{int(days)}d"


def _survival_metrics(
    d: np.ndarray, e: np.ndarray, follow: np.ndarray, surv: np.ndarray, edges: list[float], days: float
) -> dict[str, float]:
    known = follow >= days
    y = (e & (d <= days))[known].astype(int)
    p = 1.0 - survival_at(surv[known], edges, days)
    out = classification_metrics(y, p) if len(np.unique(y)) == 2 else {"n": float(known.sum())}
    out["c_index"] = concordance_index(d, e, restricted_mean_days(surv, edges))
    out["ibs"] = integrated_brier_score(d, e, surv, edges)
    return out


@dataclass(frozen=True)
class _Snapshots:
    """The deal snapshots a time-to-close model learns from, as the arrays every step reads."""

    frame: pd.DataFrame
    x: pd.DataFrame
    ids: pd.Series
    durations: np.ndarray
    events: np.ndarray
    followup: np.ndarray
    causes: np.ndarray | None


def _snapshots(data: ModelInput, config: TrainingConfig) -> _Snapshots:
    """The snapshots with a positive duration, and their arrays.

    Args:
        data: Deal snapshots with :data:`DURATION`, :data:`EVENT` and :data:`FOLLOWUP`.
        config: Training configuration (its ``small_data`` absolute minimums).

    Raises:
        InsufficientDataError: Too few snapshots or observed closes to learn anything.
    """
    frame = data.frame.loc[data.frame[DURATION].notna()].reset_index(drop=True)
    frame = frame.loc[frame[DURATION] > 0].reset_index(drop=True)
    events = frame[EVENT].astype(bool).to_numpy()
    # cause of each close: 1 = won, 2 = lost (0 while open); wins and losses keep separate timings
    won = (
        frame["label_won"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if "label_won" in frame
        else None
    )
    sd = config.small_data
    if len(frame) < sd.absolute_min_rows or events.sum() < sd.absolute_min_minority:
        raise InsufficientDataError(
            f"only {len(frame)} deal snapshots with {int(events.sum())} observed closes; at least "
            f"{sd.absolute_min_rows} snapshots and {sd.absolute_min_minority} "
            "closes are needed to train a time-to-close model"
        )
    return _Snapshots(
        frame=frame,
        x=frame[data.features],
        ids=frame[data.id_column].reset_index(drop=True),
        durations=frame[DURATION].to_numpy(dtype=float),
        events=events,
        followup=frame[FOLLOWUP].to_numpy(dtype=float),
        causes=None if won is None else np.where(events, np.where(won, 1, 2), 0),
    )


def _template(data: ModelInput, config: TrainingConfig, small: bool) -> Pipeline:
    """The unfitted pipeline: the LightGBM hazard, or the stage curves on small data.

    Args:
        data: The model input (features, categorical columns).
        config: Training configuration (``lightgbm``, ``survival``, ``seed``).
        small: Too few fitting closes for the learned hazard: a Kaplan-Meier curve per stage
            (and size band).
    """
    edges = [float(x) for x in config.survival.edges]
    days = float(config.survival.proba_days)
    if small:
        sized = "amount" if "amount" in data.features else None
        model = StageKaplanMeier("stage", edges=edges, proba_days=days, amount_column=sized)
        return build_pipeline(data.features, [], model, encode=False)
    lgbm = config.lightgbm
    hazard = DiscreteTimeHazard(
        edges=edges,
        proba_days=days,
        n_estimators=lgbm.n_estimators,
        learning_rate=lgbm.learning_rate,
        num_leaves=lgbm.num_leaves,
        min_child_samples=lgbm.min_child_samples,
        subsample=lgbm.subsample,
        colsample_bytree=lgbm.colsample_bytree,
        reg_lambda=lgbm.reg_lambda,
        early_stopping_rounds=lgbm.early_stopping_rounds,
        random_state=config.seed,
    )
    return build_pipeline(data.features, data.categorical, hazard)


def _fit(
    snaps: _Snapshots, template: Pipeline, small: bool, config: TrainingConfig, idx: np.ndarray
) -> tuple[Pipeline, dict[str, Any]]:
    """The fitting procedure on the rows ``idx``: the served model is this applied to every row.

    Args:
        snaps: The snapshots.
        template: The unfitted pipeline (:func:`_template`).
        small: Whether the template is the small-data stage curves.
        config: Training configuration (``survival.calibrate``, ``final_fit``, ``seed``).
        idx: Positions of the rows to fit on.

    Returns:
        The fitted pipeline and what the fit says of itself.

    Raises:
        InsufficientDataError: Too few closes to cross-fit the hazard.
    """
    x = snaps.x.iloc[idx]
    if small:
        # The small-data model: a Kaplan-Meier curve per stage and size band from every snapshot
        # given, censored ones included (nothing to stop early or calibrate), with wins apart.
        fitted = clone(template)
        prep = Pipeline(fitted.steps[:-1]).fit(x)
        causes = None if snaps.causes is None else snaps.causes[idx]
        fitted.named_steps["model"].fit(
            prep.transform(x), snaps.durations[idx], snaps.events[idx], causes=causes
        )
        entities = int(snaps.ids.iloc[idx].nunique())
        return fitted, {"rows": len(idx), "entities": entities, "calibration": "none"}
    try:
        return fit_hazard(
            template,
            x,
            snaps.durations[idx],
            snaps.events[idx],
            snaps.followup[idx],
            None if snaps.causes is None else snaps.causes[idx],
            snaps.ids.iloc[idx],
            calibrate=config.survival.calibrate,
            folds=config.final_fit.folds,
            fitted_folds=config.final_fit.held_out(len(idx)),
            seed=config.seed,
        )
    except ValueError as exc:
        raise InsufficientDataError(str(exc)) from exc


@dataclass(frozen=True)
class _TestSlice:
    """The test snapshots and the evaluation model's curves on them."""

    durations: np.ndarray
    events: np.ndarray
    followup: np.ndarray
    x: pd.DataFrame
    ids: np.ndarray
    surv: np.ndarray
    known: np.ndarray
    """Followed for at least ``proba_days``: P(close within them) is known."""
    y_known: np.ndarray
    p_known: np.ndarray

    @property
    def measurable(self) -> bool:
        """Whether any test snapshot is followed for ``proba_days`` (a short history may leave none)."""
        return bool(self.known.any())


def _test_slice(snaps: _Snapshots, test: np.ndarray, pipeline: Pipeline, days: float) -> _TestSlice:
    """The evaluation model's survival curves on the test rows, and P(close within ``days``)."""
    d, e, follow = snaps.durations[test], snaps.events[test], snaps.followup[test]
    x_test = snaps.x.iloc[test]
    model = pipeline.named_steps["model"]
    surv = model.survival(pipeline[:-1].transform(x_test))
    known = follow >= days
    return _TestSlice(
        durations=d,
        events=e,
        followup=follow,
        x=x_test,
        ids=snaps.ids.iloc[test].to_numpy(),
        surv=surv,
        known=known,
        y_known=(e & (d <= days))[known].astype(int),
        p_known=1.0 - survival_at(surv[known], model.edges, days),
    )


def _baselines(
    data: ModelInput, config: TrainingConfig, snaps: _Snapshots, train: np.ndarray, ts: _TestSlice
) -> tuple[dict[str, dict[str, float]], dict[str, pd.DataFrame]]:
    """The logistic hazard and the stage curves, fitted on the training rows and judged on the test slice.

    Returns:
        Each baseline's metrics, and the reliability tables (the model's first) where measurable.
    """
    edges = [float(x) for x in config.survival.edges]
    days = float(config.survival.proba_days)
    numeric = [f for f in data.features if f not in data.categorical]
    estimators: dict[str, Any] = {
        "logistic_hazard": LogisticHazard(
            categorical=data.categorical, numeric=numeric, edges=edges, proba_days=days
        ),
    }
    if "stage" in data.features:
        estimators["stage_km"] = StageKaplanMeier("stage", edges=edges, proba_days=days)
    reliability = {"model": reliability_table(ts.y_known, ts.p_known)} if ts.measurable else {}
    baselines: dict[str, dict[str, float]] = {}
    known_p: dict[str, np.ndarray] = {}
    for name, est in estimators.items():
        est.fit(snaps.x.iloc[train], snaps.durations[train], snaps.events[train])
        s_b = est.survival(ts.x)
        baselines[name] = _survival_metrics(ts.durations, ts.events, ts.followup, s_b, edges, days)
        if not ts.measurable:
            # Without a known P(close within `days`) the gate reads the C-index: its paired error.
            baselines[name]["c_index_gap_se"] = c_index_gap_se(
                ts.durations,
                ts.events,
                ts.ids,
                restricted_mean_days(ts.surv, edges),
                restricted_mean_days(s_b, edges),
                config.seed,
            )
        else:
            p_b = 1.0 - survival_at(s_b[ts.known], edges, days)
            reliability[name] = reliability_table(ts.y_known, p_b)
            known_p[name] = p_b
    if known_p and len(np.unique(ts.y_known)) == 2:
        # The gate's paired errors, as for the binary models: a Brier gap within two of them, or an
        # AUC gap within two bootstrap errors over whole deals, is a tie (the small-data curves split
        # by size and their stage-only baseline are nested: equal within noise on a short slice).
        gaps = paired_auc_gaps(ts.y_known, ts.p_known, known_p, ts.ids[ts.known], seed=config.seed)
        for name, p_b in known_p.items():
            baselines[name].update(paired_brier_gap(ts.y_known, ts.p_known, p_b))
            baselines[name].update(gaps[name])
    return baselines, reliability


def _test_frame(
    frame: pd.DataFrame, test: np.ndarray, ts: _TestSlice, config: TrainingConfig
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The test rows followed for ``proba_days`` with their 0/1 label, and the calibration per segment.

    Args:
        frame: Every snapshot.
        test: Positions of the test rows.
        ts: The test slice (:func:`_test_slice`).
        config: Training configuration (``segments``, ``survival.proba_days``).
    """
    days = float(config.survival.proba_days)
    test_frame = frame.iloc[test].reset_index(drop=True)
    label = within_label(days)
    test_frame[label] = (test_frame[EVENT].astype(bool) & (test_frame[DURATION] <= days)).astype(int)
    segments = {
        col: segment_calibration(ts.y_known, ts.p_known, test_frame.loc[ts.known, col].reset_index(drop=True))
        for col in config.segments
        if col in test_frame and ts.measurable
    }
    return test_frame.loc[ts.known].reset_index(drop=True), segments


def _median_error(ts: _TestSlice, edges: list[float]) -> dict[str, float]:
    """The median absolute error of the predicted median days to close, on observed closes."""
    median_pred = survival_quantile(ts.surv, edges, 0.5)
    observed = ts.events & np.isfinite(median_pred)
    if not observed.any():
        return {"median_abs_error_days": float("nan")}
    return {"median_abs_error_days": float(np.median(np.abs(median_pred[observed] - ts.durations[observed])))}


def _importance(pipeline: Pipeline, features: list[str], small: bool) -> pd.DataFrame:
    """Share of the hazard's total gain per feature (the stage alone for the stage curves)."""
    if small:
        return _stage_curves_importance(pipeline.named_steps["model"])
    model = pipeline.named_steps["model"]
    booster = model.model_.booster_
    gain = np.asarray(booster.feature_importance(importance_type="gain", iteration=model.best_iteration_))
    names = list(booster.feature_name())
    importance = pd.DataFrame({"feature": names, "importance": gain / (gain.sum() or 1.0)})
    importance = importance[importance["feature"].isin(features)]
    return importance.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def _stage_curves_importance(model: StageKaplanMeier) -> pd.DataFrame:
    """The stage curves' inputs, weighted by the mean absolute shift each gives.

    The shift of P(closed within ``proba_days``): a stage's from all snapshots', a size band's from
    its stage's (each counts once).
    """

    def closes(curve: np.ndarray) -> float:
        return float(1.0 - survival_at(curve[None, :], model.edges, model.proba_days)[0])

    overall = closes(model.curves_["__all__"])
    stages = {k: closes(c) for k, c in model.curves_.items() if k != "__all__"}
    stage = float(np.mean([abs(p - overall) for p in stages.values()])) if stages else 0.0
    cells = getattr(model, "cell_curves_", {})
    if not cells:
        return pd.DataFrame({"feature": ["stage"], "importance": [1.0]})
    size = float(np.mean([abs(closes(c[0]) - stages.get(s, overall)) for (s, _), c in cells.items()]))
    total = stage + size or 1.0
    return pd.DataFrame({"feature": ["stage", "amount"], "importance": [stage / total, size / total]})


def _calibration(pipeline: Pipeline, config: TrainingConfig) -> dict[str, Any]:
    """The learned hazard's calibration and tree count (what the card and the summary say)."""
    return {
        "method": "isotonic per edge, cross-fitted" if config.survival.calibrate else "none",
        "best_iteration": pipeline.named_steps["model"].best_iteration_,
    }


def _notes(
    config: TrainingConfig, snaps: _Snapshots, train: np.ndarray, ts: _TestSlice, small: bool
) -> list[str]:
    """What the result's reader needs told: the small-data model, and what the test slice can judge."""
    sd = config.small_data
    days = int(config.survival.proba_days)
    notes = (
        [
            f"small data: {len(train):,} fitting snapshots with {int(snaps.events[train].sum()):,} closes "
            f"(sufficiency threshold: {sd.min_rows} snapshots and {sd.min_minority} closes), so the "
            "served model is a Kaplan-Meier curve per stage (and deal-size band, where enough deals "
            "have an amount) from every snapshot, censored ones included"
            + (", with the timing of wins apart from that of losses" if snaps.causes is not None else "")
            + "; the learned hazard takes over as the history grows"
        ]
        if small
        else []
    )
    truncated = config.snapshots.outcomes_note()
    if truncated:
        notes.insert(0, truncated)
    notes.append(
        f"P(close within {days} days) is judged on the {int(ts.known.sum()):,} test snapshots "
        f"followed for at least {days} days; C-index and IBS on all {len(ts.durations):,} (censored included)"
        + ("" if ts.measurable else ": none is, so its calibration is not measured yet (a short history)")
    )
    return notes


def train_time_to_close(data: ModelInput, config: TrainingConfig) -> TrainResult:
    """Fit the hazard model and its baselines; evaluate on the latest slice.

    Args:
        data: Deal snapshots with :data:`DURATION`, :data:`EVENT` and :data:`FOLLOWUP`.
        config: Training configuration (its ``survival`` section sets the intervals).

    Raises:
        InsufficientDataError: Too few observed closes to learn anything.
    """
    edges = [float(x) for x in config.survival.edges]
    days = float(config.survival.proba_days)
    snaps = _snapshots(data, config)
    frame, e_all, d_all = snaps.frame, snaps.events, snaps.durations
    # The gap is not shortened for a few fitting rows: below the threshold the stage curves serve.
    parts, split_summary = evaluation_split(
        data, frame.assign(**{data.label: e_all.astype(int)}), config, enough_to_fit=False
    )
    train, test = parts
    sd = config.small_data
    small = "stage" in data.features and (
        len(train) < sd.min_rows or int(e_all[train].sum()) < sd.min_minority
    )
    kind = "stage_km_small_data" if small else "discrete_time_hazard_lightgbm"
    template = _template(data, config, small)
    eval_pipeline, eval_fit = _fit(snaps, template, small, config, train)
    ts = _test_slice(snaps, test, eval_pipeline, days)
    metrics = _survival_metrics(ts.durations, ts.events, ts.followup, ts.surv, edges, days)
    baselines, reliability = _baselines(data, config, snaps, train, ts)
    test_frame, segments = _test_frame(frame, test, ts, config)
    metrics.update(_median_error(ts, edges))
    importance = _importance(eval_pipeline, data.features, small)
    final_pipeline, final_fit = (
        _fit(snaps, template, small, config, np.arange(len(frame)))
        if config.final_fit.enabled
        else (eval_pipeline, eval_fit)
    )
    return TrainResult(
        pipeline=final_pipeline,
        eval_pipeline=eval_pipeline,
        fit={
            "labelled_rows": len(frame),
            "evaluation": eval_fit,
            "final": {**final_fit, "share_of_labelled": round(final_fit["rows"] / len(frame), 4)},
        },
        model_kind=kind,
        notes=_notes(config, snaps, train, ts, small),
        metrics=metrics,
        baselines=baselines,
        splits=split_summary,
        data=data_identity(
            frame.assign(**{within_label(days): (e_all & (d_all <= days)).astype(int)}),
            within_label(days),
            data.time_column,
        ),
        deciles=decile_table(ts.y_known, ts.p_known) if ts.measurable else pd.DataFrame(),
        reliability=reliability,
        segments=segments,
        importance=importance,
        calibration={} if small else _calibration(eval_pipeline, config),
        test_frame=test_frame,
        input_example=None if ts.measurable else frame.head(5),
        test_p=ts.p_known,
        params={"model_kind": kind, **({} if small else config.lightgbm.model_dump()), "edges": edges},
    )
