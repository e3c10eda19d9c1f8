"""A fix for BentoML 1.4.40's request timeout: cancel each request's timer when it is answered.

``bentoml._internal.server.http.traffic.TimeoutMiddleware`` schedules ``loop.call_later(timeout,
...)`` for every request and never cancels it, so each request's context (and its tracing span)
stays alive for ``traffic.timeout`` seconds. Under load that fills the oldest GC generation and
Python runs full collections of 100-800 ms every few seconds: the stalls measured in
``benchmarks/RESULTS.md`` ("HTTP serving"). :func:`cancel_request_timers` replaces the
middleware's ``__call__`` with the same logic plus the cancellation, so the timeout can stay long
enough for the slow endpoints (a whole-pipeline revenue forecast) without the leak.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

FIXED_VERSIONS = frozenset({"1.4.40"})
"""BentoML versions whose middleware this replaces (checked: the pin in pyproject.toml)."""


async def _timed_call(self: Any, scope: Any, receive: Any, send: Any) -> None:
    """``TimeoutMiddleware.__call__`` of BentoML 1.4.40, with the timer cancelled at the end."""
    from starlette.responses import JSONResponse

    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if fut.cancel():
            resp = JSONResponse(
                {"error": f"Not able to process the request in {self.timeout} seconds"}, status_code=504
            )
            await resp(scope, receive, send)
    else:
        await fut
    finally:
        timer.cancel()


def cancel_request_timers() -> bool:
    """Install the fix (idempotent); ``False`` (and a warning) for an unchecked BentoML version."""
    import bentoml
    from bentoml._internal.server.http import traffic

    middleware: Any = traffic.TimeoutMiddleware
    if middleware.__call__ is _timed_call:
        return True
    if bentoml.__version__ not in FIXED_VERSIONS:
        log.warning(
            "BentoML %s: request-timer fix not applied (checked on %s)", bentoml.__version__, FIXED_VERSIONS
        )
        return False
    middleware.__call__ = _timed_call
    return True
