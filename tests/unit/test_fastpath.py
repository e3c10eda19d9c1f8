"""The array path (``forecast.scoring.fastpath``) returns exactly what the frame path returned before."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from forecast.models.baselines import LogisticBaseline
from forecast.models.pipeline import (
    OTHER,
    CalibratedLGBMClassifier,
    CategoryEncoder,
    build_pipeline,
    fit_pipeline,
    isotonic_predict,
    sigmoid_predict,
)
from forecast.models.survival import INTERVAL, CurveCalibrationSet, DiscreteTimeHazard
from forecast.registry import LoadedModel
from forecast.scoring import fastpath
from forecast.scoring.bands import band_of
from forecast.scoring.contributions import contributions
from forecast.scoring.frame import score_frame
from forecast.scoring.reasons import reason_codes, reasons_from_contributions

CATEGORICAL = ["source", "size", "flag_text"]


def _legacy_transform(encoder: CategoryEncoder, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """``CategoryEncoder.transform`` as it was before the array path (the reference)."""
    out: dict[str, Any] = {}
    for col in X.columns:
        if col in encoder.levels_:
            text = X[col].astype(object).where(X[col].notna(), None)
            text = text.map(lambda v: v if v is None or isinstance(v, str) else str(v))
            pooled = text.where(~text.isin(encoder.rare_[col]), OTHER)
            out[col] = pd.Categorical(pooled, categories=encoder.levels_[col])
        else:
            out[col] = pd.to_numeric(X[col], errors="coerce").astype("float64")
    return pd.DataFrame(out, index=X.index)


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers with gaps, a bool, categories with rare levels, and a creation-row column."""
    rng = np.random.default_rng(seed)
    visits = rng.poisson(2, n).astype(float)
    visits[rng.random(n) < 0.1] = np.nan
    x = pd.DataFrame(
        {
            "visits": visits,
            "noise": rng.normal(size=n),
            "booked": rng.random(n) < 0.4,
            "source": rng.choice(
                ["web", "referral", "cold_call", "rare_one"], n, p=[0.5, 0.3, 0.1995, 0.0005]
            ),
            "size": rng.choice(["1-10", "11-50", "51-200", None], n),
            "flag_text": rng.choice(["yes", "no"], n),
            "age_days": np.where(rng.random(n) < 0.25, 0.0, rng.uniform(7, 100, n)),
        }
    )
    logit = -2.0 + 0.7 * np.nan_to_num(visits) + np.where(x["source"] == "referral", 1.0, 0.0) + x["booked"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def _awkward(x: pd.DataFrame) -> pd.DataFrame:
    """Missing values, NaN and None categories, unseen and rare levels, non-text categories."""
    out = x.copy()
    out["source"] = out["source"].astype(object)
    out.loc[out.index[0], "source"] = None
    out.loc[out.index[1], "source"] = np.nan
    out.loc[out.index[2], "source"] = "never_seen"
    out.loc[out.index[3], "source"] = "rare_one"
    out.loc[out.index[4], "source"] = 7  # not text: compared as "7"
    out.loc[out.index[5], "visits"] = np.nan
    out.loc[out.index[6], "size"] = OTHER
    out.loc[out.index[7], "age_days"] = np.nan
    return out


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    x, y = _frame(6_000, 0)
    xt, _ = _frame(300, 1)
    return x, y, _awkward(xt)


def _fit(x: pd.DataFrame, y: np.ndarray, model: Any) -> Pipeline:
    pipe = build_pipeline(list(x.columns), CATEGORICAL, model)
    return fit_pipeline(pipe, x[:4000], y[:4000], x[4000:], y[4000:])


@pytest.fixture(scope="module")
def plain(data: tuple) -> Pipeline:
    x, y, _ = data
    return _fit(x, y, CalibratedLGBMClassifier(n_estimators=60, random_state=0))


@pytest.fixture(scope="module")
def with_prior(data: tuple) -> Pipeline:
    x, y, _ = data
    model = CalibratedLGBMClassifier(
        n_estimators=60,
        prior_features=["source", "size", "visits", "booked"],
        prior_fit_column="age_days",
        prior_fit_max=0.01,
        prior_alone=True,
        random_state=0,
    )
    return _fit(x, y, model)


def _sizes(frame: pd.DataFrame) -> list[pd.DataFrame]:
    """One row, each awkward row alone, a small batch and many rows (both encoding paths)."""
    return [frame.iloc[[0]], *(frame.iloc[[i]] for i in range(1, 8)), frame.iloc[:32], frame]


def _legacy_proba(pipe: Pipeline, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    """Probabilities through the sklearn LightGBM wrapper on the legacy-encoded frame."""
    model = pipe.steps[-1][1]
    prepared = _legacy_transform(pipe.named_steps["categories"], pipe.named_steps["columns"].transform(X))
    trees = prepared.loc[:, model.tree_features_]
    if model.prior_ is None:
        raw = model.model_.predict_proba(trees, num_iteration=model.best_iteration_)[:, 1]
    else:
        margin = np.zeros(len(X))
        grown = ~model._alone_rows(prepared)
        if grown.any():
            margin[grown] = model.model_.predict(
                trees.loc[grown], num_iteration=model.best_iteration_, raw_score=True
            )
        raw = 1.0 / (1.0 + np.exp(-(margin + model._prior_logit(prepared))))
    return np.asarray(model._proba_from_raw(raw))


def test_encoder_matches_the_legacy_transform_on_awkward_frames() -> None:
    train = pd.DataFrame({"c": ["a"] * 20 + ["b"] * 3 + ["7"] * 12, "n": ["1"] * 35, "b": [True] * 35})
    enc = CategoryEncoder(["c", "b"], min_count=10).fit(train)
    frames = [
        pd.DataFrame(
            {"c": ["a", "b", "zzz", None, np.nan, 7, OTHER], "n": ["2", "x", "3", None, "1e3", "", "4"]}
        ),
        pd.DataFrame(
            {"c": pd.Categorical(["a", None, "b", "q"]), "n": pd.array([1, None, 3, 4], dtype="Int64")}
        ),
        pd.DataFrame({"c": pd.array(["a", None, "7", "b"], dtype="string"), "n": [True, False, True, False]}),
        pd.DataFrame({"c": [1.0, 7.0, np.nan, 7.5], "n": np.arange(4, dtype=np.int32)}),
    ]
    for frame in frames:
        frame = frame.assign(b=[True, False] * (len(frame) // 2) + [True] * (len(frame) % 2))
        for rows in (frame.iloc[:1], frame, pd.concat([frame] * 40, ignore_index=True)):  # 1, few, > 64
            expected = _legacy_transform(enc, rows)
            pd.testing.assert_frame_equal(enc.transform(rows), expected, check_exact=True)
            codes = enc.encode(rows)
            for j, col in enumerate(rows.columns):
                want = expected[col]
                if isinstance(want.dtype, pd.CategoricalDtype):
                    want = want.cat.codes.replace(-1, np.nan).astype(float)
                np.testing.assert_array_equal(codes[:, j], want.to_numpy(dtype=float))


def test_encoder_selects_columns_and_names_missing_ones() -> None:
    enc = CategoryEncoder(["c"], min_count=1).fit(pd.DataFrame({"c": ["a", "b"], "n": [1.0, 2.0]}))
    frame = pd.DataFrame({"extra": ["x"], "n": [5.0], "c": ["b"]})
    np.testing.assert_array_equal(enc.encode(frame, ["c", "n"]), [[1.0, 5.0]])
    with pytest.raises(KeyError, match="lacks the model's column"):
        enc.encode(frame, ["c", "gone"])


def test_lookup_tables_are_lazy_and_never_pickled() -> None:
    enc = CategoryEncoder(["c"], min_count=1).fit(pd.DataFrame({"c": ["a", "b"]}))
    enc.encode(pd.DataFrame({"c": ["a"]}))
    assert "_code_maps_cache" in enc.__dict__
    restored = pickle.loads(pickle.dumps(enc))
    assert "_code_maps_cache" not in restored.__dict__  # an old pickle looks exactly like this
    np.testing.assert_array_equal(restored.encode(pd.DataFrame({"c": ["b", None]})), [[1.0], [np.nan]])


@pytest.mark.parametrize("which", ["plain", "with_prior"])
def test_probabilities_are_those_of_the_legacy_path(
    which: str, data: tuple, request: pytest.FixtureRequest
) -> None:
    pipe: Pipeline = request.getfixturevalue(which)
    assert fastpath.coded(pipe) is not None
    for rows in _sizes(data[2]):
        fast = fastpath.predict_proba(pipe, rows)
        np.testing.assert_array_equal(fast, _legacy_proba(pipe, rows))
        np.testing.assert_array_equal(fast, pipe.predict_proba(rows))


@pytest.mark.parametrize("which", ["plain", "with_prior"])
def test_contributions_and_reasons_are_those_of_the_legacy_path(
    which: str, data: tuple, request: pytest.FixtureRequest
) -> None:
    pipe: Pipeline = request.getfixturevalue(which)
    model = pipe.steps[-1][1]
    descriptions = {
        "visits": "pricing-page visits",
        "source": "where the lead came from",
        "booked": "a demo is booked",
    }
    for rows in _sizes(data[2]):
        prepared = _legacy_transform(
            pipe.named_steps["categories"], pipe.named_steps["columns"].transform(rows)
        )
        legacy_trees = model.model_.booster_.predict(
            prepared.loc[:, model.tree_features_], num_iteration=model.best_iteration_, pred_contrib=True
        )
        expected = model._contributions_from(
            np.asarray(legacy_trees, dtype=np.float64),
            list(prepared.columns),
            model._alone_rows(prepared),
            None if model.prior_ is None else _prior_parts(model.prior_, prepared),
        )
        got = contributions(pipe, rows)
        # TreeSHAP by split pattern (every batch size): pred_contrib's values up to the order of additions
        np.testing.assert_allclose(got.to_numpy(), expected[:, :-1], rtol=0.0, atol=1e-12)
        legacy_frame = pd.DataFrame(expected[:, :-1], index=rows.index, columns=got.columns)
        pd.testing.assert_frame_equal(
            reason_codes(pipe, rows, descriptions, kinds={"source": "categorical"}),
            reasons_from_contributions(legacy_frame, rows, descriptions, kinds={"source": "categorical"}),
        )


def _prior_parts(prior: LogisticBaseline, prepared: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    from forecast.models.logistic_terms import logistic_contributions

    return logistic_contributions(prior, prepared, list(prepared.columns))


def test_booster_calls_equal_the_wrapper_calls(with_prior: Pipeline, data: tuple) -> None:
    model = with_prior.steps[-1][1]
    prepared = with_prior[:-1].transform(data[2]).loc[:, model.tree_features_]
    wrapper = model.model_.predict_proba(prepared, num_iteration=model.best_iteration_)[:, 1]
    np.testing.assert_array_equal(model._tree_predict(prepared), wrapper)
    codes = fastpath.coded(with_prior).encode(data[2])  # type: ignore[union-attr]
    np.testing.assert_array_equal(
        model._tree_predict(codes[:, fastpath.coded(with_prior).tree_index]), wrapper
    )  # type: ignore[union-attr]


def _hazard_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    x, _ = _frame(n, seed)
    rng = np.random.default_rng(seed)
    t = rng.exponential(np.where(x["source"] == "referral", 10.0, 40.0))
    c = rng.uniform(5, 120, n)
    return x, np.minimum(t, c), t <= c


@pytest.mark.parametrize("competing", [False, True])
def test_survival_curves_are_those_of_the_legacy_path(competing: bool, data: tuple) -> None:
    x, d, e = _hazard_data(3_000, 5)
    hazard = DiscreteTimeHazard(n_estimators=40, random_state=0)
    pipe = build_pipeline(list(x.columns), CATEGORICAL, hazard)
    prep = Pipeline(pipe.steps[:-1]).fit(x)
    causes = np.where(np.arange(len(x)) % 3 == 0, 2, 1) if competing else None
    hazard.fit(prep.transform(x), d, e, causes=causes)
    closed_by, won_by = hazard.raw_curves(prep.transform(x))
    calibration = CurveCalibrationSet(closed_by, won_by, d, e, np.full(len(x), 400.0), min_rows=50)
    hazard.fit(prep.transform(x), d, e, causes=causes, calibration_set=calibration)
    assert fastpath.coded(pipe) is not None
    for rows in _sizes(data[2]):
        prepared = _legacy_transform(
            pipe.named_steps["categories"], pipe.named_steps["columns"].transform(rows)
        )
        k = len(hazard.edges) - 1
        wide = prepared.iloc[np.repeat(np.arange(len(rows)), k)].reset_index(drop=True)
        wide[INTERVAL] = np.tile(np.arange(k, dtype=float), len(rows))
        p = hazard.model_.predict_proba(wide, num_iteration=hazard.best_iteration_).reshape(len(rows), k, -1)
        closed_by, _ = hazard._curves_from(p)
        expected = 1.0 - hazard._calibrated(closed_by, "closed")
        np.testing.assert_array_equal(fastpath.survival(pipe, rows), expected)
        np.testing.assert_array_equal(hazard.survival(prepared), expected)
        fast = fastpath.coded(pipe)
        assert fast is not None
        np.testing.assert_allclose(
            fast.hazard_contributions(fast.encode(rows)), hazard.contributions(prepared), rtol=0, atol=1e-12
        )


def test_other_pipelines_keep_the_frame_path(data: tuple) -> None:
    x, y, xt = data
    logistic = build_pipeline(list(x.columns), CATEGORICAL, LogisticBaseline(C=0.1))
    logistic.fit(x, y)
    assert fastpath.coded(logistic) is None
    np.testing.assert_array_equal(fastpath.predict_proba(logistic, xt), logistic.predict_proba(xt))
    assert fastpath.coded(CalibratedLGBMClassifier()) is None


def test_a_refitted_pipeline_is_not_served_from_the_cache(data: tuple) -> None:
    x, y, xt = data
    pipe = _fit(x, y, CalibratedLGBMClassifier(n_estimators=20, random_state=0))
    first = fastpath.coded(pipe)
    assert first is not None and fastpath.coded(pipe) is first
    fit_pipeline(pipe, x[:3000], y[:3000], x[3000:], y[3000:])
    assert fastpath.coded(pipe) is not first
    np.testing.assert_array_equal(fastpath.predict_proba(pipe, xt), _legacy_proba(pipe, xt))


def _legacy_score_frame(model: LoadedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """``score_frame`` as it was: wrapper probabilities, then frame-path reasons, column by column."""
    pipe = model.pipeline
    p = _legacy_proba(pipe, rows)[:, 1]
    clf = pipe.steps[-1][1]
    prepared = _legacy_transform(pipe.named_steps["categories"], pipe.named_steps["columns"].transform(rows))
    trees = clf.model_.booster_.predict(
        prepared.loc[:, clf.tree_features_], num_iteration=clf.best_iteration_, pred_contrib=True
    )
    prior = None if clf.prior_ is None else _prior_parts(clf.prior_, prepared)
    values = clf._contributions_from(
        np.asarray(trees, dtype=np.float64), list(prepared.columns), clf._alone_rows(prepared), prior
    )
    contrib = pd.DataFrame(values[:, :-1], index=rows.index, columns=list(prepared.columns))
    why = reasons_from_contributions(contrib, rows, DESCRIPTIONS, top_k=3, kinds={"source": "categorical"})
    part = pd.DataFrame(
        {
            "id": np.arange(len(rows)),
            "p": np.round(p, 6),
            "score": np.rint(p * 100).astype(int),
            "band": band_of(p, {"A": 0.3, "B": 0.15, "C": 0.05}),
        },
        index=rows.index,
    )
    out = pd.concat([part, why.set_index(rows.index)], axis=1)
    out["model_name"] = model.name
    out["model_version"] = model.version
    return out


DESCRIPTIONS = {
    "visits": "pricing-page visits",
    "source": "where the lead came from",
    "booked": "a demo is booked",
}


@pytest.mark.parametrize("which", ["plain", "with_prior"])
def test_score_frame_is_the_legacy_scoring(which: str, data: tuple, request: pytest.FixtureRequest) -> None:
    pipe: Pipeline = request.getfixturevalue(which)
    meta = {"descriptions": DESCRIPTIONS, "categorical": ["source"]}
    model = LoadedModel(name="m", version="3", alias=None, pipeline=pipe, metadata=meta, run_id="r")
    for rows in _sizes(data[2]):
        got = score_frame(model, rows, pd.Series(np.arange(len(rows)), index=rows.index))
        expected = _legacy_score_frame(model, rows)
        expected["scored_at"] = got["scored_at"].iloc[0].to_pydatetime()  # as score_frame sets it
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        bare = score_frame(model, rows, pd.Series(np.arange(len(rows)), index=rows.index), reasons=False)
        assert not [c for c in bare.columns if c.startswith("reason_")]
        pd.testing.assert_frame_equal(
            bare.drop(columns="scored_at"),
            got[bare.columns].drop(columns="scored_at"),
            check_exact=True,
        )


def test_calibrator_shortcuts_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    raw = rng.random(500)
    y = (rng.random(500) < raw).astype(int)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y)
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.log(raw / (1 - raw)).reshape(-1, 1), y)
    for values in (np.array([0.5]), np.r_[-1.0, 0.0, raw, 2.0], np.array([np.nan, 0.3])):
        if np.isfinite(values).all():
            np.testing.assert_array_equal(isotonic_predict(iso, values), iso.predict(values))
            np.testing.assert_array_equal(
                sigmoid_predict(lr, values), lr.predict_proba(values.reshape(-1, 1))[:, 1]
            )
        else:  # what sklearn refuses still goes to sklearn
            with pytest.raises(ValueError):
                isotonic_predict(iso, values)


def test_an_all_empty_numeric_column_warns_nothing_and_keeps_the_fast_path(data: tuple) -> None:
    """A CRM without activities (Maven): a prior column empty on every row it is fitted on.

    The imputer keeps it as a constant (``keep_empty_features``) instead of dropping it with a
    UserWarning per fit and per transform (154 lines of a revenue backtest's stderr); the fast path
    still serves the model, with the pipeline's probabilities.
    """
    import warnings

    x, y, awkward = data
    x = x.assign(empty=np.nan)
    model = CalibratedLGBMClassifier(
        n_estimators=40,
        prior_features=["source", "visits", "empty"],
        prior_fit_column="age_days",
        prior_fit_max=0.01,
        prior_alone=True,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe = _fit(x, y, model)
        rows = awkward.assign(empty=np.nan)
        rows.loc[rows.index[0], "empty"] = 3.0  # a value where training saw none
        fast = fastpath.predict_proba(pipe, rows)
    assert fastpath.coded(pipe) is not None
    np.testing.assert_array_equal(fast, pipe.predict_proba(rows))


def test_by_id_answers_of_a_whole_table_are_its_rows_answers(plain: Pipeline, data: tuple) -> None:
    """The by-id warm-up scores a table at once: each answer is the one its row alone gets."""
    from forecast.serving.by_id import score_answer, score_answers

    meta = {"descriptions": DESCRIPTIONS, "categorical": ["source"], "features": list(data[2].columns)}
    model = LoadedModel(name="m", version="3", alias=None, pipeline=plain, metadata=meta, run_id="r")
    table = data[2].iloc[:40].copy()
    table.insert(0, "lead_id", [f"L{i}" for i in range(len(table))])
    table["as_of"] = pd.Timestamp("2026-01-01")
    together = score_answers(model, table, "lead")
    assert [a["lead_id"] for a in together] == list(table["lead_id"])
    alone = [score_answer(model, table.iloc[i : i + 1], "lead") for i in range(len(table))]
    assert together == alone
    assert any(a["warnings"] for a in together)  # the unseen level of row 2 is named
    assert len({a["band"] for a in together}) > 1


@pytest.mark.parametrize("which", ["plain", "with_prior"])
def test_one_walk_gives_the_two_walks_probabilities_and_contributions(
    which: str, data: tuple, request: pytest.FixtureRequest
) -> None:
    """The probability from the split patterns' raw scores is LightGBM's to the last bit."""
    pipe: Pipeline = request.getfixturevalue(which)
    fast = fastpath.coded(pipe)
    assert fast is not None and fast._sigmoid
    for rows in _sizes(data[2]):
        codes = fast.encode(rows)
        proba, values = fast.proba_and_contributions(codes)
        np.testing.assert_array_equal(proba, fast.predict_proba(codes))
        np.testing.assert_array_equal(values, fast.contributions(codes))
