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


# --- issue 21: request ids, one error shape, one log line, the spec without /metrics ---------------
async def _invalid(request: Request) -> JSONResponse:
    from pydantic import BaseModel, ValidationError

    class LeadScoreRequest(BaseModel):
        employees: float

    try:
        LeadScoreRequest(employees="CUSTOMER-SECRET")  # type: ignore[arg-type]
    except ValidationError as exc:  # what BentoML 1.4.40 answers for a pydantic error
        body = {
            "error": f"{exc.error_count()} validation error for {exc.title}",
            "detail": exc.errors(include_context=False, include_input=False),
        }
    return JSONResponse(body, status_code=400)


async def _spec(request: Request) -> JSONResponse:
    return JSONResponse({"openapi": "3.0.2", "paths": {"/metrics": {}, "/lead_score": {}}})


def _shaped_client(monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.delenv("FORECAST_API_TOKEN", raising=False)
    monkeypatch.setenv("FORECAST_MAX_BODY_BYTES", "1000")
    routes = [
        Route("/x", _echo, methods=["GET", "POST"]),
        Route("/invalid", _invalid, methods=["POST"]),
        Route("/docs.json", _spec),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(GuardMiddleware)
    return TestClient(app)


def test_pydantic_errors_become_one_shape_and_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = _shaped_client(monkeypatch)
    with caplog.at_level("INFO", logger="forecast.serving.requests"):
        answer = client.post("/invalid", json={}, headers={"X-Request-ID": "r-1"})
    assert answer.status_code == 400 and answer.headers["x-request-id"] == "r-1"
    assert answer.json() == {
        "code": "invalid_request",
        "message": "employees: Input should be a valid number, unable to parse string as a number",
        "errors": [{"path": ["employees"], "rule": "float_parsing"}],
    }
    assert "pydantic" not in answer.text and "LeadScoreRequest" not in answer.text
    assert int(answer.headers["content-length"]) == len(answer.content)
    lines = [r.getMessage() for r in caplog.records if r.name == "forecast.serving.requests"]
    assert lines == ["POST /invalid -> 400 invalid_request fields=employees request_id=r-1"]
    assert "CUSTOMER-SECRET" not in caplog.text


def test_every_answer_has_a_request_id_and_guard_errors_the_same_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = _shaped_client(monkeypatch)
    ok = client.get("/x")
    assert ok.status_code == 200 and len(ok.headers["x-request-id"]) == 32
    assert len(client.get("/x", headers={"X-Request-ID": "bad id;\n"}).headers["x-request-id"]) == 32
    big = client.post("/x", content=b"x" * 2_000, headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == "body_too_large" and big.json()["errors"] == []
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json() == {
        "code": "not_found",
        "message": "Not Found",
        "errors": [],
    }


def test_the_spec_does_not_advertise_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _shaped_client(monkeypatch).get("/docs.json").json()
    assert "/metrics" not in spec["paths"] and "/lead_score" in spec["paths"]


def test_bentomls_traceback_of_a_client_error_is_dropped() -> None:
    import logging

    from pydantic import BaseModel, ValidationError

    from forecast.serving.errors import ClientErrorFilter

    class M(BaseModel):
        x: int

    try:
        M(x="secret")  # type: ignore[arg-type]
    except ValidationError as exc:
        client_error = (type(exc), exc, exc.__traceback__)
    record = logging.LogRecord("bentoml", logging.ERROR, __file__, 1, "Exception on /x", None, client_error)
    assert ClientErrorFilter().filter(record) is False
    bug = RuntimeError("boom")
    kept = logging.LogRecord(
        "bentoml", logging.ERROR, __file__, 1, "Exception", None, (RuntimeError, bug, None)
    )
    assert ClientErrorFilter().filter(kept) is True


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/x?token=t0k", {}),
        ("/x?access_token=t0k", {}),
        ("/x", {"Cookie": "token=t0k; Authorization=Bearer t0k"}),
        ("/x", {"X-Api-Token": "t0k", "X-Authorization": "Bearer t0k"}),
        ("/x", {"Authorization": "Basic t0k"}),
        ("/x", {"Authorization": "Bearer t0k0"}),
        ("/x", {"Authorization": "Bearer t0"}),
        ("/x", {"Authorization": "t0k"}),
        ("/livez/../x", {}),
        ("/livez%2F..%2Fx", {}),
        ("//x", {}),
        ("/LIVEZ", {}),
    ],
)
def test_tokens_smuggled_elsewhere_and_path_tricks_are_refused(
    monkeypatch: pytest.MonkeyPatch, url: str, headers: dict[str, str]
) -> None:
    """Issue 21 item 7: the auth probes that held stay held (only the Authorization header counts)."""
    HANDLED.clear()
    answer = _client(monkeypatch, "t0k").get(url, headers=headers)
    assert answer.status_code == 401, (url, headers, answer.status_code)
    assert HANDLED == [], "the route ran before the guard refused"
