"""How many threads LightGBM may use: ``FORECAST_THREADS``, else the cores this process may run on.

Read at call time (no import-time side effects). Two processes that each start one OpenMP thread
per core on the same cores spin against each other (measured here: the main job took 3.7 times
as long beside a second training process as alone); the test runner gives each of its workers
one thread, and a batch job sharing its machine can do the same.
"""

from __future__ import annotations

import os

ENV = "FORECAST_THREADS"


def available_cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows
        return max(1, os.cpu_count() or 1)


def tree_threads() -> int:
    """Threads for fitting and batch prediction of trees.

    Returns:
        ``FORECAST_THREADS`` when it is a positive integer, else :func:`available_cores`.

    Raises:
        ValueError: ``FORECAST_THREADS`` is set but not a positive integer (named in the message).
    """
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return available_cores()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ENV}={raw!r}: expected a positive integer") from None
    if value < 1:
        raise ValueError(f"{ENV}={raw!r}: expected a positive integer")
    return value
