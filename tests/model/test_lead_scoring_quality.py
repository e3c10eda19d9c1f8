"""Quality gates of lead scoring on the simulated CRM (fixed seeds), with behaviour checks.

Thresholds come from the issue; measured values at the time of writing are in docs/models.md.
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
from forecast.training.datasets import snapshot_table, table_input
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains lead scoring on a simulated CRM and the UCI files

CONFIG = TrainingConfig.from_yaml(REPO / "training" / "lead_scoring.yaml")


@pytest.fixture(scope="module")
def world() -> dict:
    sim = simulate_crm(SimulationConfig(n_leads=20_000, seed=42))  # the default simulated CRM
    with frames_source(sim.tables) as src:
        end = src.data_end()
        table = snapshot_table(src, CONFIG, LabelConfig(90, 90), data_end=end)
        creation = build_feature_table(src, "lead", AT_CREATION, LabelConfig(90, 90), data_end=end)
    result = train_binary(table_input(table, "label_converted"), CONFIG)
    return {"sim": sim, "table": table, "creation": creation, "result": result}


def test_model_beats_every_baseline_on_auc_and_brier(world: dict) -> None:
    result: TrainResult = world["result"]
    assert result.model_kind == "lightgbm"
    for name, metrics in result.baselines.items():
        assert result.metrics["roc_auc"] > metrics["roc_auc"], name
        assert result.metrics["brier"] < metrics["brier"], name
    assert result.metrics["ece"] <= 0.03


def test_at_creation_auc_is_near_the_best_achievable_and_calibrated(world: dict) -> None:
    result: TrainResult = world["result"]
    creation = world["creation"].frame
    test_cut = pd.Timestamp(result.splits["cuts"][1])
    rows = creation[(creation["as_of"] >= test_cut) & ~creation["label_censored"]].reset_index(drop=True)
    assert len(rows) > 1000
    truth = world["sim"].truth["truth_leads"].set_index("lead_id")
    best = truth.loc[rows["lead_id"], "p_convert_observable"].to_numpy()
    y = rows["label_converted"].astype(int).to_numpy()
    p = result.eval_pipeline.predict_proba(rows)[:, 1]  # the served model also fitted these rows
    auc_model, auc_best = roc_auc_score(y, p), roc_auc_score(y, best)
    print(f"at creation: model AUC {auc_model:.4f}, best achievable {auc_best:.4f}")
    assert auc_model >= 0.97 * auc_best, (auc_model, auc_best)
    assert expected_calibration_error(y, p) <= 0.03


def _more_engagement(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if (col.startswith("eng_") and col.endswith(("_7d", "_30d", "_90d"))) or col in ("eng_events_total",):
            out[col] = out[col] + 2
    out["eng_site_minutes_30d"] += 5
    out["eng_days_since_last"] = out["eng_days_since_last"].clip(upper=0.5)  # a visit just now
    out["eng_days_since_pricing_view"] = out["eng_days_since_pricing_view"].clip(upper=0.5)
    out["act_email_replies_30d"] += 1
    out["act_meetings_completed_90d"] += 1
    out["act_inbound_30d"] += 1
    out["act_inbound_90d"] += 1
    return out


def test_more_engagement_never_lowers_a_score(world: dict) -> None:
    result: TrainResult = world["result"]
    rows = result.test_frame.sample(3000, random_state=0)
    before = result.pipeline.predict_proba(rows)[:, 1]
    after = result.pipeline.predict_proba(_more_engagement(rows))[:, 1]
    assert np.all(after >= before - 1e-12)
    assert np.mean(after > before + 1e-6) > 0.5  # and it usually raises it


def test_renaming_ids_does_not_change_scores(world: dict) -> None:
    result: TrainResult = world["result"]
    rows = result.test_frame.head(2000)
    renamed = rows.assign(lead_id="X" + rows["lead_id"].astype(str).str[::-1])
    shuffled_ids = rows.assign(lead_id=rows["lead_id"].sample(frac=1, random_state=1).to_numpy())
    p = result.pipeline.predict_proba(rows)[:, 1]
    assert np.array_equal(p, result.pipeline.predict_proba(renamed)[:, 1])
    assert np.array_equal(p, result.pipeline.predict_proba(shuffled_ids)[:, 1])


def _uci_config(split: str) -> TrainingConfig:
    """The lead-scoring config for a flat export, without the champion's refit (only the test counts)."""
    return CONFIG.model_copy(
        update={
            "split": CONFIG.split.model_copy(update={"method": split}),
            "segments": [],
            "monotone_increasing": [],
            "monotone_decreasing": [],
            "final_fit": CONFIG.final_fit.model_copy(update={"enabled": False}),
        }
    )


@pytest.mark.shared_data
@pytest.mark.parametrize("file_name", ["bank-full.csv", "bank-additional-full.csv"])
def test_uci_bank_marketing_is_calibrated_on_held_out_rows(file_name: str) -> None:
    """Issue 16 item 5: calibrated on 2,000 or more held-out rows (the default, stratified split).

    ECE at most 0.02, and never more than 0.005 above a logistic regression's on the same rows.
    Measured: bank-full 0.0053 against 0.0128, bank-additional-full 0.0046 against 0.0068.
    """
    from forecast.training.datasets import export_input
    from tests.conftest import shared_dataset

    path = shared_dataset("uci-bank-marketing") / file_name
    data, _export, _raw = export_input(path, target="y", drop_columns=["duration"], delimiter=";")
    result = train_binary(data, _uci_config("stratified"))
    assert result.metrics["n"] >= 2000
    assert result.metrics["ece"] <= 0.02, result.metrics
    assert result.metrics["ece"] <= result.baselines["logistic"]["ece"] + 0.005


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("file_name", "family"), [("bank-full.csv", "lightgbm"), ("bank-additional-full.csv", "logistic")]
)
def test_uci_bank_marketing_in_time_order_is_at_least_the_logistic_regression(
    file_name: str, family: str
) -> None:
    """The files in their own order (time order), the last fifth as test: the future, as issue 16 asks.

    The last fifth is another macro regime (rates and employment fell, conversion rose). Measured
    test AUC, served model against the logistic regression fitted on the same rows: bank-full 0.721
    (LightGBM) against 0.683; bank-additional-full 0.748 (the logistic, chosen on the newest
    fitting rows, where LightGBM with the period prior had a log loss of 1.197 against 1.145;
    LightGBM would have scored 0.740 on the test, and 0.673 before the period prior).
    """
    from forecast.training.datasets import export_input
    from tests.conftest import shared_dataset

    path = shared_dataset("uci-bank-marketing") / file_name
    data, export, _raw = export_input(path, target="y", drop_columns=["duration"], delimiter=";")
    assert "duration" not in export.table.columns
    result = train_binary(data, _uci_config("order"))
    assert result.splits["method"] == "row_order"
    assert result.fit["family"]["choice"] == "auto"  # family.flat_time_ordered
    assert result.fit["family"]["chosen"] == family, result.fit["family"]
    assert result.metrics["roc_auc"] >= result.baselines["logistic"]["roc_auc"]
    if family == "lightgbm":
        assert result.metrics["roc_auc"] > result.baselines["logistic"]["roc_auc"] + 0.02
