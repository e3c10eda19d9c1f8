"""ASGI middleware in front of every route: bearer-token auth and a cap on the request body.

With ``FORECAST_API_TOKEN`` set, a request without ``Authorization: Bearer <token>`` gets 401
(the comparison takes the same time wherever the strings differ); the health probes stay open
so an orchestrator can check the process. A body larger than ``FORECAST_MAX_BODY_BYTES`` gets 413
before it is parsed, whether it announces its length or not.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from forecast.config import load_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/livez", "/healthz", "/readyz"})
"""Health probes: answered without a token."""


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def api_token(secret: Any) -> bytes | None:
    """The token to require (``None``: open), from the ``FORECAST_API_TOKEN`` setting.

    Surrounding whitespace (a newline from a secrets file) is dropped.

    Raises:
        ValueError: The variable is set but blank (which would leave the service open).
    """
    if secret is None:
        return None
    text = secret.get_secret_value().strip()
    if not text:
        raise ValueError("FORECAST_API_TOKEN is set but blank: set a token or unset the variable")
    return text.encode()


def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";")[0].strip().lower() in (b"application/json", b"")


def bearer_ok(header: bytes, token: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (constant-time comparison)."""
    scheme, _, given = header.partition(b" ")
    # compare_digest on the whole value: its time does not depend on where the bytes differ
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)


class GuardMiddleware:
    """Auth and body-size guard (settings are read at the first request, not at import).

    Args:
        app: The wrapped ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._token: bytes | None = None
        self._limit = 0
        self._ready = False

    def _configure(self) -> None:
        settings = load_settings()
        self._token = api_token(settings.api_token)
        self._limit = settings.max_body_bytes
        self._ready = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._ready:
            self._configure()
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or []:  # the first of repeated headers, as Starlette reads
            headers.setdefault(name.lower(), value)
        guarded = self._token is not None and scope.get("path", "") not in OPEN_PATHS
        if guarded and not bearer_ok(headers.get(b"authorization", b""), self._token or b""):
            await _send_json(
                send,
                401,
                {"error": "unauthorized: send the header 'Authorization: Bearer <FORECAST_API_TOKEN>'"},
                [(b"www-authenticate", b"Bearer")],
            )
            return
        if scope.get("method") == "POST" and not _is_json(headers.get(b"content-type", b"application/json")):
            await _send_json(send, 415, {"error": "send the body as application/json"}, [])
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                await _send_json(send, 400, {"error": "Content-Length is not a number"}, [])
                return
            if announced > self._limit:
                await self._too_large(send)
                return
        await self._call_limited(scope, receive, send)

    async def _too_large(self, send: Send) -> None:
        await _send_json(send, 413, {"error": f"request body larger than {self._limit} bytes"}, [])

    async def _call_limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the body as it arrives; past the limit, end it early and answer 413 instead."""
        seen = 0
        over = False
        answered = False

        async def counted() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self._limit:
                    over = True  # the app sees the client gone: it never handles a cut body
                    return {"type": "http.disconnect"}
            return message

        async def replacing(message: Message) -> None:
            nonlocal answered
            if not over:
                await send(message)
            elif not answered and message.get("type") == "http.response.start":
                answered = True
                await self._too_large(send)

        try:
            await self.app(scope, counted, replacing)
        except Exception:
            if not over:
                raise
        if over and not answered:  # the app gave up on the disconnect without answering
            await self._too_large(send)
