"""The HTTP service end to end: a real BentoML server on a loopback port, real MLflow and DuckDB.

One server for the module (``forecast serve --warehouse``, a token, polling off): scores equal the
batch scorer's for the same features, validation answers 4xx with the field path, auth, reloads
of a moved champion without dropping requests, and a failed load that keeps the old model.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from forecast.batch import score_warehouse
from forecast.cli import app
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.registry import load_model
from forecast.scoring.close_dates import close_date_columns
from tests.cli import cli_env, fast_config, runner, settings_of
from tests.cli import cli_json as _cli
from tests.conftest import hold_warehouse_lock
from tests.processes import free_port, stop

pytestmark = pytest.mark.slow  # trains champions and starts HTTP servers

TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 300_000


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("service")
    simulate_crm(SimulationConfig(n_leads=8_000, seed=5)).write(root / "crm")
    env = cli_env(root)
    assert _cli(env, "ingest", str(root / "crm"))["balanced"]
    # few, fast trees: the service is tested here, the models' quality in tests/model
    for model, stem in (
        ("lead-scoring", "lead_scoring"),
        ("deal-win", "deal_win"),
        ("time-to-close", "time_to_close"),
    ):
        trained = _cli(env, "train", model, "--config", str(fast_config(root, stem)), "--promote")
        assert trained["promotion"]["promoted"], trained["promotion"]
    return env


@contextmanager
def _serving(env: dict[str, str], args: list[str], extra: dict[str, str], log_name: str) -> Iterator[str]:
    """A real ``forecast serve`` on a free loopback port until the block ends; yields its base URL."""
    port = free_port()
    proc_env = {**os.environ, **env, "BENTOML_DO_NOT_TRACK": "true", **extra}
    log = (Path(env["ROOT"]) / log_name).open("w")
    cmd = [sys.executable, "-m", "forecast.cli", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(cmd, env=proc_env, stdout=log, stderr=subprocess.STDOUT, cwd=env["ROOT"])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert proc.poll() is None, Path(log.name).read_text()[-3000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the server did not become ready: " + Path(log.name).read_text()[-3000:])
        yield base
    finally:
        stop(proc, timeout=30)
        log.close()


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[str]:
    extra = {
        "FORECAST_API_TOKEN": TOKEN,
        "FORECAST_MAX_BODY_BYTES": str(MAX_BODY),
        "FORECAST_SERVE_WORKERS": "2",  # reloads must reach every worker
        "FORECAST_WAREHOUSE_LOCK_WAIT": "1",  # a busy warehouse answers 503 after a second
    }
    with _serving(env, ["--warehouse", "--reload-seconds", "0"], extra, "server.log") as base:
        yield base


def _post(base: str, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{base}{path}", json=body, headers=AUTH if headers is None else headers, timeout=60)


def _records(frame: pd.DataFrame, id_col: str, fields: set[str]) -> list[dict[str, Any]]:
    """Feature rows as the CRM would send them (JSON values, missing ones left out)."""
    out = []
    for row in frame.to_dict(orient="records"):
        rec: dict[str, Any] = {id_col: str(row[id_col])}
        for key, value in row.items():
            if key not in fields or key in (id_col, "as_of") or value is None or pd.isna(value):
                continue
            rec[key] = value.item() if isinstance(value, np.generic) else value
        rec["as_of"] = pd.Timestamp(row["as_of"]).isoformat()
        out.append(rec)
    return json.loads(json.dumps(out, default=str))


def test_health_is_open_and_everything_else_needs_the_token(server: str) -> None:
    assert httpx.get(f"{server}/livez").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code == 200
    body = {"lead": {"lead_id": "L1"}}
    assert _post(server, "/lead_score", body, headers={}).status_code == 401
    wrong = _post(server, "/lead_score", body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Bearer" in wrong.json()["message"]
    assert httpx.get(f"{server}/model_info").status_code == 401
    assert _post(server, "/lead_score", body).status_code == 200


def test_model_info_lists_versions_aliases_dates_and_metrics(server: str) -> None:
    info = httpx.get(f"{server}/model_info", headers=AUTH).json()["models"]
    lead = info["lead_scoring"]["served"]
    assert lead["version"] == "1" and "champion" in lead["aliases"]
    assert lead["trained_at"].startswith("20") and 0.5 < lead["metrics"]["roc_auc"] <= 1
    assert info["time_to_close"]["served"]["entity"] == "opportunity"
    assert info["churn_risk"]["served"] is None and info["churn_risk"]["required"] is False
    ready = httpx.get(f"{server}/ready", headers=AUTH)
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_lead_scores_equal_the_batch_scorer(server: str, env: dict[str, str]) -> None:
    settings = settings_of(env)
    model = load_model("lead_scoring", settings)
    scored, _, _ = score_warehouse(model, settings, None)
    features = scored.features.head(25)
    assert features is not None
    sent = _records(features, "lead_id", set(model.metadata["features"]))
    one = _post(server, "/lead_score", {"lead": sent[0]})
    assert one.status_code == 200, one.text
    result = one.json()["result"]
    expected = scored.scores.iloc[0]
    assert result["lead_id"] == expected["lead_id"]
    assert result["p_convert"] == pytest.approx(float(expected["p_convert"]), abs=1e-6)
    assert result["reasons"]["up"][0] == expected["reason_up_1"]
    assert result["model_name"] == "lead_scoring" and result["model_version"] == "1"
    many = _post(server, "/lead_score", {"leads": sent}).json()  # 25 > 16 records: in a thread
    assert many["count"] == 25
    got = np.array([r["p_convert"] for r in many["results"]])
    np.testing.assert_allclose(got, scored.scores["p_convert"].head(25).to_numpy(dtype=float), atol=1e-6)
    assert [r["band"] for r in many["results"]] == list(scored.scores["band"].head(25))


def test_win_probability_and_close_dates_equal_the_batch_scorer(server: str, env: dict[str, str]) -> None:
    settings = settings_of(env)
    win = load_model("deal_win", settings)
    close = load_model("time_to_close", settings)
    scored, _, _ = score_warehouse(win, settings, None)
    features = scored.features.head(10)
    sent = _records(
        features, "opportunity_id", set(win.metadata["features"]) | set(close.metadata["features"])
    )
    wins = _post(server, "/win_probability", {"deals": sent}).json()["results"]
    np.testing.assert_allclose(
        [r["p_win"] for r in wins], scored.scores["p_win"].head(10).to_numpy(dtype=float), atol=1e-6
    )
    assert all(r["reasons"]["up"] or r["reasons"]["down"] for r in wins)
    closing = _post(server, "/time_to_close", {"deals": sent}).json()["results"]
    expected = close_date_columns(close, features)
    np.testing.assert_allclose(
        [r["p_close_30d"] for r in closing], expected["p_close_30d"].to_numpy(dtype=float), atol=1e-6
    )
    assert [r["close_date_p50"] for r in closing] == [
        None if pd.isna(d) else d.date().isoformat() for d in expected["close_date_p50"]
    ]
    first = closing[0]
    assert first["model_name"] == "time_to_close" and first["reasons"]["up"]
    assert first["p_close_30d"] <= first["p_close_60d"] <= first["p_close_90d"]


def test_unseen_categories_and_missing_features_are_scored_with_warnings(
    server: str, env: dict[str, str]
) -> None:
    settings = settings_of(env)
    close_uses_product = "product" in load_model("time_to_close", settings).metadata["features"]
    body = {"deal": {"opportunity_id": "new-1", "stage": "proposal", "product": "flying carpet"}}
    answer = _post(server, "/win_probability", body)
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    assert 0 < result["p_win"] < 1 and result["features_sent"] == 2
    assert result["warnings"] == [
        "product 'flying carpet' was never seen in training; scored as an unknown level"
    ]
    closing = _post(server, "/time_to_close", body).json()["result"]
    assert closing["warnings"] == (result["warnings"] if close_uses_product else [])
    lead = _post(
        server, "/lead_score", {"leads": [{"lead_id": "L1", "source": "carrier pigeon"}, {"lead_id": "L2"}]}
    )
    assert lead.status_code == 200, lead.text
    first, second = lead.json()["results"]
    assert first["warnings"] == [
        "source 'carrier pigeon' was never seen in training; scored as an unknown level"
    ]
    assert second["warnings"] == []


@pytest.mark.parametrize("path", ["/win_probability", "/time_to_close", "/flags", "/revenue_forecast"])
def test_an_unknown_stage_is_a_400_naming_the_deal_and_the_known_stages(server: str, path: str) -> None:
    deals = [
        {"opportunity_id": "O1", "stage": "proposal", "amount": 1000},
        {"opportunity_id": "O2", "stage": "bogus_stage", "amount": 1000},
    ]
    answer = _post(server, path, {"deals": deals})
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["code"] == "invalid_request"
    assert body["errors"] == [{"path": ["deals", 1, "stage"], "rule": "unknown_stage"}]
    assert body["message"].startswith("deals.1.stage: 'bogus_stage' is not a stage")
    assert "'negotiation'" in body["message"] and "__other__" not in body["message"]


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/lead_score", {"lead": {"lead_id": "L1", "sourc": "web"}}, ["lead", "sourc"]),
        ("/lead_score", {"lead": {"lead_id": "L1", "act_call_7d": -1}}, ["lead", "act_call_7d"]),
        (
            "/lead_score",
            {"lead": {"lead_id": "L1", "act_email_reply_rate": 1.5}},
            ["lead", "act_email_reply_rate"],
        ),
        ("/lead_score", {"lead": {"source": "web"}}, ["lead", "lead_id"]),
        (
            "/lead_score",
            {"leads": [{"lead_id": "L1"}, {"lead_id": "L2", "employees": "many"}]},
            ["leads", 1, "employees"],
        ),
        (
            "/win_probability",
            {"deal": {"opportunity_id": "O1", "as_of": "0001-01-01T00:00:00"}},
            ["deal", "as_of"],
        ),
        ("/revenue_forecast", {"periods": 0}, ["periods"]),
        ("/revenue_forecast", {"by": "decade"}, ["by"]),
    ],
)
def test_bad_input_is_a_400_with_the_field_path(server: str, path: str, body: Any, loc: list[Any]) -> None:
    answer = _post(server, path, body)
    assert answer.status_code == 400, answer.text
    assert loc in [e["path"] for e in answer.json()["errors"]]


def test_shape_errors_are_4xx_not_500(server: str) -> None:
    assert (
        _post(server, "/lead_score", {"lead": {"lead_id": "a"}, "leads": [{"lead_id": "b"}]}).status_code
        == 400
    )
    assert _post(server, "/lead_score", {}).status_code == 400
    assert (
        _post(server, "/lead_score", {"leads": [{"lead_id": str(i)} for i in range(1001)]}).status_code == 400
    )
    broken = httpx.post(
        f"{server}/lead_score", content=b'{"lead": {', headers={**AUTH, "content-type": "application/json"}
    )
    assert broken.status_code == 400
    form = httpx.post(
        f"{server}/lead_score", content=b"x", headers={**AUTH, "content-type": "multipart/form-data"}
    )
    assert form.status_code == 415
    big = httpx.post(
        f"{server}/lead_score",
        content=b" " * (MAX_BODY + 1),
        headers={**AUTH, "content-type": "application/json"},
    )
    assert big.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY // 10_000 + 2):
            yield b" " * 10_000

    streamed = httpx.post(
        f"{server}/lead_score", content=chunks(), headers={**AUTH, "content-type": "application/json"}
    )
    assert streamed.status_code == 413
    need_amount = _post(server, "/revenue_forecast", {"deals": [{"opportunity_id": "O1"}]})
    assert need_amount.status_code == 422 and "amount" in need_amount.json()["message"]
    quota_alone = _post(server, "/revenue_forecast", {"quota": [1.0, 2.0, 3.0]})
    assert quota_alone.status_code == 422 and quota_alone.json()["errors"][0]["path"] == ["quota"]
    many_teams = [{"opportunity_id": f"O{i}", "amount": 1.0, "team": f"T{i}"} for i in range(51)]
    too_wide = _post(server, "/revenue_forecast", {"deals": many_teams, "group": "team"})
    assert too_wide.status_code == 422 and "at most 50" in too_wide.json()["message"]
    moments = [{"lead_id": f"L{i}", "as_of": f"2025-01-{i + 1:02d}T00:00:00"} for i in range(11)]
    assert _post(server, "/flags", {"leads": moments}).status_code == 422
    zoned = _post(server, "/lead_score", {"lead": {"lead_id": "L", "as_of": "0001-01-01T00:00:00+01:00"}})
    assert zoned.status_code == 400
    two_types = httpx.post(
        f"{server}/lead_score",
        content=b"--x--",
        headers=[
            *AUTH.items(),
            ("content-type", "multipart/form-data"),
            ("content-type", "application/json"),
        ],
    )
    assert two_types.status_code == 415


def test_flags_carry_evidence_and_actions(server: str) -> None:
    deal = {"opportunity_id": "O-late", "stage": "proposal", "amount": 20_000, "days_to_expected_close": -20}
    answer = _post(server, "/flags", {"deal": deal})
    assert answer.status_code == 200, answer.text
    result = answer.json()["result"]
    overdue = [f for f in result["flags"] if f["flag"] == "close_overdue"]
    assert overdue and "20 days" in overdue[0]["evidence"] and overdue[0]["suggested_action"]
    assert result["top_flag"] is not None and result["p_churn"] is None
    assert all(f["flag"] != "no_next_step" for f in result["flags"])  # not sent is not "none booked"
    quiet = _post(
        server, "/flags", {"leads": [{"lead_id": "L-new", "act_next_action_scheduled": True}]}
    ).json()
    assert quiet["results"][0]["flags"] == [] and quiet["results"][0]["at_risk"] is False


# --- scores by record id (issue 22 item 2) --------------------------------------------------------


def _get(base: str, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{base}{path}", headers=AUTH if headers is None else headers, timeout=60)


def _reasons(row: pd.Series) -> dict[str, list[str]]:
    def side(kind: str) -> list[str]:
        return [str(row[f"reason_{kind}_{i}"]) for i in (1, 2, 3) if pd.notna(row[f"reason_{kind}_{i}"])]

    return {"up": side("up"), "down": side("down")}


def test_scores_by_id_are_the_batch_scores_of_the_record(server: str, env: dict[str, str]) -> None:
    """GET by id answers what `forecast score deals|leads --from-warehouse` writes for the record."""
    root = Path(env["ROOT"])
    _cli(env, "score", "deals", "--from-warehouse", "--output", str(root / "by_id_deals.csv"))
    _cli(env, "score", "leads", "--from-warehouse", "--output", str(root / "by_id_leads.csv"))
    deals = pd.read_csv(root / "by_id_deals.csv", dtype={"opportunity_id": str})
    leads = pd.read_csv(root / "by_id_leads.csv", dtype={"lead_id": str})
    for _, deal in deals.iloc[[0, len(deals) // 2, -1]].iterrows():
        key = deal["opportunity_id"]
        win = _get(server, f"/win_probability/{key}")
        assert win.status_code == 200, win.text
        got = win.json()["result"]
        assert got["as_of"] == pd.Timestamp(deal["as_of"]).isoformat()
        assert got["p_win"] == pytest.approx(deal["p_win"], abs=1e-9)
        assert (got["score"], got["band"], got["model_version"]) == (deal["score"], deal["band"], "1")
        assert got["reasons"] == _reasons(deal)
        close = _get(server, f"/time_to_close/{key}").json()["result"]
        for column in ("p_close_30d", "p_close_60d", "p_close_90d", "slip_risk"):
            expected = None if pd.isna(deal[column]) else pytest.approx(deal[column], abs=1e-9)
            assert close[column] == expected, column
        for column in ("close_date_p10", "close_date_p50", "close_date_p90"):
            assert close[column] == (None if pd.isna(deal[column]) else deal[column][:10]), column
        assert close["reasons"]["up"] and close["model_name"] == "time_to_close"
        flags = _get(server, f"/flags/deal/{key}").json()["result"]
        names = sorted(str(deal["flags"]).split(";")) if deal["n_flags"] else []
        assert sorted(f["flag"] for f in flags["flags"]) == names
        top = deal["top_flag"] if deal["n_flags"] else None
        assert (flags["at_risk"], flags["top_flag"]) == (bool(deal["at_risk"]), top)
    for _, lead in leads.iloc[[0, -1]].iterrows():
        got = _get(server, f"/lead_score/{lead['lead_id']}").json()["result"]
        assert got["p_convert"] == pytest.approx(lead["p_convert"], abs=1e-9)
        assert (got["band"], got["reasons"]) == (lead["band"], _reasons(lead))
        flags = _get(server, f"/flags/lead/{lead['lead_id']}").json()["result"]
        assert flags["top_flag"] == (lead["top_flag"] if lead["n_flags"] else None)


def test_by_id_errors_name_the_record_or_the_parameter(server: str, env: dict[str, str]) -> None:
    unknown = _get(server, "/win_probability/NO-SUCH-DEAL")
    assert unknown.status_code == 404, unknown.text
    body = unknown.json()
    assert body["code"] == "not_found" and "NO-SUCH-DEAL" not in body["message"]  # no input echoed
    assert body["errors"] == [{"path": ["opportunity_id"], "rule": "not_found"}]
    some_lead = _lead_ids(env)[0]
    before = _get(server, f"/lead_score/{some_lead}?as_of=1990-01-01")  # not created yet then
    assert before.status_code == 404 and before.json()["code"] == "not_open", before.text
    for bad in ("yesterday", "1800-01-01"):
        answer = _get(server, f"/time_to_close/O1?as_of={bad}")
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"] == [{"path": ["as_of"], "rule": "date"}]
        assert answer.json()["message"].startswith("as_of ")
    entity = _get(server, "/flags/account/A1")
    assert entity.status_code == 400 and entity.json()["errors"][0]["path"] == ["entity"]
    assert _get(server, "/lead_score/L1", headers={}).status_code == 401


def _lead_ids(env: dict[str, str]) -> list[str]:
    return list(pd.read_parquet(Path(env["ROOT"]) / "crm" / "leads.parquet", columns=["lead_id"])["lead_id"])


def test_a_get_by_id_is_served_while_another_process_holds_the_warehouse(
    server: str, env: dict[str, str]
) -> None:
    """The service holds no connection between reads: a writer takes the lock, GETs are still answered."""
    before: dict[str, Any] = {}
    for lead_id in _lead_ids(env):
        answer = _get(server, f"/lead_score/{lead_id}")
        if answer.status_code == 200:  # an open lead
            before[lead_id] = answer.json()["result"]
        if len(before) == 3:
            break
    with hold_warehouse_lock(Path(env["FORECAST_WAREHOUSE"])):  # raises if the service held the file
        during = [(i, _get(server, f"/lead_score/{i}")) for i in [*before, *before]]  # both workers
        unread = _get(server, f"/lead_score/{next(iter(before))}?as_of=2024-02-29")  # a table never read
    for lead_id, answer in during:
        assert answer.status_code == 200, answer.text
        assert answer.json()["result"] == before[lead_id]
    assert unread.status_code == 503 and unread.json()["code"] == "warehouse_busy", unread.text
    assert unread.headers["Retry-After"] == "5"


def test_revenue_of_sent_deals_and_of_the_warehouse_pipeline(server: str) -> None:
    deals = [
        {
            "opportunity_id": f"O{i}",
            "stage": "negotiation",
            "stage_order": 4,
            "amount": 10_000 * (i + 1),
            "team": "T1",
        }
        for i in range(20)
    ]
    body = {"deals": deals, "as_of": "2026-01-05T00:00:00Z", "periods": 3, "quota": [50_000, 50_000, 50_000]}
    answer = _post(server, "/revenue_forecast", body)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["open_deals"] == 20 and out["open_pipeline"] == pytest.approx(2_100_000)
    rows = out["forecast"]
    assert [r["period"] for r in rows] == ["2026-01", "2026-02", "2026-03"]
    assert all(r["p10"] <= r["p50"] <= r["p90"] and r["quota"] == 50_000 for r in rows)
    assert 0 <= rows[0]["p_hit_quota"] <= 1
    pipeline = _post(server, "/revenue_forecast", {"periods": 2, "simulations": 2000}).json()
    assert pipeline["open_deals"] > 10 and len(pipeline["forecast"]) == 2
    assert pipeline["models"] == {"deal_win": "1", "time_to_close": "1"}
    assert pipeline["goals"]["goal"] > 0
    weekly = _post(server, "/revenue_forecast", {"by": "week", "periods": 9, "simulations": 500})
    assert weekly.status_code == 200, weekly.text  # dates in the pacing table are JSON text
    assert len(weekly.json()["forecast"]) == 9 and isinstance(weekly.json()["pacing"], list)


def test_openapi_spec_is_served(server: str) -> None:
    spec = httpx.get(f"{server}/docs.json", headers=AUTH).json()
    for path in (
        "/lead_score",
        "/win_probability",
        "/time_to_close",
        "/flags",
        "/revenue_forecast",
        "/model_info",
    ):
        assert path in spec["paths"], path
    assert "/metrics" not in spec["paths"]  # turned off (SERVICE_CONFIG): not advertised


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_the_docs_page_is_our_own_and_a_browser_logs_in_with_a_cookie(server: str) -> None:
    """Issue 17 item 8: no third-party request, a login form with auth on, a same-origin cookie."""
    form = httpx.get(f"{server}/", headers=BROWSER)
    assert form.status_code == 401 and form.headers["content-type"].startswith("text/html")
    assert 'action="/login"' in form.text and "googletagmanager" not in form.text
    api = httpx.get(f"{server}/")
    assert api.status_code == 401 and api.json()["code"] == "unauthorized"  # API clients: JSON
    origin = {"Origin": server}
    wrong = httpx.post(f"{server}/login", data={"token": "nope"}, headers=origin)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    done = httpx.post(f"{server}/login", data={"token": TOKEN}, headers=origin)
    assert done.status_code == 303 and done.headers["location"] == "/"
    set_cookie = done.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie and TOKEN not in set_cookie
    jar = {"Cookie": set_cookie.split(";")[0]}
    page = httpx.get(f"{server}/", headers={**BROWSER, **jar})
    assert page.status_code == 200 and "<title>forecast API</title>" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    text = page.text
    assert "googletagmanager" not in text and "<script" not in text and "IODescriptor" not in text
    assert all(url.startswith(server) for url in re.findall(r"https?://[^\s'\"&<]+", text))
    spec = httpx.get(f"{server}/docs.json", headers=jar)  # the cookie opens the spec too
    assert spec.status_code == 200 and "IODescriptor" not in spec.text and "BentoML" not in spec.text
    for path in spec.json()["paths"]:
        assert f"<code>{path}</code>" in text, path
    assert httpx.get(f"{server}/static_content/swagger-ui.css", headers=jar).status_code == 404
    body = {"lead": {"lead_id": "L1"}}
    assert _post(server, "/lead_score", body, headers=jar).status_code == 403  # no proof of origin
    assert _post(server, "/lead_score", body, headers={**jar, **origin}).status_code == 200
    out = httpx.post(f"{server}/logout", headers=jar)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert httpx.get(f"{server}/docs.json").status_code == 401


def test_the_dashboard_is_served_under_the_service_with_its_own_login(
    server: str, env: dict[str, str]
) -> None:
    """Issue 18 item 1: the dashboard under /dashboard, the one implementation of `forecast dashboard`."""
    cold = httpx.get(f"{server}/dashboard/reps?period=quarter", headers=BROWSER)
    assert cold.status_code == 303  # the dashboard's own login, at the mount point
    assert cold.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Freps%3Fperiod%3Dquarter"
    form = httpx.get(f"{server}/dashboard/login", headers=BROWSER)
    assert form.status_code == 200 and 'action="/dashboard/login"' in form.text
    assert 'href="/dashboard/static/dashboard.css"' in form.text
    wrong = httpx.post(f"{server}/dashboard/login", data={"token": "nope", "next": "/dashboard/reps"})
    assert wrong.status_code == 401 and wrong.headers["content-type"].startswith(
        "text/html"
    )  # a page, not JSON
    done = httpx.post(
        f"{server}/dashboard/login", data={"token": TOKEN, "next": "/dashboard/reps?period=quarter"}
    )
    assert done.status_code == 303 and done.headers["location"] == "/dashboard/reps?period=quarter"
    jar = {"Cookie": done.headers["set-cookie"].split(";")[0]}
    deadline = time.monotonic() + 300
    while (
        page := httpx.get(f"{server}/dashboard/reps?period=quarter", headers={**BROWSER, **jar}, timeout=120)
    ).status_code == 202:  # being computed (forecast.dashboard.deferred): reloaded as a browser does
        assert 'http-equiv="refresh"' in page.text and time.monotonic() < deadline
        time.sleep(0.5)
    assert page.status_code == 200, page.text[:500]
    assert "data-row" in page.text and 'href="/dashboard/pipeline' in page.text
    assert 'href="/reps' not in page.text and 'action="/' not in page.text.replace('action="/dashboard/', "")
    # the same figures as the dashboard on its own over the same warehouse (one implementation)
    from starlette.testclient import TestClient

    from forecast.dashboard.app import create_app

    alone = TestClient(create_app(settings_of(env), warm_every=None)).get("/reps?period=quarter")
    cells = re.findall(r'data-value="([^"]+)"', alone.text)
    assert cells and re.findall(r'data-value="([^"]+)"', page.text) == cells
    # another as of: computed in the worker's as-of process (forecast.dashboard.worker), same figures
    shown = re.findall(r'data-figure="as_of" data-value="([^"]+)"', page.text)[0]
    as_of = pd.Timestamp(shown) - pd.Timedelta(days=30)
    other = f"/reps?period=quarter&as_of={as_of.date().isoformat()}"
    while (
        page := httpx.get(f"{server}/dashboard{other}", headers={**BROWSER, **jar}, timeout=120)
    ).status_code == 202:
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert page.status_code == 200, page.text[:500]
    alone = TestClient(create_app(settings_of(env), warm_every=None)).get(other)
    cells = re.findall(r'data-value="([^"]+)"', alone.text)
    assert cells and re.findall(r'data-value="([^"]+)"', page.text) == cells
    assert _as_of_children(server), "no as-of process under the service: computed in its workers"
    assert httpx.get(f"{server}/dashboard/static/dashboard.css").status_code == 200
    assert httpx.get(f"{server}/readyz").status_code in (200, 503)  # the service's own routes still answer


def _as_of_children(base: str) -> list[Any]:
    """The dashboard's as-of processes (:mod:`forecast.dashboard.worker`) under the service at ``base``."""
    import psutil

    port = base.rsplit(":", 1)[1]
    roots = []  # the service's processes (``forecast serve`` runs ``bentoml serve``): by their port
    for proc in psutil.process_iter(["cmdline"]):
        line = proc.info["cmdline"] or []
        if "serve" in line and any(a == "--port" and b == port for a, b in itertools.pairwise(line)):
            roots.append(proc)
    return [
        child
        for root in roots
        for child in root.children(recursive=True)
        if "forecast.dashboard.worker" in child.cmdline()
    ]


@pytest.mark.parametrize(
    "path",
    ["/lead_score", "/win_probability", "/time_to_close", "/flags", "/revenue_forecast", "/admin/reload"],
)
def test_bad_bodies_name_no_internal_class(server: str, path: str) -> None:
    """Issue 17 item 8: BentoML's wrapper classes and pydantic's model names stay inside."""
    class_like = re.compile(r"IODescriptor|\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+\b")
    for bad in (
        b"[]",
        b'"x"',
        b"null",
        b"{",
        b'{"lead": 1}',
        b'{"deals": [1]}',
        b'{"model": 3}',
        b'{"no": 1}',
    ):
        answer = httpx.post(
            f"{server}{path}", content=bad, headers={**AUTH, "content-type": "application/json"}
        )
        assert answer.status_code == 400, (path, bad, answer.text)
        assert set(answer.json()) == {"code", "message", "errors"}
        assert not class_like.search(answer.text), (path, bad, answer.text)


def _eventually(check: Callable[[], bool], timeout: float = 60.0, times: int = 6) -> None:
    """``check`` holds ``times`` calls in a row (each may reach another worker) within ``timeout``."""
    deadline = time.monotonic() + timeout
    streak = 0
    while time.monotonic() < deadline:
        streak = streak + 1 if check() else 0
        if streak >= times:
            return
        time.sleep(0.1)
    pytest.fail(f"not true {times} times in a row within {timeout} s")


def _info(server: str, name: str) -> dict[str, Any]:
    return httpx.get(f"{server}/model_info", headers=AUTH).json()["models"][name]


def test_a_moved_champion_is_served_without_dropping_requests(server: str, env: dict[str, str]) -> None:
    fast = str(fast_config(Path(env["ROOT"]), "lead_scoring"))  # few, fast trees (a version, not a model)
    _cli(env, "train", "lead-scoring", "--config", fast)  # version 2, a challenger
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    versions: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def fire() -> None:
        while not stop.is_set():
            answer = _post(server, "/lead_score", {"lead": {"lead_id": "L1", "act_call_7d": 1}})
            if answer.status_code != 200:
                failures.append(answer.text)
            else:
                versions.append(answer.json()["result"]["model_version"])

    thread = threading.Thread(target=fire)
    thread.start()
    try:
        time.sleep(0.5)
        client.set_registered_model_alias("lead_scoring", "champion", "2")
        reload = _post(server, "/admin/reload", {"model": "lead_scoring"})
        assert reload.json()["reload"]["lead_scoring"] == {"result": "loaded", "version": "2"}
        # every worker follows the signal of the one that answered
        _eventually(lambda: len(versions) >= 40 and set(versions[-40:]) == {"2"}, times=1)
        settled = len(versions)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join()
    assert not failures and versions[0] == "1"
    assert set(versions[settled - 40 :]) == {"2"}  # and never back to the old one
    workers: dict[int, str] = {}

    def every_worker_serves_2() -> bool:
        answer = httpx.get(f"{server}/model_info", headers=AUTH).json()
        workers[answer["worker"]] = answer["models"]["lead_scoring"]["served"]["version"]
        return len(workers) == 2 and set(workers.values()) == {"2"}

    _eventually(every_worker_serves_2, times=1)


def test_a_failed_load_keeps_the_old_model_and_is_reported(server: str, env: dict[str, str]) -> None:
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    served = _info(server, "deal_win")["served"]["version"]
    broken_dir = Path(env["ROOT"]) / "broken-model"
    broken_dir.mkdir(exist_ok=True)
    broken = str(client.create_model_version("deal_win", source=str(broken_dir)).version)
    try:
        client.set_registered_model_alias("deal_win", "champion", broken)
        reload = _post(server, "/admin/reload", {}).json()["reload"]
        assert reload["deal_win"]["result"] == "failed" and reload["deal_win"]["version"] == broken

        def reported_on(info: dict[str, Any]) -> bool:
            return (
                info["served"]["version"] == served
                and info["champion_version"] == broken
                and f"loading version {broken} failed" in (info["error"] or "")
            )

        seen: set[int] = set()

        def reported_by_both() -> bool:
            answer = httpx.get(f"{server}/model_info", headers=AUTH).json()
            if reported_on(answer["models"]["deal_win"]):
                seen.add(answer["worker"])
            return len(seen) == 2

        _eventually(reported_by_both, times=1)
        ready = httpx.get(f"{server}/ready", headers=AUTH)
        assert ready.status_code == 200 and ready.json()["models"]["deal_win"]["error"]
        for _ in range(6):
            still = _post(server, "/win_probability", {"deal": {"opportunity_id": "O1", "amount": 1000}})
            assert still.status_code == 200 and still.json()["result"]["model_version"] == served
    finally:
        client.set_registered_model_alias("deal_win", "champion", served)
        shutil.rmtree(broken_dir, ignore_errors=True)
    healed = _post(server, "/admin/reload", {"model": "deal_win"}).json()["reload"]["deal_win"]
    assert healed == {"result": "unchanged", "version": served}
    _eventually(lambda: _info(server, "deal_win")["error"] is None)
    assert _post(server, "/admin/reload", {"model": "nope"}).status_code == 404


@pytest.mark.skipif(
    shutil.which("st", path=str(Path(sys.executable).parent)) is None, reason="schemathesis absent"
)
def test_schemathesis_finds_no_server_error(server: str, tmp_path: Path) -> None:
    st = str(Path(sys.executable).parent / "st")
    cmd = [
        st, "run", f"{server}/docs.json",
        "--checks", "not_a_server_error",
        "-H", f"Authorization: Bearer {TOKEN}",
        "--max-examples", "15", "--seed", "7", "--workers", "1",
        "--request-timeout", "60", "--max-time", "90",
        "--exclude-path", "/metrics", "--exclude-path", "/admin/reload",
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:]
    assert "Server error" not in run.stdout


def test_a_busy_warehouse_is_a_503_with_retry_after_and_no_internals(
    server: str, env: dict[str, str]
) -> None:
    """Issue 21: another process holds the warehouse's write lock while the service reads it."""
    warehouse = Path(env["FORECAST_WAREHOUSE"])
    with hold_warehouse_lock(warehouse) as holder:
        answer = _post(server, "/revenue_forecast", {"periods": 2})
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    body = answer.json()
    assert body["code"] == "warehouse_busy" and "in use by another process" in body["message"]
    text = answer.text
    for secret in (
        str(warehouse),
        warehouse.name,
        sys.executable,
        "python",
        str(holder.pid),
        "IOException",
        "duckdb",
    ):
        assert secret not in text, secret
    assert _post(server, "/revenue_forecast", {"periods": 2}).status_code == 200  # released: served again


def test_a_400_is_one_log_line_and_one_body_shape_without_internals(server: str, env: dict[str, str]) -> None:
    """Issue 21: no input values or tracebacks in the log, no pydantic internals in the body."""
    secret = "CUSTOMER-SECRET-4711"
    log = Path(env["ROOT"]) / "server.log"
    before = log.stat().st_size
    answer = _post(
        server,
        "/lead_score",
        {"leads": [{"lead_id": "L1"}, {"lead_id": "L2", "employees": secret}]},
        headers={**AUTH, "X-Request-ID": "req-21.a"},
    )
    assert answer.status_code == 400 and answer.headers["x-request-id"] == "req-21.a"
    body = answer.json()
    assert set(body) == {"code", "message", "errors"} and body["code"] == "invalid_request"
    assert body["errors"] == [{"path": ["leads", 1, "employees"], "rule": "float_parsing"}]
    for internal in (secret, "pydantic", "errors.pydantic.dev", "LeadScoreRequest", "LeadRecord", "input"):
        assert internal not in answer.text, internal
    generated = _post(
        server, "/lead_score", {"lead": {"lead_id": "x"}}, headers={**AUTH, "X-Request-ID": "a b"}
    )
    assert len(generated.headers["x-request-id"]) == 32  # an unsafe id is replaced
    unknown = httpx.get(f"{server}/nope", headers=AUTH)
    assert (
        unknown.status_code == 404
        and unknown.json()["code"] == "not_found"
        and unknown.json()["errors"] == []
    )
    time.sleep(1.0)  # the workers' log lines reach the file
    with log.open("rb") as fh:
        fh.seek(before)
        lines = fh.read().decode("utf-8", "replace")
    assert secret not in lines and "Traceback" not in lines and "ValidationError" not in lines
    ours = [line for line in lines.splitlines() if "request_id=req-21.a" in line]
    assert len(ours) == 1 and "POST /lead_score -> 400 invalid_request fields=leads.1.employees" in ours[0]


# --- models bound to their warehouse (issue 17 item 4) --------------------------------------------


@pytest.fixture(scope="module")
def other(env: dict[str, str]) -> dict[str, str]:
    """A second warehouse (another simulated CRM) beside the one the champions were trained on."""
    root = Path(env["ROOT"])
    simulate_crm(SimulationConfig(n_leads=1_500, seed=9)).write(root / "crm_b")
    other = {**env, "FORECAST_WAREHOUSE": str(root / "b.duckdb")}
    assert _cli(other, "ingest", str(root / "crm_b"))["balanced"]
    return other


@pytest.fixture(scope="module")
def byo(env: dict[str, str]) -> dict[str, Any]:
    """A lead model trained on a flat export (``byo``), and new rows of that export."""
    from tests.integration.test_lead_scoring_cli import _flat_export

    root = Path(env["ROOT"])
    _flat_export(root / "export.csv", 2000, 1)
    trained = _cli(
        env, "train", "lead-scoring", "--table", str(root / "export.csv"), "--target", "Converted",
        "--model-name", "byo",
    )  # fmt: skip
    new = _flat_export(root / "new.csv", 30, 2).drop(columns="Converted")
    new.to_csv(root / "new.csv", index=False)
    return {"trained": trained, "new": new}


def test_a_model_records_the_warehouse_it_was_trained_on(env: dict[str, str]) -> None:
    from forecast.data.warehouse import warehouse_id

    identity = warehouse_id(Path(env["FORECAST_WAREHOUSE"]))
    assert warehouse_id(Path(env["FORECAST_WAREHOUSE"])) == identity  # stable
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    for name in ("deal_win", "time_to_close"):
        mv = client.get_model_version_by_alias(name, "champion")
        assert mv.tags["forecast.warehouse_id"] == identity
        assert client.get_run(mv.run_id).data.tags["forecast.warehouse_id"] == identity
        assert load_model(name, settings_of(env)).meta.warehouse_id == identity


def test_a_champion_of_another_warehouse_is_refused_with_the_fix(
    env: dict[str, str], other: dict[str, str]
) -> None:
    root = Path(env["ROOT"])
    cases = [
        (
            ["score", "deals", "--from-warehouse", "--output", str(root / "b_deals.csv")],
            "deal_win",
            "--model",
        ),
        (["revenue", "--sims", "200"], "deal_win", "--model"),
        (["revenue", "--model", "deal_win", "--sims", "200"], "time_to_close", "--close-model"),
        (
            ["score", "leads", "--from-warehouse", "--output", str(root / "b_leads.csv")],
            "lead_scoring",
            "--model",
        ),
    ]
    for args, name, option in cases:
        error = _cli(other, *args, code=2)["error"]
        assert f"{name} v" in error and "wh.duckdb" in error and "b.duckdb" in error, error
        assert f"train {name.replace('_', '-')} --promote" in error, error
        assert f"{option} {name}" in error and f"--models {name}={name}" in error, error
    assert not (root / "b_deals.csv").exists() and not (root / "b_leads.csv").exists()
    refused = runner.invoke(app, ["serve", "--warehouse"], env=other)  # refused before it starts
    said = " ".join(refused.stderr.split())  # the log wraps its lines
    assert (
        refused.exit_code == 2 and "lead_scoring v" in said and "--models lead_scoring=lead_scoring" in said
    )


def test_a_model_named_explicitly_is_used_with_a_warning(env: dict[str, str], other: dict[str, str]) -> None:
    root = Path(env["ROOT"])
    out = root / "b_scores.csv"
    deals = _cli(
        other, "score", "deals", "--from-warehouse", "--output", str(out),
        "--model", "deal_win", "--close-model", "time_to_close@champion",
    )  # fmt: skip
    assert deals["scored"] == len(pd.read_csv(out)) > 0
    assert len(deals["warnings"]) == 2 and all("used as asked" in w for w in deals["warnings"])
    revenue = _cli(
        other, "revenue", "--models", "deal_win=deal_win,time_to_close=time_to_close", "--sims", "200"
    )
    assert revenue["open_deals"] > 0 and len(revenue["warnings"]) == 2
    own = _cli(env, "revenue", "--sims", "200")  # the champions of their own warehouse: no warning
    assert own["warnings"] == []
    bad = _cli(other, "revenue", "--model", "deal_win", "--models", "deal_win=deal_win", code=2)
    assert "both --model and --models" in bad["error"]


def test_a_flat_export_model_is_scored_and_served(env: dict[str, str], byo: dict[str, Any]) -> None:
    root = Path(env["ROOT"])
    batch = _cli(
        env, "score", "leads", "--input", str(root / "new.csv"), "--output", str(root / "byo.csv"),
        "--model", f"byo:{byo['trained']['version']}",
    )  # fmt: skip
    assert batch["scored"] == 30 and batch["warnings"] == []  # a file is its own data: nothing to check
    expected = pd.read_csv(root / "byo.csv").set_index("Record ID")["p_convert"]
    rows = json.loads(byo["new"].to_json(orient="records"))
    pinned = f"lead_scoring=byo:{byo['trained']['version']}"  # not promoted: named by version
    args = ["--models", pinned, "--workers", "1", "--reload-seconds", "0"]
    with _serving(env, args, {}, "byo.log") as base:
        answer = httpx.post(f"{base}/score_export", json={"rows": rows}, timeout=60)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == "byo" and body["count"] == 30 and body["rejected"] == []
        served = pd.Series({r["Record ID"]: r["p_convert"] for r in body["results"]})
        np.testing.assert_allclose(served.loc[expected.index], expected.to_numpy(), atol=1e-6)
        refused = httpx.post(f"{base}/lead_score", json={"lead": {"lead_id": "L1"}}, timeout=60)
        assert refused.status_code == 422 and "flat export" in refused.text
        info = httpx.get(f"{base}/model_info", timeout=10).json()["models"]["lead_scoring"]
        assert info["model"] == f"byo:{byo['trained']['version']}" and info["served"]["name"] == "byo"


def test_a_reload_refuses_a_champion_not_trained_on_the_warehouse(
    server: str, env: dict[str, str], byo: dict[str, Any]
) -> None:
    client = MlflowClient(env["FORECAST_MLFLOW_TRACKING_URI"])
    served = _info(server, "lead_scoring")["served"]["version"]
    flat = client.get_model_version("byo", byo["trained"]["version"])  # the flat model, as lead_scoring
    moved = str(client.create_model_version("lead_scoring", source=flat.source, run_id=flat.run_id).version)
    try:
        client.set_registered_model_alias("lead_scoring", "champion", moved)
        reload = _post(server, "/admin/reload", {"model": "lead_scoring"}).json()["reload"]["lead_scoring"]
        assert reload["result"] == "failed" and "a flat export" in reload["error"], reload
        still = _post(server, "/lead_score", {"lead": {"lead_id": "L1"}})
        assert still.status_code == 200 and still.json()["result"]["model_version"] == served
    finally:
        client.set_registered_model_alias("lead_scoring", "champion", served)
    _post(server, "/admin/reload", {"model": "lead_scoring"})
    _eventually(lambda: _info(server, "lead_scoring")["error"] is None)
