"""Global options before or after the command (issue 17: the README's examples failed as written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from forecast.cli import app
from forecast.cli.global_options import move_global_options

GROUP = typer.main.get_command(app)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ingest", "x", "--warehouse", "w.duckdb"], ["--warehouse", "w.duckdb", "ingest", "x"]),
        (
            ["ingest", "x", "--warehouse=w.duckdb", "--json"],
            ["--warehouse=w.duckdb", "ingest", "x", "--json"],
        ),
        (
            ["--log-level", "DEBUG", "backtest", "revenue", "--warehouse", "w", "--from", "2026-01-01"],
            ["--warehouse", "w", "--log-level", "DEBUG", "backtest", "revenue", "--from", "2026-01-01"],
        ),
        (["--warehouse", "w", "quality"], ["--warehouse", "w", "quality"]),
        (["serve", "--warehouse"], ["serve", "--warehouse"]),  # the service's own flag stays
        (["quality", "--", "--warehouse", "w"], ["quality", "--", "--warehouse", "w"]),
        (["no-such-command", "--warehouse", "w"], ["no-such-command", "--warehouse", "w"]),
        ([], []),
    ],
)
def test_global_options_after_the_command_move_to_the_front(args: list[str], expected: list[str]) -> None:
    assert move_global_options(GROUP, args) == expected


def test_a_warehouse_named_after_the_command_is_the_one_used(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = tmp_path / "absent.duckdb"
    after = runner.invoke(app, ["quality", "--json", "--warehouse", str(missing)])
    before = runner.invoke(app, ["--warehouse", str(missing), "quality", "--json"])
    assert after.exit_code == before.exit_code == 2
    assert json.loads(after.stdout) == json.loads(before.stdout)
    assert str(missing) in json.loads(after.stdout)["error"]
