"""The period's headline figures against the period before, as ``forecast metrics`` gives both.

The previous period is :meth:`~forecast.tracking.periods.Period.previous` (the period of the same
kind just before; for a range, the range of the same length just before). Both periods' figures
are rows of ``forecast metrics --report performance`` (and ``process`` for the new leads) read
through the dashboard's :class:`~forecast.dashboard.data.Reader`, so the previous period shares the
cached tracking read of the same as of, and each table is computed once per state. The previous
one is the report of ``--period`` :attr:`~forecast.tracking.periods.Period.spec` (its days as a
range) at the same as of, a command anyone can run to check the page. Nothing is derived here but
the differences.

Where the warehouse records nothing before the previous period ends (it starts later), or a rate of
the previous period has no trial, the previous value is absent: the page says "no data", never a
0% change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from forecast.tracking.data import ALL_LABEL
from forecast.tracking.periods import Period

if TYPE_CHECKING:
    from forecast.dashboard.data import Filters, Reader

REPORT = "performance"
"""The report most figures come from (``forecast metrics --report performance``)."""
HEADLINE = (
    ("won_value", "Won value", "money", REPORT),
    ("won", "Deals won", "count", REPORT),
    ("win_rate", "Win rate", "rate", REPORT),
    ("new_opportunities", "New opportunities", "count", REPORT),
    ("prospects", "New leads", "count", "process"),
    ("calls", "Calls", "count", REPORT),
    ("emails_sent", "Emails sent", "count", REPORT),
    ("meetings_completed", "Meetings held", "count", REPORT),
)
"""The compared figures: column, label, how a change is told (money, count, rate), and the report of
``forecast metrics`` with that column (the leads created in the period are the process report's
``prospects``)."""
ACTIVITY = frozenset({"calls", "emails_sent", "meetings_completed"})
"""The figures counted from activities (left out where the warehouse records none)."""
LEADS = frozenset({"prospects"})
"""The figures counted from leads (left out where the warehouse records none: a source of deals only)."""
WHAT = "the change against the previous period"
_Rows = dict[str, dict[str, Any]]
"""A report table's compared columns by the row's group."""


@dataclass(frozen=True)
class Change:
    """One figure in a period and in the period before.

    Attributes:
        now: This period's value (``None``: unknown).
        prev: The previous period's (``None``: no data).
        kind: ``money``, ``count`` or ``rate`` (a rate changes in percentage points).
    """

    now: float | None
    prev: float | None
    kind: str

    @property
    def delta(self) -> float | None:
        """``now - prev`` (``None`` when either is unknown)."""
        return None if self.now is None or self.prev is None else self.now - self.prev

    @property
    def relative(self) -> float | None:
        """The change as a fraction of the previous value (``None``: a rate, or from nothing)."""
        delta = self.delta
        if delta is None or self.kind == "rate" or self.prev == 0 or self.prev is None:
            return None
        return delta / abs(self.prev)

    @property
    def direction(self) -> str | None:
        """``up``, ``down`` or ``same`` (``None``: no data to compare with)."""
        delta = self.delta
        if delta is None:
            return None
        if abs(delta) <= 1e-12 * max(1.0, abs(self.prev or 0.0)):
            return "same"
        return "up" if delta > 0 else "down"


@dataclass(frozen=True)
class Comparison:
    """Rows of headline figures in a period and the period before.

    Attributes:
        as_of: The as of both are computed at.
        period: The page's period.
        previous: The period before (:meth:`Period.previous`).
        rows: By ``(grouping, value)`` (``("rep", "(all)")`` for everyone): each figure's change.
        metrics: The compared columns, in order.
        covered: Whether the warehouse records anything before the previous period ends.
        notes: What the comparison leaves out or cannot follow.
    """

    as_of: pd.Timestamp
    period: Period
    previous: Period
    rows: dict[tuple[str, str], dict[str, Change]]
    metrics: tuple[str, ...]
    covered: bool
    notes: list[str] = field(default_factory=list)

    @property
    def reports(self) -> list[str]:
        """The reports of ``forecast metrics`` the compared figures come from (``performance`` first)."""
        return sorted(
            {REPORT, *(r for m, _, _, r in HEADLINE if m in self.metrics)}, key=lambda r: r != REPORT
        )

    def command(self, by: str, report: str = REPORT) -> str:
        """The command whose JSON holds the previous period's figures of ``report`` grouped ``by``."""
        return (
            f"forecast metrics --report {report} --by {by} --period {self.previous.spec} "
            f"--as-of {self.as_of.isoformat()}"
        )


def previous_filters(filters: Filters, period: Period) -> Filters:
    """The filters of the period before ``period`` (its days as a ``--period`` range, the same as of)."""
    return replace(filters, period=period.previous().spec)


def compare(reader: Reader, filters: Filters, rows: list[tuple[str, str]]) -> Comparison:
    """The headline figures of ``rows`` in the filters' period and the period before.

    Args:
        reader: The dashboard's reader (its cached tracking read and reports).
        filters: The page's filters (their as of and period).
        rows: ``(grouping, value)`` pairs: rows of ``forecast metrics --report performance --by grouping``.

    Returns:
        The comparison (rows missing from a period's table have no value there).
    """
    from forecast.tracking.periods import parse_period

    facts = reader.facts(filters)  # no CRM read where the reports are DuckDB's (Reader.report)
    period = parse_period(filters.period, facts.as_of)
    previous = period.previous()
    before = previous_filters(filters, period)
    first = facts.first_recorded
    covered = first is not None and first < previous.end
    notes: list[str] = []
    if not covered:
        notes.append(
            f"the warehouse records nothing before {previous.end.date().isoformat()}: no data for "
            f"the previous period ({previous.label}) to compare with"
        )
    elif first is not None and first > previous.start:
        notes.append(
            f"the warehouse's records start on {first.date().isoformat()}, inside the previous period "
            f"({previous.label}): its figures cover only part of it"
        )
    if period.end > facts.as_of:
        notes.append(
            f"{period.label} ends after the as of ({facts.as_of.isoformat()}): its figures cover only "
            f"its days until then, the previous period's all of {previous.label}"
        )
    left_out = (frozenset() if facts.has_activities else ACTIVITY) | (
        frozenset() if facts.has_leads else LEADS
    )
    metrics = tuple(m for m, _, _, _ in HEADLINE if m not in left_out)
    kinds = {m: k for m, _, k, _ in HEADLINE}
    source = {m: r for m, _, _, r in HEADLINE}
    tables: dict[tuple[str, str], tuple[_Rows, _Rows]] = {}
    wanted: dict[str, list[str]] = {}
    for by, value in rows:
        wanted.setdefault(by, []).append(value)

    def rows_of(name: str, by: str) -> tuple[_Rows, _Rows]:
        if (name, by) not in tables:  # each table indexed once (a rep's row is not a scan per rep)
            # a filtered view reads its rows alone (the whole table's when held: Reader.report)
            only = wanted[by] if filters.scope is not None else None
            # the headline figures alone: a held table, else the brief form (Reader.report)
            now_table = reader.report(filters, name, by, only=only, brief=True)[name]
            prev_table = reader.report(before, name, by, only=only, brief=True)[name] if covered else None
            tables[(name, by)] = (_by_key(now_table, by, metrics), _by_key(prev_table, by, metrics))
        return tables[(name, by)]

    out: dict[tuple[str, str], dict[str, Change]] = {}
    for by, value in rows:
        changes: dict[str, Change] = {}
        for m in metrics:
            now_rows, prev_rows = rows_of(source[m], by)
            changes[m] = Change(_number(now_rows.get(value), m), _number(prev_rows.get(value), m), kinds[m])
        out[(by, value)] = changes
    return Comparison(facts.as_of, period, previous, out, metrics, covered, notes)


def overview_changes(reader: Reader, filters: Filters) -> Comparison:
    """The Overview's comparison: everyone's figures, or the most specific filter's group (a page)."""

    def compute() -> Comparison:
        scope = filters.scope
        row = ("rep", ALL_LABEL) if scope is None else scope
        made = compare(reader, filters, [row])
        made.notes.extend(filters.unapplied((row[0],) if scope is not None else (), WHAT))
        return made

    return reader.page("overview changes", filters, compute)


def reps_changes(reader: Reader, filters: Filters, shown: dict[str, Any] | None = None) -> Comparison:
    """The Reps page's comparison: each rep its table shows, and its total row (the team's or region's).

    ``shown`` is :meth:`Reader.reps`'s answer for the filters when the caller has it already (a page:
    kept by the filters, which decide ``shown``).
    """

    def compute() -> Comparison:
        table = reader.reps(filters) if shown is None else shown
        total: pd.DataFrame = table["total"]
        label = next((c for c in ("rep", "team", "region") if c in total.columns), "rep")
        rows = [("rep", str(rep)) for rep in table["performance"]["rep"]]
        rows += [(label, str(v)) for v in total[label]] if label in total.columns else []
        return compare(reader, filters, rows)

    return reader.page("reps changes", filters, compute)


def _by_key(table: pd.DataFrame | None, by: str, metrics: tuple[str, ...]) -> _Rows:
    """The compared columns of each row of a report's table, by the row's group (its first row)."""
    if table is None or table.empty or by not in table:
        return {}
    kept = table[[c for c in metrics if c in table.columns]]
    out: dict[str, dict[str, Any]] = {}
    for key, row in zip(table[by].astype(str).tolist(), kept.to_dict("records"), strict=True):
        out.setdefault(key, {str(k): v for k, v in row.items()})
    return out


def _number(row: dict[str, Any] | None, column: str) -> float | None:
    if row is None or column not in row:
        return None
    value = row[column]
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
