"""Time-to-close building blocks: person-period expansion, survival curves, metrics, models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from forecast.models.survival import (
    INTERVAL,
    DiscreteTimeHazard,
    LogisticHazard,
    StageKaplanMeier,
    expand_person_period,
    survival_at,
    survival_from_hazards,
    survival_quantile,
)
from forecast.training.survival_metrics import brier_at, concordance_index, integrated_brier_score

EDGES = [0.0, 7.0, 14.0, 30.0]


def test_expansion_counts_only_observed_intervals() -> None:
    x = pd.DataFrame({"f": ["a", "b", "c", "d"]})
    # closes on day 10; censored on day 3; open past the last edge; closes on day 7 exactly
    xl, y = expand_person_period(x, np.array([10.0, 3.0, 40.0, 7.0]), np.array([1, 0, 0, 1]), EDGES)
    got = list(zip(xl["f"], xl[INTERVAL].astype(int), y, strict=True))
    assert got == [
        ("a", 0, 0),
        ("a", 1, 1),  # closed inside (7, 14]
        # "b" was followed 3 days only: no interval was observed whole and it did not close
        ("c", 0, 0),
        ("c", 1, 0),
        ("c", 2, 0),
        ("d", 0, 1),  # day 7 belongs to the first interval (0, 7]
    ]


def test_survival_curve_interpolation_and_quantiles() -> None:
    surv = survival_from_hazards(np.array([[0.5, 0.5]]))
    assert surv.tolist() == [[1.0, 0.5, 0.25]]
    edges = [0.0, 10.0, 20.0]
    assert survival_at(surv, edges, 5.0)[0] == pytest.approx(0.75)
    assert survival_at(surv, edges, 99.0)[0] == pytest.approx(0.25)  # beyond the last edge
    assert survival_at(surv, edges, -3.0)[0] == pytest.approx(1.0)
    assert survival_quantile(surv, edges, 0.5)[0] == pytest.approx(10.0)
    assert survival_quantile(surv, edges, 0.6)[0] == pytest.approx(14.0)
    assert np.isnan(survival_quantile(surv, edges, 0.9)[0])  # not reached within a year


def test_concordance_index_by_hand() -> None:
    d = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([1, 1, 0, 1], dtype=bool)
    assert concordance_index(d, e, d) == pytest.approx(1.0)
    assert concordance_index(d, e, -d) == pytest.approx(0.0)
    # comparable pairs: (1,2) (1,3) (1,4) (2,3) (2,4); the censored day-3 deal starts none
    pred = np.array([1.0, 5.0, 2.0, 9.0])
    # concordant: (1,2) (1,3) (1,4) (2,4); discordant: (2,3)
    assert concordance_index(d, e, pred) == pytest.approx(4 / 5)
    assert concordance_index(d, e, np.zeros(4)) == pytest.approx(0.5)


def test_brier_without_censoring_is_the_plain_brier() -> None:
    d = np.array([5.0, 10.0, 20.0, 25.0])
    e = np.ones(4, dtype=bool)
    surv = np.array([[1.0, 0.8, 0.5, 0.1]] * 4)
    s12 = survival_at(surv, EDGES, 12.0)
    plain = np.mean(((d > 12.0).astype(float) - s12) ** 2)
    assert brier_at(d, e, surv, EDGES, 12.0) == pytest.approx(plain)
    perfect = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]], dtype=float)
    assert integrated_brier_score(d, e, perfect, EDGES, times=[7.0, 14.0]) < integrated_brier_score(
        d, e, surv, EDGES, times=[7.0, 14.0]
    )


def test_stage_kaplan_meier_matches_the_empirical_curve() -> None:
    x = pd.DataFrame({"stage": ["s"] * 40})
    d = np.repeat([3.0, 10.0, 20.0, 50.0], 10)
    km = StageKaplanMeier("stage", edges=EDGES).fit(x, d, np.ones(40, dtype=bool))
    assert km.survival(x.head(1))[0].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25])
    unseen = km.survival(pd.DataFrame({"stage": ["never seen"]}))
    assert unseen[0].tolist() == pytest.approx([1.0, 0.75, 0.5, 0.25])  # the overall curve
    assert km.survival(x.iloc[:0]).shape == (0, len(EDGES))


def test_stage_curves_with_causes_time_wins_apart_from_losses() -> None:
    # 20 losses on day 3, 20 wins on day 20: half close by day 7, but no win comes before day 14
    x = pd.DataFrame({"stage": ["s"] * 40})
    d = np.repeat([3.0, 20.0], 20)
    causes = np.repeat([2, 1], 20)
    km = StageKaplanMeier("stage", edges=EDGES).fit(x, d, np.ones(40, dtype=bool), causes=causes)
    assert km.competing_
    assert km.survival(x.head(1))[0].tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0])
    won = km.win_incidence(x.head(1))
    assert won is not None and won[0].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.5])
    # without causes there is no win incidence (the stage-only baseline)
    assert StageKaplanMeier("stage", edges=EDGES).fit(x, d, np.ones(40, dtype=bool)).win_incidence(x) is None


def test_stage_curves_split_by_size_shrink_each_band_towards_its_stage() -> None:
    # small deals close (and win) on day 3, large ones on day 20; 50 of each, all in one stage
    n = 50
    x = pd.DataFrame({"stage": ["s"] * (2 * n), "amount": np.r_[np.full(n, 1_000.0), np.full(n, 90_000.0)]})
    d = np.r_[np.full(n, 3.0), np.full(n, 20.0)]
    e, causes = np.ones(2 * n, dtype=bool), np.ones(2 * n, dtype=int)
    km = StageKaplanMeier("stage", edges=EDGES, amount_column="amount", amount_bins=2, alpha=10.0)
    km.fit(x, d, e, causes=causes)
    small, large = km.win_incidence(x.iloc[[0, -1]])  # type: ignore[misc]
    stage = km.win_curves_["s"]
    # the stage's own curve: half the deals win by day 7; the bands pull apart, each short of
    # its own data by the shrinkage towards the stage (alpha = 10 at risk against 50)
    assert stage[1] == pytest.approx(0.5)
    assert small[1] == pytest.approx((50 + 10 * 0.5) / (50 + 10))
    assert 0.0 < large[1] < 0.5 * stage[1]
    assert small[-1] == pytest.approx(1.0) and large[-1] == pytest.approx(1.0)
    # a deal without an amount, or with too few sized deals to split, gets its stage's curve
    unsized = x.head(1).assign(amount=np.nan)
    assert km.win_incidence(unsized)[0].tolist() == pytest.approx(stage.tolist())  # type: ignore[index]
    few = StageKaplanMeier("stage", edges=EDGES, amount_column="amount", amount_bins=2, alpha=60.0)
    few.fit(x, d, e, causes=causes)
    assert few.cell_curves_ == {}


def test_stage_curves_with_causes_shrink_to_their_stage_and_book_a_stage_without_wins() -> None:
    """Two stages with wins, losses and censoring: every curve is a proper competing-risks pair."""
    rng = np.random.default_rng(3)
    n = 400
    stage = np.where(np.arange(n) < 300, "late", "early")
    amount = rng.lognormal(10, 1, n)
    d = rng.uniform(1, 40, n)
    closed = rng.random(n) < 0.7
    # "late" deals win more when small; "early" deals never win (losses and open ones only)
    won = closed & (stage == "late") & (rng.random(n) < np.where(amount < np.median(amount), 0.8, 0.3))
    causes = np.where(closed, np.where(won, 1, 2), 0)
    x = pd.DataFrame({"stage": stage, "amount": amount})
    km = StageKaplanMeier("stage", edges=EDGES, amount_column="amount", amount_bins=2, alpha=30.0)
    km.fit(x, d, closed, causes=causes)
    surv, won_by = km.survival(x), km.win_incidence(x)
    assert won_by is not None
    assert (won_by <= 1.0 - surv + 1e-12).all() and (np.diff(won_by, axis=1) >= -1e-12).all()
    # a stage whose deals never won keeps a small win incidence: its deals' p_win gets a timing
    early = won_by[stage == "early"]
    assert (early[:, -1] > 0).all() and (early[:, -1] < won_by[stage == "late"][:, -1].min()).all()
    # a size band is shrunk towards its stage's hazards, not towards all snapshots'
    c = km._counts(d[stage == "late"], closed[stage == "late"], won[stage == "late"])
    late = km._shrunk(c, km._counts(d, closed, won))
    band = np.searchsorted(km.size_edges_, amount, side="right")
    sel = (stage == "late") & (band == 0)
    cell = km._counts(d[sel], closed[sel], won[sel])
    closing, winning = late[1] / late[0], late[2] / late[0]
    expected = np.vstack([cell[0] + 30.0, cell[1] + 30.0 * closing, cell[2] + 30.0 * winning])
    assert km.cell_curves_[("late", 0)][1] == pytest.approx(km._won_of(expected))
    assert km.win_curves_["late"] == pytest.approx(km._won_of(late))
    # the stage-only baseline (no causes) keeps each stage's own Kaplan-Meier curve, unshrunk
    plain = StageKaplanMeier("stage", edges=EDGES).fit(x, d, closed)
    own = StageKaplanMeier("stage", edges=EDGES).fit(
        x[stage == "early"], d[stage == "early"], closed[stage == "early"]
    )
    assert plain.survival(x.tail(1))[0] == pytest.approx(own.curves_["__all__"])


def test_stage_curves_explain_p_close_by_stage_and_size() -> None:
    """The reasons of /time_to_close when the small-data curves serve: they sum to its log-odds."""
    rng = np.random.default_rng(4)
    n = 300
    x = pd.DataFrame(
        {"stage": rng.choice(["a", "b"], n), "other": rng.normal(size=n), "amount": rng.lognormal(9, 1, n)}
    )
    d = rng.uniform(1, 40, n) * np.where(x["amount"] > x["amount"].median(), 2.0, 1.0)
    km = StageKaplanMeier(
        "stage", edges=EDGES, proba_days=14.0, amount_column="amount", amount_bins=2, alpha=10.0
    )
    km.fit(x, d, rng.random(n) < 0.8, causes=rng.choice([1, 2], n))
    contrib = km.contributions(x)
    p = km.predict_proba(x)[:, 1]
    assert contrib.shape == (n, 4) and (contrib[:, 1] == 0).all()
    assert contrib.sum(axis=1) == pytest.approx(np.log(p / (1 - p)))
    assert np.abs(contrib[:, 2]).max() > 0.05  # the size band moves it
    assert km.contributions(x.iloc[:0]).shape == (0, 4)


def test_stage_curves_pickled_before_sizes_and_causes_still_score_and_print() -> None:
    x = pd.DataFrame({"stage": ["s"] * 40})
    km = StageKaplanMeier("stage", edges=EDGES).fit(x, np.repeat([3.0, 20.0], 20), np.ones(40, dtype=bool))
    old = StageKaplanMeier.__new__(StageKaplanMeier)
    old.__dict__.update(
        {
            k: v
            for k, v in km.__dict__.items()
            if k in ("stage_column", "edges", "proba_days", "curves_", "classes_")
        }
    )
    assert old.survival(x.head(1)).tolist() == km.survival(x.head(1)).tolist()
    assert old.win_incidence(x) is None
    assert "StageKaplanMeier" in repr(old) and clone(old).get_params()["alpha"] == 30.0


def _synthetic(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    fast = rng.random(n) < 0.5
    x = pd.DataFrame({"fast": fast.astype(float), "noise": rng.normal(size=n)})
    t = rng.exponential(np.where(fast, 10.0, 40.0))
    c = rng.uniform(5, 120, n)  # censoring
    return x, np.minimum(t, c), t <= c


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_hazard_models_learn_who_closes_sooner(kind: str) -> None:
    x, d, e = _synthetic(4000, 0)
    xv, dv, ev = _synthetic(1000, 1)
    xt, dt, et = _synthetic(2000, 2)
    edges = [0, 7, 14, 30, 60, 120]
    model = (
        DiscreteTimeHazard(edges=edges, n_estimators=200, random_state=0)
        if kind == "lightgbm"
        else LogisticHazard(numeric=["fast", "noise"], edges=edges)
    )
    model.fit(x, d, e, eval_set=(xv, dv, ev))
    surv = model.survival(xt)
    assert (np.diff(surv, axis=1) <= 1e-12).all()  # a survival curve never rises
    p30 = model.predict_proba(xt)[:, 1]
    fast = xt["fast"].to_numpy() == 1
    # exponential truth: P(close within 30) = 1 - exp(-3) = 0.95 (fast), 1 - exp(-0.75) = 0.53
    assert p30[fast].mean() == pytest.approx(0.95, abs=0.05)
    assert p30[~fast].mean() == pytest.approx(0.53, abs=0.06)
    assert concordance_index(dt, et, -p30) > 0.65
