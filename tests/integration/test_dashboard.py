"""The dashboard end to end: a simulated CRM, two champions, every page through Starlette's TestClient.

The pages' figures are compared with the CLI's ``--json`` for the same as of (the same functions must
give the same numbers), a filter in the URL must change them, no page may reference another host,
and with a token the pages need the login cookie.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow import MlflowClient

from forecast.cli import app
from forecast.config import Settings, load_settings
from forecast.dashboard.app import create_app
from forecast.data.simulate import SimulationConfig, simulate_crm
from tests.cli import cli_env, runner
from tests.cli import cli_json as _cli
from tests.conftest import REPO

with warnings.catch_warnings():  # starlette's TestClient warns that it still uses httpx (no httpx2 here)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.slow  # trains two models

AS_OF = "2024-12-16"
"""Mid-month: the current period has bookings and days of pacing."""
PAGES = ("/", "/reps", "/pipeline", "/insights", "/models")
TOKEN = "dashboard-token-for-tests"


def _fast_config(root: Path, stem: str) -> Path:
    config = yaml.safe_load((REPO / "training" / f"{stem}.yaml").read_text(encoding="utf-8"))
    config["lightgbm"].update({"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20})
    if "prior_folds" in config["lightgbm"]:
        config["lightgbm"]["prior_folds"] = 2
    path = root / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("dashboard")
    simulate_crm(SimulationConfig(n_leads=2000, seed=11, months=12)).write(root / "crm")
    env = cli_env(root)
    _cli(env, "ingest", str(root / "crm"))
    store = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    for model, stem in (("deal-win", "deal_win"), ("time-to-close", "time_to_close")):
        trained = _cli(env, "train", model, "--config", str(_fast_config(root, stem)))
        # a CRM this small may not pass the promotion gate: the test needs champions, not good ones
        store.set_registered_model_alias(stem, "champion", trained["version"])
    return env


def _settings(env: dict[str, str], **changes: Any) -> Settings:
    """The settings the CLI reads from ``env``, given directly (the app takes them, not the environment)."""
    paths = {
        "warehouse": Path(env["FORECAST_WAREHOUSE"]),
        "mlflow_tracking_uri": env["FORECAST_MLFLOW_TRACKING_URI"],
        "mlflow_artifacts": Path(env["FORECAST_MLFLOW_ARTIFACTS"]),
        "models_dir": Path(env["FORECAST_MODELS_DIR"]),
    }
    return load_settings(**{**paths, **changes})


@pytest.fixture(scope="module")
def client(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(env))) as c:
        yield c


def _get(client: TestClient, path: str, **params: str) -> str:
    response = client.get(path, params={"as_of": AS_OF, **params})
    assert response.status_code == 200, response.text[:2000]
    return response.text


def _figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([^"]+)" data-value="([^"]*)"', html))


def _rows(html: str) -> dict[str, dict[str, str]]:
    """Table rows by ``data-row``: each cell's exact value by ``data-col`` (first table wins)."""
    out: dict[str, dict[str, str]] = {}
    for key, body in re.findall(r'<tr data-row="([^"]*)"[^>]*>(.*?)</tr>', html, re.S):
        out.setdefault(key, dict(re.findall(r'data-col="([^"]+)" data-value="([^"]*)"', body)))
    return out


def _close(page: str, cli: Any) -> bool:
    if cli is None:
        return page == ""
    return float(page) == pytest.approx(float(cli), rel=1e-9, abs=1e-9)


def test_every_page_answers_with_the_as_of_and_references_no_other_host(client: TestClient) -> None:
    for path in PAGES:
        response = client.get(path, params={"as_of": AS_OF})
        assert response.status_code == 200, (path, response.text[:2000])
        html = response.text
        assert _figures(html)["as_of"] == "2024-12-16T00:00:00", path
        assert "http://" not in html and "https://" not in html, path
        links = re.findall(r'(?:src|href|action)="([^"]*)"', html)
        assert links and all(link.startswith(("/", "?")) and not link.startswith("//") for link in links), (
            path
        )
        assert "<script" not in html
        assert "default-src 'none'" in response.headers["content-security-policy"]
        if path == "/":
            Path("/tmp/dashboard_overview.html").write_text(html, encoding="utf-8")
    css = client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "url(" not in css.text and "@import" not in css.text


def test_overview_figures_equal_the_cli_json(client: TestClient, env: dict[str, str]) -> None:
    figures = _figures(_get(client, "/"))
    revenue = _cli(env, "revenue", "--as-of", AS_OF)
    goals = revenue["goals"]
    current = next(r for r in revenue["forecast"] if r["period"] == goals["period"] and r["group"] == "(all)")
    assert goals["won_to_date"] > 0 and goals["goal"] is not None  # the comparison means something
    for key in ("won_to_date", "goal", "pace_to_date", "p_hit_quota"):
        assert _close(figures[key], goals[key]), key
    for key in ("p50", "gap_to_goal", "deals_needed"):
        assert _close(figures[key], current[key]), key
    flags = _cli(env, "flags", "--as-of", AS_OF)
    assert _close(figures["deals_at_risk"], flags["entities"]["deal"]["at_risk"])
    assert _close(figures["leads_going_cold"], flags["entities"]["lead"]["by_flag"].get("going_cold", 0))


def test_reps_page_equals_metrics_performance(client: TestClient, env: dict[str, str]) -> None:
    rows = _rows(_get(client, "/reps"))
    doc = _cli(env, "metrics", "--report", "performance", "--as-of", AS_OF)
    cli_rows = {r["rep"]: r for r in doc["reports"]["performance"]["tables"]["performance"]}
    assert set(rows) == set(cli_rows)  # every rep and the (all) row
    for rep, row in cli_rows.items():
        for key in ("calls", "won", "won_value", "win_rate", "reply_rate"):
            assert _close(rows[rep][key], row[key]), (rep, key)


def test_a_team_filter_narrows_the_figures(client: TestClient, env: dict[str, str]) -> None:
    teams = _cli(env, "metrics", "--report", "performance", "--by", "team", "--as-of", AS_OF)
    team_rows = {r["team"]: r for r in teams["reports"]["performance"]["tables"]["performance"]}
    team = sorted(t for t in team_rows if t != "(all)")[0]
    every = _rows(_get(client, "/reps"))
    narrowed = _rows(_get(client, "/reps", team=team))
    assert team in narrowed and "(all)" not in narrowed
    reps = set(narrowed) - {team}
    assert reps and reps < set(every)
    assert _close(narrowed[team]["calls"], team_rows[team]["calls"])
    overview = _figures(_get(client, "/", team=team))
    revenue = _cli(env, "revenue", "--as-of", AS_OF, "--group", "team")
    row = next(
        r for r in revenue["forecast"] if r["group"] == team and r["period"] == revenue["goals"]["period"]
    )
    assert _close(overview["won_to_date"], row["won_to_date"]) and _close(overview["p50"], row["p50"])
    assert overview["p50"] != _figures(_get(client, "/"))["p50"]


def test_without_champions_the_pages_say_what_to_train(env: dict[str, str], tmp_path: Path) -> None:
    empty = _settings(env, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}")
    with TestClient(create_app(empty)) as c:
        overview = c.get("/", params={"as_of": AS_OF}).text
        assert "train deal-win and time-to-close to see the forecast" in overview
        assert 'data-figure="p50"' not in overview
        models = c.get("/models").text
        assert models.count("no champion: forecast train") == 5


def test_bad_filters_are_400_and_a_missing_warehouse_404(env: dict[str, str], tmp_path: Path) -> None:
    with TestClient(create_app(_settings(env))) as c:
        assert c.get("/", params={"as_of": "yesterday"}).status_code == 400
        assert c.get("/reps", params={"period": "fortnight"}).status_code == 400
        assert c.get("/", params={"horizon": "year"}).status_code == 400
    with TestClient(create_app(_settings(env, warehouse=tmp_path / "none.duckdb"))) as c:
        missing = c.get("/reps")
        assert missing.status_code == 404 and "forecast ingest" in missing.text


def test_with_a_token_the_pages_need_the_login_cookie(env: dict[str, str]) -> None:
    settings = _settings(env, api_token=TOKEN)
    with TestClient(create_app(settings), follow_redirects=False) as c:
        first = c.get("/reps", params={"as_of": AS_OF})
        assert first.status_code == 303 and first.headers["location"].startswith("/login?next=%2Freps")
        assert c.get("/login").status_code == 200 and c.get("/healthz").status_code == 200
        wrong = c.post("/login", data={"token": "not-it", "next": "/reps"})
        assert wrong.status_code == 401 and "forecast_session" not in wrong.headers.get("set-cookie", "")
        assert c.get("/", headers={"Cookie": "forecast_session=v1.9999999999.forged"}).status_code == 303
        right = c.post("/login", data={"token": TOKEN, "next": "//elsewhere.example/"})
        assert right.status_code == 303 and right.headers["location"] == "/"  # never another site
        cookie = right.headers["set-cookie"]
        assert "forecast_session=" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert TOKEN not in cookie
        page = c.get("/models", params={"as_of": AS_OF})
        assert page.status_code == 200 and "Log out" in page.text


def test_the_command_refuses_a_missing_warehouse(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--warehouse", str(tmp_path / "none.duckdb"), "dashboard"], catch_exceptions=False
    )
    assert result.exit_code == 2
