"""The bare Starlette route mounted inside a BentoML 1.4 service (``bentoml.asgi_app``).

Same process model, CLI and configuration as ``bento_service.WinProbabilityTuned`` (one worker,
the tuned options, heap frozen after loading), but ``POST /win_probability`` is handled by the
Starlette app of ``bare_app``, so a request skips BentoML's per-call IO machinery (signature
binding, dependency injection, pydantic IO descriptors, response iteration).

Run: ``bentoml serve bento_mounted:WinProbabilityMounted --working-dir benchmarks/serving``.
"""

from __future__ import annotations

import gc

import bentoml
from bare_app import app as starlette_app
from bento_service import TUNED_CONFIG


@bentoml.asgi_app(starlette_app, path="/")
@bentoml.service(name="win_probability_mounted", **TUNED_CONFIG)
class WinProbabilityMounted:
    """No BentoML API: the mounted app serves the booster it loaded at import."""

    def __init__(self) -> None:
        gc.collect()
        gc.freeze()
