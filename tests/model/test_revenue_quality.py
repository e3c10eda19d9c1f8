"""Quality gates of the revenue forecast: a point-in-time backtest on the simulated CRM (fixed seed).

Thresholds come from the issue; measured values at the time of writing are in docs/revenue.md.
"""

from __future__ import annotations

import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.models.config import TrainingConfig
from forecast.revenue.backtest import BacktestResult, backtest_revenue
from forecast.revenue.forecast import period_grid
from tests.conftest import REPO

WIN = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")
CLOSE = TrainingConfig.from_yaml(REPO / "training" / "time_to_close.yaml")


@pytest.fixture(scope="module")
def backtest() -> BacktestResult:
    sim = simulate_crm(SimulationConfig(n_leads=30_000, seed=42, months=36))
    dates = list(pd.date_range("2026-01-01", "2026-12-01", freq="MS"))
    return backtest_revenue(
        sim.tables,
        DEFAULT_PIPELINE,
        dates,
        lambda d: period_grid(d, 1, "month")[0],
        WIN,
        CLOSE,
        retrain_every=4,
        by="team",
        n_sims=2000,
    )


def test_backtest_beats_the_stage_weighted_pipeline_by_a_fifth(backtest: BacktestResult) -> None:
    m = backtest.metrics
    print(backtest.table.round(0).to_string())
    print(m)
    assert len(backtest.table) == 12
    assert m["model"]["wape"] <= 0.8 * m["stage_weighted"]["wape"]


def test_backtest_interval_coverage(backtest: BacktestResult) -> None:
    """P10-P90 should hold the actual about 80% of the time: 70-90% over the (month, team)
    forecasts; the 12 whole-team months are too few to judge a rate alone (11 of 12 is as likely
    as 9 of 12 under 80%), so they must only not fall below 70%."""
    teams = backtest.metrics["model_by_team"]
    print(teams)
    assert teams["cells"] == 12 * backtest.groups["group"].nunique()
    assert 0.7 <= teams["coverage_p10_p90"] <= 0.9
    assert backtest.metrics["model"]["coverage_p10_p90"] >= 0.7


def test_models_never_see_the_period_they_forecast(backtest: BacktestResult) -> None:
    t = backtest.table
    trained = pd.to_datetime(t["models_trained_at"])
    assert (trained <= t["as_of"]).all()
    assert (t[["p10", "p50", "p90"]].diff(axis=1).iloc[:, 1:] >= 0).all().all()
