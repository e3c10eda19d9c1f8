"""ASGI middleware in front of every route: auth, a cap on the body, request ids, error bodies.

With ``FORECAST_API_TOKEN`` set, a request without ``Authorization: Bearer <token>`` or a valid
session cookie (:mod:`forecast.web_session`) gets 401 (the comparison takes the same time
wherever the strings differ); the health probes stay open so an orchestrator can check the
process. A state-changing request authenticated by the cookie alone must come from the same
origin (403 otherwise). A body larger than ``FORECAST_MAX_BODY_BYTES`` gets 413 before it is
parsed, whether it announces its length or not.

``/``, ``/docs``, ``/login`` and ``/logout`` are answered here by :mod:`forecast.serving.docs_page`
(BentoML's index page, which loads Google Tag Manager, is never reached), and BentoML's swagger
assets (``/static_content``, ``/assets``) are a 404.

Every answer carries ``X-Request-ID`` (the client's, when it sends a plain one, else a new one).
Every error answer gets the one body shape of :mod:`forecast.serving.errors` and one log line:
route, status, code, field paths and request id (never input values, never a traceback).
The OpenAPI spec is rewritten by :func:`forecast.serving.openapi.public_spec` (no ``/metrics``,
no BentoML README or wrapper class names).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from forecast import web_session as session
from forecast.config import load_settings
from forecast.serving import dashboard_mount, docs_page
from forecast.serving.errors import REQUEST_LOGGER, error_body, normalise
from forecast.serving.openapi import public_spec, public_spec_bytes

log = logging.getLogger(REQUEST_LOGGER)

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
SPEC_PATHS = frozenset({"/docs.json"})
"""The OpenAPI spec's routes (rewritten by :func:`forecast.serving.openapi.public_spec`)."""

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
    return scheme.lower() == b"bearer" and session.token_ok(given, token)


CROSS_ORIGIN = (
    "a request authenticated by the session cookie must come from this service's own pages "
    "(same origin); API clients send 'Authorization: Bearer <FORECAST_API_TOKEN>'"
)


def _hidden(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in docs_page.HIDDEN_PREFIXES)


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
        self._spec: dict[str, Any] | None = None

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
        # the dashboard's pages answer their errors as pages (HTML), not as the API's JSON
        reshape = not dashboard_mount.under_prefix(path)
        await self._guard(
            scope, receive, _Answer(send, request_id, path, str(scope.get("method", "")), reshape)
        )

    def _credentials(self, headers: dict[bytes, bytes]) -> str | None:
        """How the request is authenticated: ``open`` (no token set), ``bearer``, ``cookie`` or ``None``."""
        if self._token is None:
            return "open"
        if bearer_ok(headers.get(b"authorization", b""), self._token):
            return "bearer"
        value = session.cookie(headers.get(b"cookie", b""))
        if value is not None and session.session_ok(value, self._token):
            return "cookie"
        return None

    async def _guard(self, scope: Scope, receive: Receive, send: _Answer) -> None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers") or []:  # the first of repeated headers, as Starlette reads
            headers.setdefault(name.lower(), value)
        path = str(scope.get("path", ""))
        credentials = self._credentials(headers)
        if path in docs_page.PAGE_PATHS:
            await self._page(scope, receive, send, headers, credentials is not None)
            return
        if dashboard_mount.under_prefix(path):  # the dashboard's own login form, cookie and pages
            await self._call_limited(scope, receive, send)
            return
        if credentials is None and path not in OPEN_PATHS:
            await _send_json(send, 401, docs_page.UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
            return
        unsafe = scope.get("method") not in session.SAFE_METHODS
        if credentials == "cookie" and unsafe and not session.same_origin(headers):
            await _send_json(send, 403, CROSS_ORIGIN, [])
            return
        if _hidden(path):
            await _send_json(send, 404, "Not Found", [])
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

    async def _page(
        self, scope: Scope, receive: Receive, send: _Answer, headers: dict[bytes, bytes], authorized: bool
    ) -> None:
        """Answer one of the docs page's paths (the page, the login form, a redirect)."""
        request = docs_page.PageRequest(
            method=str(scope.get("method", "")),
            path=str(scope.get("path", "")),
            headers=headers,
            https=session.is_https(str(scope.get("scheme", "http")), headers),
            authorized=authorized,
            token=self._token,
        )

        async def read_form() -> bytes | None:
            return await _read_body(receive, docs_page.MAX_FORM_BYTES)

        async def fetch_spec() -> dict[str, Any] | None:
            return await self._public_spec(scope)

        page = await docs_page.answer(request, read_form, fetch_spec)
        await send.page(page, head=request.method == "HEAD")

    async def _public_spec(self, scope: Scope) -> dict[str, Any] | None:
        """The public OpenAPI spec, asked of the app once per process (it does not change)."""
        if self._spec is None:
            body = await _internal_get(self.app, scope, "/docs.json")
            try:
                spec = json.loads(body) if body is not None else None
            except ValueError:
                spec = None
            if isinstance(spec, dict):
                self._spec = public_spec(spec)
        return self._spec

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

    ``reshape=False`` (the dashboard's pages) sends every answer as the app gave it, with the id.

    Error bodies are small (a few hundred bytes); a success streams through untouched, except the
    OpenAPI spec, which is rewritten without the routes this service turns off.
    """

    def __init__(self, send: Send, request_id: bytes, path: str, method: str, reshape: bool = True) -> None:
        self.send = send
        self.request_id = request_id
        self.path = path
        self.method = method
        self.reshape = reshape
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
            message = {**message, "headers": [*headers, (b"x-request-id", self.request_id)]}
            if not self.reshape or (message["status"] < 400 and self.path not in SPEC_PATHS):
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
            body = public_spec_bytes(body)
            start = _with_headers(start, body, None)
        await self.send(start)
        await self.send({"type": "http.response.body", "body": body})

    async def page(self, page: docs_page.Page, head: bool) -> None:
        """Send one of the docs page's answers as it is (its own headers, HTML kept), and log an error."""
        headers = [
            *page.headers,
            (b"content-length", str(len(page.body)).encode()),
            (b"x-request-id", self.request_id),
        ]
        await self.send({"type": "http.response.start", "status": page.status, "headers": headers})
        await self.send({"type": "http.response.body", "body": b"" if head else page.body})
        if page.status >= 400:
            self._log(page.status, error_body(page.status, ""))

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


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` when it is larger than ``limit`` or the client left."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _internal_get(app: ASGIApp, scope: Scope, path: str) -> bytes | None:
    """The body of ``GET path`` asked of ``app`` in-process (``None`` unless it answers 200)."""
    sub = {
        **scope,
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k, v) for k, v in scope.get("headers") or [] if k.lower() == b"host"],
    }
    asked = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal asked
        if asked:
            return {"type": "http.disconnect"}
        asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(sub, receive, send)
    return b"".join(chunks) if status == 200 else None
