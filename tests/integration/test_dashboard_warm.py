"""The dashboard's warm-up on a trained CRM: a first visit after it computes nothing, with the same figures.

What is asserted is what the reader's cache holds and how many results it computed, never a time
(the speed is measured in benchmarks/bench_dashboard.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from forecast.dashboard.app import create_app
from forecast.dashboard.data import Filters, Reader
from forecast.dashboard.store import PageStore
from forecast.dashboard.warm import champions, default_pages
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
        assembled = reader.assembled
        for path in (  # the form's other periods and horizons of the default view (warm.period_pages)
            *(f"{page}?period={p}" for p in ("week", "quarter") for page in PAGES),
            "/?horizon=week",
            "/?horizon=quarter",
            "/reps?horizon=quarter",  # a page the horizon does not change: the default's
            "/?period=Week",  # another spelling of a warmed period
            "/?period=month",  # the default's period, named
        ):
            assert client.get(path).status_code == 200, path
        assert reader.computed == computed and reader.assembled == assembled  # nothing put together
        assert client.get("/", params={"period": "day"}).status_code == 200
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


def test_a_restarted_dashboard_reads_its_pages_back_instead_of_computing_them(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The pages a warm-up computed are kept on disk; the next process answers them from there.

    Under the same warehouse, champions, settings and code: every page (and the filtered ones the
    warm-up computes) is read back, none put together again, and a visit needs no CRM read; with
    another champion version nothing is taken from the kept files.
    """
    settings = _settings(env)
    root = tmp_path / "keep"
    first = create_app(settings, warm_every=0, store=PageStore(root, settings.warehouse))
    team = ""
    with TestClient(first) as client:
        assert first.state.warmer.wait(timeout=900) and first.state.warmer.errors == 0
        teams = sorted(set(first.state.reader.tracking(Filters()).reps["team"]))
        team = teams[0]
        paths = (
            *PAGES,
            "/prospects.csv",
            f"/reps?team={team}",
            f"/?team={team}",
            "/?period=week",
            "/activity?period=quarter",
            "/?horizon=quarter",
        )
        before = {path: client.get(path).text for path in paths}
    assert first.state.reader.assembled > 0 and first.state.reader.loaded == 0

    # a restart: a new reader over the same store, its warm-up reads the pages back
    second = create_app(settings, warm_every=0, store=PageStore(root, settings.warehouse))
    with TestClient(second) as client:
        assert second.state.warmer.wait(timeout=900) and second.state.warmer.errors == 0
        reader = second.state.reader
        assert reader.assembled == 0  # no page put together again: all read back
        assert reader.loaded >= len(default_pages(reader)) + 4 * 6  # the defaults, a filter of each kind
        for path in paths:
            got = client.get(path)
            assert got.status_code == 200, path
            if path.endswith(".csv"):
                assert got.text == before[path] and got.text.count("\n") > 1
            else:
                assert _figures(got.text) == _figures(before[path]), path
                assert _rows(got.text) == _rows(before[path]), path
        assert reader.assembled == 0
        # another team's Overview, never visited: put together from the team forecast read back
        forecast_by_team = ("revenue", None, "month", "team")
        assert forecast_by_team not in set(reader.keys())  # the reader's keys (a method, not a dict's)
        loaded, computed = reader.loaded, reader.computed
        other = client.get(f"/?team={teams[1]}")
        assert other.status_code == 200 and reader.assembled == 2  # the Overview and its comparison
        assert forecast_by_team in set(reader.keys()) and reader.loaded > loaded
        assert reader.computed == computed  # the forecast and the flags read back, not computed

    # a visit before any warm-up, once the champions are known: no CRM read, nothing computed
    third = Reader(settings, store=PageStore(root, settings.warehouse))
    third.note_champions(champions(third))
    with TestClient(create_app(settings, reader=third, warm_every=None)) as client:
        assert _figures(client.get("/").text) == _figures(before["/"])
        assert client.get(f"/reps?team={team}").status_code == 200
    assert third.computed == 0 and third.assembled == 0 and third.loaded >= 3
    assert ("tracking", None) not in set(third.keys())

    # another champion version (a promotion while the dashboard was down): computed afresh
    fourth = Reader(settings, store=PageStore(root, settings.warehouse))
    fourth.note_champions(tuple((name, "999") for name, _ in champions(fourth)))
    with TestClient(create_app(settings, reader=fourth, warm_every=None)) as client:
        assert _figures(client.get("/").text) == _figures(before["/"])
        assert _figures(client.get(f"/?team={teams[1]}").text) == _figures(other.text)
    assert fourth.loaded == 0 and fourth.assembled > 0


def test_pages_prepared_by_the_batch_are_served_by_a_later_dashboard_without_computing(
    env: dict[str, str], tmp_path: Path
) -> None:
    """``forecast dashboard --prepare`` (the batch's last step, a process of its own) fills the store.

    A dashboard started afterwards over the same warehouse and champions, in another process, reads
    every warmed page back: nothing computed, nothing put together, the same figures as computed now.
    """
    from forecast.binding import model_refs
    from forecast.dashboard.store import MODEL_ROLES, default_store
    from tests.cli import settings_of

    mine = {**env, "FORECAST_DATA_DIR": str(tmp_path / "data")}  # the shared CRM's store is not written
    done = subprocess.run(
        [sys.executable, "-m", "forecast.cli", "dashboard", "--prepare"],
        env={**os.environ, **mine},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dashboard pages prepared" in done.stderr and "results kept in" in done.stderr, done.stderr
    typo = subprocess.run(  # a model the registry does not hold: refused before any work
        [sys.executable, "-m", "forecast.cli", "dashboard", "--prepare", "--models", "deal_win=deal_winn"],
        env={**os.environ, **mine},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert typo.returncode == 2 and "deal_win=deal_winn" in typo.stderr, typo.stderr
    settings = settings_of(mine)
    refs = model_refs(MODEL_ROLES)
    store = default_store(settings, refs)
    assert any(store.folder.rglob("*.pickle"))

    reader = Reader(settings, refs=refs, store=store)
    reader.note_champions(champions(reader))  # what the server's warm-up looks at first
    team = ""
    with TestClient(create_app(settings, reader=reader, warm_every=None)) as client:
        team = sorted(reader.cut(Filters()).known["team"])[0]
        paths = (*PAGES, "/prospects.csv", f"/reps?team={team}", "/?period=quarter", "/?horizon=week")
        served = {path: client.get(path) for path in paths}
    assert {p: r.status_code for p, r in served.items()} == dict.fromkeys(paths, 200)
    assert reader.computed == 0 and reader.assembled == 0 and reader.loaded >= len(paths)
    assert ("tracking", None) not in set(reader.keys())  # no CRM read

    fresh = Reader(settings, refs=refs)  # the same pages computed now, with no store
    with TestClient(create_app(settings, reader=fresh, warm_every=None)) as client:
        for path in ("/", "/reps", f"/reps?team={team}", "/?period=quarter"):
            now = client.get(path).text
            assert _figures(served[path].text) == _figures(now) and _figures(now), path
            assert _rows(served[path].text) == _rows(now), path
    assert fresh.assembled > 0


def test_a_dashboard_stopped_while_it_warms_up_exits_cleanly(env: dict[str, str], tmp_path: Path) -> None:
    """Ctrl-C as soon as the server answers, while its warm-up computes (``--no-keep``), stops it cleanly.

    The abort this guards against (a daemon thread in C++ code at the interpreter's end, exit 134)
    depends on where the warm-up is when the signal lands; ``tests/unit/test_dashboard_exit.py``
    reproduces it deterministically.
    """
    from tests.dashboard_env import dashboard_server
    from tests.processes import free_port

    log = tmp_path / "dashboard.log"
    with dashboard_server({**os.environ, **env}, free_port(), log, "--no-keep") as process:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    text = log.read_text()
    assert "terminate called" not in text and code in (0, 130), (code, text)


def test_a_promotion_during_the_prepare_keeps_nothing_under_the_old_champions_and_says_so(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The registry moves while the pages are prepared: what was computed is not kept, ``ok`` is false.

    Then a prepare over the moved registry keeps every page (and a third run reads them all back).
    """
    from forecast.dashboard.warm import prepare

    settings = _settings(env)
    store = PageStore(tmp_path / "keep", settings.warehouse)
    looks = 0

    def promoted_after_the_first_look(reader: Reader) -> tuple[tuple[str, str | None], ...]:
        nonlocal looks
        looks += 1
        found = champions(reader)
        return found if looks == 1 else tuple((name, "999:moved") for name, _ in found)

    moved = prepare(Reader(settings, store=store), registry=promoted_after_the_first_look)
    assert not moved.ok and moved.kept == 0 and moved.not_kept > 0, moved
    assert not any(store.folder.rglob("*.pickle")) if store.folder.exists() else True

    again = prepare(Reader(settings, store=store))
    assert again.ok and again.kept > 20 and again.not_kept == 0 and again.loaded == 0, again
    third = prepare(Reader(settings, store=store))
    assert third.ok and third.kept == 0 and third.loaded > 20, third  # the pages (not the figures under them)
    assert third.computed == 0  # the whole reports are not computed for a batch whose pages are kept
