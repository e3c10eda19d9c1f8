"""One shape for every error answer of the service, and one log line per 4xx.

Every 4xx/5xx body is ``{"code", "message", "errors": [{"path", "rule"}]}``: ``code`` is stable
(``invalid_request``, ``unauthorized``, ``warehouse_busy``, …), ``message`` is for people, and each
entry of ``errors`` names a field by its path (``["leads", 3, "amount"]``) and the rule it broke
(pydantic's error type: ``missing``, ``greater_than_equal``, ``extra_forbidden``, …). Bodies from
BentoML or Starlette (pydantic's ``url`` with its version, the request model's class name,
``{"detail": "Not Found"}``) are rewritten to it by :class:`forecast.serving.guard.GuardMiddleware`,
which also logs the one line; input values are never echoed or logged. No body names an internal
class: BentoML wraps each request model in a class named ``<Model>IODescriptor`` and titles its
pydantic errors with it ("1 validation error for LeadScoreRequestIODescriptor"), and pydantic's
messages and union locations can name classes; :func:`scrub` and :func:`_path` take them out.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.responses import JSONResponse

from forecast.errors import truncate

log = logging.getLogger(__name__)

CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "not_servable",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}
"""The default ``code`` of a status (a route may give a more precise one, e.g. ``warehouse_busy``)."""


def error_body(
    status: int, message: str, errors: list[dict[str, Any]] | None = None, code: str | None = None
) -> dict[str, Any]:
    """The error document.

    Args:
        status: The HTTP status (gives the default ``code``).
        message: What went wrong, for people (bounded to 500 characters).
        errors: ``{"path": [...], "rule": "..."}`` per field at fault.
        code: A stable code (default: from the status).

    Returns:
        ``{"code", "message", "errors"}``.
    """
    return {
        "code": code or CODES.get(status, "error" if status < 500 else "internal_error"),
        "message": truncate(message, 500),
        "errors": list(errors or []),
    }


def error_response(
    status: int,
    message: str,
    loc: list[str | int] | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    rule: str | None = None,
) -> JSONResponse:
    """An error answer of a route: :func:`error_body` with one entry for the field at ``loc``.

    Args:
        status: The HTTP status.
        message: What went wrong, for people.
        loc: The path of the field (or parameter) at fault, if one is.
        code: A stable code (default: from the status).
        headers: Extra headers (``Retry-After``).
        rule: The rule the field broke (default: ``code``, else ``refused``).
    """
    errors = [{"path": loc, "rule": rule or code or "refused"}] if loc else []
    return JSONResponse(error_body(status, message, errors, code), status_code=status, headers=headers)


RETRY_AFTER_SECONDS = 5
"""What a 503 for a busy warehouse tells the client to wait (an import usually takes seconds)."""


def warehouse_error(exc: Exception) -> JSONResponse:
    """A 503 for a warehouse that cannot be read now: a stable code and message, no internals.

    The detail (path, PID, DuckDB's class and text) is logged on one line, never sent: it names
    the server's files and processes.
    """
    from forecast.data.warehouse import WarehouseBusyError

    if isinstance(exc, WarehouseBusyError):
        log.warning("warehouse busy: held by PID %s", exc.pid)
        return error_response(
            503,
            "the warehouse is in use by another process (an import?); try again shortly",
            code="warehouse_busy",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, FileNotFoundError):
        log.warning("warehouse missing: %s", exc)
        return error_response(
            503, "the warehouse has no data yet (run forecast ingest)", code="warehouse_missing"
        )
    log.warning("warehouse unreadable: %s: %s", type(exc).__name__, exc)
    return error_response(
        503,
        "the warehouse cannot be read now; try again shortly",
        code="warehouse_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


_WRAPPER = re.compile(r"\b\w*IODescriptor\b")
_TITLED = re.compile(r"\b(validation errors?) for \w+")
_OR_INSTANCE = re.compile(r",? or (an )?instance of \w+")
_INSTANCE = re.compile(r"\b(an )?instance of \w+")


def scrub(text: str) -> str:
    """``text`` without internal class names (BentoML's wrappers, pydantic's model titles).

    Args:
        text: A message from BentoML, Starlette or pydantic.

    Returns:
        The message with "validation error for <Class>" as "validation error in the request",
        "... or instance of <Class>" cut (a lone "an instance of <Class>" becomes "an object of the
        documented schema"), and any remaining ``...IODescriptor`` as "request".
    """
    text = _TITLED.sub(r"\1 in the request", text)
    text = _INSTANCE.sub("an object of the documented schema", _OR_INSTANCE.sub("", text))
    return _WRAPPER.sub("request", text)


def _internal(part: str) -> bool:
    """A location element that is not a field: BentoML's wrapper or pydantic's union tag."""
    return bool(_WRAPPER.fullmatch(part)) or "[" in part


def _path(loc: Any) -> list[str | int]:
    if not isinstance(loc, (list, tuple)):
        loc = [] if loc is None else [loc]
    return [p if isinstance(p, int) else str(p) for p in loc if isinstance(p, int) or not _internal(str(p))]


def _from_pydantic(detail: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """Message and field errors from pydantic's ``errors()`` (without inputs, URLs or class names)."""
    errors: list[dict[str, Any]] = []
    said: list[str] = []
    for item in detail:
        if not isinstance(item, dict):
            continue
        path = _path(item.get("loc"))
        if path and path[0] == "body":  # FastAPI's prefix
            path = path[1:]
        errors.append({"path": path, "rule": str(item.get("type") or "invalid")})
        msg = scrub(str(item.get("msg") or "invalid"))
        said.append(f"{'.'.join(map(str, path)) or 'body'}: {truncate(msg, 120)}")
    message = "; ".join(said[:5]) + (f"; and {len(said) - 5} more" if len(said) > 5 else "")
    return message or "the request does not match the schema", errors


def normalise(status: int, body: bytes) -> dict[str, Any]:
    """Rewrite any error body (ours, BentoML's, Starlette's) to :func:`error_body`'s shape.

    Args:
        status: The response's status.
        body: The response's body.

    Returns:
        The document in the one shape. Ours pass unchanged; pydantic's detail list becomes
        ``errors``; anything else keeps only a message (a 5xx keeps none of its text: it may name
        internals).
    """
    try:
        data: Any = json.loads(body) if body else {}
    except ValueError:  # plain text (Starlette's "Not Found"): kept as the message if short
        text = body.decode("utf-8", "replace").strip()
        data = {"error": text} if 0 < len(text) <= 200 else {}
    if isinstance(data, list) and len(data) == 1:  # BentoML answers some 4xx as a one-item list
        data = data[0]
    if not isinstance(data, dict):
        data = {}
    if {"code", "message", "errors"} <= data.keys():
        return data
    if status >= 500:
        return error_body(status, "the service failed to answer; the error is in its log")
    detail = data.get("detail")
    if isinstance(detail, list) and detail and all(isinstance(d, dict) for d in detail):
        message, errors = _from_pydantic(detail)
        return error_body(status, message, errors)
    said = data.get("error") or data.get("message") or (detail if isinstance(detail, str) else None)
    return error_body(status, scrub(str(said)) if said else f"HTTP {status}")


class ClientErrorFilter(logging.Filter):
    """Drop BentoML's ERROR traceback of a request error that is the client's fault.

    BentoML 1.4 logs ``Exception on /route [POST]`` with the whole traceback (pydantic's, input
    values included) for every 400; the guard logs one line instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but those carrying a pydantic ``ValidationError`` or a 4xx exception."""
        if not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):
            return False
        status = getattr(getattr(exc, "error_code", None), "value", None)
        return not (isinstance(status, int) and 400 <= status < 500)


BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"
"""The logger of BentoML's ``log_exception`` (checked for the pinned 1.4.40)."""


REQUEST_LOGGER = "forecast.serving.requests"
"""The guard's logger: one INFO line per error answer."""


def quiet_client_errors() -> None:
    """Install :class:`ClientErrorFilter` on BentoML's request-error logger (idempotent).

    Also lets the guard's one-line records through: BentoML's server logging sets the root logger
    to WARNING, which would hide them.
    """
    logger = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())
    logging.getLogger(REQUEST_LOGGER).setLevel(logging.INFO)
