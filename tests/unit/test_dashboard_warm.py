"""The dashboard's cache and warm-up: one computation per result, requests first, a change re-warms.

No timing is asserted: the counts of computations and what the cache holds are.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from forecast.config import load_settings
from forecast.dashboard import warm
from forecast.dashboard.data import Reader, Turns
from forecast.dashboard.store import PageStore


def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (a thread reaching a wait), failing after 10 s."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.005)


def _in_wait(thread: threading.Thread) -> bool:
    """Whether ``thread`` is blocked in an ``Event.wait`` (or a ``Condition.wait``)."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == "wait" and "threading" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


@pytest.fixture
def reader(tmp_path: Path) -> Reader:
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(b"not read by these tests")
    return Reader(load_settings(warehouse=warehouse, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db"))


def test_a_request_for_a_result_in_progress_waits_for_it_instead_of_computing_again(reader: Reader) -> None:
    release, calls, got = threading.Event(), [], []

    def slow() -> str:
        calls.append(1)
        release.wait(10)
        return "value"

    first = threading.Thread(target=lambda: got.append(reader._cached(("k",), slow)))
    first.start()
    _until(lambda: len(calls) == 1, "the first computation starts")
    second = threading.Thread(target=lambda: got.append(reader._cached(("k",), slow)))
    second.start()
    _until(lambda: _in_wait(second), "the second request waits for the first's computation")
    release.set()
    first.join(10)
    second.join(10)
    assert got == ["value", "value"]
    assert len(calls) == 1 and reader.computed == 1
    assert reader.holds(("k",))


def test_a_failed_computation_is_not_kept_and_the_next_request_computes_it(reader: Reader) -> None:
    def boom() -> str:
        raise ValueError("no data")

    with pytest.raises(ValueError):
        reader._cached(("k",), boom)
    assert not reader.holds(("k",)) and not reader._pending
    assert reader._cached(("k",), lambda: 1) == 1


def test_a_new_warehouse_state_or_champion_drops_the_old_results(reader: Reader) -> None:
    reader._cached(("k",), lambda: 1)
    assert reader.holds(("k",))
    assert not reader.note_champions((("deal_win", "1"),))  # the first look is no change
    assert reader.holds(("k",))
    assert reader.note_champions((("deal_win", "2"),))
    assert not reader.holds(("k",))
    reader._cached(("k",), lambda: 2)
    stat = reader.settings.warehouse.stat()
    os.utime(reader.settings.warehouse, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not reader.holds(("k",))
    assert reader._cached(("j",), lambda: 3) == 3
    assert reader.keys() == [("j",)]  # the old state's results were dropped, not kept in memory


def test_a_waiting_request_computes_before_the_waiting_background() -> None:
    turns, order = Turns(), []
    hold, held = threading.Event(), threading.Event()

    def first() -> None:
        with turns.turn():
            held.set()
            hold.wait(10)

    def background() -> None:
        with turns.background(), turns.turn():
            order.append("background")

    def request() -> None:
        with turns.turn():
            order.append("request")

    threads = [threading.Thread(target=first)]
    threads[0].start()
    held.wait(10)
    threads.append(threading.Thread(target=background))
    threads[1].start()
    threads.append(threading.Thread(target=request))
    threads[2].start()
    _until(lambda: turns._waiting == 1, "the request waits for a turn")
    hold.set()
    for t in threads:
        t.join(10)
    assert order == ["request", "background"]


def test_turns_are_reentrant_for_a_computation_that_needs_another_result(reader: Reader) -> None:
    assert reader._cached(("outer",), lambda: reader._cached(("inner",), lambda: 1) + 1) == 2
    assert reader.computed == 2


@pytest.fixture
def pages(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Replace the default pages by three cheap ones through the reader's cache; count their computations."""
    counts = {"a": 0, "b": 0, "broken": 0}

    def fake(reader: Reader) -> list[tuple[str, Callable[[], Any]]]:
        def page(name: str) -> Callable[[], Any]:
            def compute() -> str:
                counts[name] += 1
                if name == "broken":
                    raise RuntimeError("this page fails")
                return name

            return lambda: reader._cached((name,), compute)

        return [(name, page(name)) for name in counts]

    monkeypatch.setattr(warm, "default_pages", fake)
    yield counts


def test_the_warm_up_fills_the_cache_goes_past_a_failing_page_and_stops(
    reader: Reader, pages: dict[str, int]
) -> None:
    pages.pop("broken")
    warmer = warm.Warmer(reader, every_seconds=0.01, registry=None)
    warmer.start()
    try:
        assert warmer.wait(10)
        assert reader.holds(("a",)) and reader.holds(("b",))
        computed = reader.computed
        assert reader._cached(("a",), lambda: "other") == "a"  # a first visit finds it
        assert reader.computed == computed
        stat = reader.settings.warehouse.stat()  # an ingest: the file's time moves
        os.utime(reader.settings.warehouse, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        assert warmer.wait(10)
        assert pages == {"a": 2, "b": 2}
    finally:
        warmer.stop(timeout=10)
    assert not warmer.running


def test_a_request_that_sees_a_new_warehouse_state_wakes_the_warm_up(
    reader: Reader, pages: dict[str, int]
) -> None:
    pages.pop("broken")
    warmer = warm.Warmer(reader, every_seconds=3600, registry=None)  # no tick within the test
    warmer.start()
    try:
        assert warmer.wait(10)
        stat = reader.settings.warehouse.stat()  # an ingest, then a visit of another page
        os.utime(reader.settings.warehouse, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        reader._cached(("visit",), lambda: "page")
        assert warmer.wait(10)  # woken by the visit, not by the hourly look
        assert pages == {"a": 2, "b": 2}
    finally:
        warmer.stop(timeout=10)


def test_a_failing_page_is_logged_and_the_others_are_still_warmed(
    reader: Reader, pages: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    warmer = warm.Warmer(reader, every_seconds=0, registry=None)
    assert not warmer.warm_once()  # not complete: tried again at the next look
    assert reader.holds(("a",)) and reader.holds(("b",)) and not reader.holds(("broken",))
    assert warmer.errors == 1 and warmer.warmed is None
    assert "warming the dashboard's broken page failed" in caplog.text
    for _ in range(5):  # the same state is tried up to TRIES times, then left until it changes
        warmer.warm_once()
    assert pages["broken"] == warm.TRIES


def test_a_champion_change_warms_again(reader: Reader, pages: dict[str, int]) -> None:
    pages.pop("broken")
    versions = iter([(("deal_win", "1"),), (("deal_win", "1"),), (("deal_win", "2"),)])
    warmer = warm.Warmer(reader, every_seconds=0, registry=lambda _: next(versions))
    assert warmer.warm_once() and warmer.warm_once()  # the second look: nothing changed
    assert pages == {"a": 1, "b": 1}
    assert warmer.warm_once()
    assert pages == {"a": 2, "b": 2}


def test_a_data_change_during_the_later_views_stops_them_for_the_new_default_views(
    reader: Reader, pages: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    pages.pop("broken")
    later: list[str] = []

    def bump() -> None:  # one ingest while the later views are warmed: the file's time moves
        if later.count("first") > 1:
            return
        stat = reader.settings.warehouse.stat()
        os.utime(reader.settings.warehouse, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))

    def more(_: Reader) -> list[tuple[str, Callable[[], Any]]]:
        return [
            ("first", lambda: (later.append("first"), bump())),
            ("second", lambda: later.append("second")),
        ]

    monkeypatch.setattr(warm, "filtered_pages", more)
    monkeypatch.setattr(warm, "period_pages", lambda _: [("third", lambda: later.append("third"))])
    warmer = warm.Warmer(reader, every_seconds=0, registry=None, filtered=True)
    assert not warmer.warm_once()  # the state moved: not complete
    assert later == ["first"] and warmer.warmed is None  # the views after the change were left
    assert warmer.warm_once()  # the next look: the new state's default views, then the later ones
    assert pages == {"a": 2, "b": 2} and later == ["first", "first", "second", "third"]


def _stored_reader(tmp_path: Path) -> Reader:
    """A reader with a page store of its own (the warehouse is never read by these tests)."""
    from forecast.dashboard.store import PageStore

    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(b"not read by this test")
    settings = load_settings(warehouse=warehouse, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db")
    return Reader(settings, store=PageStore(tmp_path / "store", warehouse))


def _default_views_only(
    tmp_path: Path, pages: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> tuple[Reader, PageStore]:
    """A stored reader whose warm-up computes the two fake default views alone (no filter, no period)."""
    pages.pop("broken")
    monkeypatch.setattr(warm, "filtered_pages", lambda _: [])
    monkeypatch.setattr(warm, "period_pages", lambda _: [])
    reader = _stored_reader(tmp_path)
    assert reader.store is not None
    return reader, reader.store


def test_the_warm_up_waits_while_a_batch_prepares_the_same_store(
    tmp_path: Path, pages: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard's warm-up does not compute beside ``forecast dashboard --prepare`` of its store.

    While another holder has the store's prepare lock, the warm-up computes nothing; once it is
    released, it goes on (reading back what the batch kept, here computing the fake pages).
    """
    reader, store = _default_views_only(tmp_path, pages, monkeypatch)
    assert not store.prepare_running()  # no prepare ever ran here
    done: list[bool] = []
    with store.preparing():
        assert store.prepare_running()  # another open file of this process sees the lock too
        warmer = warm.Warmer(reader, every_seconds=0, registry=None, filtered=True)
        thread = threading.Thread(target=lambda: done.append(warmer.warm_once()), daemon=True)
        thread.start()
        _until(lambda: _in_wait(thread), "the warm-up waits for the batch")
        time.sleep(0.2)
        assert pages == {"a": 0, "b": 0} and not done
    assert not store.prepare_running()
    thread.join(10)
    assert done == [True] and pages == {"a": 1, "b": 1}


def test_a_stop_ends_the_wait_for_the_batch(tmp_path: Path, pages: dict[str, int]) -> None:
    reader = _stored_reader(tmp_path)
    store = reader.store
    assert store is not None
    done: list[bool] = []
    with store.preparing():
        warmer = warm.Warmer(reader, every_seconds=0, registry=None)
        thread = threading.Thread(target=lambda: done.append(warmer.warm_once()), daemon=True)
        thread.start()
        _until(lambda: _in_wait(thread), "the warm-up waits for the batch")
        warmer.stop()
        thread.join(10)
    assert done == [False] and sum(pages.values()) == 0


def test_a_hung_batch_delays_a_warm_up_once_not_before_each_view(
    tmp_path: Path, pages: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past :data:`~forecast.dashboard.warm.BATCH_WAIT_SECONDS` in all, every view is computed at once."""
    pages.pop("broken")
    monkeypatch.setattr(warm, "BATCH_WAIT_SECONDS", 0.3)
    reader = _stored_reader(tmp_path)
    store = reader.store
    assert store is not None
    waits: list[float] = []
    warmer = warm.Warmer(reader, every_seconds=0, registry=None)

    def wait(timeout: float | None = None) -> bool:  # a tenth of each step, so the test is quick
        waits.append(timeout or 0.0)
        time.sleep(0.1)
        return False

    monkeypatch.setattr(warmer._stop, "wait", wait)
    with store.preparing():  # held throughout: a prepare that hangs
        assert warmer.warm_once()
    # about 0.3 s of waiting before the first view, none before the second (per view: twice that)
    assert pages == {"a": 1, "b": 1} and 1 <= len(waits) <= 4, waits


def test_the_warm_up_waits_while_a_batch_holds_the_store_until_its_prepare_ends(
    tmp_path: Path, pages: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``forecast dashboard --hold``: from the batch's first write to its prepare, nothing is warmed.

    The hold is not a lock: the warm-up waits for its file's deadline, and the end of a prepare
    that started under it removes it (here a prepare with nothing to compute).
    """
    reader, store = _default_views_only(tmp_path, pages, monkeypatch)
    assert store.hold(600.0) is not None
    done: list[bool] = []
    warmer = warm.Warmer(reader, every_seconds=0, registry=None, filtered=True)
    thread = threading.Thread(target=lambda: done.append(warmer.warm_once()), daemon=True)
    try:
        thread.start()
        _until(lambda: _in_wait(thread), "the warm-up waits for the batch")
        time.sleep(0.2)
        assert pages == {"a": 0, "b": 0} and not done and not store.prepare_running()
        with store.preparing():
            pass
        thread.join(10)
        assert done == [True] and pages == {"a": 1, "b": 1}
    finally:
        warmer.stop()


def test_a_hold_past_its_deadline_holds_nothing(tmp_path: Path, pages: dict[str, int]) -> None:
    """A batch that died: its hold ends at the deadline it asked for, and the warm-up goes on."""
    pages.pop("broken")
    reader = _stored_reader(tmp_path)
    assert reader.store is not None and reader.store.hold(2.0) is not None
    done: list[bool] = []
    warmer = warm.Warmer(reader, every_seconds=0, registry=None)
    thread = threading.Thread(target=lambda: done.append(warmer.warm_once()), daemon=True)
    try:
        thread.start()
        _until(lambda: _in_wait(thread), "the warm-up waits for the hold")
        assert pages == {"a": 0, "b": 0}
        thread.join(30)
        assert done == [True] and pages == {"a": 1, "b": 1}
    finally:
        warmer.stop()


def test_the_wait_for_a_hold_does_not_use_up_the_wait_for_the_prepare_after_it(
    tmp_path: Path, pages: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepare's cap runs from the lock's first sight, not from a warm-up held for hours before it.

    A scripted batch, one look a (fake) second: held for 5 looks, then its prepare's lock for 6.
    With a cap of 3 seconds the warm-up waits the hold's 5 and then 3 of the prepare's, not 0.
    """
    pages.pop("broken")
    monkeypatch.setattr(warm, "BATCH_WAIT_SECONDS", 3.0)
    reader = _stored_reader(tmp_path)
    store = reader.store
    assert store is not None
    clock = [0.0]
    monkeypatch.setattr(
        warm, "time", SimpleNamespace(monotonic=lambda: clock[0], perf_counter=time.perf_counter)
    )
    monkeypatch.setattr(store, "held_until", lambda: 1e12 if clock[0] < 5 else None)
    monkeypatch.setattr(store, "prepare_running", lambda: 5 <= clock[0] < 11)
    warmer = warm.Warmer(reader, every_seconds=0, registry=None)
    computed_at: list[float] = []

    def wait(timeout: float | None = None) -> bool:
        clock[0] += timeout or 0.0
        return False

    monkeypatch.setattr(warmer._stop, "wait", wait)
    real = pages.copy()
    assert warmer.warm_once()
    computed_at.append(clock[0])
    assert pages == {k: v + 1 for k, v in real.items()} and computed_at == [8.0]
