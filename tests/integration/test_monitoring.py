"""Monitoring and retraining end to end: real simulations, DuckDB, Evidently and MLflow (no mocks).

One scenario (a single test, so parallel workers do not train it twice): lead scoring is trained
and promoted on a simulated CRM; a fresh simulation with the same settings gives ``ok``; one with
a shifted lead-source mix and conversion rate gives ``retrain`` naming the drifted feature;
``forecast retrain`` on the shifted CRM promotes a challenger that is better there, and refuses a
crippled one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from forecast.data.simulate import SimulationConfig, simulate_crm
from tests.cli import cli_env, fast_config
from tests.cli import cli_json as _cli
from tests.conftest import REPO

SHIFTED_MIX = {
    "cold_call": 0.3,
    "outbound_email": 0.3,
    "paid_ads": 0.2,
    "social": 0.1,
    "web_form": 0.05,
    "referral": 0.05,
}


def _env(root: Path, warehouse: str = "a") -> dict[str, str]:
    return cli_env(root, warehouse)


def _crm(root: Path, name: str, config: SimulationConfig) -> None:
    simulate_crm(config).write(root / f"crm_{name}")
    assert _cli(_env(root, name), "ingest", str(root / f"crm_{name}"))["balanced"]


@pytest.mark.slow  # two CRMs, trains and retrains: over 2 minutes
def test_monitor_and_retrain_on_clean_and_shifted_crms(tmp_path: Path) -> None:
    root = tmp_path
    _crm(root, "a", SimulationConfig(n_leads=8000, seed=11, months=18))
    _crm(root, "clean", SimulationConfig(n_leads=8000, seed=12, months=18))
    _crm(
        root,
        "shifted",
        SimulationConfig(n_leads=12000, seed=13, months=18, source_mix=SHIFTED_MIX, conversion_shift=1.0),
    )
    fast = str(fast_config(root, "lead_scoring"))  # few, fast trees: the verdicts, not the model, are tested
    first = _cli(_env(root), "train", "lead-scoring", "--promote", "--config", fast)
    assert first["promotion"]["promoted"]
    client = MlflowClient(_env(root)["FORECAST_MLFLOW_TRACKING_URI"])
    logged = {a.path for a in client.list_artifacts(first["run_id"], "evaluation")}
    assert "evaluation/reference.parquet" in logged

    # the champion was trained on warehouse a: monitoring it on another CRM is refused unless named
    refused = _cli(_env(root, "clean"), "monitor", "--model", "lead-scoring", code=2)
    assert (
        "trained on the warehouse" in refused["error"]
        and "--models lead_scoring=lead_scoring" in refused["error"]
    )
    named = ("--models", "lead_scoring=lead_scoring")

    # (a) a fresh simulation with the same settings: ok
    clean = _cli(_env(root, "clean"), "monitor", "--model", "lead-scoring", *named, code=0)
    assert len(clean["warnings"]) == 1 and "used as asked" in clean["warnings"][0]
    assert clean["verdict"] == "ok" and clean["exit_code"] == 0 and clean["reasons"] == []
    assert clean["quality"]["current"]["metrics"]["n"] >= 300  # outcomes arrived and were judged
    assert len(clean["quality"]["current"]["deciles"]) == 10
    for key in ("report_html", "classification_html", "report_json"):
        assert Path(clean["files"][key]).is_file()
    stored = json.loads(Path(clean["files"]["report_json"]).read_text(encoding="utf-8"))
    assert stored["verdict"] == "ok" and stored["evidently"]["drift"]["metrics"]
    run = client.get_run(clean["mlflow_run_id"])
    assert run.data.tags["kind"] == "monitoring" and run.data.tags["verdict"] == "ok"
    assert "current_ece" in run.data.metrics and "drift_share" in run.data.metrics

    # (b) a shifted lead-source mix and conversion rate: retrain, naming the drifted feature
    shifted = _cli(_env(root, "shifted"), "monitor", "--model", "lead-scoring", *named, code=11)
    assert shifted["verdict"] == "retrain" and shifted["exit_code"] == 11
    assert "source" in shifted["drift"]["drifted"]
    assert any("source" in reason for reason in shifted["reasons"])
    levels = {f["criterion"]: f["level"] for f in shifted["findings"]}
    assert levels["ece_rise"] == "retrain"
    assert (
        shifted["quality"]["current"]["metrics"]["base_rate"]
        > clean["quality"]["current"]["metrics"]["base_rate"]
    )

    # (c) retrain on the shifted CRM: the challenger is better there and is promoted ...
    retrained = _cli(_env(root, "shifted"), "retrain", "--model", "lead-scoring", "--config", fast, code=0)
    assert retrained["promoted"] and retrained["version"] == "2"
    decision = retrained["promotion"]
    assert decision["challenger_metrics"]["brier"] < decision["champion_metrics"]["brier"]
    assert str(client.get_model_version_by_alias("lead_scoring", "champion").version) == "2"
    tags = client.get_run(retrained["run_id"]).data.tags
    assert tags["trigger"] == "retrain" and tags["promoted"] == "True" and tags["promotion_reason"]

    # ... and a crippled challenger is refused (exit 3), the champion stays
    crippled = yaml.safe_load((REPO / "training" / "lead_scoring.yaml").read_text(encoding="utf-8"))
    crippled["lightgbm"].update({"n_estimators": 3, "learning_rate": 0.001, "calibration": "none"})
    # the crippled LightGBM model itself goes to the gate: no logistic stands in for it (that
    # fallback, tested in tests/unit/test_family_fallback.py, would refit a whole other family)
    crippled["family"] = {"logistic_where_lightgbm_loses": False}
    path = root / "crippled.yaml"
    path.write_text(yaml.safe_dump(crippled), encoding="utf-8")
    refused = _cli(_env(root, "shifted"), "retrain", "--model", "lead-scoring", "--config", str(path), code=3)
    assert not refused["promoted"] and refused["exit_code"] == 3 and refused["reason"]
    assert client.get_run(refused["run_id"]).data.params["model_kind"] == "lightgbm"
    assert str(client.get_model_version_by_alias("lead_scoring", "champion").version) == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor", "--model", "deal-win"], "no model 'deal_win'"),
        (["monitor", "--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["retrain", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    ],
)
def test_bad_input_is_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    out = _cli(_env(tmp_path), *args, code=2)
    assert not out["ok"] and message in out["error"]
