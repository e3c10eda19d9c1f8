"""Batch scoring on Apache Spark (local[2]) against the local scorer: the same rows, scores and rejects.

One CRM, one SparkSession for the module. Leads go in as a folder of three Parquet files (a
duplicate across files, a missing id, unparsable numbers) and come out as a folder of part files;
deals go in as one file, through the ``spark-submit`` entry point, with their close dates. The local
scorer on the same rows is the reference: probabilities to 1e-9, bands, reasons, warnings and every
reject record equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.io import csv_safe_frame
from forecast.scale.session import java_missing
from tests.cli import cli_env, fast_config
from tests.cli import cli_json as _cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark", reason="pyspark is not installed (the spark extra)")
    if (why := java_missing()) is not None:
        pytest.skip(why)
    from forecast.scale.session import spark_session

    session = spark_session("local[2]")
    session.conf.set("spark.sql.shuffle.partitions", "3")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("spark")
    simulate_crm(SimulationConfig(n_leads=2000, seed=11, months=12)).write(root / "crm")
    env = cli_env(root)
    _cli(env, "ingest", str(root / "crm"))
    store = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    for model, stem in (
        ("lead-scoring", "lead_scoring"),
        ("deal-win", "deal_win"),
        ("time-to-close", "time_to_close"),
    ):
        trained = _cli(env, "train", model, "--config", str(fast_config(root, stem)))
        # a CRM this small may not pass the promotion gate: the test needs champions, not good ones
        store.set_registered_model_alias(stem, "champion", trained["version"])
    return env


def _with_bad_rows(env: dict[str, str], entity: str) -> pd.DataFrame:
    """Snapshot features with a repeated row (at the end), a missing id and unparsable numbers."""
    root = Path(env["ROOT"])
    snap = root / f"{entity}.parquet"
    _cli(env, "features", "--entity", entity, "--as-of", "2025-06-01", "--out", str(snap))
    frame = pd.read_parquet(snap)
    bad = pd.concat([frame, frame.iloc[[0, 5]]], ignore_index=True)
    column = "act_call_7d" if entity == "lead" else "amount"
    bad[column] = [None if pd.isna(v) else str(v) for v in bad[column]]  # a text column in the lake
    bad.loc[1, column] = "lots"
    bad.loc[2, column] = "=1+2"
    bad.loc[3, bad.columns[0]] = None
    return bad


def _same_scores(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    spark = spark.sort_values("source_row").reset_index(drop=True)
    assert list(spark.columns) == list(local.columns)
    assert spark["source_row"].tolist() == local["source_row"].tolist()
    numbers = [c for c in local.columns if local[c].dtype.kind == "f"]
    assert numbers, "no probability column"
    for column in numbers:
        np.testing.assert_allclose(spark[column], local[column], rtol=0, atol=1e-9, err_msg=column)
    for column in local.columns:
        if column == "scored_at" or column in numbers:
            continue
        left, right = local[column], spark[column]
        if left.dtype.kind == "M":
            left, right = left.astype("datetime64[ns]"), right.astype("datetime64[ns]")
        same = (left == right) | (left.isna() & right.isna())
        assert same.all(), f"{column}: {left[~same].head(3).tolist()} != {right[~same].head(3).tolist()}"
    assert spark["scored_at"].nunique() == 1


def _same_rejects(local_csv: Path, spark_folder: Path) -> pd.DataFrame:
    local = pd.read_csv(local_csv, dtype=str, keep_default_na=False)
    spark = pd.read_parquet(spark_folder).sort_values("source_row", kind="stable")
    # written the way the local scorer writes its CSV (text cells neutralised), row for row
    as_text = csv_safe_frame(spark.astype(object).where(spark.notna(), "")).astype(str)
    pd.testing.assert_frame_equal(as_text.reset_index(drop=True), local)
    return local


def _summary_core(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k not in ("output", "rejects")}


def test_leads_from_a_partitioned_folder_score_as_the_local_scorer_does(
    env: dict[str, str], spark: Any
) -> None:
    root = Path(env["ROOT"])
    bad = _with_bad_rows(env, "lead")
    single = root / "leads_bad.parquet"
    bad.to_parquet(single)
    folder = root / "leads_in"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(bad)), 3)):
        bad.iloc[part].to_parquet(folder / f"part-{i}.parquet")
    local = _cli(env, "score", "leads", "--input", str(single), "--output", str(root / "local.parquet"))
    out = root / "spark_scores.parquet"
    summary = _cli(
        env, "score", "leads", "--engine", "spark", "--master", "local[2]",
        "--input", str(folder), "--output", str(out),
    )  # fmt: skip
    assert _summary_core(summary) == _summary_core(local)
    assert summary["rejected"] == 5 and summary["scored"] == len(bad) - 5
    assert len(list(out.glob("part-*.parquet"))) >= 2  # partitioned out, readable as one table
    _same_scores(pd.read_parquet(root / "local.parquet"), pd.read_parquet(out))
    rejects = _same_rejects(root / "local.rejects.csv", root / "spark_scores.rejects.parquet")
    assert sorted(rejects["rule"]) == ["duplicate_id"] * 2 + ["missing_id"] + ["not_a_number"] * 2


def test_deals_through_the_spark_submit_entry_point_carry_the_close_dates(
    env: dict[str, str], spark: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from forecast.scale.spark_score import main

    root = Path(env["ROOT"])
    bad = _with_bad_rows(env, "opportunity")
    single = root / "deals_bad.parquet"
    bad.to_parquet(single)
    local = _cli(env, "score", "deals", "--input", str(single), "--output", str(root / "deals.parquet"))
    out = root / "spark_deals.parquet"
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        capsys.readouterr()
        main(["deals", "--input", str(single), "--output", str(out)])
    summary = json.loads(capsys.readouterr().out)
    # the entry point has no warehouse flags, so no note about them
    assert _summary_core(summary) == {**_summary_core(local), "notes": local["notes"][:1]}
    assert summary["notes"][0].startswith("close dates from time_to_close")
    scores = pd.read_parquet(out)
    assert {"p_win", "p_close_30d", "close_date_p50", "slip_risk"} <= set(scores.columns)
    _same_scores(pd.read_parquet(root / "deals.parquet"), scores)
    _same_rejects(root / "deals.rejects.csv", root / "spark_deals.rejects.parquet")


def test_what_the_spark_engine_cannot_do_is_a_clear_error(env: dict[str, str]) -> None:
    root = Path(env["ROOT"])
    warehouse = _cli(
        env, "score", "leads", "--engine", "spark", "--from-warehouse", "--output", str(root / "w.parquet"),
        code=2,
    )  # fmt: skip
    assert "give --input" in warehouse["error"]
    csv_out = _cli(
        env, "score", "leads", "--engine", "spark", "--input", str(root / "x.parquet"),
        "--output", str(root / "scores.csv"), code=2,
    )  # fmt: skip
    assert "end it in .parquet" in csv_out["error"]
    master = _cli(
        env, "score", "leads", "--input", str(root / "x.parquet"), "--output", str(root / "s.csv"),
        "--master", "local[2]", code=2,
    )  # fmt: skip
    assert "--master is for --engine spark" in master["error"]
