"""The dashboard on the Maven sample (real data): its models named by role, what the source lacks said.

Maven's models are registered as ``deal_win_maven`` and ``time_to_close_maven`` (their configs,
``training/*_maven.yaml``), so the dashboard is told which model plays each role, as
``forecast revenue`` is (``--models deal_win=deal_win_maven,...``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from forecast.binding import model_refs
from forecast.dashboard.app import create_app
from forecast.dashboard.data import Filters
from forecast.dashboard.store import default_store
from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE
from tests.cli import cli_env, fast_config, settings_of
from tests.cli import cli_json as _cli
from tests.conftest import shared_dataset

pytestmark = pytest.mark.slow  # ingests the sample, trains two models, forecasts revenue


def test_the_dashboard_serves_maven_with_its_models_named_by_role(tmp_path: Path) -> None:
    source = shared_dataset("maven-crm-sales-opportunities")
    env = cli_env(tmp_path)
    assert _cli(env, "ingest", str(source), "--format", "maven")["balanced"]
    for model, stem in (("deal-win", "deal_win_maven"), ("time-to-close", "time_to_close_maven")):
        trained = _cli(env, "train", model, "--config", str(fast_config(tmp_path, stem)), "--promote")
        assert trained["promotion"]["promoted"], trained["promotion"]
    settings = settings_of(env)
    named = f"{DEAL_WIN}=deal_win_maven,{TIME_TO_CLOSE}=time_to_close_maven"
    refs = model_refs(
        {DEAL_WIN: (DEAL_WIN, "--models"), TIME_TO_CLOSE: (TIME_TO_CLOSE, "--models")}, None, named
    )
    plain = TestClient(create_app(settings, warm_every=None)).get("/")
    assert plain.status_code == 200 and "forecast train deal-win" in plain.text  # no `deal_win` here
    client = TestClient(create_app(settings, warm_every=None, refs=refs))
    overview = client.get("/")
    assert overview.status_code == 200 and "forecast train deal-win" not in overview.text
    revenue = _cli(env, "revenue", "--models", named)
    p50 = re.findall(r'data-value="([^"]+)"', overview.text)
    assert revenue["forecast"] and f"{revenue['forecast'][0]['p50']}" in p50  # the CLI's figure
    # Maven's wins bunch in each quarter's third month: the forecast measures and follows that
    calendar = revenue["calendar"]
    assert calendar["applied"] and calendar["p_value"] < 0.001, calendar
    assert calendar["factors"][2] > 1.1 > 0.9 > calendar["factors"][0], calendar
    assert "wins bunch by month of the quarter" in overview.text  # the manager is told, on the Overview
    models = client.get("/models").text
    assert "deal_win_maven" in models and "time_to_close_maven" in models
    for page in ("/reps", "/pipeline", "/prospects", "/activity", "/insights"):
        answer = client.get(page)
        assert answer.status_code == 200, page
    assert "no activit" in client.get("/activity").text.lower()  # said, not shown as zeros
    known = client.app.state.reader.cut(Filters()).known  # type: ignore[attr-defined]
    for key in ("rep", "team", "region"):  # a source without activities, filtered: said, not a 500
        filtered = client.get("/activity", params={key: known[key][0]})
        assert filtered.status_code == 200 and "no activit" in filtered.text.lower(), key
    # a restart over the page store (docs/dashboard.md): the warmed pages are read back, the same
    first = create_app(settings, warm_every=0, refs=refs, store=default_store(settings, refs))
    with TestClient(first) as warm:
        assert first.state.warmer.wait(timeout=900) and first.state.warmer.errors == 0
        before = {page: warm.get(page).text for page in ("/", "/reps", "/pipeline", "/activity")}
    second = create_app(settings, warm_every=0, refs=refs, store=default_store(settings, refs))
    with TestClient(second) as again:
        assert second.state.warmer.wait(timeout=900)
        reader = second.state.reader
        print("maven restart", reader.loaded, reader.assembled, reader.computed)
        for page, text in before.items():
            figures = re.findall(r'data-value="([^"]*)"', text)
            assert figures and re.findall(r'data-value="([^"]*)"', again.get(page).text) == figures, page
        assert reader.assembled == 0 and reader.loaded > 0
