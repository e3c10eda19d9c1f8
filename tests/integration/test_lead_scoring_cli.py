"""Lead scoring end to end through the CLI: a real DuckDB warehouse, a real MLflow store and registry."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from forecast.cli import app
from forecast.data.simulate import SimulationConfig, simulate_crm
from tests.cli import cli_env, runner
from tests.cli import cli_json as _cli
from tests.conftest import REPO, hold_warehouse_lock


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("lead_scoring")
    sim = simulate_crm(SimulationConfig(n_leads=6000, seed=5, months=18))
    sim.write(root / "crm")
    env = cli_env(root)
    assert _cli(env, "ingest", str(root / "crm"))["balanced"]
    return env


def test_train_promote_and_refuse_a_worse_challenger(env: dict[str, str]) -> None:
    first = _cli(env, "train", "lead-scoring", "--promote")
    assert first["version"] == "1" and first["promotion"]["promoted"]
    assert first["metrics"]["roc_auc"] > first["baselines"]["logistic"]["roc_auc"]
    card = Path(env["FORECAST_MODELS_DIR"]) / "lead_scoring" / "model_card.md"
    assert card.read_text(encoding="utf-8").startswith("# Model card: lead_scoring v1")
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    run = client.get_run(first["run_id"])
    assert {"test_roc_auc", "test_brier", "test_ece", "baseline_logistic_roc_auc"} <= set(run.data.metrics)
    assert run.data.tags["data_sha256"] == first["data"]["sha256"]
    artifacts = {a.path for a in client.list_artifacts(first["run_id"])}
    assert {"model_card.md", "evaluation"} <= artifacts
    evaluation = {a.path for a in client.list_artifacts(first["run_id"], "evaluation")}
    assert "evaluation/reliability.png" in evaluation and "evaluation/test_slice.parquet" in evaluation

    worse_config = yaml.safe_load((REPO / "training" / "lead_scoring.yaml").read_text(encoding="utf-8"))
    worse_config["lightgbm"].update({"n_estimators": 3, "learning_rate": 0.001, "calibration": "none"})
    # the worse LightGBM model itself goes to the gate: no logistic stands in for it
    worse_config["family"] = {"logistic_where_lightgbm_loses": False}
    path = Path(env["ROOT"]) / "worse.yaml"
    path.write_text(yaml.safe_dump(worse_config), encoding="utf-8")
    second = _cli(env, "train", "lead-scoring", "--config", str(path), "--promote")
    assert second["version"] == "2"
    assert client.get_run(second["run_id"]).data.params["model_kind"] == "lightgbm"
    decision = second["promotion"]
    assert not decision["promoted"]
    assert decision["champion_version"] == "1"
    # refused by the gate: it loses to its baselines or to the champion
    assert any(word in decision["reason"] for word in ("baselines", "not lower", "too low"))
    assert str(client.get_model_version_by_alias("lead_scoring", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("lead_scoring", "challenger").version) == "2"
    promotions = client.search_runs(
        [run.info.experiment_id], filter_string="tags.kind = 'promotion'", order_by=["start_time DESC"]
    )
    assert promotions[0].data.tags["promoted"] == "False"
    assert (
        promotions[0].data.metrics["champion_roc_auc"]
        > promotions[0].data.metrics["challenger_roc_auc"] - 0.005
    )


def test_score_the_warehouse_and_write_back(env: dict[str, str]) -> None:
    _ensure_champion(env)
    out = Path(env["ROOT"]) / "scores.csv"
    summary = _cli(env, "score", "leads", "--from-warehouse", "--output", str(out), "--write-back")
    assert summary["scored"] + summary["rejected"] == summary["rows_in"] > 0
    scores = pd.read_csv(out)
    assert len(scores) == summary["scored"]
    assert scores["p_convert"].between(0, 1).all()
    assert (scores["score"] == np.rint(scores["p_convert"] * 100)).all()
    assert set(scores["band"]) <= {"A", "B", "C", "D"}
    assert scores["reason_up_1"].notna().mean() > 0.9
    assert (scores["model_version"].astype(str) == summary["model_version"]).all()
    con = duckdb.connect(env["FORECAST_WAREHOUSE"], read_only=True)
    stored = con.execute("SELECT count(*), max(as_of) FROM lead_scores").fetchone()
    last_event = con.execute("SELECT max(occurred_at) FROM activities").fetchone()
    con.close()
    assert stored[0] == summary["scored"]
    assert pd.Timestamp(summary["as_of"]) >= pd.Timestamp(last_event[0])  # the data's end, not the wall clock
    assert pd.Timestamp(summary["as_of"]) < pd.Timestamp("2026-01-01")
    bare = Path(env["ROOT"]) / "scores_bare.csv"
    _cli(env, "score", "leads", "--from-warehouse", "--output", str(bare), "--no-reasons", "--no-flags")
    quick = pd.read_csv(bare)
    assert not [c for c in quick.columns if c.startswith("reason_")]
    pd.testing.assert_series_equal(quick["p_convert"], scores["p_convert"])


def test_score_a_features_file_with_bad_rows(env: dict[str, str]) -> None:
    _ensure_champion(env)
    root = Path(env["ROOT"])
    _cli(env, "features", "--entity", "lead", "--as-of", "2025-03-01", "--out", str(root / "snap.parquet"))
    frame = pd.read_parquet(root / "snap.parquet")
    bad = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)  # a duplicate id
    bad.loc[1, "lead_id"] = None  # a missing id
    bad.to_csv(root / "snap.csv", index=False)
    out = root / "snap_scores.parquet"
    summary = _cli(env, "score", "leads", "--input", str(root / "snap.csv"), "--output", str(out))
    assert summary["rows_in"] == len(bad)
    assert summary["rejected"] == 2 and summary["scored"] == len(bad) - 2
    rejects = pd.read_csv(root / "snap_scores.rejects.csv")
    assert sorted(rejects["rule"]) == ["duplicate_id", "missing_id"]
    assert sorted(rejects["source_row"]) == [2, len(bad)]
    scored = pd.read_parquet(out)
    # the same rows scored from the CSV and from the warehouse snapshot agree
    direct = _cli(
        env, "score", "leads", "--input", str(root / "snap.parquet"), "--output", str(root / "d.parquet")
    )
    assert direct["rejected"] == 0
    both = scored.merge(pd.read_parquet(root / "d.parquet"), on="lead_id", suffixes=("", "_d"))
    assert np.allclose(both["p_convert"], both["p_convert_d"])


def test_score_without_a_champion_is_a_clear_error(env: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["score", "leads", "--from-warehouse", "--output", "x.csv", "--model", "nope", "--json"], env=env
    )
    assert result.exit_code == 2
    assert "no model 'nope'" in json.loads(result.stdout)["error"]


def _ensure_champion(env: dict[str, str]) -> None:
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    try:
        client.get_model_version_by_alias("lead_scoring", "champion")
    except Exception:
        _cli(env, "train", "lead-scoring", "--promote")


def _flat_export(path: Path, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(2, n)
    source = rng.choice(["Web", "Referral", "Cold call"], n)
    # A bump in visits (2-4 convert best) that a linear model cannot draw.
    logit = -2.5 + 3.0 * ((visits >= 2) & (visits <= 4)) + np.where(source == "Referral", 1.0, 0.0)
    converted = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "Record ID": [f"R{i}" for i in range(n)],
            "Lead Source": source,
            "Website Visits": visits,
            "Employees": rng.choice(["1,200", "45", "N/A", "300"], n),
            "Converted": np.where(converted, "Yes", "No"),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def test_bring_your_own_export_trains_and_scores(env: dict[str, str]) -> None:
    root = Path(env["ROOT"])
    _flat_export(root / "export.csv", 2000, 1)
    trained = _cli(
        env, "train", "lead-scoring", "--table", str(root / "export.csv"), "--target", "Converted",
        "--model-name", "byo", "--promote",
    )  # fmt: skip
    assert trained["model_kind"] == "lightgbm" and trained["promotion"]["promoted"]
    new = _flat_export(root / "new.csv", 50, 2).drop(columns="Converted")
    new["Website Visits"] = new["Website Visits"].astype(object)
    new.loc[3, "Website Visits"] = "lots"  # not a number
    new.to_csv(root / "new.csv", index=False)
    summary = _cli(
        env,
        "score",
        "leads",
        "--input",
        str(root / "new.csv"),
        "--output",
        str(root / "new_scores.csv"),
        "--model",
        "byo",
    )
    assert summary["rows_in"] == 50 and summary["rejected"] == 1 and summary["scored"] == 49
    rejects = pd.read_csv(root / "new_scores.rejects.csv")
    assert rejects.loc[0, "source_row"] == 4 and rejects.loc[0, "rule"] == "not_a_number"
    scores = pd.read_csv(root / "new_scores.csv")
    assert "R3" not in set(scores["Record ID"])


def test_small_and_tiny_exports(env: dict[str, str]) -> None:
    root = Path(env["ROOT"])
    _flat_export(root / "small.csv", 150, 3)
    small = _cli(
        env,
        "train",
        "lead-scoring",
        "--table",
        str(root / "small.csv"),
        "--target",
        "Converted",
        "--model-name",
        "small",
    )
    assert small["model_kind"] == "logistic_small_data"
    assert any("small data" in n for n in small["notes"])
    _flat_export(root / "tiny.csv", 25, 4)
    tiny = _cli(
        env,
        "train",
        "lead-scoring",
        "--table",
        str(root / "tiny.csv"),
        "--target",
        "Converted",
        "--model-name",
        "tiny",
        code=2,
    )
    assert tiny["ok"] is False and "labelled rows" in tiny["error"]


def test_the_gate_never_compares_on_rows_the_champion_trained_on(env: dict[str, str]) -> None:
    """A challenger trained on older data has its test slice inside the champion's training window."""
    _ensure_champion(env)
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    champion = client.get_model_version_by_alias("lead_scoring", "champion")
    splits = json.loads(
        Path(client.download_artifacts(champion.run_id, "evaluation/splits.json", env["ROOT"])).read_text()
    )
    champion_cut = pd.Timestamp(splits["cuts"][1])
    older = yaml.safe_load((REPO / "training" / "lead_scoring.yaml").read_text(encoding="utf-8"))
    # the challenger's snapshots (its test slice included) all lie before the champion's test cut
    older["snapshots"]["to"] = str((champion_cut - pd.Timedelta(days=1)).date())
    path = Path(env["ROOT"]) / "older.yaml"
    path.write_text(yaml.safe_dump(older), encoding="utf-8")
    result = _cli(env, "train", "lead-scoring", "--config", str(path), "--promote")
    decision = result["promotion"]
    assert not decision["promoted"]
    assert "no fair comparison" in decision["reason"] or "baselines" in decision["reason"]


def test_an_internal_error_exits_1_with_its_traceback_under_debug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import forecast.training.job

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ValueError("Categorical categories must be unique")  # what pandas raised for our bug

    monkeypatch.setattr(forecast.training.job, "train_binary", broken)
    _flat_export(tmp_path / "export.csv", 300, 1)
    args = ["train", "lead-scoring", "--table", str(tmp_path / "export.csv"), "--target", "Converted"]
    env = cli_env(tmp_path)
    quiet = runner.invoke(app, [*args, "--json"], env=env)
    assert quiet.exit_code == 1, quiet.stdout
    error = json.loads(quiet.stdout)["error"]
    assert "internal error" in error and "Categorical categories must be unique" in error
    assert "--log-level DEBUG" in error and "Traceback" not in quiet.stderr
    loud = runner.invoke(app, ["--log-level", "DEBUG", *args], env=env)
    assert loud.exit_code == 1
    assert "Traceback" in loud.stderr and "broken" in loud.stderr


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--target", "Outcome"], "'Outcome'"),
        (["--target", "Converted", "--keep-column", "Budget"], "'Budget'"),
        (["--target", "Converted", "--drop-column", "Nope"], "'Nope'"),
        (["--target", "Record ID"], "'Record ID'"),
    ],
)
def test_bad_input_exits_2_naming_the_column(tmp_path: Path, extra: list[str], named: str) -> None:
    _flat_export(tmp_path / "export.csv", 300, 1)
    result = runner.invoke(
        app, ["train", "lead-scoring", "--table", str(tmp_path / "export.csv"), *extra, "--json"],
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 2, result.stdout
    assert named in json.loads(result.stdout)["error"]


def test_an_export_without_any_usable_column_exits_2_saying_why(tmp_path: Path) -> None:
    n = 300
    pd.DataFrame(
        {
            "Lead ID": [f"L{i}" for i in range(n)],
            "Region": ["EU"] * n,  # constant
            "Converted": ["Yes", "No", "No"] * (n // 3),
        }
    ).to_csv(tmp_path / "export.csv", index=False)
    result = runner.invoke(
        app,
        ["train", "lead-scoring", "--table", str(tmp_path / "export.csv"), "--target", "Converted", "--json"],
        env=cli_env(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 2, result.stdout
    error = json.loads(result.stdout)["error"]
    assert "no column can be used as a feature" in error and "'Region'" in error


def test_the_split_of_a_flat_export_is_explicit(tmp_path: Path) -> None:
    frame = _flat_export(tmp_path / "export.csv", 600, 6)
    frame["Created"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(600) // 3, unit="D")).strftime(
        "%Y-%m-%d"
    )
    frame.to_csv(tmp_path / "export.csv", index=False)
    env = cli_env(tmp_path)
    base = ["train", "lead-scoring", "--table", str(tmp_path / "export.csv"), "--target", "Converted"]
    timed = _cli(env, *base, "--time", "Created", "--model-name", "timed")
    assert timed["splits"]["method"] == "time" and timed["splits"]["gap_days"] == 0.0
    rows = sum(part["rows"] for part in timed["splits"]["splits"].values())
    assert rows >= 590  # no 90-day purge gap inherited from the warehouse's horizon
    run = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"]).get_run(timed["run_id"])
    params = run.data.params
    assert params.get("split.method") == "auto" and float(params["split.gap_days"]) == 0.0, params
    mixed = _cli(env, *base, "--time", "Created", "--split", "stratified", "--model-name", "mixed")
    assert mixed["splits"]["method"] == "stratified"
    refused = runner.invoke(app, [*base, "--split", "time", "--json"], env=env)
    assert refused.exit_code == 2 and "--time" in json.loads(refused.stdout)["error"]


def test_hostile_export_trains_and_scores_without_formula_cells(tmp_path: Path) -> None:
    """Issue 21: ids, headers and values that start a formula, and a header LightGBM refuses."""
    env = cli_env(tmp_path)
    frame = _flat_export(tmp_path / "export.csv", 2000, 1)
    frame = frame.rename(columns={"Website Visits": "=1+Visits", "Employees": 'Size "approx", [n]'})
    frame["Record ID"] = [f"=1+{i}" if i % 2 else f"R{i}" for i in range(len(frame))]
    frame.to_csv(tmp_path / "export.csv", index=False)
    trained = _cli(
        env, "train", "lead-scoring", "--table", str(tmp_path / "export.csv"), "--target", "Converted",
        "--model-name", "hostile", "--promote",
    )  # fmt: skip
    assert any("renamed column(s) for the model" in w for w in trained["warnings"]), trained
    new = frame.drop(columns="Converted").head(20).astype(object)
    new.loc[3, "=1+Visits"] = "=2+5"
    new.to_csv(tmp_path / "new.csv", index=False)
    out = tmp_path / "scores.csv"
    summary = _cli(env, "score", "leads", "--input", str(tmp_path / "new.csv"), "--output", str(out),
                   "--model", "hostile")  # fmt: skip
    assert summary["rejected"] == 1
    for path in (out, tmp_path / "scores.rejects.csv"):
        cells = pd.read_csv(path, dtype=str, keep_default_na=False)
        assert not [c for c in cells.columns if c.startswith(("=", "+", "-", "@"))]
        for column in cells.columns:
            bad = cells[column][cells[column].str.startswith(("=", "+", "@", "\t", "\r"))]
            assert bad.empty, (path.name, column, bad.tolist())
    scores = pd.read_csv(out, dtype=str)
    assert "'=1+1" in set(scores["Record ID"])
    assert (
        scores["reason_up_1"].str.startswith("'=1+Visits").any()
        or scores["reason_down_1"].str.startswith("'=1+Visits").any()
    )
    rejects = pd.read_csv(tmp_path / "scores.rejects.csv", dtype=str)
    assert rejects.loc[0, "column"] == "'=1+Visits" and rejects.loc[0, "value"] == "'=2+5"


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "has space", ".hidden"])
def test_a_path_like_model_name_exits_2_before_any_work(tmp_path: Path, name: str) -> None:
    env = cli_env(tmp_path)
    _flat_export(tmp_path / "export.csv", 200, 1)
    trained = _cli(
        env, "train", "lead-scoring", "--table", str(tmp_path / "export.csv"), "--target", "Converted",
        "--model-name", name, code=2,
    )  # fmt: skip
    assert "--model-name" in trained["error"] and "is not a valid name" in trained["error"]
    scored = _cli(
        env, "score", "leads", "--input", str(tmp_path / "export.csv"), "--output",
        str(tmp_path / "out.csv"), "--model", name, code=2,
    )  # fmt: skip
    assert "--model" in scored["error"] and "letters, digits" in scored["error"]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "models").exists()
    assert not (tmp_path / "mlartifacts").exists() and not (tmp_path / "out.csv").exists()


def test_scoring_into_a_busy_warehouse_exits_2_naming_the_holder(env: dict[str, str]) -> None:
    """Issue 21: another process holds the warehouse's write lock; no traceback, exit 2, the PID."""
    _ensure_champion(env)
    root = Path(env["ROOT"])
    busy = {**env, "FORECAST_WAREHOUSE_LOCK_WAIT": "0.5"}
    with hold_warehouse_lock(Path(env["FORECAST_WAREHOUSE"])) as holder:
        result = runner.invoke(
            app,
            [
                "score",
                "leads",
                "--from-warehouse",
                "--write-back",
                "--output",
                str(root / "busy.csv"),
                "--json",
            ],
            env=busy,
        )
    assert result.exit_code == 2, result.stdout
    name = Path(env["FORECAST_WAREHOUSE"]).name
    assert json.loads(result.stdout)["error"] == (
        f"the warehouse {name} is in use by another process (PID {holder.pid}), try again"
    )
    assert "Traceback" not in result.stdout + str(result.stderr) and not (root / "busy.csv").exists()
