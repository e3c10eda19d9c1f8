"""ASGI middleware in front of every route: auth, a cap on the body, request ids, error bodies.

With ``FORECAST_API_TOKEN`` set, a request without ``Authorization: Bearer <token>`` gets 401
(the comparison takes the same time wherever the strings differ); the health probes stay open
so an orchestrator can check the process. A body larger than ``FORECAST_MAX_BODY_BYTES`` gets 413
before it is parsed, whether it announces its length or not.

Every answer carries ``X-Request-ID`` (the client's, when it sends a plain one, else a new one).
Every error answer gets the one body shape of :mod:`forecast.serving.errors` and one log line:
route, status, code, field paths and request id (never input values, never a traceback).
The OpenAPI spec loses BentoML's ``/metrics`` route, which this service turns off.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from forecast.config import load_settings
from forecast.serving.errors import REQUEST_LOGGER, error_body, normalise

log = logging.getLogger(REQUEST_LOGGER)

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
SPEC_PATHS = frozenset({"/docs.json"})
"""The OpenAPI spec's routes (rewritten without the disabled ``/metrics``)."""
HIDDEN_ROUTES = ("/metrics",)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/livez", "/healthz", "/readyz"})
"""Health probes: answered without a token."""


async def _send_json(
    send: Send, status: int, payload: dict[str, Any] | str, headers: list[tuple[bytes, bytes]]
) -> None:
    """Answer with JSON; a ``str`` payload is an error message, sent as :func:`error_body`."""
    body = json.dumps(error_body(status, payload) if isinstance(payload, str) else payload).encode()
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
        """Give the request an id, check it, pass it on; shape and log an error answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._ready:
            self._configure()
        given = next((v for k, v in scope.get("headers") or [] if k.lower() == b"x-request-id"), b"")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex.encode()
        path = str(scope.get("path", ""))
        await self._guard(scope, receive, _Answer(send, request_id, path, str(scope.get("method", ""))))

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or []:  # the first of repeated headers, as Starlette reads
            headers.setdefault(name.lower(), value)
        guarded = self._token is not None and scope.get("path", "") not in OPEN_PATHS
        if guarded and not bearer_ok(headers.get(b"authorization", b""), self._token or b""):
            await _send_json(
                send,
                401,
                "unauthorized: send the header 'Authorization: Bearer <FORECAST_API_TOKEN>'",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        if scope.get("method") == "POST" and not _is_json(headers.get(b"content-type", b"application/json")):
            await _send_json(send, 415, "send the body as application/json", [])
            return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                await _send_json(send, 400, "Content-Length is not a number", [])
                return
            if announced > self._limit:
                await self._too_large(send)
                return
        await self._call_limited(scope, receive, send)

    async def _too_large(self, send: Send) -> None:
        await _send_json(send, 413, f"request body larger than {self._limit} bytes", [])

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


class _Answer:
    """The ``send`` of one request: adds ``X-Request-ID``; buffers an error body to reshape and log it.

    Error bodies are small (a few hundred bytes); a success streams through untouched, except the
    OpenAPI spec, which is rewritten without the routes this service turns off.
    """

    def __init__(self, send: Send, request_id: bytes, path: str, method: str) -> None:
        self.send = send
        self.request_id = request_id
        self.path = path
        self.method = method
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
            message = {**message, "headers": [*headers, (b"x-request-id", self.request_id)]}
            if message["status"] < 400 and self.path not in SPEC_PATHS:
                await self.send(message)
                return
            self.start = message
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self.send(message)
            return
        self.chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, body = self.start, b"".join(self.chunks)
        self.start, self.chunks = None, []
        status = int(start["status"])
        if status >= 400:
            document = normalise(status, body)
            self._log(status, document)
            body = json.dumps(document).encode()
            start = _with_headers(start, body, b"application/json")
        elif self.path in SPEC_PATHS:
            body = _without_hidden_routes(body)
            start = _with_headers(start, body, None)
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body})

    def _log(self, status: int, document: dict[str, Any]) -> None:
        paths = [".".join(map(str, e.get("path", []))) or "body" for e in document.get("errors", [])]
        log.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "%s %s -> %d %s fields=%s request_id=%s",
            self.method,
            self.path,
            status,
            document.get("code"),
            ",".join(paths[:20]) or "-",
            self.request_id.decode(),
        )


def _with_headers(start: Message, body: bytes, content_type: bytes | None) -> Message:
    """``start`` with the new body's length (and content type)."""
    drop = {b"content-length", *([b"content-type"] if content_type else [])}
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in drop]
    headers.append((b"content-length", str(len(body)).encode()))
    if content_type:
        headers.append((b"content-type", content_type))
    return {**start, "headers": headers}


def _without_hidden_routes(body: bytes) -> bytes:
    """The OpenAPI document without :data:`HIDDEN_ROUTES` (unchanged if it is not JSON)."""
    try:
        spec = json.loads(body)
    except ValueError:
        return body
    paths = spec.get("paths") if isinstance(spec, dict) else None
    if not isinstance(paths, dict) or not any(r in paths for r in HIDDEN_ROUTES):
        return body
    for route in HIDDEN_ROUTES:
        paths.pop(route, None)
    return json.dumps(spec).encode()
