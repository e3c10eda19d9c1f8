"""What the CLI integration tests share: settings pointing into a temp folder, and one JSON call."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from forecast.cli import app
from tests.conftest import REPO

runner = CliRunner()


def cli_env(root: Path, warehouse: str = "wh") -> dict[str, str]:
    """``FORECAST_*`` settings with the warehouse, MLflow store, models, outputs and data under ``root``."""
    return {
        "FORECAST_WAREHOUSE": str(root / f"{warehouse}.duckdb"),
        "FORECAST_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "FORECAST_MLFLOW_ARTIFACTS": str(root / "mlartifacts"),
        "FORECAST_MODELS_DIR": str(root / "models"),
        "FORECAST_OUTPUTS_DIR": str(root / "outputs"),
        "FORECAST_DATA_DIR": str(root / "data"),  # (the dashboard's page store, `forecast run`'s CRM)
        "ROOT": str(root),
    }


def settings_of(env: dict[str, str]) -> Any:
    """The ``Settings`` the CLI reads under ``env`` (its ``FORECAST_*`` variables, then restored)."""
    from forecast.config import load_settings

    keys = {k: v for k, v in env.items() if k.startswith("FORECAST_")}
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        return load_settings()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cli_json(env: dict[str, str], *args: str, code: int = 0) -> dict:
    """Run ``forecast <args> --json``, check the exit code, return the parsed document."""
    result = runner.invoke(app, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == code, result.stdout + str(result.stderr)
    return json.loads(result.stdout)


def fast_config(root: Path, stem: str) -> Path:
    """``training/<stem>.yaml`` with few, fast trees, written to ``root`` (tests that need models, not
    good ones: the model-quality gates use the real configs)."""
    config = yaml.safe_load((REPO / "training" / f"{stem}.yaml").read_text(encoding="utf-8"))
    config["lightgbm"].update({"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20})
    if "prior_folds" in config["lightgbm"]:
        config["lightgbm"]["prior_folds"] = 2
    path = root / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
