"""The blend's hazard on the array path returns the frame path's numbers to the last bit.

The hazard's interval rows are scored from one split pattern per deal and tree
(:mod:`forecast.scoring.interval_trees`) and a few rows' curves are calibrated at every edge at
once (``survival._StackedInterpolation``); the blended ``p_win`` of the array path must stay the
frame path's (LightGBM's interval rows, one interpolation per edge), one deal at a time and in
batches of every size the engine treats differently.
"""

from __future__ import annotations

import copy
import gc
import weakref

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from forecast.models.pipeline import CalibratedLGBMClassifier, build_pipeline, fit_pipeline
from forecast.models.survival import (
    STACKED_ROWS,
    CurveCalibrationSet,
    DiscreteTimeHazard,
    _stacked_interpolation,
    survival_at,
)
from forecast.models.win_blend import HazardBlendedClassifier, blended_pipeline
from forecast.scoring import fastpath, interval_trees, pattern_shap

CATEGORICAL = ["source", "size"]
DAYS = 50.0  # between two edges: the incidence is interpolated inside an interval


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(2, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "visits": visits,
            "noise": rng.normal(size=n),
            "source": rng.choice(["web", "referral", "cold_call"], n, p=[0.5, 0.3, 0.2]),
            "size": rng.choice(["1-10", "11-50", "51-200", None], n),
            "age_days": np.where(rng.random(n) < 0.25, 0.0, rng.uniform(7, 100, n)),
        }
    )


def _awkward(x: pd.DataFrame) -> pd.DataFrame:
    """Missing and unseen categories, missing, zero, tiny, negative and huge numbers."""
    out = x.copy()
    out["source"] = out["source"].astype(object)
    out.loc[out.index[0], "source"] = None
    out.loc[out.index[1], "source"] = "never_seen"
    out.loc[out.index[2], ["visits", "noise"]] = np.nan
    out.loc[out.index[3], ["visits", "noise"]] = [0.0, 1e-40]
    out.loc[out.index[4], ["visits", "noise"]] = [-5.0, 1e12]
    return out


@pytest.fixture(scope="module")
def blend() -> tuple[Pipeline, pd.DataFrame]:
    """A fitted classifier blended with a calibrated competing-risks hazard on its encoded columns."""
    x = _frame(5_000, 0)
    rng = np.random.default_rng(0)
    referral = (x["source"] == "referral").to_numpy()
    t = rng.exponential(np.where(referral, 15.0, 45.0))
    c = rng.uniform(5, 150, len(x))
    d, e = np.minimum(t, c), t <= c
    won = rng.random(len(x)) < np.where(referral, 0.7, 0.35)
    causes = np.where(won, 1, 2)
    y = (e & (d <= DAYS) & won).astype(int)
    columns = list(x.columns)
    classifier = fit_pipeline(
        build_pipeline(columns, CATEGORICAL, CalibratedLGBMClassifier(n_estimators=30, random_state=0)),
        x[:3500],
        y[:3500],
        x[3500:],
        y[3500:],
    )
    encoded = classifier[:-1].transform(x)
    hazard = DiscreteTimeHazard(n_estimators=30, random_state=0)
    hazard.fit(encoded, d, e, causes=causes)
    closed_by, won_by = hazard.raw_curves(encoded)
    followup = np.full(len(x), 400.0)
    calibration = CurveCalibrationSet(closed_by, won_by, d, e, followup, causes=causes, min_rows=50)
    hazard.fit(encoded, d, e, causes=causes, calibration_set=calibration)
    return blended_pipeline(classifier, hazard, 0.5, DAYS), _awkward(_frame(400, 1))


def _batches(rows: pd.DataFrame) -> list[pd.DataFrame]:
    """Each awkward row alone, a few rows, more than the small-batch size, more than a block."""
    sizes = [5, interval_trees.SMALL + 3, interval_trees.BLOCK + 40]
    return [*(rows.iloc[[i]] for i in range(8)), *(rows.iloc[:n] for n in sizes)]


def test_the_interval_rows_are_lightgbm_s_to_the_last_bit(blend: tuple[Pipeline, pd.DataFrame]) -> None:
    pipe, rows = blend
    hazard = pipe.steps[-1][1].hazard_
    fast = fastpath.coded(pipe)
    assert fast is not None
    for k in (3, len(hazard.edges) - 1):
        engine = interval_trees.interval_trees(hazard.model_.booster_, hazard.best_iteration_, k)
        assert engine is not None, "the engine must reproduce this booster"
        for batch in _batches(rows):
            codes = fast.encode(batch)
            np.testing.assert_array_equal(engine.proba(codes), hazard.interval_proba_codes(codes, k))


def test_the_fast_blend_is_the_frame_path_one_deal_at_a_time_and_in_batches(
    blend: tuple[Pipeline, pd.DataFrame],
) -> None:
    pipe, rows = blend
    fast = fastpath.coded(pipe)
    assert fast is not None and isinstance(fast.model, HazardBlendedClassifier)
    assert fast.hazard_trees is not None, "the blend's hazard must take the pattern engine"
    for batch in _batches(rows):
        expected = pipe.predict_proba(batch)
        codes = fast.encode(batch)
        np.testing.assert_array_equal(fast.predict_proba(codes), expected)
        np.testing.assert_array_equal(fast.proba_and_contributions(codes)[0], expected)
        np.testing.assert_array_equal(fastpath.predict_proba(pipe, batch), expected)


def test_a_diverging_engine_would_be_seen(blend: tuple[Pipeline, pd.DataFrame]) -> None:
    """The equality above reads the engine: its "won" trees' leaves shifted, the fast path's p_win moves."""
    pipe, rows = blend
    fast = fastpath.coded(pipe)
    assert fast is not None and fast.hazard_trees is not None
    engine = fast.hazard_trees
    shifted = copy.copy(engine)
    shifted.values = engine.values.copy()
    shifted.values.reshape(engine.trees, -1)[1 :: engine.classes] += 0.05  # class 1 (won) only
    codes = fast.encode(rows.iloc[:3])
    try:
        fast.hazard_trees = shifted
        moved = fast.predict_proba(codes)
    finally:
        fast.hazard_trees = engine
    assert not np.array_equal(moved, pipe.predict_proba(rows.iloc[:3]))
    np.testing.assert_array_equal(fast.predict_proba(codes), pipe.predict_proba(rows.iloc[:3]))


def test_a_few_rows_are_calibrated_as_one_edge_at_a_time(blend: tuple[Pipeline, pd.DataFrame]) -> None:
    """Rows at every calibration threshold, between them and beyond both ends: stacked or not, the same."""
    pipe, rows = blend
    hazard: DiscreteTimeHazard = pipe.steps[-1][1].hazard_
    closed_by, won_by = hazard.raw_curves(pipe[:-1].transform(rows))
    for name, curve in (("closed", closed_by), ("won", won_by)):
        assert curve is not None
        probe = curve.copy()
        for j, iso in enumerate(hazard.calibrators_[name]):
            if iso is not None:
                x = np.asarray(iso.X_thresholds_)
                values = np.concatenate([x, (x[1:] + x[:-1]) / 2, [x[0] - 0.1, x[-1] + 0.1]])
                probe[:, j] = np.resize(values, len(probe))
        assert len(probe) > STACKED_ROWS  # one interpolation per edge
        calibrators = (hazard.calibrators_[name],)
        assert _stacked_interpolation(hazard, calibrators, probe.shape[1]) is not None, "not stacked"
        whole = hazard._calibrated(probe, name)
        for i in range(0, 40):
            np.testing.assert_array_equal(hazard._calibrated(probe[i : i + 1], name), whole[i : i + 1])
        np.testing.assert_array_equal(hazard._calibrated(probe[:STACKED_ROWS], name), whole[:STACKED_ROWS])
    assert won_by is not None
    pair = (hazard.calibrators_["won"], hazard.calibrators_["closed"])
    assert _stacked_interpolation(hazard, pair, won_by.shape[1]) is not None, "not stacked"
    expected = np.minimum(hazard._calibrated(won_by, "won"), hazard._calibrated(closed_by, "closed"))
    for i in range(0, 40, 3):
        np.testing.assert_array_equal(
            hazard._won_incidence(closed_by[i : i + 3], won_by[i : i + 3]), expected[i : i + 3]
        )


@pytest.mark.parametrize("days", [-3.0, 0.0, 7.0, 29.5, 50.0, 98.0, 365.0, 500.0])
def test_the_incidence_is_read_where_survival_at_reads_it(days: float) -> None:
    hazard = DiscreteTimeHazard()
    edges = np.asarray(hazard.edges, dtype=float)
    k, at, frac = hazard.win_within_interval(days)
    assert 1 <= k <= len(edges) - 1 and edges[k] >= min(max(days, 0.0), edges[-1])
    curve = np.cumsum(np.random.default_rng(0).random((6, len(edges))), axis=1)
    expected = survival_at(curve[:, : k + 1], edges[: k + 1], days)
    np.testing.assert_array_equal(curve[:, at] + frac * (curve[:, at + 1] - curve[:, at]), expected)


def test_other_boosters_keep_lightgbm() -> None:
    x = _frame(2_000, 3)
    hazard = DiscreteTimeHazard(n_estimators=10, random_state=0)
    pipe = build_pipeline(list(x.columns), CATEGORICAL, hazard)
    encoded = pipe[:-1].fit(x).transform(x)
    rng = np.random.default_rng(3)
    hazard.fit(encoded, rng.uniform(1, 100, len(x)), rng.random(len(x)) < 0.7)  # no causes: binary
    assert interval_trees.interval_trees(hazard.model_.booster_, hazard.best_iteration_, 5) is None


def test_the_engine_does_not_keep_its_booster_alive(blend: tuple[Pipeline, pd.DataFrame]) -> None:
    """Its cache is keyed by the booster: a reloaded model's old booster must be freed."""
    pipe, _ = blend
    booster = lgb.Booster(model_str=pipe.steps[-1][1].hazard_.model_.booster_.model_to_string())
    assert interval_trees.interval_trees(booster, 0, 4) is not None
    ref = weakref.ref(booster)
    del booster
    gc.collect()
    assert ref() is None


def test_a_split_the_patterns_do_not_reproduce_keeps_lightgbm(
    blend: tuple[Pipeline, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pattern_shap's refusal of a split (its own exception) means LightGBM, not a failed model load."""
    pipe, _ = blend
    booster = lgb.Booster(model_str=pipe.steps[-1][1].hazard_.model_.booster_.model_to_string())

    def refuse(node: dict, values: np.ndarray) -> np.ndarray:
        raise pattern_shap._UnsupportedError("decision type")

    monkeypatch.setattr(interval_trees, "_goes_left", refuse)
    assert interval_trees.interval_trees(booster, 0, 4) is None


def test_p_win_past_the_label_horizon_takes_the_engine_too(blend: tuple[Pipeline, pd.DataFrame]) -> None:
    """With a tail (``p_win_days_``), one engine reads the intervals of both horizons."""
    pipe, rows = blend
    model = pipe.steps[-1][1]
    far = blended_pipeline(pipe, model.hazard_, model.hazard_weight_, DAYS, reach=100.0)
    fast = fastpath.coded(far)
    assert fast is not None and fast.hazard_trees is not None
    assert fast.hazard_trees.intervals == model.hazard_.win_within_interval(100.0)[0]
    for batch in _batches(rows):
        expected = far.predict_proba(batch)
        codes = fast.encode(batch)
        np.testing.assert_array_equal(fast.predict_proba(codes), expected)
        np.testing.assert_array_equal(fast.proba_and_contributions(codes)[0], expected)
    assert not np.array_equal(far.predict_proba(rows), pipe.predict_proba(rows))  # the tail is added


def test_a_hazard_with_wide_trees_keeps_lightgbm_and_the_array_path_still_serves(
    blend: tuple[Pipeline, pd.DataFrame],
) -> None:
    """Trees of 64 leaves or more (another CRM's num_leaves) overflow no table: LightGBM reads them."""
    pipe, rows = blend
    classifier = pipe.steps[-1][1]
    x = _frame(5_000, 0)
    encoded = pipe[:-1].transform(x)
    rng = np.random.default_rng(4)
    d, e = rng.uniform(1, 150, len(x)), rng.random(len(x)) < 0.8
    hazard = DiscreteTimeHazard(n_estimators=5, num_leaves=100, min_child_samples=2, random_state=0)
    hazard.fit(encoded, d, e, causes=np.where(rng.random(len(x)) < 0.4, 1, 2))
    booster = hazard.model_.booster_
    assert max(t["num_leaves"] for t in booster.dump_model()["tree_info"]) >= 64
    assert interval_trees.interval_trees(booster, hazard.best_iteration_, 5) is None
    wide = blended_pipeline(pipe, hazard, classifier.hazard_weight_, DAYS)
    fast = fastpath.coded(wide)
    assert fast is not None and fast.hazard_trees is None  # the model loads; LightGBM reads the hazard
    for batch in _batches(rows):
        expected = wide.predict_proba(batch)
        np.testing.assert_array_equal(fast.predict_proba(fast.encode(batch)), expected)
