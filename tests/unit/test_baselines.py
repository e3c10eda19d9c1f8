from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from forecast.models.baselines import (
    C_GRID,
    BaseRateClassifier,
    LogisticBaseline,
    NaiveBayesBaseline,
    StageWinRateBaseline,
)


@pytest.fixture(scope="module")
def synthetic() -> tuple[pd.DataFrame, np.ndarray]:
    """Leads whose win odds depend on source, a numeric score and stage; with NaNs sprinkled in."""
    rng = np.random.default_rng(11)
    n = 3000
    source = rng.choice(["web", "referral", "event", "cold"], n, p=[0.4, 0.2, 0.2, 0.2])
    stage = rng.choice(["new", "qualified", "proposal"], n)
    score = rng.normal(size=n)
    logit = (
        -0.5 + 1.2 * score + pd.Series(source).map({"web": 0.0, "referral": 1.5, "event": 0.5, "cold": -1.5})
    )
    logit += pd.Series(stage).map({"new": -0.5, "qualified": 0.0, "proposal": 1.0})
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    features = pd.DataFrame(
        {
            "source": source,
            "stage": pd.Categorical(stage),
            "score": score,
            "employees": pd.array(rng.integers(1, 500, n), dtype="Int64"),
            "has_phone": rng.uniform(size=n) < 0.5,
        }
    )
    features.loc[rng.uniform(size=n) < 0.05, "source"] = None
    features.loc[rng.uniform(size=n) < 0.05, "score"] = np.nan
    features.loc[rng.uniform(size=n) < 0.05, "employees"] = pd.NA
    return features, y


def all_baselines() -> list:
    return [
        BaseRateClassifier(),
        NaiveBayesBaseline(),
        LogisticBaseline(),
        LogisticBaseline(C=0.1),
        StageWinRateBaseline(),
    ]


def unseen_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": ["telepathy", None, "web"],
            "stage": ["negotiation", None, "new"],
            "score": [np.nan, 0.5, 100.0],
            "employees": pd.array([pd.NA, 3, 10], dtype="Int64"),
            "has_phone": [True, False, True],
        }
    )


# ---------------------------------------------------------------- common contract


@pytest.mark.parametrize("model", all_baselines(), ids=lambda m: repr(m))
def test_contract(model, synthetic: tuple[pd.DataFrame, np.ndarray]) -> None:
    features, y = synthetic
    with pytest.raises(NotFittedError):
        model.predict_proba(features)
    assert model.fit(features, y) is model
    proba = model.predict_proba(features)
    assert proba.shape == (len(features), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert model.classes_.tolist() == [0, 1]
    assert np.array_equal(model.predict(features), (proba[:, 1] >= 0.5).astype(int))
    # unseen categories and NaN at predict: no error, valid probabilities
    unseen = model.predict_proba(unseen_rows())
    assert np.isfinite(unseen).all()
    # deterministic
    again = clone(model).fit(features, y).predict_proba(features)
    assert np.array_equal(again, proba)


@pytest.mark.parametrize("model", all_baselines(), ids=lambda m: repr(m))
def test_pickle_round_trip(model, synthetic: tuple[pd.DataFrame, np.ndarray]) -> None:
    features, y = synthetic
    model.fit(features, y)
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(restored.predict_proba(features), model.predict_proba(features))


@pytest.mark.parametrize("model", all_baselines(), ids=lambda m: repr(m))
def test_clone_copies_params_not_state(model, synthetic: tuple[pd.DataFrame, np.ndarray]) -> None:
    features, y = synthetic
    model.fit(features, y)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "classes_")


def test_array_input_is_read_as_numbered_columns() -> None:
    # The scikit-learn contract (tests/unit/test_estimator_contract.py): numeric rows of any
    # array-like are columns x0, x1, ...; a frame keeps its names.
    model = StageWinRateBaseline(stage_column="x0").fit(np.array([[1.0], [1.0], [2.0]]), [0, 1, 1])
    assert model.n_features_in_ == 1 and not hasattr(model, "feature_names_in_")
    assert model.predict_proba(np.array([[2.0]]))[0, 1] > 0.5
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(np.zeros((2, 2)))


def test_length_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="same length"):
        BaseRateClassifier().fit(pd.DataFrame({"a": [1, 2]}), [0, 1, 1])


# ---------------------------------------------------------------- base rate


def test_base_rate_predicts_training_rate() -> None:
    features = pd.DataFrame({"a": range(8)})
    y = pd.Series([True, False, False, True, False, False, False, True], dtype="boolean")
    model = BaseRateClassifier().fit(features, y)
    assert model.rate_ == pytest.approx(3 / 8)
    assert np.allclose(model.predict_proba(pd.DataFrame({"a": [100, 200]}))[:, 1], 3 / 8)
    assert model.predict(features).tolist() == [0] * 8


def test_base_rate_single_class() -> None:
    model = BaseRateClassifier().fit(pd.DataFrame({"a": [1, 2]}), [1, 1])
    assert model.predict_proba(pd.DataFrame({"a": [3]})).tolist() == [[0.0, 1.0]]


# ---------------------------------------------------------------- naive Bayes


@pytest.fixture
def hand_frame() -> tuple[pd.DataFrame, list[int]]:
    features = pd.DataFrame(
        {
            "src": ["a", "a", "b", "b", "a", None],
            "tier": ["x", "y", "x", "y", "y", "x"],
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # numeric: ignored when categorical=None
        }
    )
    return features, [1, 1, 0, 1, 0, 0]


def test_naive_bayes_matches_hand_computation(hand_frame: tuple[pd.DataFrame, list[int]]) -> None:
    features, y = hand_frame
    model = NaiveBayesBaseline(alpha=1.0).fit(features, y)
    assert model.categorical_ == ["src", "tier"]
    # positives: src a, a, b; tier x, y, y.  negatives: src b, a, (missing); tier x, y, x.
    # src: 2 levels, 3 positives and 2 negatives with a value.  tier: 2 levels, 3 and 3.
    p_src_a_pos, p_src_a_neg = (2 + 1) / (3 + 2), (1 + 1) / (2 + 2)
    p_tier_x_pos, p_tier_x_neg = (1 + 1) / (3 + 2), (2 + 1) / (3 + 2)
    prior = 3 / 6
    log_pos = math.log(prior) + math.log(p_src_a_pos) + math.log(p_tier_x_pos)
    log_neg = math.log(1 - prior) + math.log(p_src_a_neg) + math.log(p_tier_x_neg)
    expected = math.exp(log_pos) / (math.exp(log_pos) + math.exp(log_neg))
    row = pd.DataFrame({"src": ["a"], "tier": ["x"], "amount": [0.0]})
    assert model.predict_proba(row)[0, 1] == pytest.approx(expected)
    assert model.decision_function(row)[0] == pytest.approx(log_pos - log_neg)
    assert model.tables_["src"].loc["a", "n_pos"] == 2


def test_naive_bayes_skips_missing_and_unseen_values(hand_frame: tuple[pd.DataFrame, list[int]]) -> None:
    features, y = hand_frame
    model = NaiveBayesBaseline().fit(features, y)
    rows = pd.DataFrame({"src": [None, "zzz", np.nan], "tier": ["y", "y", None], "amount": [0.0, 0.0, 0.0]})
    p_tier_y_pos, p_tier_y_neg = (2 + 1) / 5, (1 + 1) / 5
    only_tier = p_tier_y_pos / (p_tier_y_pos + p_tier_y_neg)
    assert model.predict_proba(rows)[:, 1] == pytest.approx([only_tier, only_tier, 0.5])


def test_naive_bayes_category_dtype_matches_object(hand_frame: tuple[pd.DataFrame, list[int]]) -> None:
    features, y = hand_frame
    model = NaiveBayesBaseline().fit(features, y)
    as_category = features.astype({"src": "category", "tier": "category"})
    assert np.allclose(model.predict_proba(as_category), model.predict_proba(features))


def test_naive_bayes_explicit_fields_and_bad_alpha(hand_frame: tuple[pd.DataFrame, list[int]]) -> None:
    features, y = hand_frame
    model = NaiveBayesBaseline(categorical=["tier"]).fit(features, y)
    assert list(model.tables_) == ["tier"]
    with pytest.raises(ValueError, match="alpha"):
        NaiveBayesBaseline(alpha=0).fit(features, y)
    with pytest.raises(ValueError, match="lacks"):
        NaiveBayesBaseline(categorical=["nope"]).fit(features, y)


# ---------------------------------------------------------------- logistic


def test_logistic_beats_base_rate(synthetic: tuple[pd.DataFrame, np.ndarray]) -> None:
    features, y = synthetic
    train, test = slice(0, 2000), slice(2000, None)
    base = BaseRateClassifier().fit(features.iloc[train], y[train])
    logistic = LogisticBaseline().fit(features.iloc[train], y[train])
    auc_base = roc_auc_score(y[test], base.predict_proba(features.iloc[test])[:, 1])
    auc_logistic = roc_auc_score(y[test], logistic.predict_proba(features.iloc[test])[:, 1])
    assert auc_base == 0.5
    assert auc_logistic > 0.75


def test_logistic_infers_columns_and_drops_empty_ones(synthetic: tuple[pd.DataFrame, np.ndarray]) -> None:
    features, y = synthetic
    features = features.assign(empty=np.nan, when=pd.Timestamp("2024-01-01"))
    model = LogisticBaseline().fit(features, y)
    assert model.categorical_ == ["source", "stage", "has_phone"]
    assert model.numeric_ == ["score", "employees"]
    assert model.dropped_columns_ == ["empty"]
    coefficients = model.coefficients()
    assert "numeric__score" in coefficients.index
    assert coefficients["numeric__score"] > 0


def test_logistic_small_c_shrinks_coefficients(synthetic: tuple[pd.DataFrame, np.ndarray]) -> None:
    features, y = synthetic
    strong = LogisticBaseline(C=1.0).fit(features.head(200), y[:200]).coefficients()
    small = LogisticBaseline(C=0.01).fit(features.head(200), y[:200]).coefficients()
    assert small.abs().sum() < strong.abs().sum()


def test_logistic_needs_two_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        LogisticBaseline().fit(pd.DataFrame({"a": [1.0, 2.0]}), [0, 0])


# ---------------------------------------------------------------- stage win rate


def test_stage_win_rate_shrunk_rates() -> None:
    features = pd.DataFrame({"stage": ["s1"] * 4 + ["s2"] * 2 + [None] * 2})
    y = [1, 1, 1, 0, 0, 0, 1, 0]
    model = StageWinRateBaseline(alpha=2.0).fit(features, y)
    overall = 4 / 8
    assert model.overall_rate_ == overall
    assert model.stage_rates_["s1"] == pytest.approx((3 + 2 * overall) / (4 + 2))
    assert model.stage_rates_["s2"] == pytest.approx((0 + 2 * overall) / (2 + 2))
    rows = pd.DataFrame({"stage": pd.Categorical(["s1", "s2", "s9", None])})
    assert model.predict_proba(rows)[:, 1] == pytest.approx([4 / 6, 1 / 4, overall, overall])
    raw = StageWinRateBaseline(alpha=0).fit(features, y)
    assert raw.stage_rates_.to_dict() == {"s1": 0.75, "s2": 0.0}


def test_stage_win_rate_custom_column_and_missing_column() -> None:
    features = pd.DataFrame({"phase": ["a", "b"]})
    assert StageWinRateBaseline(stage_column="phase").fit(features, [1, 0]).stage_rates_.size == 2
    with pytest.raises(ValueError, match="lacks"):
        StageWinRateBaseline().fit(features, [1, 0])


def test_naive_bayes_with_an_all_missing_field_is_quiet() -> None:
    """A field missing in every row carries no evidence and no divide-by-zero warning."""
    import warnings

    x = pd.DataFrame({"a": ["x", "y", "x", "y"], "b": [None] * 4}, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model = NaiveBayesBaseline(categorical=["a", "b"]).fit(x, np.array([1, 0, 1, 0]))
        p = model.predict_proba(x)[:, 1]
    assert p[0] > 0.5 > p[1]


def _snapshots_of_entities(
    seed: int, entities: int, copies: int, noise_columns: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Entities repeated as near-identical rows (weekly snapshots), one signal column, many noise ones."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=entities)
    y_entity = (rng.uniform(size=entities) < 1 / (1 + np.exp(-signal))).astype(int)
    noise = rng.normal(size=(entities, noise_columns))
    ids = np.repeat(np.arange(entities), copies)
    x = np.column_stack([signal, noise])[ids] + rng.normal(
        scale=0.01, size=(entities * copies, noise_columns + 1)
    )
    frame = pd.DataFrame(x, columns=["signal"] + [f"n{i}" for i in range(noise_columns)])
    return frame, y_entity[ids], ids


def test_logistic_cv_chooses_c_by_whole_entities_and_generalises_better() -> None:
    x, y, ids = _snapshots_of_entities(0, 300, 8, 60)
    x_new, y_new, _ = _snapshots_of_entities(1, 2000, 1, 60)
    fixed = LogisticBaseline(C=1.0).fit(x, y)
    tuned = LogisticBaseline(C="cv").fit(x, y, groups=ids)
    assert set(tuned.cv_log_loss_) == {0.001, 0.01, 0.1, 1.0}
    assert tuned.C_ < 1.0
    assert tuned.cv_log_loss_[tuned.C_] == min(tuned.cv_log_loss_.values())

    def loss(model: LogisticBaseline) -> float:
        p = np.clip(model.predict_proba(x_new)[:, 1], 1e-9, 1 - 1e-9)
        return float(-np.mean(y_new * np.log(p) + (1 - y_new) * np.log(1 - p)))

    assert loss(tuned) < loss(fixed) - 0.02
    assert fixed.C_ == 1.0 and fixed.cv_log_loss_ == {}


def test_logistic_cv_losses_are_those_of_a_whole_pipeline_per_c_and_fold() -> None:
    """The preprocessing fitted once per fold gives each C exactly its own pipeline's losses."""
    from sklearn.metrics import log_loss
    from sklearn.model_selection import GroupKFold

    x, y, ids = _snapshots_of_entities(3, 120, 4, 5)
    x = x.assign(
        region=np.where(x["n0"] > 0, "north", "south"),
        tier=pd.Series(np.where(x["n1"] > 0.5, "a", None)).where(x["n2"] > -1.5, "rare"),
    )
    x.loc[x["n3"] > 1.2, "n4"] = np.nan  # a missing numeric value gets its indicator
    # the second case: every positive in one large entity, so that the folds without it train on
    # one class and predict its rate
    lone = ids.copy()
    lone[y == 1] = -1
    one_class_folds = {}
    for name, groups in (("entities", ids), ("positives together", lone)):
        tuned = LogisticBaseline(C="cv", categorical=["region", "tier"]).fit(x, y, groups=groups)
        assert set(tuned.cv_log_loss_) == set(C_GRID)
        one_class_folds[name] = sum(
            np.unique(y[train]).size < 2 for train, _ in GroupKFold(n_splits=3).split(x, y, groups)
        )
        for c, got in tuned.cv_log_loss_.items():
            oof = np.empty(len(y))
            for train, held in GroupKFold(n_splits=3).split(x, y, groups):
                if np.unique(y[train]).size < 2:
                    oof[held] = y[train].mean()
                    continue
                whole = tuned._build_pipeline(c).fit(x.iloc[train], y[train])
                oof[held] = whole.predict_proba(x.iloc[held])[:, 1]
            assert got == float(log_loss(y, np.clip(oof, 1e-6, 1 - 1e-6), labels=[0, 1]))
    assert one_class_folds == {"entities": 0, "positives together": 1}


def test_logistic_refuses_an_unknown_c_rule_and_misaligned_groups() -> None:
    x, y, ids = _snapshots_of_entities(2, 40, 2, 2)
    with pytest.raises(ValueError, match="'cv'"):
        LogisticBaseline(C="auto").fit(x, y)
    with pytest.raises(ValueError, match="groups has 3 values"):
        LogisticBaseline(C="cv").fit(x, y, groups=ids[:3])
