"""The calibrated cumulative curves kept from falling across edges (``survival.monotone_edges``).

Each edge's isotonic calibrator is right on average, but a row's calibrated values wander from
edge to edge; the running maximum carried every upward step to all later edges (the overshoot of
``snapshots.tail_to: eventual``, docs/models.md, "Where the level gap comes from"). The weighted
least-squares fit across edges (``edge_monotone="pava"``, an option; the default stays the running
maximum) must be the isotonic regression of each row, leave rows that do not fall bit-identical,
read the same numbers on every path (frame, a few rows stacked, ``win_within``), and models pickled
before it must keep the running maximum.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.isotonic import isotonic_regression

from forecast.models.pipeline import CalibratedLGBMClassifier, build_pipeline, fit_pipeline
from forecast.models.survival import (
    STACKED_ROWS,
    CurveCalibrationSet,
    DiscreteTimeHazard,
    _stacked_interpolation,
    edge_rows,
    monotone_edges,
    survival_at,
)
from forecast.models.win_blend import blended_pipeline
from forecast.scoring import fastpath

DAYS = (42.0, 90.0, 98.0, 308.0)


def _noisy_rows(n: int, seed: int) -> np.ndarray:
    """Cumulative curves that rise then stay flat, with per-edge noise (some rows fall)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0.2, 0.8, (n, 1))
    shape = 1.0 - np.exp(-np.arange(14) / 2.0)
    out = level * shape[None, :] + rng.normal(0.0, 0.03, (n, 14))
    out[:, 0] = 0.0
    return out


def test_pava_is_each_row_s_weighted_isotonic_regression() -> None:
    y = _noisy_rows(300, 0)
    w = np.random.default_rng(1).integers(1, 5_000, 14).astype(float)
    assert (np.diff(y, axis=1) < 0).any(axis=1).mean() > 0.5
    fit = monotone_edges(y, "pava", w)
    expected = np.array([isotonic_regression(row, sample_weight=w) for row in y])
    np.testing.assert_allclose(fit, expected, rtol=0, atol=1e-12)
    assert (np.diff(fit, axis=1) >= 0).all()
    # the weighted mean of each row is kept (a least-squares projection), the running maximum's is not
    np.testing.assert_allclose(fit @ w, y @ w, rtol=1e-12)
    assert (np.maximum.accumulate(y, axis=1) @ w > y @ w + 1e-9).mean() > 0.5


def test_rows_that_do_not_fall_and_non_finite_rows_are_the_running_maximum_s_to_the_bit() -> None:
    y = _noisy_rows(200, 2)
    y[5, 3] = np.nan
    y[6, 2] = np.inf
    runmax = np.maximum.accumulate(y, axis=1)
    fit = monotone_edges(y, "pava", np.arange(14, 0, -1))
    rising = ~(np.diff(y, axis=1) < 0).any(axis=1) | ~np.isfinite(y).all(axis=1)
    assert rising.sum() >= 2 and (~rising).sum() > 10
    np.testing.assert_array_equal(fit[rising], runmax[rising])
    assert not np.array_equal(fit[~rising], runmax[~rising])
    np.testing.assert_array_equal(monotone_edges(y, "max"), runmax)
    monotone = np.maximum.accumulate(np.abs(y[7:9]), axis=1)
    np.testing.assert_array_equal(monotone_edges(monotone, "pava"), monotone)
    with pytest.raises(ValueError, match="edge_monotone"):
        monotone_edges(y, "smooth")


def test_the_thinly_supported_edges_move_most() -> None:
    y = np.array([[0.0, 0.5, 0.4], [0.0, 0.5, 0.4]])
    fit = monotone_edges(y, "pava", np.array([100.0, 100.0, 1.0]))
    assert fit[0, 1] == fit[0, 2] and abs(fit[0, 1] - 0.5) < 0.001  # the far edge joins the near one
    fit = monotone_edges(y, "pava", np.array([100.0, 1.0, 100.0]))
    assert fit[0, 1] == fit[0, 2] and abs(fit[0, 1] - 0.4) < 0.001


def test_a_flat_noisy_tail_climbs_less_than_the_running_maximum() -> None:
    """The overshoot measured: the last edge's mean above the truth, by the running max and by the fit."""
    rng = np.random.default_rng(3)
    truth = np.concatenate([[0.0, 0.2, 0.35], np.full(11, 0.45)])
    y = truth[None, :] + rng.normal(0.0, 0.02, (5_000, 14))
    y[:, 0] = 0.0
    w = np.linspace(6_000, 500, 14)
    climb_max = monotone_edges(y, "max")[:, -1].mean() - truth[-1]
    climb_pava = monotone_edges(y, "pava", w)[:, -1].mean() - truth[-1]
    assert climb_max > 0.025
    assert climb_pava < 0.6 * climb_max


def test_edge_rows_count_the_rows_followed_to_each_edge() -> None:
    rows = edge_rows([0, 7, 30, 365], np.array([0.0, 5.0, 7.0, 30.0, 400.0]))
    np.testing.assert_array_equal(rows, [5.0, 3.0, 2.0, 1.0])


@pytest.fixture(scope="module")
def hazard() -> tuple[DiscreteTimeHazard, pd.DataFrame]:
    """A competing-risks hazard calibrated on curves of rows followed for varied lengths."""
    rng = np.random.default_rng(0)
    n = 4_000
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 4, n).astype(float)})
    t = rng.exponential(np.where(x["b"] > 1, 20.0, 60.0))
    c = rng.uniform(5, 400, n)
    d, e = np.minimum(t, c), t <= c
    causes = np.where(rng.random(n) < 1 / (1 + np.exp(-x["a"].to_numpy())), 1, 2)
    model = DiscreteTimeHazard(n_estimators=30, random_state=0, edge_monotone="pava")
    model.fit(x, d, e, causes=causes)
    closed_by, won_by = model.raw_curves(x)
    calibration = CurveCalibrationSet(closed_by, won_by, d, e, c, causes=causes, min_rows=50)
    model.fit(x, d, e, causes=causes, calibration_set=calibration)
    return model, x.iloc[:600].reset_index(drop=True)


def _runmax_copy(model: DiscreteTimeHazard) -> DiscreteTimeHazard:
    """The model as one pickled before ``edge_monotone``: no such attribute, no ``edge_rows_``."""
    old = pickle.loads(pickle.dumps(model))
    del old.__dict__["edge_monotone"], old.__dict__["edge_rows_"]
    return pickle.loads(pickle.dumps(old))


def test_the_fitted_hazard_changes_only_the_rows_that_fell(
    hazard: tuple[DiscreteTimeHazard, pd.DataFrame],
) -> None:
    model, x = hazard
    assert model.edge_monotone == "pava" and model.edge_rows_ is not None
    closed_by, won_by = model.raw_curves(x)
    assert won_by is not None
    old = _runmax_copy(model)
    for name, curve in (("closed", closed_by), ("won", won_by)):
        per_edge = curve.copy()
        for j, iso in enumerate(model.calibrators_[name]):
            if iso is not None:
                per_edge[:, j] = iso.predict(curve[:, j])
        fell = (np.diff(per_edge, axis=1) < 0).any(axis=1)
        assert 0 < fell.sum() < len(fell)
        new, before = model._calibrated(curve, name), old._calibrated(curve, name)
        np.testing.assert_array_equal(new[~fell], before[~fell])
        np.testing.assert_array_equal(before, np.maximum.accumulate(per_edge, axis=1))
        assert (new[fell] <= before[fell] + 1e-12).all() and (new[fell] < before[fell] - 1e-6).any()
        assert (np.diff(new, axis=1) >= 0).all()


def test_every_path_reads_the_same_curve(hazard: tuple[DiscreteTimeHazard, pd.DataFrame]) -> None:
    """``win_within`` (all intervals, chunked), a few rows stacked, and the whole curve: the same numbers."""
    model, x = hazard
    incidence = model.win_incidence(x)
    assert incidence is not None
    edges = np.asarray(model.edges, dtype=float)
    for days in DAYS:
        k, at, frac = model.win_within_interval(days)
        assert k == len(edges) - 1  # the fit reads the later edges too
        within = model.win_within(x, days, rows=97)
        np.testing.assert_array_equal(
            within, incidence[:, at] + frac * (incidence[:, at + 1] - incidence[:, at])
        )
        np.testing.assert_allclose(within, survival_at(incidence, edges, days), rtol=0, atol=1e-12)
    closed_by, won_by = model.raw_curves(x)
    assert won_by is not None
    pair = (model.calibrators_["won"], model.calibrators_["closed"])
    assert _stacked_interpolation(model, pair, won_by.shape[1]) is not None, "not stacked"
    for start in range(0, 64, STACKED_ROWS // 2):
        part = slice(start, start + STACKED_ROWS // 2)
        np.testing.assert_array_equal(model._won_incidence(closed_by[part], won_by[part]), incidence[part])
        np.testing.assert_array_equal(
            model._calibrated(closed_by[part], "closed"), model._calibrated(closed_by, "closed")[part]
        )


def test_a_model_pickled_before_keeps_the_running_maximum_and_its_reads(
    hazard: tuple[DiscreteTimeHazard, pd.DataFrame],
) -> None:
    model, x = hazard
    old = _runmax_copy(model)
    assert old.edge_monotone == "max" and old.get_params()["edge_monotone"] == "max"
    assert clone(old).edge_monotone == "max" and clone(model).edge_monotone == "pava"
    assert DiscreteTimeHazard().edge_monotone == "max"  # the default keeps every current figure
    incidence = old.win_incidence(x)
    assert incidence is not None
    k, at, frac = old.win_within_interval(98.0)
    assert k == int(np.searchsorted(np.asarray(old.edges, dtype=float), 98.0))  # the prefix, as before
    np.testing.assert_array_equal(
        old.win_within(x, 98.0), incidence[:, at] + frac * (incidence[:, at + 1] - incidence[:, at])
    )
    assert not np.array_equal(incidence, model.win_incidence(x))


def test_an_unknown_combination_is_refused_at_fit() -> None:
    x = pd.DataFrame({"a": np.arange(50.0)})
    with pytest.raises(ValueError, match="edge_monotone"):
        DiscreteTimeHazard(n_estimators=2, edge_monotone="smooth").fit(
            x, np.full(50, 10.0), np.ones(50, bool)
        )


def test_the_array_path_of_a_blend_reads_the_same_fit() -> None:
    """A blend whose hazard fits across edges: the array path (every interval) is the frame path's."""
    rng = np.random.default_rng(5)
    n = 3_000
    x = pd.DataFrame({"a": rng.normal(size=n), "src": rng.choice(["web", "ref", "call"], n)})
    t = rng.exponential(np.where(x["src"] == "ref", 15.0, 50.0))
    c = rng.uniform(5, 300, n)
    d, e = np.minimum(t, c), t <= c
    causes = np.where(rng.random(n) < 1 / (1 + np.exp(-x["a"].to_numpy())), 1, 2)
    y = (e & (d <= 45.0) & (causes == 1)).astype(int)
    classifier = CalibratedLGBMClassifier(n_estimators=20, random_state=0)
    pipe = fit_pipeline(
        build_pipeline(["a", "src"], ["src"], classifier), x[:2000], y[:2000], x[2000:], y[2000:]
    )
    encoded = pipe[:-1].transform(x)
    model = DiscreteTimeHazard(n_estimators=20, random_state=0, edge_monotone="pava")
    model.fit(encoded, d, e, causes=causes)
    closed_by, won_by = model.raw_curves(encoded)
    calibration = CurveCalibrationSet(closed_by, won_by, d, e, c, causes=causes, min_rows=50)
    model.fit(encoded, d, e, causes=causes, calibration_set=calibration)
    blend = blended_pipeline(pipe, model, 0.5, 45.0, 200.0)
    fast = fastpath.coded(blend)
    assert fast is not None and fast.hazard_trees is not None
    assert fast.hazard_trees.intervals == len(model.edges) - 1
    rows = x.iloc[:300]
    for batch in (rows.iloc[[0]], rows.iloc[:5], rows):
        np.testing.assert_array_equal(fast.predict_proba(fast.encode(batch)), blend.predict_proba(batch))
    old = blended_pipeline(pipe, _runmax_copy(model), 0.5, 45.0, 200.0)
    assert not np.array_equal(old.predict_proba(rows), blend.predict_proba(rows))
