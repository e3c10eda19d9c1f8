"""Request and response models of the HTTP service (pydantic), built from the feature catalogue.

A record is what the CRM knows of one lead or deal: its id, optionally the moment it describes
(``as_of``), and any of the snapshot features of :mod:`forecast.features.build` under their
catalogue names. Every feature is optional (a missing value is what the models see for a feature
the CRM did not send); types, ranges and unknown fields are checked, so a typo in a field name is
a 400 with its path, not a silently missing feature. Categorical values are free text: a value
the model never saw is scored as unseen and named in the answer's ``warnings``, except a deal's
``stage``, which the deal routes refuse (a 400 listing the known stages).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from forecast.features.build import ID_COLUMN, Entity, feature_catalogue
from forecast.name_rules import name_problem

MAX_RECORDS = 1000
"""Most records in one request (a larger list is a 400; batch jobs score whole files)."""
MAX_TEXT = 200
"""Longest id or categorical value accepted."""
MAX_MAGNITUDE = 1e12
"""Largest absolute value of a numeric feature (money included)."""

_SIGNED = {"days_to_expected_close", "act_days_to_next_action", "eng_trend_7v21"}
"""Numeric features that may be negative (an overdue close date, a falling trend)."""

Id = Annotated[str, Field(min_length=1, max_length=MAX_TEXT, pattern=r"\S")]

EARLIEST, LATEST = datetime(1900, 1, 1), datetime(2100, 1, 1)
"""Accepted moments: a century of day counts after ``LATEST`` still fits pandas' dates (< 2262)."""


def _in_range(value: datetime) -> datetime:
    """A moment between 1900 and 2100, in UTC without a zone."""
    wall = value.replace(tzinfo=None)
    if not EARLIEST <= wall < LATEST:  # checked before any zone arithmetic, which can overflow
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
    if not EARLIEST <= naive < LATEST:
        raise ValueError(f"must lie between {EARLIEST.year} and {LATEST.year}")
    return naive


Moment = Annotated[datetime, AfterValidator(_in_range)]
"""A date-time (ISO 8601; with a zone, converted to UTC)."""


MAX_DAYS = 36_525
"""Largest day count (a century): dates are computed from some, and no date holds more."""


def _is_days(name: str) -> bool:
    return "days" in name.split("_")


def _is_share(name: str) -> bool:
    return name.endswith(("_rate", "_rate_90d", "_rate_prior", "_conversion_prior"))


def _field(name: str, kind: str, description: str) -> tuple[Any, Any]:
    """The pydantic type and field of one catalogue feature."""
    if kind == "categorical":
        return (str | None, Field(default=None, max_length=MAX_TEXT, description=description))
    if kind == "boolean":
        return (bool | None, Field(default=None, description=description))
    high = 1.0 if _is_share(name) else (MAX_DAYS if _is_days(name) else MAX_MAGNITUDE)
    low = -high if name in _SIGNED else 0.0
    return (
        float | None,
        Field(default=None, ge=low, le=high, allow_inf_nan=False, description=description),
    )


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: Moment | None = Field(
        default=None,
        description="The moment the record describes; close dates count from it. Default: the served "
        "warehouse's as-of (midnight after its last day, as the CLI), or now (UTC) without --warehouse.",
    )


@cache
def record_model(entity: Entity) -> type[BaseModel]:
    """The record model of ``entity`` (``lead``: ``LeadRecord``, ``opportunity``: ``DealRecord``)."""
    id_name = ID_COLUMN[entity]
    fields: dict[str, Any] = {
        id_name: (Id, Field(description=f"The CRM's {entity} id (echoed in the answer).")),
    }
    for f in feature_catalogue(entity):
        fields[f.name] = _field(f.name, f.kind, f.description)
    name = "LeadRecord" if entity == "lead" else "DealRecord"
    doc = f"One {'lead' if entity == 'lead' else 'deal'}: its id and any snapshot features, all optional."
    model = create_model(name, __base__=_Record, __doc__=doc, **fields)
    return model


LeadRecord = record_model("lead")
DealRecord = record_model("opportunity")

Records = Annotated[list[Any], Field(min_length=1, max_length=MAX_RECORDS)]


class _OneOrMany(BaseModel):
    """Exactly one of the single field and the list field."""

    model_config = ConfigDict(extra="forbid")
    single: ClassVar[str] = ""
    many: ClassVar[str] = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> _OneOrMany:
        given = [n for n in (self.single, self.many) if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"send exactly one of {self.single!r} (one record) or {self.many!r} (a list)")
        return self


def _one_of(*names: str) -> ConfigDict:
    """Forbid unknown fields; tell the OpenAPI spec that exactly one of ``names`` is sent."""
    return ConfigDict(extra="forbid", json_schema_extra={"oneOf": [{"required": [n]} for n in names]})


class LeadScoreRequest(_OneOrMany):
    """``{"lead": {...}}`` for one lead, or ``{"leads": [...]}`` for up to 1,000."""

    model_config = _one_of("lead", "leads")

    single = "lead"
    many = "leads"
    lead: LeadRecord | None = None  # type: ignore[valid-type]
    leads: Annotated[list[LeadRecord], Field(min_length=1, max_length=MAX_RECORDS)] | None = None  # type: ignore[valid-type]


class DealRequest(_OneOrMany):
    """``{"deal": {...}}`` for one deal, or ``{"deals": [...]}`` for up to 1,000."""

    model_config = _one_of("deal", "deals")

    single = "deal"
    many = "deals"
    deal: DealRecord | None = None  # type: ignore[valid-type]
    deals: Annotated[list[DealRecord], Field(min_length=1, max_length=MAX_RECORDS)] | None = None  # type: ignore[valid-type]


class FlagsRequest(BaseModel):
    """Leads or deals to flag: exactly one of ``lead``, ``leads``, ``deal``, ``deals``."""

    model_config = _one_of("lead", "leads", "deal", "deals")
    lead: LeadRecord | None = None  # type: ignore[valid-type]
    leads: Annotated[list[LeadRecord], Field(min_length=1, max_length=MAX_RECORDS)] | None = None  # type: ignore[valid-type]
    deal: DealRecord | None = None  # type: ignore[valid-type]
    deals: Annotated[list[DealRecord], Field(min_length=1, max_length=MAX_RECORDS)] | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _exactly_one(self) -> FlagsRequest:
        given = [n for n in ("lead", "leads", "deal", "deals") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("send exactly one of 'lead', 'leads', 'deal' or 'deals'")
        return self

    def records(self) -> tuple[Entity, list[BaseModel], bool]:
        """The entity, its records and whether a single one was sent."""
        for name, entity in (("lead", "lead"), ("deal", "opportunity")):
            if getattr(self, name) is not None:
                return entity, [getattr(self, name)], True  # type: ignore[return-value]
            if getattr(self, name + "s") is not None:
                return entity, list(getattr(self, name + "s")), False  # type: ignore[return-value]
        raise AssertionError("validated above")  # pragma: no cover


class RevenueRequest(BaseModel):
    """A revenue forecast of the given open deals, or of the warehouse's pipeline when none are sent."""

    model_config = ConfigDict(extra="forbid")
    deals: Annotated[list[DealRecord], Field(min_length=1, max_length=MAX_RECORDS)] | None = Field(  # type: ignore[valid-type]
        default=None,
        description="Open deals (each needs an amount). Omitted: the warehouse's open pipeline "
        "(the server must run with --warehouse), with deals not created yet and quotas.",
    )
    as_of: Moment | None = Field(
        default=None,
        description="Forecast time. Default: the served warehouse's as-of (midnight after its last day, "
        "as the CLI), or now (UTC) for sent deals without --warehouse.",
    )
    periods: int = Field(default=3, ge=1, le=12, description="How many periods from the current one.")
    by: Literal["week", "month", "quarter"] = "month"
    group: Literal["team", "region"] | None = Field(
        default=None, description="Split the forecast by the deals' team or region (default: one total)."
    )
    quota: Annotated[list[Annotated[float, Field(ge=0, le=MAX_MAGNITUDE)]], Field(max_length=12)] | None = (
        Field(default=None, description="Goal of each period for sent deals (whole team), in order.")
    )
    simulations: int = Field(default=10_000, ge=100, le=50_000)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


def _valid_name(value: str) -> str:
    """A model name by :func:`forecast.name_rules.check_name`'s rule.

    A ``ValueError`` is a 400 with its path.
    """
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"not a valid model name: it {problem}")
    return value


class ReloadRequest(BaseModel):
    """``POST /admin/reload``: check the registry's champion aliases now."""

    model_config = ConfigDict(extra="forbid")
    model: Annotated[str, AfterValidator(_valid_name)] | None = Field(
        default=None, max_length=MAX_TEXT, description="Only this model (default: all)."
    )


Cell = Annotated[str, Field(max_length=MAX_TEXT)] | int | float | bool | None


class ExportRowsRequest(BaseModel):
    """``POST /score_export``: rows in the shape of the flat export the served lead model learned from."""

    model_config = ConfigDict(extra="forbid")
    rows: list[dict[Annotated[str, Field(max_length=MAX_TEXT)], Cell]] = Field(
        min_length=1,
        max_length=MAX_RECORDS,
        description="Up to 1,000 rows: the export's column names and values as the export writes them.",
    )


# Responses (for the OpenAPI spec; the service writes the same shapes as JSON)
# --------------------------------------------------------------------------------------------------


class Reasons(BaseModel):
    """What raised and what lowered the score most, in plain words (at most three each)."""

    up: list[str]
    down: list[str]


class _Scored(BaseModel):
    score: int = Field(description="The probability × 100, rounded.")
    band: Literal["A", "B", "C", "D"]
    reasons: Reasons
    features_sent: int = Field(description="How many of the model's inputs the request gave.")
    features_used: int = Field(description="How many inputs the model has.")
    model_name: str
    model_version: str
    warnings: list[str] = Field(
        default_factory=list,
        description="Values the model never saw in training (scored as unknown levels); empty when none.",
    )


class LeadScore(_Scored):
    """One lead's score."""

    lead_id: str
    p_convert: float = Field(description="P(converted within the model's horizon), calibrated.")


class DealScore(_Scored):
    """One deal's win probability."""

    opportunity_id: str
    p_win: float = Field(description="P(won within the model's horizon), calibrated.")


class CloseDates(BaseModel):
    """One deal's close-date distribution."""

    opportunity_id: str
    as_of: str
    p_close_30d: float | None = None
    p_close_60d: float | None = None
    p_close_90d: float | None = None
    close_date_p10: str | None = Field(default=None, description="Closed by this date with probability 0.1.")
    close_date_p50: str | None = None
    close_date_p90: str | None = Field(default=None, description="Empty beyond the modelled horizon.")
    expected_close_date: str | None = None
    slip_risk: float | None = Field(default=None, description="P(closing after the expected close date).")
    reasons: Reasons
    features_sent: int
    model_name: str
    model_version: str
    warnings: list[str] = Field(
        default_factory=list,
        description="Values the model never saw in training (scored as unknown levels); empty when none.",
    )


class LeadScoreResponse(BaseModel):
    """``result`` for one lead, ``results`` and ``count`` for a list."""

    result: LeadScore | None = None
    results: list[LeadScore] | None = None
    count: int | None = None


class DealScoreResponse(BaseModel):
    """``result`` for one deal, ``results`` and ``count`` for a list."""

    result: DealScore | None = None
    results: list[DealScore] | None = None
    count: int | None = None


class CloseDatesResponse(BaseModel):
    """``result`` for one deal, ``results`` and ``count`` for a list."""

    result: CloseDates | None = None
    results: list[CloseDates] | None = None
    count: int | None = None


class FlagsResponse(BaseModel):
    """Flags of each record, the flags not evaluated, and notes.

    Per record: ``flags`` (flag, severity, value, threshold, evidence, suggested_action,
    decision), ``at_risk``, ``top_flag``, ``suggested_action`` and ``p_churn``.
    """

    result: dict[str, Any] | None = None
    results: list[dict[str, Any]] | None = None
    count: int | None = None
    not_evaluated: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


class RevenueResponse(BaseModel):
    """The revenue forecast and the models used.

    Per period (and group) in ``forecast``: expected, p10, p50, p90, quota, p_hit_quota,
    gap_to_goal, open_pipeline, pipeline_coverage. For the warehouse also goals and pacing.
    """

    model_config = ConfigDict(extra="allow")
    as_of: str
    by: str
    group: str | None = None
    simulations: int
    models: dict[str, str]
    open_deals: int
    open_pipeline: float
    forecast: list[dict[str, Any]]


class ReloadResponse(BaseModel):
    """Per model: ``loaded``, ``unchanged``, ``absent`` or ``failed`` (with the version and error)."""

    reload: dict[str, dict[str, Any]]
    models: dict[str, Any]


class ExportScoreResponse(BaseModel):
    """The answer of ``/score_export``: the rows scored and the rows refused.

    ``results``: the export's id or ``source_row``, the probability, score, band, reasons and
    warnings; ``rejected``: row, column, rule, message.
    """

    results: list[dict[str, Any]]
    count: int
    rejected: list[dict[str, Any]]
    model: str
    version: str
