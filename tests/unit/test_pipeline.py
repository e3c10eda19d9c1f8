from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.evaluate import expected_calibration_error
from forecast.models.pipeline import (
    OTHER,
    CalibratedLGBMClassifier,
    CategoryEncoder,
    ColumnSelector,
    _halves,
    build_pipeline,
    fit_pipeline,
)


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


def test_category_encoder_pools_rare_levels_and_blanks_unseen_ones() -> None:
    train = pd.DataFrame({"c": ["a"] * 20 + ["b"] * 3, "n": ["1"] * 23})
    enc = CategoryEncoder(["c"], min_count=10).fit(train)
    out = enc.transform(pd.DataFrame({"c": ["a", "b", "zzz", None], "n": ["2", "x", "3", None]}))
    assert out["c"].tolist()[:2] == ["a", OTHER]  # "b" was seen, but too rarely: pooled
    assert out["c"].isna().tolist() == [False, False, True, True]
    assert out["n"].tolist()[0] == 2.0 and np.isnan(out["n"].tolist()[1])


def test_column_selector_names_missing_columns() -> None:
    with pytest.raises(KeyError, match="lacks the model's column"):
        ColumnSelector(["a", "b"]).fit(pd.DataFrame({"a": [1]}))


@pytest.mark.parametrize("separate", [False, True])
def test_calibrated_model_is_calibrated_on_fresh_data(separate: bool) -> None:
    x, y = _data(12_000, 1)
    xt, yt = _data(6_000, 2)
    model = CalibratedLGBMClassifier(n_estimators=400, separate_calibration=separate, random_state=0)
    pipe = fit_pipeline(
        build_pipeline(list(x.columns), ["source"], model), x[:8000], y[:8000], x[8000:], y[8000:]
    )
    p = pipe.predict_proba(xt)[:, 1]
    assert expected_calibration_error(yt, p) < 0.03
    assert model.calibration_ in ("sigmoid", "isotonic")
    assert set(model.calibration_cv_brier_) == {"sigmoid", "isotonic"}


def test_validation_halves_fall_back_when_a_half_lacks_a_class() -> None:
    x = pd.DataFrame({"a": range(100)})
    few = np.r_[np.zeros(90, int), np.ones(10, int)]
    assert _halves((x, few))[0][0] is x  # shared: too few positives to split
    many = np.tile([0, 1], 100)
    stop, calib = _halves((pd.DataFrame({"a": range(200)}), many))
    assert len(stop[0]) == 100 and len(calib[0]) == 100 and stop[0].index[-1] < calib[0].index[0]
