"""Revenue forecast building blocks: periods, the CRM cut, Monte Carlo, new deals, baselines, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from forecast.data.as_of import crm_as_of
from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.revenue.backtest import backtest_metrics, pinball, stage_weighted
from forecast.revenue.engine import DealModels, HeldOutModels, ShockSettings, estimate_shock, unseen_from
from forecast.revenue.forecast import close_shares, forecast_revenue, period_grid
from forecast.revenue.montecarlo import booking_probabilities, simulate_new_deals, simulate_open_deals
from forecast.revenue.new_deals import NewDealModel, fit_new_deal_model
from forecast.revenue.shock import (
    MAX_SHIFT,
    CommonShock,
    ShockPrior,
    ShockScale,
    bias_estimate,
    logit_shift,
    shifted,
    shock_scale,
)
from forecast.tracking.periods import Period

T = pd.Timestamp


def test_period_grids() -> None:
    months = period_grid(T("2025-02-14 10:00"), 3, "month")
    assert [p.label for p in months] == ["2025-02", "2025-03", "2025-04"]
    assert months[0].start == T("2025-02-01") and months[-1].end == T("2025-05-01")
    quarters = period_grid(T("2025-05-02"), 2, "quarter")
    assert [(p.label, p.start, p.end) for p in quarters] == [
        ("2025-Q2", T("2025-04-01"), T("2025-07-01")),
        ("2025-Q3", T("2025-07-01"), T("2025-10-01")),
    ]
    weeks = period_grid(T("2025-01-01"), 1, "week")  # a Wednesday
    assert weeks[0].start == T("2024-12-30") and weeks[0].end == T("2025-01-06")
    with pytest.raises(ValueError):
        period_grid(T("2025-01-01"), 1, "year")


def test_crm_as_of_forgets_the_future() -> None:
    sim = simulate_crm(SimulationConfig(n_leads=1500, seed=3, months=12))
    cut = T("2024-07-01")
    past = crm_as_of(sim.tables, cut, DEFAULT_PIPELINE)
    o = past["opportunities"]
    assert (pd.to_datetime(o["created_at"]) < cut).all()
    assert (pd.to_datetime(o["closed_at"]).dropna() < cut).all()
    reopened = o["outcome"] == "open"
    assert o.loc[reopened, "stage"].isin(DEFAULT_PIPELINE.open_stages).all()
    assert o.loc[reopened, "loss_reason"].isna().all()
    for table, col in (("activities", "occurred_at"), ("stage_history", "entered_at")):
        assert (pd.to_datetime(past[table][col]) < cut).all()
    leads = past["leads"]
    assert (pd.to_datetime(leads["converted_at"]).dropna() < cut).all()
    assert not leads["status"].eq("converted").ne(leads["converted_at"].notna()).any()
    # a deal's amount is the one of its last change before the cut
    h = sim.tables["stage_history"]
    h = h[pd.to_datetime(h["entered_at"]) < cut].sort_values("entered_at").groupby("opportunity_id").tail(1)
    merged = o.merge(h[["opportunity_id", "amount", "stage"]], on="opportunity_id", suffixes=("", "_h"))
    assert (merged["amount"] == merged["amount_h"]).all() and (merged["stage"] == merged["stage_h"]).all()
    assert len(sim.tables["opportunities"]) > len(o)  # the input is untouched


def test_booking_probabilities_and_open_deal_simulation() -> None:
    q = booking_probabilities(np.array([0.5, 1.0]), np.array([[0.5, 0.5], [0.2, 0.3]]))
    assert q.tolist() == [[0.25, 0.25], [0.2, 0.3]]
    rng = np.random.default_rng(0)
    sims = simulate_open_deals(q, np.array([100.0, 10.0]), np.array([0, 1]), 2, 40_000, rng)
    assert sims.shape == (40_000, 2, 2)
    means = sims.mean(axis=0)
    assert means[0, 0] == pytest.approx(25.0, rel=0.03) and means[1, 0] == pytest.approx(25.0, rel=0.03)
    assert means[0, 1] == pytest.approx(2.0, rel=0.03) and means[1, 1] == pytest.approx(3.0, rel=0.03)
    # a deal books in one period at most
    assert ((sims[:, 0, 0] > 0) & (sims[:, 1, 0] > 0)).sum() == 0


def test_new_deal_simulation_is_a_compound_poisson() -> None:
    rng = np.random.default_rng(1)
    sims = simulate_new_deals(np.array([[4.0], [0.0]]), [np.array([10.0, 30.0])], 50_000, rng)
    assert sims[:, 0, 0].mean() == pytest.approx(80.0, rel=0.02)  # 4 wins × mean 20
    assert (sims[:, 1, 0] == 0).all()


def test_new_deal_model_by_hand() -> None:
    deals = pd.DataFrame(
        {
            "group": ["a"] * 4,
            "created_at": [T("2024-01-01"), T("2024-01-11"), T("2024-06-01"), T("2024-06-11")],
            "closed_at": [T("2024-01-21"), T("2024-02-10"), T("2024-06-21"), pd.NaT],
            "outcome": ["won", "lost", "won", "open"],
            "amount": [100.0, 50.0, 300.0, 80.0],
        }
    )
    model = fit_new_deal_model(
        deals, T("2024-07-01"), ["a"], window_days=60, mature_days=150, cohort_days=100, shrink=0.0
    )
    assert model.rate_per_day[0] == pytest.approx(2 / 60)  # two deals opened in the last 60 days
    assert model.win_rate[0] == pytest.approx(0.5)  # the mature cohort: January's two deals
    # wins closed in the last 100 days, as (cycle, amount) pairs
    assert model.cycle_pools[0].tolist() == [20.0] and model.amount_pools[0].tolist() == [300.0]
    mu = model.expected_wins(T("2024-07-01"), [(T("2024-07-01"), T("2024-08-01"))])
    # deals opened July 1..11 win 20 days later, inside July: 11 days × rate × win rate
    assert mu[0, 0] == pytest.approx(11 * (2 / 60) * 0.5)


def _two_speed_model() -> NewDealModel:
    """Fast small wins (5 days, 1,000) and slow large ones (50 days, 100,000), as many of each."""
    return NewDealModel(
        ["a"],
        np.array([2.0]),
        np.array([0.5]),
        [np.array([1_000.0, 100_000.0] * 10)],
        [np.array([5.0, 50.0] * 10)],
    )


def test_pair_weights_count_the_creation_days_that_land_each_win_in_a_period() -> None:
    model = _two_speed_model()
    as_of = T("2024-07-01")
    periods = [(T("2024-07-01"), T("2024-07-11")), (T("2024-07-11"), T("2024-09-01"))]
    (weights,) = model.pair_weights(as_of, periods)
    days = np.arange(62)  # deals opened July 1 .. August 31
    for j, (start, end) in enumerate(periods):
        s, e = (start - as_of).days, (end - as_of).days
        for i, cycle in enumerate(model.cycle_pools[0]):
            assert weights[j, i] == ((days + cycle >= s) & (days + cycle < e)).sum()
    assert weights[0, 0] == 5 and weights[0, 1] == 0  # only the fast deals close in the first 10 days
    mu = model.expected_wins(as_of, periods)
    assert mu[0, 0] == pytest.approx(2.0 * 0.5 * weights[0].sum() / 20)


def test_new_deals_won_early_are_the_fast_small_ones() -> None:
    model = _two_speed_model()
    as_of = T("2024-07-01")
    periods = [(T("2024-07-01"), T("2024-07-11")), (T("2024-08-01"), T("2024-08-21"))]
    weights = model.pair_weights(as_of, periods)
    mu = model.expected_wins(as_of, periods, weights)
    sims = simulate_new_deals(mu, model.amount_pools, 20_000, np.random.default_rng(3), pair_weights=weights)
    # the first ten days: 5 days of fast wins only, each 1,000 (amounts drawn alone: mean 50,500)
    assert sims[:, 0, 0].mean() == pytest.approx(mu[0, 0] * 1_000.0, rel=0.03)
    # August 1-20: the fast deals opened July 27 .. August 15, the slow ones opened on July 1
    fast, slow = weights[0][1, 0], weights[0][1, 1]
    assert (fast, slow) == (20, 1)
    expected_amount = (fast * 1_000.0 + slow * 100_000.0) / (fast + slow)
    assert sims[:, 1, 0].mean() == pytest.approx(mu[1, 0] * expected_amount, rel=0.03)


def test_close_shares_restrict_wins_to_the_horizon() -> None:
    closed_by = np.array([[0.0, 0.5, 1.0]])  # half by day 10, all by day 20
    edges = [0.0, 10.0, 20.0]
    periods = [
        Period(T("2025-01-01"), T("2025-01-06"), "range", "a"),
        Period(T("2025-01-06"), T("2025-02-01"), "range", "b"),
    ]
    shares = close_shares(closed_by, edges, T("2025-01-01"), periods, horizon_days=20)
    assert shares[0].tolist() == pytest.approx([0.25, 0.75])


def test_forecast_table_adds_won_to_date_and_quota_odds() -> None:
    deals = pd.DataFrame({"amount": [100.0, 100.0], "group": ["x", "y"]})
    closed_by = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    result = forecast_revenue(
        deals=deals,
        p_win=np.array([1.0, 0.0]),
        closed_by=closed_by,
        edges=[0.0, 10.0, 20.0],
        horizon_days=20,
        new_deals=None,
        as_of=T("2025-01-01"),
        periods=[Period(T("2025-01-01"), T("2025-02-01"), "range", "jan")],
        groups=["x", "y"],
        won_to_date=np.array([[50.0, 0.0]]),
        quotas=np.array([[150.0, 10.0, 200.0]]),
        avg_won_amount=np.array([100.0, 100.0, 100.0]),
        n_sims=200,
    )
    t = result.table.set_index("group")
    assert t.loc["x", "expected"] == 150.0 and t.loc["x", "p_hit_quota"] == 1.0
    assert t.loc["y", "expected"] == 0.0 and t.loc["y", "p_hit_quota"] == 0.0
    assert t.loc["(all)", "expected"] == 150.0 and t.loc["(all)", "deals_needed"] == 2.0
    assert t.loc["(all)", "pipeline_coverage"] == pytest.approx(200.0 / 150.0)


def test_stage_weighted_and_metrics_by_hand() -> None:
    past = {
        "opportunities": pd.DataFrame(
            {
                "opportunity_id": ["o1", "o2", "c1", "c2"],
                "outcome": ["open", "open", "won", "lost"],
                "stage": ["proposal", "discovery", "closed_won", "closed_lost"],
                "amount": [1000.0, 500.0, 1.0, 1.0],
                "expected_close_date": [T("2025-01-20"), T("2025-03-01"), None, None],
            }
        ),
        "stage_history": pd.DataFrame(
            {"opportunity_id": ["c1", "c2", "c2"], "stage": ["proposal", "proposal", "discovery"]}
        ),
    }
    period = Period(T("2025-01-01"), T("2025-02-01"), "range", "jan")
    assert stage_weighted(past, T("2025-01-01"), period) == pytest.approx(1000 * 0.5)
    table = pd.DataFrame(
        {
            "actual": [100.0, 100.0],
            "p10": [50.0, 150.0],
            "p50": [100.0, 200.0],
            "p90": [150.0, 250.0],
            "expected": [100.0, 200.0],
            "stage_weighted": [0.0, 0.0],
            "run_rate": [100.0, 100.0],
        }
    )
    m = backtest_metrics(table)
    assert m["model"]["wape"] == pytest.approx(0.5) and m["model"]["bias"] == pytest.approx(0.5)
    assert m["model"]["coverage_p10_p90"] == 0.5
    assert m["model"]["coverage_p10_p90_n"] == 2  # one period of two: a wide Wilson interval
    assert m["model"]["coverage_p10_p90_lo"] < 0.1 and m["model"]["coverage_p10_p90_hi"] > 0.9
    assert m["stage_weighted"]["wape"] == 1.0 and m["run_rate"]["wape"] == 0.0
    assert pinball(np.array([10.0]), np.array([0.0]), 0.9) == pytest.approx(9.0)


def test_logit_shift_matches_the_observed_wins_and_its_noise() -> None:
    p = np.full(400, 0.25)
    share = np.full(400, 0.5)  # half of each deal's wins fall in the window: 50 expected
    d, se2 = logit_shift(p, share, 50.0)
    assert d == pytest.approx(0.0, abs=1e-6)
    # observed 80: the shift makes sum(share * sigmoid(logit(p) + d)) = 80, i.e. p -> 0.4
    d, _ = logit_shift(p, share, 80.0)
    assert shifted(np.array([0.25]), d)[0] == pytest.approx(0.4, abs=1e-6)
    assert d == pytest.approx(np.log(0.4 / 0.6) - np.log(0.25 / 0.75), abs=1e-6)
    # the delta-method variance: Var(wins) / slope^2 at d = 0
    q = 0.125
    assert se2 == pytest.approx((400 * q * (1 - q)) / (400 * 0.5 * 0.25 * 0.75) ** 2, rel=0.2)
    # no win at all: clipped, not infinite; probabilities of 0 and 1 never move
    assert logit_shift(p, share, 0.0)[0] == -MAX_SHIFT
    assert shifted(np.array([0.0, 1.0]), 2.0).tolist() == [0.0, 1.0]


def test_logit_shift_weighted_by_amount_matches_the_won_amount() -> None:
    # 300 small deals at 0.5 and 100 large ones at 0.4, all wins in the window: by count the model
    # is right (190 wins expected, 190 won), by amount the large ones won less than predicted
    p = np.r_[np.full(300, 0.5), np.full(100, 0.4)]
    amount = np.r_[np.full(300, 1_000.0), np.full(100, 50_000.0)]
    share = np.ones(400)
    assert logit_shift(p, share, 190.0)[0] == pytest.approx(0.0, abs=1e-6)
    won = 300 * 0.5 * 1_000.0 + 30 * 50_000.0  # the large ones won 30, not 40
    d, se2 = logit_shift(p, share, won, amount)
    assert d < 0
    assert (amount * shifted(p, d)).sum() == pytest.approx(won, rel=1e-6)
    # weights of one are the count's shift, noise included
    assert logit_shift(p, share, 190.0, np.ones(400)) == pytest.approx(logit_shift(p, share, 190.0))
    # a few large deals carry the won amount: its noise is larger than the count's
    assert se2 > logit_shift(p, share, 190.0)[1]
    with pytest.raises(ValueError, match="weigh_wins_by"):
        ShockSettings(weigh_wins_by="deals")


def test_shock_scale_subtracts_the_sampling_noise_and_shrinks_to_the_prior() -> None:
    prior = ShockPrior(0.3, 2.0)
    # no evidence: the prior, with 2 degrees of freedom
    none = shock_scale([], [], prior)
    assert none.sigma == pytest.approx(0.3) and none.df == 2.0 and none.cuts == 0
    # shifts no larger than their noise: the evidence says 0, pulling sigma below the prior
    calm = shock_scale([0.1, -0.1, 0.0, 0.05] * 3, [0.04] * 12, prior)
    assert calm.raw == 0.0 and calm.sigma == pytest.approx(0.3 * np.sqrt(2 / 14))
    # a model off by 0.8 at every cut: the bias counts as error (d^2, not the spread around the mean)
    biased = shock_scale([0.8] * 12, [0.04] * 12, prior)
    assert biased.raw == pytest.approx(np.sqrt(0.64 - 0.04))
    assert biased.sigma == pytest.approx(np.sqrt((2 * 0.09 + 12 * 0.6) / 14))
    assert biased.mean_shift == pytest.approx(0.8) and biased.df == 14.0
    # cuts without information are skipped
    assert shock_scale([0.5, 3.0], [0.01, float("inf")], prior).cuts == 1


def test_random_effects_estimate_recovers_a_known_shock() -> None:
    """Cohorts of 300 deals whose win rate moves by a common logit shock of sd 0.4 per window."""
    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.6, 300)
    share = rng.uniform(0.2, 0.8, 300)
    shifts, variances = [], []
    for _ in range(200):
        z = rng.normal(0.0, 0.4)
        wins = float((rng.random(300) < share * shifted(p, z)).sum())
        d, se2 = logit_shift(p, share, wins)
        shifts.append(d)
        variances.append(se2)
    est = shock_scale(shifts, variances, ShockPrior(0.3, 0.0))
    assert est.raw == pytest.approx(0.4, abs=0.08)
    calm = [float((rng.random(300) < share * p).sum()) for _ in range(200)]
    pairs = [logit_shift(p, share, w) for w in calm]
    est0 = shock_scale([a for a, _ in pairs], [b for _, b in pairs], ShockPrior(0.3, 0.0))
    assert est0.raw < 0.1  # no common shock: the noise is not mistaken for one


def test_common_shock_widens_the_band_and_moves_all_deals_together() -> None:
    n = 2000
    q = booking_probabilities(np.full(n, 0.3), np.ones((n, 1)))
    amounts = np.ones(n)
    groups = np.zeros(n, dtype=int)
    alone = simulate_open_deals(q, amounts, groups, 1, 4000, np.random.default_rng(0))[:, 0, 0]
    shock = CommonShock(ShockScale(0.4, 30.0, 10), ShockScale(0.0, 1.0, 0))
    rng = np.random.default_rng(0)
    shift, _ = shock.draw(4000, rng)
    together = simulate_open_deals(q, amounts, groups, 1, 4000, rng, p_win=np.full(n, 0.3), shift=shift)[
        :, 0, 0
    ]
    assert alone.std() == pytest.approx(np.sqrt(n * 0.3 * 0.7), rel=0.1)
    # sd of n * sigmoid(logit(0.3) + z), z ~ 0.4 t(30): about n * 0.3 * 0.7 * 0.4
    assert together.std() == pytest.approx(n * 0.21 * 0.4, rel=0.15)
    # the shift is symmetric on the logit scale: the median deal rate stays 0.3, the mean moves
    # slightly towards 0.5 (E[sigmoid(logit(0.3) + z)] = 0.307)
    assert np.median(shifted(np.array([0.3]), shift[:, None])) == pytest.approx(0.3, abs=0.005)
    assert together.mean() == pytest.approx(n * float(shifted(np.array([0.3]), shift).mean()), rel=0.01)
    assert np.corrcoef(shift, together)[0, 1] > 0.95


def test_quota_odds_come_from_the_shocked_draws() -> None:
    deals = pd.DataFrame({"amount": [1.0] * 1000, "group": ["x"] * 1000})
    kwargs = {
        "deals": deals,
        "p_win": np.full(1000, 0.3),
        "closed_by": np.tile([0.0, 1.0, 1.0], (1000, 1)),
        "edges": [0.0, 10.0, 20.0],
        "horizon_days": 20,
        "new_deals": None,
        "as_of": T("2025-01-01"),
        "periods": [Period(T("2025-01-01"), T("2025-02-01"), "range", "jan")],
        "groups": ["x"],
        "won_to_date": np.array([[0.0]]),
        "quotas": np.array([[330.0, 330.0]]),
        "n_sims": 4000,
    }
    alone = forecast_revenue(**kwargs).table.set_index("group").loc["x"]
    shock = CommonShock(ShockScale(0.5, 20.0, 10), ShockScale(0.0, 1.0, 0))
    wide = forecast_revenue(**kwargs, shock=shock)
    row = wide.table.set_index("group").loc["x"]
    assert row["p90"] - row["p10"] > 3 * (alone["p90"] - alone["p10"])
    totals = wide.sims[:, 0, 0]
    assert row["p_hit_quota"] == pytest.approx(float((totals >= 330.0).mean()))
    assert alone["p_hit_quota"] < 0.05 < row["p_hit_quota"]  # 330 is 3.3 sd of luck, not of model error


def test_the_models_bias_moves_the_open_deals_not_the_new_ones() -> None:
    """A recentred shock is the deal models' steady bias: the open deals' wins move by it, the
    deals not created yet (their win rate is their cohorts') do not."""
    deals = pd.DataFrame({"amount": [1.0] * 400, "group": ["x"] * 400})
    kwargs = {
        "deals": deals,
        "p_win": np.full(400, 0.5),
        "closed_by": np.tile([0.0, 1.0, 1.0], (400, 1)),
        "edges": [0.0, 10.0, 20.0],
        "horizon_days": 20,
        "new_deals": _two_speed_model(),
        "as_of": T("2025-01-01"),
        "periods": [Period(T("2025-01-01"), T("2025-02-01"), "range", "jan")],
        "groups": ["x"],
        "won_to_date": np.array([[0.0]]),
        "n_sims": 4000,
    }
    kwargs["new_deals"].groups[:] = ["x"]
    still = CommonShock(ShockScale(0.0, 1.0, 0), ShockScale(0.0, 1.0, 0))
    moved = CommonShock(ShockScale(0.0, 1.0, 0), ShockScale(0.0, 1.0, 0), centre=-1.0)
    a = forecast_revenue(**kwargs, shock=still).table.set_index("group").loc["x"]
    b = forecast_revenue(**kwargs, shock=moved).table.set_index("group").loc["x"]
    assert a["from_open_deals"] == pytest.approx(200.0, rel=0.02)
    assert b["from_open_deals"] == pytest.approx(400 * float(shifted(np.array([0.5]), -1.0)[0]), rel=0.02)
    assert a["from_new_deals"] > 0 and b["from_new_deals"] == a["from_new_deals"]


def test_bias_estimate_is_a_shrunk_precision_weighted_mean() -> None:
    assert bias_estimate([], [], 0.3, 0.5) == 0.0
    assert bias_estimate([-1.0] * 4, [0.01] * 4, 0.3, 0.0) == 0.0  # no recentring without a prior
    # weights 1 / (0.09 + 0.01) = 10 each: 4 cuts at -1 -> -40 / (40 + 1 / 0.25)
    assert bias_estimate([-1.0] * 4, [0.01] * 4, 0.3, 0.5) == pytest.approx(-40 / 44)
    shock = CommonShock(ShockScale(0.0, 1.0, 0), ShockScale(0.0, 1.0, 0), centre=-0.5)
    win, volume = shock.draw(10, np.random.default_rng(0))
    assert (win == -0.5).all() and (volume == 0.0).all()


def test_unseen_from_is_the_latest_test_cut_of_time_splits_only() -> None:
    a = {"method": "time", "cuts": ["2024-01-01", "2024-06-01"]}
    b = {"method": "time", "cuts": ["2024-02-01", "2024-07-01"]}
    assert unseen_from(a, b) == T("2024-07-01")
    assert unseen_from(a, {"method": "entity_random"}) is None
    assert unseen_from(a, None) is None


def test_held_out_models_drop_the_cuts_they_have_seen_but_keep_the_volume_evidence() -> None:
    """Cuts before the evaluation models' test cut are in-sample for them too: no win evidence is
    taken from those (the models are never called), while the creation counts need no model."""
    sim = simulate_crm(SimulationConfig(n_leads=1500, seed=3, months=18))
    as_of = T("2025-03-01")
    past = crm_as_of(sim.tables, as_of, DEFAULT_PIPELINE)
    never = Pipeline([("never_called", "passthrough")])
    held = HeldOutModels(never, never, unseen_from=as_of)
    models = DealModels(never, never, [30.0, 60.0], 180.0, {}, held)
    settings = ShockSettings()
    shock = estimate_shock(past, DEFAULT_PIPELINE, as_of, models, settings)
    assert shock.win.cuts == 0 and shock.win.sigma == pytest.approx(settings.win_prior.sigma)
    assert shock.volume.cuts == settings.cuts
    assert not any("win_shift" in row for row in shock.evidence)


def test_choose_win_level_takes_the_smallest_wape_over_the_cuts() -> None:
    from forecast.revenue.engine import choose_win_level

    observed = [100.0, 80.0, 120.0]
    expected = {"deal_win": [60.0, 50.0, 70.0], "blend": [90.0, 75.0, 100.0], "hazard": [130.0, 110.0, 150.0]}
    level, errors = choose_win_level(expected, observed, min_cuts=3)
    assert level == "blend"
    assert errors["deal_win"] == pytest.approx((40 + 30 + 50) / 300)
    assert errors["blend"] == pytest.approx((10 + 5 + 20) / 300)
    # too few cuts, or nothing won in them: the deal-win model, with no errors to show
    assert choose_win_level(expected, observed, min_cuts=4) == ("deal_win", {})
    assert choose_win_level(expected, [0.0, 0.0, 0.0], min_cuts=3) == ("deal_win", {})
    # a tie keeps the earlier level of WIN_LEVELS (deal_win before blend before hazard)
    tie = {"deal_win": [90.0], "hazard": [110.0]}
    assert choose_win_level(tie, [100.0], min_cuts=1)[0] == "deal_win"


class _ConstantWin(BaseEstimator):
    """A win model saying ``p`` for every deal."""

    def __init__(self, p: float) -> None:
        self.p = p

    def fit(self, *_: object) -> _ConstantWin:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.column_stack([np.full(len(frame), 1 - self.p), np.full(len(frame), self.p)])


class _LinearWins(BaseEstimator):
    """A competing-risks close model whose incidence of winning rises linearly to ``level`` at 180 days."""

    competing_ = True

    def __init__(self, level: float) -> None:
        self.level = level

    def fit(self, *_: object) -> _LinearWins:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def win_incidence(self, x: pd.DataFrame) -> np.ndarray:
        return np.tile(np.array([0.0, 0.5, 1.0]) * self.level, (len(x), 1))

    def survival(self, x: pd.DataFrame) -> np.ndarray:
        return 1.0 - self.win_incidence(x)


def test_auto_win_level_follows_the_level_closest_to_the_cuts_wins() -> None:
    """A deal model far below the realised wins loses to the hazard's level on the past cuts."""
    from forecast.revenue.engine import WIN_LEVELS, win_levels

    sim = simulate_crm(SimulationConfig(n_leads=3000, seed=3, months=18))
    as_of = T("2025-05-01")
    past = crm_as_of(sim.tables, as_of, DEFAULT_PIPELINE)
    win = Pipeline([("win", _ConstantWin(0.01))])
    close = Pipeline([("prep", "passthrough"), ("close", _LinearWins(0.6))])
    models = DealModels(win, close, [0.0, 90.0, 180.0], 180.0, {})
    auto = estimate_shock(past, DEFAULT_PIPELINE, as_of, models, ShockSettings(min_deals=5, win_level="auto"))
    assert set(auto.level_errors) == set(WIN_LEVELS)
    assert auto.win_level != "deal_win"
    assert auto.level_errors[auto.win_level] < auto.level_errors["deal_win"]
    judged = [row for row in auto.evidence if "win_shift" in row]
    assert len(judged) >= 3
    # the shifts are measured on the chosen level: its expected wins are the ones reported
    asked = estimate_shock(
        past, DEFAULT_PIPELINE, as_of, models, ShockSettings(min_deals=5, win_level="deal_win")
    )
    assert asked.win_level == "deal_win" and asked.level_errors == {}
    mine = [row["wins_expected"] for row in auto.evidence if "win_shift" in row]
    theirs = [row["wins_expected"] for row in asked.evidence if "win_shift" in row]
    assert sum(mine) > sum(theirs)
    with pytest.raises(ValueError, match="win_level"):
        estimate_shock(past, DEFAULT_PIPELINE, as_of, models, ShockSettings(min_deals=5, win_level="best"))
    # without a competing-risks close model only the deal-win level exists
    plain = DealModels(win, Pipeline([("close", "passthrough")]), [0.0, 90.0, 180.0], 180.0, {})
    assert list(win_levels(np.array([0.2]), np.zeros((1, 3)), plain)) == ["deal_win"]
    levels = win_levels(np.array([0.2]), np.array([[0.0, 0.3, 0.6]]), models)
    assert levels["hazard"] == pytest.approx([0.6]) and levels["blend"] == pytest.approx([0.4])


def test_win_evidence_weighted_by_amount_measures_the_won_amount() -> None:
    """The same cuts and wins; weighted by amount, each cut's shift matches its won amount instead."""
    sim = simulate_crm(SimulationConfig(n_leads=3000, seed=3, months=18))
    as_of = T("2025-05-01")
    past = crm_as_of(sim.tables, as_of, DEFAULT_PIPELINE)
    win = Pipeline([("win", _ConstantWin(0.3))])
    close = Pipeline([("prep", "passthrough"), ("close", _LinearWins(0.6))])
    models = DealModels(win, close, [0.0, 90.0, 180.0], 180.0, {})
    count = estimate_shock(past, DEFAULT_PIPELINE, as_of, models, ShockSettings(min_deals=5))
    amount = estimate_shock(
        past, DEFAULT_PIPELINE, as_of, models, ShockSettings(min_deals=5, weigh_wins_by="amount")
    )
    by_count = [row for row in count.evidence if "win_shift" in row]
    by_amount = [row for row in amount.evidence if "win_shift" in row]
    assert len(by_count) == len(by_amount) >= 3
    assert [r["wins_observed"] for r in by_count] == [r["wins_observed"] for r in by_amount]
    assert any(abs(a["win_shift"] - c["win_shift"]) > 0.01 for a, c in zip(by_amount, by_count, strict=True))
    assert amount.win.mean_shift != pytest.approx(count.win.mean_shift)


def test_a_win_without_its_creation_date_is_left_out_of_the_pairs() -> None:
    created = [T("2024-05-01") + pd.Timedelta(days=i) for i in range(30)]
    deals = pd.DataFrame(
        {
            "group": ["a"] * 30,
            "created_at": [pd.NaT, *created[1:]],
            "closed_at": [c + pd.Timedelta(days=10) for c in created],
            "outcome": ["won"] * 30,
            "amount": [1_000.0] * 30,
        }
    )
    model = fit_new_deal_model(deals, T("2024-07-01"), ["a"])
    assert len(model.cycle_pools[0]) == len(model.amount_pools[0]) == 29
    assert np.isfinite(model.cycle_pools[0]).all()
    as_of = T("2024-07-01")
    periods = [(as_of, T("2024-08-01"))]
    mu = model.expected_wins(as_of, periods)
    sims = simulate_new_deals(
        mu, model.amount_pools, 100, np.random.default_rng(0), pair_weights=model.pair_weights(as_of, periods)
    )
    assert np.isfinite(sims).all() and sims.sum() > 0


def test_weighted_picks_follow_the_weights_and_never_pick_a_zero() -> None:
    weights = [np.array([[0.0, 3.0, 1.0, 0.0, 3.0, 2.0]])]
    mu = np.array([[50.0]])
    pool = [np.array([1e9, 1.0, 10.0, 1e9, 100.0, 1_000.0])]
    sims = simulate_new_deals(mu, pool, 20_000, np.random.default_rng(1), pair_weights=weights)
    mean_amount = (3 * 1.0 + 1 * 10.0 + 3 * 100.0 + 2 * 1_000.0) / 9
    assert sims.max() < 1e9  # the pairs weighing 0 are never drawn
    assert sims.mean() == pytest.approx(50.0 * mean_amount, rel=0.01)


def test_wins_expected_where_no_pair_lands_are_refused() -> None:
    with pytest.raises(ValueError, match="no pair"):
        simulate_new_deals(
            np.array([[2.0]]),
            [np.array([5.0])],
            10,
            np.random.default_rng(0),
            pair_weights=[np.zeros((1, 1))],
        )


def test_a_new_deal_model_refuses_amounts_without_their_cycles() -> None:
    with pytest.raises(ValueError, match="2 amounts for 1 cycles"):
        NewDealModel(["a"], np.array([1.0]), np.array([0.5]), [np.array([1.0, 2.0])], [np.array([3.0])])


def test_pair_weights_count_a_cycle_on_a_bound_once_with_an_as_of_at_a_time_of_day() -> None:
    as_of = T("2024-07-01 13:17:41.123")
    model = NewDealModel(
        ["a"], np.array([1.0]), np.array([1.0]), [np.array([1.0] * 3)], [np.array([0.1, 7.0, 9.3])]
    )
    periods = [
        (as_of, as_of + pd.Timedelta(days=7)),
        (as_of + pd.Timedelta(days=7), as_of + pd.Timedelta(days=14)),
    ]
    (w,) = model.pair_weights(as_of, periods)
    # 14 creation days: a 7-day cycle lands on the second week's first instant, so in it, from days 0-6
    assert w[:, 1].tolist() == [0.0, 7.0]
    assert w.sum(axis=0).tolist() == [14.0, 7.0, 5.0]  # 9.3 days: from days 0-4 only


def test_the_goals_view_leaves_the_events_out_and_gives_the_same_goals_and_pacing() -> None:
    """``forecast revenue`` prepares the CRM for its goals without the activities (seconds at 1M leads)."""
    from forecast.revenue.job import _quota_lookup, goals_view, pacing
    from forecast.tracking.data import prepare

    sim = simulate_crm(SimulationConfig(n_leads=1500, seed=3, months=12))
    frames = dict(sim.tables)
    as_of = pd.Timestamp(sim.end) - pd.Timedelta(days=40)
    full, light = prepare(frames, DEFAULT_PIPELINE, as_of), goals_view(frames, DEFAULT_PIPELINE, as_of)
    assert len(full.activities) > 0 and light.activities.empty and light.engagement.empty
    period = period_grid(as_of, 1, "month")[0]
    pd.testing.assert_frame_equal(
        pacing(frames, DEFAULT_PIPELINE, as_of, period, full),
        pacing(frames, DEFAULT_PIPELINE, as_of, period, light),
    )
    for group in ("rep", "team", None):
        lookups = [_quota_lookup(frames, DEFAULT_PIPELINE, as_of, group, d) for d in (full, light)]
        names = [*sorted(set(full.reps["rep_id"] if group == "rep" else full.reps["team"]))[:5], "(all)"]
        bounds = [(period.start, period.end), (as_of - pd.Timedelta(days=90), as_of)]
        goals = lookups[0].table(names, bounds)
        assert np.isfinite(goals).any()  # the simulated CRM has quotas: goals to compare
        np.testing.assert_array_equal(goals, lookups[1].table(names, bounds))
