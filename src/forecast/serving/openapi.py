"""The service's OpenAPI spec as clients see it: BentoML's, with its internals taken out.

BentoML 1.4.40 generates ``/docs.json`` with its own README as the description (badges and links
to shields.io, Slack, Twitter), its team as the contact, the request and response models named
``...IODescriptor`` (its wrapper classes), ``{"error", "detail"}`` as the error bodies (the guard
answers another shape) and the ``/metrics`` route this service turns off. :func:`public_spec`
rewrites all of that; the guard applies it to ``/docs.json`` and the docs page renders from it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from forecast import __version__

TITLE = "forecast API"
DESCRIPTION = (
    "Lead scores, deal win probabilities, close dates, flags and revenue forecasts of the CRM's "
    "records. With FORECAST_API_TOKEN set, send 'Authorization: Bearer <token>' (the health probes "
    "are open). Every error answer is {code, message, errors: [{path, rule}]}."
)
HIDDEN_ROUTES = ("/metrics",)
"""Routes BentoML advertises that this service turns off."""
_WRAPPER = re.compile(r"IODescriptor$")
_BENTOML_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError")
_UNUSED = ("TaskStatusResponse",)
"""BentoML's schema of task routes, which this service does not have."""
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Error",
    "required": ["code", "message", "errors"],
    "properties": {
        "code": {"type": "string", "description": "Stable: invalid_request, unauthorized, not_found, ..."},
        "message": {"type": "string", "description": "What went wrong, for people."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
                    "rule": {"type": "string"},
                },
            },
            "description": "One entry per field at fault: its path and the rule it broke.",
        },
    },
}
"""The one error body of :mod:`forecast.serving.errors`."""
_ERROR_RESPONSES = {
    "400": "Invalid request: the field paths and the rules they broke",
    "401": "No or a wrong token (FORECAST_API_TOKEN is set)",
    "403": "A cookie-authenticated request from another origin",
    "413": "Body larger than FORECAST_MAX_BODY_BYTES",
    "415": "Body not application/json",
    "422": "Valid, but not answerable (see the message)",
    "500": "Internal error (details in the server log only)",
    "503": "Model not loaded, or the warehouse busy or missing",
}
"""The error answers of a POST route (each with :data:`ERROR_SCHEMA`); ``/admin/reload`` adds 404."""
_GET_ERRORS = {
    "400": "Invalid parameter (as_of, entity): its name and the rule it broke",
    "401": _ERROR_RESPONSES["401"],
    "422": "Not answerable: served without --warehouse, a model not trained on the warehouse, no dated event",
    "500": _ERROR_RESPONSES["500"],
    "503": _ERROR_RESPONSES["503"],
}
"""The error answers of a GET route by record id (404 is declared by the route)."""
_FASTAPI_ERRORS = ("HTTPValidationError", "ValidationError")
"""FastAPI's 422 schemas, which the guard's answers replace (:data:`ERROR_SCHEMA`)."""
_TAGS = {
    "Service APIs": "Scores, close dates, flags, revenue forecasts and model reloads.",
    "Infrastructure": "Health probes (open without a token).",
}


def public_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec without BentoML's internals (the argument is not changed).

    Args:
        spec: BentoML's OpenAPI document.

    Returns:
        A copy with the project's title and description, without :data:`HIDDEN_ROUTES`, with the
        request and response models under their own names, :data:`ERROR_SCHEMA` as every error
        body and a ``summary`` on every operation.
    """
    out: dict[str, Any] = _renamed(json.loads(json.dumps(spec)))
    out["info"] = {"title": TITLE, "version": __version__, "description": DESCRIPTION}
    paths: dict[str, Any] = out["paths"] if isinstance(out.get("paths"), dict) else {}
    for route in HIDDEN_ROUTES:
        paths.pop(route, None)
    for operations in paths.values():
        for operation in operations.values() if isinstance(operations, dict) else ():
            if not isinstance(operation, dict):
                continue
            if not operation.get("summary"):
                operation["summary"] = _first_sentence(str(operation.get("description") or ""))
            if "requestBody" in operation:
                operation["responses"] = _with_our_errors(operation.get("responses") or {})
            elif operation.get("parameters"):  # the GET routes by record id
                operation["responses"] = _with_our_errors(operation.get("responses") or {}, _GET_ERRORS)
    out["tags"] = [{"name": n, "description": d} for n, d in _TAGS.items()]
    schemas = out.setdefault("components", {}).setdefault("schemas", {})
    for name in (*_BENTOML_ERRORS, *_UNUSED, *_FASTAPI_ERRORS):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    return _errors_as_ours(out)


def public_spec_bytes(body: bytes) -> bytes:
    """:func:`public_spec` of a JSON body (unchanged if it is not a JSON object)."""
    try:
        spec = json.loads(body)
    except ValueError:
        return body
    return json.dumps(public_spec(spec)).encode() if isinstance(spec, dict) else body


def _renamed(node: Any) -> Any:
    """``node`` with BentoML's wrapper suffix dropped from titles, schema names and references."""
    if isinstance(node, list):
        return [_renamed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if isinstance(value, str) and key in ("title", "$ref"):
            value = _WRAPPER.sub("", value)
        out[_WRAPPER.sub("", key) if isinstance(key, str) else key] = _renamed(value)
    return out


def _errors_as_ours(node: Any) -> Any:
    """``node`` with references to BentoML's error schemas pointing at :data:`ERROR_SCHEMA`."""
    if isinstance(node, list):
        return [_errors_as_ours(v) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.rsplit("/", 1)[-1] in _BENTOML_ERRORS:
        return {**node, "$ref": "#/components/schemas/Error"}
    return {k: _errors_as_ours(v) for k, v in node.items()}


def _with_our_errors(responses: dict[str, Any], errors: dict[str, str] | None = None) -> dict[str, Any]:
    """A route's responses: its success and 404 as declared, every error the guard answers.

    ``errors``: the statuses and their descriptions (default: a POST route's).
    """
    ref = {"$ref": "#/components/schemas/Error"}
    content = {"application/json": {"schema": ref}}
    out = {k: v for k, v in responses.items() if k.startswith("2")}
    if "404" in responses:
        out["404"] = {"description": responses["404"].get("description", "Not found"), "content": content}
    for status, description in (_ERROR_RESPONSES if errors is None else errors).items():
        out[status] = {"description": description, "content": content}
    return dict(sorted(out.items()))


def _first_sentence(text: str) -> str:
    text = re.sub(r"<[^>]+>", "", text).strip()
    head = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    return head.rstrip(".")


def resolve(spec: dict[str, Any], schema: Any) -> dict[str, Any]:
    """``schema`` with a top-level ``$ref`` followed (an empty schema for anything unknown)."""
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 10:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        schema = spec.get("components", {}).get("schemas", {}).get(name, {})
        seen += 1
    return schema if isinstance(schema, dict) else {}


def example(spec: dict[str, Any], schema: Any, name: str = "", depth: int = 0) -> Any:
    """A small valid value of ``schema``: only required fields (and one of a ``oneOf``'s choices).

    Args:
        spec: The spec (for ``$ref``).
        schema: The schema.
        name: The field's name (an ``..._id`` gets an id-like string).
        depth: Nesting depth (bounded: a recursive schema ends in ``null``).

    Returns:
        A JSON value.
    """
    schema = resolve(spec, schema)
    if depth > 6:
        return None
    if "example" in schema:
        return schema["example"]
    if schema.get("default") is not None:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    choices = [s for s in schema.get("anyOf", []) if resolve(spec, s).get("type") != "null"]
    if choices and "type" not in schema:
        return example(spec, choices[0], name, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return _example_object(spec, schema, depth)
    if kind == "array":
        return [example(spec, schema.get("items", {}), name, depth + 1)]
    return _example_scalar(kind, schema, name)


def _example_object(spec: dict[str, Any], schema: dict[str, Any], depth: int) -> dict[str, Any]:
    required = list(schema.get("required", []))
    one_of = [s for s in schema.get("oneOf", []) if isinstance(s, dict) and s.get("required")]
    if one_of:
        required += [r for r in one_of[0]["required"] if r not in required]
    props = schema.get("properties", {})
    return {k: example(spec, props.get(k, {}), k, depth + 1) for k in required}


def _example_scalar(kind: Any, schema: dict[str, Any], name: str) -> Any:
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(max(1, schema.get("minimum", 1)))
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return "2026-01-05T00:00:00Z"
    return f"{name[:1].upper() or 'X'}-1" if name.endswith("_id") else "text"
