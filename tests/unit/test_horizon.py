"""The label horizon read from the CRM's own cycle (Kaplan-Meier, censoring-aware)."""

from __future__ import annotations

import numpy as np
import pytest

from forecast.features.horizon import km_quantile, win_time_quantile


def test_km_quantile_without_censoring_is_the_empirical_quantile() -> None:
    d = np.arange(1, 101, dtype=float)
    assert km_quantile(d, np.ones(100, dtype=bool), 0.9) == 90.0


def test_censoring_lengthens_the_quantile_that_closed_deals_alone_would_give() -> None:
    rng = np.random.default_rng(0)
    true = rng.exponential(60, 5000)
    censor = rng.uniform(0, 150, 5000)  # a short history: slow deals are still open at its end
    seen = np.minimum(true, censor)
    observed = true <= censor
    naive = float(np.quantile(seen[observed], 0.5))
    km = km_quantile(seen, observed, 0.5)
    assert km is not None
    assert abs(km - 60 * np.log(2)) < 4  # the true median of the exponential
    assert km > naive + 5


def test_km_quantile_is_none_when_the_history_never_reaches_it() -> None:
    d = np.array([5.0, 10.0, 50.0, 50.0, 50.0])
    assert km_quantile(d, np.array([True, True, False, False, False]), 0.9) is None
    with pytest.raises(ValueError):
        km_quantile(d, d > 0, 1.5)


def test_km_quantile_reads_the_closes_that_happen_when_stale_deals_never_close() -> None:
    """Maven's shape: every close within 100 days, 10% of deals left open for 300 days and more.

    The share closed levels off at 0.9 and never reaches 0.95; the deals watched three times longer
    than any close show that it will not, so the horizon is the 95th percentile of the closes seen.
    """
    closes = np.arange(1, 101, dtype=float).repeat(9)  # 900 closes, 1..100 days
    stale = np.full(100, 300.0)  # 100 deals open for 300 days
    d = np.concatenate([closes, stale])
    observed = np.concatenate([np.ones(900, dtype=bool), np.zeros(100, dtype=bool)])
    assert km_quantile(d, observed, 0.5) == 56  # reached: the plain Kaplan-Meier quantile
    assert km_quantile(d, observed, 0.95) == 95
    # The same open deals followed only 110 days: later closes may yet come, no quantile.
    assert km_quantile(np.concatenate([closes, np.full(100, 110.0)]), observed, 0.95) is None
    # A handful of stale deals is not evidence of a plateau.
    few = np.concatenate([closes[:900], np.full(5, 300.0)])
    assert (
        km_quantile(few, np.concatenate([np.ones(900, dtype=bool), np.zeros(5, dtype=bool)]), 0.999) is None
    )


def test_win_time_quantile_ignores_quick_losses() -> None:
    """Four wins at 10-40 days and four losses at 5: the time to a win among winners, not to a close."""
    days = np.array([10, 20, 30, 40, 5, 5, 5, 5], dtype=float)
    outcome = np.array(["won"] * 4 + ["lost"] * 4)
    assert win_time_quantile(days, outcome, 0.5) == 20
    assert win_time_quantile(days, outcome, 0.95) == 40
    assert km_quantile(days, np.ones(8, dtype=bool), 0.5) == 5  # all closes: the losses' time


def test_win_time_quantile_weighs_later_wins_up_where_deals_were_censored() -> None:
    """Half the deals still open at 15 days: a win after that stands for two, as in Kaplan-Meier."""
    days = np.array([10, 10, 30, 15, 15], dtype=float)
    outcome = np.array(["won", "won", "won", "open", "open"])
    # incidence: 2/5 at 10; at 30 one of one at risk, weighted by S(30-) = 3/5: 0.4 + 0.6 = 1.0
    assert win_time_quantile(days, outcome, 0.5) == 30
    assert win_time_quantile(days, outcome, 0.4) == 10


def test_win_time_quantile_without_wins_is_none() -> None:
    assert win_time_quantile(np.array([3.0, 4.0]), np.array(["lost", "open"]), 0.9) is None


def test_stage_incidence_reads_the_same_curve_at_its_horizon() -> None:
    """The small-data stage model and the horizon share one Aalen-Johansen curve."""
    from forecast.models.stage_incidence import win_incidence

    days = np.array([10, 10, 30, 15, 15, 8], dtype=float)
    causes = np.array([1, 1, 1, 0, 0, 2])
    # S drops to 5/6 at the loss on day 8; 2 wins of 5 at risk on day 10; 1 of 1 on day 30
    assert win_incidence(days, causes, 5.0) == (0.0, 6)
    assert win_incidence(days, causes, 20.0)[0] == pytest.approx(5 / 6 * 2 / 5)
    assert win_incidence(days, causes, 30.0)[0] == pytest.approx(5 / 6 * 2 / 5 + 5 / 6 * 3 / 5 * 1)
    assert win_incidence(np.array([np.nan]), np.array([1]), 30.0)[1] == 0
