"""The tracking read in DuckDB (events cut and keyed in SQL) gives the pandas read's frames exactly.

A simulated CRM is ingested into a warehouse (with activities of no rep, whose keys are ``(none)``);
:func:`forecast.tracking.read.load` and ``prepare(read_frames(...))`` must give the same frames, value
for value, type for type and in the same order (a missing value of the same kind too), at the default
as-of and at a past one, and so the same reports.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from forecast.data.ingest import ingest
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.data.warehouse import Warehouse
from forecast.tracking import read
from forecast.tracking.api import REPORTS, report
from forecast.tracking.data import NONE_LABEL, TrackingData, prepare, read_frames
from forecast.tracking.insights import insights
from forecast.tracking.periods import parse_period

FRAMES = ("reps", "leads", "opportunities", "stage_history", "activities", "engagement", "quotas")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("read")
    crm = simulate_crm(SimulationConfig(n_leads=1500, seed=9, months=10))
    acts = crm.tables["activities"]
    acts.loc[acts.index[::89], "rep_id"] = None  # activities of no rep
    crm.write(root / "crm")
    path = root / "crm.duckdb"
    ingest(root / "crm", "canonical", Warehouse(path), as_of=pd.Timestamp("2030-01-01"))
    return path


def _both(path: Path, as_of: pd.Timestamp | None) -> tuple[TrackingData, TrackingData]:
    with Warehouse(path).connect(read_only=True) as con:
        sql = read.load(con, as_of)
        frames, pipeline = read_frames(con)
    return sql, prepare(frames, pipeline, as_of)


def _same(left: pd.DataFrame, right: pd.DataFrame, name: str) -> None:
    pd.testing.assert_frame_equal(left, right, check_exact=True, obj=name)
    for col in left.columns:  # a missing value of the same kind (None, nan, NaT, <NA>) too
        assert left[col].map(repr).tolist() == right[col].map(repr).tolist(), (name, col)


@pytest.mark.parametrize("vectors", [1, read._VECTORS])
@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-05-20T09:30")])
def test_the_duckdb_read_equals_the_pandas_read(
    warehouse: Path, as_of: pd.Timestamp | None, vectors: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "_VECTORS", vectors)  # 1: chunks of 2,048 rows, the events in several
    sql, pandas = _both(warehouse, as_of)
    assert vectors > 1 or len(sql.activities) > 3 * 2048
    assert sql.as_of == pandas.as_of and sql.notes == pandas.notes
    assert sql.has_stage_history == pandas.has_stage_history and sql.pipeline == pandas.pipeline
    for name in FRAMES:
        _same(getattr(sql, name), getattr(pandas, name), name)
    acts = sql.activities
    assert len(acts) > 1000 and (acts["rep"] == NONE_LABEL).any() and acts["cold"].any()
    assert acts["size_band"].isna().any() and acts["converted_at"].notna().any()
    if as_of is not None:
        assert acts["occurred_at"].max() < as_of < pandas.leads["created_at"].max() + pd.Timedelta(days=400)


def test_the_read_s_order_is_its_own_whatever_the_session_orders_by_default(
    warehouse: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ties.duckdb"
    shutil.copy(warehouse, path)
    with duckdb.connect(str(path)) as con:  # stage changes at one time: the later row is the deal's
        con.execute(
            "INSERT INTO stage_history SELECT opportunity_id, stage, entered_at, amount * 2,"
            " expected_close_date FROM stage_history WHERE hash(opportunity_id) % 5 = 1"
        )
    with Warehouse(path).connect(read_only=True) as con:
        con.execute("SET default_order = 'DESC'")
        con.execute("SET default_null_order = 'NULLS_FIRST'")
        sql = read.load(con, None)
        frames, pipeline = read_frames(con)
    pandas = prepare(frames, pipeline, None)
    for name in FRAMES:
        _same(getattr(sql, name), getattr(pandas, name), name)


def test_the_reports_and_insights_of_both_reads_are_equal(warehouse: Path) -> None:
    sql, pandas = _both(warehouse, None)
    period = parse_period("quarter", sql.as_of)
    for name, spec in REPORTS.items():
        left, right = (
            report(sql, name, period, spec.default_by),
            report(pandas, name, period, spec.default_by),
        )
        for key in right:
            pd.testing.assert_frame_equal(left[key], right[key], check_exact=True, obj=f"{name}.{key}")
    assert insights(sql, period).as_dict() == insights(pandas, period).as_dict()


def test_a_warehouse_without_activities_is_read_as_pandas_reads_it(tmp_path: Path, warehouse: Path) -> None:
    path = tmp_path / "no_activities.duckdb"
    with Warehouse(warehouse).connect(read_only=True) as con:
        frames, _ = read_frames(con)
    with duckdb.connect(str(path)) as con:  # a warehouse of deals only
        for name in ("reps", "leads", "opportunities", "stage_history", "quotas"):
            frame = frames[name]
            con.register("frame", frame)
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
            con.unregister("frame")
    sql, pandas = _both(path, None)
    assert sql.activities.empty and pandas.activities.empty
    for name in FRAMES:
        _same(getattr(sql, name), getattr(pandas, name), name)


def test_a_warehouse_with_times_as_text_is_read_as_pandas_reads_it(tmp_path: Path, warehouse: Path) -> None:
    """DuckDB would compare text times as text: such a warehouse is read by pandas, which parses them."""
    path = tmp_path / "text_times.duckdb"
    with Warehouse(warehouse).connect(read_only=True) as con:
        frames, _ = read_frames(con)
    frames["activities"] = frames["activities"].assign(
        occurred_at=frames["activities"]["occurred_at"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    )
    with duckdb.connect(str(path)) as con:
        for name in ("reps", "leads", "opportunities", "stage_history", "activities", "engagement_events"):
            con.register("frame", frames[name])
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
            con.unregister("frame")
        assert con.execute("SELECT typeof(occurred_at) FROM activities LIMIT 1").fetchone() == ("VARCHAR",)
    sql, pandas = _both(path, None)
    assert len(sql.activities) > 1000
    for name in FRAMES:
        _same(getattr(sql, name), getattr(pandas, name), name)
