"""A page answers within its wait: work that takes longer goes on in the background, once per key."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from forecast.dashboard import deferred
from forecast.dashboard.deferred import Deferred


def test_work_done_within_the_wait_is_answered_at_once() -> None:
    assert Deferred(5.0).answer("/a", lambda: 42) == (True, 42)


def test_without_a_wait_the_work_runs_in_the_callers_thread() -> None:
    def work() -> str:
        return threading.current_thread().name

    assert Deferred(None).answer("/a", work) == (True, threading.current_thread().name)


def test_longer_work_is_answered_later_and_runs_once_for_every_ask() -> None:
    release = threading.Event()
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        release.wait(10)
        return "page"

    d = Deferred(0.05)
    assert d.answer("/slow", work) == (False, None)
    assert d.answer("/slow", work) == (False, None)  # a reload joins the running work
    assert d.running() == 1
    release.set()
    deadline = time.monotonic() + 10
    while (answer := d.answer("/slow", work)) == (False, None) and time.monotonic() < deadline:
        pass
    assert answer == (True, "page") and calls == [1]
    assert d.running() == 0
    assert d.answer("/slow", lambda: "again") == (True, "again")  # handed out once: the key is free


def test_an_error_reaches_the_next_ask_once() -> None:
    release = threading.Event()

    def work() -> str:
        release.wait(10)
        raise ValueError("the warehouse cannot be read")

    d = Deferred(0.01)
    assert d.answer("/bad", work) == (False, None)
    release.set()
    deadline = time.monotonic() + 10
    while True:  # reloads until it has ended: then its error, once
        try:
            answer = d.answer("/bad", work)
        except ValueError as exc:
            assert "cannot be read" in str(exc)
            break
        assert answer == (False, None) and time.monotonic() < deadline
    assert d.answer("/bad", lambda: "fixed") == (True, "fixed")


def test_keys_run_apart_and_a_finished_page_left_is_forgotten(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    d = Deferred(0.01)
    assert d.answer("/a", lambda: release.wait(10) and "a") == (False, None)
    assert d.answer("/b", lambda: release.wait(10) and "b") == (False, None)
    assert d.running() == 2
    release.set()
    deadline = time.monotonic() + 10
    while d.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    monkeypatch.setattr(deferred, "KEEP_SECONDS", 0.0)
    time.sleep(0.01)
    assert d.answer("/a", lambda: "new") == (True, "new")  # "/a" was older than KEEP_SECONDS: computed again
    assert "/b" not in d._jobs


def test_beyond_the_limit_a_request_waits_for_its_own_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deferred, "MAX_RUNNING", 1)
    release = threading.Event()
    d = Deferred(0.01)
    assert d.answer("/a", lambda: release.wait(10)) == (False, None)
    assert d.answer("/b", lambda: "b") == (True, "b")  # in place, not queued behind "/a"
    release.set()


@pytest.mark.parametrize("wait", [-1.0, float("inf"), float("nan"), 1e10])
def test_a_wait_that_is_no_bound_is_refused(wait: float) -> None:
    with pytest.raises(ValueError, match="--wait must be from 0 to 3600 seconds"):
        Deferred(wait)


def test_an_error_keeps_none_of_the_computation_s_data() -> None:
    """The error handed to a later reload must not hold the frames (gigabytes) its work had read."""

    class Big:
        pass

    go = threading.Event()

    def work() -> None:
        data = Big()  # what a cut would be
        refs.append(weakref.ref(data))
        go.wait(10)
        raise ValueError("a bad period, found after the read")

    refs: list[weakref.ref[Big]] = []
    d = Deferred(0.0)
    assert d.answer("/bad", work) == (False, None)
    go.set()
    deadline = time.monotonic() + 10
    while d.running():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    gc.collect()
    assert refs and refs[0]() is None  # the error is held, its frames' locals are not
    with pytest.raises(ValueError, match="bad period"):
        d.answer("/bad", work)
