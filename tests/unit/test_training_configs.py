"""Every training config loads, and every MLflow project entry point names a real config and command."""

from __future__ import annotations

import re

import pytest
import yaml
from typer.testing import CliRunner

from forecast.cli import app
from forecast.models.config import TrainingConfig
from tests.conftest import REPO

CONFIGS = sorted(
    p for p in (REPO / "training").glob("*.yaml") if p.name not in ("flags.yaml", "monitoring.yaml")
)
"""Every training config (``flags.yaml`` and ``monitoring.yaml`` have their own schemas and tests)."""


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_training_config_loads(path) -> None:  # type: ignore[no-untyped-def]
    config = TrainingConfig.from_yaml(path)
    assert config.model_name and config.experiment
    if config.label == "label_days_to_close":
        assert config.entity == "opportunity"
        assert config.survival.proba_days in config.survival.report_days


def test_mlproject_entry_points_match_configs_and_commands() -> None:
    project = yaml.safe_load((REPO / "training" / "MLproject").read_text(encoding="utf-8"))
    assert set(project["entry_points"]) == {
        "lead_scoring",
        "deal_win",
        "time_to_close",
        "churn_risk",
        "churn_risk_leads",
    }
    for name, entry in project["entry_points"].items():
        # the entry points run from the project root (``cd ..``): paths are relative to it
        assert entry["command"].startswith("cd .. && "), name
        assert (REPO / entry["parameters"]["config"]["default"]).is_file(), name
        command = re.search(r"train (\S+)", entry["command"])
        assert command is not None
        result = CliRunner().invoke(app, ["train", command.group(1), "--help"])
        assert result.exit_code == 0, result.stdout


def test_bad_survival_edges_are_refused() -> None:
    with pytest.raises(ValueError, match="edges"):
        TrainingConfig.model_validate({"survival": {"edges": [0, 30, 20]}})
    with pytest.raises(ValueError, match="last edge"):
        TrainingConfig.model_validate({"survival": {"edges": [0, 7, 30], "proba_days": 60}})


def test_the_censoring_and_prior_options_are_checked() -> None:
    from pydantic import ValidationError

    base = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")
    assert base.snapshots.censoring == "drop"  # the weights are an option (docs/models.md)
    data = base.model_dump(by_alias=True)
    data["snapshots"]["censoring"] = "ipcw"
    data["lightgbm"]["prior_c"] = "cv"
    chosen = TrainingConfig.model_validate(data)
    assert chosen.snapshots.censoring == "ipcw" and chosen.lightgbm.prior_c == "cv"
    for section, key, bad in (
        ("snapshots", "censoring", "weights"),
        ("lightgbm", "prior_c", 0),
        ("lightgbm", "prior_c", "x"),
    ):
        wrong = base.model_dump(by_alias=True)
        wrong[section][key] = bad
        with pytest.raises(ValidationError):
            TrainingConfig.model_validate(wrong)
