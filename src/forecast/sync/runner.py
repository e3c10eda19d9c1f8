"""Run sync cycles: once, or every interval until SIGINT or SIGTERM.

A signal sets a stop flag. Between cycles the runner wakes and returns at once; during a cycle the
flag stops it at the next step (:class:`~forecast.sync.cycle.SyncStopped`, raised by the
checkpoint), uncommitted, so the next run redoes it. A second signal interrupts the step itself
(``KeyboardInterrupt``): each step writes in one transaction or one atomic rename, so even then
nothing is half written.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from forecast.config import Settings
from forecast.errors import InputError, cli_message
from forecast.logging import get_logger
from forecast.sync.cycle import SyncConfig, SyncStopped, run_cycle
from forecast.sync.report import CycleReport

log = get_logger("sync")

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$", re.IGNORECASE)


def parse_interval(text: str) -> float:
    """Seconds of an interval such as ``90``, ``30s``, ``15m``, ``1h`` or ``1d``.

    Raises:
        InputError: Not such an interval, or not positive (parameter ``every``).
    """
    match = _INTERVAL.match(text)
    if match is None:
        raise InputError(f"{text!r} is not an interval (e.g. 90s, 15m, 1h, 1d)", parameter="every")
    seconds = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds <= 0:
        raise InputError(f"{text!r} must be longer than zero", parameter="every")
    return seconds


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM set ``stop``; a second one raises KeyboardInterrupt.

    Outside the main thread (where Python cannot install handlers) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning(
            "sync: %s received: stopping (again to interrupt the current step)", signal.Signals(signum).name
        )

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def run_sync(
    settings: Settings,
    config: SyncConfig,
    *,
    every: float | None,
    on_cycle: Callable[[CycleReport], None],
    stop: threading.Event | None = None,
) -> bool:
    """Run one cycle (``every`` is ``None``) or a cycle every ``every`` seconds until stopped.

    With ``every``, a cycle that fails (the warehouse busy, the folder gone) is logged and the loop
    goes on; without, the error is raised.

    Args:
        settings: The warehouse, MLflow store and outputs folder.
        config: What to read and write.
        every: Seconds between the starts of two cycles (``None``: one cycle).
        on_cycle: Called with each committed cycle's report.
        stop: Set to stop (SIGINT and SIGTERM set it); a new event by default.

    Returns:
        Whether the run was stopped by ``stop`` (``False``: the one cycle ran).
    """
    config.check()
    flag = stop or threading.Event()

    def checkpoint(step: str) -> None:
        if flag.is_set():
            raise SyncStopped(step)

    with stop_on_signals(flag):
        while not flag.is_set():
            started = time.monotonic()
            try:
                report = run_cycle(settings, config, checkpoint)
            except SyncStopped as exc:
                log.warning("sync: stopped before %s; the next run redoes this cycle", exc)
                return True
            except Exception as exc:
                if every is None:
                    raise
                log.error("sync: cycle failed (%s); next cycle in %.0f s", cli_message(exc), every)
                log.debug("sync: cycle failed", exc_info=exc)
            else:
                log.info(report.log_line())
                on_cycle(report)
            if every is None:
                return False
            if flag.wait(max(0.0, every - (time.monotonic() - started))):
                break
    log.info("sync: stopped between cycles")
    return True
