"""Deal win probability and time to close end to end through the CLI (real DuckDB and MLflow)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from forecast.cli import app
from forecast.data.simulate import SimulationConfig, simulate_crm
from tests.cli import cli_env, fast_config, runner
from tests.cli import cli_json as _cli


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("deals")
    sim = simulate_crm(SimulationConfig(n_leads=10_000, seed=7, months=24))
    sim.write(root / "crm")
    env = cli_env(root)
    assert _cli(env, "ingest", str(root / "crm"))["balanced"]
    return env


@pytest.fixture(scope="module")
def trained(env: dict[str, str]) -> dict[str, dict]:
    win = _cli(env, "train", "deal-win", "--promote")
    ttc = _cli(env, "train", "time-to-close", "--promote")
    return {"deal_win": win, "time_to_close": ttc}


def test_deal_win_is_logged_with_stage_baseline_and_per_stage_metrics(
    env: dict[str, str], trained: dict[str, dict]
) -> None:
    win = trained["deal_win"]
    assert win["promotion"]["promoted"], win["promotion"]["reason"]
    assert win["model_kind"] == "lightgbm"
    assert {"stage_win_rate", "naive_bayes", "logistic", "base_rate"} <= set(win["baselines"])
    assert win["metrics"]["roc_auc"] > win["baselines"]["stage_win_rate"]["roc_auc"]
    assert win["metrics"]["brier"] < win["baselines"]["stage_win_rate"]["brier"]
    stages = {row["segment"] for row in win["segments"]["stage"]}
    assert len(stages) >= 3  # calibration (and AUC) within each stage
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    run = client.get_run(win["run_id"])
    assert {"test_roc_auc", "test_ece", "baseline_stage_win_rate_roc_auc"} <= set(run.data.metrics)
    assert str(client.get_model_version_by_alias("deal_win", "champion").version) == win["version"]
    card = Path(env["FORECAST_MODELS_DIR"]) / "deal_win" / "model_card.md"
    assert card.is_file()


def test_time_to_close_beats_the_stage_only_baseline(env: dict[str, str], trained: dict[str, dict]) -> None:
    ttc = trained["time_to_close"]
    assert ttc["promotion"]["promoted"], ttc["promotion"]["reason"]
    assert ttc["model_kind"] == "discrete_time_hazard_lightgbm"
    m, km = ttc["metrics"], ttc["baselines"]["stage_km"]
    assert m["c_index"] > km["c_index"]
    assert m["ibs"] < km["ibs"]
    run = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"]).get_run(ttc["run_id"])
    assert {"test_c_index", "test_ibs", "baseline_stage_km_c_index"} <= set(run.data.metrics)
    # the gate's paired errors, so that a tie within noise with a nested baseline is not a loss
    for name in ("stage_km", "logistic_hazard"):
        b = ttc["baselines"][name]
        assert abs(b["brier_gap"] - (m["brier"] - b["brier"])) < 1e-5  # the JSON rounds to 6 places
        assert abs(b["auc_gap"] - (m["roc_auc"] - b["roc_auc"])) < 1e-5
        assert 0 < b["brier_gap_se"] < 0.05 and 0 < b["auc_gap_se"] < 0.1
        assert run.data.metrics[f"baseline_{name}_brier_gap_se"] == pytest.approx(b["brier_gap_se"], rel=1e-3)


def test_score_open_deals_with_close_dates_and_write_back(
    env: dict[str, str], trained: dict[str, dict]
) -> None:
    out = Path(env["ROOT"]) / "deals.csv"
    summary = _cli(env, "score", "deals", "--from-warehouse", "--output", str(out), "--write-back")
    assert summary["scored"] == summary["rows_in"] > 0 and summary["rejected"] == 0
    s = pd.read_csv(out, parse_dates=["as_of", "close_date_p10", "close_date_p50", "close_date_p90"])
    assert s["p_win"].between(0, 1).all() and s["reason_up_1"].notna().mean() > 0.9
    assert (s["p_close_30d"] <= s["p_close_60d"] + 1e-9).all()
    assert (s["p_close_60d"] <= s["p_close_90d"] + 1e-9).all()
    dated = s.dropna(subset=["close_date_p10", "close_date_p90"])
    assert (dated["close_date_p10"] <= dated["close_date_p50"]).all()
    assert (dated["close_date_p50"] <= dated["close_date_p90"]).all()
    assert (dated["close_date_p10"] >= dated["as_of"].dt.normalize()).all()
    assert s["slip_risk"].between(0, 1).all()
    overdue = pd.to_datetime(s["expected_close_date"]) < s["as_of"].dt.normalize()
    assert (s.loc[overdue, "slip_risk"] == 1.0).all()
    con = duckdb.connect(env["FORECAST_WAREHOUSE"], read_only=True)
    stored = con.execute("SELECT count(*) FROM opportunity_scores").fetchone()
    open_now = con.execute(
        "SELECT count(*) FROM opportunities WHERE created_at < ? AND (closed_at IS NULL OR closed_at >= ?)",
        [pd.Timestamp(summary["as_of"]).to_pydatetime()] * 2,
    ).fetchone()
    con.close()
    assert stored[0] == summary["scored"] == open_now[0]


def test_as_of_scores_the_deals_open_then(env: dict[str, str], trained: dict[str, dict]) -> None:
    out = Path(env["ROOT"]) / "past.parquet"
    summary = _cli(env, "score", "deals", "--from-warehouse", "--as-of", "2025-03-01", "--output", str(out))
    con = duckdb.connect(env["FORECAST_WAREHOUSE"], read_only=True)
    expected = {
        r[0]
        for r in con.execute(
            "SELECT opportunity_id FROM opportunities WHERE created_at < TIMESTAMP '2025-03-01' "
            "AND (closed_at IS NULL OR closed_at >= TIMESTAMP '2025-03-01')"
        ).fetchall()
    }
    con.close()
    scores = pd.read_parquet(out)
    assert set(scores["opportunity_id"]) == expected and summary["scored"] == len(expected)
    assert (scores["as_of"] == pd.Timestamp("2025-03-01")).all()


def test_score_a_deal_file_with_bad_rows(env: dict[str, str], trained: dict[str, dict]) -> None:
    root = Path(env["ROOT"])
    snap = root / "deal_snap.parquet"
    _cli(env, "features", "--entity", "opportunity", "--as-of", "2025-06-01", "--out", str(snap))
    frame = pd.read_parquet(snap)
    bad = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    bad["amount"] = bad["amount"].astype(object)
    bad.loc[1, "amount"] = "lots"
    bad.to_csv(root / "deal_snap.csv", index=False)
    out = root / "deal_snap_scores.csv"
    summary = _cli(env, "score", "deals", "--input", str(root / "deal_snap.csv"), "--output", str(out))
    assert summary["rows_in"] == len(bad) and summary["rejected"] == 2
    assert summary["scored"] == len(bad) - 2
    rejects = pd.read_csv(root / "deal_snap_scores.rejects.csv")
    assert sorted(rejects["rule"]) == ["duplicate_id", "not_a_number"]
    scored = pd.read_csv(out)
    assert {"p_win", "p_close_30d", "slip_risk", "close_date_p50"} <= set(scored.columns)
    direct = root / "direct.parquet"
    _cli(env, "score", "deals", "--from-warehouse", "--as-of", "2025-06-01", "--output", str(direct))
    both = scored.merge(pd.read_parquet(direct), on="opportunity_id", suffixes=("", "_w"))
    assert len(both) == summary["scored"]
    assert np.allclose(both["p_win"], both["p_win_w"], atol=1e-6)
    assert np.allclose(both["p_close_30d"], both["p_close_30d_w"], atol=1e-6)


def test_score_deals_without_a_time_to_close_champion_is_a_clear_error(
    env: dict[str, str], trained: dict[str, dict]
) -> None:
    out = Path(env["ROOT"]) / "x.csv"
    result = _cli(
        env,
        "score",
        "deals",
        "--from-warehouse",
        "--close-model",
        "no_such_model",
        "--output",
        str(out),
        code=2,
    )
    assert "no_such_model" in result["error"] and "champion" in result["error"]
    assert not out.exists()


def test_revenue_forecast_against_quota(env: dict[str, str], trained: dict[str, dict]) -> None:
    out = _cli(env, "revenue", "--periods", "2", "--group", "team", "--sims", "2000")
    rows = pd.DataFrame(out["forecast"])
    assert list(rows["period"].unique()) == sorted(rows["period"].unique()) and rows["period"].nunique() == 2
    assert ((rows["p10"] <= rows["p50"]) & (rows["p50"] <= rows["p90"])).all()
    for _, per in rows.groupby("period"):
        total = per[per["group"] == "(all)"].iloc[0]
        teams = per[per["group"] != "(all)"]
        assert total["expected"] == pytest.approx(teams["expected"].sum(), rel=1e-9)
        assert total["open_pipeline"] == pytest.approx(teams["open_pipeline"].sum(), rel=1e-9)
    assert rows["quota"].notna().all() and rows["p_hit_quota"].between(0, 1).all()
    assert out["models"] == {"deal_win": trained["deal_win"]["version"], "time_to_close": "1"}
    goals = out["goals"]
    assert goals["daily_goal"] * 7 == pytest.approx(goals["weekly_goal"])
    assert pd.Timestamp(out["as_of"]) == pd.Timestamp(out["as_of"]).normalize()  # midnight after the data
    args = ["revenue", "--periods", "2", "--group", "team", "--sims", "2000"]
    table = runner.invoke(app, args, env={**env, "COLUMNS": "80"}, catch_exceptions=False).stdout
    assert "…" not in table and max(len(line) for line in table.splitlines()) <= 80  # issue 17 item 7
    assert "won so far" in table and "P(hit)" in table and "not shown" in table
    assert out["model_error"]["win_level"] == "deal_win"  # the default level
    # the simulated CRM's wins do not bunch by month of the quarter: the timing stays flat, said so
    assert out["calendar"]["applied"] is False and out["calendar"]["factors"] == [1.0, 1.0, 1.0]
    assert out["calendar"]["months"] >= 6 and out["calendar"]["p_value"] > 0.001
    assert "month of the quarter" not in table
    flat = _cli(env, "revenue", "--periods", "2", "--group", "team", "--sims", "2000", "--no-calendar")
    assert flat["forecast"] == out["forecast"]  # a profile not applied is the flat path, to the bit
    assert flat["calendar"] == {
        "applied": False,
        "factors": [1.0, 1.0, 1.0],
        "measured": [1.0, 1.0, 1.0],
        "months": 0,
        "p_value": 1.0,
    }
    blend = _cli(
        env, "revenue", "--periods", "2", "--group", "team", "--sims", "2000", "--win-level", "blend"
    )
    assert blend["model_error"]["win_level"] == "blend"
    assert blend["open_deals"] == out["open_deals"] and blend["forecast"] != out["forecast"]
    wide = runner.invoke(app, [*args, "--wide"], env={**env, "COLUMNS": "80"}, catch_exceptions=False).stdout
    assert "open pipeline" in wide and "deals needed" in wide and "not shown" not in wide


def test_revenue_bad_options_are_clear_errors(env: dict[str, str], trained: dict[str, dict]) -> None:
    assert "week, month or quarter" in _cli(env, "revenue", "--by", "year", code=2)["error"]
    assert "rep, team, region" in _cli(env, "revenue", "--group", "product", code=2)["error"]
    assert "deal_win, blend, hazard, auto" in _cli(env, "revenue", "--win-level", "best", code=2)["error"]
    assert (
        "before --from"
        in _cli(env, "backtest", "revenue", "--from", "2025-06-01", "--to", "2025-01-01", code=2)["error"]
    )


@pytest.mark.slow  # a point-in-time revenue backtest
def test_backtest_revenue_logs_a_run(env: dict[str, str], trained: dict[str, dict]) -> None:
    root = Path(env["ROOT"])
    fast = (
        "--win-config",
        str(fast_config(root, "deal_win")),
        "--close-config",
        str(fast_config(root, "time_to_close")),
    )
    # few, fast trees: the run and its figures are tested here, the backtest's quality in tests/model
    out = _cli(
        env, "backtest", "revenue", "--from", "2025-09-01", "--to", "2025-09-01", "--sims", "500", *fast
    )
    assert len(out["periods"]) == 1 and out["periods"][0]["period"] == "2025-09"
    assert out["periods"][0]["models_trained_at"].startswith("2025-09-01")
    assert {"wape", "bias", "coverage_p10_p90", "pinball_mean"} <= set(out["metrics"]["model"])
    model = out["metrics"]["model"]
    assert model["coverage_p10_p90_n"] == 1 and model["coverage_p10_p90_lo"] < model["coverage_p10_p90_hi"]
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    artifacts = {a.path for a in client.list_artifacts(out["run_id"])}
    assert {"backtest.csv", "forecast_band.png"} <= artifacts
    assert client.get_run(out["run_id"]).data.metrics["model_wape"] == pytest.approx(
        out["metrics"]["model"]["wape"]
    )


def test_batch_scoring_names_values_the_model_never_saw(
    env: dict[str, str], trained: dict[str, dict]
) -> None:
    root = Path(env["ROOT"])
    snap = root / "deal_unseen.parquet"
    _cli(env, "features", "--entity", "opportunity", "--as-of", "2025-06-01", "--out", str(snap))
    frame = pd.read_parquet(snap)
    frame["stage"] = frame["stage"].astype(object)
    frame.loc[0, "stage"] = "bogus_stage"
    frame.to_parquet(snap)
    out = root / "deal_unseen_scores.csv"
    summary = _cli(env, "score", "deals", "--input", str(snap), "--output", str(out))
    assert summary["rows_with_warnings"] == 1
    scored = pd.read_csv(out, keep_default_na=False)
    warned = scored[scored["warnings"] != ""]
    assert list(warned["source_row"]) == [1]
    assert (
        warned["warnings"].iloc[0]
        == "stage 'bogus_stage' was never seen in training; scored as an unknown level"
    )
