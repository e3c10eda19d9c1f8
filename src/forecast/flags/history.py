"""The history the flags learn from, read once from the CRM and cut at each as_of in memory.

Touches (activities that happened, not planned ones) per lead or deal, the gaps between
consecutive touches (with the deal's stage when the gap began and the entity's segment and rep),
and completed stage spells. Everything used at an as_of is filtered to what ended before it, so a
backtest over many dates reads the warehouse once and stays point in time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.features.build import ID_COLUMN, Entity
from forecast.features.source import FeatureSource
from forecast.features.stages import stage_spell_ctes
from forecast.flags.config import FlagsConfig

_TABLE = {"lead": "leads", "opportunity": "opportunities"}


@dataclass
class History:
    """What the flags read besides the snapshot features.

    Attributes:
        entity: ``lead`` or ``opportunity``.
        entities: ``entity_id``, ``rep_id``, ``segment`` of every lead or deal.
        touches: ``entity_id``, ``occurred_at``, ``outbound``, ``answered`` (inbound, a replied
            email, a connected call or a held meeting), sorted by entity and time.
        gaps: ``entity_id``, ``rep_id``, ``segment``, ``stage`` (deals: stage when the gap began),
            ``ended_at``, ``gap_days``: the time between consecutive touches.
        spells: ``stage``, ``ended_at``, ``days``: completed stays in an open stage (deals).
        has_activities: Whether the source records activities at all.
        has_stage_history: Whether it records stage history at all.
        has_close_dates: Whether any deal has an expected close date.
    """

    entity: Entity
    entities: pd.DataFrame
    touches: pd.DataFrame
    gaps: pd.DataFrame
    spells: pd.DataFrame
    has_activities: bool
    has_stage_history: bool
    has_close_dates: bool


def _count(src: FeatureSource, sql: str) -> int:
    row = src.con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _segment_column(src: FeatureSource, entity: Entity, config: FlagsConfig) -> str:
    wanted = config.going_cold.deal_segment if entity == "opportunity" else config.going_cold.lead_segment
    columns = {r[0] for r in src.con.execute(f"DESCRIBE {_TABLE[entity]}").fetchall()}
    if wanted not in columns:
        raise ValueError(f"going_cold segment column {wanted!r} is not a column of {_TABLE[entity]}")
    return wanted


def load_history(src: FeatureSource, entity: Entity, config: FlagsConfig) -> History:
    """Read the touches, gaps and stage spells of ``entity`` from the source."""
    key, table = ID_COLUMN[entity], _TABLE[entity]
    segment = _segment_column(src, entity, config)
    entities = src.df(
        f'SELECT {key} AS entity_id, rep_id, CAST("{segment}" AS VARCHAR) AS segment FROM {table}'
    )
    touches = src.df(
        f"""SELECT {key} AS entity_id, occurred_at, direction = 'outbound' AS outbound,
                   (direction = 'inbound' OR coalesce(email_replied, false)
                    OR (type IN ('call', 'meeting', 'demo') AND outcome = 'completed')) AS answered
            FROM activities
            WHERE {key} IS NOT NULL AND outcome IS DISTINCT FROM 'scheduled'
            ORDER BY entity_id, occurred_at"""
    )
    touches["outbound"] = touches["outbound"].fillna(False).astype(bool)
    touches["answered"] = touches["answered"].fillna(False).astype(bool)
    touches["occurred_at"] = pd.to_datetime(touches["occurred_at"]).astype("datetime64[ns]")
    stage_sql = "NULL::VARCHAR AS stage"
    asof = ""
    if entity == "opportunity":
        stage_sql = "h.stage"
        asof = (
            "ASOF LEFT JOIN stage_history h "
            "ON g.entity_id = h.opportunity_id AND g.started_at >= h.entered_at"
        )
    gaps = src.df(
        f"""WITH t AS (
                SELECT {key} AS entity_id, occurred_at,
                       lag(occurred_at) OVER (PARTITION BY {key} ORDER BY occurred_at) AS started_at
                FROM activities WHERE {key} IS NOT NULL AND outcome IS DISTINCT FROM 'scheduled'
            ),
            g AS (SELECT * FROM t WHERE started_at IS NOT NULL)
            SELECT g.entity_id, e.rep_id, CAST(e."{segment}" AS VARCHAR) AS segment, {stage_sql},
                   g.occurred_at AS ended_at,
                   date_diff('second', g.started_at, g.occurred_at) / 86400.0 AS gap_days
            FROM g {asof} JOIN {table} e ON e.{key} = g.entity_id"""
    )
    gaps["ended_at"] = pd.to_datetime(gaps["ended_at"]).astype("datetime64[ns]")
    gaps = gaps.sort_values("ended_at", kind="stable").reset_index(drop=True)
    spells = pd.DataFrame({"stage": pd.Series(dtype=object), "ended_at": [], "days": []})
    if entity == "opportunity":
        spells = src.df(
            f"""WITH h0 AS (
                   SELECT opportunity_id, stage, entered_at,
                          lag(stage) OVER (PARTITION BY opportunity_id ORDER BY entered_at) AS prev
                   FROM stage_history
               ),
               {stage_spell_ctes("h0", prev="prev", order="entered_at")}
               SELECT stage, run_end AS ended_at,
                      date_diff('second', run_start, run_end) / 86400.0 AS days
               FROM spells WHERE run_end IS NOT NULL ORDER BY run_end"""
        )
        spells["ended_at"] = pd.to_datetime(spells["ended_at"]).astype("datetime64[ns]")
    return History(
        entity=entity,
        entities=entities,
        touches=touches,
        gaps=gaps,
        spells=spells,
        has_activities=_count(src, "SELECT count(*) FROM activities") > 0,
        has_stage_history=_count(src, "SELECT count(*) FROM stage_history") > 0,
        has_close_dates=entity == "opportunity"
        and _count(src, "SELECT count(*) FROM stage_history WHERE expected_close_date IS NOT NULL") > 0,
    )


def unanswered_attempts(history: History, ids: pd.Series, as_of: pd.Timestamp) -> pd.DataFrame:
    """Outbound attempts since the prospect last answered, per entity, from touches before as_of.

    Returns:
        ``outbound_since_answer`` (all outbound touches when the prospect never answered) and
        ``days_since_answer`` (missing when never), aligned with ``ids``.
    """
    t = history.touches
    t = t[(t["occurred_at"] < as_of) & t["entity_id"].isin(ids)]
    last = t.loc[t["answered"]].groupby("entity_id")["occurred_at"].max()
    after = t["occurred_at"] > t["entity_id"].map(last).fillna(pd.Timestamp.min)
    count = t.loc[after & t["outbound"]].groupby("entity_id").size()
    out = pd.DataFrame(index=ids.index)
    out["outbound_since_answer"] = ids.map(count).fillna(0).astype(float).to_numpy()
    days = (as_of - ids.map(last)).dt.total_seconds() / 86400.0
    out["days_since_answer"] = days.to_numpy(dtype=float)
    return out


def stage_limits(history: History, as_of: pd.Timestamp, quantile: float, min_spells: int) -> pd.DataFrame:
    """Per stage, the ``quantile`` of days spent there by spells completed before as_of.

    Returns:
        Indexed by stage: ``limit_days`` and ``spells`` (stages with fewer than ``min_spells``
        completed spells are left out: too little history to say what is slow).
    """
    s = history.spells
    s = s[s["ended_at"] < as_of]
    if s.empty:
        return pd.DataFrame({"limit_days": pd.Series(dtype=float), "spells": pd.Series(dtype=int)})
    grouped = s.groupby("stage")["days"]
    out = pd.DataFrame({"limit_days": grouped.quantile(quantile), "spells": grouped.size()})
    return out[out["spells"] >= min_spells]


def entity_attributes(history: History, ids: pd.Series) -> pd.DataFrame:
    """``rep_id`` and ``segment`` of each id (aligned with ``ids``)."""
    table = history.entities.drop_duplicates("entity_id").set_index("entity_id")
    out = pd.DataFrame(index=ids.index)
    for col in ("rep_id", "segment"):
        out[col] = ids.map(table[col]).to_numpy()
    return out


def finite(values: pd.Series) -> np.ndarray:
    """Float values with missing as NaN."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
