from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

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


def _with_age(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of ``_data`` where a quarter are "creation" rows (age 0) and the rest are older."""
    x, y = _data(n, seed)
    rng = np.random.default_rng(seed + 100)
    x["age_days"] = np.where(rng.random(n) < 0.25, 0.0, rng.uniform(7, 100, n))
    return x, y


def _prior_model(**kw: object) -> CalibratedLGBMClassifier:
    params: dict[str, object] = {
        "n_estimators": 200,
        "prior_features": ["source", "visits"],
        "prior_fit_column": "age_days",
        "prior_fit_max": 0.01,
        "random_state": 0,
    }
    params.update(kw)
    return CalibratedLGBMClassifier(**params)  # type: ignore[arg-type]


@pytest.mark.parametrize("alone", [False, True])
def test_prior_boosts_trees_and_contributions_add_up(alone: bool) -> None:
    x, y = _with_age(10_000, 3)
    xt, yt = _with_age(4_000, 4)
    model = _prior_model(prior_alone=alone)
    pipe = fit_pipeline(
        build_pipeline(list(x.columns), ["source"], model), x[:7000], y[:7000], x[7000:], y[7000:]
    )
    p = pipe.predict_proba(xt)[:, 1]
    assert expected_calibration_error(yt, p) < 0.04
    assert model.prior_ is not None and model.prior_.numeric_ == ["visits"]
    prepared = pipe[:-1].transform(xt)
    contrib = model.contributions(prepared)
    assert contrib.shape == (len(xt), xt.shape[1] + 1)
    raw = 1 / (1 + np.exp(-contrib.sum(axis=1)))
    np.testing.assert_allclose(raw, model._raw(prepared), rtol=1e-6, atol=1e-9)
    creation = (xt["age_days"] <= 0.01).to_numpy()
    prior_p = model.prior_.predict_proba(prepared[creation])[:, 1]
    if alone:  # creation rows: the prior's ranking exactly, the trees add nothing
        np.testing.assert_allclose(model._raw(prepared[creation]), prior_p, rtol=1e-6)
        assert np.all(contrib[creation][:, list(xt.columns).index("noise")] == 0.0)
    else:
        assert not np.allclose(model._raw(prepared[creation]), prior_p)


def test_prior_alone_with_only_creation_rows_lets_the_trees_boost_from_the_prior() -> None:
    """A fitting slice of creation snapshots only (a short history) still gives a model, not a crash."""
    x, y = _with_age(4_000, 6)
    x["age_days"] = 0.0
    model = _prior_model(prior_alone=True)
    pipe = fit_pipeline(
        build_pipeline(list(x.columns), ["source"], model), x[:3000], y[:3000], x[3000:], y[3000:]
    )
    assert model.prior_alone and not model.prior_alone_
    prepared = pipe[:-1].transform(x[3000:])
    assert not np.allclose(model._raw(prepared), model.prior_.predict_proba(prepared)[:, 1])
    assert roc_auc_score(y[3000:], pipe.predict_proba(x[3000:])[:, 1]) > 0.6


def test_prior_only_features_are_hidden_from_the_trees() -> None:
    x, y = _with_age(6_000, 5)
    model = _prior_model(prior_only=["source"])
    fit_pipeline(build_pipeline(list(x.columns), ["source"], model), x[:4000], y[:4000], x[4000:], y[4000:])
    assert "source" not in model.tree_features_
    assert model.model_.booster_.feature_name() == model.tree_features_
    gain = model.tree_gain()
    assert gain[list(x.columns).index("source")] == 0.0 and gain.sum() > 0


def test_prior_init_score_is_out_of_fold_on_its_fitting_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _with_age(4_000, 6)
    enc = CategoryEncoder(["source"]).fit(x)
    xe = enc.transform(x)
    oof, prior = _prior_model(prior_folds=5)._fit_prior(xe, y)
    insample, _ = _prior_model(prior_folds=0)._fit_prior(xe, y)
    assert oof is not None and insample is not None and prior is not None
    creation = (x["age_days"] <= 0.01).to_numpy()
    assert not np.allclose(oof[creation], insample[creation])  # held-out folds differ
    np.testing.assert_allclose(oof[~creation], insample[~creation])  # other rows: the full prior


def test_prior_needs_both_classes_on_its_rows_and_known_columns() -> None:
    x, y = _with_age(2_000, 7)
    xe = CategoryEncoder(["source"]).fit(x).transform(x)
    with pytest.raises(ValueError, match="the prior has"):
        _prior_model(prior_fit_max=-1.0).fit(xe, y, eval_set=(xe, y))
    with pytest.raises(KeyError, match="prior column"):
        _prior_model(prior_features=["nope"]).fit(xe, y, eval_set=(xe, y))


def test_isotonic_calibration_never_claims_certainty_its_rows_cannot_show() -> None:
    """Plain isotonic regression maps an all-negative lowest block to exactly 0 (a converting lead
    then costs an unbounded log loss); the end blocks get (positives + 0.5) / (rows + 1)."""
    from forecast.models.pipeline import apply_calibrator, fit_calibrator

    rng = np.random.default_rng(0)
    raw = rng.random(2000)
    y = (rng.random(2000) < raw**3).astype(int)
    cal = fit_calibrator("isotonic", raw, y)
    p = apply_calibrator("isotonic", cal, np.linspace(0, 1, 101))
    assert np.all(np.diff(p) >= 0)
    assert 0 < p.min() < 0.01 and 0.9 < p.max() < 1
    lowest = raw <= cal.X_thresholds_[1]
    assert y[lowest].sum() == 0  # the block the plain fit would have set to 0
    assert p.min() == pytest.approx(0.5 / (lowest.sum() + 1), rel=0.05)
