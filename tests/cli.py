"""What the CLI integration tests share: settings pointing into a temp folder, and one JSON call."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from forecast.cli import app

runner = CliRunner()


def cli_env(root: Path, warehouse: str = "wh") -> dict[str, str]:
    """``FORECAST_*`` settings with the warehouse, MLflow store, models and outputs under ``root``."""
    return {
        "FORECAST_WAREHOUSE": str(root / f"{warehouse}.duckdb"),
        "FORECAST_MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "FORECAST_MLFLOW_ARTIFACTS": str(root / "mlartifacts"),
        "FORECAST_MODELS_DIR": str(root / "models"),
        "FORECAST_OUTPUTS_DIR": str(root / "outputs"),
        "ROOT": str(root),
    }


def cli_json(env: dict[str, str], *args: str, code: int = 0) -> dict:
    """Run ``forecast <args> --json``, check the exit code, return the parsed document."""
    result = runner.invoke(app, [*args, "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == code, result.stdout + str(result.stderr)
    return json.loads(result.stdout)
