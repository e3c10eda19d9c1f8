"""Browser sessions of the service: a signed cookie instead of the token, and a same-origin rule.

A browser cannot send ``Authorization: Bearer``, so ``POST /login`` takes the token in a form and
sets :data:`COOKIE`. The cookie holds an expiry and an HMAC of it, never the token: the key is
derived from the token (HMAC-SHA256 of a fixed label), so every worker process checks a cookie
another worker set, rotating the token ends every session, and a stolen cookie reveals nothing
that works as a bearer header and stops working after :data:`SESSION_SECONDS`. (A random
per-process key would log a browser out whenever its next request reached the other worker.)

A cookie rides along with any request the browser makes, so a state-changing request (any method
but GET and HEAD) authenticated by the cookie must show it comes from the service's own pages:
:func:`same_origin`. A request with the bearer header needs no such proof (a page of another
origin cannot set that header without a CORS preflight, which the service never grants).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

COOKIE = "forecast_session"
"""The session cookie's name."""
SESSION_SECONDS = 12 * 3600
"""How long a login lasts (the cookie's ``Max-Age`` and the signed expiry)."""
_LABEL = b"forecast-session-v1"
_VERSION = "v1"

SAFE_METHODS = frozenset({"GET", "HEAD"})
"""Methods that change nothing: a cookie alone is enough for them."""


def token_ok(given: bytes, token: bytes) -> bool:
    """Whether ``given`` (surrounding whitespace dropped) is ``token``, in constant time.

    ``hmac.compare_digest`` on the whole value: its time does not depend on where the bytes differ.
    """
    return hmac.compare_digest(given.strip(), token)


def _key(token: bytes) -> bytes:
    return hmac.new(token, _LABEL, hashlib.sha256).digest()


def _mac(token: bytes, expiry: int) -> str:
    return hmac.new(_key(token), f"{_VERSION}.{expiry}".encode(), hashlib.sha256).hexdigest()


def session_value(token: bytes, now: float | None = None) -> str:
    """A new session cookie's value: ``v1.<expiry>.<hmac>`` (no token inside).

    Args:
        token: The service's token (the key is derived from it).
        now: The current time in seconds (default: the clock).

    Returns:
        The value to set.
    """
    expiry = int(time.time() if now is None else now) + SESSION_SECONDS
    return f"{_VERSION}.{expiry}.{_mac(token, expiry)}"


def session_ok(value: str, token: bytes, now: float | None = None) -> bool:
    """Whether a cookie value is a session signed for ``token`` that has not expired."""
    version, _, rest = value.partition(".")
    stamp, _, mac = rest.partition(".")
    if version != _VERSION or not stamp.isdigit() or len(stamp) > 12:
        return False
    expiry = int(stamp)
    if expiry <= (time.time() if now is None else now):
        return False
    return hmac.compare_digest(mac.encode(), _mac(token, expiry).encode())


def cookie(header: bytes, name: str = COOKIE) -> str | None:
    """The first value of cookie ``name`` in a ``Cookie`` header (``None`` when absent)."""
    for part in header.decode("latin-1").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def same_origin(headers: Mapping[bytes, bytes]) -> bool:
    """Whether a browser request comes from the service's own pages.

    ``Sec-Fetch-Site: same-origin`` when the browser sends that header; otherwise an ``Origin``
    whose host and port equal the ``Host`` header. A request with neither is refused: every
    current browser sends ``Origin`` with a POST, and other clients use the bearer header.
    """
    site = headers.get(b"sec-fetch-site")
    if site is not None:
        return site.strip().lower() == b"same-origin"
    origin = headers.get(b"origin", b"").strip()
    host = headers.get(b"host", b"").strip().lower()
    if not origin or origin == b"null" or not host:
        return False
    parts = urlsplit(origin.decode("latin-1"))
    return parts.scheme in ("http", "https") and parts.netloc.lower().encode("latin-1") == host


def set_cookie(value: str, secure: bool) -> bytes:
    """The ``Set-Cookie`` header of a new session (``Secure`` over HTTPS)."""
    flags = f"; Max-Age={SESSION_SECONDS}; Path=/; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    return f"{COOKIE}={value}{flags}".encode()


def clear_cookie(secure: bool) -> bytes:
    """The ``Set-Cookie`` header that ends a session in the browser."""
    return f"{COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict{'; Secure' if secure else ''}".encode()


def is_https(scheme: str, headers: Mapping[bytes, bytes]) -> bool:
    """Whether the browser talks HTTPS: to this server, or to a proxy that says so.

    ``X-Forwarded-Proto`` is trusted only to add ``Secure``: a client that lies about it only
    gets a cookie its browser will not send back over plain HTTP.
    """
    forwarded = headers.get(b"x-forwarded-proto", b"").split(b",")[0].strip().lower()
    return scheme == "https" or forwarded == b"https"
