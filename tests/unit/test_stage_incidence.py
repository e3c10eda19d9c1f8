"""The small-data deal model: stage win incidence, split by deal size, carried past the follow-up."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from forecast.models.stage_incidence import StageWinIncidence, extrapolated_incidence, win_incidence
from forecast.models.win_horizon import p_win_days, read_days, read_proba


def _deals(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Two stages; large deals win later than the horizon far more often than small ones."""
    rng = np.random.default_rng(seed)
    stage = rng.choice(["early", "late"], n)
    amount = rng.lognormal(9.5, 1.0, n)
    large = amount > np.quantile(amount, 2 / 3)
    p_win = np.where(stage == "late", 0.6, 0.3)
    won = rng.random(n) < p_win
    days = np.where(
        won, np.where(large, rng.uniform(60, 200, n), rng.uniform(5, 50, n)), rng.uniform(5, 80, n)
    )
    censor = rng.uniform(20, 300, n)
    causes = np.where(days <= censor, np.where(won, 1, 2), 0)
    durations = np.minimum(days, censor)
    amount[:5] = np.nan  # deals without an amount
    return pd.DataFrame({"stage": stage, "amount": amount}), durations, causes


def test_size_bands_lower_the_large_deals_and_keep_the_stage_rate_without_amount() -> None:
    x, d, c = _deals(4000, 0)
    plain = StageWinIncidence(horizon_days=55.0, alpha=30.0).fit(x[["stage"]], durations=d, causes=c)
    sized = StageWinIncidence(horizon_days=55.0, alpha=30.0, amount_column="amount").fit(
        x, durations=d, causes=c
    )
    assert len(sized.edges_) == 2 and set(sized.rates_) == {"early", "late"}
    assert sized.rates_ == plain.rates_  # the stage estimates are the same; the cells refine them
    big = pd.DataFrame({"stage": ["late", "late", "late", "unknown"], "amount": [1e6, 100.0, np.nan, 1e6]})
    p = sized.predict_proba(big)[:, 1]
    assert p[0] < plain.rates_["late"] / 2 < p[1]  # large deals win within 55 days far less often
    assert p[2] == pytest.approx(plain.rates_["late"])  # no amount: the stage's estimate
    assert p[3] == pytest.approx(sized.band_rates_[2])  # unseen stage: its size band over all stages
    # the reasons: stage shift, size shift and bias add up to the log-odds
    contrib = sized.contributions(big)
    assert contrib.shape == (4, 3)
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(p / (1 - p)), atol=1e-12)
    assert contrib[2, 1] == 0.0 and contrib[0, 1] < 0 < contrib[1, 1]


def test_without_an_amount_column_or_with_too_few_amounts_the_model_is_by_stage() -> None:
    x, d, c = _deals(4000, 1)
    alone = StageWinIncidence(horizon_days=55.0, amount_column="amount").fit(
        x[["stage"]], durations=d, causes=c
    )
    assert len(alone.edges_) == 0 and alone.contributions(x[["stage"]]).shape == (4000, 2)
    few = x.assign(amount=np.where(np.arange(len(x)) < 50, x["amount"], np.nan))
    sparse = StageWinIncidence(horizon_days=55.0, alpha=30.0, amount_column="amount").fit(
        few, durations=d, causes=c
    )
    assert len(sparse.edges_) == 0  # 50 sized deals < 3 bands x 30 pseudo-deals
    np.testing.assert_allclose(sparse.predict_proba(few)[:, 1], alone.predict_proba(x[["stage"]])[:, 1])


def _constant_hazards(
    n: int, h_won: float, h_lost: float, follow: float, seed: int
) -> tuple[np.ndarray, ...]:
    """Competing exponential closes, each deal followed ``follow`` days at most."""
    rng = np.random.default_rng(seed)
    t = rng.exponential(1.0 / (h_won + h_lost), n)
    won = rng.random(n) < h_won / (h_won + h_lost)
    causes = np.where(t <= follow, np.where(won, 1, 2), 0)
    return np.minimum(t, follow), causes


@pytest.mark.parametrize(("h_won", "h_lost"), [(0.004, 0.012), (0.01, 0.005)])
def test_the_tail_past_the_follow_up_recovers_constant_hazards(h_won: float, h_lost: float) -> None:
    """Deals followed 56 days, closing at constant hazards: the incidence by 365 days is recovered.

    Read at 56 days the incidence holds well under half the eventual wins (``h_won / h``); carried
    on with the last window's hazards it lands within sampling error of the true
    ``h_won / h * (1 - exp(-h * 365))``.
    """
    d, c = _constant_hazards(20_000, h_won, h_lost, 56.0, seed=3)
    h = h_won + h_lost
    read, n = win_incidence(d, c, 56.0)
    tail, _ = win_incidence(d, c, 56.0, tail_days=365.0)
    assert n == len(d)
    assert read == pytest.approx(h_won / h * (1 - np.exp(-h * 56.0)), abs=0.01)
    assert tail == pytest.approx(h_won / h * (1 - np.exp(-h * 365.0)), abs=0.02)
    assert tail - read > 0.1
    # nothing past the read days, or no close in the last window: the incidence as read
    assert win_incidence(d, c, 56.0, tail_days=56.0)[0] == read
    assert extrapolated_incidence(np.array([5.0, 60.0]), np.array([2, 0]), 56.0, 365.0, 0.0) == 0.0


def test_a_tail_model_serves_the_carried_on_p_win_and_reads_the_data_for_the_revenue() -> None:
    x, d, c = _deals(4000, 2)
    read = StageWinIncidence(horizon_days=56.0, amount_column="amount").fit(x, durations=d, causes=c)
    tail = StageWinIncidence(horizon_days=56.0, amount_column="amount", tail_days=365.0).fit(
        x, durations=d, causes=c
    )
    assert (tail.p_win_days_, tail.read_days_) == (365.0, 56.0)
    assert (read.p_win_days_, read.read_days_) == (56.0, 56.0) and not read.tail_ratio_
    np.testing.assert_allclose(tail.read_proba(x), read.predict_proba(x)[:, 1])
    np.testing.assert_allclose(read.read_proba(x), read.predict_proba(x)[:, 1])
    assert (tail.predict_proba(x)[:, 1] >= read.predict_proba(x)[:, 1] - 1e-12).all()
    # the reasons add up to the served (carried-on) p_win's log-odds
    p = tail.predict_proba(x)[:, 1]
    np.testing.assert_allclose(tail.contributions(x).sum(axis=1), np.log(p / (1 - p)), atol=1e-9)
    # what the data never show is not invented: these large deals win only after 60 days, so read at
    # 56 days they hold next to no win, and their stage's tail ratio scales next to nothing
    large = x["amount"].to_numpy() > np.nanquantile(x["amount"], 2 / 3)
    gain = tail.predict_proba(x)[:, 1] - read.predict_proba(x)[:, 1]
    assert gain[large].mean() < 0.02 < gain[~large & x["amount"].notna().to_numpy()].mean()
    # a pipeline's revenue reading (models.win_horizon) goes through the tail model's read_proba
    pipeline = Pipeline([("identity", FunctionTransformer()), ("model", tail)])
    np.testing.assert_allclose(read_proba(pipeline, x), read.predict_proba(x)[:, 1])
    assert read_days(pipeline, 49.0) == 56.0 and p_win_days(pipeline, 49.0) == 365.0
    assert read_days(Pipeline([("model", read)]), 49.0) == 56.0
