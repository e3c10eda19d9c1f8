"""The dashboard tests' trained warehouse, built once per test session and shared by their files.

Simulating a CRM, ingesting it and training deal-win and time-to-close takes about a minute: the
dashboard, browser and report tests read the same one (read-only) instead of each building theirs.
Under pytest-xdist the workers share it through a file lock in the session's common temp folder.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow import MlflowClient

from forecast.data.simulate import SimulationConfig, simulate_crm
from tests.cli import cli_env, cli_json, fast_config
from tests.processes import stop

AS_OF = "2024-12-16"
"""Mid-month: the current period has bookings and days of pacing."""


def _build(root: Path) -> dict[str, str]:
    simulate_crm(SimulationConfig(n_leads=2000, seed=11, months=12)).write(root / "crm")
    env = cli_env(root)
    cli_json(env, "ingest", str(root / "crm"))
    store = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    for model, stem in (("deal-win", "deal_win"), ("time-to-close", "time_to_close")):
        trained = cli_json(env, "train", model, "--config", str(fast_config(root, stem)))
        # a CRM this small may not pass the promotion gate: the tests need champions, not good ones
        store.set_registered_model_alias(stem, "champion", trained["version"])
    return env


def trained_env(factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    """``FORECAST_*`` settings of a simulated CRM (2,000 leads, 12 months) with two champions.

    Args:
        factory: The session's temp path factory.
        worker_id: pytest-xdist's worker id (``"master"`` without workers).

    Returns:
        The settings (``cli_env``'s keys); the tests must not write to the warehouse or the store.
    """
    base = factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent  # the workers' common folder
    root = shared / "dashboard-warehouse"
    done = shared / "dashboard-warehouse.json"
    with (shared / "dashboard-warehouse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait here while one builds
        if not done.is_file():
            root.mkdir(exist_ok=True)
            done.write_text(json.dumps(_build(root)), encoding="utf-8")
    env: dict[str, str] = json.loads(done.read_text(encoding="utf-8"))
    return env


@contextmanager
def dashboard_server(
    env: dict[str, str], port: int, log: Path, *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``forecast dashboard --port PORT [extra]`` in its own process, until the block ends.

    Yields once its health answers on ``http://127.0.0.1:PORT`` and the process is still the one
    running (were it gone, another program would be answering on the port).
    """
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "forecast.cli", "dashboard", "--port", str(port), *extra],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the dashboard did not start: {log.read_text()}") from None
                time.sleep(0.2)
        assert process.poll() is None, f"the server exited, another answers: {log.read_text()}"
        yield process
    finally:
        stop(process)
