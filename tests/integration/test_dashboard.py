"""The dashboard end to end: a simulated CRM, two champions, every page through Starlette's TestClient.

The pages' figures are compared with the CLI's ``--json`` for the same as of (the same functions must
give the same numbers), a filter in the URL must change them, no page may reference another host,
and with a token the pages need the login cookie.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecast.cli import app
from forecast.config import Settings, load_settings
from forecast.dashboard.app import create_app
from forecast.dashboard.compare import reps_changes
from forecast.dashboard.data import Filters, Missing, Reader
from forecast.dashboard.deferred import REFRESH_SECONDS
from tests.cli import cli_json as _cli
from tests.cli import runner
from tests.dashboard_env import AS_OF, trained_env

with warnings.catch_warnings():  # starlette's TestClient warns that it still uses httpx (no httpx2 here)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.slow  # trains two models

PAGES = ("/", "/reps", "/pipeline", "/prospects", "/activity", "/insights", "/models")
TOKEN = "dashboard-token-for-tests"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    return trained_env(tmp_path_factory, worker_id)


def _settings(env: dict[str, str], **changes: Any) -> Settings:
    """The settings the CLI reads from ``env``, given directly (the app takes them, not the environment)."""
    paths = {
        "warehouse": Path(env["FORECAST_WAREHOUSE"]),
        "mlflow_tracking_uri": env["FORECAST_MLFLOW_TRACKING_URI"],
        "mlflow_artifacts": Path(env["FORECAST_MLFLOW_ARTIFACTS"]),
        "models_dir": Path(env["FORECAST_MODELS_DIR"]),
        **({"data_dir": Path(env["FORECAST_DATA_DIR"])} if "FORECAST_DATA_DIR" in env else {}),
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


def _answered(client: TestClient, path: str, params: dict[str, str]) -> tuple[Any, int]:
    """Reload ``path`` while it answers that it is being computed; its answer and how many 202s came."""
    preparing = 0
    deadline = time.monotonic() + 600
    while (response := client.get(path, params=params)).status_code == 202:
        preparing += 1
        again = str(REFRESH_SECONDS)
        assert response.headers["refresh"] == again and response.headers["retry-after"] == again
        assert f'<meta http-equiv="refresh" content="{again}">' in response.text
        assert "data-preparing" in response.text and "being computed" in response.text
        assert "<script" not in response.text
        assert time.monotonic() < deadline, f"{path} still being computed after 10 minutes"
        time.sleep(0.1)
    return response, preparing


def test_a_view_slower_than_its_wait_answers_at_once_then_shows_the_same_page(
    client: TestClient, env: dict[str, str]
) -> None:
    """With no wait at all, a view whose figures are not held answers ``202`` with a page that reloads
    itself; the reloads join its one computation and then get the page itself: the figures and rows
    of the page computed in the request. Another as of's pages are computed in the as-of process,
    not in the server's. An error found there (a rep the CRM does not have) reaches the reload as
    the ``400`` it is."""
    app_deferred = create_app(_settings(env), warm_every=None, wait_seconds=0.0)
    dashboard = app_deferred.state.dashboard
    with TestClient(app_deferred) as deferred_client:  # its lifespan stops the as-of process
        params = {"as_of": AS_OF, "period": "2024-10-01..2024-10-31"}
        for path in ("/reps", "/prospects", "/"):
            got, preparing = _answered(deferred_client, path, params)
            assert got.status_code == 200, (path, got.text[:2000])
            assert preparing >= (path == "/reps"), path  # the first asks for the CRM read: in the background
            expected = _get(client, path, period=params["period"])
            assert _figures(got.text) == _figures(expected) and _rows(got.text) == _rows(expected), path
        assert app_deferred.state.reader.computed == 0  # nothing of it in the server's process
        worker = dashboard.worker
        assert worker.pid not in (None, os.getpid()) and worker.started == 1
        counts = dashboard.elsewhere(AS_OF, "counters")
        assert counts["reads"] == 1 and counts["computed"] > 0
        bad, _ = _answered(deferred_client, "/reps", {**params, "rep": "nobody-at-all"})
        assert bad.status_code == 400 and "nobody-at-all" in bad.text
        assert dashboard.elsewhere(AS_OF, "counters") == counts  # the cut was held: nothing read again
        assert _answered(deferred_client, "/reps", {**params, "period": "not a period"})[0].status_code == 400
        csv_got = deferred_client.get("/prospects.csv", params={**params, "sort": "-score"})
        csv_expected = client.get("/prospects.csv", params={**params, "sort": "-score"})
        assert csv_got.status_code == 200 and csv_got.text == csv_expected.text
        assert csv_got.headers["content-disposition"] == csv_expected.headers["content-disposition"]
    assert worker.pid is None  # stopped with the app


def test_the_as_of_process_follows_the_champions(env: dict[str, str]) -> None:
    """A champion change the server's warm-up sees is a new state in the as-of process too: its
    pages are computed again there."""
    app_deferred = create_app(_settings(env), warm_every=None, wait_seconds=0.0)
    dashboard, reader = app_deferred.state.dashboard, app_deferred.state.reader
    params = {"as_of": AS_OF, "period": "2024-10-01..2024-10-31"}
    with TestClient(app_deferred) as c:
        first = _answered(c, "/pipeline", params)[0]
        assert first.status_code == 200
        computed = dashboard.elsewhere(AS_OF, "counters")["computed"]
        assert _answered(c, "/pipeline", params)[0].text == first.text
        assert dashboard.elsewhere(AS_OF, "counters")["computed"] == computed  # held in the process
        reader.note_champions((("deal_win", "1"),))  # the warm-up's first look
        reader.note_champions((("deal_win", "2"),))  # a promotion: a new state
        assert _figures(_answered(c, "/pipeline", params)[0].text) == _figures(first.text)
        assert dashboard.elsewhere(AS_OF, "counters")["computed"] > computed  # computed again there


def test_without_the_as_of_process_the_server_computes_the_page(
    client: TestClient, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the child process ends before it is ready, another as of's pages are computed in the
    server, this one and the next (no child is started again at every page)."""
    from forecast.dashboard import app as dashboard_app
    from tests.unit.test_dashboard_worker import fails_to_start

    monkeypatch.setattr(dashboard_app, "as_of_process", fails_to_start)
    app_deferred = create_app(_settings(env), warm_every=None, wait_seconds=0.0)
    c = TestClient(app_deferred)
    got, _ = _answered(c, "/activity", {"as_of": AS_OF})
    assert got.status_code == 200 and app_deferred.state.reader.computed > 0
    assert _figures(got.text) == _figures(_get(client, "/activity"))
    assert _answered(c, "/reps", {"as_of": AS_OF})[0].status_code == 200
    worker = app_deferred.state.dashboard.worker
    assert worker.started == 1 and "before it was ready" in (worker.unavailable or "")


def test_another_as_of_s_pages_are_kept_between_runs(env: dict[str, str], tmp_path: Path) -> None:
    """With a page store, the as-of process writes its pages there under the champions the server
    noted, and the next run's process reads them back instead of computing them."""
    from forecast.dashboard.store import PageStore
    from forecast.dashboard.warm import champions

    settings = _settings(env)
    counts = []
    texts = []
    for _ in range(2):  # two runs of the dashboard over one store
        store = PageStore(tmp_path / "store", settings.warehouse)
        app_ = create_app(settings, warm_every=None, store=store, wait_seconds=0.0)
        reader = app_.state.reader
        reader.note_champions(champions(reader))  # the warm-up's first look
        with TestClient(app_) as c:
            got, _ = _answered(c, "/pipeline", {"as_of": AS_OF})
            assert got.status_code == 200
            texts.append(_figures(got.text))
            counts.append(app_.state.dashboard.elsewhere(AS_OF, "counters"))
            as_of_worker = app_.state.dashboard.worker
            assert reader.computed == 0 and as_of_worker.started == 1 and as_of_worker.unavailable is None
    assert texts[0] == texts[1] and texts[0]
    assert counts[0]["loaded"] == 0 and counts[0]["computed"] > 0
    assert counts[1]["loaded"] > 0 and counts[1]["reads"] == 0  # read back: the CRM not read again


def test_an_as_of_process_lost_mid_page_answers_503_saying_so(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page and the CSV say that the process ended and that a reload computes them again
    (:mod:`tests.unit.test_dashboard_worker` kills a real one)."""
    from forecast.dashboard import worker

    def lost(self: worker.AsOfWorker, method: str, *args: Any, follow: Any = None) -> Any:
        raise worker.WorkerLostError("the process ended during this page; reload to compute it again")

    monkeypatch.setattr(worker.AsOfWorker, "call", lost)
    c = TestClient(create_app(_settings(env), warm_every=None, wait_seconds=0.0))
    page, _ = _answered(c, "/reps", {"as_of": AS_OF})
    assert page.status_code == 503 and "reload to compute it again" in page.text
    download = c.get("/prospects.csv", params={"as_of": AS_OF})
    assert download.status_code == 503 and "reload" in download.text


def test_two_other_as_ofs_asked_at_once_read_the_crm_once_each(env: dict[str, str]) -> None:
    """Their pages take turns by as of, so the as-of process, which holds one other as of's cut at a
    time, does not let go of one's cut and read it again (the third page, of the first as of, is
    asked last but goes before the second as of's)."""
    app_deferred = create_app(_settings(env), warm_every=None, wait_seconds=0.0)
    with TestClient(app_deferred) as deferred_client:
        views = [("/", {"as_of": a}) for a in ("2024-11-01", AS_OF)] + [
            ("/", {"as_of": "2024-11-01", "period": "quarter"})
        ]
        for path, params in views:  # all three started before any is done
            assert deferred_client.get(path, params=params).status_code == 202
        for path, params in views:
            assert _answered(deferred_client, path, params)[0].status_code == 200, (path, params)
        assert app_deferred.state.dashboard.elsewhere(AS_OF, "counters")["reads"] == 2


def test_a_page_finished_for_a_warehouse_gone_by_is_not_shown(env: dict[str, str], tmp_path: Path) -> None:
    """A page nobody came back for is kept for a reload, but not once the warehouse has changed."""
    warehouse = tmp_path / "wh.duckdb"
    shutil.copy(env["FORECAST_WAREHOUSE"], warehouse)
    app_deferred = create_app(_settings(env, warehouse=warehouse), warm_every=None, wait_seconds=0.0)
    with TestClient(app_deferred) as deferred_client:
        params = {"as_of": AS_OF}
        assert deferred_client.get("/", params=params).status_code == 202
        jobs = app_deferred.state.deferred._jobs
        deadline = time.monotonic() + 300
        while not jobs or any(not job.future.done() for job in jobs.values()):  # it ends, nobody comes
            assert time.monotonic() < deadline
            time.sleep(0.05)
        reads = app_deferred.state.dashboard.elsewhere(AS_OF, "counters")["reads"]
        later = warehouse.stat().st_mtime + 5
        os.utime(warehouse, (later, later))  # an ingest
        assert deferred_client.get("/", params=params).status_code == 202  # computed again
        assert _answered(deferred_client, "/", params)[0].status_code == 200
        assert app_deferred.state.dashboard.elsewhere(AS_OF, "counters")["reads"] == reads + 1  # there


def test_besides_the_default_one_cut_of_another_as_of_is_held_at_a_time(env: dict[str, str]) -> None:
    """A CRM cut is gigabytes on a large CRM: reading another as of lets go of the last other one;
    the default as of's stays, and so do the pages computed from a cut let go."""
    app_ = create_app(_settings(env), warm_every=None)
    reader = app_.state.reader
    c = TestClient(app_)
    assert c.get("/").status_code == 200  # the default as of
    assert c.get("/", params={"as_of": "2024-11-01"}).status_code == 200
    assert reader.holds(("tracking", None)) and reader.holds(("tracking", "2024-11-01"))
    assert c.get("/", params={"as_of": AS_OF}).status_code == 200
    assert reader.holds(("tracking", AS_OF)) and reader.holds(("tracking", None))
    assert not reader.holds(("tracking", "2024-11-01"))
    computed = reader.computed
    assert c.get("/", params={"as_of": "2024-11-01"}).status_code == 200  # its page: still held
    assert reader.computed == computed


def _same_tables(left: pd.DataFrame, right: pd.DataFrame, name: str) -> int:
    """Assert two tables hold the same rows and values (numbers to 1e-12); how many columns compared."""
    assert list(left.columns) == list(right.columns) and len(left) == len(right) > 0, name
    for col in left.columns:
        if left[col].dtype == object or right[col].dtype == object:
            assert left[col].tolist() == right[col].tolist(), (name, col)
        else:
            values = (left[col].astype(float), right[col].astype(float))
            np.testing.assert_allclose(*values, rtol=1e-12, atol=1e-12, err_msg=f"{name}.{col}")
    return len(left.columns)


def test_the_tracking_pages_of_another_as_of_read_no_crm_and_equal_the_read(
    env: dict[str, str],
) -> None:
    """Their reports are aggregated in DuckDB (no CRM read); a reader holding the CRM read at that as
    of computes them in memory: the same figures, table for table, unfiltered and filtered, and the
    Reps page's comparison with the period before."""
    whole = Filters(as_of="2024-11-01", period="quarter")
    in_sql, in_memory = Reader(_settings(env)), Reader(_settings(env))
    in_memory.tracking(whole)  # the CRM at that as of, read and held
    known = in_sql.cut(whole).known
    assert known == in_memory.cut(whole).known and in_sql.cuts_read == 0
    compared = 0
    for filters in (whole, replace(whole, team=known["team"][0]), replace(whole, source=known["source"][-1])):
        compared += _same_page(in_sql.activity(filters), in_memory.activity(filters), _ACTIVITY_TABLES)
    for filters in (whole, replace(whole, team=known["team"][1]), replace(whole, source=known["source"][0])):
        compared += _same_page(in_sql.pipeline(filters), in_memory.pipeline(filters), _PIPELINE_TABLES, "by")
    for filters in (whole, replace(whole, team=known["team"][1]), replace(whole, rep=known["rep"][2])):
        page, read = in_sql.reps(filters), in_memory.reps(filters)
        compared += _same_page(page, read, ("performance", "total", "goals"))
        now, then = reps_changes(in_sql, filters, page), reps_changes(in_memory, filters, read)
        assert (now.as_of, now.period, now.metrics, now.covered, now.notes) == (
            then.as_of,
            then.period,
            then.metrics,
            then.covered,
            then.notes,
        )
        assert now.rows.keys() == then.rows.keys() and len(now.rows) > 1
        for key, changes in now.rows.items():
            for metric, change in changes.items():
                other = then.rows[key][metric]
                for mine, theirs in ((change.now, other.now), (change.prev, other.prev)):
                    assert mine == theirs or mine == pytest.approx(theirs, rel=1e-12), (key, metric)
    for filters in (whole, replace(whole, team=known["team"][0]), replace(whole, rep=known["rep"][1])):
        page, read = in_sql.prospects(filters), in_memory.prospects(filters)
        rest = {k: v for k, v in page.items() if k != "rows"}
        assert rest == {k: v for k, v in read.items() if k != "rows"}
        pd.testing.assert_frame_equal(page["rows"], read["rows"])
        assert in_sql.prospects_csv(filters) == in_memory.prospects_csv(filters)
        compared += len(page["rows"])
    for filters in (whole, replace(whole, period="2024-09-01..2024-10-31")):
        doc = in_sql.insights(filters)
        assert doc == in_memory.insights(filters) and doc["tested"] > 20
    assert compared > 500
    assert in_sql.cuts_read == 0 and not in_sql.holds(("tracking", "2024-11-01"))
    assert in_memory.cuts_read == 1


def test_a_page_that_reads_its_facts_in_its_turn_does_not_wait_for_a_request_s_cut(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request asks for the cut before its turn (``app.compute``); a page computing in its turn
    must not ask for that cut in turn, or each waits for the other for good. Here an ingest lands
    (a new state) between a request's cut and its Reps page, and a second request asks for the new
    state's cut while the page computes: both must finish."""
    import threading

    import forecast.tracking.sql_cut as sql_cut

    warehouse = tmp_path / "wh.duckdb"
    shutil.copy(env["FORECAST_WAREHOUSE"], warehouse)
    reader = Reader(_settings(env, warehouse=warehouse))
    filters = Filters()
    recorded, inside = sql_cut.recorded, threading.Event()

    def slowly(cut: sql_cut.SqlCut) -> tuple[bool, bool, pd.Timestamp | None]:
        inside.set()  # the page's facts, in its turn
        time.sleep(1.5)
        return recorded(cut)

    def first() -> None:
        reader.cut(filters)
        later = warehouse.stat().st_mtime + 5
        os.utime(warehouse, (later, later))  # an ingest lands
        monkeypatch.setattr(sql_cut, "recorded", slowly)
        reader.reps(filters)

    def second() -> None:
        inside.wait(30)
        reader.cut(filters)

    assert _both_finish(first, second) and inside.is_set(), "the page and the request wait for each other"
    assert reader.holds(("page", "reps", *Reader.page_key("reps", filters)[2:]))


_ACTIVITY_TABLES = ("effectiveness", "channels", "process", "stages")
_PIPELINE_TABLES = ("funnel", "monthly", "loss_reasons", "stages")


def _same_page(page: dict[str, Any], read: dict[str, Any], tables: tuple[str, ...], *keys: str) -> int:
    """Assert a page's as of, period, notes (and ``keys``) and ``tables`` are the read's; columns compared."""
    heads = ("as_of", "period", "notes", *keys)
    assert [page[k] for k in heads] == [read[k] for k in heads]
    return sum(_same_tables(page[name], read[name], name) for name in tables)


def test_the_overview_in_its_turn_does_not_wait_for_a_request_for_the_insights_page(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Overview reads the insights document in its turn; a request for the Insights page
    registers that page before waiting for its turn. Were the Overview to ask for the page, each
    would wait for the other for good (the warm-up's Overview here, the request meanwhile)."""
    import threading

    reader = Reader(_settings(env))
    inside = threading.Event()

    def slow_flags(_filters: Filters) -> Missing:
        inside.set()  # the Overview, computing in its turn
        time.sleep(1.5)
        return Missing("no flags in this test")

    monkeypatch.setattr(reader, "revenue", lambda _filters: Missing("no forecast in this test"))
    monkeypatch.setattr(reader, "flags", slow_flags)
    filters = Filters()
    reader.cut(filters)  # as a request asks before any page

    def warm() -> None:
        with reader.background():
            reader.overview(filters)

    def request() -> None:
        inside.wait(30)
        reader.insights(filters)

    assert _both_finish(warm, request) and inside.is_set(), "the Overview and the request wait for each other"
    assert reader.insights(filters) == reader._insights(filters)


def _both_finish(*work: Callable[[], None], seconds: float = 60.0) -> bool:
    """Whether ``work``, each started in a thread of its own at once, all ends within ``seconds``."""
    import threading

    threads = [threading.Thread(target=w, daemon=True) for w in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds)
    return not any(t.is_alive() for t in threads)


def test_the_command_refuses_a_missing_warehouse(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["--warehouse", str(tmp_path / "none.duckdb"), "dashboard"], catch_exceptions=False
    )
    assert result.exit_code == 2


def _table(html: str, name: str) -> dict[str, dict[str, str]]:
    """One ``data-table``'s rows by ``data-row``, each cell's exact value by ``data-col``."""
    match = re.search(rf'<table data-table="{name}">(.*?)</table>', html, re.S)
    assert match, name
    return _rows(match.group(1))


def _prospect_pages(client: TestClient, **params: str) -> list[dict[str, str]]:
    """Every page of the Prospects list, in order: each row's cells with its id as ``prospect_id``."""
    rows: list[dict[str, str]] = []
    for page in range(1, 100):
        html = _get(client, "/prospects", page=str(page), **params)
        body = re.search(r'<table data-table="prospects">(.*?)</table>', html, re.S)
        assert body
        for key, cells in re.findall(r'<tr data-row="([^"]*)"[^>]*>(.*?)</tr>', body.group(1), re.S):
            values = re.findall(r'data-col="([^"]+)" data-value="([^"]*)"', cells)
            rows.append({"prospect_id": unescape(key), **{k: unescape(v) for k, v in values}})
        if 'rel="next"' not in html:
            return rows
    raise AssertionError("no last page")


def _cli_prospects(env: dict[str, str]) -> list[dict[str, Any]]:
    doc = _cli(env, "metrics", "--report", "prospects", "--as-of", AS_OF)
    rows: list[dict[str, Any]] = doc["reports"]["prospects"]["tables"]["prospects"]
    return rows


def _same_prospect(page: dict[str, str], cli: dict[str, Any]) -> None:
    assert page["prospect_id"] == cli["prospect_id"]
    for key in ("kind", "status", "rep", "team", "score_band", "next_action"):
        assert page[key] == ("" if cli[key] is None else str(cli[key])), key
    for key in ("deal_size", "days_since_contact", "web_visits_30d", "pricing_views_30d", "score"):
        assert _close(page[key], cli[key]), key
    for key in ("last_contact", "expected_close", "next_action_at"):
        assert page[key][:19] == (cli[key] or "")[:19], key


def test_prospects_page_equals_metrics_prospects(client: TestClient, env: dict[str, str]) -> None:
    cli_rows = _cli_prospects(env)
    rows = _prospect_pages(client)
    assert len(cli_rows) > 100  # more than one page
    assert [r["prospect_id"] for r in rows] == [r["prospect_id"] for r in cli_rows]
    for page_row, cli_row in zip(rows, cli_rows, strict=True):
        _same_prospect(page_row, cli_row)
    figures = _figures(_get(client, "/prospects"))
    assert figures["prospects"] == str(len(cli_rows))
    assert "no score yet: run forecast score leads --write-back" in _get(client, "/prospects")


def test_prospects_sort_and_page(client: TestClient, env: dict[str, str]) -> None:
    cli_rows = _cli_prospects(env)
    by_size = sorted(
        cli_rows, key=lambda r: -r["deal_size"] if r["deal_size"] is not None else float("inf")
    )  # stable: the report's order among equals, blanks last
    second = _rows(_get(client, "/prospects", sort="-deal_size", page="2"))
    assert list(second) == [r["prospect_id"] for r in by_size[100:200]]
    first = _figures(_get(client, "/prospects", sort="rep", page="1"))
    assert first["page"] == "1"
    ascending = [r["rep"] for r in _prospect_pages(client, sort="rep")]
    assert ascending == sorted(ascending)
    for bad in ({"sort": "lead_id; drop"}, {"sort": "-nope"}, {"page": "0"}, {"page": "two"}):
        assert client.get("/prospects", params={"as_of": AS_OF, **bad}).status_code == 400, bad
    assert client.get("/prospects.csv", params={"as_of": AS_OF, "sort": "nope"}).status_code == 400


def test_prospects_scores_and_csv_export(env: dict[str, str], tmp_path: Path) -> None:
    """Scores written back show on the page as the CLI gives them; the CSV has every filtered row."""
    warehouse = tmp_path / "scored.duckdb"
    shutil.copy(env["FORECAST_WAREHOUSE"], warehouse)
    scored_env = {**env, "FORECAST_WAREHOUSE": str(warehouse)}
    leads = [r for r in _cli_prospects(env) if r["kind"] == "lead"]
    team = leads[0]["team"]
    chosen = [r["lead_id"] for r in leads if r["team"] == team][:3]
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "CREATE TABLE lead_scores (lead_id VARCHAR, score DOUBLE, band VARCHAR, as_of TIMESTAMP, "
            "model_name VARCHAR, model_version VARCHAR)"
        )
        for k, lead in enumerate(chosen):
            band = '=HYPERLINK("http://x.example")' if k == 0 else "high"
            con.execute(
                "INSERT INTO lead_scores VALUES (?, ?, ?, '2024-11-15', 'lead_score', '1')",
                [lead, 0.9 - k / 10, band],
            )
    cli_rows = [r for r in _cli_prospects(scored_env) if r["team"] == team]
    assert sum(r["score"] is not None for r in cli_rows) == 3
    with TestClient(create_app(_settings(env, warehouse=warehouse))) as c:
        rows = _prospect_pages(c, team=team)
        assert [r["prospect_id"] for r in rows] == [r["prospect_id"] for r in cli_rows]
        for page_row, cli_row in zip(rows, cli_rows, strict=True):
            _same_prospect(page_row, cli_row)
        by_score = _prospect_pages(c, team=team, sort="-score")
        assert [r["prospect_id"] for r in by_score[:3]] == [f"{lead}" for lead in chosen]
        response = c.get("/prospects.csv", params={"as_of": AS_OF, "team": team, "sort": "-score"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    exported = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["prospect_id"] for r in exported] == [r["prospect_id"] for r in by_score]
    assert exported[0]["score_band"] == '\'=HYPERLINK("http://x.example")'  # neutralised
    assert all(not r[k].startswith(("=", "+", "@")) for r in exported for k in r)


def test_activity_page_equals_effectiveness_and_process(client: TestClient, env: dict[str, str]) -> None:
    html = _get(client, "/activity")
    checks = (
        ("effectiveness", ("effectiveness", "team"), ("reply_rate", "avg_call_minutes", "new_opportunities")),
        ("channels", ("effectiveness", "channel"), ("reply_rate", "corr_new_opportunities_calls")),
        (
            "process",
            ("process", "channel"),
            ("prospects", "qualified", "qualified_per_month", "lead_conversion"),
        ),
    )
    for name, (report, by), columns in checks:
        page = _table(html, name)
        doc = _cli(env, "metrics", "--report", report, "--by", by, "--as-of", AS_OF)
        cli_rows = {r[by]: r for r in doc["reports"][report]["tables"][report]}
        assert set(page) == set(cli_rows) and "(all)" in page, name
        for key, row in cli_rows.items():
            for col in columns:
                assert _close(page[key][col], row[col]), (name, key, col)
                if col + "_lo" in row:
                    assert row[col + "_lo"] is None or row[col + "_lo"] <= row[col] <= row[col + "_hi"]
    stages = _table(html, "stages")
    doc = _cli(env, "metrics", "--report", "process", "--as-of", AS_OF)
    cli_stages = {f"{r['channel']}|{r['stage']}": r for r in doc["reports"]["process"]["tables"]["stages"]}
    assert set(stages) == set(cli_stages)
    for key, row in cli_stages.items():
        for col in ("entered", "stage_conversion", "days_median", "stuck", "stuck_share"):
            assert _close(stages[key][col], row[col]), (key, col)
    assert html.count('class="whisker"') > 0  # conversion and reply rate drawn with their intervals


def test_filters_compose_and_live_in_the_url(client: TestClient, env: dict[str, str]) -> None:
    """Team, rep, period and source together: every page answers with all of them in its links, the
    lists keep the rows every filter matches, and a page says which filter it could not apply."""
    cli_rows = _cli_prospects(env)
    rep_row = next(r for r in cli_rows if r["kind"] == "lead" and r["source"])
    rep, team, source = str(rep_row["rep_id"]), str(rep_row["team"]), str(rep_row["source"])
    both = [r for r in cli_rows if r["team"] == team and r["source"] == source]
    assert (
        0
        < len(both)
        < min(sum(r["team"] == team for r in cli_rows), sum(r["source"] == source for r in cli_rows))
    )
    listed = _prospect_pages(client, team=team, source=source)
    assert [r["prospect_id"] for r in listed] == [r["prospect_id"] for r in both]  # both filters apply
    combined = {"team": team, "rep": rep, "source": source, "period": "quarter"}
    for path in PAGES:
        # on the Overview a rep's forecast would be one more 10,000-run simulation: the team's is cached
        given = {k: v for k, v in combined.items() if path != "/" or k != "rep"}
        html = _get(client, path, **given)
        nav = re.findall(r'<nav aria-label="pages">(.*?)</nav>', html, re.S)[0]
        for href in re.findall(r'href="([^"]*)"', nav):
            query = parse_qs(urlsplit(unescape(href)).query)
            assert all(query[k] == [v] for k, v in given.items()), (path, href)
        header = re.findall(r'<p class="asof">(.*?)</p>', html, re.S)[0]
        assert all(f"<strong>{v}</strong>" in header for k, v in given.items() if k != "period"), path
        if path in ("/", "/reps", "/pipeline", "/activity"):
            assert f"the source filter ({source}) does not apply" in html, path
    reps = _rows(_get(client, "/reps", team=team, rep=rep))
    assert set(reps) == {rep, team}  # the rep's row and the team's total
    other = next(r for r in cli_rows if r["team"] != team)["team"]
    refused = client.get("/reps", params={"as_of": AS_OF, "rep": rep, "team": str(other)})
    assert refused.status_code == 400 and f"rep {rep} is in team {team}" in refused.text


def test_the_forecast_sharing_the_tracking_read_equals_the_one_reading_the_crm(env: dict[str, str]) -> None:
    """The Overview's forecast takes the tracking view's events and prepared CRM: the very same document."""
    import pandas as pd

    from forecast.revenue.job import champion_models, revenue_job
    from forecast.tracking.api import open_warehouse
    from forecast.tracking.data import crm_frames

    settings = _settings(env)
    models, _ = champion_models(settings)
    as_of = pd.Timestamp(AS_OF)
    data = open_warehouse(settings.warehouse, as_of)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        crm = crm_frames(con, data)
    common = {"as_of": as_of, "periods": 3, "n_sims": 2000, "seed": 0, "models": models}
    scored = None
    for by, group in (("month", None), ("week", "team"), ("month", "rep")):
        alone = revenue_job(settings, by=by, group=group, **common).to_dict()
        shared = revenue_job(settings, by=by, group=group, crm=crm, data=data, **common)
        assert alone["forecast"] and (alone["pacing"] or by == "week")  # the comparison means something
        assert shared.to_dict() == alone, (by, group)
        if scored is not None:  # the open deals scored by the first forecast, for another grouping
            again = {"crm": crm, "data": data, "open_deals": scored}
            reused = revenue_job(settings, by=by, group=group, **again, **common)
            assert reused.to_dict() == alone and reused.scored is scored, (by, group)
        scored = shared.scored
    later = pd.Timestamp(AS_OF) - pd.Timedelta(days=7)  # another as-of: its own deals, not these
    other = revenue_job(settings, by="month", group=None, open_deals=scored, **{**common, "as_of": later})
    assert other.scored is not scored and other.scored is not None and other.scored.as_of == later
