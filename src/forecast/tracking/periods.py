"""Reporting periods: parse ``day|week|month|quarter|YYYY-MM-DD..YYYY-MM-DD`` against an as-of time.

A period is a half-open interval ``[start, end)`` of naive UTC timestamps. A named period is the
last *complete* one before ``as_of`` (never the wall clock); a custom range includes both dates.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forecast.errors import InputError

PERIOD_KINDS = ("day", "week", "month", "quarter")


class PeriodError(InputError):
    """A period specification that cannot be understood."""


@dataclass(frozen=True)
class Period:
    """A half-open reporting interval.

    Attributes:
        start: First instant included.
        end: First instant excluded.
        kind: ``day``, ``week``, ``month``, ``quarter`` or ``range``.
        label: Human label, e.g. ``2024-10`` or ``2024-10-01..2024-10-15``.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    kind: str
    label: str

    @property
    def days(self) -> float:
        """Length in days."""
        return (self.end - self.start) / pd.Timedelta(days=1)

    def previous(self) -> Period:
        """The period of the same kind just before this one, ending where this one starts.

        - ``day``, ``week``, ``month``, ``quarter``: the calendar period of that kind just before
          (the day before, the ISO week before, the month before whatever its length, so February
          of a leap year has 29 days; the quarter before, Q4 of the year before for a Q1);
        - ``range``: the range of the same number of days just before (``2024-03-01..2024-03-10``
          gives ``2024-02-20..2024-02-29``), not a calendar period.

        Every report that compares with "the period before" (growth, rate ratios, the dashboard's
        changes) takes it from here.
        """
        if self.kind == "month":
            start = self.start - pd.offsets.MonthBegin(1)
            return _named("month", start)
        if self.kind == "quarter":
            start = self.start - pd.offsets.QuarterBegin(1, startingMonth=1)
            return _named("quarter", start)
        length = self.end - self.start
        start = self.start - length
        if self.kind in ("day", "week"):
            return _named(self.kind, start)
        return Period(start, self.start, "range", _range_label(start, self.start))

    @property
    def spec(self) -> str:
        """The ``--period`` that selects exactly these days: ``YYYY-MM-DD..YYYY-MM-DD`` (both included).

        ``parse_period(p.spec, as_of)`` has ``p``'s start and end whatever ``as_of`` (its kind is
        ``range``): how a page names the previous period to the CLI (``forecast metrics --period``).
        """
        return _range_label(self.start, self.end)

    def contains(self, times: pd.Series) -> pd.Series:
        """Boolean mask of the times inside the period (missing times are outside)."""
        return (times >= self.start) & (times < self.end)

    def as_dict(self) -> dict[str, str | float]:
        """JSON-friendly description (``end`` exclusive)."""
        return {
            "label": self.label,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "days": self.days,
        }


def _range_label(start: pd.Timestamp, end: pd.Timestamp) -> str:
    return f"{start.date().isoformat()}..{(end - pd.Timedelta(days=1)).date().isoformat()}"


def _named(kind: str, start: pd.Timestamp) -> Period:
    start = start.normalize()
    if kind == "day":
        return Period(start, start + pd.Timedelta(days=1), kind, start.date().isoformat())
    if kind == "week":
        iso = start.isocalendar()
        return Period(start, start + pd.Timedelta(days=7), kind, f"{iso[0]}-W{iso[1]:02d}")
    if kind == "month":
        return Period(start, start + pd.offsets.MonthBegin(1), kind, start.strftime("%Y-%m"))
    quarter = (start.month - 1) // 3 + 1
    return Period(
        start, start + pd.offsets.QuarterBegin(1, startingMonth=1), kind, f"{start.year}-Q{quarter}"
    )


def last_complete(kind: str, as_of: pd.Timestamp) -> Period:
    """The last complete period of ``kind`` ending at or before ``as_of``."""
    day = as_of.normalize()
    if kind == "day":
        start = day - pd.Timedelta(days=1)
    elif kind == "week":
        start = day - pd.Timedelta(days=day.dayofweek) - pd.Timedelta(days=7)
    elif kind == "month":
        start = day.replace(day=1) - pd.offsets.MonthBegin(1)
    elif kind == "quarter":
        first = day.replace(day=1, month=3 * ((day.month - 1) // 3) + 1)
        start = first - pd.offsets.QuarterBegin(1, startingMonth=1)
    else:
        raise PeriodError(f"unknown period kind {kind!r}")
    return _named(kind, pd.Timestamp(start))


def named_kind(spec: str | None) -> str | None:
    """The kind of last complete period ``spec`` names (``None``: a range or nothing it names).

    ``None`` and ``""`` name the default, the last complete month; a kind is matched whatever its
    case and surrounding spaces (``" Week"``: ``week``).
    """
    if spec is None or spec == "":
        return "month"
    text = spec.strip().lower()
    return text if text in PERIOD_KINDS else None


def parse_period(spec: str | None, as_of: pd.Timestamp) -> Period:
    """Parse a period specification.

    Args:
        spec: ``day``, ``week``, ``month``, ``quarter``, ``YYYY-MM-DD..YYYY-MM-DD`` (both days
            included) or ``None`` (the last complete month).
        as_of: The time the report is made at (named periods end at or before it).

    Returns:
        The period.

    Raises:
        PeriodError: If the specification cannot be parsed or the range is empty.
    """
    kind = named_kind(spec)
    if kind is not None:
        return last_complete(kind, as_of)
    text = (spec or "").strip().lower()  # (None names the default: returned above)
    if ".." in text:
        first, _, last = text.partition("..")
        try:
            start = pd.Timestamp(first.strip())
            end_day = pd.Timestamp(last.strip())
        except ValueError as exc:
            raise PeriodError(
                f"{spec!r}: not two ISO dates (YYYY-MM-DD..YYYY-MM-DD)", parameter="period"
            ) from exc
        if pd.isna(start) or pd.isna(end_day):
            raise PeriodError(f"{spec!r}: not two ISO dates (YYYY-MM-DD..YYYY-MM-DD)", parameter="period")
        start, end_day = start.normalize(), end_day.normalize()
        if end_day < start:
            raise PeriodError(f"{spec!r}: the range ends before it starts", parameter="period")
        end = end_day + pd.Timedelta(days=1)
        return Period(start, end, "range", _range_label(start, end))
    raise PeriodError(
        f"{spec!r}: use day, week, month, quarter or YYYY-MM-DD..YYYY-MM-DD", parameter="period"
    )


def month_starts(start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    """First days of the months overlapping ``[start, end)``."""
    first = start.normalize().replace(day=1)
    return list(pd.date_range(first, end - pd.Timedelta(microseconds=1), freq="MS"))
