"""The service's own docs page, its login and session cookie, and the public spec (issue 17 item 8)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from forecast import web_session as session
from forecast.serving.docs_page import render_docs
from forecast.serving.errors import normalise
from forecast.serving.guard import GuardMiddleware
from forecast.serving.openapi import public_spec

TOKEN = "t0k-for-tests"
ORIGIN = "http://testserver"
HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}

BENTOML_SPEC: dict[str, Any] = {
    "openapi": "3.0.2",
    "info": {
        "title": "forecast",
        "version": "None",
        "description": "[![pypi](https://img.shields.io/badge/BentoML)](https://pypi.org/project/BentoML)",
        "contact": {"name": "BentoML Team", "email": "contact@bentoml.com"},
    },
    "servers": [{"url": "."}],
    "tags": [{"name": "Service APIs", "description": "BentoML Service API endpoints for inference."}],
    "paths": {
        "/metrics": {"get": {"tags": ["Infrastructure"], "responses": {"200": {"description": "ok"}}}},
        "/livez": {
            "get": {"tags": ["Infrastructure"], "description": "Health <code>200</code>.", "responses": {}}
        },
        "/lead_score": {
            "post": {
                "tags": ["Service APIs"],
                "description": "Conversion probability of one lead or a list.",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "title": "LeadScoreRequestIODescriptor",
                                "oneOf": [{"required": ["lead"]}, {"required": ["leads"]}],
                                "properties": {
                                    "lead": {"default": None, "$ref": "#/components/schemas/LeadRecord"},
                                    "leads": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/LeadRecord"},
                                        "maxItems": 1000,
                                    },
                                },
                            }
                        }
                    }
                },
                "responses": {
                    "200": {
                        "description": "Successful Response",
                        "content": {
                            "application/json": {"schema": {"title": "LeadScoreResponseIODescriptor"}}
                        },
                    },
                    "400": {
                        "description": "Bad Request",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/InvalidArgument"}}
                        },
                    },
                },
            }
        },
        "/model_info": {"get": {"summary": "The served models", "responses": {}}},
    },
    "components": {
        "schemas": {
            "LeadRecord": {
                "type": "object",
                "required": ["lead_id"],
                "properties": {
                    "lead_id": {"type": "string", "maxLength": 200},
                    "employees": {"anyOf": [{"type": "number", "minimum": 0}, {"type": "null"}]},
                },
            },
            "InvalidArgument": {"type": "object", "properties": {"error": {"type": "string"}}},
            "TaskStatusResponse": {"type": "object"},
        }
    },
}

HANDLED: list[str] = []


async def _spec(request: Request) -> JSONResponse:
    return JSONResponse(BENTOML_SPEC)


async def _x(request: Request) -> JSONResponse:
    HANDLED.append(request.method)
    return JSONResponse({"ok": True})


async def _bentoml_index(request: Request) -> Response:
    return Response("<script>GTM-WNPGWRM googletagmanager</script>", media_type="text/html")


def _client(monkeypatch: pytest.MonkeyPatch, token: str | None = TOKEN) -> TestClient:
    if token is None:
        monkeypatch.delenv("FORECAST_API_TOKEN", raising=False)
    else:
        monkeypatch.setenv("FORECAST_API_TOKEN", token)
    monkeypatch.setenv("FORECAST_MAX_BODY_BYTES", "10000")
    static = Starlette(routes=[Route("/swagger-ui.css", _bentoml_index)])
    routes = [
        Route("/", _bentoml_index),
        Route("/docs.json", _spec),
        Route("/x", _x, methods=["GET", "POST"]),
        Mount("/static_content", app=static),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(GuardMiddleware)
    return TestClient(app, follow_redirects=False)


def _login(client: TestClient, token: str = TOKEN, **headers: str) -> Any:
    return client.post("/login", data={"token": token}, headers={"Origin": ORIGIN, **headers})


def test_a_browser_without_credentials_gets_the_login_form_and_api_clients_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client(monkeypatch)
    form = client.get("/", headers=HTML)
    assert form.status_code == 401 and form.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/login">' in form.text and 'name="token"' in form.text
    assert "googletagmanager" not in form.text and "content-security-policy" in form.headers
    api = client.get("/")
    assert api.status_code == 401 and api.json()["code"] == "unauthorized"
    assert api.headers["www-authenticate"] == "Bearer"
    assert client.get("/docs.json", headers=HTML).json()["code"] == "unauthorized"
    assert client.get("/login").status_code == 200


def test_login_sets_a_signed_http_only_strict_cookie_that_opens_the_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _client(monkeypatch)
    done = _login(client, f" {TOKEN}\n")  # pasted with whitespace: as the bearer header
    assert done.status_code == 303 and done.headers["location"] == "/"
    cookie = done.headers["set-cookie"]
    assert cookie.startswith(f"{session.COOKIE}=v1.") and TOKEN not in cookie
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/", f"Max-Age={session.SESSION_SECONDS}"):
        assert flag in cookie, flag
    assert "Secure" not in cookie  # plain HTTP: the browser would never send it back
    page = client.get("/", headers=HTML)
    assert page.status_code == 200 and "<title>forecast API</title>" in page.text
    assert "Log out" in page.text
    assert client.get("/docs.json").json()["info"]["title"] == "forecast API"
    assert client.get("/x").status_code == 200
    assert client.get("/login").status_code == 303  # already in


def test_https_gets_a_secure_cookie(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch)
    assert "; Secure" in _login(client, **{"X-Forwarded-Proto": "https"}).headers["set-cookie"]


@pytest.mark.parametrize(
    ("token", "headers", "status"),
    [
        ("wrong", {"Origin": ORIGIN}, 401),
        (TOKEN[:-1], {"Origin": ORIGIN}, 401),
        (TOKEN, {"Origin": "http://evil.example"}, 403),
        (TOKEN, {"Sec-Fetch-Site": "cross-site", "Origin": ORIGIN}, 403),
        (TOKEN, {}, 403),  # no proof of origin at all
    ],
)
def test_a_wrong_token_or_another_origin_gets_no_cookie(
    monkeypatch: pytest.MonkeyPatch, token: str, headers: dict[str, str], status: int
) -> None:
    client = _client(monkeypatch)
    refused = client.post("/login", data={"token": token}, headers=headers)
    assert refused.status_code == status and "set-cookie" not in refused.headers
    assert '<form method="post"' in refused.text
    assert client.get("/x").status_code == 401


def test_a_large_login_form_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = _login(_client(monkeypatch), "x" * 5_000)
    assert answer.status_code == 413 and "set-cookie" not in answer.headers


def test_cookie_posts_must_come_from_the_same_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch)
    _login(client)
    HANDLED.clear()
    for headers in (
        {},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        refused = client.post("/x", json={}, headers=headers)
        assert refused.status_code == 403 and refused.json()["code"] == "forbidden", headers
    assert HANDLED == []  # refused before the route ran
    assert client.post("/x", json={}, headers={"Origin": ORIGIN}).status_code == 200
    assert client.post("/x", json={}, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
    client.cookies.clear()
    bearer = client.post("/x", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200  # the header needs no proof of origin


def test_logout_clears_the_cookie(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch)
    _login(client)
    assert client.get("/x").status_code == 200
    out = client.post("/logout")
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert client.get("/x").status_code == 401
    assert client.get("/logout").status_code == 405


@pytest.mark.parametrize(
    "value",
    [
        TOKEN,
        "v1.9999999999.deadbeef",
        "v2.9999999999." + "0" * 64,
        session.session_value(b"another-token"),
        session.session_value(TOKEN.encode(), now=0),  # long expired
        "",
    ],
    # fixed ids: a session value holds the time it was made, and xdist workers must collect alike
    ids=["the-token-itself", "v1-forged", "v2-forged", "another-tokens-session", "expired", "empty"],
)
def test_forged_copied_or_expired_cookies_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    client = _client(monkeypatch)
    assert client.get("/x", headers={"Cookie": f"{session.COOKIE}={value}"}).status_code == 401


def test_a_session_is_checked_by_any_worker_and_ends_with_the_token() -> None:
    value = session.session_value(b"abc", now=1_000)
    assert session.session_ok(value, b"abc", now=1_001)  # another process: the same key
    assert not session.session_ok(value, b"abd", now=1_001)  # a rotated token ends it
    assert not session.session_ok(value, b"abc", now=1_000 + session.SESSION_SECONDS)
    assert session.cookie(b"a=1; forecast_session=v1.x; b=2") == "v1.x"
    assert session.cookie(b"forecast_sessionx=1") is None


def test_the_page_is_self_contained_and_lists_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch)
    page = client.get("/docs", headers={"Authorization": f"Bearer {TOKEN}", **HTML})
    assert page.status_code == 200
    text = page.text
    assert "<script" not in text and "googletagmanager" not in text and "BentoML" not in text
    assert "IODescriptor" not in text and "@import" not in text
    assert set(re.findall(r"https?://[^\s'\"&<]+", text)) <= {
        f"{ORIGIN}/lead_score",
        f"{ORIGIN}/livez",
        f"{ORIGIN}/model_info",
    }
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce and f'<style nonce="{nonce.group(1)}">' in text
    assert page.headers["referrer-policy"] == "no-referrer"
    for route in ("/lead_score", "/livez", "/model_info"):
        assert f"<code>{route}</code>" in text, route
    assert "/metrics" not in text
    assert "Send exactly one of: <code>lead</code>, <code>leads</code>" in text
    assert "&quot;lead&quot;: {&quot;lead_id&quot;: &quot;L-1&quot;}" in text  # the curl example's body
    assert client.get("/docs", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    head = client.head("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert head.status_code == 200 and head.content == b""


def test_bentomls_index_and_assets_are_never_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch, token=None)
    assert "forecast API" in client.get("/").text
    assert client.get("/static_content/swagger-ui.css").status_code == 404
    assert client.get("/assets/index.js").status_code == 404
    assert client.get("/login").status_code == 303  # nothing to log in to
    assert client.post("/", json={}).status_code == 405


def test_the_public_spec_has_no_bentoml_internals() -> None:
    spec = public_spec(BENTOML_SPEC)
    text = json.dumps(spec)
    for internal in ("IODescriptor", "BentoML", "http://", "https://", "InvalidArgument", "/metrics"):
        assert internal not in text, internal
    assert BENTOML_SPEC["paths"]["/metrics"]  # the argument is not changed
    post = spec["paths"]["/lead_score"]["post"]
    assert post["summary"] == "Conversion probability of one lead or a list"
    assert post["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert {"401", "413", "415", "422", "503"} <= set(post["responses"])
    assert spec["components"]["schemas"]["Error"]["required"] == ["code", "message", "errors"]
    html = render_docs(spec, "http://h:1", signed_in=False)
    assert "$FORECAST_API_TOKEN" not in html and "Log out" not in html  # an open service


def test_error_bodies_lose_internal_class_names() -> None:
    bentoml_400 = {
        "error": "1 validation error for LeadScoreRequestIODescriptor",
        "detail": [
            {
                "type": "model_type",
                "loc": ["leads", 0, "function-after[_in_range(), datetime]"],
                "msg": "Input should be a valid dictionary or instance of LeadRecord",
            }
        ],
    }
    body = normalise(400, json.dumps(bentoml_400).encode())
    assert body["errors"] == [{"path": ["leads", 0], "rule": "model_type"}]
    assert "LeadRecord" not in json.dumps(body) and "IODescriptor" not in json.dumps(body)
    listed = normalise(
        400, json.dumps([{"error": "2 validation errors for DealRequestIODescriptor"}]).encode()
    )
    assert listed["message"] == "2 validation errors in the request"
