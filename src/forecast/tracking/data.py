"""The CRM as the tracking reports see it: canonical frames cut at an as-of time, with group keys.

Everything is point in time: events at or after ``as_of`` are dropped, and a deal's stage, amount,
expected close date and outcome are those recorded before ``as_of`` (from ``stage_history``), so a
report on an old month does not use what happened later. Every event row carries the keys it can
be grouped by (rep, team, manager, region from the rep; source, channel from the lead; product
from the deal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from forecast.data.as_of import EVENT_TIMES, by_deal_and_time, deals_at, lead_status_at
from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.data.schema import TABLES
from forecast.data.warehouse import read_pipeline
from forecast.timeutil import as_of_after, resolve_as_of

GROUPINGS = ("rep", "team", "manager", "region", "source", "channel", "product")
REP_KEYS = ("team", "manager", "region")
NONE_LABEL = "(none)"
ALL_LABEL = "(all)"

_TIMESTAMPS = {t: [c.name for c in spec.columns if c.kind == "timestamp"] for t, spec in TABLES.items()}


def _empty(table: str) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=object) for c in TABLES[table].columns})


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    return {str(r[0]) for r in rows}


def read_frames(
    con: duckdb.DuckDBPyConnection, skip: Sequence[str] = ()
) -> tuple[dict[str, pd.DataFrame], SalesPipeline]:
    """Read the canonical tables (missing ones empty), ``lead_scores`` if present, and the pipeline.

    Args:
        con: A connection to the warehouse.
        skip: Canonical tables not to read (absent from the frames returned).
    """
    present = _table_names(con)
    frames: dict[str, pd.DataFrame] = {}
    for name, spec in TABLES.items():
        if name in skip:
            continue
        if name in present:
            cols = ", ".join(f'"{c.name}"' for c in spec.columns)
            frames[name] = con.execute(f'SELECT {cols} FROM "{name}"').df()
        else:
            frames[name] = _empty(name)
    if "lead_scores" in present:
        frames["lead_scores"] = con.execute('SELECT * FROM "lead_scores"').df()
    pipeline = read_pipeline(con) if "pipeline_stages" in present else None
    return frames, pipeline or DEFAULT_PIPELINE


def data_end(frames: Mapping[str, pd.DataFrame]) -> pd.Timestamp | None:
    """The latest event time in the frames (``None`` when nothing is dated)."""
    latest: list[pd.Timestamp] = []
    for table, cols in EVENT_TIMES.items():
        frame = frames.get(table)
        if frame is None or frame.empty:
            continue
        for col in cols:
            value = pd.to_datetime(frame[col], errors="coerce").max()
            if pd.notna(value):
                latest.append(pd.Timestamp(value))
    return max(latest) if latest else None


def default_as_of(frames: Mapping[str, pd.DataFrame]) -> pd.Timestamp:
    """Midnight after the day of the latest event (:func:`~forecast.timeutil.as_of_after`, the one rule).

    The data is taken as complete up to that day; ``FeatureSource.default_as_of`` gives the same
    time for the same CRM.

    Raises:
        ValueError: If the frames hold no dated event.
    """
    end = data_end(frames)
    if end is None:
        raise ValueError("the warehouse holds no dated events: nothing to report")
    return as_of_after(end)


@dataclass
class TrackingData:
    """Canonical frames cut at ``as_of`` and enriched with group keys.

    Attributes:
        as_of: Nothing at or after this time is used.
        pipeline: The pipeline the deals follow.
        reps: One row per rep: rep_id, name, team, manager, region, active.
        leads: Leads created before as_of, status as known then, with rep keys.
        opportunities: Deals created before as_of with stage, amount, outcome, closed_at,
            expected_close_date and loss_reason as known then, plus group keys and ``size_band``.
        stage_history: Stage changes before as_of with the deal's group keys.
        activities: Activities before as_of with group keys and the ``cold`` flag.
        engagement: Engagement events before as_of.
        quotas: Goals (all of them: planned dates).
        lead_scores: Scores written by ``forecast score leads --write-back`` (``None`` if absent).
        has_stage_history: Whether the source recorded stage changes at all.
        last_changes_only: Whether :attr:`stage_history` holds each deal's last change alone (a
            part of the CRM, :func:`forecast.tracking.read.load_recent`): what reads the whole
            history (:func:`whole_history`) refuses it.
    """

    as_of: pd.Timestamp
    pipeline: SalesPipeline
    reps: pd.DataFrame
    leads: pd.DataFrame
    opportunities: pd.DataFrame
    stage_history: pd.DataFrame
    activities: pd.DataFrame
    engagement: pd.DataFrame
    quotas: pd.DataFrame
    lead_scores: pd.DataFrame | None = None
    has_stage_history: bool = True
    notes: list[str] = field(default_factory=list)
    last_changes_only: bool = False


def whole_history(data: TrackingData, reader: str) -> pd.DataFrame:
    """``data``'s stage history, for ``reader`` (a function's name) that needs every change.

    Raises:
        ValueError: ``data`` holds each deal's last change alone (:attr:`TrackingData.last_changes_only`).
    """
    if data.last_changes_only:
        raise ValueError(
            f"{reader} reads every stage change, but this part of the CRM holds each deal's last "
            "one alone: take its figures from what DuckDB aggregated (forecast.tracking.insights.Aggregated)"
        )
    return data.stage_history


def _typed(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """A copy with every canonical column (missing ones null) and timestamps parsed."""
    out = frame.copy()
    for spec in TABLES[table].columns:
        if spec.name not in out.columns:
            out[spec.name] = None
    for col in _TIMESTAMPS[table]:
        # a column of times already (no zone) is as parsing leaves it: not parsed again (pandas
        # looks at every value of it first, a tenth of a second per million rows)
        if col in out.columns and not (isinstance(out[col].dtype, np.dtype) and out[col].dtype.kind == "M"):
            out[col] = pd.to_datetime(out[col], errors="coerce")
    return out


def _label(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna() & (series.astype(str) != ""), NONE_LABEL).astype(str)


def prepare(
    frames: Mapping[str, pd.DataFrame], pipeline: SalesPipeline, as_of: pd.Timestamp | None = None
) -> TrackingData:
    """Cut canonical frames at ``as_of`` and attach group keys.

    Args:
        frames: Canonical frames by table name (missing tables are empty); may hold ``lead_scores``.
        pipeline: The pipeline the deals follow.
        as_of: Cut-off time (default: midnight after the latest event).

    Returns:
        The tracking view of the CRM.

    Raises:
        ValueError: If no as-of is given and nothing is dated.
    """
    when = resolve_as_of(as_of, lambda: default_as_of(frames))
    t = {
        name: _typed(frames[name] if name in frames else _empty(name), name)
        for name in (*KEYED_TABLES, *SHARED_TABLES)
    }
    keys = prepare_keys(t, pipeline, when)
    acts = t["activities"][t["activities"]["occurred_at"] < when].reset_index(drop=True)  # a copy
    acts = attribute_activities(acts, keys.leads, keys.deal_keys, keys.reps)
    engagement = t["engagement_events"][t["engagement_events"]["occurred_at"] < when].copy()
    return keys.tracking_data(acts, engagement, frames.get("lead_scores"))


@dataclass
class Keys:
    """What :func:`prepare` makes of the tables but the events: the group keys the events take.

    Attributes:
        as_of: The cut-off time.
        pipeline: The pipeline the deals follow.
        reps: The reps with their labelled keys.
        leads: The leads as known at ``as_of``, with their keys.
        opportunities: The deals as known at ``as_of``, with their keys.
        stage_history: Their stage changes before ``as_of``.
        deal_keys: Each deal's product, source, channel and size band.
        quotas: The goals.
        has_stage_history: Whether the source recorded stage changes at all.
        last_changes_only: Whether :attr:`stage_history` holds each deal's last change alone (a
            part of the CRM, :func:`forecast.tracking.read.load_recent`): what reads the whole
            history (:func:`whole_history`) refuses it.
    """

    as_of: pd.Timestamp
    pipeline: SalesPipeline
    reps: pd.DataFrame
    leads: pd.DataFrame
    opportunities: pd.DataFrame
    stage_history: pd.DataFrame
    deal_keys: pd.DataFrame
    quotas: pd.DataFrame
    has_stage_history: bool

    def tracking_data(
        self, activities: pd.DataFrame, engagement: pd.DataFrame, scores: pd.DataFrame | None
    ) -> TrackingData:
        """The tracking view with these events (attributed activities, engagement cut at ``as_of``)."""
        notes = (
            []
            if self.has_stage_history
            else ["no stage history: time in stage and conversion per stage are unknown"]
        )
        return TrackingData(
            as_of=self.as_of,
            pipeline=self.pipeline,
            reps=self.reps,
            leads=_numbered(self.leads),
            opportunities=_numbered(self.opportunities),
            stage_history=_numbered(self.stage_history),
            activities=_numbered(activities),
            engagement=_numbered(engagement),
            quotas=self.quotas,
            lead_scores=None if scores is None else scores.copy(),
            has_stage_history=self.has_stage_history,
            notes=notes,
        )


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its rows numbered from 0 (itself when they are: a reset copies every column)."""
    return frame if frame.index.equals(pd.RangeIndex(len(frame))) else frame.reset_index(drop=True)


def prepare_keys(t: Mapping[str, pd.DataFrame], pipeline: SalesPipeline, when: pd.Timestamp) -> Keys:
    """Cut the reps, leads, deals, stage changes and quotas (typed frames) at ``when``, with their keys."""
    reps = t["reps"].copy()
    for col in ("name", *REP_KEYS):
        reps[col] = _label(reps[col])
    reps["rep_id"] = reps["rep_id"].astype(str)
    reps = reps[["rep_id", "name", *REP_KEYS, "active"]].drop_duplicates("rep_id")

    leads = t["leads"][t["leads"]["created_at"] < when].copy()
    status, converted, _known = lead_status_at(leads, when)
    leads.loc[~converted, ["converted_at"]] = pd.NaT
    leads["opportunity_id"] = leads["opportunity_id"].where(converted)
    leads["status"] = status
    leads["source"] = _label(leads["source"])
    leads["channel"] = _label(leads["channel"])
    leads = _with_rep_keys(leads, reps)

    opps, history, has_history = _deals_at(t["opportunities"], t["stage_history"], pipeline, when)
    lead_keys = leads[["lead_id", "source", "channel"]]
    opps = opps.merge(lead_keys, on="lead_id", how="left")
    opps["source"] = opps["source"].fillna(NONE_LABEL)
    opps["channel"] = opps["channel"].fillna(NONE_LABEL)
    opps["product"] = _label(opps["product"])
    opps = _with_rep_keys(opps, reps)
    opps["size_band"] = size_bands(opps["amount"])
    deal_keys = opps[["opportunity_id", "product", "source", "channel", "size_band"]]
    history = _inner_join(
        history, opps, "opportunity_id", ["rep_id", "rep", *REP_KEYS, "product", "source", "channel"]
    )
    return Keys(when, pipeline, reps, leads, opps, history, deal_keys, t["quotas"], has_history)


SHARED_TABLES = ("activities", "engagement_events")
"""The large tables :func:`crm_frames` takes from a :class:`TrackingData` instead of reading them again."""
KEYED_TABLES = ("reps", "leads", "opportunities", "stage_history", "quotas")
"""The tables :func:`prepare_keys` cuts: with :data:`SHARED_TABLES`, every one the tracking reads (not
the accounts: seven hundred thousand rows on a 1M-lead CRM that no report reads)."""


def crm_frames(
    con: duckdb.DuckDBPyConnection, data: TrackingData
) -> tuple[dict[str, pd.DataFrame], SalesPipeline]:
    """The canonical tables for a computation as of ``data.as_of``, sharing ``data``'s events.

    The activities and engagement events are ``data``'s (already cut at its as-of, in their canonical
    columns and values: the same rows :func:`forecast.data.as_of.crm_as_of` keeps of the warehouse's);
    the other tables are read. On a large CRM the events are most of the memory: the revenue forecast
    beside the tracking reports then holds them once, not twice.

    Args:
        con: A connection to the warehouse ``data`` was read from.
        data: The tracking view of it.

    Returns:
        The frames (``crm_as_of(frames, data.as_of, ...)`` equals that of :func:`read_frames`' frames)
        and the pipeline.
    """
    frames, pipeline = read_frames(con, skip=SHARED_TABLES)
    frames["activities"] = canonical_activities(data.activities)
    engagement = data.engagement
    frames["engagement_events"] = engagement[[c.name for c in TABLES["engagement_events"].columns]].copy(
        deep=False
    )
    return frames, pipeline


def canonical_activities(activities: pd.DataFrame) -> pd.DataFrame:
    """Prepared activities (:func:`prepare`'s) in their canonical columns and values.

    :func:`prepare` labels a missing ``rep_id`` ``(none)`` (a rep id is never that label): it is
    missing again here.
    """
    out = activities[[c.name for c in TABLES["activities"].columns]].copy(deep=False)  # a new frame
    rep = out["rep_id"].to_numpy(dtype=object, copy=True)
    rep[rep == NONE_LABEL] = None
    out["rep_id"] = rep
    return out


def load(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp | None = None) -> TrackingData:
    """Read the warehouse through a (read-only) connection and prepare it at ``as_of``."""
    frames, pipeline = read_frames(con)
    return prepare(frames, pipeline, as_of)


def _with_rep_keys(frame: pd.DataFrame, reps: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (a frame of :func:`prepare`'s own: its columns may be replaced) with the rep's keys."""
    drop = [c for c in REP_KEYS if c in frame.columns]
    out = frame.drop(columns=drop) if drop else frame.copy(deep=False)  # a new column is set in out only
    out["rep_id"] = out["rep_id"].astype(object).where(out["rep_id"].notna(), NONE_LABEL).astype(str)
    found = _left_join(out["rep_id"], reps, "rep_id", REP_KEYS)
    if found is None:
        out = out.merge(reps[["rep_id", *REP_KEYS]], on="rep_id", how="left")
    else:
        if not out.index.equals(pd.RangeIndex(len(out))):
            out = out.reset_index(drop=True)  # as a merge numbers its rows
        for col in REP_KEYS:
            out[col] = found[col]
    for col in REP_KEYS:
        out[col] = out[col].fillna(NONE_LABEL)
    out["rep"] = out["rep_id"]
    return out


def _left_join(
    keys: pd.Series, table: pd.DataFrame, key: str, columns: Sequence[str]
) -> dict[str, pd.Series] | None:
    """``table``'s ``columns`` at each of ``keys`` (missing where absent): a left merge's new columns.

    The rows and values of ``pd.merge(..., how="left")`` when ``table[key]`` is unique (each key
    matches at most one row), without copying the left frame at each merge (ten million activities
    on a large CRM). ``None`` when the keys are not unique or not of one dtype: then merge.
    """
    if keys.dtype != table[key].dtype:
        return None
    index = pd.Index(table[key])
    if not index.is_unique:
        return None
    return taken(table, columns, index.get_indexer(keys))


def _inner_join(frame: pd.DataFrame, table: pd.DataFrame, key: str, columns: Sequence[str]) -> pd.DataFrame:
    """``frame.merge(table[[key, *columns]], on=key, how="inner")``, by position (``table[key]`` a key).

    The same rows (``frame``'s that match, in their order), columns and values, without hashing
    every row of ``frame`` (the stage changes of a large CRM: seven hundred thousand); a merge where
    the keys are not unique, not of one dtype, or a column would clash.
    """
    index = pd.Index(table[key])
    if frame[key].dtype != table[key].dtype or not index.is_unique or set(columns) & set(frame.columns):
        return frame.merge(table[[key, *columns]], on=key, how="inner")
    rows = index.get_indexer(frame[key])
    kept = rows >= 0
    out = (frame if kept.all() else frame[kept]).reset_index(drop=True)
    for col, values in taken(table, columns, rows[kept]).items():
        out[col] = values
    return out


def taken(table: pd.DataFrame, columns: Sequence[str], rows: np.ndarray) -> dict[str, pd.Series]:
    """``table``'s ``columns`` at the positions ``rows`` (-1: missing), as a left merge's new columns."""
    out = {}
    for col in columns:
        values = table[col].array.take(rows, allow_fill=True)
        out[col] = pd.Series(values, name=col)
    return out


def days(delta: pd.Series) -> pd.Series:
    """Time differences in (fractional) days; missing stays missing."""
    return pd.to_timedelta(delta).dt.total_seconds() / 86400.0


def size_bands(amount: pd.Series) -> pd.Series:
    """Deal-size band by quartile of the amounts given (``(none)`` for a missing amount)."""
    values = pd.to_numeric(amount, errors="coerce")
    valid = values.dropna()
    if valid.empty:
        return pd.Series(NONE_LABEL, index=amount.index, dtype=object)
    edges = np.unique(np.quantile(valid, [0.25, 0.5, 0.75]))
    band = np.searchsorted(edges, valid.to_numpy(), side="right")
    labels = pd.Series([f"Q{b + 1}" for b in band], index=valid.index, dtype=object)
    return labels.reindex(amount.index).fillna(NONE_LABEL)


def _deals_at(
    opps: pd.DataFrame, history: pd.DataFrame, pipeline: SalesPipeline, when: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """Deals as known at ``when`` (:func:`forecast.data.as_of.deals_at`), their history before it."""
    deals = opps.assign(opportunity_id=opps["opportunity_id"].astype(str))
    # sorted once: deals_at and the cut below keep the order (a stable sort and a filter commute)
    hist = by_deal_and_time(history.assign(opportunity_id=history["opportunity_id"].astype(str)))
    has_history = not hist.empty
    deals = deals_at(deals, hist, pipeline, when)
    hist = by_deal_and_time(
        hist[(hist["entered_at"] < when) & hist["opportunity_id"].isin(deals["opportunity_id"])]
    )
    deals["amount"] = pd.to_numeric(deals["amount"], errors="coerce")
    return deals, hist, has_history


LEAD_KEYS = ("source", "channel", "converted_at")
"""What an activity takes from its lead (:func:`prepare`'s leads, by ``lead_id``)."""
DEAL_KEYS = ("product", "source", "channel", "size_band")
"""What an activity takes from its deal (:attr:`Keys.deal_keys`, by ``opportunity_id``)."""


def attribute_activities(
    acts: pd.DataFrame,
    leads: pd.DataFrame,
    deal_keys: pd.DataFrame,
    reps: pd.DataFrame,
    rows: tuple[np.ndarray, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Attach group keys to activities and flag cold calls.

    Source and channel come from the activity's lead, or from its deal's lead; product from its deal.
    A *cold call* is an outbound call on a lead (not a deal) that had not become an opportunity
    when the call was made. ``rows``: each activity's lead's and deal's positions in ``leads`` and
    ``deal_keys`` (-1: none), when already looked up (their ids unique); ``None``: looked up here.
    """
    lead_info = leads[["lead_id", *LEAD_KEYS]]
    if rows is not None:
        by_lead: dict[str, pd.Series] | None = taken(lead_info, LEAD_KEYS, rows[0])
        by_deal: dict[str, pd.Series] | None = taken(deal_keys, DEAL_KEYS, rows[1])
    else:
        by_lead = _left_join(acts["lead_id"], lead_info, "lead_id", LEAD_KEYS)
        by_deal = _left_join(acts["opportunity_id"], deal_keys, "opportunity_id", DEAL_KEYS)
    if by_lead is None or by_deal is None:
        return _attribute_activities_by_merge(acts, leads, deal_keys, reps)
    out = acts if acts.index.equals(pd.RangeIndex(len(acts))) else acts.reset_index(drop=True)
    out["converted_at"] = by_lead["converted_at"]
    out["product"] = by_deal["product"].fillna(NONE_LABEL)
    out["size_band"] = by_deal["size_band"]
    out["source"] = by_lead["source"].fillna(by_deal["source"]).fillna(NONE_LABEL)
    out["channel"] = by_lead["channel"].fillna(by_deal["channel"]).fillna(NONE_LABEL)
    return _flag_activities(out, reps)


def _attribute_activities_by_merge(
    acts: pd.DataFrame, leads: pd.DataFrame, deal_keys: pd.DataFrame, reps: pd.DataFrame
) -> pd.DataFrame:
    """:func:`attribute_activities` by merges (keys that are not unique: rows may repeat)."""
    out = acts.copy()
    lead_info = leads[["lead_id", "source", "channel", "converted_at"]].rename(
        columns={"source": "lead_source", "channel": "lead_channel"}
    )
    out = out.merge(lead_info, on="lead_id", how="left")
    out = out.merge(
        deal_keys.rename(columns={"source": "deal_source", "channel": "deal_channel"}),
        on="opportunity_id",
        how="left",
    )
    out["source"] = out["lead_source"].fillna(out["deal_source"]).fillna(NONE_LABEL)
    out["channel"] = out["lead_channel"].fillna(out["deal_channel"]).fillna(NONE_LABEL)
    out["product"] = out["product"].fillna(NONE_LABEL)
    out = out.drop(columns=["lead_source", "lead_channel", "deal_source", "deal_channel"])
    return _flag_activities(out, reps)


def _flag_activities(out: pd.DataFrame, reps: pd.DataFrame) -> pd.DataFrame:
    """The ``done`` and ``cold`` flags, the durations as numbers and the rep keys of attributed activities."""
    on_lead = out["lead_id"].notna() & out["opportunity_id"].isna()
    not_yet = out["converted_at"].isna() | (out["converted_at"] > out["occurred_at"])
    out["done"] = out["outcome"].fillna("completed") != "scheduled"
    out["cold"] = (out["type"] == "call") & (out["direction"] == "outbound") & on_lead & not_yet & out["done"]
    out["duration_seconds"] = pd.to_numeric(out["duration_seconds"], errors="coerce")
    return _with_rep_keys(out, reps)


def group_values(data: TrackingData, by: str, *frames: pd.DataFrame) -> list[str]:
    """The groups of a report: every rep (or team, …) known, plus any value seen in ``frames``."""
    seen: set[str] = set()
    for frame in frames:
        if by in frame.columns:
            seen |= set(frame[by].astype(str))
    return known_groups(data.reps, by, seen)


def known_groups(reps: pd.DataFrame, by: str, seen: set[str]) -> list[str]:
    """The groups of a report, sorted: every rep (or team, …) of ``reps`` known, plus those ``seen``."""
    groups = set(seen)
    if by == "rep":
        groups |= set(reps["rep_id"])
    elif by in REP_KEYS:
        groups |= set(reps[by])
    return sorted(groups)
