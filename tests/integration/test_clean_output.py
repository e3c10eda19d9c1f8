"""Output for people: a training through the CLI writes no library noise to stderr, and its table
fits 80 columns (the width of a pipe, a CI log)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from forecast.data.simulate import SimulationConfig, simulate_crm
from tests.cli import cli_env
from tests.cli import cli_json as _cli

KNOWN_NOISE = (
    "Saving scikit-learn models in the pickle",
    "Saving the models in the pickle",
    "Failed to resolve installed pip version",
    "divide by zero",
    "RuntimeWarning",
    "Warning:",
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("clean_output")
    simulate_crm(SimulationConfig(n_leads=2000, seed=3, months=12)).write(root / "crm")
    env = cli_env(root)
    assert _cli(env, "ingest", str(root / "crm"))["balanced"]
    return env


def test_training_writes_no_library_warnings_to_stderr(env: dict[str, str]) -> None:
    full = {  # Python's default warning filters: what a user sees
        **os.environ,
        **env,
        "COLUMNS": "80",
        "FORECAST_THREADS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "forecast.cli", "train", "lead-scoring", "--promote"],
        env=full,
        capture_output=True,
        text=True,
        timeout=420,
        cwd=Path(env["ROOT"]),
    )
    assert done.returncode == 0, done.stderr
    for noise in KNOWN_NOISE:
        assert noise not in done.stderr, done.stderr
    assert "naive_bayes" in done.stdout  # the baseline that used to divide by zero ran
    assert "…" not in done.stdout and max(len(line) for line in done.stdout.splitlines()) <= 80


def test_flags_read_whole_at_80_columns(env: dict[str, str]) -> None:
    """Each top flag's evidence and suggested action are printed whole (no cut cell) in 80 columns."""
    done = subprocess.run(
        [sys.executable, "-m", "forecast.cli", "flags", "--limit", "5"],
        env={**os.environ, **env, "COLUMNS": "80", "FORECAST_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(env["ROOT"]),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "…" not in done.stdout and max(len(line) for line in lines) <= 80
    evidence = [line for line in lines if line.strip().startswith("evidence:")]
    actions = [line for line in lines if line.strip().startswith("do:")]
    assert len(evidence) == len(actions) >= 1, done.stdout
