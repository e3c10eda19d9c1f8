"""The baseline for the real service: the same pipeline behind a minimal Starlette app on uvicorn.

``POST /win_probability`` does what the service's route does — the same pydantic request model,
``forecast.serving.scoring.score_records`` on the ``deal_win`` champion (probability, score, band,
reasons) and the same JSON answer — without BentoML; so do ``POST /lead_score`` (``lead_scoring``)
and ``POST /time_to_close`` (``close_records``, ``time_to_close``). The heap is frozen after loading, as the
service does, so the comparison measures the server alone.

Run: ``python -m uvicorn bare_forecast_app:app --app-dir benchmarks/serving --port 8000``
(with ``FORECAST_MLFLOW_TRACKING_URI`` pointing at a registry with the three champions).
"""

from __future__ import annotations

import gc
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from forecast.config import load_settings
from forecast.registry import load_model
from forecast.scoring import fastpath
from forecast.serving.schemas import DealRequest, LeadScoreRequest
from forecast.serving.scoring import close_records, json_safe, score_records

settings = load_settings()
model = load_model("deal_win", settings)
leads = load_model("lead_scoring", settings)
close = load_model("time_to_close", settings)
for loaded in (model, leads, close):
    fastpath.coded(loaded.pipeline)
gc.collect()
gc.freeze()


def _answer(one: object, many: list | None, score: Callable[[list], list]) -> JSONResponse:
    """The answer to a request of one record (``one``) or of a list (``many``)."""
    results = score([one] if one is not None else list(many or []))
    body = {"result": results[0]} if one is not None else {"results": results, "count": len(results)}
    return JSONResponse(json_safe(body))


async def win_probability(request: Request) -> JSONResponse:
    """One deal (or a list) scored with reasons."""
    req = DealRequest.model_validate_json(await request.body())
    return _answer(req.deal, req.deals, lambda rows: score_records(model, rows, "opportunity"))


async def lead_score(request: Request) -> JSONResponse:
    """One lead (or a list) scored with reasons."""
    req = LeadScoreRequest.model_validate_json(await request.body())
    return _answer(req.lead, req.leads, lambda rows: score_records(leads, rows, "lead"))


async def time_to_close(request: Request) -> JSONResponse:
    """One deal's (or a list's) close-date distribution with reasons."""
    req = DealRequest.model_validate_json(await request.body())
    return _answer(req.deal, req.deals, lambda rows: close_records(close, rows))


app = Starlette(
    routes=[
        Route("/win_probability", win_probability, methods=["POST"]),
        Route("/lead_score", lead_score, methods=["POST"]),
        Route("/time_to_close", time_to_close, methods=["POST"]),
    ]
)
