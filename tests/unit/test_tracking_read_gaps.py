"""The Arrow read of the tracking view equals the pandas read on CRMs with gaps, in several chunks.

:func:`forecast.tracking.read.load` hands the tables over through Arrow and keys and flags the
activities on dictionary codes; ``prepare(read_frames(...))`` (every table into pandas, then merged
and filled there) is the reference. The CRMs here miss what real ones miss: activities without a rep,
a lead, a type, a direction or an outcome, or on a lead or deal the CRM does not hold; leads without
a source or channel; deals without an amount or a product; reps without a team; a text column with
nothing in it; and a warehouse with a decimal amount and a date (read as ``df()`` reads them).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.data.warehouse import Warehouse
from forecast.tracking import read
from forecast.tracking.data import NONE_LABEL, TrackingData, prepare, read_frames

FRAMES = ("reps", "leads", "opportunities", "stage_history", "activities", "engagement", "quotas")
_SQL = {"str": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN", "timestamp": "TIMESTAMP"}


def _gapped() -> dict[str, pd.DataFrame]:
    from forecast.data.schema import TABLES

    crm = simulate_crm(SimulationConfig(n_leads=1200, seed=21, months=9))
    t = {name: crm.tables[name].copy() for name in TABLES if name in crm.tables}
    acts = t["activities"]
    rng = np.random.default_rng(3)
    for col, share in (("rep_id", 0.05), ("type", 0.02), ("direction", 0.03), ("outcome", 0.04)):
        acts.loc[rng.random(len(acts)) < share, col] = None
    no_lead = rng.random(len(acts)) < 0.03
    acts.loc[no_lead, "lead_id"] = None
    acts.loc[rng.random(len(acts)) < 0.01, "lead_id"] = "L-UNKNOWN"  # a lead the CRM does not hold
    acts.loc[rng.random(len(acts)) < 0.01, "opportunity_id"] = "O-UNKNOWN"
    acts.loc[acts.index[::7], "email_replied"] = None
    leads = t["leads"]
    leads.loc[leads.index[::11], "source"] = None
    leads.loc[leads.index[::13], "channel"] = None
    leads.loc[leads.index[::17], "source"] = ""  # an empty label is (none) too
    opps = t["opportunities"]
    opps.loc[opps.index[::5], "amount"] = np.nan
    history = t["stage_history"]
    history.loc[history["opportunity_id"].isin(opps["opportunity_id"].iloc[::5]), "amount"] = np.nan
    opps.loc[opps.index[::9], "product"] = None
    reps = t["reps"]
    reps.loc[reps.index[::4], "team"] = None
    t["engagement_events"].loc[t["engagement_events"].index[::3], "account_id"] = None
    t["engagement_events"]["type"] = None  # a text column with nothing in it
    return t


def _write(t: dict[str, pd.DataFrame], path: Path, types: dict[tuple[str, str], str] | None = None) -> None:
    from forecast.data.schema import TABLES

    with duckdb.connect(str(path)) as con:
        for name, spec in TABLES.items():
            if name not in t:
                continue
            kinds = {c.name: _SQL[c.kind] for c in spec.columns} | {
                col: kind for (table, col), kind in (types or {}).items() if table == name
            }
            con.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c} {k}" for c, k in kinds.items())})')
            con.register("frame", t[name][list(kinds)])
            con.execute(f'INSERT INTO "{name}" SELECT * FROM frame')
            con.unregister("frame")


@pytest.fixture(scope="module")
def crm() -> dict[str, pd.DataFrame]:
    return _gapped()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory, crm: dict[str, pd.DataFrame]) -> Path:
    path = tmp_path_factory.mktemp("gaps") / "crm.duckdb"
    _write(crm, path)
    return path


def _both(path: Path, as_of: pd.Timestamp | None) -> tuple[TrackingData, TrackingData]:
    with Warehouse(path).connect(read_only=True) as con:
        arrow = read.load(con, as_of)
        frames, pipeline = read_frames(con)
    return arrow, prepare(frames, pipeline, as_of)


def _same(left: pd.DataFrame, right: pd.DataFrame, name: str) -> None:
    pd.testing.assert_frame_equal(left, right, check_exact=True, obj=name)
    for col in left.columns:  # a missing value of the same kind (None, nan, NaT, <NA>) too
        assert left[col].map(repr).tolist() == right[col].map(repr).tolist(), (name, col)


def _all_same(arrow: TrackingData, pandas: TrackingData) -> None:
    assert arrow.as_of == pandas.as_of and arrow.notes == pandas.notes
    for name in FRAMES:
        _same(getattr(arrow, name), getattr(pandas, name), name)


@pytest.mark.parametrize("vectors", [1, read._VECTORS])
@pytest.mark.parametrize("as_of", [None, pd.Timestamp("2024-05-10T13:00")])
def test_the_arrow_read_of_a_gapped_crm_equals_the_pandas_read(
    warehouse: Path, as_of: pd.Timestamp | None, vectors: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read, "_VECTORS", vectors)  # 1: batches of 2,048 rows, each column in chunks
    arrow, pandas = _both(warehouse, as_of)
    _all_same(arrow, pandas)
    acts = arrow.activities
    assert len(acts) > 2 * 2048 or vectors > 1
    assert (acts["rep"] == NONE_LABEL).any() and (acts["team"] == NONE_LABEL).any()
    assert acts["type"].isna().any() and acts["outcome"].isna().any() and acts["cold"].any()
    assert (acts["source"] == NONE_LABEL).any() and acts["size_band"].isna().any()
    assert (acts["size_band"] == NONE_LABEL).any()  # a deal without an amount
    assert acts["email_replied"].dtype == pd.BooleanDtype() and acts["email_replied"].isna().any()
    assert arrow.engagement["type"].isna().all() and len(arrow.engagement)


def test_an_as_of_before_every_event_reads_nothing_as_pandas_does(warehouse: Path) -> None:
    arrow, pandas = _both(warehouse, pd.Timestamp("2000-01-01"))
    assert arrow.activities.empty and arrow.engagement.empty
    _all_same(arrow, pandas)


def test_columns_arrow_would_convert_otherwise_are_read_by_duckdb(
    tmp_path: Path, crm: dict[str, pd.DataFrame]
) -> None:
    """A decimal amount and a date: ``df()`` gives floats and times; that table is read by ``df()``."""
    path = tmp_path / "decimal.duckdb"
    types = {("opportunities", "amount"): "DECIMAL(18,2)", ("stage_history", "expected_close_date"): "DATE"}
    _write(crm, path, types)
    arrow, pandas = _both(path, None)
    _all_same(arrow, pandas)
    assert arrow.opportunities["amount"].dtype == np.dtype(float)


def test_a_connection_that_may_reorder_scans_sorts_them(warehouse: Path) -> None:
    """Without ``preserve_insertion_order`` the rows are sorted by ``rowid``: the same frames."""
    with Warehouse(warehouse).connect(read_only=True) as con:
        assert read._ordered(con, "SELECT 1 FROM activities") == "SELECT 1 FROM activities"
        con.execute("SET preserve_insertion_order = false")
        assert read._ordered(con, "SELECT 1 FROM activities").endswith(" ORDER BY rowid ASC")
        arrow = read.load(con, None)
        con.execute("SET preserve_insertion_order = true")
        frames, pipeline = read_frames(con)
    _all_same(arrow, prepare(frames, pipeline, None))


def test_arrow_columns_take_the_types_duckdb_gives_the_whole_table() -> None:
    """Integers and booleans with a null anywhere in the table: nullable; else numpy's; text shared."""
    with duckdb.connect() as con:
        con.execute(
            """CREATE TABLE t AS SELECT range::VARCHAR AS id, (range % 3)::TINYINT AS small,
                      CASE WHEN range = 9 THEN NULL ELSE range END::UINTEGER AS gap,
                      CASE WHEN range = 9 THEN NULL ELSE range % 2 = 0 END AS flag,
                      range % 2 = 0 AS full_flag, CASE WHEN range % 4 = 0 THEN NULL ELSE 'x' END AS word,
                      (range / 2)::DOUBLE AS half, TIMESTAMP '2024-01-01' + range * INTERVAL 1 HOUR AS stamp
               FROM range(5000)"""
        )
        expected = con.execute("SELECT * FROM t").df()
        cut = expected.iloc[:9].reset_index(drop=True)  # no null among the first rows: the table's types
        when = pd.Timestamp("2024-01-01T09:00")
        got = read._arrow_frame(
            read._arrow(con, "SELECT * FROM t WHERE stamp < $when", when), read._nullable_columns(con, "t")
        )
        whole = read._arrow_frame(read._arrow(con, "SELECT * FROM t"), read._nullable_columns(con, "t"))
    _same(whole, expected, "whole")
    assert (
        str(got["gap"].dtype) == "UInt32"
        and str(got["flag"].dtype) == "boolean"
        and got["full_flag"].dtype == bool
    )
    _same(got, cut.astype(expected.dtypes.to_dict()), "cut")


@pytest.mark.parametrize(
    ("case", "types"),
    [
        ("integer rep ids on activities", {("activities", "rep_id"): "BIGINT"}),
        ("an all-missing direction typed INTEGER", {("activities", "direction"): "INTEGER"}),
        ("a decimal engagement value", {("engagement_events", "value"): "DECIMAL(12,2)"}),
    ],
)
def test_event_columns_of_another_type_are_read_as_the_pandas_read_reads_them(
    crm: dict[str, pd.DataFrame], tmp_path: Path, case: str, types: dict[tuple[str, str], str]
) -> None:
    t = {name: frame.copy() for name, frame in crm.items()}
    acts = t["activities"]
    if ("activities", "rep_id") in types:
        acts["rep_id"] = acts["rep_id"].map(lambda v: int(str(v)[1:]) if isinstance(v, str) else None)
    if ("activities", "direction") in types:
        acts["direction"] = None
    _write(t, tmp_path / "typed.duckdb", types)
    arrow, pandas = _both(tmp_path / "typed.duckdb", None)
    _all_same(arrow, pandas)
    assert len(arrow.activities) > 0, case


def test_the_frames_read_through_arrow_can_be_written_to_and_keep_a_rep_id_ending_in_nul(
    crm: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    t = {name: frame.copy() for name, frame in crm.items()}
    first_rep = t["reps"]["rep_id"].iloc[0]
    t["activities"].loc[t["activities"]["rep_id"] == first_rep, "rep_id"] = first_rep + "\x00"
    _write(t, tmp_path / "nul.duckdb")
    arrow, pandas = _both(tmp_path / "nul.duckdb", None)
    _all_same(arrow, pandas)  # not the rep without the NUL (and not their team)
    assert (arrow.activities["rep_id"] == first_rep + "\x00").any()
    arrow.engagement.loc[0, "value"] = 1.0  # Arrow's memory is read-only; the frames' columns are not
    arrow.activities.loc[0, "occurred_at"] = pd.Timestamp("2024-01-01")
    assert arrow.engagement.loc[0, "value"] == 1.0
