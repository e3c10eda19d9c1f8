"""What each endpoint computes, over the domain code: records in, JSON-ready answers out.

No HTTP here: the service validates the request, takes the current models from the store and
calls these functions, which reuse the scoring package (:func:`forecast.scoring.frame.score_frame`,
the batch job's scorer), the close-date columns, the flag rules and the revenue Monte Carlo, so
the API and the batch jobs give the same numbers for the same features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sklearn.pipeline import Pipeline

from forecast.errors import truncate
from forecast.features.build import ID_COLUMN, Entity, feature_catalogue
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.models.survival import DiscreteTimeHazard
from forecast.models.unseen import known_values, known_values_text, unseen_warnings
from forecast.models.win_horizon import read_days, read_proba
from forecast.registry import LoadedModel
from forecast.scoring import fastpath
from forecast.scoring.bands import band_of
from forecast.scoring.close_dates import close_date_arrays, close_date_columns
from forecast.scoring.contributions import contributions
from forecast.scoring.export_rows import score_export_rows
from forecast.scoring.frame import fast_proba_and_reason_array, proba_and_reason_array, score_frame
from forecast.scoring.reasons import dtype_kind, reason_array, reason_columns
from forecast.serving.record_columns import RecordColumns, catalogue_kinds, moment

MAX_GROUPS = 50
"""Most groups (teams, regions) in one revenue forecast of sent deals."""
MAX_SIM_CELLS = 5_000_000
"""Most simulations × periods × (groups + 1) in one forecast (each cell is 8 bytes, several copies)."""
MAX_AS_OF = 10
"""Most distinct ``as_of`` values in one flags request (each is a snapshot of its own)."""


class NotServableError(ValueError):
    """The request cannot be answered with these models (a 4xx the client can act on)."""


class UnknownValueError(ValueError):
    """A sent value the model never saw where it must know it (a 400 naming the fields).

    Args:
        message: What is wrong and the values the model knows.
        paths: The path of each field at fault (``["deals", 0, "stage"]``).
        rule: The rule they broke.
    """

    def __init__(self, message: str, paths: list[list[str | int]], rule: str = "unknown_stage") -> None:
        super().__init__(message)
        self.paths = paths
        self.rule = rule


def check_stages(model: LoadedModel, records: Sequence[BaseModel], field: str, single: bool) -> None:
    """Refuse deals whose ``stage`` the model never saw in training (a missing stage is fine).

    The known stages are every stage of the model's training rows (its category encoder's
    levels, pooled ones included). A model that does not encode ``stage`` knows no stages to
    compare with, and refuses nothing.

    Args:
        model: The model scoring the deals.
        records: The sent deals.
        field: The request's field holding them (``deal`` or ``deals``).
        single: Whether one deal was sent (its path has no index).

    Raises:
        UnknownValueError: Naming each deal's path and the known stages.
    """
    known = known_values(model.pipeline, "stage")
    if known is None:
        return
    allowed = set(known)
    bad = [
        (i, stage)
        for i, r in enumerate(records)
        if isinstance(stage := getattr(r, "stage", None), str) and stage not in allowed
    ]
    if not bad:
        return
    paths: list[list[str | int]] = [[field, "stage"] if single else [field, i, "stage"] for i, _ in bad]
    first = ".".join(map(str, paths[0]))
    more = f" (and {len(bad) - 1} more deal(s))" if len(bad) > 1 else ""
    raise UnknownValueError(
        f"{first}: {truncate(bad[0][1], 60)!r} is not a stage {model.name} v{model.version} "
        f"saw in training{more}; known stages: {known_values_text(known)}",
        paths,
    )


def utc_now() -> pd.Timestamp:
    """Now in UTC to the second, without a time zone (the warehouse's convention).

    ``forecast.timeutil.utc_now().floor("s")``, built from the standard library's clock: pandas'
    zone conversion and rounding cost 50 µs, a tenth of a one-record request.
    """
    return pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0))


def warehouse_as_of(settings: Any) -> pd.Timestamp | None:
    """The as-of of a request that sends none: the served warehouse's, as the CLI's; ``None`` without one.

    With ``--warehouse`` it is the CRM's default as-of (midnight after the day of its last event,
    :func:`forecast.timeutil.as_of_after`), the moment ``forecast score`` and ``forecast flags``
    use: close dates count from it and flags judge the warehouse's history at it. Without a
    warehouse (or with one holding no dated event) the service knows no data's time, and the
    caller uses the clock (:func:`utc_now`).

    Raises:
        FileNotFoundError, WarehouseBusyError, duckdb.Error: If the warehouse cannot be read.
    """
    if not settings.serve_warehouse:
        return None
    from forecast.features.source import warehouse_source

    with warehouse_source(settings.warehouse) as src:
        try:
            return src.default_as_of()
        except ValueError:  # nothing dated yet
            return None


def reason_kinds(model: LoadedModel, entity: Entity) -> dict[str, str]:
    """How reasons word each feature: the model's categories, the catalogue's booleans.

    The API's frame holds booleans as 1.0 / 0.0; the warehouse's as ``bool``, which the wording
    recognises by dtype. Naming them keeps the reasons the same words in both.
    """
    kinds = {f.name: "boolean" for f in feature_catalogue(entity) if f.kind == "boolean"}
    kinds.update(dict.fromkeys(model.meta.categorical, "categorical"))
    return kinds


def records_frame(records: Sequence[BaseModel], entity: Entity, now: pd.Timestamp) -> pd.DataFrame:
    """One row per record: the id, ``as_of`` and every catalogue feature (missing: NaN / None).

    Numbers and booleans become floats (booleans 1.0 / 0.0), categories stay text, as in the
    feature tables the models were trained on. Built as two blocks (numbers, text): a column at a
    time cost more than scoring the record.
    """
    id_col = ID_COLUMN[entity]
    numeric, categorical = catalogue_kinds(entity)
    rows = [r.__dict__ for r in records]
    head = pd.DataFrame(
        {
            id_col: [row[id_col] for row in rows],
            "as_of": [moment(row.get("as_of"), now) for row in rows],
        }
    )
    numbers = np.array([[row.get(n) for n in numeric] for row in rows], dtype=np.float64)
    texts = np.array([[row.get(n) for n in categorical] for row in rows], dtype=object)
    return pd.concat(
        [head, pd.DataFrame(numbers, columns=numeric), pd.DataFrame(texts, columns=categorical)], axis=1
    )


def _checked_columns(model: LoadedModel, frame: pd.DataFrame | RecordColumns) -> list[str]:
    """The model's input columns, all present in ``frame``; a model wanting others cannot be served."""
    meta = model.meta
    if meta.source not in (None, "warehouse"):
        raise NotServableError(
            f"model {model.name} v{model.version} was trained on a flat export; the API serves "
            "models trained on the warehouse's snapshot features (score flat files with `forecast score`)"
        )
    features = list(meta.features)
    present = set(frame.names if isinstance(frame, RecordColumns) else frame.columns)
    unknown = [c for c in features if c not in present]
    if unknown:
        raise NotServableError(
            f"model {model.name} v{model.version} needs columns the API does not take: {unknown[:5]}"
        )
    return features


def _model_columns(model: LoadedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns of ``frame`` (see :func:`_checked_columns`)."""
    return frame[_checked_columns(model, frame)]


def reason_lists(row: Any, top_k: int = 3) -> dict[str, list[str]]:
    """``{"up": [...], "down": [...]}`` from a row's ``reason_up_<i>`` / ``reason_down_<i>`` columns."""
    up = [row.get(f"reason_up_{i}") for i in range(1, top_k + 1)]
    down = [row.get(f"reason_down_{i}") for i in range(1, top_k + 1)]
    return {
        "up": [str(r) for r in up if isinstance(r, str)],
        "down": [str(r) for r in down if isinstance(r, str)],
    }


def _sent(record: BaseModel, names: Sequence[str]) -> int:
    values = record.__dict__  # the fields' values (getattr of each: the same, slower)
    return sum(values.get(n) is not None for n in names)


def score_records(
    model: LoadedModel, records: Sequence[BaseModel], entity: Entity, now: pd.Timestamp | None = None
) -> list[dict[str, Any]]:
    """Probability, score (0-100), band and reasons of each record, with the model's name and version.

    The numbers are :func:`forecast.scoring.frame.score_frame`'s; for a LightGBM pipeline they come
    straight from its array path (:func:`forecast.scoring.frame.proba_and_reason_array`) on the
    records' columns (:class:`~forecast.serving.record_columns.RecordColumns`), without the frames
    around them, which cost more than the scoring for one record.
    """
    when = now or utc_now()
    columns = RecordColumns(records, entity, when)
    used = _checked_columns(model, columns)
    id_col = ID_COLUMN[entity]
    meta = model.meta
    score_name = meta.score_name
    fast = fastpath.coded(model.pipeline)
    if fast is not None and isinstance(fast.model, CalibratedLGBMClassifier):
        kinds = reason_kinds(model, entity)
        if columns.has_features(fast.columns):  # the records' columns, no frame
            raw, texts = proba_and_reason_array(
                fast,
                columns.encode(fast.encoder, fast.columns),
                columns.values,
                lambda feature: kinds.get(feature) or columns.kind(feature),
                dict(meta.descriptions),
            )
            warnings = columns.unseen_warnings(model.pipeline, used)
        else:  # a model reading the id or as_of: the frame, as before
            frame = records_frame(records, entity, when)
            raw, texts = fast_proba_and_reason_array(fast, frame, dict(meta.descriptions), kinds)
            warnings = unseen_warnings(model.pipeline, frame[used])
        # as score_frame: score and band from the exact probability, the probability rounded
        p, scores = np.round(raw, 6), np.rint(raw * 100).astype(int)
        bands = band_of(raw, meta.bands)
        names = reason_columns(3)
        reasons: list[dict[Any, Any]] = [dict(zip(names, row, strict=True)) for row in texts]
    else:
        frame = records_frame(records, entity, when)
        scored = score_frame(model, frame[used], frame[id_col])
        p, bands = scored[score_name].to_numpy(dtype=float), scored["band"].to_numpy()
        scores = scored["score"].to_numpy()
        reasons = scored.to_dict(orient="records")
        warnings = unseen_warnings(model.pipeline, frame[used])
    ids = columns.ids
    return [
        {
            id_col: ids[i],
            score_name: float(p[i]),
            "score": int(scores[i]),
            "band": str(bands[i]),
            "reasons": reason_lists(reasons[i]),
            "features_sent": _sent(record, used),
            "features_used": len(used),
            "model_name": model.name,
            "model_version": model.version,
            "warnings": warnings[i],
        }
        for i, record in enumerate(records)
    ]


def _iso_date(value: Any) -> str | None:
    if isinstance(value, np.datetime64):  # the close dates' arrays: the day, as pd.Timestamp(value).date()
        return None if np.isnat(value) else value.astype("datetime64[D]").item().isoformat()
    return None if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()


def _finite(value: Any) -> float | None:
    number = float(value)
    return round(number, 6) if math.isfinite(number) else None


def close_fields(row: pd.Series) -> dict[str, Any]:
    """One deal's row of :func:`close_date_columns` as JSON: probabilities, then ISO dates.

    ``p_close_<d>d`` and ``slip_risk`` (``None`` when not finite), ``close_date_p10`` / ``p50`` /
    ``p90`` and ``expected_close_date`` (``None`` when unknown).
    """
    item: dict[str, Any] = {}
    for c in row.index:
        if c.startswith("p_close_") or c == "slip_risk":
            item[c] = _finite(row[c])
        elif c.startswith("close_date_") or c == "expected_close_date":
            item[c] = _iso_date(row[c])
    return item


def _close_fields_of(values: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """:func:`close_fields` of row ``i`` of :func:`close_date_columns`' columns (as arrays)."""
    item: dict[str, Any] = {}
    for c, column in values.items():
        if c.startswith("p_close_") or c == "slip_risk":
            item[c] = _finite(column[i])
        elif c.startswith("close_date_") or c == "expected_close_date":
            item[c] = _iso_date(column[i])
    return item


def close_records(
    model: LoadedModel, records: Sequence[BaseModel], now: pd.Timestamp | None = None
) -> list[dict[str, Any]]:
    """Close-date distribution of each deal, with the reasons and the model version.

    P(close within 30/60/90 days), P10/P50/P90 close dates and the slip risk against the rep's
    expected close date: :func:`close_date_columns`' numbers, for a hazard pipeline with an array
    path straight from the records' columns (one encoding for the curves and the reasons, no frames).
    """
    when = now or utc_now()
    columns = RecordColumns(records, "opportunity", when)
    used = _checked_columns(model, columns)
    fast = fastpath.coded(model.pipeline)
    kinds = reason_kinds(model, "opportunity")
    if (
        fast is not None
        and isinstance(fast.model, DiscreteTimeHazard)
        and model.meta.survival_edges
        and columns.has_features(fast.columns)
        and set(fast.columns) <= set(used)
    ):
        codes = columns.encode(fast.encoder, fast.columns)
        # the expected close date and slip risk whenever the deal has one, used by the model or not
        values = close_date_arrays(
            model, fast.survival(codes), columns.as_of_ns(), columns.values("days_to_expected_close")
        )
        why = reason_array(
            fast.hazard_contributions(codes)[:, :-1],
            fast.columns,
            columns.values,
            lambda feature: kinds.get(feature) or columns.kind(feature),
            dict(model.meta.descriptions),
            top_k=3,
        )
        warnings = columns.unseen_warnings(model.pipeline, used)
        moments = [pd.Timestamp(m) for m in columns.as_of_ns()]
    else:
        frame = records_frame(records, "opportunity", when)
        features = frame[used]
        cols = close_date_columns(
            model,
            features.assign(
                as_of=frame["as_of"].to_numpy(),
                days_to_expected_close=frame["days_to_expected_close"].to_numpy(),
            ),
        )
        # reason_codes' reasons, as an array (no frames around them for a few records)
        contrib = contributions(model.pipeline, features)
        why = reason_array(
            contrib.to_numpy(dtype=np.float64),
            [str(c) for c in contrib.columns],
            lambda feature: features[feature].to_numpy(),
            lambda feature: kinds.get(feature) or dtype_kind(features[feature]),
            dict(model.meta.descriptions),
            top_k=3,
        )
        warnings = unseen_warnings(model.pipeline, features)
        values = {c: cols[c].to_numpy() for c in cols.columns}
        moments = frame["as_of"].tolist()
    names = reason_columns(3)
    out = []
    for i, record in enumerate(records):
        item: dict[str, Any] = {"opportunity_id": columns.ids[i]}
        item["as_of"] = moments[i].isoformat()
        item.update(_close_fields_of(values, i))
        item["reasons"] = reason_lists(dict(zip(names, why[i], strict=True)))
        item["features_sent"] = _sent(record, used)
        item["model_name"] = model.name
        item["model_version"] = model.version
        item["warnings"] = warnings[i]
        out.append(item)
    return out


def win_and_timing(
    win: LoadedModel, close: LoadedModel, frame: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """p_win and the win-timing curve (cumulative, at the close model's edges) of each deal.

    p_win is the one the revenue forecast spreads: within the days the win model was read at
    (:func:`~forecast.models.win_horizon.read_proba`; the small-data stage model's tail past the
    follow-up is not booked), as ``forecast revenue`` does.
    """
    edges = close.meta.survival_edges
    if not edges:
        raise NotServableError(f"{close.name} v{close.version} is not a time-to-close model")
    columns = _model_columns(win, frame)
    p_win = (
        np.asarray(read_proba(win.pipeline, columns), dtype=float)
        if hasattr(win.pipeline.steps[-1][1], "read_proba")
        else fastpath.predict_proba(win.pipeline, columns)[:, 1]
    )
    prep, hazard = Pipeline(close.pipeline.steps[:-1]), close.pipeline.steps[-1][1]
    x = prep.transform(_model_columns(close, frame))
    wins = hazard.win_incidence(x) if hasattr(hazard, "win_incidence") else None
    closed_by = wins if wins is not None else 1.0 - hazard.survival(x)
    return p_win, closed_by, edges


def export_records(model: LoadedModel, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Score rows of a flat export with the lead model trained on that export (``/score_export``).

    Values are read as text, as ``forecast score leads --input`` reads the export's CSV, so the
    API and the batch scorer give the same numbers for the same rows.

    Raises:
        NotServableError: The model was not trained on a flat export, or a needed column is missing.
    """
    if model.meta.source != "flat_export":
        raise NotServableError(
            f"model {model.name} v{model.version} was trained on the warehouse's snapshots: send its "
            "features to /lead_score (/score_export needs a served lead model trained on a flat export)"
        )
    raw = pd.DataFrame([{str(k): None if v is None else str(v) for k, v in row.items()} for row in rows])
    try:
        scored, _id, _rows = score_export_rows(model, raw)
    except KeyError as exc:
        raise NotServableError(str(exc).strip("'\"")) from exc
    results = json_records(scored.scores.drop(columns=["scored_at"], errors="ignore"))
    return {
        "results": results,
        "count": len(results),
        "rejected": json_records(scored.rejects),
        "model": model.name,
        "version": model.version,
    }


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON: NaN, infinities and NaT as ``None``, times as ISO text, numpy as Python."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is pd.NaT:
        return None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, datetime | date):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN and NaT as ``None``, times as ISO text, numpy as Python)."""
    out = []
    for row in frame.to_dict(orient="records"):
        item: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float | np.floating) and not math.isfinite(float(value))):
                item[str(key)] = None
            elif isinstance(value, pd.Timestamp | datetime):
                item[str(key)] = None if pd.isna(value) else value.isoformat()
            elif isinstance(value, np.generic):
                item[str(key)] = value.item()
            else:
                item[str(key)] = (
                    None if not isinstance(value, str | bool | int | float) and pd.isna(value) else value
                )
        out.append(item)
    return out


def forecast_deals(
    win: LoadedModel,
    close: LoadedModel,
    records: Sequence[BaseModel],
    *,
    as_of: pd.Timestamp,
    periods: int,
    by: str,
    group: str | None,
    quota: Sequence[float] | None,
    n_sims: int,
    seed: int,
) -> dict[str, Any]:
    """Revenue forecast of the sent open deals: P10/P50/P90 per period (and group), against a quota.

    Only these deals count (no deals created later, nothing won to date), so the forecast is
    what this pipeline will bring in. Each deal needs an ``amount``.
    """
    from forecast.revenue.forecast import ALL, forecast_revenue, period_grid

    frame = records_frame(records, "opportunity", as_of).assign(as_of=as_of)
    missing = [i for i, r in enumerate(records) if getattr(r, "amount", None) is None]
    if missing:
        raise NotServableError(f"deals.{missing[0]}.amount: a revenue forecast needs each deal's amount")
    p_win, closed_by, edges = win_and_timing(win, close, frame)
    warnings = unseen_warnings(win.pipeline, frame)
    grid = period_grid(as_of, periods, by)
    labels = (
        frame[group].astype(object).where(frame[group].notna(), "(none)").astype(str)
        if group is not None
        else pd.Series(ALL, index=frame.index)
    )
    deals = pd.DataFrame({"amount": frame["amount"], "group": labels.to_numpy()})
    groups = sorted(set(deals["group"])) if group is not None else [ALL]
    if len(groups) > MAX_GROUPS:
        raise NotServableError(f"group: {len(groups)} {group}s in the deals; at most {MAX_GROUPS}")
    if n_sims * periods * (len(groups) + 1) > MAX_SIM_CELLS:
        raise NotServableError(
            f"simulations × periods × (groups + 1) = {n_sims * periods * (len(groups) + 1):,}; "
            f"at most {MAX_SIM_CELLS:,} (fewer simulations or periods)"
        )
    goal = None
    if quota is not None:
        if len(quota) != periods:
            raise NotServableError(f"quota: {len(quota)} value(s) for {periods} period(s)")
        goal = np.full((periods, len(groups) + 1), np.nan)
        goal[:, -1] = np.asarray(quota, dtype=float)
        if group is None:  # one total: both of its columns are the whole team's
            goal[:, :] = goal[:, -1:]
    result = forecast_revenue(
        deals=deals,
        p_win=p_win,
        closed_by=closed_by,
        edges=edges,
        horizon_days=read_days(win.pipeline, win.meta.horizon_days),
        new_deals=None,
        as_of=as_of,
        periods=grid,
        groups=groups,
        won_to_date=np.zeros((periods, len(groups))),
        quotas=goal,
        n_sims=n_sims,
        seed=seed,
    )
    table = result.table
    if group is None:
        table = table[table["group"] == ALL].iloc[::2].reset_index(drop=True)
    return {
        "as_of": as_of.isoformat(),
        "by": by,
        "group": group,
        "simulations": n_sims,
        "models": {win.name: win.version, close.name: close.version},
        "open_deals": len(frame),
        "open_pipeline": float(frame["amount"].sum()),
        "forecast": json_records(table),
        "deals": [
            {"opportunity_id": i, "amount": float(a), "p_win": round(float(p), 6), "warnings": w}
            for i, a, p, w in zip(frame["opportunity_id"], frame["amount"], p_win, warnings, strict=True)
        ],
    }


def empty_history(entity: Entity) -> Any:
    """A history with no records (a service without a warehouse).

    Flags learned from history (going cold, ghosted, stalled in stage) have nothing to learn
    from and stay quiet.
    """
    from forecast.flags.history import History

    when = pd.Series(dtype="datetime64[ns]")
    text = pd.Series(dtype=object)
    return History(
        entity=entity,
        entities=pd.DataFrame({"entity_id": text, "rep_id": text, "segment": text}),
        touches=pd.DataFrame(
            {
                "entity_id": text,
                "occurred_at": when,
                "outbound": pd.Series(dtype=bool),
                "answered": pd.Series(dtype=bool),
            }
        ),
        gaps=pd.DataFrame(
            {
                "entity_id": text,
                "rep_id": text,
                "segment": text,
                "stage": text,
                "ended_at": when,
                "gap_days": pd.Series(dtype=float),
            }
        ),
        spells=pd.DataFrame({"stage": text, "ended_at": when, "days": pd.Series(dtype=float)}),
        has_activities=True,
        has_stage_history=True,
        has_close_dates=True,
    )


def churn_scorer(churn: LoadedModel) -> Any:
    """A churn model as the flags use it (:class:`forecast.flags.compute.ChurnScorer`)."""
    from forecast.flags.compute import ChurnScorer

    meta = churn.meta
    return ChurnScorer(
        pipeline=churn.pipeline,
        features=list(meta.features),
        descriptions=dict(meta.descriptions),
        categorical=list(meta.categorical),
        name=churn.name,
        version=churn.version,
    )


def flag_records(
    records: Sequence[BaseModel],
    entity: Entity,
    *,
    history: Any,
    config: Any,
    churn: LoadedModel | None,
    now: pd.Timestamp | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every flag of each record with its evidence and suggested action.

    Adds p_churn when a churn champion is served. Also returns the flags that could not be
    evaluated, with why.
    """
    from forecast.flags.compute import availability, churn_probability, flag_snapshot
    from forecast.flags.rules import skipped_flags, summarise

    frame = records_frame(records, entity, now or utc_now())
    id_col = ID_COLUMN[entity]
    scorer = None if churn is None else churn_scorer(churn)
    if frame["as_of"].nunique() > MAX_AS_OF:
        raise NotServableError(
            f"as_of: {frame['as_of'].nunique()} different moments; flag at most {MAX_AS_OF} per request"
        )
    out: list[dict[str, Any]] = [{} for _ in range(len(frame))]
    for key, part in frame.groupby("as_of", sort=True):
        when = pd.Timestamp(str(key))
        rows = part.index.to_numpy()
        snap = part.reset_index(drop=True)
        p = reasons = None
        if scorer is not None:
            p, reasons = churn_probability(scorer, snap, threshold=config.churn_threshold(entity))
        result = flag_snapshot(history, snap, when, config, p_churn=p, churn_reason=reasons)
        flagged = result.flags
        if "act_next_action_scheduled" in snap and len(flagged):  # not sent is not "none booked"
            unknown = set(np.flatnonzero(snap["act_next_action_scheduled"].isna().to_numpy()))
            flagged = flagged[~((flagged["flag"] == "no_next_step") & flagged["row"].isin(unknown))]
            result.summary = summarise(flagged, len(snap), config)
        by_row = flagged.groupby("row") if len(flagged) else None
        for j, i in enumerate(rows):
            summary = result.summary.iloc[j]
            flags = (
                []
                if by_row is None or j not in by_row.groups
                else json_records(by_row.get_group(j).drop(columns="row"))
            )
            out[i] = {
                id_col: snap[id_col].iloc[j],
                "as_of": when.isoformat(),
                "at_risk": bool(summary["at_risk"]),
                "top_flag": summary["top_flag"],
                "suggested_action": summary["suggested_action"],
                "flags": flags,
                "p_churn": None if p is None else round(float(p[j]), 6),
                "churn_model": None if churn is None else {"name": churn.name, "version": churn.version},
            }
    return out, skipped_flags(entity, config, availability(history))
