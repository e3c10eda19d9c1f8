"""Flags end to end: `forecast flags`, churn-risk training, flag columns in scores, the backtest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from forecast.batch import score_job
from forecast.config import load_settings
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.flags.actions import ACTIONS
from tests.cli import cli_env
from tests.cli import cli_json as _cli


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("flags")
    simulate_crm(SimulationConfig(n_leads=8_000, seed=3)).write(root / "crm")
    env = cli_env(root)
    assert _cli(env, "ingest", str(root / "crm"))["balanced"]
    return env


def test_flags_without_a_churn_model_give_rules_and_learned_silence(env: dict[str, str]) -> None:
    out = Path(env["ROOT"]) / "flags.csv"
    summary = _cli(env, "flags", "--as-of", "2025-06-01", "--output", str(out), "--limit", "5")
    assert summary["as_of"].startswith("2025-06-01") and summary["horizon_days"] == 30
    deals = summary["entities"]["deal"]
    assert deals["open"] > 50 and deals["skipped_flags"] == {}
    assert "no churn_risk champion" in deals["churn_model"]
    assert {"going_cold", "no_next_step"} <= set(deals["by_flag"])
    assert "going_cold" in summary["entities"]["lead"]["by_flag"]
    flags = pd.read_csv(out)
    assert len(flags) == summary["rows"] and set(flags["entity"]) == {"deal", "lead"}
    assert flags["evidence"].str.contains(r"\d").all()  # numbers in every evidence
    for flag, action in ACTIONS.items():
        assert (flags.loc[flags["flag"] == flag, "suggested_action"] == action.text).all()
    cold = flags[flags["flag"] == "going_cold"]["evidence"].iloc[0]
    assert "usually touched every" in cold and "90th pct" in cold
    assert len(summary["top"]) == 5 and summary["top"][0]["severity"] == "high"


def test_flags_of_a_bad_entity_is_a_clear_error(env: dict[str, str]) -> None:
    result = _cli(env, "flags", "--entity", "accounts", code=2)
    assert "deal, lead or both" in result["error"]


@pytest.fixture(scope="module")
def churn(env: dict[str, str]) -> dict:
    return _cli(env, "train", "churn-risk", "--promote")


def test_churn_risk_trains_with_the_shared_machinery_and_feeds_the_flags(
    env: dict[str, str], churn: dict
) -> None:
    assert churn["promotion"]["promoted"], churn["promotion"]["reason"]
    assert churn["model_kind"] == "lightgbm"
    assert {"stage_win_rate", "logistic", "base_rate"} <= set(churn["baselines"])
    summary = _cli(env, "flags", "--as-of", "2025-06-01", "--entity", "deal")
    assert summary["entities"]["deal"]["churn_model"].startswith("p_churn from churn_risk v")
    assert 0 < summary["entities"]["deal"]["mean_p_churn"] < 1
    assert set(summary["entities"]) == {"deal"}


def test_scores_carry_the_flags_and_p_churn(env: dict[str, str], churn: dict) -> None:
    settings = load_settings(
        warehouse=Path(env["FORECAST_WAREHOUSE"]), mlflow_tracking_uri=env["FORECAST_MLFLOW_TRACKING_URI"]
    )
    out = Path(env["ROOT"]) / "scores.parquet"
    summary = score_job(
        settings, model_name="churn_risk", output=out, as_of=pd.Timestamp("2025-06-01"), with_flags=True
    )
    scores = pd.read_parquet(out)
    assert summary.scored == len(scores) > 0
    assert {"p_churn", "at_risk", "flags", "top_flag", "flag_evidence", "suggested_action"} <= set(
        scores.columns
    )
    assert list(scores.columns).count("p_churn") == 1
    flagged = scores[scores["n_flags"] > 0]
    assert flagged["suggested_action"].notna().all() and flagged["flag_evidence"].notna().all()
    assert (scores.loc[scores["at_risk"], "top_flag"].isin(["churn_risk", "going_cold"])).all()


def test_backtest_flags_reports_and_logs_to_mlflow(env: dict[str, str], churn: dict) -> None:
    summary = _cli(env, "backtest", "flags", "--from", "2025-05-01", "--to", "2025-12-20")
    deals = summary["results"]["deal"]
    methods = {m["method"]: m for m in deals["methods"]}
    assert {"flags", "baseline_no_activity_top_k", "p_churn_top_k", "rule_no_activity_14d"} <= set(methods)
    assert methods["flags"]["flagged"] == methods["baseline_no_activity_top_k"]["flagged"]
    for m in methods.values():
        assert {"precision", "recall", "f1", "lift", "flag_rate"} <= set(m)
    assert deals["as_of_dates"] == 16 and deals["p_churn_ece"] is not None
    assert any("left out" in n for n in deals["notes"])  # the last dates' outcome is not known yet
    run = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"]).get_run(summary["run_id"])
    assert "deal_flags_f1" in run.data.metrics and "deal_p_churn_ece" in run.data.metrics


def test_flags_refuse_a_churn_model_of_another_warehouse_unless_named(
    env: dict[str, str], churn: dict
) -> None:
    root = Path(env["ROOT"])
    simulate_crm(SimulationConfig(n_leads=1_500, seed=4)).write(root / "crm_b")
    other = {**env, "FORECAST_WAREHOUSE": str(root / "b.duckdb")}
    assert _cli(other, "ingest", str(root / "crm_b"))["balanced"]
    error = _cli(other, "flags", "--entity", "deal", code=2)["error"]
    assert f"churn_risk v{churn['version']}" in error and "b.duckdb" in error
    assert "--churn-model churn_risk" in error and "train churn-risk --promote" in error
    named = _cli(other, "flags", "--entity", "deal", "--churn-model", "churn_risk")
    assert named["entities"]["deal"]["churn_model"] == f"p_churn from churn_risk v{churn['version']}"
    assert len(named["warnings"]) == 1 and "used as asked" in named["warnings"][0]
    ambiguous = _cli(other, "flags", "--churn-model", "churn_risk", code=2)["error"]
    assert "--entity deal or lead" in ambiguous
    own = _cli(env, "flags", "--entity", "deal", "--as-of", "2025-06-01")  # its own warehouse: no warning
    assert own["warnings"] == [] and own["entities"]["deal"]["churn_model"].startswith(
        "p_churn from churn_risk"
    )
