"""Answer within a bound: a page whose figures take longer is finished in the background.

Most views are held or computed in well under a second, but some cannot be: another as of reads and
cuts the CRM again and runs the forecast for that time (minutes on a 1M-lead warehouse), and a
view asked while the warm-up is still reading waits for it. A request that held the connection that
long would meet the timeouts of the proxies in front of a dashboard (a minute, often) and leave the
manager at a blank tab. So a page request waits for its page at most :data:`WAIT_SECONDS`; if the
page is not ready by then, the answer is a short page saying it is being computed, which reloads
itself every :data:`REFRESH_SECONDS` (``202 Accepted``, ``Refresh`` header and ``<meta>``), while
the computation goes on in a thread of its own. A reload of the same address joins that computation
(never a second one) and gets the page once it is done, or the error it ended with, once.

The computation is the page's own (the reader's cache and turns: requests first, then the warm-up),
so its figures are those of a page computed in the request.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

WAIT_SECONDS = 0.1
"""How long a page request waits for its page before answering that it is being computed. The
issue bounds a page's server time at 0.3 s on the default CRM and 2 s at 1M leads; the answer
also waits for Python's lock while a computation in the server's threads holds it for a copy or a
sort (another period's, or the warm-up's; another as of's runs in a process of its own,
:mod:`forecast.dashboard.worker`), so the wait leaves that room. A view held or computed within it
(every view the warm-up computes, and another period on the default CRM: 7-70 ms) answers with its
page."""
REFRESH_SECONDS = 1
"""After how long the "being computed" page reloads itself (each reload then waits up to
:data:`WAIT_SECONDS` again, so a page ready a little after the first wait shows at once)."""
KEEP_SECONDS = 600.0
"""How long a finished page nobody came back for is kept for a reload (then it is computed again)."""
MAX_WAIT_SECONDS = 3600.0
"""The longest wait accepted (an hour: longer is no bound, and past ``threading.TIMEOUT_MAX`` fails)."""
MAX_RUNNING = 16
"""Computations at most in the background; beyond them a request waits for its own page in place."""


@dataclass
class _Job(Generic[T]):
    future: Future[T]
    ended: float | None = None
    """When the work ended (``time.monotonic``; ``None``: running)."""


class Deferred:
    """Runs each page's computation once per key, answering within ``wait_seconds``.

    Args:
        wait_seconds: How long :meth:`answer` waits (``None``: until the work is done, in the
            caller's thread, as without this class).
    """

    def __init__(self, wait_seconds: float | None = WAIT_SECONDS) -> None:
        if wait_seconds is not None and not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"--wait must be from 0 to {MAX_WAIT_SECONDS:.0f} seconds, not {wait_seconds}")
        self.wait_seconds = wait_seconds
        self._jobs: dict[Hashable, _Job[object]] = {}
        self._lock = threading.Lock()

    def answer(self, key: Hashable, work: Callable[[], T]) -> tuple[bool, T | None]:
        """``work()``'s result for ``key``, if it is ready within the wait.

        The first call for a key starts ``work`` in a daemon thread; later calls while it runs join
        it (``work`` runs once). A finished result (or error) is handed out once, then the key is
        free again. The caller puts in the key whatever makes a result stale (the reader's state:
        a result of a warehouse gone by is never handed out for the new one).

        Returns:
            ``(True, result)`` when done; ``(False, None)`` while it is still running.

        Raises:
            Exception: What ``work`` raised.
        """
        if self.wait_seconds is None:
            return True, work()
        with self._lock:
            self._forget_stale()
            job = self._jobs.get(key)
            if job is None and self.running() < MAX_RUNNING:
                job = self._jobs[key] = self._start(key, work)
        if job is None:  # too many in the background already: this request waits for its own page
            return True, work()
        try:
            value = job.future.result(timeout=self.wait_seconds)
        except FutureTimeout:  # still running (or ended just now: the next ask gets it)
            return False, None
        except BaseException:
            self._handed(key, job)
            raise
        self._handed(key, job)
        return True, value  # type: ignore[return-value]  # the future of this key's work

    def _handed(self, key: Hashable, job: _Job[object]) -> None:
        """Free ``key`` once its job's result (or error) is handed out."""
        with self._lock:
            if self._jobs.get(key) is job:
                del self._jobs[key]

    def running(self) -> int:
        """How many computations are running (call with the lock held or for a glance)."""
        return sum(1 for job in self._jobs.values() if not job.future.done())

    def _start(self, key: Hashable, work: Callable[[], T]) -> _Job[object]:
        future: Future[object] = Future()
        job: _Job[object] = _Job(future)

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(work())
            except BaseException as exc:  # handed to the request that comes for it
                traceback.clear_frames(exc.__traceback__)  # not the computation's data with it
                future.set_exception(exc)
            finally:
                job.ended = time.monotonic()

        threading.Thread(target=run, name=f"page {key!s}"[:60], daemon=True).start()
        return job

    def _forget_stale(self) -> None:
        """Drop finished results nobody came back for within :data:`KEEP_SECONDS` (lock held)."""
        now = time.monotonic()
        for key in [k for k, j in self._jobs.items() if j.ended is not None and now - j.ended > KEEP_SECONDS]:
            del self._jobs[key]
