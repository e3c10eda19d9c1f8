"""BentoML's request timeout keeps a timer per request; the fix cancels it when the answer is sent."""

from __future__ import annotations

import asyncio
from typing import Any

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from forecast.serving.bentoml_fix import cancel_request_timers


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(1)


async def _pending_timers_after(n: int, app: Any, timeout: float) -> tuple[int, list[int]]:
    middleware = TimeoutMiddleware(app, timeout=timeout)
    statuses: list[int] = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    for _ in range(n):
        await middleware({"type": "http", "path": "/x", "method": "POST"}, receive, send)
    loop = asyncio.get_running_loop()
    live = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    return len(live), statuses


def test_answered_requests_leave_no_timer_behind() -> None:
    assert cancel_request_timers() and cancel_request_timers()  # idempotent
    pending, statuses = asyncio.run(_pending_timers_after(200, _app, timeout=60))
    assert pending == 0 and statuses == [200] * 200


def test_the_timeout_still_answers_504() -> None:
    cancel_request_timers()
    _, statuses = asyncio.run(_pending_timers_after(1, _slow, timeout=0.05))
    assert statuses == [504]
