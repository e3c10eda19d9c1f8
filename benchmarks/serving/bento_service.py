"""The same booster as BentoML 1.4 services at ``POST /win_probability``.

``WinProbability`` is what one writes first: a sync API with BentoML's defaults.
``WinProbabilityTuned`` is the configuration that removes the stalls (see benchmarks/RESULTS.md,
"HTTP serving"). Both take the bare app's body, ``{"features": [40 floats]}``.

Run: ``bentoml serve bento_service:WinProbability --working-dir benchmarks/serving --port 3000``.
A ``BENTOML_CONFIG`` YAML overrides the decorator's options (used to try variants).
"""

from __future__ import annotations

import gc
import os
from typing import Any

import bentoml
from pydantic import BaseModel

from model import load_booster, predict_one


@bentoml.service(name="win_probability_bench", workers=1)
class WinProbability:
    """One LightGBM booster, one record per call, BentoML defaults."""

    def __init__(self) -> None:
        self.booster = load_booster()

    @bentoml.api(route="/win_probability")
    def win_probability(self, features: list[float]) -> dict[str, float]:
        return {"win_probability": predict_one(self.booster, features)}


class WinProbabilityOut(BaseModel):
    """The response: a model, not a ``dict``, whose media type BentoML knows without a schema."""

    win_probability: float


# BentoML's TimeoutMiddleware never cancels its per-request `loop.call_later(timeout, ...)`: each
# request's context (with its OpenTelemetry span) lives `traffic.timeout` seconds, is promoted to
# the oldest GC generation and makes full collections frequent and slow. A short timeout bounds
# that; freezing the startup heap keeps its ~200,000 objects out of every full collection.
TUNED_CONFIG: dict[str, Any] = {
    "workers": 1,
    "traffic": {"timeout": 2},
    "metrics": {"enabled": False},
    "logging": {"access": {"enabled": False}},
    "tracing": {"excluded_urls": ["/win_probability"]},
}


@bentoml.service(name="win_probability_tuned", **TUNED_CONFIG)
class WinProbabilityTuned:
    """The same model; async API (40 µs of work), heap frozen after loading."""

    def __init__(self) -> None:
        self.booster = load_booster()
        if os.environ.get("BENCH_GC_FREEZE", "1") == "1":
            gc.collect()
            gc.freeze()

    @bentoml.api(route="/win_probability")
    async def win_probability(self, features: list[float]) -> WinProbabilityOut:
        return WinProbabilityOut(win_probability=predict_one(self.booster, features))
