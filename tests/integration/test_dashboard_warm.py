"""The dashboard's warm-up on a trained CRM: a first visit after it computes nothing, with the same figures.

What is asserted is what the reader's cache holds and how many results it computed, never a time
(the speed is measured in benchmarks/bench_dashboard.py).
"""

from __future__ import annotations

import warnings

import pytest

from forecast.dashboard.app import create_app
from forecast.dashboard.data import Filters
from tests.dashboard_env import trained_env
from tests.integration.test_dashboard import PAGES, _figures, _rows, _settings

with warnings.catch_warnings():  # starlette's TestClient warns that it still uses httpx (no httpx2 here)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.slow  # trains two models (shared with the other dashboard tests)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    return trained_env(tmp_path_factory, worker_id)


def test_after_the_warm_up_a_first_visit_of_every_default_page_computes_nothing(env: dict[str, str]) -> None:
    app = create_app(_settings(env), warm_every=0)
    reader = app.state.reader
    with TestClient(app) as client:  # the lifespan starts the warm-up
        assert app.state.warmer.wait(timeout=900), "the warm-up did not complete"
        assert app.state.warmer.errors == 0
        period = reader.period(reader.tracking(Filters()), Filters()).label
        held = set(reader.keys())
        for key in (
            ("tracking", None),
            ("revenue", None, "month", None),
            ("flags", None),
            ("champions",),
            ("insights", None, period),
            ("report", None, period, "performance", "rep"),
            ("report", None, period, "prospects", "rep"),
            ("report", None, period, "effectiveness", "channel"),
        ):
            assert key in held, key
        computed = reader.computed
        for path in (
            *PAGES,
            "/prospects.csv",
            "/reps?team=" + sorted(reader.tracking(Filters()).reps["team"])[0],
        ):
            assert client.get(path).status_code == 200, path
        assert reader.computed == computed  # every default page (and a team's) was found in the cache
        assert client.get("/", params={"horizon": "week"}).status_code == 200
        assert reader.computed > computed  # (the count does move for a view not warmed)


def test_warmed_pages_show_the_same_figures_as_pages_computed_on_the_visit(env: dict[str, str]) -> None:
    warmed = create_app(_settings(env), warm_every=0)
    with TestClient(warmed) as w, TestClient(create_app(_settings(env), warm_every=None)) as cold:
        assert warmed.state.warmer.wait(timeout=900)
        for path in ("/", "/reps", "/prospects"):
            hot_html, cold_html = w.get(path).text, cold.get(path).text
            assert _figures(hot_html) == _figures(cold_html), path
            assert _rows(hot_html) == _rows(cold_html), path
            assert _figures(hot_html), path  # the page has figures to compare
        hot_csv, cold_csv = w.get("/prospects.csv").text, cold.get("/prospects.csv").text
        assert hot_csv == cold_csv and hot_csv.count("\n") > 1  # the warmed export is the one written
