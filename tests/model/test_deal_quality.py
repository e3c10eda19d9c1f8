"""Quality gates of deal win probability and time to close on the simulated CRM (fixed seeds).

Thresholds come from the issue; measured values at the time of writing are in docs/models.md.
The simulated CRM is larger than the default one (deals are a sixth of leads and the at-creation
signal is weak: the gate's AUC comparison needs a few thousand test deals to mean anything).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.evaluate import expected_calibration_error
from forecast.features.build import build_feature_table
from forecast.features.snapshots import AT_CREATION, LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.training.binary import TrainResult, train_binary
from forecast.training.datasets import resolve_horizon, snapshot_table, table_input
from forecast.training.survival import train_time_to_close
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains deal win and time to close on a simulated CRM


def _judged_only(config: TrainingConfig) -> TrainingConfig:
    """``config`` without the champion's refit on every labelled row.

    Every gate here judges the evaluation model on the future slice (the refit has no rows left
    to be judged on), so the refit, about half of each training, is skipped. The refit itself is
    tested in ``tests/unit/test_crossfit.py`` and trained by the CLI tests. One choice of the
    evaluation reads the served model: with ``snapshots.p_win_days`` set, whether the logistic
    family stands in depends on the refit's reach (``training.binary._served_family``): the world
    fixture checks that the horizon read from the CRM leaves it unset.
    """
    return config.model_copy(update={"final_fit": config.final_fit.model_copy(update={"enabled": False})})


WIN = _judged_only(TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml"))
CLOSE = _judged_only(TrainingConfig.from_yaml(REPO / "training" / "time_to_close.yaml"))
N_LEADS = 60_000
RATIO_FLOOR = 0.97


@pytest.fixture(scope="module")
def world() -> dict:
    sim = simulate_crm(SimulationConfig(n_leads=N_LEADS, seed=42))
    with frames_source(sim.tables) as src:
        end = src.data_end()
        config = resolve_horizon(src, WIN)
        assert config.snapshots.p_win_days is None  # (see _judged_only)
        h = config.snapshots.horizon_days
        table = snapshot_table(src, config, LabelConfig(h, h), data_end=end)
        creation = build_feature_table(src, "opportunity", AT_CREATION, LabelConfig(h, h), data_end=end)
    win = train_binary(table_input(table, config.label), config)
    return {"sim": sim, "table": table, "creation": creation, "win": win, "config": config}


def test_deal_win_beats_the_stage_win_rate_and_is_calibrated(world: dict) -> None:
    result: TrainResult = world["win"]
    assert result.model_kind == "lightgbm"
    stage = result.baselines["stage_win_rate"]
    print("deal win:", result.metrics, "stage:", stage)
    assert result.metrics["roc_auc"] > stage["roc_auc"]
    assert result.metrics["brier"] < stage["brier"]
    assert result.metrics["ece"] <= 0.03
    for name, metrics in result.baselines.items():
        assert result.metrics["brier"] < metrics["brier"], name


def test_deal_win_at_creation_is_near_the_best_achievable(world: dict) -> None:
    result: TrainResult = world["win"]
    creation = world["creation"].frame
    test_cut = pd.Timestamp(result.splits["cuts"][1])
    rows = creation[(creation["as_of"] >= test_cut) & ~creation["label_within_h_censored"]]
    rows = rows.reset_index(drop=True)
    assert len(rows) > 1500
    truth = world["sim"].truth["truth_opportunities"].set_index("opportunity_id")
    best = truth.loc[rows["opportunity_id"], "p_win_observable"].to_numpy()
    y = rows[WIN.label].astype(int).to_numpy()
    p = result.eval_pipeline.predict_proba(rows)[:, 1]
    auc_model, auc_best = roc_auc_score(y, p), roc_auc_score(y, best)
    print(f"deal win at creation: model AUC {auc_model:.4f}, best achievable {auc_best:.4f}")
    assert auc_model >= RATIO_FLOOR * auc_best, (auc_model, auc_best)


def test_deal_win_per_stage_calibration_is_reported(world: dict) -> None:
    stage = world["win"].segments["stage"]
    assert len(stage) >= 4
    big = stage[stage["n"] >= 500]
    assert (big["gap"].abs() <= 0.08).all(), big


@pytest.fixture(scope="module")
def closing(world: dict) -> TrainResult:
    return train_time_to_close(table_input(world["table"], CLOSE.label), CLOSE)


def test_time_to_close_beats_the_stage_only_baseline(closing: TrainResult) -> None:
    m, km = closing.metrics, closing.baselines["stage_km"]
    print("time to close:", m, "stage km:", km, "logistic hazard:", closing.baselines["logistic_hazard"])
    assert m["c_index"] > km["c_index"]
    assert m["ibs"] < km["ibs"]
    assert m["c_index"] > closing.baselines["logistic_hazard"]["c_index"]


def test_p_close_within_30_days_is_calibrated(closing: TrainResult) -> None:
    m = closing.metrics
    assert m["n"] > 3000
    assert m["ece"] <= 0.05
    y = closing.test_frame["label_closed_within_30d"].to_numpy()
    assert expected_calibration_error(y, closing.test_p) == pytest.approx(m["ece"])
    assert abs(float(np.mean(closing.test_p)) - float(np.mean(y))) <= 0.03
