"""The fitting procedure: cross-fitted tree count and calibrator; splits that never strand a class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.errors import InsufficientDataError
from forecast.evaluate import expected_calibration_error
from forecast.models.config import TrainingConfig
from forecast.models.crossfit import entity_folds, fit_calibrated
from forecast.models.pipeline import CalibratedLGBMClassifier, build_pipeline
from forecast.training.binary import train_binary
from forecast.training.inputs import ModelInput


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "visits": rng.poisson(2, n).astype(float),
            "noise": rng.normal(size=n),
            "source": rng.choice(["web", "referral", "cold_call"], n),
        }
    )
    logit = -2.0 + 0.7 * x["visits"] + np.where(x["source"] == "referral", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def test_entity_folds_keep_entities_whole_and_both_classes_in_every_training_part() -> None:
    ids = pd.Series(np.repeat(np.arange(60), 3))
    y = np.tile([0, 0, 1], 60) * (np.arange(180) % 7 == 0)
    folds = entity_folds(ids, y, 3, seed=0)
    assert folds is not None
    assert (pd.Series(folds).groupby(ids).nunique() == 1).all()
    for k in range(3):
        assert len(np.unique(y[folds != k])) == 2
    assert entity_folds(pd.Series([1, 1, 2]), np.array([1, 1, 0]), 3, seed=0) is None  # one positive entity


def test_final_fit_uses_every_row_and_is_calibrated_on_fresh_data() -> None:
    x, y = _data(9_000, 1)
    xt, yt = _data(6_000, 2)
    ids = pd.Series(np.arange(len(y)) // 3)  # three rows per entity
    template = build_pipeline(list(x.columns), ["source"], CalibratedLGBMClassifier(n_estimators=400))
    pipe, summary = fit_calibrated(template, x, y, ids, folds=3, seed=0)
    model = pipe.named_steps["model"]
    assert summary["rows"] == len(y) and summary["folds"] == 3
    assert model.model_.n_estimators == summary["n_estimators"] <= 400
    assert model.calibration_ in ("sigmoid", "isotonic") and model.calibrator_ is not None
    p = pipe.predict_proba(xt)[:, 1]
    assert expected_calibration_error(yt, p) < 0.03
    assert summary["oof"]["ece"] < 0.03


def _snapshots(days: int, seed: int) -> pd.DataFrame:
    """Weekly snapshots of entities created over ``days`` days, the label set by a feature."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(400):
        born = int(rng.integers(0, days))
        good = rng.random() < 0.3
        for age in range(0, 60, 7):
            if born + age < days:
                rows.append((f"E{i}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=born + age), good))
    frame = pd.DataFrame(rows, columns=["entity", "as_of", "good"])
    frame["signal"] = frame["good"].astype(float) + rng.normal(0, 0.8, len(frame))
    frame["label"] = (frame["good"] & (rng.random(len(frame)) < 0.8)).astype(int)
    return frame


def test_a_short_history_shortens_the_purge_gap_instead_of_failing() -> None:
    frame = _snapshots(days=70, seed=3)
    data = ModelInput(frame, "entity", "label", ["signal"], [], time_column="as_of")
    config = TrainingConfig(split={"gap_days": 90})  # a gap longer than the whole history
    result = train_binary(data, config)
    assert result.splits["method"] in ("time", "entity_random")
    assert result.splits["gap_days" if result.splits["method"] == "time" else "method"] != 90
    assert any("optimistic" in n for n in result.notes)
    assert result.fit["final"]["rows"] == result.fit["labelled_rows"] == len(frame)
    assert result.metrics["roc_auc"] > 0.7


def test_a_purge_gap_that_leaves_a_handful_of_fitting_rows_is_shortened() -> None:
    """Both classes in a few fitting rows is not enough: the evaluation would judge another model.

    400 days of history, a 250-day gap: at the full gap the fitting rows are the first weeks'
    (under the 200-row sufficiency threshold), so the gap is halved until they are enough.
    """
    frame = _snapshots(days=400, seed=4)
    data = ModelInput(frame, "entity", "label", ["signal"], [], time_column="as_of")
    result = train_binary(data, TrainingConfig(split={"gap_days": 250}))
    assert result.splits["method"] == "time"
    assert result.splits["gap_days"] < 250
    assert result.splits["splits"]["train"]["rows"] >= 200
    assert "fewer than the 200 rows" in result.splits["note"]


def test_too_little_data_names_the_rows_of_each_class() -> None:
    frame = _snapshots(days=70, seed=3).head(30)
    frame["label"] = 0
    frame.loc[:2, "label"] = 1
    data = ModelInput(frame, "entity", "label", ["signal"], [], time_column="as_of")
    with pytest.raises(InsufficientDataError, match=r"3 positive, 27 negative"):
        train_binary(data, TrainingConfig())


def test_a_forced_logistic_family_is_the_logistic_baseline_and_auto_serves_the_lower_selection_loss() -> None:
    frame = _snapshots(days=400, seed=5)
    data = ModelInput(frame, "entity", "label", ["signal"], [], time_column="as_of")
    forced = train_binary(data, TrainingConfig(split={"gap_days": 0}, family={"choice": "logistic"}))
    assert forced.model_kind == "logistic"
    assert forced.fit["family"]["chosen"] == "logistic"
    # The same model as the logistic baseline (same rows, same grouped C search): equal scores.
    assert forced.metrics["roc_auc"] == pytest.approx(forced.baselines["logistic"]["roc_auc"], abs=1e-9)
    auto = train_binary(data, TrainingConfig(split={"gap_days": 0}, family={"choice": "auto"}))
    family = auto.fit["family"]
    losses = family["log_loss"]
    assert family["selection"]["selection_rows"] >= 100 and set(losses) == {"lightgbm", "logistic"}
    assert auto.model_kind == family["chosen"] == min(losses, key=losses.__getitem__)
    # Every baseline carries the paired AUC gap and its entity-bootstrap error (the gate reads them).
    assert all(np.isfinite(b["auc_gap_se"]) for b in auto.baselines.values())
    assert auto.baselines["base_rate"]["auc_gap_se"] > 0
