"""Pages of another as of, computed in a process of their own so that no answer waits for them.

A page of another as of than the default reads and cuts the CRM again and runs the forecast for that
time: seconds on the default CRM, a minute on a 1M-lead warehouse, most of it pandas and numpy work
that holds Python's lock in stretches of up to a second. Run in a thread of the server, those
stretches delay every other answer (a page the warm-up holds included) past the bound the dashboard
keeps (:mod:`forecast.dashboard.deferred`); threads cannot bound that. So the server hands these
pages to one child process, which computes them with its own
:class:`~forecast.dashboard.data.Reader` over the same warehouse and registry, and sends back the
page's body (text) and cut summary. The server's thread that waits for the answer holds no lock
meanwhile. The child is a new interpreter (``python -m forecast.dashboard.worker``, the server's
import path): nothing of the server's threads or DuckDB connections is forked, the server's own
``__main__`` is not run again (as ``multiprocessing``'s spawn would), and it runs in a session of
its own, so a Ctrl-C at the server's terminal stops the server, which stops the child.

- One computation at a time in the child, as in the server (the machine's cores are few); pages of
  one as of go before another as of's (:meth:`~forecast.dashboard.data.Reader.as_of_turn`, taken by
  the server around each call), so the child, which holds one other as of's cut at a time, does not
  read a CRM twice.
- The child follows the server's state: each call carries the server's registry generation (a
  champion change the warm-up saw), and the child reads the warehouse file's time itself.
- The child starts at the first page of another as of (a few seconds: its imports), says it is
  ready, and stops with the server. If it dies mid-page or is killed while it starts (e.g. out of
  memory), the page says so and the next call starts a new one; if it cannot be started at all (a
  server process that may not have children, a child that exits by itself or is not ready within
  :data:`READY_SECONDS`), the server logs why and computes the pages itself from then on, as before.
- Each server process has its own child (the HTTP service's workers each have one).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from forecast.config import Settings
from forecast.errors import InputError

log = logging.getLogger(__name__)

STOP_SECONDS = 5.0
"""How long a child whose pipe was closed is given to end before it is killed (a lost one's end)."""
READY = "ready"
"""What the child sends once its dashboard is made, before any call."""
READY_SECONDS = 120.0
"""How long a new child is given to say it is ready (its imports: seconds; a busy machine: more)."""


class WorkerLostError(RuntimeError):
    """The child process ended while computing a page (it is started again at the next call)."""


class WorkerStoppedError(WorkerLostError):
    """The dashboard is stopping: no page of another as of is computed any more."""


class WorkerUnavailableError(RuntimeError):
    """The child process cannot be started here (the caller computes the page itself)."""


MAPPED = (FileNotFoundError, InputError, ValueError)
"""The errors a page answers with their own status (404, 400, 503), most specific first."""


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` itself if it crosses the pipe intact, else its text as the class a page maps it by.

    An error that pickles but cannot be made again from its pickle (one whose ``__init__`` takes
    other arguments than its message, say) becomes the first of :data:`MAPPED` it is an instance
    of, so that a page still answers it with its status; anything else a ``RuntimeError``.
    """
    traceback.clear_frames(exc.__traceback__)  # not the computation's data with it
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        kind = next((k for k in MAPPED if isinstance(exc, k)), RuntimeError)
        return kind(str(exc)) if kind is not RuntimeError else RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc.with_traceback(None)


def child_main(fd: int) -> None:
    """The child's entry (``python -m forecast.dashboard.worker FD``): ``target(conn, *args)``.

    The pipe is the inherited descriptor ``fd``; its first message is the pickled
    ``(target, *args)`` (the unpickling imports the dashboard and its models: seconds). The child
    runs in a session of its own, so a Ctrl-C at the server's terminal does not reach it: the
    server stops it.
    """
    conn = Connection(fd)
    try:
        target, *args = pickle.loads(conn.recv_bytes())
    except (EOFError, OSError):  # the server is gone already
        return
    target(conn, *args)


def serve(conn: Connection, dashboard: Any) -> None:
    """The child's loop: say :data:`READY`, then answer ``(method, args, follow)`` calls till the end.

    ``method`` is one of ``dashboard``'s (``compute``, ``csv_of``, ``counters``: the child's own
    dashboard, :func:`forecast.dashboard.app.as_of_process`), called after its reader follows the
    server's state (``follow``: :meth:`~forecast.dashboard.data.Reader.follow`'s arguments); the
    answer is ``(True, result)`` or ``(False, exception)``.
    """
    try:
        conn.send(READY)
    except (EOFError, OSError):
        return
    while True:
        try:
            method, args, follow = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        try:
            dashboard.read.follow(*follow)
            answer: tuple[bool, Any] = (True, getattr(dashboard, method)(*args))
        except Exception as exc:
            answer = (False, _sendable(exc))
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # a result that does not pickle: a bug, said as one
            conn.send((False, _sendable(RuntimeError(f"the page's result cannot be sent: {exc}"))))


class AsOfWorker:
    """The server's side: one child process, one call at a time, started when first needed.

    Args:
        settings: The dashboard's settings (the child reads the same warehouse and registry).
        refs: The models named by role, as the server's reader has them.
        target: The child's main, importable by name (it is pickled), given the pipe, ``settings``,
            ``refs`` and ``extra``: :func:`forecast.dashboard.app.as_of_process` (a dashboard of
            its own answering through :func:`serve`; tests give others).
        extra: More arguments for ``target`` (the app's: its page store).
    """

    def __init__(
        self,
        settings: Settings,
        refs: Mapping[str, Any] | None,
        target: Callable[..., None],
        *extra: Any,
    ) -> None:
        self._args = (target, settings, dict(refs or {}), *extra)
        self._payload: bytes | None = None  # the pickled ``_args``, made at the first start
        self._lock = threading.Lock()  # one call at a time; a waiting thread holds no other lock
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._closed = False
        self._atexit = False
        self.unavailable: str | None = None
        """Why no child can be started here (``None``: one can); pages are then computed in the server."""
        self.started = 0
        """How many child processes were started (for tests: a lost one is replaced)."""

    @property
    def pid(self) -> int | None:
        """The running child's process id (``None``: none running)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def call(self, method: str, *args: Any, follow: tuple[Any, ...] = (0, None)) -> Any:
        """``method(*args)`` of the child's dashboard, after its reader follows ``follow``.

        Raises:
            WorkerUnavailableError: No child can be started here.
            WorkerStoppedError: The dashboard is stopping.
            WorkerLostError: The child ended during the call.
            Exception: What the method raised in the child.
        """
        with self._lock:
            conn = self._connection()
            try:
                conn.send((method, args, follow))
                ok, value = conn.recv()
            except (EOFError, OSError) as exc:
                self._stop()
                if self._closed:
                    raise WorkerStoppedError("the dashboard is stopping") from exc
                raise WorkerLostError(
                    "the process computing pages of another as of ended during this page (out of "
                    "memory?); reload to compute it again"
                ) from exc
        if not ok:
            raise value
        return value

    def _connection(self) -> Connection:
        """The running child's pipe, starting a child if none runs (lock held)."""
        if self._closed:
            raise WorkerStoppedError("the dashboard is stopping")
        if self.unavailable is not None:
            raise WorkerUnavailableError(self.unavailable)
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            return self._conn
        self._stop()
        mine, theirs = multiprocessing.Pipe()
        try:
            if self._payload is None:
                self._payload = pickle.dumps(self._args)
            # this interpreter and import path, as multiprocessing's spawn would, without running
            # the server's __main__ again; a session of its own: no Ctrl-C from the terminal.
            # The pipe's other end is closed on exec in any other child (CLOEXEC).
            paths = os.pathsep.join(p for p in sys.path if p)
            process = subprocess.Popen(
                [sys.executable, "-m", "forecast.dashboard.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env={**os.environ, "PYTHONPATH": paths},
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except Exception as exc:  # no process may be made here, arguments that do not pickle, ...
            mine.close()
            theirs.close()
            raise self._give_up(f"the as-of process cannot be started: {exc}") from exc
        theirs.close()
        self._process, self._conn = process, mine
        self.started += 1
        if not self._atexit:  # a server that ends without its lifespan's stop (the HTTP service's)
            atexit.register(self.close)
            self._atexit = True
        if self._closed:  # close() came meanwhile and may have missed this process
            self._stop()
            raise WorkerStoppedError("the dashboard is stopping")
        try:
            mine.send_bytes(self._payload)
            ready = mine.recv() if mine.poll(READY_SECONDS) else None
        except (EOFError, OSError):
            ready = None
        if ready != READY:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_SECONDS)  # its exit code, for the message
            code = process.returncode
            self._stop()
            if self._closed:
                raise WorkerStoppedError("the dashboard is stopping")
            if code is not None and code < 0:  # killed by a signal (memory, a supervisor): next call again
                raise WorkerLostError(
                    f"the process computing pages of another as of was stopped (signal {-code}) before "
                    "it was ready; reload to start it again"
                )
            if code is None:
                raise self._give_up(f"the as-of process was not ready within {READY_SECONDS:.0f} s")
            raise self._give_up(f"the as-of process ended before it was ready (exit code {code})")
        return mine

    def _give_up(self, why: str) -> WorkerUnavailableError:
        """No child here from now on (an environment that cannot start one does not heal): say why."""
        self.unavailable = why
        log.warning("%s: pages of another as of are computed in the server's own process", why)
        return WorkerUnavailableError(why)

    def _stop(self) -> None:
        """End the child, if any (lock held)."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()  # the child's recv ends: it returns
        if process is not None:
            try:
                process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        """Stop the child at once (a call running in it is cut short: its page says the server stops)."""
        self._closed = True
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError):  # ended meanwhile
                process.kill()  # a computation may run for a minute: do not wait for it
        with self._lock:
            self._stop()


if __name__ == "__main__":
    child_main(int(sys.argv[1]))
