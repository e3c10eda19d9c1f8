"""TreeSHAP by split pattern (``forecast.scoring.pattern_shap``) gives LightGBM's ``pred_contrib`` values."""

from __future__ import annotations

import itertools
import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from forecast.models.pipeline import CalibratedLGBMClassifier, build_pipeline, fit_pipeline
from forecast.scoring import fastpath, pattern_shap
from forecast.scoring.frame import fast_proba_and_reason_array, fast_proba_and_reasons
from forecast.scoring.pattern_shap import PatternShap, _product_game, tree_contributions
from forecast.scoring.pattern_shap import pattern_shap as engine_of

PARAMS = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1, "seed": 0}


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with missing values and ties, zeros, infinities, and two category codes columns."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    x[:, 1] = np.round(x[:, 1] * 2)  # ties and exact zeros
    x[rng.random((n, 8)) < 0.15] = np.nan
    x[:, 6] = rng.integers(0, 9, n)  # category codes
    x[rng.random(n) < 0.1, 6] = np.nan
    x[:, 7] = rng.integers(0, 4, n)
    logit = np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 1]) + np.isin(x[:, 6], [2, 5]) + np.isnan(x[:, 2])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def _booster(rounds: int = 40, seed: int = 0, **params: object) -> lgb.Booster:
    x, y = _data(3_000, seed)
    data = lgb.Dataset(x, y, categorical_feature=[6, 7])
    return lgb.train({**PARAMS, "min_data_per_group": 5, "cat_smooth": 1, **params}, data, rounds)


def _rows(n: int = 2_500, seed: int = 1) -> np.ndarray:
    x, _ = _data(n, seed)
    x[:5, 0] = [np.inf, -np.inf, 0.0, 1e-40, -1e-40]  # beyond the thresholds and within the zero band
    x[5:8, 6] = [-1.0, 99.0, 0.5]  # a negative code, a code no split has seen, a fraction
    return x


def _exact(booster: lgb.Booster, rows: np.ndarray, trees: int | None = None) -> np.ndarray:
    return np.asarray(booster.predict(rows, num_iteration=trees, pred_contrib=True, num_threads=1))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"zero_as_missing": True},  # splits whose missing type is Zero
        {"use_missing": False},  # missing values taken as zero
        {"monotone_constraints": [1, -1, 0, 0, 0, 0, 0, 0], "monotone_constraints_method": "intermediate"},
        {"num_leaves": 63, "min_data_in_leaf": 5},  # more than 16 splits a tree (wider patterns)
    ],
)
def test_values_are_treeshap_and_add_up_to_the_raw_score(params: dict[str, object]) -> None:
    booster = _booster(**params)
    rows = _rows()
    engine = PatternShap(booster, booster.num_trees())
    engine.self_check()
    fast = engine.contributions(rows)
    np.testing.assert_allclose(fast, _exact(booster, rows), rtol=0.0, atol=1e-12)
    raw = booster.predict(rows, raw_score=True, num_threads=1)
    np.testing.assert_allclose(fast.sum(axis=1), raw, rtol=0.0, atol=1e-9)


def test_cached_patterns_give_the_same_values_on_later_calls() -> None:
    booster = _booster()
    engine = PatternShap(booster, booster.num_trees())
    first, second = _rows(seed=1), _rows(seed=2)
    engine.contributions(first)
    assert engine._stored > 0
    np.testing.assert_allclose(engine.contributions(second), _exact(booster, second), rtol=0.0, atol=1e-12)
    np.testing.assert_allclose(engine.contributions(first), _exact(booster, first), rtol=0.0, atol=1e-12)


def test_a_tree_count_below_the_booster_s_and_a_single_leaf_tree() -> None:
    booster = _booster(rounds=30)
    rows = _rows()
    engine = PatternShap(booster, 12)
    np.testing.assert_allclose(engine.contributions(rows), _exact(booster, rows, 12), rtol=0.0, atol=1e-12)
    x, _ = _data(500, 0)
    single = lgb.train({**PARAMS, "min_data_in_leaf": 10_000}, lgb.Dataset(x, np.arange(500) % 2), 3)
    assert single.dump_model()["tree_info"][0]["num_leaves"] == 1
    lone = PatternShap(single, single.num_trees())
    lone.self_check()
    np.testing.assert_allclose(lone.contributions(rows), _exact(single, rows), rtol=0.0, atol=1e-12)


def test_the_treeshap_setting_uses_pred_contrib_and_small_batches_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    booster = _booster()
    rows = _rows()
    calls: list[int] = []
    original = PatternShap.contributions

    def counted(self: PatternShap, r: np.ndarray) -> np.ndarray:
        calls.append(len(r))
        return original(self, r)

    monkeypatch.setattr(PatternShap, "contributions", counted)
    monkeypatch.setenv(pattern_shap.ENV, "treeshap")
    tree_contributions(booster, rows, None)
    tree_contributions(booster, rows[:10], None)
    assert calls == []
    monkeypatch.setenv(pattern_shap.ENV, "patterns")
    for n in (1, 10, pattern_shap.SMALL, pattern_shap.SMALL + 1, len(rows)):  # leaf tables: every size
        out = tree_contributions(booster, rows[:n], None)
        assert calls[-1] == n
        np.testing.assert_allclose(out, _exact(booster, rows[:n]), rtol=0.0, atol=1e-12)
    monkeypatch.setenv(pattern_shap.ENV, "approximate")
    with pytest.raises(ValueError, match=pattern_shap.ENV):
        tree_contributions(booster, rows, None)


def test_small_batches_without_leaf_tables_use_pred_contrib(monkeypatch: pytest.MonkeyPatch) -> None:
    booster = _booster(rounds=12)
    engine = engine_of(booster, None)
    assert engine is not None
    monkeypatch.setattr(engine, "_leaf", None)
    monkeypatch.setattr(
        PatternShap,
        "contributions",
        lambda self, r: pytest.fail("the engine was used"),
    )
    rows = _rows(n=pattern_shap.MIN_ROWS - 1)
    np.testing.assert_allclose(tree_contributions(booster, rows, None), _exact(booster, rows), atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 33, 64])
def test_small_batches_known_and_new_patterns(n: int) -> None:
    """The small-batch path: new patterns, then the same rows again (known), then a full store."""
    booster = _booster()
    engine = PatternShap(booster, booster.num_trees())
    rows = _rows(n=200, seed=n)[:n]
    for _ in range(2):
        np.testing.assert_allclose(engine.contributions(rows), _exact(booster, rows), rtol=0.0, atol=1e-12)
    fresh = PatternShap(booster, booster.num_trees())
    original = pattern_shap.CACHE_ENTRIES
    try:
        pattern_shap.CACHE_ENTRIES = 0  # nothing can be kept
        np.testing.assert_allclose(fresh.contributions(rows), _exact(booster, rows), rtol=0.0, atol=1e-12)
    finally:
        pattern_shap.CACHE_ENTRIES = original
    assert fresh._stored == 0


def test_engine_is_built_once_per_booster_and_tree_count() -> None:
    booster = _booster(rounds=10)
    assert engine_of(booster, 10) is engine_of(booster, None)
    assert engine_of(booster, 5) is not engine_of(booster, 10)


def _pipeline_rows(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(2, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    x = pd.DataFrame(
        {
            "visits": visits,
            "noise": rng.normal(size=n),
            "booked": rng.random(n) < 0.4,
            "source": rng.choice(["web", "referral", "cold_call", None], n),
            "age_days": rng.uniform(0, 100, n),
        }
    )
    logit = (
        -1.0
        + 0.5 * np.nan_to_num(visits)
        + np.where(x["source"] == "referral", 1.0, 0.0)
        - 0.01 * x["age_days"]
    )
    return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def test_pipeline_reasons_are_those_of_pred_contrib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring with reasons: the same top-3 reasons up and down either way, on every row."""
    x, y = _pipeline_rows(4_000, 0)
    model = CalibratedLGBMClassifier(n_estimators=60, num_leaves=15, monotone_increasing=("visits",))
    pipeline = fit_pipeline(
        build_pipeline(list(x.columns), ["source"], model), x[:3000], y[:3000], x[3000:], y[3000:]
    )
    fast = fastpath.coded(pipeline)
    assert fast is not None
    fitted = pipeline.steps[-1][1]
    assert engine_of(fitted.model_.booster_, fitted.best_iteration_) is not None  # not a fallback
    rows, _ = _pipeline_rows(3_000, 1)
    codes = fast.encode(rows)
    monkeypatch.setenv(pattern_shap.ENV, "treeshap")
    exact = fast.contributions(codes)
    p_exact, why_exact = fast_proba_and_reasons(fast, rows, {}, {"source": "categorical"})
    monkeypatch.setenv(pattern_shap.ENV, "patterns")
    quick = fast.contributions(codes)
    p_quick, why_quick = fast_proba_and_reasons(fast, rows, {}, {"source": "categorical"})
    np.testing.assert_allclose(quick, exact, rtol=0.0, atol=1e-12)
    np.testing.assert_array_equal(p_quick, p_exact)
    pd.testing.assert_frame_equal(why_quick, why_exact)


def test_leaf_tables_give_lightgbm_s_values_without_calling_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """New patterns are valued from the per-leaf tables (no per-tree ``pred_contrib``), the same numbers."""
    booster = _booster()
    rows = _rows()
    engine = PatternShap(booster, booster.num_trees())
    assert engine._leaf is not None
    without = PatternShap(booster, booster.num_trees(), leaf_tables=False)
    assert without._leaf is None
    calls: list[dict[str, object]] = []
    predict = lgb.Booster.predict

    def counted(self: lgb.Booster, data: object, *args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        return predict(self, data, *args, **kwargs)

    monkeypatch.setattr(lgb.Booster, "predict", counted)
    fast = engine.contributions(rows)
    assert not calls
    np.testing.assert_allclose(fast, without.contributions(rows), rtol=0.0, atol=1e-12)
    np.testing.assert_allclose(fast, _exact(booster, rows), rtol=0.0, atol=1e-12)


def test_product_game_is_the_shapley_value_by_enumeration() -> None:
    """Each table entry is the Shapley value of v * prod_j (j in S ? o_j : z_j), summed over subsets."""
    rng = np.random.default_rng(3)
    u = 4
    values, zeros = rng.normal(size=2), rng.uniform(0.05, 1.0, size=(2, u))
    table = _product_game(values, zeros, u)
    for leaf, agreement in itertools.product(range(2), range(1 << u)):
        ones = [(agreement >> j) & 1 for j in range(u)]

        def game(subset: tuple[int, ...], leaf: int = leaf, ones: list[int] = ones) -> float:
            return float(
                values[leaf] * np.prod([ones[j] if j in subset else zeros[leaf, j] for j in range(u)])
            )

        for i in range(u):
            others = [j for j in range(u) if j != i]
            shapley = sum(
                math.factorial(len(s))
                * math.factorial(u - len(s) - 1)
                / math.factorial(u)
                * (game((*s, i)) - game(s))
                for k in range(u)
                for s in itertools.combinations(others, k)
            )
            assert table[leaf, agreement, i] == pytest.approx(shapley, abs=1e-12)


def test_reason_array_is_the_reason_frame() -> None:
    """What a request of a few records gets (an object array) is the frame's reasons, row by row."""
    x, y = _pipeline_rows(3_000, 0)
    model = CalibratedLGBMClassifier(n_estimators=30, num_leaves=15)
    pipeline = fit_pipeline(
        build_pipeline(list(x.columns), ["source"], model), x[:2000], y[:2000], x[2000:], y[2000:]
    )
    fast = fastpath.coded(pipeline)
    assert fast is not None
    rows, _ = _pipeline_rows(40, 2)
    descriptions = {"visits": "pricing-page visits", "age_days": "days since the lead was created"}
    for chunk in (rows, rows.iloc[[3]]):
        p_frame, frame = fast_proba_and_reasons(fast, chunk, descriptions, {"source": "categorical"})
        p_array, array = fast_proba_and_reason_array(fast, chunk, descriptions, {"source": "categorical"})
        np.testing.assert_array_equal(p_array, p_frame)
        assert array.shape == frame.shape
        assert array.tolist() == frame.to_numpy().tolist()


@pytest.mark.parametrize("n", [1, 40, 2_500])
def test_the_trees_summed_outputs_are_lightgbm_s_raw_scores(n: int) -> None:
    booster = _booster()
    engine = PatternShap(booster, booster.num_trees())
    engine.self_check()
    assert engine.raw_ok
    rows = _rows()[:n]
    values, raw = engine.contributions_and_raw(rows)
    np.testing.assert_array_equal(raw, booster.predict(rows, raw_score=True, num_threads=1))
    np.testing.assert_allclose(values, _exact(booster, rows), rtol=0.0, atol=1e-12)
    without = PatternShap(booster, booster.num_trees(), leaf_tables=False)
    assert without.contributions_and_raw(rows)[1] is None
