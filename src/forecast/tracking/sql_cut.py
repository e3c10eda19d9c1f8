"""The CRM cut at an as-of time as DuckDB SQL over the warehouse: the reports' aggregates without a read.

:func:`forecast.tracking.read.load` reads the CRM into memory and cuts it there; on a CRM of a
million leads and ten million activities that read is ten seconds and gigabytes before any figure.
A report that only counts and adds up (how many calls per rep in a month, their seconds, the deals
won) can ask DuckDB instead: :class:`SqlCut` gives the same cut as common table expressions over
the warehouse's tables, and a report aggregates over them and fetches one row per group.

The expressions follow the rules of the in-memory cut (:func:`forecast.tracking.data.prepare`),
column for column:

- **reps**: each rep id once (its first row), name, team, manager and region labelled ``(none)``
  where missing or empty;
- **leads** created before the as-of; ``converted_at`` only where before it
  (:func:`~forecast.data.as_of.lead_status_at`); source and channel labelled;
- **deals** created before the as-of (:func:`~forecast.data.as_of.deals_at`): a close at or after
  it undone (``outcome`` open), the amount that of the last stage change before it where that
  change has one; source and channel those of the deal's lead, ``(none)`` without one;
- **activities** before the as-of, with their lead's source and channel (else their deal's), the
  ``done`` flag (not ``scheduled``) and the ``cold`` flag (an outbound call, done, on a lead and no
  deal, before the lead converted); every row with its rep's team, manager and region.

:func:`applies` says where the SQL cut is the in-memory one: every table the expressions read
(and the engagement events, where the warehouse has them: the Prospects list's behaviour) a
table (not a view) with the canonical columns of the types the rules assume (text ids without a
collation, timestamps, double amounts and durations, booleans), every event time the default as of
reads a timestamp, lead, deal and rep ids present and each lead and deal id once, every stage
given, and every amount and duration a finite number where given. Elsewhere :func:`open_cut`
gives ``None`` and the caller reads the CRM as before. ``tests/unit/test_tracking_sql_reports.py``
holds the two to the same figures, and to the read where :func:`applies` is false.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from forecast.data.as_of import EVENT_TIMES
from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.data.schema import TABLES
from forecast.data.warehouse import read_pipeline
from forecast.timeutil import resolve_as_of
from forecast.tracking.data import ALL_LABEL, NONE_LABEL, REP_KEYS
from forecast.tracking.periods import Period
from forecast.tracking.stats import NAN, z_value

_TABLES = ("reps", "leads", "opportunities", "stage_history", "activities")
_OPTIONAL = ("engagement_events",)
"""The tables the cut reads where the warehouse has them (the in-memory read takes none as empty)."""
_TEXT = {"VARCHAR"}
_INTEGER = {"BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT"}
_KINDS = {"str": _TEXT, "timestamp": {"TIMESTAMP"}, "float": {"DOUBLE"}, "int": _INTEGER, "bool": {"BOOLEAN"}}
"""The DuckDB types of the columns read, by canonical kind: those the in-memory read takes as the SQL
does (a 32-bit float is averaged in 32 bits in pandas, an integer amount with a gap does not cast)."""
_READ = {
    "reps": ("rep_id", "name", "team", "manager", "region"),
    "leads": (
        "lead_id",
        "created_at",
        "source",
        "channel",
        "rep_id",
        "status",
        "status_changed_at",
        "converted_at",
    ),
    "opportunities": (
        "opportunity_id",
        "lead_id",
        "rep_id",
        "product",
        "created_at",
        "amount",
        "closed_at",
        "outcome",
        "expected_close_date",
    ),
    "stage_history": ("opportunity_id", "stage", "entered_at", "amount", "expected_close_date"),
    "activities": (
        "occurred_at",
        "type",
        "direction",
        "rep_id",
        "lead_id",
        "opportunity_id",
        "duration_seconds",
        "outcome",
        "email_opened",
        "email_replied",
        "scheduled_for",
    ),
    "engagement_events": ("occurred_at", "lead_id", "type"),
}
"""The columns the expressions read, by table (``engagement_events`` where the warehouse has it)."""


def _label(column: str) -> str:
    """SQL for a text column labelled as :func:`forecast.tracking.data._label` labels it."""
    return f"CASE WHEN {column} IS NULL OR {column} = '' THEN '{NONE_LABEL}' ELSE {column} END"


def _rep_keys(alias: str) -> str:
    """The rep keys of the row whose rep (labelled id) is ``alias.rep``, ``(none)`` where not a known rep."""
    return ", ".join(f"coalesce(r_{alias}.{k}, '{NONE_LABEL}') AS {k}" for k in REP_KEYS)


class NotInSqlError(LookupError):
    """A report that cannot be computed from the warehouse in SQL as the whole read computes it.

    Raised where a report's part of the warehouse cannot be read as the in-memory read reads it
    (:func:`forecast.tracking.sql_insights.adjusted`); the caller reads the CRM instead.
    """


@dataclass(frozen=True)
class SqlCut:
    """The warehouse cut at ``as_of``, as SQL a report aggregates over (:func:`open_cut`).

    Attributes:
        con: The connection to the warehouse (kept open while the cut is used).
        as_of: Nothing at or after this time is used.
        pipeline: The pipeline the deals follow.
        reps: One row per rep: rep_id, name, team, manager, region (labelled).
        has_stage_history: Whether the source recorded stage changes at all.
        notes: What the figures cannot say (as :attr:`~forecast.tracking.data.TrackingData.notes`).
    """

    con: duckdb.DuckDBPyConnection
    as_of: pd.Timestamp
    pipeline: SalesPipeline
    reps: pd.DataFrame
    has_stage_history: bool
    notes: list[str] = field(default_factory=list)

    @property
    def parameters(self) -> dict[str, object]:
        """The named parameters of :meth:`with_clause` (``$as_of``)."""
        return {"as_of": self.as_of.to_pydatetime()}

    def with_clause(self, sources: bool = True, cold: bool = True) -> str:
        """``WITH reps_c, leads_c, deals_c, acts_c AS (...)``: the cut's tables, for a query to follow.

        ``leads_c``: lead_id, created_at, source, channel, converted_at, status (as known then),
        status_changed_at, rep; ``leads_k``: the same with the rep's team, manager and region.
        ``deals_c``: opportunity_id, created_at, closed_at, outcome, amount
        (a number, 0 where missing), known_amount (NULL where missing), loss_reason, stage (as
        known then; a deal open then in a closed stage is in the last open one), nth (its row in
        the table), product, source, channel, rep, team, manager, region.
        ``acts_c``: occurred_at, type, direction, outcome, duration_seconds, email_opened,
        email_replied, lead_id, done, cold, source, channel, rep, team, manager, region. ``rep`` is
        the rep id, ``(none)`` where missing.

        Args:
            sources: Whether the deals and activities have their source and channel (a join of
                every deal and activity to the leads: a tenth of a second at a million leads).
            cold: Whether the activities have the ``cold`` flag (a join to the leads).
        """
        pipeline = self.pipeline
        rep_keys = ", ".join(f"{_label(k)} AS {k}" for k in REP_KEYS)
        deal_sources = (
            f"coalesce(l.source, '{NONE_LABEL}') AS source, coalesce(l.channel, '{NONE_LABEL}') AS channel,"
            if sources
            else ""
        )
        deal_leads = "LEFT JOIN leads_c l ON l.lead_id = o.lead_id" if sources else ""
        cold_flag = """coalesce(
            a.type = 'call' AND a.direction = 'outbound' AND a.lead_id IS NOT NULL
            AND a.opportunity_id IS NULL AND (l.converted_at IS NULL OR l.converted_at > a.occurred_at)
            AND coalesce(a.outcome, 'completed') <> 'scheduled',
            false
        ) AS cold,"""
        act_sources = f"""coalesce(l.source, d.source, '{NONE_LABEL}') AS source,
        coalesce(l.channel, d.channel, '{NONE_LABEL}') AS channel,"""
        act_leads = "LEFT JOIN leads_c l ON l.lead_id = a.lead_id" if sources or cold else ""
        act_deals = "LEFT JOIN deal_sources d ON d.opportunity_id = a.opportunity_id" if sources else ""
        opened = pipeline.open_stages
        open_stages = ", ".join(_text(name) for name in opened) or "NULL"
        has_open = "true" if opened else "false"
        last_open = _text(opened[-1]) if opened else "NULL"
        return f"""
WITH reps_c AS (
    SELECT rep_id, {_label("name")} AS name, {rep_keys}
    FROM (SELECT *, row_number() OVER (PARTITION BY rep_id ORDER BY rowid) AS nth FROM reps)
    WHERE nth = 1
),
leads_c AS (
    SELECT lead_id, created_at, {_label("source")} AS source, {_label("channel")} AS channel,
        CASE WHEN converted_at < $as_of THEN converted_at END AS converted_at, rowid AS nth,
        CASE WHEN converted_at < $as_of THEN 'converted'
            WHEN status_changed_at < $as_of THEN status ELSE 'working' END AS status,
        status_changed_at, coalesce(rep_id, '{NONE_LABEL}') AS rep
    FROM leads WHERE created_at < $as_of
),
leads_k AS (
    SELECT l.*, {_rep_keys("l")} FROM leads_c l LEFT JOIN reps_c r_l ON r_l.rep_id = l.rep
),
last_change AS ({last_change("$as_of")}),
deals_c AS (
    SELECT o.opportunity_id, o.created_at,
        CASE WHEN o.closed_at < $as_of THEN o.closed_at END AS closed_at,
        CASE WHEN o.closed_at < $as_of THEN o.outcome ELSE 'open' END AS outcome,
        coalesce(CAST(coalesce(h.amount, o.amount) AS DOUBLE), 0.0) AS amount,
        CAST(coalesce(h.amount, o.amount) AS DOUBLE) AS known_amount,
        CASE WHEN o.closed_at < $as_of THEN o.loss_reason END AS loss_reason,
        coalesce(h.expected_close_date, o.expected_close_date) AS expected_close_date, o.lead_id,
        CASE WHEN (CASE WHEN o.closed_at < $as_of THEN o.outcome ELSE 'open' END) = 'open'
                AND NOT coalesce(coalesce(h.stage, o.stage) IN ({open_stages}), false) AND {has_open}
            THEN {last_open} ELSE coalesce(h.stage, o.stage) END AS stage,
        o.rowid AS nth,
        {_label("o.product")} AS product, {deal_sources}
        coalesce(o.rep_id, '{NONE_LABEL}') AS rep, {_rep_keys("d")}
    FROM opportunities o
    LEFT JOIN last_change h ON h.opportunity_id = o.opportunity_id
    {deal_leads}
    LEFT JOIN reps_c r_d ON r_d.rep_id = coalesce(o.rep_id, '{NONE_LABEL}')
    WHERE o.created_at < $as_of
),
deal_sources AS (
    SELECT o.opportunity_id, coalesce(l.source, '{NONE_LABEL}') AS source,
        coalesce(l.channel, '{NONE_LABEL}') AS channel
    FROM opportunities o LEFT JOIN leads_c l ON l.lead_id = o.lead_id
    WHERE o.created_at < $as_of
),
acts_c AS (
    SELECT a.occurred_at, a.type, a.direction, a.outcome,
        CAST(a.duration_seconds AS DOUBLE) AS duration_seconds, a.email_opened, a.email_replied, a.lead_id,
        coalesce(a.outcome, 'completed') <> 'scheduled' AS done, {cold_flag if cold else ""}
        {act_sources if sources else ""}
        coalesce(a.rep_id, '{NONE_LABEL}') AS rep, {_rep_keys("a")}
    FROM activities a
    {act_leads}
    {act_deals}
    LEFT JOIN reps_c r_a ON r_a.rep_id = coalesce(a.rep_id, '{NONE_LABEL}')
    WHERE a.occurred_at < $as_of
)
"""

    def bounds(self, period: Period) -> dict[str, object]:
        """The named parameters ``$start`` and ``$end`` of a period (:data:`IN_PERIOD`)."""
        return {"start": period.start.to_pydatetime(), "end": period.end.to_pydatetime()}

    def query(
        self, sql: str, parameters: Mapping[str, object], *, sources: bool = True, cold: bool = True
    ) -> pd.DataFrame:
        """The rows of ``sql`` (a query that follows :meth:`with_clause`), with the cut's parameters too.

        ``sources`` and ``cold``: as :meth:`with_clause`'s (leave out the joins a query needs not).
        """
        head = self.with_clause(sources=sources, cold=cold)
        return self.con.execute(head + sql, {**self.parameters, **parameters}).df()


def applies(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the SQL cut of this warehouse is the in-memory one, at any as of (the module's conditions).

    A scan of the tables (a tenth of a second at a million leads): a caller that opens several cuts
    of one state of the warehouse asks once and passes ``checked=True`` to :func:`open_cut`.
    """
    tables = _base_tables(con)
    read = (*_TABLES, *(t for t in _OPTIONAL if t in _present(con)))
    return (
        all(t in tables for t in read)
        and all(_typed(con, t) for t in read)
        and _timed(con, tables)
        and not _collated(con, read)
        and _clean(con)
    )


def open_cut(
    con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp | None = None, *, checked: bool = False
) -> SqlCut | None:
    """The warehouse cut at ``as_of`` (default: midnight after the last event) as SQL, or ``None``.

    ``None`` where the SQL cut would not be the in-memory one (:func:`applies`): the caller then
    reads the CRM (:func:`forecast.tracking.read.load`). ``checked``: :func:`applies` was found
    true of this state of the warehouse already (not asked again).

    Raises:
        ValueError: If no as-of is given and nothing is dated.
    """
    from forecast.tracking.read import _default_as_of

    present = _present(con)
    if not checked and not applies(con):
        return None
    when = resolve_as_of(as_of, lambda: _default_as_of(con, present))
    pipeline = read_pipeline(con) if "pipeline_stages" in present else None
    bare = SqlCut(con, when, pipeline or DEFAULT_PIPELINE, pd.DataFrame(), False)
    reps = bare.query(" SELECT * FROM reps_c ORDER BY rep_id", {}, sources=False, cold=False)
    history = con.execute("SELECT count(*) FROM stage_history").fetchone()
    has_history = bool(history and history[0])
    notes = [] if has_history else ["no stage history: time in stage and conversion per stage are unknown"]
    return SqlCut(con, when, bare.pipeline, reps, has_history, notes)


def last_change(before: str) -> str:
    """SQL: each deal's last stage change before ``before`` (a parameter), ties in the table's order.

    Its opportunity_id, stage, amount and expected_close_date (as :func:`~forecast.data.as_of.deals_at`
    takes them: the last change's values, where it gives them).
    """
    return f"""
    SELECT opportunity_id, stage, amount, expected_close_date FROM (
        SELECT opportunity_id, stage, amount, expected_close_date,
            row_number() OVER (PARTITION BY opportunity_id ORDER BY entered_at DESC, rowid DESC) AS nth
        FROM stage_history WHERE entered_at < {before})
    WHERE nth = 1"""


def _present(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The warehouse's tables."""
    return {str(r[0]) for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def _base_tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The warehouse's tables (not its views: the cut reads a table's ``rowid``, its row order)."""
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'")
    return {str(r[0]) for r in rows.fetchall()}


def _timed(con: duckdb.DuckDBPyConnection, tables: set[str]) -> bool:
    """Whether every event time the default as of reads is a timestamp (a text time compares as text)."""
    present = _present(con)
    for table, cols in EVENT_TIMES.items():
        if table not in present:
            continue
        if table not in tables:
            return False
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
        types = {str(name): str(kind) for name, kind in rows}
        if any(types.get(col, "TIMESTAMP") != "TIMESTAMP" for col in cols):
            return False
    return True


def _collated(con: duckdb.DuckDBPyConnection, read: tuple[str, ...]) -> bool:
    """Whether a table the cut reads has a column with a collation (``NOCASE`` compares unlike pandas)."""
    names = ", ".join(f"'{t}'" for t in read)
    row = con.execute(
        f"SELECT count(*) FROM duckdb_tables() WHERE table_name IN ({names}) AND sql ILIKE '%collate%'"
    ).fetchone()
    return bool(row and row[0])


def _typed(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``table`` holds the columns the expressions read, each of a type their rules assume."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
    ).fetchall()
    types = {str(name): str(kind) for name, kind in rows}
    kinds = {c.name: c.kind for c in TABLES[table].columns}
    return all(types.get(col) in _KINDS[kinds[col]] for col in _READ[table])


def _clean(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether every id the cut joins on is present and unique, and every amount and duration finite.

    The in-memory cut reads a missing id as text (``None``), repeats an activity whose lead or deal
    id is given twice, and reads a non-finite number its own way: those CRMs take the read.
    """

    def finite(column: str) -> str:
        return f"coalesce(bool_and(isfinite(CAST({column} AS DOUBLE))), true)"

    def unique(column: str) -> str:
        return f"count({column}) = count(*) AND count(DISTINCT {column}) = count(*)"

    checks = (
        "SELECT count(rep_id) = count(*) FROM reps",
        f"SELECT {unique('lead_id')} FROM leads",
        f"SELECT {unique('opportunity_id')} AND {finite('amount')} FROM opportunities",
        f"SELECT count(opportunity_id) = count(*) AND count(stage) = count(*) AND {finite('amount')}"
        " FROM stage_history",
        f"SELECT {finite('duration_seconds')} FROM activities",
    )
    for sql in checks:
        row = con.execute(sql).fetchone()
        if not (row and row[0]):
            return False
    return True


SOURCE_KEYS = ("source", "channel")
"""The groupings a query needs the activities' and deals' leads for (``with_clause(sources=True)``)."""

IN_PERIOD = "{column} >= $start AND {column} < $end"
"""SQL: ``column`` within the period of the parameters ``$start`` and ``$end`` (end excluded)."""


def by_group(by: str, sql: str) -> str:
    """``sql`` (a select of ``{by} AS grp`` and aggregates) by group and in all (the total's ``grp`` NULL)."""
    return sql.format(by=by) + " GROUP BY GROUPING SETS ((grp), ())"


def group_label(value: object) -> str:
    """A fetched group: its text, ``(all)`` for the total's NULL."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    return ALL_LABEL if missing else str(value)


def mean_interval_of(n: int, mean: object, sd: object) -> tuple[float, int, float, float]:
    """:func:`~forecast.tracking.stats.mean_interval` from the count, mean and sample deviation (SQL's)."""
    if n == 0:
        return NAN, 0, NAN, NAN
    m = float(mean)  # type: ignore[arg-type]
    if n == 1:
        return m, 1, NAN, NAN
    half = z_value() * float(sd) / math.sqrt(n)  # type: ignore[arg-type]
    return m, n, m - half, m + half


def recorded(cut: SqlCut) -> tuple[bool, bool, pd.Timestamp | None]:
    """What is recorded before the cut's as of: an activity? a lead? the earliest lead, deal or activity.

    ``(has activities, has leads, first time)``; the first time ``None`` where nothing is.
    """
    row = cut.con.execute(
        """SELECT (SELECT count(*) FROM activities WHERE occurred_at < $as_of) > 0,
            (SELECT count(*) FROM leads WHERE created_at < $as_of) > 0,
            least((SELECT min(created_at) FROM leads WHERE created_at < $as_of),
                (SELECT min(created_at) FROM opportunities WHERE created_at < $as_of),
                (SELECT min(occurred_at) FROM activities WHERE occurred_at < $as_of))""",
        cut.parameters,
    ).fetchone()
    if not row:
        return False, False, None
    first = None if row[2] is None else pd.Timestamp(row[2])
    return bool(row[0]), bool(row[1]), first


def _text(value: str) -> str:
    """A SQL string literal of ``value``."""
    return "'" + value.replace("'", "''") + "'"
