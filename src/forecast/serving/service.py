"""BentoML service for the CRM: scores, close dates, flags and revenue over HTTP.

A thin layer: requests are validated by the pydantic models of :mod:`forecast.serving.schemas`,
the models come from :class:`forecast.serving.store.ModelStore` (the registry's champions,
reloaded when an alias moves) and the numbers from :mod:`forecast.serving.scoring`. Start it
with ``forecast serve`` (or ``bentoml serve`` from the repository root: ``bentofile.yaml`` names
it). Routes:

- ``POST /lead_score``, ``/win_probability``, ``/time_to_close``, ``/flags``: one record or a list;
- ``GET /lead_score/{lead_id}``, ``/win_probability/{opportunity_id}``, ``/time_to_close/{opportunity_id}``,
  ``/flags/{deal|lead}/{id}``: a record of the warehouse by its id (:mod:`forecast.serving.by_id`);
- ``POST /score_export``: rows of a flat export, for a served lead model trained on one;
- ``POST /revenue_forecast``: sent open deals, or the warehouse's pipeline;
- ``GET /model_info``, ``GET /ready`` (details), ``POST /admin/reload``;
- ``/livez``, ``/healthz``, ``/readyz`` (BentoML's probes; ``/readyz`` fails until the required
  champions are loaded), the OpenAPI spec at ``/docs.json`` and the project's docs page at ``/``
  (answered by the guard, :mod:`forecast.serving.docs_page`, with ``/login`` and ``/logout``).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import bentoml
import duckdb
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import JSONResponse

from forecast.config import load_settings
from forecast.data.warehouse import WarehouseBusyError
from forecast.errors import InputError, ScoringError
from forecast.features.build import Entity
from forecast.models.names import CHURN_RISK, CHURN_RISK_LEADS, DEAL_WIN, LEAD_SCORING, TIME_TO_CLOSE
from forecast.serving import by_id, dashboard_mount, scoring
from forecast.serving.bentoml_fix import cancel_request_timers
from forecast.serving.errors import error_body, quiet_client_errors
from forecast.serving.errors import error_response as _error
from forecast.serving.errors import warehouse_error as _warehouse_error
from forecast.serving.guard import GuardMiddleware, api_token
from forecast.serving.records import WarehouseRecords
from forecast.serving.schemas import (
    CloseDatesResponse,
    DealRequest,
    DealScoreResponse,
    ExportRowsRequest,
    ExportScoreResponse,
    FlagsRequest,
    FlagsResponse,
    LeadScoreRequest,
    LeadScoreResponse,
    ReloadRequest,
    ReloadResponse,
    RevenueRequest,
    RevenueResponse,
)
from forecast.serving.store import ModelStore, ModelUnavailableError

log = logging.getLogger(__name__)


class _Holder:
    """The running service's store, for the plain GET routes (set when the service starts)."""

    store: ModelStore | None = None


def _refused(exc: Exception) -> JSONResponse:
    """A 422 for a request the served models cannot answer; an error about one parameter names it."""
    parameter = exc.parameter if isinstance(exc, InputError) else None
    return _error(422, str(exc), [parameter] if parameter else None)


def _unknown_value(exc: scoring.UnknownValueError) -> JSONResponse:
    """A 400 naming each field whose value the model never saw (``deals[3].stage``)."""
    body = error_body(400, str(exc), [{"path": path, "rule": exc.rule} for path in exc.paths])
    return JSONResponse(body, status_code=400)


info_app = FastAPI(title="forecast: models and readiness", openapi_url=None, docs_url=None, redoc_url=None)
info_app.include_router(by_id.router)  # GET /win_probability/{id}, ...: BentoML's API routes are POST only


@info_app.get(
    "/model_info", summary="The served models: versions, aliases, training dates, key metrics, errors"
)
async def model_info() -> JSONResponse:
    """Per model: what is served, the registry's champion version and the last load error."""
    store = _Holder.store
    if store is None:
        return _error(503, "the service is starting")
    return JSONResponse({"worker": os.getpid(), "models": store.status()})


@info_app.get("/ready", summary="Readiness with details (503 until the required champions are loaded)")
async def ready() -> JSONResponse:
    """Whether the lead-scoring, deal-win and time-to-close champions are served, and each model's state."""
    store = _Holder.store
    if store is None:
        return JSONResponse({"ready": False, "models": {}}, status_code=503)
    ok, detail = store.ready()
    return JSONResponse(
        {"ready": ok, "worker": os.getpid(), "models": detail}, status_code=200 if ok else 503
    )


def _answer(results: list[dict[str, Any]], single: bool, **extra: Any) -> JSONResponse:
    body = {"result": results[0], **extra} if single else {"results": results, "count": len(results), **extra}
    return JSONResponse(scoring.json_safe(body))


ROUTES = [
    "/lead_score",
    "/score_export",
    "/win_probability",
    "/time_to_close",
    "/flags",
    "/revenue_forecast",
    "/admin/reload",
]

REFRESH_SECONDS = 1.0
"""How often each worker looks at the warehouse file for an import (a ``stat``; a read only if it changed)."""

SERVICE_CONFIG: dict[str, Any] = {
    "workers": 2,  # one per core of the reference machine; `forecast serve --workers` sets it
    # Long enough for a whole-pipeline revenue forecast; the per-request timer is cancelled when the
    # request is answered (serving/bentoml_fix.py), so a long timeout no longer holds every context.
    "traffic": {"timeout": 120},
    "metrics": {"enabled": False},
    "logging": {"access": {"enabled": False}},
    "tracing": {"excluded_urls": ROUTES},
}
"""BentoML options (why: docs/architecture.md, "Serving configuration"; figures: benchmarks/RESULTS.md)."""


@bentoml.service(name="forecast", **SERVICE_CONFIG)
class ForecastService:
    """forecast over HTTP; settings come from ``FORECAST_*`` environment variables."""

    def __init__(self) -> None:
        from forecast.flags.history import load_history
        from forecast.flags.job import load_flags_config

        self.settings = load_settings()
        api_token(self.settings.api_token)  # a blank token stops the start, not every request
        # the workers of one server share a parent: without `forecast serve`'s file, use its pid
        self.signal = (
            self.settings.reload_signal or Path(tempfile.gettempdir()) / f"forecast-reload-{os.getppid()}"
        )
        self.store = ModelStore(self.settings)
        self.store.refresh()
        self.store.start_polling(self.settings.reload_seconds, self.signal)
        self.flags_config = load_flags_config()
        self._histories: dict[str, tuple[int, Any]] = {}
        self._as_of: tuple[int, Any] | None = None
        self._held_outs: dict[tuple[str, str], Any] = {}
        _Holder.store = self.store
        self.records = WarehouseRecords(
            self.settings.warehouse, lambda src, entity: load_history(src, entity, self.flags_config)
        )
        context = by_id.Context(self.settings, self.store, self.flags_config, self.records)
        by_id.serve(context)
        if self.settings.serve_warehouse:  # read the default tables now and after each import,
            # and compute their answers ahead of the requests
            self.records.start_refreshing(REFRESH_SECONDS, after=lambda: by_id.warm(context))
        cancel_request_timers()
        quiet_client_errors()  # 4xx: one line from the guard, not a traceback with inputs
        _freeze_heap()
        self.store.on_load = _refreeze_heap  # every later load, in every worker

    def __is_ready__(self) -> bool:
        """Ready when the lead-scoring, deal-win and time-to-close champions are loaded."""
        return self.store.ready()[0]

    @bentoml.api(route="/lead_score", input_spec=LeadScoreRequest, output_spec=LeadScoreResponse)
    async def lead_score(
        self, lead: BaseModel | None = None, leads: list[BaseModel] | None = None
    ) -> JSONResponse:
        """Conversion probability, score (0-100), band and reasons of one lead or a list."""
        records, single = ([lead], True) if lead is not None else (list(leads or []), False)
        return await _inline_or_thread(len(records), self._scores, LEAD_SCORING, records, "lead", single)

    @bentoml.api(route="/score_export", input_spec=ExportRowsRequest, output_spec=ExportScoreResponse)
    def score_export(self, rows: list[dict[str, Any]]) -> JSONResponse:
        """Scores of flat-export rows from the served lead model, when it was trained on that export."""
        try:
            model = self.store.get(LEAD_SCORING).model
            return JSONResponse(scoring.json_safe(scoring.export_records(model, rows)))
        except ModelUnavailableError as exc:
            return _error(503, str(exc))
        except (scoring.NotServableError, ScoringError) as exc:
            return _refused(exc)

    @bentoml.api(route="/win_probability", input_spec=DealRequest, output_spec=DealScoreResponse)
    async def win_probability(
        self, deal: BaseModel | None = None, deals: list[BaseModel] | None = None
    ) -> JSONResponse:
        """Win probability, score, band and reasons of one deal or a list."""
        records, single = ([deal], True) if deal is not None else (list(deals or []), False)
        return await _inline_or_thread(len(records), self._scores, DEAL_WIN, records, "opportunity", single)

    @bentoml.api(route="/time_to_close", input_spec=DealRequest, output_spec=CloseDatesResponse)
    async def time_to_close(
        self, deal: BaseModel | None = None, deals: list[BaseModel] | None = None
    ) -> JSONResponse:
        """P(close within 30/60/90 days), P10/P50/P90 close dates, slip risk and reasons."""
        records, single = ([deal], True) if deal is not None else (list(deals or []), False)
        return await _inline_or_thread(len(records), self._close_dates, records, single)

    def _close_dates(self, records: list[BaseModel], single: bool) -> JSONResponse:
        try:
            model = self.store.get(TIME_TO_CLOSE).model
            scoring.check_stages(model, records, "deal" if single else "deals", single)
            return _answer(scoring.close_records(model, records, now=self._default_as_of()), single)
        except (WarehouseBusyError, FileNotFoundError, duckdb.Error) as exc:
            return _warehouse_error(exc)
        except scoring.UnknownValueError as exc:
            return _unknown_value(exc)
        except ModelUnavailableError as exc:
            return _error(503, str(exc))
        except (scoring.NotServableError, ScoringError) as exc:
            return _refused(exc)

    @bentoml.api(route="/flags", input_spec=FlagsRequest, output_spec=FlagsResponse)
    def flags(
        self,
        lead: BaseModel | None = None,
        leads: list[BaseModel] | None = None,
        deal: BaseModel | None = None,
        deals: list[BaseModel] | None = None,
    ) -> JSONResponse:
        """At-risk and going-cold flags of leads or deals, each with evidence and a suggested action."""
        entity: Entity = "lead" if lead is not None or leads is not None else "opportunity"
        one = lead if lead is not None else deal
        records, single = ([one], True) if one is not None else (list(leads or deals or []), False)
        if entity == "opportunity":  # the stages the deal models know (when one is served)
            known = next((m for m in map(self.store.optional, (DEAL_WIN, TIME_TO_CLOSE)) if m), None)
            try:
                if known is not None:
                    scoring.check_stages(known.model, records, "deal" if single else "deals", single)
            except scoring.UnknownValueError as exc:
                return _unknown_value(exc)
        churn_name = CHURN_RISK_LEADS if entity == "lead" else CHURN_RISK
        churn = self.store.optional(churn_name)
        if churn is not None and (churn.model.meta.entity != entity or not churn.model.meta.is_warehouse):
            churn = None  # a champion of another kind: as the batch flags, leave p_churn out
        try:
            history = self._history(entity)
            now = self._default_as_of()
        except (WarehouseBusyError, FileNotFoundError, duckdb.Error) as exc:
            return _warehouse_error(exc)
        try:
            results, skipped = scoring.flag_records(
                records,
                entity,
                history=history,
                config=self.flags_config,
                churn=None if churn is None else churn.model,
                now=now,
            )
        except scoring.NotServableError as exc:
            return _refused(exc)
        notes = (
            []
            if churn is not None
            else [f"no {churn_name} champion: p_churn and the churn_risk flag are left out"]
        )
        if not self.settings.serve_warehouse:
            notes.append(
                "served without --warehouse: flags learned from history "
                "(going cold, ghosted, stalled) are not raised"
            )
        return _answer(results, single, not_evaluated=skipped, notes=notes)

    @bentoml.api(route="/revenue_forecast", input_spec=RevenueRequest, output_spec=RevenueResponse)
    def revenue_forecast(self, **request: Any) -> JSONResponse:
        """Revenue per period with P10/P50/P90 and the chance of reaching the quota."""
        req = RevenueRequest.model_construct(**request)
        try:
            win = self.store.get(DEAL_WIN).model
            close = self.store.get(TIME_TO_CLOSE).model
        except ModelUnavailableError as exc:
            return _error(503, str(exc))
        if req.deals is None:
            if req.quota is not None:
                return _error(
                    422, "quota: send it with 'deals' (the warehouse's forecast uses its quotas)", ["quota"]
                )
            try:
                return self._warehouse_revenue(req, win, close)
            except (WarehouseBusyError, FileNotFoundError, duckdb.Error) as exc:
                return _warehouse_error(exc)
            except (LookupError, ValueError) as exc:
                return _error(422, f"the warehouse's pipeline cannot be forecast: {exc}")
        try:
            default = self._default_as_of()
        except (WarehouseBusyError, FileNotFoundError, duckdb.Error) as exc:
            return _warehouse_error(exc)
        as_of = scoring.moment(req.as_of, default if default is not None else scoring.utc_now())
        try:
            scoring.check_stages(win, list(req.deals), "deals", False)
            result = scoring.forecast_deals(
                win,
                close,
                list(req.deals),
                as_of=as_of,
                periods=req.periods,
                by=req.by,
                group=req.group,
                quota=req.quota,
                n_sims=req.simulations,
                seed=req.seed,
            )
            return JSONResponse(scoring.json_safe(result))
        except scoring.UnknownValueError as exc:
            return _unknown_value(exc)
        except scoring.NotServableError as exc:
            return _refused(exc)

    @bentoml.api(route="/admin/reload", input_spec=ReloadRequest, output_spec=ReloadResponse)
    def reload(self, model: str | None = None) -> JSONResponse:
        """Check the registry's champion aliases now and load the ones that moved."""
        try:
            result = self.store.refresh(only=model)
        except KeyError as exc:
            return _error(404, str(exc).strip("'\""), ["model"])
        self._histories.clear()
        self._as_of = None
        problem = self.store.signal_reload(self.signal)  # the other workers follow
        body = {"reload": result, "models": self.store.status(), "notes": [problem] if problem else []}
        return JSONResponse(body)

    def _scores(self, name: str, records: list[BaseModel], entity: Entity, single: bool) -> JSONResponse:
        try:
            model = self.store.get(name).model
            if entity == "opportunity":
                scoring.check_stages(model, records, "deal" if single else "deals", single)
            return _answer(scoring.score_records(model, records, entity, now=self._default_as_of()), single)
        except (WarehouseBusyError, FileNotFoundError, duckdb.Error) as exc:
            return _warehouse_error(exc)
        except scoring.UnknownValueError as exc:
            return _unknown_value(exc)
        except ModelUnavailableError as exc:
            return _error(503, str(exc))
        except scoring.NotServableError as exc:
            return _refused(exc)

    def _default_as_of(self) -> Any:
        """A request's as-of when it sends none: the served warehouse's, as the CLI's default.

        Read once, again after a reload (like the histories); ``None`` (the clock) without ``--warehouse``.
        """
        if not self.settings.serve_warehouse:
            return None
        if self._as_of is None or self._as_of[0] != self.store.generation:
            self._as_of = (self.store.generation, scoring.warehouse_as_of(self.settings))
        return self._as_of[1]

    def _history(self, entity: Entity) -> Any:
        """The warehouse's history of ``entity`` (read once, again after a reload), or an empty one."""
        if not self.settings.serve_warehouse:
            return scoring.empty_history(entity)
        cached = self._histories.get(entity)
        if cached is None or cached[0] != self.store.generation:  # read again after any model load
            from forecast.features.source import warehouse_source
            from forecast.flags.history import load_history

            with warehouse_source(self.settings.warehouse) as src:
                cached = (self.store.generation, load_history(src, entity, self.flags_config))
            self._histories[entity] = cached
        return cached[1]

    def _held_out(self, win: Any, close: Any) -> Any:
        """The evaluation models of the served pair (loaded once per pair of runs)."""
        from forecast.revenue.job import held_out_models

        key = (win.run_id, close.run_id)
        if key not in self._held_outs:
            self._held_outs = {key: held_out_models(win, close, self.settings)}  # only the current pair
        return self._held_outs[key]

    def _warehouse_revenue(self, req: RevenueRequest, win: Any, close: Any) -> JSONResponse:
        from forecast.revenue.job import deal_models, revenue_job

        if not self.settings.serve_warehouse:
            return _error(
                422,
                "send 'deals', or start the service with --warehouse to forecast the warehouse's pipeline",
                ["deals"],
            )
        as_of = None if req.as_of is None else scoring.moment(req.as_of, scoring.utc_now())
        result = revenue_job(
            self.settings,
            as_of=as_of,
            periods=req.periods,
            by=req.by,
            group=req.group,
            n_sims=req.simulations,
            seed=req.seed,
            models=deal_models(win, close, self._held_out(win, close)),
        )
        return JSONResponse(scoring.json_safe(result.to_dict()))


INLINE_RECORDS = 16
"""Up to this many records an async route scores on the event loop (a few ms); more go to a thread."""


async def _inline_or_thread(n: int, fn: Callable[..., JSONResponse], *args: Any) -> JSONResponse:
    """``fn(*args)`` inline for a few records, in a worker thread for more (the loop stays free)."""
    if n <= INLINE_RECORDS:
        return fn(*args)
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))


def _refreeze_heap() -> None:
    """After a load: let the replaced model go, then freeze what is alive again."""
    gc.unfreeze()
    _freeze_heap()


def _freeze_heap() -> None:
    """Move what is alive now (libraries, models) out of the collector's sight.

    Full collections then walk only what requests create, which keeps them short.
    """
    gc.collect()
    gc.freeze()


# the dashboard first: the info app's mount at "/" would take every path
ForecastService.mount_asgi_app(  # type: ignore[attr-defined]
    dashboard_mount.MountedDashboard(), path=dashboard_mount.PREFIX, name="dashboard"
)
ForecastService.mount_asgi_app(info_app, path="/", name="info")  # type: ignore[attr-defined]
ForecastService.add_asgi_middleware(GuardMiddleware)  # type: ignore[attr-defined]
