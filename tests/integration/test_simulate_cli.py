"""`forecast simulate --world`: presets and world files, and the written pipeline feeds `forecast ingest`."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from forecast.cli import app

runner = CliRunner()


def test_world_with_other_stages_simulates_and_ingests(tmp_path: Path) -> None:
    out = tmp_path / "crm"
    result = runner.invoke(
        app, ["simulate", "--out", str(out), "--world", "stages-3", "--leads", "600", "--json"]
    )
    assert result.exit_code == 0, result.stdout
    summary = json.loads(result.stdout)
    assert summary["rows"]["leads"] == 600
    assert Path(summary["pipeline_file"]).is_file()
    params = json.loads((out / "simulation_params.json").read_text(encoding="utf-8"))
    assert params["config"]["months"] == 12
    wh = tmp_path / "wh.duckdb"
    ingest = runner.invoke(
        app,
        ["--warehouse", str(wh), "ingest", str(out), "--pipeline", summary["pipeline_file"], "--json"],
    )
    assert ingest.exit_code == 0, ingest.stdout
    report = json.loads(ingest.stdout)
    assert report["balanced"] and report["tables"]["opportunities"]["inserted"] > 0
    assert report["tables"]["stage_history"]["rejected"] == 0
    assert report["tables"]["opportunities"]["rejected"] == 0


def test_world_file_and_overrides(tmp_path: Path) -> None:
    world = tmp_path / "short.yaml"
    world.write_text("months: 3\nwin_rate: 0.5\nleads_per_month: 300\n", encoding="utf-8")
    out = tmp_path / "crm"
    result = runner.invoke(
        app, ["simulate", "--out", str(out), "--world", str(world), "--seed", "3", "--json"]
    )
    assert result.exit_code == 0, result.stdout
    summary = json.loads(result.stdout)
    assert summary["rows"]["leads"] == 900 and summary["seed"] == 3
    assert "pipeline_file" not in summary


def test_unknown_world_fails_with_the_presets(tmp_path: Path) -> None:
    result = runner.invoke(app, ["simulate", "--out", str(tmp_path), "--world", "nope", "--json"])
    assert result.exit_code != 0
    assert "history-3m" in result.stdout + (result.stderr or "")
