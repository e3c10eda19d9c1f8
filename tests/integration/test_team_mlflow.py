"""The team setup (issue 22 item 1): a real MLflow tracking server on a real PostgreSQL.

PostgreSQL (Debian's package: ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/*/bin``) runs on
a temporary data folder and a loopback port; ``mlflow server`` stores runs and the registry in it
and artifacts in its ``--artifacts-destination``. The CLI then trains, promotes and scores with
``FORECAST_MLFLOW_TRACKING_URI=http://127.0.0.1:PORT``, and the service's model store loads the
champion through the server. The tests skip, with the reason, only where PostgreSQL is not
installed (``.ci/run`` installs it when it runs as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psycopg
import pytest
from mlflow import MlflowClient

from forecast.batch import score_warehouse
from forecast.config import Settings
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.serving.store import ModelStore
from tests.cli import cli_env, cli_json, fast_config
from tests.processes import free_port

pytestmark = pytest.mark.slow  # starts PostgreSQL and an MLflow server, trains a model

PG_BIN_DIRS = "/usr/lib/postgresql/*/bin"
"""Where Debian's ``postgresql`` package puts ``initdb`` and ``pg_ctl`` (not on ``PATH``)."""
SERVER_START_TIMEOUT = 240.0
"""Seconds for ``mlflow server`` to answer ``/health`` (its first start creates the tables)."""


def _pg_bin() -> Path:
    """The newest PostgreSQL's binaries folder, or skip with the reason."""
    found = sorted(
        (p for p in Path("/").glob(PG_BIN_DIRS.lstrip("/")) if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    on_path = shutil.which("initdb")
    if found:
        return found[-1]
    if on_path:
        return Path(on_path).parent
    pytest.skip(
        f"PostgreSQL is not installed (no initdb in {PG_BIN_DIRS} or on PATH): .ci/run installs "
        "Debian's postgresql package when it runs as root; elsewhere: apt-get install postgresql"
    )


def _as_postgres_user(folder: Path) -> list[str]:
    """The command prefix that runs PostgreSQL's tools as a user it accepts (it refuses root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: PostgreSQL refuses to run as root")
    nobody = pwd.getpwnam("nobody")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    return ["runuser", "-u", "nobody", "--"]


def _run(command: list[str]) -> None:
    # from /: the unprivileged user may not read the current folder
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd="/")
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on a temporary folder and a loopback port; its ``mlflow`` database's URI."""
    bin_dir = _pg_bin()
    # under /tmp, not pytest's tmp_path: the unprivileged user must reach it
    folder = Path(tempfile.mkdtemp(prefix="forecast-pg-"))
    user = _as_postgres_user(folder)
    data, port = folder / "data", free_port()
    try:
        _run([*user, str(bin_dir / "initdb"), "-D", str(data), "-U", "forecast", "--auth=trust"])
        options = f"-h 127.0.0.1 -p {port} -k {folder} -F"  # loopback TCP, its own socket folder
        pg_ctl = [*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "postgres.log")]
        _run([*pg_ctl, "-w", "-t", "60", "-o", options, "start"])
        try:
            createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "forecast"]
            _run([*user, *createdb, "mlflow"])
            yield f"postgresql://forecast@127.0.0.1:{port}/mlflow"
        finally:
            subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=60, check=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start_mlflow_server(backend: str, artifacts: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``mlflow server`` on ``backend`` with ``artifacts`` as its artifact store (not waited for)."""
    port = free_port()
    env = {**os.environ, "MLFLOW_ENABLE_TELEMETRY": "false", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
        "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return proc, f"http://127.0.0.1:{port}"


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    pytest.fail(f"mlflow server did not answer in {SERVER_START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group (its uvicorn worker too): politely, then for sure."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=5)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def team(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A warehouse and the CLI's settings pointed at an ``mlflow server`` on ``postgres``."""
    root = tmp_path_factory.mktemp("team")
    artifacts = root / "server-artifacts"
    proc, url = _start_mlflow_server(postgres, artifacts, root / "mlflow-server.log")
    try:
        # the CRM is simulated and ingested while the server starts (at 2,000 leads the fast lead
        # scoring model loses to its logistic baseline and the gate refuses it)
        simulate_crm(SimulationConfig(n_leads=3000, seed=11, months=12)).write(root / "crm")
        env = {**cli_env(root), "FORECAST_MLFLOW_TRACKING_URI": url, "BACKEND": postgres}
        env["ARTIFACTS"] = str(artifacts)
        cli_json(env, "ingest", str(root / "crm"))
        _wait_healthy(proc, url, root / "mlflow-server.log")
        yield env
    finally:
        _stop(proc)


def test_train_promote_score_and_serve_through_the_tracking_server(team: dict[str, str]) -> None:
    root, url = Path(team["ROOT"]), team["FORECAST_MLFLOW_TRACKING_URI"]
    trained = cli_json(team, "train", "lead-scoring", "--config", str(fast_config(root, "lead_scoring")))
    assert trained["tracking_uri"] == url
    promoted = cli_json(team, "promote", "lead-scoring")
    assert promoted["promoted"], promoted["reason"]
    out = root / "scores.parquet"
    summary = cli_json(team, "score", "leads", "--from-warehouse", "--output", str(out), "--no-reasons")
    scores = pd.read_parquet(out)
    assert summary["model_version"] == trained["version"] == "1" and len(scores) == summary["scored"] > 0

    # the server holds the run, the version and its aliases, in PostgreSQL
    client = MlflowClient(url)
    run = client.get_run(trained["run_id"])
    assert "test_roc_auc" in run.data.metrics and run.data.tags["model_name"] == "lead_scoring"
    versions = client.search_model_versions("name = 'lead_scoring'")
    assert [(v.version, v.run_id) for v in versions] == [("1", trained["run_id"])]
    assert client.get_model_version_by_alias("lead_scoring", "champion").version == "1"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")
    with psycopg.connect(team["BACKEND"]) as con:
        stored = con.execute("SELECT name, version FROM model_versions").fetchall()
        kinds = con.execute("SELECT value FROM tags WHERE key = 'kind'").fetchall()
    assert stored == [("lead_scoring", 1)] and ("promotion",) in kinds

    # the artifacts went to the server's destination, none to the client's local folder
    artifacts = Path(team["ARTIFACTS"])
    run_folder = artifacts / run.info.experiment_id / trained["run_id"] / "artifacts"
    assert (run_folder / "model_card.md").is_file()
    assert (run_folder / "evaluation" / "test_slice.parquet").is_file()
    assert any(artifacts.rglob("MLmodel")) and any(artifacts.rglob("model.pkl"))
    assert not Path(team["FORECAST_MLFLOW_ARTIFACTS"]).exists()

    # the service's model store loads the champion through the server and scores as the batch did
    settings = Settings(warehouse=Path(team["FORECAST_WAREHOUSE"]), mlflow_tracking_uri=url)
    store = ModelStore(settings, names=("lead_scoring",))
    assert store.refresh() == {"lead_scoring": {"result": "loaded", "version": "1"}}
    served = store.get("lead_scoring").model
    assert served.run_id == trained["run_id"]
    scored, _, id_column = score_warehouse(served, settings, None, reasons=False)
    both = scores.merge(scored.scores, on=id_column, suffixes=("", "_served"))
    assert len(both) == len(scores)
    assert np.allclose(both["p_convert"], both["p_convert_served"], rtol=0, atol=1e-9)
