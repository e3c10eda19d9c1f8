"""Pure parts of the robustness matrix: the gates of issue 15 and the report (no training)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from forecast.data.simulation.worlds import load_world
from forecast.robustness import cut_of, gates, markdown_table


def _record(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "world": load_world("history-9m").model_dump(mode="json"),
        "facts": {"deals": 100, "deals_closed": 80},
        "deal_win": {"ok": True},
        "lead_scoring": {"ok": True, "internal": {"beats_every_baseline": True}},
        "deal_eval": {"auc": 0.75, "stage_auc": 0.70, "ece": 0.02, "rows": 900, "deals": 300},
        "lead_eval": {"auc": 0.8, "ece": 0.01, "auc_creation": 0.69, "best_auc_creation": 0.70},
    }
    base.update(parts)
    return base


def test_the_deal_gate_needs_the_margin_over_an_informative_stage_baseline() -> None:
    assert gates(_record())["deal_auc_vs_stage"] is True
    close = _record(deal_eval={"auc": 0.715, "stage_auc": 0.70, "ece": 0.02})
    assert gates(close)["deal_auc_vs_stage"] is False
    flat = _record(deal_eval={"auc": 0.52, "stage_auc": 0.54, "ece": 0.02})
    assert gates(flat)["deal_auc_vs_stage"] is None  # the stage baseline says nothing there


def test_a_failed_training_fails_the_gates_it_touches() -> None:
    failed = _record(deal_win={"ok": False, "error": "ValueError: the train split is empty"})
    failed["deal_eval"] = {"stage_auc": 0.7}
    g = gates(failed)
    assert g["model_produced"] is False
    assert g["deal_auc_vs_stage"] is False
    assert g["deal_ece"] is None
    assert "the train split is empty" in markdown_table([failed])


def test_calibration_and_creation_gates() -> None:
    g = gates(_record(deal_eval={"auc": 0.8, "stage_auc": 0.7, "ece": 0.031, "stage_ece_max": 0.06}))
    assert g["deal_ece"] is False and g["deal_stage_ece"] is False
    assert g["lead_creation_ratio"] is True  # 0.69 >= 0.97 * 0.70
    assert gates(_record(revenue={"ok": False, "error": "x"}))["forecast_produced"] is False
    without_leads = _record()
    del without_leads["lead_scoring"], without_leads["lead_eval"]
    assert "lead_ece" not in gates(without_leads)


def test_the_cut_is_the_end_of_the_history() -> None:
    assert cut_of(load_world("history-3m")) == pd.Timestamp("2024-04-01")


def test_a_model_the_promotion_gate_would_refuse_is_not_a_model_produced() -> None:
    refused = _record(deal_win={"ok": True, "internal": {"promotion_losses": ["logistic (ROC-AUC ...)"]}})
    assert gates(refused)["model_produced"] is False
    assert (
        gates(_record(deal_win={"ok": True, "internal": {"promotion_losses": []}}))["model_produced"] is True
    )
