"""The baseline: a bare Starlette app on uvicorn serving the booster at ``POST /win_probability``.

Run: ``python -m uvicorn bare_app:app --app-dir benchmarks/serving --port 8000 --workers 1``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from model import load_booster, predict_one

booster = load_booster()


async def win_probability(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"win_probability": predict_one(booster, body["features"])})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/win_probability", win_probability, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
