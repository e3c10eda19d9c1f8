"""The auth and body-size guard in front of the service, on a minimal ASGI app."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from forecast.serving.guard import GuardMiddleware, bearer_ok

HANDLED: list[int] = []


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    HANDLED.append(len(body))
    return JSONResponse({"bytes": len(body), "type": request.headers.get("content-type")})


def _client(monkeypatch: pytest.MonkeyPatch, token: str | None, limit: int = 1_000) -> TestClient:
    if token is None:
        monkeypatch.delenv("FORECAST_API_TOKEN", raising=False)
    else:
        monkeypatch.setenv("FORECAST_API_TOKEN", token)
    monkeypatch.setenv("FORECAST_MAX_BODY_BYTES", str(limit))
    app = Starlette(routes=[Route("/x", _echo, methods=["GET", "POST"]), Route("/livez", _echo)])
    app.add_middleware(GuardMiddleware)
    return TestClient(app)


def test_bearer_comparison() -> None:
    assert bearer_ok(b"Bearer abc", b"abc") and bearer_ok(b"bearer abc", b"abc")
    assert not bearer_ok(b"Bearer abd", b"abc") and not bearer_ok(b"Basic abc", b"abc")
    assert not bearer_ok(b"", b"abc") and not bearer_ok(b"Bearer ", b"abc")


def test_token_is_required_except_on_health(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch, "t0k")
    denied = client.get("/x")
    assert denied.status_code == 401 and denied.headers["www-authenticate"] == "Bearer"
    assert client.get("/x", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/x", headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert client.get("/livez").status_code == 200


def test_repeated_headers_are_read_as_the_app_reads_them(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch, None)
    two = [("content-type", "multipart/form-data"), ("content-type", "application/json")]
    assert client.post("/x", content=b"{}", headers=two).status_code == 415  # the first one counts


def test_blank_and_padded_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from forecast.serving.guard import api_token

    assert api_token(None) is None and api_token(SecretStr(" t0k\n")) == b"t0k"
    with pytest.raises(ValueError, match="blank"):
        api_token(SecretStr("  "))
    client = _client(monkeypatch, "t0k\n")
    assert client.get("/x", headers={"Authorization": "Bearer t0k"}).status_code == 200


def test_no_token_means_open(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _client(monkeypatch, None).get("/x").status_code == 200


def test_bodies_over_the_limit_and_non_json_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(monkeypatch, None, limit=1_000)
    fits = client.post("/x", content=b"1" * 1_000, headers={"content-type": "application/json"})
    assert fits.json()["bytes"] == 1_000
    assert (
        client.post("/x", content=b"1" * 1_001, headers={"content-type": "application/json"}).status_code
        == 413
    )

    def stream():  # no Content-Length: counted as it arrives
        for _ in range(5):
            yield b"1" * 300

    assert (
        client.post("/x", content=stream(), headers={"content-type": "application/json"}).status_code == 413
    )
    assert client.post("/x", content=b"a=1", headers={"content-type": "text/plain"}).status_code == 415
    assert (
        client.post(
            "/x", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
        ).status_code
        == 200
    )
