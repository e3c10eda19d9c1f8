"""The small-data deal model: stage win incidence, split by deal size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.models.stage_incidence import StageWinIncidence


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
