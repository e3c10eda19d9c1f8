"""The project's classifiers follow the scikit-learn estimator contract (``parametrize_with_checks``).

The classifiers that take generic numeric ``X`` are checked: the calibrated LightGBM classifier
and the four baselines (array rows are read as columns ``x0``, ``x1``, ...: see
:mod:`forecast.models.contract`). Not here: the stage-incidence model and the time-to-close models,
which are fitted on durations and causes rather than labels (``fit(X, durations=..., causes=...)``).
Each expected failure names its reason.
"""

from __future__ import annotations

from typing import Any

from sklearn.utils.estimator_checks import parametrize_with_checks

from forecast.models.baselines import (
    BaseRateClassifier,
    LogisticBaseline,
    NaiveBayesBaseline,
    StageWinRateBaseline,
)
from forecast.models.pipeline import CalibratedLGBMClassifier

_TIE = "a probability of exactly 0.5 predicts the positive class (>= 0.5); sklearn's argmax picks the first"

ESTIMATORS = [
    # Few small trees and small leaves: the checks fit on a few dozen rows, many times.
    CalibratedLGBMClassifier(n_estimators=20, min_child_samples=2, calibration="none"),
    BaseRateClassifier(),
    StageWinRateBaseline(stage_column="x0"),
    NaiveBayesBaseline(),
    LogisticBaseline(),
]

EXPECTED_FAILURES: dict[type, dict[str, str]] = {
    CalibratedLGBMClassifier: {
        "check_classifiers_one_label": (
            "LightGBM fitted on one class does not predict it (training refuses such data first)"
        ),
        "check_fit2d_1sample": "LightGBM refuses a single row with its own error type (LightGBMError)",
    },
    BaseRateClassifier: {"check_classifiers_train": _TIE},
    StageWinRateBaseline: {
        "check_classifier_data_not_an_array": (
            "the stage column is read by name (x0 for arrays); a frame named 0, 1 has none"
        ),
    },
    NaiveBayesBaseline: {
        "check_classifiers_train": "numeric X holds no categorical field: the model is the base rate, "
        + _TIE,
        "check_classifiers_classes": "decision_function 0 (a tie) predicts the positive class: " + _TIE,
    },
}


def _expected_failures(estimator: Any) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator), {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures, xfail_strict=True)
def test_estimator_contract(estimator: Any, check: Any) -> None:
    check(estimator)
