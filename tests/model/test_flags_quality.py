"""Quality gate of the flags on the simulated CRM (fixed seed): issue 7.

- the flags (severity ``high``: p_churn >= 0.5 and going cold) beat the fixed "no activity" rule
  taken at the same flag rate, by F1, against actual losses in the next 30 days;
- p_churn of open deals is calibrated: ECE <= 0.03 on the held-out slice of `train churn-risk`.

The CRM has 60,000 leads (about 10,000 deals): at 20,000 the deal test slice has ~2,000 rows and
its ECE moves by about 0.01 between seeds. The backtest's churn model is trained only on what was
known at the backtest's first date. Figures measured at the time of writing are in docs/flags.md.
"""

from __future__ import annotations

import pandas as pd
import pytest

from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.features.snapshots import LabelConfig, parse_every
from forecast.features.source import frames_source
from forecast.flags.backtest import BacktestResult, backtest_dates, run_backtest, train_scorer_before
from forecast.flags.config import FlagsConfig
from forecast.models.config import TrainingConfig
from forecast.training.binary import TrainResult, train_binary
from forecast.training.datasets import snapshot_table, table_input
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains the churn model on a simulated CRM

CHURN = TrainingConfig.from_yaml(REPO / "training" / "churn_risk.yaml")
FLAGS = FlagsConfig.from_yaml(REPO / "training" / "flags.yaml")
N_LEADS = 60_000
SEED = 11
"""Not the seed the severities and thresholds were chosen on (42, the default CRM)."""


@pytest.fixture(scope="module")
def world() -> dict:
    sim = simulate_crm(SimulationConfig(n_leads=N_LEADS, seed=SEED))
    h = FLAGS.horizon_days
    assert CHURN.snapshots.horizon_days == h
    with frames_source(sim.tables) as src:
        end = src.data_end()
        table = snapshot_table(src, CHURN, LabelConfig(h, h), data_end=end)
        # the gate judges the evaluation model on the future slice: the refit on every labelled
        # row (tested in tests/unit/test_crossfit.py) is skipped here; the backtest's scorer keeps it
        judged_only = CHURN.model_copy(
            update={"final_fit": CHURN.final_fit.model_copy(update={"enabled": False})}
        )
        model = train_binary(table_input(table, CHURN.label), judged_only)
        dates, _ = backtest_dates(
            pd.Timestamp("2025-03-01"), pd.Timestamp("2025-12-31"), parse_every(FLAGS.backtest.every), h, end
        )
        scorer, _summary = train_scorer_before(src, CHURN, dates[0], h)
        backtest = run_backtest(src, "opportunity", dates, FLAGS, scorer=scorer, target="lost", data_end=end)
    return {"model": model, "backtest": backtest}


def test_p_churn_is_calibrated_and_beats_its_baselines(world: dict) -> None:
    result: TrainResult = world["model"]
    print("churn_risk:", result.metrics, {k: v["roc_auc"] for k, v in result.baselines.items()})
    assert result.model_kind == "lightgbm"
    assert result.metrics["n"] > 5000
    assert result.metrics["ece"] <= 0.03
    for name, metrics in result.baselines.items():
        assert result.metrics["brier"] < metrics["brier"], name


def test_flags_beat_the_no_activity_rule_at_the_same_flag_rate(world: dict) -> None:
    bt: BacktestResult = world["backtest"]
    table = bt.table.set_index("method")
    print(bt.table.drop(columns="what").round(3).to_string())
    print(bt.per_flag.round(3).to_string())
    flags, rule = table.loc["flags"], table.loc["baseline_no_activity_top_k"]
    assert flags["flagged"] == rule["flagged"] > 1000  # equal flag rate, enough flags to compare
    assert flags["f1"] > rule["f1"]
    assert flags["lift"] > 1.5
    assert table.loc["p_churn_top_k", "f1"] > rule["f1"]
    assert len(bt.dates) >= 15


def test_the_learned_silence_is_a_better_alarm_than_the_average_deal(world: dict) -> None:
    per_flag = world["backtest"].per_flag.set_index("flag")
    assert per_flag.loc["going_cold", "lift"] > 1.5
    assert per_flag.loc["churn_risk", "lift"] > 1.5
