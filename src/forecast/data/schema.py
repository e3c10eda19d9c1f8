"""The canonical CRM data model (docs/data-model.md) as table specifications and pandera schemas.

Column names are the contract between adapters, features, the simulator and tests. All timestamps
are UTC and stored timezone-naive. A table may carry extra (custom) columns; they are kept.

:data:`TABLES` describes every table (columns, kinds, allowed values, keys and temporal rules);
:func:`pandera_schema` turns one description into the pandera schema that checks a typed frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandera.pandas as pa

Kind = Literal["str", "int", "float", "bool", "timestamp"]

SQL_TYPES: dict[Kind, str] = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMP",
}
"""The warehouse's SQL type of each column kind."""

LEAD_SOURCES = (
    "web_form",
    "referral",
    "cold_call",
    "event",
    "paid_ads",
    "social",
    "partner",
    "outbound_email",
    "organic_search",
    "content",
    "other",
)
LEAD_STATUSES = ("new", "working", "qualified", "disqualified", "converted")
CHANNELS = ("inbound", "outbound")
OUTCOMES = ("open", "won", "lost")
ACTIVITY_TYPES = ("call", "email", "sms", "meeting", "demo", "task")
DIRECTIONS = ("outbound", "inbound")
ACTIVITY_OUTCOMES = (
    "completed",
    "no_answer",
    "voicemail",
    "cancelled",
    "no_show",
    "declined",
    "scheduled",
)
ENGAGEMENT_TYPES = (
    "web_visit",
    "page_view",
    "pricing_page_view",
    "form_submit",
    "content_download",
    "email_click",
    "social_interaction",
)
OWNER_TYPES = ("rep", "team", "company")


@dataclass(frozen=True)
class Column:
    """One canonical column.

    Attributes:
        name: Column name.
        kind: Logical type; values are coerced to it on ingest.
        required: The column must be present in every source file of its table.
        nullable: Missing values are allowed.
        allowed: Closed set of allowed values (``None``: any). Stage columns are checked against the
            pipeline instead.
        min_value: Inclusive lower bound for numbers.
        future_ok: Timestamps in this column may lie after the ingest time (planned dates).
    """

    name: str
    kind: Kind
    required: bool = False
    nullable: bool = True
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    future_ok: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """``column`` must match a primary key of ``table`` (when not null)."""

    column: str
    table: str


@dataclass(frozen=True)
class Order:
    """Temporal rule: ``later`` must not be before ``earlier`` (both in the same row)."""

    earlier: str
    later: str


@dataclass(frozen=True)
class TableSpec:
    """One canonical table."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    orders: tuple[Order, ...] = ()
    stage_columns: tuple[str, ...] = ()
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        """Canonical column names in order."""
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        """Columns every source file of this table must have."""
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        """Return the spec of column ``name``."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


def _c(name: str, kind: Kind, **kw: object) -> Column:
    return Column(name, kind, **kw)  # type: ignore[arg-type]


def _pk(name: str) -> Column:
    return Column(name, "str", required=True, nullable=False)


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "reps",
            (
                _pk("rep_id"),
                _c("name", "str"),
                _c("team", "str"),
                _c("manager", "str"),
                _c("region", "str"),
                _c("hired_at", "timestamp"),
                _c("active", "bool"),
            ),
            key=("rep_id",),
            description="Sales reps with their team, manager and region.",
        ),
        TableSpec(
            "accounts",
            (
                _pk("account_id"),
                _c("name", "str"),
                _c("industry", "str"),
                _c("employees", "int", min_value=0),
                _c("annual_revenue", "float", min_value=0),
                _c("country", "str"),
                _c("created_at", "timestamp"),
            ),
            key=("account_id",),
            description="Customer and prospect companies.",
        ),
        TableSpec(
            "leads",
            (
                _pk("lead_id"),
                _c("created_at", "timestamp", required=True, nullable=False),
                _c("source", "str", allowed=LEAD_SOURCES),
                _c("channel", "str", allowed=CHANNELS),
                _c("rep_id", "str"),
                _c("account_id", "str"),
                _c("title", "str"),
                _c("industry", "str"),
                _c("company_size", "str"),
                _c("country", "str"),
                _c("status", "str", required=True, nullable=False, allowed=LEAD_STATUSES),
                _c("status_changed_at", "timestamp"),
                _c("converted_at", "timestamp"),
                _c("opportunity_id", "str"),
            ),
            key=("lead_id",),
            foreign_keys=(
                ForeignKey("rep_id", "reps"),
                ForeignKey("account_id", "accounts"),
                ForeignKey("opportunity_id", "opportunities"),
            ),
            orders=(Order("created_at", "status_changed_at"), Order("created_at", "converted_at")),
            description="Prospects before they become opportunities.",
        ),
        TableSpec(
            "opportunities",
            (
                _pk("opportunity_id"),
                _c("account_id", "str"),
                _c("lead_id", "str"),
                _c("rep_id", "str", required=True, nullable=False),
                _c("product", "str"),
                _c("created_at", "timestamp", required=True, nullable=False),
                _c("amount", "float", min_value=0),
                _c("stage", "str", required=True, nullable=False),
                _c("expected_close_date", "timestamp", future_ok=True),
                _c("closed_at", "timestamp"),
                _c("outcome", "str", required=True, nullable=False, allowed=OUTCOMES),
                _c("loss_reason", "str"),
            ),
            key=("opportunity_id",),
            foreign_keys=(
                ForeignKey("rep_id", "reps"),
                ForeignKey("account_id", "accounts"),
                ForeignKey("lead_id", "leads"),
            ),
            orders=(Order("created_at", "closed_at"),),
            stage_columns=("stage",),
            description="Deals, with their current stage and final outcome.",
        ),
        TableSpec(
            "stage_history",
            (
                _c("opportunity_id", "str", required=True, nullable=False),
                _c("stage", "str", required=True, nullable=False),
                _c("entered_at", "timestamp", required=True, nullable=False),
                _c("amount", "float", min_value=0),
                _c("expected_close_date", "timestamp", future_ok=True),
            ),
            key=("opportunity_id", "entered_at", "stage"),
            foreign_keys=(ForeignKey("opportunity_id", "opportunities"),),
            stage_columns=("stage",),
            description="One row per stage change of a deal (like Salesforce OpportunityHistory).",
        ),
        TableSpec(
            "activities",
            (
                _pk("activity_id"),
                _c("occurred_at", "timestamp", required=True, nullable=False),
                _c("type", "str", required=True, nullable=False, allowed=ACTIVITY_TYPES),
                _c("direction", "str", allowed=DIRECTIONS),
                _c("rep_id", "str"),
                _c("lead_id", "str"),
                _c("opportunity_id", "str"),
                _c("duration_seconds", "float", min_value=0),
                _c("outcome", "str", allowed=ACTIVITY_OUTCOMES),
                _c("email_opened", "bool"),
                _c("email_replied", "bool"),
                _c("scheduled_for", "timestamp", future_ok=True),
            ),
            key=("activity_id",),
            foreign_keys=(
                ForeignKey("rep_id", "reps"),
                ForeignKey("lead_id", "leads"),
                ForeignKey("opportunity_id", "opportunities"),
            ),
            description="Calls, emails, texts, meetings, demos and tasks.",
        ),
        TableSpec(
            "engagement_events",
            (
                _pk("event_id"),
                _c("occurred_at", "timestamp", required=True, nullable=False),
                _c("lead_id", "str"),
                _c("account_id", "str"),
                _c("type", "str", required=True, nullable=False, allowed=ENGAGEMENT_TYPES),
                _c("value", "float", min_value=0),
            ),
            key=("event_id",),
            foreign_keys=(ForeignKey("lead_id", "leads"), ForeignKey("account_id", "accounts")),
            description="Prospect behaviour: web visits, pricing-page views, downloads, clicks.",
        ),
        TableSpec(
            "quotas",
            (
                _c("owner_type", "str", required=True, nullable=False, allowed=OWNER_TYPES),
                _c("owner_id", "str", required=True, nullable=False),
                _c("period_start", "timestamp", required=True, nullable=False, future_ok=True),
                _c("period_end", "timestamp", required=True, nullable=False, future_ok=True),
                _c("amount", "float", required=True, nullable=False, min_value=0),
            ),
            key=("owner_type", "owner_id", "period_start", "period_end"),
            orders=(Order("period_start", "period_end"),),
            description="Revenue goals per rep, team or the company and period.",
        ),
    )
}
"""Every canonical table, in dependency order (a table's foreign keys point to earlier tables,
except the lead <-> opportunity pair, which is checked once both are known)."""

TABLE_ORDER: tuple[str, ...] = tuple(TABLES)

_PANDERA_DTYPES: dict[Kind, object] = {
    "str": object,
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "timestamp": "datetime64[ns]",
}


def pandera_schema(spec: TableSpec, stages: list[str] | None = None) -> pa.DataFrameSchema:
    """Build the pandera schema that checks a typed frame of ``spec``'s table.

    The schema checks dtypes, nullability, allowed values, lower bounds and (for stage columns)
    membership in the pipeline. Unknown extra columns are allowed (``strict=False``). Key
    uniqueness and cross-table rules are checked by :mod:`forecast.data.validate`.

    Args:
        spec: The table.
        stages: Allowed stage names for ``spec.stage_columns``.

    Returns:
        A pandera ``DataFrameSchema`` with ``coerce=False``: frames must already be typed.
    """
    columns: dict[str, pa.Column] = {}
    for col in spec.columns:
        checks: list[pa.Check] = []
        if col.allowed is not None:
            checks.append(pa.Check.isin(list(col.allowed), name=f"allowed_values:{col.name}"))
        if col.name in spec.stage_columns and stages is not None:
            checks.append(pa.Check.isin(list(stages), name=f"known_stage:{col.name}"))
        if col.min_value is not None:
            checks.append(pa.Check.ge(col.min_value, name=f"min_value:{col.name}"))
        columns[col.name] = pa.Column(
            _PANDERA_DTYPES[col.kind],
            checks=checks,
            nullable=col.nullable,
            required=False,
            coerce=False,
        )
    return pa.DataFrameSchema(columns, strict=False, name=spec.name)
