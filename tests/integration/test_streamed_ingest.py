"""A streamed import (chunks + DuckDB staging) judges and writes exactly what the in-memory one does.

Both paths run on the same faulty CRM: duplicate keys across chunk boundaries, orphans, cascading
rejects, stage changes before their deal, blank lines, bad numbers and dates, future timestamps,
custom columns (one clashing with a canonical name up to case). The streamed path uses chunks of a
few rows, so every batch rule crosses chunk boundaries.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from forecast.data.ingest import IngestReport, RejectsRefusedError, ingest
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.data.staged import StreamOptions
from forecast.data.warehouse import Warehouse

AS_OF = pd.Timestamp("2031-01-01")
IN_MEMORY = StreamOptions(min_bytes=10**12)
STREAMED = StreamOptions(chunk_rows=97, min_bytes=0)


def _faulty_tables() -> dict[str, pd.DataFrame]:
    tables = {
        k: v.astype(object).copy()
        for k, v in simulate_crm(SimulationConfig(n_leads=150, months=4, seed=3)).tables.items()
    }
    leads = tables["leads"]
    leads["Source"] = "custom text"  # clashes with canonical "source" up to case
    leads["favourite_colour"] = ["blue", None] * (len(leads) // 2) + ["red"] * (len(leads) % 2)
    leads.loc[5, "created_at"] = "not a date"  # its deals and activities cascade
    dup = leads.iloc[[3]].copy()
    tables["leads"] = pd.concat([leads, dup, leads.iloc[[10]]], ignore_index=True)
    opps = tables["opportunities"]
    opps.loc[0, "account_id"] = "NO-SUCH-ACCOUNT"
    opps.loc[1, "amount"] = "12k"
    if "lead_id" in opps.columns:
        opps.loc[2, "lead_id"] = leads.loc[5, "lead_id"]
    history = tables["stage_history"]
    first = history["opportunity_id"] == opps.loc[3, "opportunity_id"]
    created = pd.Timestamp(opps.loc[3, "created_at"])
    history.loc[first.idxmax(), "entered_at"] = (created - pd.Timedelta(days=3)).isoformat()
    history.loc[history["opportunity_id"] == opps.loc[0, "opportunity_id"], "stage"] = history.loc[
        history["opportunity_id"] == opps.loc[0, "opportunity_id"], "stage"
    ]
    acts = tables["activities"]
    acts.loc[4, "occurred_at"] = "2040-01-01T00:00:00"  # after the as-of time
    acts.loc[6, "lead_id"] = "NO-SUCH-LEAD"
    tables["activities"] = pd.concat([acts, acts.iloc[[8, 9]]], ignore_index=True)
    quotas = tables["quotas"]
    tables["quotas"] = pd.concat([quotas, quotas.iloc[[0]]], ignore_index=True)
    return tables


def _write(folder: Path, tables: dict[str, pd.DataFrame], fmt: str) -> Path:
    folder.mkdir(parents=True)
    for name, frame in tables.items():
        if fmt == "parquet":
            frame.astype(str).where(frame.notna(), None).to_parquet(folder / f"{name}.parquet")
            continue
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
        if name == "leads":  # a blank line inside and two at the end
            lines = path.read_text().splitlines()
            path.write_text("\n".join([*lines[:9], "", *lines[9:]]) + "\n\n\n")
    return folder


def _snapshot(path: Path) -> dict[str, list[str]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute("SHOW TABLES").fetchall()
            if r[0] not in ("ingest_log", "warehouse_meta")
        ]
        out = {}
        for name in names:
            query = (
                f'SELECT * EXCLUDE (ingest_id, ingested_at) FROM "{name}"'
                if name == "rejects"
                else f'SELECT * FROM "{name}"'
            )
            out[name] = sorted(map(repr, con.execute(query).fetchall()))
        return out
    finally:
        con.close()


def _comparable(report: IngestReport) -> dict[str, object]:
    out = report.as_dict()
    for key in ("ingest_id", "warehouse", "source_path"):
        out.pop(key)
    out["sample_rejects"] = len(out["sample_rejects"])  # the same records, maybe another order
    for table in out["tables"].values():  # type: ignore[union-attr]
        table["files"] = [Path(f).name for f in table["files"]]
    return out


def _run(crm: Path, warehouse: Path | None, options: StreamOptions, **kwargs: object) -> IngestReport:
    return ingest(
        crm,
        "canonical",
        None if warehouse is None else Warehouse(warehouse),
        as_of=AS_OF,
        options=options,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_streamed_and_in_memory_imports_agree_on_every_row_and_reject(tmp_path: Path, fmt: str) -> None:
    crm = _write(tmp_path / "crm", _faulty_tables(), fmt)
    a, b = tmp_path / "memory.duckdb", tmp_path / "streamed.duckdb"
    memory = _run(crm, a, IN_MEMORY)
    streamed = _run(crm, b, STREAMED)
    rules = {r["rule"] for r in memory.rejects_by_rule}
    assert {"duplicate_key", "foreign_key", "history_before_created", "future_timestamp"} <= rules
    assert streamed.balanced
    assert _comparable(streamed) == _comparable(memory)
    assert _snapshot(b) == _snapshot(a)
    # the same import again: nothing new, nothing changed, no reject recorded twice
    again_memory, again_streamed = _run(crm, a, IN_MEMORY), _run(crm, b, STREAMED)
    assert _comparable(again_streamed) == _comparable(again_memory)
    assert all(t["inserted"] == 0 and t["updated"] == 0 for t in again_streamed.tables.values())
    assert _snapshot(b) == _snapshot(a)
    assert not list(tmp_path.glob(".forecast-staging-*")), "the staging folder outlived the import"


def test_a_streamed_dry_run_judges_foreign_keys_against_the_stored_rows(tmp_path: Path) -> None:
    tables = _faulty_tables()
    full = _write(tmp_path / "crm", tables, "csv")
    only = _write(tmp_path / "activities_only", {"activities": tables["activities"]}, "csv")
    warehouse = tmp_path / "wh.duckdb"
    _run(full, warehouse, IN_MEMORY)
    before = _snapshot(warehouse)
    memory = _run(only, warehouse, IN_MEMORY, dry_run=True)
    streamed = _run(only, warehouse, STREAMED, dry_run=True)
    assert _comparable(streamed) == _comparable(memory)
    assert streamed.tables["activities"]["valid"] > 0
    alone = _run(only, None, STREAMED, dry_run=True)  # without a warehouse every lead is unknown
    assert _comparable(alone) == _comparable(_run(only, None, IN_MEMORY, dry_run=True))
    assert alone.tables["activities"]["rejected"] > streamed.tables["activities"]["rejected"]
    assert _snapshot(warehouse) == before


def test_a_streamed_import_refused_for_its_rejects_writes_nothing(tmp_path: Path) -> None:
    tables = _faulty_tables()
    tables["opportunities"]["amount"] = "lots"
    crm = _write(tmp_path / "crm", tables, "csv")
    warehouse = tmp_path / "wh.duckdb"
    with pytest.raises(RejectsRefusedError) as memory:
        _run(crm, tmp_path / "other.duckdb", IN_MEMORY, max_reject_share=0.05)
    with pytest.raises(RejectsRefusedError) as streamed:
        _run(crm, warehouse, STREAMED, max_reject_share=0.05)
    assert _comparable(streamed.value.report) == _comparable(memory.value.report)
    assert streamed.value.report.excessive_rejects[0]["examples"] == ["lots"]
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM leads").fetchone() == (0,)
    finally:
        con.close()
