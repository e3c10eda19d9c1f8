"""A relative SQLite tracking URI is anchored at the project root, never the current folder (issue 22).

``sqlite:///mlflow.db`` (the default) is relative to the current folder for MLflow: a command run
from another folder opened another, empty store. :class:`forecast.config.Settings` resolves it, and
the relative artifacts folder, against ``project_root`` (the checkout, or ``FORECAST_PROJECT_ROOT``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forecast.cli import app
from forecast.config import Settings, anchored_tracking_uri, checkout_root, load_settings
from forecast.errors import InputError
from forecast.registry import tracking_uri
from tests.cli import runner
from tests.conftest import REPO


def test_the_defaults_are_anchored_at_the_checkout_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("FORECAST_PROJECT_ROOT", "FORECAST_MLFLOW_TRACKING_URI", "FORECAST_MLFLOW_ARTIFACTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert checkout_root() == REPO.resolve() == settings.project_root
    assert settings.mlflow_tracking_uri == f"sqlite:///{REPO.resolve()}/mlflow.db"
    assert settings.mlflow_artifacts == REPO.resolve() / "mlartifacts"
    # given relative paths are anchored too; absolute ones, servers and databases are kept
    monkeypatch.setenv("FORECAST_MLFLOW_TRACKING_URI", "sqlite:///stores/team.db")
    monkeypatch.setenv("FORECAST_MLFLOW_ARTIFACTS", "stores/artifacts")
    settings = load_settings()
    assert settings.mlflow_tracking_uri == f"sqlite:///{REPO.resolve()}/stores/team.db"
    assert settings.mlflow_artifacts == REPO.resolve() / "stores" / "artifacts"
    for kept in (
        f"sqlite:///{tmp_path}/abs.db",
        "sqlite:///:memory:",
        "http://127.0.0.1:5000",
        "postgresql://mlflow@db:5432/mlflow",
    ):
        assert load_settings(mlflow_tracking_uri=kept).mlflow_tracking_uri == kept
        assert anchored_tracking_uri(kept, tmp_path) == kept


def test_without_a_project_root_a_relative_store_is_refused_with_what_to_set() -> None:
    settings = Settings(project_root=None, mlflow_tracking_uri="sqlite:///mlflow.db")
    assert settings.mlflow_tracking_uri == "sqlite:///mlflow.db"  # kept: commands without MLflow run
    with pytest.raises(InputError, match=r"FORECAST_MLFLOW_TRACKING_URI .*FORECAST_PROJECT_ROOT") as err:
        tracking_uri(settings)
    assert "current folder" in str(err.value)
    absolute = Settings(project_root=None, mlflow_tracking_uri="http://127.0.0.1:5000")
    assert tracking_uri(absolute) == "http://127.0.0.1:5000"


def test_a_command_run_from_two_folders_uses_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, first, second = tmp_path / "project", tmp_path / "a", tmp_path / "b" / "c"
    for folder in (root, first, second):
        folder.mkdir(parents=True)
    env = {"FORECAST_PROJECT_ROOT": str(root), "FORECAST_MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    errors = []
    for cwd in (first, second):
        monkeypatch.chdir(cwd)
        result = runner.invoke(app, ["promote", "lead-scoring", "--json"], env=env)
        assert result.exit_code == 2, result.stdout
        errors.append(json.loads(result.stdout)["error"])
    # the same store answered both (no challenger yet), and it is the root's file, not a cwd's
    assert errors[0] == errors[1] and "no 'challenger' version" in errors[0]
    assert (root / "mlflow.db").is_file()
    assert not (first / "mlflow.db").exists() and not (second / "mlflow.db").exists()
