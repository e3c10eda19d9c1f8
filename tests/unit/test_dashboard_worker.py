"""The dashboard's as-of process (:mod:`forecast.dashboard.worker`): real child processes.

The pages it computes are compared with the server's in ``tests/integration/test_dashboard.py``;
here, what crosses the pipe and what happens when the child dies or the dashboard stops.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from forecast.config import Settings, load_settings
from forecast.dashboard import worker
from forecast.dashboard.app import as_of_process
from forecast.dashboard.data import Filters, Reader
from forecast.data.warehouse import WarehouseBusyError
from forecast.errors import InputError


def dies_at_the_first_call(conn: Connection, settings: Settings, refs: Any, store: Any) -> None:
    """A child that ends (as if killed for memory) once a call arrives."""
    conn.send(worker.READY)
    conn.recv()
    os._exit(3)


def never_answers(conn: Connection, settings: Settings, refs: Any, store: Any) -> None:
    """A child busy with its call for good (a minute-long page, say)."""
    conn.send(worker.READY)
    conn.recv()
    time.sleep(3600)


def fails_to_start(conn: Connection, settings: Settings, refs: Any, store: Any) -> None:
    """A child that ends before it is ready (an import that fails there, say)."""
    raise SystemExit(4)


def killed_before_ready(conn: Connection, settings: Settings, refs: Any, store: Any) -> None:
    """A child stopped by a signal while it starts (the machine short of memory, say)."""
    os.kill(os.getpid(), signal.SIGKILL)


def never_ready(conn: Connection, settings: Settings, refs: Any, store: Any) -> None:
    """A child stuck while it starts (an import that hangs, say)."""
    time.sleep(3600)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(warehouse=tmp_path / "none.duckdb", data_dir=tmp_path)


@pytest.fixture
def closing() -> Iterator[list[worker.AsOfWorker]]:
    made: list[worker.AsOfWorker] = []
    yield made
    for w in made:
        w.close()


def _worker(
    settings: Settings, closing: list[worker.AsOfWorker], target: Any = as_of_process
) -> worker.AsOfWorker:
    w = worker.AsOfWorker(settings, None, target, None)
    closing.append(w)
    return w


def test_the_child_s_errors_cross_the_pipe_as_themselves(
    settings: Settings, closing: list[worker.AsOfWorker]
) -> None:
    """A missing warehouse is the ``FileNotFoundError`` (404) and a bad filter the ``InputError``
    (400) of a page computed in the server; the child goes on answering after them."""
    w = _worker(settings, closing)
    with pytest.raises(FileNotFoundError):
        w.call("compute", "/reps", {"as_of": "2024-11-01"})
    with pytest.raises(InputError, match="as_of"):
        w.call("compute", "/reps", {"as_of": "not a date"})
    # the page's cut is asked of DuckDB first, which finds no warehouse: no CRM read was tried
    assert w.call("counters") == {"computed": 0, "assembled": 0, "loaded": 0, "reads": 0}
    assert w.started == 1 and w.pid not in (None, os.getpid())


def test_a_child_that_dies_mid_call_is_said_and_replaced(
    settings: Settings, closing: list[worker.AsOfWorker]
) -> None:
    w = _worker(settings, closing, target=dies_at_the_first_call)
    with pytest.raises(worker.WorkerLostError, match="ended during this page"):
        w.call("counters")
    assert w.pid is None
    with pytest.raises(worker.WorkerLostError):  # a new child, which dies too
        w.call("counters")
    assert w.started == 2


def test_closing_stops_a_busy_child_at_once(settings: Settings, closing: list[worker.AsOfWorker]) -> None:
    """A page being computed does not hold the server's stop; its caller hears that it was lost."""
    w = _worker(settings, closing, target=never_answers)
    raised: list[BaseException] = []

    def ask() -> None:
        try:
            w.call("counters")
        except BaseException as exc:
            raised.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    deadline = time.monotonic() + 60
    while w.pid is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = w.pid
    w.close()
    asker.join(30)
    assert not asker.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], worker.WorkerStoppedError)
    assert w.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no such process
    with pytest.raises(worker.WorkerStoppedError):  # closed: no page computed any more
        w.call("counters")


def test_a_child_that_cannot_start_leaves_the_pages_to_the_server_for_good(
    settings: Settings, closing: list[worker.AsOfWorker]
) -> None:
    w = _worker(settings, closing, target=fails_to_start)
    with pytest.raises(worker.WorkerUnavailableError, match=r"before it was ready \(exit code 4\)"):
        w.call("counters")
    with pytest.raises(worker.WorkerUnavailableError):
        w.call("counters")
    assert w.started == 1 and w.pid is None  # not started again at every page


def test_a_child_killed_while_it_starts_is_lost_not_given_up(
    settings: Settings, closing: list[worker.AsOfWorker]
) -> None:
    w = _worker(settings, closing, target=killed_before_ready)
    for _ in range(2):  # started again at the next page
        with pytest.raises(worker.WorkerLostError, match="signal 9"):
            w.call("counters")
    assert w.started == 2 and w.unavailable is None


def test_a_child_that_never_says_it_is_ready_is_stopped_and_given_up(
    settings: Settings, closing: list[worker.AsOfWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "READY_SECONDS", 1.0)
    w = _worker(settings, closing, target=never_ready)
    with pytest.raises(worker.WorkerUnavailableError, match="not ready within 1 s"):
        w.call("counters")
    assert w.pid is None and w.unavailable is not None


def test_another_reader_s_champions_let_go_of_what_was_computed_before_them(settings: Settings) -> None:
    """The as-of process's reader follows the server's champions: results computed before other
    champions were taken (maybe with other models) are not handed out, nor kept, under them."""
    reader = Reader(settings)
    computed: list[int] = []

    def compute() -> dict[str, int]:
        computed.append(1)
        return {"won": len(computed)}

    def page() -> dict[str, int]:
        return reader.page("overview", Filters(), compute)

    assert page() == {"won": 1} and page() == {"won": 1}
    reader.follow(0, (("deal_win", "1:a"),))  # the server's first look
    assert page() == {"won": 2}
    reader.follow(0, (("deal_win", "1:a"),))  # the same: nothing let go
    assert page() == {"won": 2}
    reader.follow(0, (("deal_win", "2:b"),))
    assert page() == {"won": 3} and reader.followed() == (0, (("deal_win", "2:b"),))


def test_an_error_that_does_not_cross_the_pipe_is_said_by_its_text() -> None:
    class UnpicklableError(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a} and {b}")

    sent = worker._sendable(UnpicklableError(1, 2))
    assert type(sent) is RuntimeError and str(sent) == "UnpicklableError: 1 and 2"
    kept = worker._sendable(InputError("no such rep", parameter="rep"))
    assert type(kept) is InputError and str(kept) == "rep no such rep"
    busy = WarehouseBusyError("wh.duckdb", 1234)  # pickles, but is not made again from its pickle
    sent = worker._sendable(busy)
    assert isinstance(sent, InputError) and str(sent) == str(busy)  # still a 400 on the page

    class NoWarehouseError(FileNotFoundError):
        def __init__(self, path: str, why: str) -> None:
            super().__init__(f"{path}: {why}")

    missing = worker._sendable(NoWarehouseError("wh.duckdb", "run forecast ingest"))  # a local class
    assert type(missing) is FileNotFoundError and "run forecast ingest" in str(missing)  # still a 404
