"""The dashboard under the HTTP service reads the service's models (``forecast serve --models``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecast.config import Settings
from forecast.errors import InputError
from forecast.serving.dashboard_mount import dashboard_refs, mounted_app


def _settings(tmp_path: Path, models: str) -> Settings:
    return Settings(
        warehouse=tmp_path / "w.duckdb",
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        serve_warehouse=True,
        serve_models=models,
    )


def test_the_mounted_pages_read_the_models_the_service_was_started_with(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "deal_win=deal_win_maven@champion,time_to_close=time_to_close:3")
    app = mounted_app(settings)
    refs = app.state.reader.refs
    assert refs["deal_win"].name == "deal_win_maven" and refs["deal_win"].alias == "champion"
    assert refs["time_to_close"].name == "time_to_close" and refs["time_to_close"].version == "3"
    assert refs["deal_win"].explicit and refs["time_to_close"].explicit


def test_without_models_the_mounted_pages_read_the_champions(tmp_path: Path) -> None:
    refs = dashboard_refs(_settings(tmp_path, ""))
    assert set(refs) == {"deal_win", "time_to_close"}
    assert [(r.name, r.alias, r.explicit) for r in refs.values()] == [
        ("deal_win", "champion", False),
        ("time_to_close", "champion", False),
    ]


def test_a_models_mapping_for_other_roles_leaves_the_pages_champions(tmp_path: Path) -> None:
    refs = dashboard_refs(_settings(tmp_path, "lead_scoring=byo:2"))
    assert refs["deal_win"].name == "deal_win" and not refs["deal_win"].explicit


def test_a_bad_mapping_is_refused_with_the_option_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--models"):
        dashboard_refs(_settings(tmp_path, "nonsense"))
