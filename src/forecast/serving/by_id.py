"""Scores by record id: ``GET /win_probability/{id}``, ``/lead_score/{id}``, ``/time_to_close/{id}``, flags.

The CRM sends an id, not features: the record's point-in-time features come from the warehouse
(:mod:`forecast.serving.records`: the batch scorer's feature table at the as-of, read without
blocking imports) and are scored by the batch job's own functions on that record's row
(:func:`~forecast.scoring.frame.score_frame`, :func:`~forecast.scoring.close_dates.close_date_columns`,
the flag rules), so each answer is what ``forecast score leads|deals --from-warehouse`` and
``forecast flags`` write for the record. The as-of is the warehouse's default (midnight after its
last event, as the CLI's) or ``?as_of=`` (an ISO date or time, as ``--as-of``).

Answers: 200 ``{"result": {...}, "warehouse": {...}}``; 404 ``not_found`` (no such record) or
``not_open`` (closed, converted or not yet created at the as-of, so the batch does not score it);
400 naming ``as_of`` or ``entity``; 422 without ``--warehouse``; 503 while no model is served or the
warehouse can be read neither now nor from an earlier read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import duckdb
import numpy as np
import pandas as pd
from fastapi import APIRouter, Path, Query
from starlette.responses import JSONResponse

from forecast.config import Settings
from forecast.data.warehouse import WarehouseBusyError
from forecast.errors import InputError, truncate
from forecast.features.build import ID_COLUMN, Entity
from forecast.flags.config import FlagsConfig
from forecast.models.names import CHURN_RISK, CHURN_RISK_LEADS, DEAL_WIN, LEAD_SCORING, TIME_TO_CLOSE
from forecast.models.unseen import unseen_warnings
from forecast.registry import LoadedModel
from forecast.scoring.close_dates import close_date_columns
from forecast.scoring.frame import score_frame
from forecast.scoring.reasons import reason_codes
from forecast.serving import scoring
from forecast.serving.errors import error_response, warehouse_error
from forecast.serving.records import Found, Table, WarehouseRecords
from forecast.serving.schemas import EARLIEST, LATEST
from forecast.serving.store import ModelStore, ModelUnavailableError
from forecast.timeutil import parse_time

BAD_TIME = "is not an ISO date or time (YYYY-MM-DD[THH:MM:SS[+HH:MM]])"
ENTITIES: dict[str, Entity] = {"deal": "opportunity", "lead": "lead"}
"""The ``{entity}`` of ``/flags/{entity}/{id}``: the words of ``forecast flags --entity``."""
WORD = {"opportunity": "deal", "lead": "lead"}


@dataclass
class Context:
    """What the routes need from the running service (one per worker)."""

    settings: Settings
    store: ModelStore
    flags_config: FlagsConfig
    records: WarehouseRecords


class _Served:
    context: Context | None = None


def serve(context: Context) -> None:
    """Answer the by-id routes of this worker with ``context`` (called when the service starts)."""
    _Served.context = context


router = APIRouter()


def parse_as_of(value: str | None) -> pd.Timestamp | None:
    """``?as_of=`` as ``--as-of`` reads it (naive UTC), between 1900 and 2100; ``None`` when absent.

    Raises:
        InputError: Not an ISO date or time, or out of range (parameter ``as_of``).
    """
    if value is None:
        return None
    when = parse_time(truncate(value, 60), "as_of")
    if not pd.Timestamp(EARLIEST) <= when < pd.Timestamp(LATEST):
        raise InputError(f"must lie between {EARLIEST.year} and {LATEST.year}", parameter="as_of")
    return when


class NotAnswerableError(Exception):
    """A request the routes refuse with ``response`` (unknown id, bad parameter, missing model)."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


Answer = Callable[[Context, Found, pd.DataFrame], dict[str, Any]]


async def _by_id(
    entity: Entity, record_id: str, as_of: str | None, answer: Answer, history: bool = False
) -> JSONResponse:
    """Find the record's row at the as-of and answer it; read the warehouse in a thread if needed."""
    context = _Served.context
    if context is None:
        return error_response(503, "the service is starting")
    if not context.settings.serve_warehouse:
        return error_response(
            422, "scores by id read the warehouse: start the service with --warehouse (forecast serve)"
        )
    try:
        when = parse_as_of(as_of)
    except InputError as exc:  # the message without the value sent (no answer echoes input)
        message = f"as_of {exc.message if exc.message.startswith('must') else BAD_TIME}"
        return error_response(400, message, ["as_of"], code="invalid_request", rule="date")
    found = context.records.cached(entity, when, history)

    def work(found: Found | None) -> JSONResponse:
        if found is None:
            found = context.records.table(entity, when, history)
        return _respond(found, answer(context, found, _row(found, entity, record_id)))

    try:
        if found is not None and not (history and _flags_due(context, found)):
            return work(found)  # a few milliseconds: on the event loop, as the POST routes
        return await anyio.to_thread.run_sync(work, found)  # reads the warehouse or flags a table
    except NotAnswerableError as exc:
        return exc.response
    except (WarehouseBusyError, FileNotFoundError, duckdb.Error) as exc:
        return warehouse_error(exc)
    except LookupError as exc:
        return error_response(422, str(exc).strip("'\""), ["as_of"])


def _row(found: Found, entity: Entity, record_id: str) -> pd.DataFrame:
    """The record's one-row feature frame.

    Raises:
        NotAnswerableError: 404 when the warehouse has no such record or it is not open at the as-of.
    """
    row = found.table.row(record_id)
    if row is not None:
        return row
    word, when, id_col = WORD[entity], found.table.as_of.isoformat(), ID_COLUMN[entity]
    if record_id in found.state.ids.get(entity, frozenset()):
        message = (
            f"the {word} with this {id_col} is not open as of {when} (closed, converted or created later): "
            "the batch scores only open records"
        )
        raise NotAnswerableError(error_response(404, message, [id_col], code="not_open"))
    message = f"no {word} with this {id_col} in the warehouse (read at {found.state.read_at.isoformat()})"
    raise NotAnswerableError(error_response(404, message, [id_col], code="not_found"))


def _respond(found: Found, result: dict[str, Any]) -> JSONResponse:
    state = found.state
    warehouse = {"read_at": state.read_at.isoformat(), "stale": found.stale}
    notes = (
        ["the warehouse is being written (an import?): answered from its state read at "
         f"{state.read_at.isoformat()}"]
        if found.stale
        else []
    )  # fmt: skip
    return JSONResponse(scoring.json_safe({"result": result, "warehouse": warehouse, "notes": notes}))


def _model(context: Context, name: str, entity: Entity) -> LoadedModel:
    """The served model of ``name``, if it scores the warehouse's ``entity``.

    Raises:
        NotAnswerableError: 503 when none is served, 422 when it was trained on a flat export.
    """
    try:
        model = context.store.get(name).model
    except ModelUnavailableError as exc:
        raise NotAnswerableError(error_response(503, str(exc))) from None
    if not model.meta.is_warehouse or model.meta.entity != entity:
        raise NotAnswerableError(
            error_response(
                422,
                f"model {model.name} v{model.version} was not trained on the warehouse's {WORD[entity]}s: "
                "it cannot score a record by id (send its features to the POST route)",
            )
        )
    return model


# ------------------------------------------------------------------------------------ answers


def score_answer(
    model: LoadedModel, row: pd.DataFrame, entity: Entity, warnings: list[str] | None = None
) -> dict[str, Any]:
    """Probability, score, band and reasons of one warehouse row: ``score_frame``'s, as the batch's.

    ``warnings``: the row's unseen values, when known (else computed for the row).
    """
    return score_answers(model, row, entity, None if warnings is None else [warnings])[0]


def score_answers(
    model: LoadedModel, frame: pd.DataFrame, entity: Entity, warnings: list[list[str]] | None = None
) -> list[dict[str, Any]]:
    """:func:`score_answer` of every row of ``frame`` at once (one ``score_frame`` call, as the batch)."""
    id_col = ID_COLUMN[entity]
    scored = score_frame(model, frame, frame[id_col])
    score_name = model.meta.score_name
    warned = unseen_warnings(model.pipeline, frame) if warnings is None else warnings
    ids, as_of = frame[id_col].astype(str).tolist(), frame["as_of"].tolist()
    p, score, band = scored[score_name].tolist(), scored["score"].tolist(), scored["band"].tolist()
    reasons = [scoring.reason_lists(r) for r in scored.to_dict(orient="records")]
    return [
        {
            id_col: ids[i],
            "as_of": pd.Timestamp(as_of[i]).isoformat(),
            score_name: float(p[i]),
            "score": int(score[i]),
            "band": str(band[i]),
            "reasons": reasons[i],
            "features_used": len(model.meta.features),
            "model_name": model.name,
            "model_version": model.version,
            "warnings": list(warned[i]),
        }
        for i in range(len(frame))
    ]


def close_answer(model: LoadedModel, row: pd.DataFrame, warnings: list[str] | None = None) -> dict[str, Any]:
    """The close-date distribution of one deal's warehouse row (``close_date_columns``), with reasons."""
    return close_answers(model, row, None if warnings is None else [warnings])[0]


def close_answers(
    model: LoadedModel, frame: pd.DataFrame, warnings: list[list[str]] | None = None
) -> list[dict[str, Any]]:
    """:func:`close_answer` of every deal row of ``frame`` at once."""
    columns = close_date_columns(model, frame)
    meta = model.meta
    why = reason_codes(
        model.pipeline,
        frame[list(meta.features)],
        dict(meta.descriptions),
        top_k=3,
        kinds=dict.fromkeys(meta.categorical, "categorical"),
    )
    warned = unseen_warnings(model.pipeline, frame) if warnings is None else warnings
    ids, as_of = frame["opportunity_id"].astype(str).tolist(), frame["as_of"].tolist()
    reasons = [scoring.reason_lists(r) for r in why.to_dict(orient="records")]
    return [
        {
            "opportunity_id": ids[i],
            "as_of": pd.Timestamp(as_of[i]).isoformat(),
            **scoring.close_fields(columns.iloc[i]),
            "reasons": reasons[i],
            "model_name": model.name,
            "model_version": model.version,
            "warnings": list(warned[i]),
        }
        for i in range(len(frame))
    ]


@dataclass(frozen=True)
class TableFlags:
    """The flags of every record of a table (computed once, as ``forecast flags`` does)."""

    by_row: dict[int, list[dict[str, Any]]]
    summary: pd.DataFrame
    p_churn: np.ndarray | None
    churn: LoadedModel | None
    skipped: dict[str, str]


def table_flags(
    history: Any, frame: pd.DataFrame, entity: Entity, as_of: pd.Timestamp, config: FlagsConfig, churn: Any
) -> TableFlags:
    """Every flag of the records of ``frame`` at ``as_of`` with the flags job's functions.

    ``churn``: the served churn model of ``entity`` (``None``: no p_churn, no churn flag).
    """
    from forecast.flags.compute import availability, churn_probability, flag_snapshot
    from forecast.flags.rules import skipped_flags

    p = reasons = None
    if churn is not None and len(frame):
        scorer = scoring.churn_scorer(churn)
        p, reasons = churn_probability(scorer, frame, threshold=config.churn_threshold(entity))
    result = flag_snapshot(history, frame, as_of, config, p_churn=p, churn_reason=reasons)
    flags = result.flags
    by_row: dict[int, list[dict[str, Any]]] = {}
    records = scoring.json_records(flags.drop(columns="row"))
    for i, record in zip(flags["row"].to_numpy(), records, strict=True):
        by_row.setdefault(int(i), []).append(record)
    return TableFlags(by_row, result.summary, p, churn, skipped_flags(entity, config, availability(history)))


def flags_answer(
    flags: TableFlags, row: int, record_id: str, entity: Entity, as_of: pd.Timestamp
) -> dict[str, Any]:
    """One record's flags from its table's, in the shape of ``POST /flags``'s results."""
    summary = flags.summary.iloc[row]
    churn = flags.churn
    return {
        ID_COLUMN[entity]: record_id,
        "as_of": as_of.isoformat(),
        "at_risk": bool(summary["at_risk"]),
        "top_flag": summary["top_flag"],
        "suggested_action": summary["suggested_action"],
        "flags": flags.by_row.get(row, []),
        "p_churn": None if flags.p_churn is None else round(float(flags.p_churn[row]), 6),
        "churn_model": None if churn is None else {"name": churn.name, "version": churn.version},
        "not_evaluated": flags.skipped,
    }


def _remembered(table: Table, key: tuple[Any, ...], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()``, kept in the table: a record asked for again is not scored again."""
    answer = table.derived.get(key)
    if answer is None:
        answer = table.derived[key] = compute()
    return answer


def _table_warnings(table: Table, model: LoadedModel) -> list[list[str]]:
    """The unseen values of every row of the table, computed once (per row it costs as much)."""
    key = ("warnings", model.name, model.version)
    every = table.derived.get(key)
    if every is None:
        every = table.derived[key] = unseen_warnings(model.pipeline, table.frame)
    return every


def _warnings(table: Table, model: LoadedModel, row: pd.DataFrame) -> list[str]:
    """The row's unseen values (from the table's)."""
    every = _table_warnings(table, model)
    return list(every[table.rows[str(row[ID_COLUMN[table.entity]].iloc[0])]])


def _scores(context: Context, found: Found, row: pd.DataFrame, name: str) -> dict[str, Any]:
    table = found.table
    model = _model(context, name, table.entity)
    key = ("score", model.name, model.version, str(row[ID_COLUMN[table.entity]].iloc[0]))
    return _remembered(
        table, key, lambda: score_answer(model, row, table.entity, _warnings(table, model, row))
    )


def _win(context: Context, found: Found, row: pd.DataFrame) -> dict[str, Any]:
    return _scores(context, found, row, DEAL_WIN)


def _lead(context: Context, found: Found, row: pd.DataFrame) -> dict[str, Any]:
    return _scores(context, found, row, LEAD_SCORING)


def _close(context: Context, found: Found, row: pd.DataFrame) -> dict[str, Any]:
    table = found.table
    model = _model(context, TIME_TO_CLOSE, "opportunity")
    key = ("close", model.name, model.version, str(row["opportunity_id"].iloc[0]))
    return _remembered(table, key, lambda: close_answer(model, row, _warnings(table, model, row)))


WARM_MAX_ROWS = 20_000
"""Largest default table whose answers are all computed ahead of requests (larger: per request)."""
WARMED: dict[Entity, tuple[tuple[str, str], ...]] = {
    "opportunity": ((DEAL_WIN, "score"), (TIME_TO_CLOSE, "close")),
    "lead": ((LEAD_SCORING, "score"),),
}
"""The served models whose answers :func:`warm` computes, per entity, and the kind of answer."""


def warm(context: Context) -> int:
    """Compute every answer of the current state's default tables ahead of requests, in batch.

    Called by the refresher thread after each read and each model change: one ``score_frame`` (or
    ``close_date_columns``) over a table costs about what a few single rows do, so that a request
    is then a lookup. Idempotent per table and model version; tables above :data:`WARM_MAX_ROWS`
    and models not served are left to the requests.

    Returns:
        How many answers were computed.
    """
    state = context.records.current()
    if state is None or state.default_as_of is None:
        return 0
    done = 0
    for (entity, when), table in list(state.tables.items()):
        if when != state.default_as_of or not 0 < len(table.frame) <= WARM_MAX_ROWS:
            continue
        for name, kind in WARMED[entity]:
            try:
                model = _model(context, name, entity)
            except NotAnswerableError:
                continue
            marker = ("warm", kind, model.name, model.version)
            if marker in table.derived:
                continue
            warned = _table_warnings(table, model)
            if kind == "score":
                answers = score_answers(model, table.frame, entity, warned)
            else:
                answers = close_answers(model, table.frame, warned)
            id_col = ID_COLUMN[entity]
            for answer in answers:
                table.derived.setdefault((kind, model.name, model.version, answer[id_col]), answer)
            table.derived[marker] = True
            done += len(answers)
    return done


def _churn(context: Context, entity: Entity) -> LoadedModel | None:
    """The served churn model of ``entity``; one of another kind is left out, as the batch flags do."""
    churn = context.store.optional(CHURN_RISK_LEADS if entity == "lead" else CHURN_RISK)
    if churn is not None and churn.model.meta.entity == entity and churn.model.meta.is_warehouse:
        return churn.model
    return None


def _flags_key(model: LoadedModel | None) -> tuple[str, Any]:
    return ("flags", None if model is None else (model.name, model.version))


def _flags_due(context: Context, found: Found) -> bool:
    """Whether the table's flags are still to be computed (with the served churn model)."""
    return _flags_key(_churn(context, found.table.entity)) not in found.table.derived


def _flags(context: Context, found: Found, row: pd.DataFrame) -> dict[str, Any]:
    table = found.table
    entity = table.entity
    model = _churn(context, entity)
    key = _flags_key(model)
    flags = table.derived.get(key)
    if flags is None:  # the first flags request of this table: every record at once, as the job
        history = found.state.histories[entity]
        flags = table_flags(history, table.frame, entity, table.as_of, context.flags_config, model)
        table.derived[key] = flags
    record_id = str(row[ID_COLUMN[entity]].iloc[0])
    return flags_answer(flags, table.rows[record_id], record_id, entity, table.as_of)


# ------------------------------------------------------------------------------------- routes

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such record (not_found), or not open at the as-of (not_open)"}
}
AsOf = Query(
    default=None,
    description="Score as of this time (ISO date or time, UTC when it has no zone); "
    "default: midnight after the warehouse's last event, as `forecast score`",
)


@router.get(
    "/win_probability/{opportunity_id}",
    responses=NOT_FOUND,
    summary="Win probability, score, band and reasons of a deal of the warehouse, by its id",
)
async def win_probability_by_id(opportunity_id: str, as_of: str | None = AsOf) -> JSONResponse:
    """What ``forecast score deals --from-warehouse`` gives for the deal: p_win, score, band, reasons."""
    return await _by_id("opportunity", opportunity_id, as_of, _win)


@router.get(
    "/lead_score/{lead_id}",
    responses=NOT_FOUND,
    summary="Conversion probability, score, band and reasons of a lead of the warehouse, by its id",
)
async def lead_score_by_id(lead_id: str, as_of: str | None = AsOf) -> JSONResponse:
    """What ``forecast score leads --from-warehouse`` gives for the lead: p_convert, score, band, reasons."""
    return await _by_id("lead", lead_id, as_of, _lead)


@router.get(
    "/time_to_close/{opportunity_id}",
    responses=NOT_FOUND,
    summary="P(close within 30/60/90 days), close dates and slip risk of a deal of the warehouse, by its id",
)
async def time_to_close_by_id(opportunity_id: str, as_of: str | None = AsOf) -> JSONResponse:
    """The close-date columns ``forecast score deals`` writes for the deal, with the close model's reasons."""
    return await _by_id("opportunity", opportunity_id, as_of, _close)


@router.get(
    "/flags/{entity}/{record_id}",
    responses=NOT_FOUND,
    summary="At-risk and going-cold flags of a deal or lead of the warehouse, by its id",
)
async def flags_by_id(
    entity: str = Path(description="deal or lead"),
    record_id: str = Path(description="the lead_id or opportunity_id"),
    as_of: str | None = AsOf,
) -> JSONResponse:
    """The flags ``forecast flags`` gives for the record, with evidence and suggested actions."""
    kind = ENTITIES.get(entity)
    if kind is None:
        return error_response(
            400,
            "entity must be deal or lead",
            ["entity"],
            code="invalid_request",
            rule="enum",
        )
    return await _by_id(kind, record_id, as_of, _flags, history=True)
