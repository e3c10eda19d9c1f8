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

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from forecast.errors import InsufficientDataError
from forecast.evaluate import classification_metrics, decile_table, reliability_table, segment_calibration
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
from forecast.training.binary import TrainResult, data_identity
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


def train_time_to_close(data: ModelInput, config: TrainingConfig) -> TrainResult:
    """Fit the hazard model and its baselines; evaluate on the latest slice.

    Args:
        data: Deal snapshots with :data:`DURATION`, :data:`EVENT` and :data:`FOLLOWUP`.
        config: Training configuration (its ``survival`` section sets the intervals).

    Raises:
        InsufficientDataError: Too few observed closes to learn anything.
    """
    surv_cfg = config.survival
    edges = [float(x) for x in surv_cfg.edges]
    days = float(surv_cfg.proba_days)
    frame = data.frame.loc[data.frame[DURATION].notna()].reset_index(drop=True)
    frame = frame.loc[frame[DURATION] > 0].reset_index(drop=True)
    d_all = frame[DURATION].to_numpy(dtype=float)
    e_all = frame[EVENT].astype(bool).to_numpy()
    # cause of each close: 1 = won, 2 = lost (0 while open); wins and losses keep separate timings
    won = (
        frame["label_won"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        if "label_won" in frame
        else None
    )
    causes = None if won is None else np.where(e_all, np.where(won, 1, 2), 0)
    if (
        len(frame) < config.small_data.absolute_min_rows
        or e_all.sum() < config.small_data.absolute_min_minority
    ):
        raise InsufficientDataError(
            f"only {len(frame)} deal snapshots with {int(e_all.sum())} observed closes; at least "
            f"{config.small_data.absolute_min_rows} snapshots and {config.small_data.absolute_min_minority} "
            "closes are needed to train a time-to-close model"
        )
    # The gap is not shortened for a few fitting rows: below the threshold the stage curves serve.
    parts, split_summary = evaluation_split(
        data, frame.assign(**{data.label: e_all.astype(int)}), config, enough_to_fit=False
    )
    train, test = parts
    x = frame[data.features]
    ids = frame[data.id_column].reset_index(drop=True)
    follow_all = frame[FOLLOWUP].to_numpy(dtype=float)
    lgbm = config.lightgbm
    model = DiscreteTimeHazard(
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
    template = build_pipeline(data.features, data.categorical, model)
    sd = config.small_data
    small = "stage" in data.features and (
        len(train) < sd.min_rows or int(e_all[train].sum()) < sd.min_minority
    )
    kind = "stage_km_small_data" if small else "discrete_time_hazard_lightgbm"
    if small:
        template = build_pipeline(
            data.features, [], StageKaplanMeier("stage", edges=edges, proba_days=days), encode=False
        )

    def procedure(idx: np.ndarray) -> tuple[Any, dict[str, Any]]:
        if small:
            # The small-data model: a Kaplan-Meier curve per stage from every snapshot given,
            # censored ones included (nothing to stop early or calibrate).
            fitted = clone(template)
            prep = Pipeline(fitted.steps[:-1]).fit(x.iloc[idx])
            fitted.named_steps["model"].fit(prep.transform(x.iloc[idx]), d_all[idx], e_all[idx])
            return fitted, {"rows": len(idx), "entities": int(ids.iloc[idx].nunique()), "calibration": "none"}
        try:
            return fit_hazard(
                template,
                x.iloc[idx],
                d_all[idx],
                e_all[idx],
                follow_all[idx],
                None if causes is None else causes[idx],
                ids.iloc[idx],
                calibrate=surv_cfg.calibrate,
                folds=config.final_fit.folds,
                fitted_folds=config.final_fit.held_out(len(idx)),
                seed=config.seed,
            )
        except ValueError as exc:
            raise InsufficientDataError(str(exc)) from exc

    eval_pipeline, eval_fit = procedure(train)
    pipeline = eval_pipeline
    prep = pipeline[:-1]
    model = pipeline.named_steps["model"]
    d, e, follow = d_all[test], e_all[test], frame[FOLLOWUP].to_numpy(dtype=float)[test]
    x_test = x.iloc[test]
    surv = pipeline.named_steps["model"].survival(prep.transform(x_test))
    metrics = _survival_metrics(d, e, follow, surv, edges, days)
    numeric = [f for f in data.features if f not in data.categorical]
    baselines_est: dict[str, Any] = {
        "logistic_hazard": LogisticHazard(
            categorical=data.categorical, numeric=numeric, edges=edges, proba_days=days
        ),
    }
    if "stage" in data.features:
        baselines_est["stage_km"] = StageKaplanMeier("stage", edges=edges, proba_days=days)
    known = follow >= days
    y_known = (e & (d <= days))[known].astype(int)
    p_known = 1.0 - survival_at(surv[known], edges, days)
    # A short history may leave no test snapshot followed for `days`: nothing to calibrate against.
    measurable = bool(known.any())
    reliability = {"model": reliability_table(y_known, p_known)} if measurable else {}
    baselines: dict[str, dict[str, float]] = {}
    test_ids = ids.iloc[test].to_numpy()
    for name, est in baselines_est.items():
        est.fit(x.iloc[train], d_all[train], e_all[train])
        s_b = est.survival(x_test)
        baselines[name] = _survival_metrics(d, e, follow, s_b, edges, days)
        if not measurable:
            # Without a known P(close within `days`) the gate reads the C-index: its paired error.
            baselines[name]["c_index_gap_se"] = c_index_gap_se(
                d,
                e,
                test_ids,
                restricted_mean_days(surv, edges),
                restricted_mean_days(s_b, edges),
                config.seed,
            )
        if measurable:
            reliability[name] = reliability_table(y_known, 1.0 - survival_at(s_b[known], edges, days))
    test_frame = frame.iloc[test].reset_index(drop=True)
    label = within_label(days)
    test_frame[label] = (test_frame[EVENT].astype(bool) & (test_frame[DURATION] <= days)).astype(int)
    segments = {
        col: segment_calibration(y_known, p_known, test_frame.loc[known, col].reset_index(drop=True))
        for col in config.segments
        if col in test_frame and measurable
    }
    median_pred = survival_quantile(surv, edges, 0.5)
    observed = e & np.isfinite(median_pred)
    extra = {
        "median_abs_error_days": float(np.median(np.abs(median_pred[observed] - d[observed])))
        if observed.any()
        else float("nan")
    }
    metrics.update(extra)
    data_for_identity = frame.assign(**{label: (e_all & (d_all <= days)).astype(int)})
    if small:
        importance = pd.DataFrame({"feature": ["stage"], "importance": [1.0]})
    else:
        booster = model.model_.booster_
        gain = np.asarray(booster.feature_importance(importance_type="gain", iteration=model.best_iteration_))
        names = list(booster.feature_name())
        importance = pd.DataFrame({"feature": names, "importance": gain / (gain.sum() or 1.0)})
        importance = importance[importance["feature"].isin(data.features)]
        importance = importance.sort_values("importance", ascending=False, kind="stable").reset_index(
            drop=True
        )
    final_pipeline, final_fit = (
        procedure(np.arange(len(frame))) if config.final_fit.enabled else (eval_pipeline, eval_fit)
    )
    fit_summary = {
        "labelled_rows": len(frame),
        "evaluation": eval_fit,
        "final": {**final_fit, "share_of_labelled": round(final_fit["rows"] / len(frame), 4)},
    }
    return TrainResult(
        pipeline=final_pipeline,
        eval_pipeline=eval_pipeline,
        fit=fit_summary,
        model_kind=kind,
        notes=[
            *(
                [
                    f"small data: {len(train):,} fitting snapshots with {int(e_all[train].sum()):,} closes "
                    f"(sufficiency threshold: {sd.min_rows} snapshots and {sd.min_minority} closes), so the "
                    "served model is a Kaplan-Meier curve per stage from every snapshot, censored ones "
                    "included; the learned hazard takes over as the history grows"
                ]
                if small
                else []
            ),
            f"P(close within {int(days)} days) is judged on the {int(known.sum()):,} test snapshots "
            f"followed for at least {int(days)} days; C-index and IBS on all {len(test):,} (censored included)"
            + ("" if measurable else ": none is, so its calibration is not measured yet (a short history)"),
        ],
        metrics=metrics,
        baselines=baselines,
        splits=split_summary,
        data=data_identity(data_for_identity, label, data.time_column),
        deciles=decile_table(y_known, p_known) if measurable else pd.DataFrame(),
        reliability=reliability,
        segments=segments,
        importance=importance,
        calibration={}
        if small
        else {
            "method": "isotonic per edge, cross-fitted" if surv_cfg.calibrate else "none",
            "best_iteration": model.best_iteration_,
        },
        test_frame=test_frame.loc[known].reset_index(drop=True),
        input_example=None if measurable else frame.head(5),
        test_p=p_known,
        params={"model_kind": kind, **({} if small else lgbm.model_dump()), "edges": edges},
    )
