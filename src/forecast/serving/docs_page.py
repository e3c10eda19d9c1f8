"""The service's own docs page and its login: HTML rendered on the server, nothing from elsewhere.

BentoML's index page loads Google Tag Manager, calls itself "BentoML Prediction Service" and, with
a token set, cannot be opened in a browser (which cannot send a bearer header). The guard answers
``/`` and ``/docs`` with :func:`render_docs` instead: every route of the (rewritten) OpenAPI spec
with its method, summary, request and response fields and a curl example, and every schema. The
page has no script at all; its one inline style carries a per-answer nonce and the
``Content-Security-Policy`` allows nothing else (no third-party request can be made from it).

With ``FORECAST_API_TOKEN`` set, a browser asking for HTML without credentials gets a login form
(401); ``POST /login`` with the token sets the session cookie of :mod:`forecast.web_session`
and ``POST /logout`` clears it. API clients without a token still get the JSON 401.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from forecast import web_session as session
from forecast.serving.errors import error_body
from forecast.serving.openapi import TITLE, example, resolve

DOC_PATHS = frozenset({"/", "/docs"})
LOGIN = "/login"
LOGOUT = "/logout"
PAGE_PATHS = DOC_PATHS | {LOGIN, LOGOUT}
"""Paths the guard answers with this module (BentoML's index page is never reached)."""
HIDDEN_PREFIXES = ("/static_content", "/assets")
"""BentoML's swagger UI and new-UI assets (they load Google Tag Manager): answered 404."""
MAX_FORM_BYTES = 4096
"""Largest login form accepted."""
UNAUTHORIZED = "unauthorized: send the header 'Authorization: Bearer <FORECAST_API_TOKEN>'"

_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:68rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
h1{margin-bottom:.2rem}h2{margin-top:2.4rem;border-top:1px solid #ccc;padding-top:1rem}
code,pre{font:13px ui-monospace,monospace;background:#f3f3f3}pre{padding:.6rem;overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.25rem .4rem;
text-align:left;vertical-align:top}th{background:#f7f7f7}.m{font-weight:700;margin-right:.4rem}
.note{color:#555}.err{color:#a00}form.inline{display:inline}nav li{margin:.1rem 0}
"""


@dataclass(frozen=True)
class Page:
    """One answer of this module: status, body and headers (``Content-Length`` is added on send)."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True)
class PageRequest:
    """What the pages need to know of a request.

    Attributes:
        method: The HTTP method.
        path: The path (one of :data:`PAGE_PATHS`).
        headers: The request's headers (lower-case names, the first of repeated ones).
        https: Whether the browser talks HTTPS (the cookie gets ``Secure``).
        authorized: Whether the request carries valid credentials (always, without a token).
        token: The service's token (``None``: the service is open).
    """

    method: str
    path: str
    headers: Mapping[bytes, bytes]
    https: bool
    authorized: bool
    token: bytes | None


ReadForm = Callable[[], Awaitable[bytes | None]]
FetchSpec = Callable[[], Awaitable[dict[str, Any] | None]]


async def answer(request: PageRequest, read_form: ReadForm, fetch_spec: FetchSpec) -> Page:
    """The answer to a request for one of :data:`PAGE_PATHS`.

    Args:
        request: The request.
        read_form: Reads the request's body (``None`` when larger than :data:`MAX_FORM_BYTES`).
        fetch_spec: The public OpenAPI spec (``None`` when it cannot be had).

    Returns:
        The page, a redirect or a JSON error.
    """
    if request.path == LOGOUT:
        if request.method != "POST":
            return _json(405, "use POST /logout")
        return _redirect("/", session.clear_cookie(request.https))
    if request.path == LOGIN:
        return await _login(request, read_form)
    if request.method not in session.SAFE_METHODS:
        return _json(405, f"use GET {request.path}")
    if not request.authorized:
        if _wants_html(request.headers):
            return _html(401, render_login(""), (b"www-authenticate", b"Bearer"))
        return _json(401, UNAUTHORIZED, (b"www-authenticate", b"Bearer"))
    spec = await fetch_spec()
    if spec is None:
        return _json(503, "the OpenAPI spec cannot be generated now; the error is in the server log")
    signed_in = request.token is not None
    return _html(200, render_docs(spec, _origin(request), signed_in))


async def _login(request: PageRequest, read_form: ReadForm) -> Page:
    if request.method in session.SAFE_METHODS:
        if request.token is None or request.authorized:
            return _redirect("/")
        return _html(200, render_login(""))
    if request.method != "POST":
        return _json(405, "use GET or POST /login")
    if request.token is None:
        return _redirect("/")
    if not session.same_origin(request.headers):
        return _html(403, render_login("Refused: log in from this service's own page."))
    form = await read_form()
    if form is None:
        return _html(413, render_login("The form is too large."))
    given = parse_qs(form.decode("utf-8", "replace"), max_num_fields=4).get("token", [""])[0]
    if not session.token_ok(given.encode(), request.token):
        return _html(401, render_login("Wrong token."), (b"www-authenticate", b"Bearer"))
    value = session.session_value(request.token)
    return _redirect("/", session.set_cookie(value, request.https))


def _wants_html(headers: Mapping[bytes, bytes]) -> bool:
    """Whether the client asks for HTML (a browser's navigation does; API clients do not)."""
    accept = headers.get(b"accept", b"").lower()
    return any(part.split(b";")[0].strip() == b"text/html" for part in accept.split(b","))


def _origin(request: PageRequest) -> str:
    """The service's address as the browser sees it (for the curl examples)."""
    host = request.headers.get(b"host", b"").decode("latin-1").strip()
    if not _HOST.fullmatch(host):
        host = "localhost:3000"
    return f"{'https' if request.https else 'http'}://{host}"


def _security_headers(nonce: str | None) -> list[tuple[bytes, bytes]]:
    style = f"'nonce-{nonce}'" if nonce else "'none'"
    policy = (
        f"default-src 'none'; style-src {style}; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    )
    return [
        (b"content-security-policy", policy.encode()),
        (b"referrer-policy", b"no-referrer"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-store"),
    ]


def _html(status: int, document: str, *extra: tuple[bytes, bytes]) -> Page:
    nonce = secrets.token_urlsafe(16)
    body = document.replace("{{NONCE}}", nonce).encode()
    headers = [(b"content-type", b"text/html; charset=utf-8"), *_security_headers(nonce), *extra]
    return Page(status, body, tuple(headers))


def _json(status: int, message: str, *extra: tuple[bytes, bytes]) -> Page:
    body = json.dumps(error_body(status, message)).encode()
    return Page(status, body, ((b"content-type", b"application/json"), *extra))


def _redirect(location: str, set_cookie: bytes | None = None) -> Page:
    headers = [(b"location", location.encode()), *_security_headers(None)]
    if set_cookie is not None:
        headers.append((b"set-cookie", set_cookie))
    return Page(303, b"", tuple(headers))


# --- rendering -------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _layout(title: str, body: str) -> str:
    """A whole page; ``{{NONCE}}`` is replaced per answer."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{_e(title)}</title>'
        f'<style nonce="{{{{NONCE}}}}">{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n'
    )


def render_login(message: str) -> str:
    """The login form (``message``: why the last attempt failed, or empty)."""
    note = f'<p class="err" role="alert">{_e(message)}</p>' if message else ""
    body = (
        f"<h1>{_e(TITLE)}</h1><p>This service needs its token (<code>FORECAST_API_TOKEN</code>).</p>{note}"
        f'<form method="post" action="{LOGIN}"><label>Token <input type="password" name="token" '
        'autocomplete="current-password" required autofocus></label> <button type="submit">Log in</button>'
        '</form><p class="note">API clients send '
        "<code>Authorization: Bearer &lt;token&gt;</code> instead.</p>"
    )
    return _layout(f"{TITLE}: log in", body)


def render_docs(spec: dict[str, Any], origin: str, signed_in: bool) -> str:
    """The docs page of a (public) OpenAPI spec.

    Args:
        spec: The spec, as :func:`forecast.serving.openapi.public_spec` returns it.
        origin: The service's address for the curl examples (``http://host:port``).
        signed_in: Whether the service has a token (the page shows the header and a logout button).

    Returns:
        The HTML document (``{{NONCE}}`` still to be replaced).
    """
    routes = _operations(spec)
    info = spec.get("info", {})
    logout = (
        f'<form class="inline" method="post" action="{LOGOUT}"><button type="submit">Log out</button></form>'
        if signed_in
        else ""
    )
    index = "".join(
        f'<li><a href="#{_anchor(m, p)}"><span class="m">{_e(m.upper())}</span>{_e(p)}</a> '
        f"{_e(op.get('summary', ''))}</li>"
        for p, m, op in routes
    )
    parts = [
        f'<h1>{_e(TITLE)}</h1><p class="note">version {_e(info.get("version", ""))} {logout}</p>',
        f"<p>{_e(info.get('description', ''))}</p>",
        f'<nav><h2>Routes</h2><ul>{index}</ul><p><a href="/docs.json">OpenAPI spec (JSON)</a> · '
        '<a href="#schemas">Schemas</a></p></nav>',
        *(_route(spec, p, m, op, origin, signed_in) for p, m, op in routes),
        _schemas(spec),
    ]
    return _layout(TITLE, "\n".join(parts))


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(path, method, operation)``: the service's routes first, the health probes last."""
    found = [
        (path, method, op)
        for path, ops in (spec.get("paths") or {}).items()
        if isinstance(ops, dict)
        for method, op in ops.items()
        if isinstance(op, dict)
    ]
    return sorted(found, key=lambda r: "Infrastructure" in (r[2].get("tags") or []))


def _anchor(method: str, path: str) -> str:
    return f"{method}-{re.sub(r'[^A-Za-z0-9]+', '-', path).strip('-') or 'root'}"


def _route(spec: dict[str, Any], path: str, method: str, op: dict[str, Any], origin: str, auth: bool) -> str:
    description = re.sub(r"<[^>]+>", "", str(op.get("description") or ""))
    body_schema = (
        ((op.get("requestBody") or {}).get("content") or {}).get("application/json", {}).get("schema")
    )
    parts = [
        f'<section id="{_anchor(method, path)}"><h2><span class="m">{_e(method.upper())}</span>'
        f"<code>{_e(path)}</code></h2><p><strong>{_e(op.get('summary', ''))}</strong></p>",
        f"<p>{_e(description)}</p>" if description.rstrip(".") != op.get("summary", "") else "",
    ]
    if body_schema is not None:
        parts.append("<h3>Request body</h3>" + _fields(spec, body_schema))
    parts.append(_responses(spec, op))
    auth = auth and "Infrastructure" not in (op.get("tags") or [])  # the health probes are open
    parts.append(
        "<h3>Example</h3><pre>" + _e(_curl(spec, path, method, body_schema, origin, auth)) + "</pre>"
    )
    return "".join(parts) + "</section>"


def _responses(spec: dict[str, Any], op: dict[str, Any]) -> str:
    rows = []
    for status, response in sorted((op.get("responses") or {}).items()):
        schema = ((response or {}).get("content") or {}).get("application/json", {}).get("schema")
        rows.append(f"<h4>{_e(status)} {_e((response or {}).get('description', ''))}</h4>")
        if schema is not None:
            rows.append(_fields(spec, schema))
    return "<h3>Responses</h3>" + "".join(rows)


def _fields(spec: dict[str, Any], schema: Any) -> str:
    """A schema as a table of its fields (or one line when it has none)."""
    if isinstance(schema, dict) and "$ref" in schema:
        return f"<p>{_type(schema)}</p>"
    resolved = resolve(spec, schema)
    props = resolved.get("properties") or {}
    if not props:
        label = _type(resolved) if resolved else "JSON object (see the description)"
        return f"<p>{label}</p>"
    required = set(resolved.get("required", []))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_type(field)}</td>"
        f"<td>{'yes' if name in required else ''}</td>"
        f"<td>{_e(_constraints(field))}</td><td>{_e(field.get('description', ''))}</td></tr>"
        for name, field in props.items()
        if isinstance(field, dict)
    )
    choices: list[list[str]] = [
        list(s["required"]) for s in resolved.get("oneOf", []) if isinstance(s, dict) and s.get("required")
    ]
    note = (
        "<p>Send exactly one of: " + ", ".join(f"<code>{_e(', '.join(c))}</code>" for c in choices) + ".</p>"
        if choices
        else ""
    )
    head = "<tr><th>field</th><th>type</th><th>required</th><th>constraints</th><th>description</th></tr>"
    return f"{note}<table>{head}{rows}</table>"


def _type(schema: Any) -> str:
    """A field's type in words, with links to named schemas (HTML)."""
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    for key in ("anyOf", "oneOf"):
        subs = [s for s in schema.get(key, []) if isinstance(s, dict) and not set(s) <= {"required"}]
        if subs:
            return " or ".join(_type(s) for s in subs)
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{_e(json.dumps(v))}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{_e(json.dumps(schema['const']))}</code>"
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_e(k) for k in kind)
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "object of " + _type(schema["additionalProperties"])
    if kind is None:
        return "any"
    return _e(f"{kind} ({schema['format']})" if schema.get("format") else kind)


_BOUNDS = (
    ("minimum", "≥ {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "≤ {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("minItems", "at least {} items"),
    ("maxItems", "at most {} items"),
    ("pattern", "matches {}"),
)


def _constraints(schema: dict[str, Any]) -> str:
    """A field's bounds in words (also those inside an ``anyOf``'s branches)."""
    branches = [schema, *(s for s in schema.get("anyOf", []) if isinstance(s, dict))]
    said = [text.format(b[key]) for b in branches for key, text in _BOUNDS if key in b]
    if schema.get("default") is not None:
        said.append(f"default {json.dumps(schema['default'])}")
    return "; ".join(dict.fromkeys(said))


def _curl(spec: dict[str, Any], path: str, method: str, schema: Any, origin: str, auth: bool) -> str:
    verb = "" if method.upper() == "GET" else f" -X {method.upper()}"
    lines = [f"curl -s{verb} '{origin}{path}'"]
    if auth:
        lines.append('-H "Authorization: Bearer $FORECAST_API_TOKEN"')
    if schema is not None:
        body = json.dumps(example(spec, schema)).replace("'", "'\\''")
        lines += ["-H 'Content-Type: application/json'", f"-d '{body}'"]
    return " \\\n     ".join(lines)


def _schemas(spec: dict[str, Any]) -> str:
    schemas = (spec.get("components") or {}).get("schemas") or {}
    parts = [
        f'<section id="schema-{_e(name)}"><h3>{_e(name)}</h3>'
        f"<p>{_e(schema.get('description', ''))}</p>{_fields(spec, schema)}</section>"
        for name, schema in sorted(schemas.items())
        if isinstance(schema, dict)
    ]
    return '<h2 id="schemas">Schemas</h2>' + "".join(parts)
