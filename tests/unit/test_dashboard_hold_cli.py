"""``forecast dashboard --hold``: the batch's window, opened before its first write, ended by its prepare."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from forecast.binding import model_refs
from forecast.cli import app
from forecast.config import load_settings
from forecast.dashboard.store import MODEL_ROLES, PageStore, default_store


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("FORECAST_DATA_DIR", str(folder))
    monkeypatch.setenv("FORECAST_WAREHOUSE", str(folder / "warehouse.duckdb"))
    return folder


def _store(data: Path) -> PageStore:
    settings = load_settings(data_dir=data, warehouse=data / "warehouse.duckdb")
    return default_store(settings, model_refs(MODEL_ROLES))


def test_hold_opens_the_window_before_the_warehouse_exists_and_zero_ends_it(data: Path) -> None:
    runner = CliRunner()
    held = runner.invoke(app, ["dashboard", "--hold", "90"])
    assert held.exit_code == 0, held.output
    assert "pause their warm-up" in held.output
    store = _store(data)
    assert store.held_until() is not None  # the folder a dashboard with the default models reads
    ended = runner.invoke(app, ["dashboard", "--hold", "0"])
    assert ended.exit_code == 0, ended.output
    assert store.held_until() is None


def test_hold_with_prepare_or_without_a_store_or_too_long_is_refused(data: Path) -> None:
    runner = CliRunner()
    for extra in (["--prepare"], ["--no-keep"]):
        result = runner.invoke(app, ["dashboard", "--hold", "5", *extra])
        assert result.exit_code == 2 and "separate steps" in result.output, result.output
    too_long = runner.invoke(app, ["dashboard", "--hold", str(25 * 60)])
    assert too_long.exit_code == 2
    assert not (data / "dashboard-cache").exists()  # nothing was written


def test_a_hold_that_cannot_be_written_exits_1(data: Path) -> None:
    data.mkdir()
    (data / "dashboard-cache").write_text("a file where the store's folder goes")
    runner = CliRunner()
    result = runner.invoke(app, ["dashboard", "--hold", "5"])
    assert result.exit_code == 1 and "could not be written" in result.output, result.output
    assert runner.invoke(app, ["dashboard", "--hold", "0"]).exit_code == 0  # nothing to end


def test_a_hold_that_cannot_be_removed_exits_1(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["dashboard", "--hold", "5"]).exit_code == 0
    monkeypatch.setattr(PageStore, "_remove", staticmethod(lambda _path: None))  # a read-only disk
    result = runner.invoke(app, ["dashboard", "--hold", "0"])
    assert result.exit_code == 1 and "could not be removed" in result.output, result.output
