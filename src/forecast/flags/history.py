"""The history the flags learn from, read once from the CRM and cut at each as_of in memory.

Touches (activities that happened, not planned ones) per lead or deal, the gaps between
consecutive touches (with the deal's stage when the gap began and the entity's segment and rep),
and completed stage spells. Everything used at an as_of is filtered to what ended before it, so a
backtest over many dates reads the warehouse once and stays point in time.

The warehouse hands the touches, gaps and entities over as integer codes (DuckDB joins each text
key to a sorted table of its values), so the frames hold categorical columns instead of ten million
Python strings, and the cuts at an as_of are numpy over those codes. A category's code follows the
sorted order of the texts, so a grouping by code comes out in the order pandas' grouping by text
would give.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from forecast.features.build import ID_COLUMN, Entity
from forecast.features.source import FeatureSource
from forecast.features.stages import stage_spell_ctes
from forecast.flags.config import FlagsConfig

_TABLE = {"lead": "leads", "opportunity": "opportunities"}
_NAT = np.iinfo(np.int64).min
_TOUCHED = "{key} IS NOT NULL AND outcome IS DISTINCT FROM 'scheduled'"

logger = logging.getLogger(__name__)


@dataclass
class History:
    """What the flags read besides the snapshot features.

    Text columns may be categorical (as :func:`load_history` gives them) or plain text.

    Attributes:
        entity: ``lead`` or ``opportunity``.
        entities: ``entity_id``, ``rep_id``, ``segment`` of every lead or deal.
        touches: ``entity_id``, ``occurred_at``, ``outbound``, ``answered`` (inbound, a replied
            email, a connected call or a held meeting).
        gaps: ``entity_id``, ``rep_id``, ``segment``, ``stage`` (deals: stage when the gap began),
            ``ended_at``, ``gap_days``: the time between consecutive touches (from
            :func:`load_history`: sorted by entity and gap length).
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


def codes_of(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """A text column as integer codes (-1: missing) and its labels in sorted order.

    A categorical column with sorted categories gives its own codes; any other is factorized.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):
        if column.cat.categories.is_monotonic_increasing:
            return column.cat.codes.to_numpy(), column.cat.categories
        column = column.astype(object)  # sorted as texts, not in the categories' order
    codes, labels = pd.factorize(column, sort=True)
    return codes, pd.Index(labels, dtype=object)


def times_ns(column: pd.Series) -> np.ndarray:
    """A datetime column as int64 nanoseconds (NaT: the smallest int64)."""
    return column.to_numpy(dtype="datetime64[ns]").view(np.int64)


def ns_of(when: pd.Timestamp) -> int:
    """A timestamp in nanoseconds since the epoch."""
    return int(pd.Timestamp(when).as_unit("ns").value)


class _Labels:
    """Temporary tables of the sorted distinct values of text keys, numbered from 0, on one connection."""

    order = "label"
    """How DuckDB sorts the labels before numbering them (a test reverses it)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.tag = uuid.uuid4().hex[:12]
        self.names: list[str] = []

    def table(self, what: str, values_sql: str) -> tuple[str, pd.Index, np.ndarray | None]:
        """Number the distinct non-null values of ``values_sql`` (one column) in DuckDB's sorted order.

        Returns:
            The temporary table's name (``label``, ``code``), the labels in Python's sorted order,
            and the map from DuckDB's codes to those (``None`` when the orders agree).
        """
        name = f"_flags_{what}_{self.tag}"
        self.con.execute(
            f"""CREATE TEMP TABLE {name} AS
                SELECT label, (row_number() OVER (ORDER BY {self.order}) - 1)::INTEGER AS code
                FROM (SELECT DISTINCT v AS label FROM ({values_sql}) s(v) WHERE v IS NOT NULL)"""
        )
        self.names.append(name)
        got = self.con.execute(f"SELECT label FROM {name} ORDER BY code").to_arrow_table()
        labels = pd.Index(got.column(0).to_numpy(zero_copy_only=False), dtype=object)
        if labels.is_monotonic_increasing:
            return name, labels, None
        order = np.argsort(labels.to_numpy(), kind="stable")  # Python's order of the texts
        remap = np.empty(len(order), dtype=np.int32)
        remap[order] = np.arange(len(order), dtype=np.int32)
        return name, labels[order], remap

    def drop(self, failing: bool = False) -> None:
        """Drop the temporary tables.

        Args:
            failing: The read failed: where it left the connection unable to run another statement
                (an aborted transaction), a failed drop must not replace its error (the temporary
                tables go with the transaction's rollback or the connection), so it is logged.
        """
        for name in self.names:
            try:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
            except duckdb.Error:
                if not failing:
                    raise
                logger.warning(
                    "could not drop the temporary table %s after a failed read", name, exc_info=True
                )


def _codes(table: pa.Table, name: str, remap: np.ndarray | None) -> np.ndarray:
    """An integer code column of an Arrow result (null: -1), mapped to Python's order."""
    codes = pc.fill_null(table.column(name), -1).to_numpy().astype(np.int32, copy=False)
    if remap is not None:
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int32)
    return codes


def _category(codes: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, dtype=dtype)


def load_history(src: FeatureSource, entity: Entity, config: FlagsConfig) -> History:
    """Read the touches, gaps and stage spells of ``entity`` from the source.

    One query numbers every touch's entity, stage and the time since the entity's touch before; the
    gaps are the touches with a touch before, of an entity the table holds, sorted by entity and
    length. A table holding a key twice joins each of its rows to the gaps (a second query).
    """
    key, table = ID_COLUMN[entity], _TABLE[entity]
    segment = _segment_column(src, entity, config)
    labels = _Labels(src.con)
    try:
        ids, id_labels, id_map = labels.table(
            "ids", f"SELECT {key} FROM {table} UNION ALL SELECT {key} FROM activities"
        )
        reps, rep_labels, rep_map = labels.table("reps", f"SELECT rep_id FROM {table}")
        segs, seg_labels, seg_map = labels.table(
            "segments", f'SELECT CAST("{segment}" AS VARCHAR) FROM {table}'
        )
        stages, stage_map = "", None
        stage_labels: pd.Index = pd.Index([], dtype=object)
        if entity == "opportunity":
            stages, stage_labels, stage_map = labels.table("stages", "SELECT stage FROM stage_history")
        kinds = {
            "entity_id": pd.CategoricalDtype(id_labels),
            "rep_id": pd.CategoricalDtype(rep_labels),
            "segment": pd.CategoricalDtype(seg_labels),
            "stage": pd.CategoricalDtype(stage_labels),
        }
        row_of, entities = _entities(
            src, key, table, segment, (ids, id_map), (reps, rep_map), (segs, seg_map), kinds
        )
        got = src.con.execute(_touches_sql(key, ids, stages)).to_arrow_table()
        touch_entity = _codes(got, "entity", id_map)
        occurred = pc.fill_null(got.column("occurred_at"), _NAT).to_numpy()
        touches = pd.DataFrame(
            {
                "entity_id": _category(touch_entity, kinds["entity_id"]),
                "occurred_at": occurred.view("datetime64[ns]"),
                "outbound": got.column("outbound").to_numpy(zero_copy_only=False),
                "answered": got.column("answered").to_numpy(zero_copy_only=False),
            }
        )
        if row_of is None:
            got = src.con.execute(_gaps_sql(key, table, segment, ids, reps, segs, stages)).to_arrow_table()
            gap_entity = _codes(got, "entity", id_map)
            gap_rep = _codes(got, "rep", rep_map)
            gap_segment = _codes(got, "segment", seg_map)
            ended = got.column("ended_at").to_numpy()
            gap_days = got.column("gap_days").to_numpy()
            gap_stage = _codes(got, "stage", stage_map)
        else:
            gap_days = got.column("gap_days").to_numpy()  # missing (the first touch): NaN
            gap = ~np.isnan(gap_days) & (occurred != _NAT) & (row_of[touch_entity] >= 0)  # an entity held
            gap_entity, ended, gap_days = touch_entity[gap], occurred[gap], gap_days[gap]
            rows = row_of[gap_entity]
            gap_rep = entities["rep_id"].cat.codes.to_numpy()[rows]
            gap_segment = entities["segment"].cat.codes.to_numpy()[rows]
            gap_stage = _codes(got, "stage", stage_map)[gap]
        del got
    except BaseException:
        labels.drop(failing=True)
        raise
    labels.drop()
    order = _entity_gap_order(gap_entity, gap_days)
    gaps = pd.DataFrame(
        {
            "entity_id": _category(gap_entity[order], kinds["entity_id"]),
            "rep_id": _category(gap_rep[order], kinds["rep_id"]),
            "segment": _category(gap_segment[order], kinds["segment"]),
            "stage": _category(gap_stage[order], kinds["stage"]),
            "ended_at": ended[order].view("datetime64[ns]"),
            "gap_days": gap_days[order],
        }
    )
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


def _touched(key: str, ids: str) -> str:
    """Each touch's entity code, time and the time of the entity's touch before (``started_at``).

    Only codes pass the window's sort (a text key carried through it takes twice as long).
    """
    return f"""SELECT i.code AS entity, a.occurred_at,
                      lag(a.occurred_at) OVER (PARTITION BY i.code ORDER BY a.occurred_at) AS started_at,
                      coalesce(a.direction = 'outbound', false) AS outbound,
                      coalesce(a.direction = 'inbound' OR coalesce(a.email_replied, false)
                               OR (a.type IN ('call', 'meeting', 'demo') AND a.outcome = 'completed'),
                               false) AS answered
               FROM activities a JOIN {ids} i ON i.label = a.{key}
               WHERE a.{key} IS NOT NULL AND a.outcome IS DISTINCT FROM 'scheduled'"""


def _stage_join(ids: str, stages: str) -> tuple[str, str]:
    """The deal's stage code when the gap began (``NULL`` for leads): the column and its join."""
    if not stages:
        return "NULL::INTEGER AS stage", ""
    # Stages entered at the same instant (a skip recorded to the second, or to the day): the one the
    # deal features read as current then (furthest in the pipeline, then by name), whatever the rows' order.
    history = f"""(SELECT i.code AS entity, h.entered_at, st.code AS stage
                   FROM (SELECT h.opportunity_id, h.entered_at, h.stage
                         FROM stage_history h LEFT JOIN _stages o ON o.stage = h.stage
                         QUALIFY row_number() OVER (
                             PARTITION BY h.opportunity_id, h.entered_at
                             ORDER BY o.stage_order DESC NULLS FIRST, h.stage DESC NULLS FIRST) = 1) h
                   JOIN {ids} i ON i.label = h.opportunity_id
                   LEFT JOIN {stages} st ON st.label = h.stage)"""
    return "h.stage", f"ASOF LEFT JOIN {history} h ON t.entity = h.entity AND t.started_at >= h.entered_at"


def _touches_sql(key: str, ids: str, stages: str) -> str:
    """Every touch with its gap since the touch before (``NULL``: the first) and the stage then."""
    stage, join = _stage_join(ids, stages)
    return f"""WITH t AS ({_touched(key, ids)})
               SELECT t.entity, epoch_ns(t.occurred_at) AS occurred_at, t.outbound, t.answered,
                      date_diff('second', t.started_at, t.occurred_at) / 86400.0 AS gap_days, {stage}
               FROM t {join}"""


def _gaps_sql(key: str, table: str, segment: str, ids: str, reps: str, segs: str, stages: str) -> str:
    """The gaps joined to every row of the entity table (one that holds a key twice)."""
    stage, join = _stage_join(ids, stages)
    return f"""WITH t AS (
                   SELECT * FROM ({_touched(key, ids)})
                   WHERE started_at IS NOT NULL AND occurred_at IS NOT NULL
               ),
               e AS (
                   SELECT i.code AS entity, r.code AS rep, s.code AS segment
                   FROM {table} e JOIN {ids} i ON i.label = e.{key}
                   LEFT JOIN {reps} r ON r.label = e.rep_id
                   LEFT JOIN {segs} s ON s.label = CAST(e."{segment}" AS VARCHAR)
               )
               SELECT t.entity, e.rep, e.segment, {stage},
                      epoch_ns(t.occurred_at) AS ended_at,
                      date_diff('second', t.started_at, t.occurred_at) / 86400.0 AS gap_days
               FROM t {join} JOIN e ON e.entity = t.entity"""


def _entity_gap_order(entities: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The rows' order by entity code, then value (ties in any order).

    One sort of int64 keys (the entity code above each row's rank by value) where they fit, which
    is about twice as fast as ``np.lexsort`` on millions of rows.
    """
    n = len(values)
    by_value = np.argsort(values)
    bits = max(n.bit_length(), 1)
    if n == 0 or int(entities.max()) >= 2 ** (62 - bits) or int(entities.min()) < 0:
        return np.lexsort((values, entities))
    rank = np.empty(n, dtype=np.int64)
    rank[by_value] = np.arange(n, dtype=np.int64)
    keys = (entities.astype(np.int64) << bits) | rank
    keys.sort()
    return by_value[keys & ((1 << bits) - 1)]


def _entities(
    src: FeatureSource,
    key: str,
    table: str,
    segment: str,
    ids: tuple[str, np.ndarray | None],
    reps: tuple[str, np.ndarray | None],
    segs: tuple[str, np.ndarray | None],
    kinds: dict[str, pd.CategoricalDtype],
) -> tuple[np.ndarray | None, pd.DataFrame]:
    """The first row of each entity of the table (as pandas' ``drop_duplicates`` keeps), by code.

    Returns:
        The row of each entity code in the frame (-1: not in the table; a last slot for code -1),
        or ``None`` when the table holds a key twice; and the frame.
    """
    sql = f"""SELECT i.code AS entity, r.code AS rep, s.code AS segment
              FROM {table} e LEFT JOIN {ids[0]} i ON i.label = e.{key}
              LEFT JOIN {reps[0]} r ON r.label = e.rep_id
              LEFT JOIN {segs[0]} s ON s.label = CAST(e."{segment}" AS VARCHAR)"""
    got = src.con.execute(sql).to_arrow_table()
    codes = _codes(got, "entity", ids[1])
    n = len(kinds["entity_id"].categories)
    held = np.bincount(codes + 1, minlength=n + 1)  # slot 0: a missing key
    row_of: np.ndarray | None = None
    if held.max(initial=0) > 1:  # a key twice (or missing twice): the table's order decides
        got = src.con.execute(f"{sql} ORDER BY e.rowid").to_arrow_table()
        codes = _codes(got, "entity", ids[1])
        first = np.unique(codes, return_index=True)[1]
    else:
        first = np.argsort(codes)
        row_of = np.full(n + 1, -1, dtype=np.int64)
        row_of[codes[first]] = np.arange(len(first))
        row_of[-1] = -1
    frame = pd.DataFrame(
        {
            "entity_id": _category(codes[first], kinds["entity_id"]),
            "rep_id": _category(_codes(got, "rep", reps[1])[first], kinds["rep_id"]),
            "segment": _category(_codes(got, "segment", segs[1])[first], kinds["segment"]),
        }
    )
    return row_of, frame


def _wanted(labels: pd.Index, ids: pd.Series) -> np.ndarray:
    """The code of each id among ``labels`` (-1: not there)."""
    return labels.get_indexer(pd.Index(ids.to_numpy(), dtype=object))


def unanswered_attempts(history: History, ids: pd.Series, as_of: pd.Timestamp) -> pd.DataFrame:
    """Outbound attempts since the prospect last answered, per entity, from touches before as_of.

    Returns:
        ``outbound_since_answer`` (all outbound touches when the prospect never answered) and
        ``days_since_answer`` (missing when never), aligned with ``ids``.
    """
    t = history.touches
    codes, labels = codes_of(t["entity_id"])
    want = _wanted(labels, ids)
    asked = np.zeros(len(labels) + 1, dtype=bool)  # the last slot: ids the touches do not know
    asked[want] = True
    asked[-1] = False
    when = times_ns(t["occurred_at"])
    keep = (when != _NAT) & (when < ns_of(as_of)) & asked[codes]
    c, when = codes[keep], when[keep]
    answered = t["answered"].to_numpy(dtype=bool)[keep]
    last = np.full(len(labels) + 1, _NAT, dtype=np.int64)
    np.maximum.at(last, c[answered], when[answered])
    after = when > last[c]  # never answered: every touch (as after pandas' smallest timestamp)
    outbound = t["outbound"].to_numpy(dtype=bool)[keep]
    count = np.bincount(c[after & outbound], minlength=len(labels) + 1)
    out = pd.DataFrame(index=ids.index)
    out["outbound_since_answer"] = count[want].astype(float)
    since = pd.Series(last[want].view("datetime64[ns]"), index=ids.index)
    days = (as_of - since).dt.total_seconds() / 86400.0
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
    """``rep_id`` and ``segment`` of each id (aligned with ``ids``; the first row of an id kept twice).

    A value missing in the table is ``None``, an id the table does not hold gets ``NaN``.
    """
    e = history.entities
    codes, labels = codes_of(e["entity_id"])
    first = np.full(len(labels) + 1, -1, dtype=np.int64)
    seen, rows = np.unique(codes, return_index=True)
    first[seen] = rows  # a missing id's row lands in the last slot, which no id asks for
    first[-1] = -1
    row = first[_wanted(labels, ids)]
    found = row >= 0
    out = pd.DataFrame(index=ids.index)
    for col in ("rep_id", "segment"):
        values = np.full(len(ids), np.nan, dtype=object)
        if isinstance(e[col].dtype, pd.CategoricalDtype):
            vcodes = e[col].cat.codes.to_numpy()[row[found]]
            text = e[col].cat.categories.to_numpy(dtype=object)
            values[found] = np.where(vcodes >= 0, text[np.maximum(vcodes, 0)] if len(text) else None, None)
        else:
            values[found] = e[col].to_numpy(dtype=object)[row[found]]
        out[col] = values
    return out


def finite(values: pd.Series) -> np.ndarray:
    """Float values with missing as NaN."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
