"""The dashboard's links under a mount point: an ASGI middleware that roots them at ``root_path``.

The pages link to their own paths (``href="/reps"``, ``action="/login"``, redirects to
``/login``), which is right when the dashboard is its own site (``forecast dashboard``). Mounted
under the HTTP service at ``/dashboard``, the same links must start with the mount point, which
Starlette's ``Mount`` passes as ``scope["root_path"]``. Rather than thread a prefix through every
page function, this middleware rewrites what leaves the app: ``Location`` headers and the
``href="/``, ``action="/`` and ``src="/`` attributes of HTML bodies get the prefix (a link that
already starts with it is left alone). With no ``root_path`` it passes everything through untouched.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LINK = re.compile(rb'\b(href|action|src)="(/[^"]*)"')
"""A link attribute whose value is a path on this site."""


def root_link(value: bytes, root: bytes) -> bytes:
    """``value`` (a path on this site) under ``root``; other values (``//host``, already rooted) as given."""
    if not value.startswith(b"/") or value.startswith(b"//"):
        return value
    if value == root or value.startswith(root + b"/") or value.startswith(root + b"?"):
        return value
    return root + value


def root_html(body: bytes, root: bytes) -> bytes:
    """Every site-relative ``href``, ``action`` and ``src`` of ``body`` under ``root``."""
    return _LINK.sub(lambda m: m[1] + b'="' + root_link(m[2], root) + b'"', body)


class RootedLinks:
    """Root the app's links and redirects at the request's ``root_path`` (see the module).

    Args:
        app: The dashboard's ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; root the answer's links when the app is mounted."""
        root = str(scope.get("root_path", "")).rstrip("/").encode("latin-1")
        if scope["type"] != "http" or not root:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rooted(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = [
                    (k, root_link(v, root) if k.lower() == b"location" else v)
                    for k, v in message.get("headers", [])
                ]
                start = {**message, "headers": headers}
                if not any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in headers):
                    await send(start)
                    start = None  # not HTML: the body goes through as it comes
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = root_html(b"".join(chunks), root)
            headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, rooted)
