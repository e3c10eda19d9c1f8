"""The monitoring verdict on hand-made figures (pure: no data, no Evidently, no MLflow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.monitoring.frames import data_quality_failures, outcomes, typed_features
from forecast.monitoring.policy import DataQualityPolicy, Figures, MonitoringPolicy, Thresholds, decide
from tests.conftest import REPO

QUALITY = {"roc_auc": 0.85, "ece": 0.01, "mean_p": 0.06, "base_rate": 0.06, "n": 5000.0}


def _figures(**changes: object) -> Figures:
    base = Figures(
        n_features=20,
        drifted={},
        top_features=["a", "b", "c", "d", "e", "f"],
        prediction_drift=0.02,
        reference_quality=dict(QUALITY),
        current_quality=dict(QUALITY),
    )
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_no_drift_is_ok() -> None:
    verdict = decide(_figures(), MonitoringPolicy())
    assert verdict.verdict == "ok" and verdict.reasons == [] and verdict.exit_code == 0


def test_a_few_unimportant_drifted_features_stay_ok() -> None:
    verdict = decide(_figures(drifted={"x": 0.3, "y": 0.2}), MonitoringPolicy())
    assert verdict.verdict == "ok"


def test_an_important_drifted_feature_warns_and_is_named() -> None:
    verdict = decide(_figures(drifted={"b": 0.38}), MonitoringPolicy())
    assert verdict.verdict == "warn" and verdict.exit_code == 10
    assert any("b (0.38)" in r for r in verdict.reasons)


@pytest.mark.parametrize(("n_drifted", "level"), [(5, "ok"), (6, "warn"), (10, "retrain")])
def test_share_of_drifted_features(n_drifted: int, level: str) -> None:
    drifted = {f"x{i}": 0.2 for i in range(n_drifted)}
    verdict = decide(_figures(drifted=drifted), MonitoringPolicy())
    assert verdict.verdict == level


def test_ece_rise_retrains_and_reasons_are_worst_first() -> None:
    current = {**QUALITY, "ece": 0.05, "base_rate": 0.10}
    verdict = decide(_figures(current_quality=current, drifted={"a": 0.4}), MonitoringPolicy())
    assert verdict.verdict == "retrain" and verdict.exit_code == 11
    assert verdict.reasons[0].startswith("retrain: ECE 0.050")
    assert verdict.reasons[1].startswith("warn:") and "a (0.40)" in verdict.reasons[1]


@pytest.mark.parametrize(("auc", "level"), [(0.83, "ok"), (0.815, "warn"), (0.78, "retrain")])
def test_auc_drop(auc: float, level: str) -> None:
    verdict = decide(_figures(current_quality={**QUALITY, "roc_auc": auc}), MonitoringPolicy())
    assert verdict.verdict == level


def test_without_outcomes_quality_is_not_judged_and_said_so() -> None:
    verdict = decide(
        _figures(current_quality=None, quality_note="no current rows have outcomes yet"), MonitoringPolicy()
    )
    assert verdict.verdict == "ok"
    assert "no current rows have outcomes yet" in verdict.notes
    assert "ece_rise" not in {f.criterion for f in verdict.findings}


def test_prediction_drift_and_data_quality() -> None:
    assert decide(_figures(prediction_drift=0.3), MonitoringPolicy()).verdict == "retrain"
    verdict = decide(_figures(data_quality_failures=["x: missing in 50% of rows"]), MonitoringPolicy())
    assert verdict.verdict == "warn"  # data problems are fixed, not retrained (retrain: null)


def test_thresholds() -> None:
    assert Thresholds(warn=1, retrain=None).level(5) == "warn"
    assert Thresholds(warn=None, retrain=None).level(5) == "ok"
    with pytest.raises(ValueError, match="below warn"):
        Thresholds(warn=0.5, retrain=0.1)


def test_the_shipped_policy_is_the_default(tmp_path: Path) -> None:
    assert MonitoringPolicy.from_yaml(REPO / "training" / "monitoring.yaml") == MonitoringPolicy()
    bad = tmp_path / "bad.yaml"
    bad.write_text("drift:\n  share: {warn: 0.9, retrain: 0.1}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.yaml"):
        MonitoringPolicy.from_yaml(bad)


def test_outcomes_respect_the_censor_flag_and_csv_text() -> None:
    frame = pd.DataFrame(
        {
            "label_converted": ["True", "False", "True", None],
            "label_censored": ["False", "False", "True", "False"],
        }
    )
    y, known = outcomes(frame, {"label": "label_converted"})
    assert known.tolist() == [True, True, False, False]
    assert y[known].tolist() == [1, 0]


def test_outcomes_of_time_to_close() -> None:
    frame = pd.DataFrame(
        {
            "label_days_to_close": [10.0, 50.0, 5.0, 20.0],
            "label_close_observed": [True, True, True, False],
            "label_followup_days": [100.0, 100.0, 10.0, 20.0],
        }
    )
    y, known = outcomes(frame, {"label": "label_closed_within_30d", "survival": {"proba_days": 30}})
    assert known.tolist() == [True, True, True, False]  # closed within 30 days is known at once
    assert y[known].tolist() == [1, 0, 1]


def test_data_quality_checks() -> None:
    rng = np.random.default_rng(0)
    ref = typed_features(
        pd.DataFrame(
            {"n": rng.normal(size=500), "c": rng.choice(["a", "b"], 500), "k": rng.normal(size=500)}
        ),
        ["n", "c", "k"],
        ["c"],
    )
    cur = ref.copy()
    assert data_quality_failures(ref, cur, ["c"], DataQualityPolicy()) == []
    cur.loc[: len(cur) // 2, "n"] = np.nan  # half missing
    cur.loc[: len(cur) // 4, "c"] = "z"  # a quarter new
    cur["k"] = 0.0  # stuck
    failures = data_quality_failures(ref, cur, ["c"], DataQualityPolicy())
    assert [f.split(":")[0] for f in failures] == ["n", "c", "k"]
