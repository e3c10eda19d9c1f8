"""Issue 17 item 3: a canonical CRM with other stage names is ingested with a pipeline learnt from it."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
from typer.testing import CliRunner

from forecast.cli import app
from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.warehouse import Warehouse
from tests.conftest import tiny_tables, write_tables
from tests.unit.test_pipeline_learn import RENAME, _renamed

runner = CliRunner()


def _ingest(warehouse: Path, path: Path, *extra: str) -> tuple[int, dict]:
    result = runner.invoke(
        app, ["--warehouse", str(warehouse), "ingest", str(path), "--json", *extra], catch_exceptions=False
    )
    return result.exit_code, json.loads(result.stdout)


def _simulated() -> dict[str, pd.DataFrame]:
    from forecast.data.simulate import SimulationConfig, simulate_crm

    return simulate_crm(SimulationConfig(n_leads=400, months=6, seed=5)).tables


def test_a_renamed_crm_is_ingested_with_a_learnt_pipeline_that_is_stored_and_reused(tmp_path: Path) -> None:
    tables = _simulated()
    crm = write_tables(tmp_path / "renamed", _renamed(tables))
    wh = tmp_path / "wh.duckdb"
    code, report = _ingest(wh, crm)
    assert code == 0, report
    assert report["pipeline_source"] == "learnt" and report["rejects_by_rule"] == []
    learnt = [s["name"] for s in report["pipeline"]["stages"]]
    assert learnt == [RENAME[s] for s in DEFAULT_PIPELINE.names]
    stored = Warehouse(wh).pipeline()
    assert stored is not None and stored.names == learnt
    assert (stored.won_stages, stored.lost_stages) == (["Ganado"], ["Perdido"])
    # later commands read the stored pipeline (features, revenue, tracking)
    from forecast.features.source import warehouse_source

    with warehouse_source(wh) as src:
        assert src.pipeline.names == learnt
    # a second import uses the stored one, and changes nothing
    code, again = _ingest(wh, crm)
    assert code == 0 and again["pipeline_source"] == "stored"
    assert all(t["inserted"] == 0 and t["updated"] == 0 for t in again["tables"].values())
    # the human summary prints the learnt pipeline
    out = runner.invoke(app, ["--warehouse", str(tmp_path / "other.duckdb"), "ingest", str(crm)])
    assert out.exit_code == 0
    assert (
        "pipeline learnt from the data" in out.stdout
        and "Haggle → Ganado (won) / Perdido (lost)" in out.stdout
    )


def test_pipeline_option_still_overrides_learning(tmp_path: Path) -> None:
    tables = _simulated()
    crm = write_tables(tmp_path / "renamed", _renamed(tables))
    pipeline_file = tmp_path / "p.yaml"
    stages = [RENAME[s] for s in DEFAULT_PIPELINE.open_stages]
    pipeline_file.write_text(
        "name: mine\nstages:\n"
        + "".join(f"  - name: {s}\n" for s in stages)
        + "  - {name: Ganado, is_closed: true, is_won: true}\n  - {name: Perdido, is_closed: true}\n"
    )
    code, report = _ingest(tmp_path / "wh.duckdb", crm, "--pipeline", str(pipeline_file))
    assert code == 0 and report["pipeline_source"] == "given" and report["pipeline"]["name"] == "mine"


def test_a_crm_whose_won_stage_cannot_be_told_exits_2_naming_pipeline(tmp_path: Path) -> None:
    tables = _simulated()
    renamed = _renamed(tables)
    for name in ("opportunities", "stage_history"):
        renamed[name]["stage"] = renamed[name]["stage"].replace({"Ganado": "End A", "Perdido": "End B"})
    renamed["opportunities"]["outcome"] = "open"  # the outcome says nothing either
    crm = write_tables(tmp_path / "unclear", renamed)
    wh = tmp_path / "wh.duckdb"
    code, report = _ingest(wh, crm)
    assert code == 2 and report["ok"] is False
    assert "--pipeline FILE" in report["error"] and "is_won: true" in report["error"]
    assert not wh.exists()
    result = runner.invoke(app, ["--warehouse", str(wh), "validate", str(crm)])
    assert result.exit_code == 2 and not wh.exists()


def test_the_default_named_crm_keeps_exactly_the_default_pipeline(tiny_crm: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    code, report = _ingest(wh, tiny_crm)
    assert code == 0 and report["pipeline_source"] == "default"
    assert report["pipeline"] == DEFAULT_PIPELINE.to_dict()
    con = duckdb.connect(str(wh), read_only=True)
    rows = con.execute("SELECT pipeline, stage FROM pipeline_stages ORDER BY rowid").fetchall()
    con.close()
    assert rows == [("default", s) for s in DEFAULT_PIPELINE.names]


def test_a_warehouse_holding_deals_keeps_its_pipeline(tiny_crm: Path, tmp_path: Path) -> None:
    """A stored pipeline with deals wins over learning: other names are rejected (the reject guard)."""
    wh = tmp_path / "wh.duckdb"
    assert _ingest(wh, tiny_crm)[0] == 0
    crm = write_tables(tmp_path / "renamed", _renamed(tiny_tables()))
    code, report = _ingest(wh, crm, "--max-reject-share", "1")
    assert code == 0 and report["pipeline_source"] == "stored"
    assert {r["rule"] for r in report["rejects_by_rule"]} >= {"unknown_stage"}


def test_the_stages_8_world_is_ingested_without_its_pipeline_file(tmp_path: Path) -> None:
    """``forecast simulate --world stages-8`` writes pipeline.yaml; the ingest no longer needs it."""
    from forecast.data.simulation.worlds import load_world

    out = tmp_path / "stages8"
    simulated = runner.invoke(app, ["simulate", "--out", str(out), "--world", "stages-8", "--leads", "400"])
    assert simulated.exit_code == 0, simulated.stdout
    (out / "pipeline.yaml").unlink()
    code, report = _ingest(tmp_path / "wh.duckdb", out)
    assert code == 0, report
    assert report["pipeline_source"] == "learnt" and report["rejects_by_rule"] == []
    assert [s["name"] for s in report["pipeline"]["stages"]] == load_world("stages-8").pipeline().names
