"""``bentoml build`` makes a Bento of the service whose source layout imports on its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_bentoml_build_produces_a_servable_bento(tmp_path: Path) -> None:
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    cmd = [sys.executable, "-m", "bentoml", "build", "-f", "bentofile.yaml", "src", "--output", "tag"]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tag = run.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    bento = tmp_path / "bentoml" / "bentos" / name / version
    meta = yaml.safe_load((bento / "bento.yaml").read_text())
    assert meta["service"] == "forecast.serving.service:ForecastService" and name == "forecast"
    routes = {api["route"] for svc in meta["services"] for api in svc.get("apis") or []} | {
        api["route"] for api in meta.get("apis") or []
    }
    openapi = (bento / "apis" / "openapi.yaml").read_text()
    for route in ("/lead_score", "/win_probability", "/time_to_close", "/flags", "/revenue_forecast"):
        assert route in openapi and (not routes or route in routes), route
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "mlflow==3.17" in requirements
    locked = (ROOT / "uv.lock").read_text()
    for package in ("lightgbm", "scikit-learn", "pandas", "numpy"):  # the pickles' libraries, as locked
        version = locked.split(f'name = "{package}"\nversion = "', 1)[1].split('"', 1)[0]
        assert f"{package}=={version}" in requirements, package
    # The Bento's source folder holds the package at its root, as `bentoml serve <tag>` imports it.
    src = bento / "src"
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import importlib.util; "
        "spec = importlib.util.find_spec('forecast.serving.service'); print(spec.origin)"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, str(src)], capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve().is_relative_to(src.resolve())
    # The YAML configs travel with it, and the Bento reads them (no training/ folder beside it).
    shipped = sorted(p.name for p in (src / "forecast" / "defaults").glob("*.yaml"))
    assert shipped == sorted(p.name for p in (ROOT / "training").glob("*.yaml"))
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from forecast.config import default_config_dir; print(default_config_dir())"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe, str(src)], capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).resolve() == (src / "forecast" / "defaults").resolve()
