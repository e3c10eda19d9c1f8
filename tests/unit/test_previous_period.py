"""``Period.previous``: the period the dashboard's changes compare with, and ``Period.spec``, its CLI name."""

from __future__ import annotations

import pandas as pd
import pytest

from forecast.tracking.periods import Period, parse_period

T = pd.Timestamp


def _span(period: Period) -> tuple[str, str, str, str]:
    return (period.start.date().isoformat(), period.end.date().isoformat(), period.kind, period.label)


@pytest.mark.parametrize(
    ("spec", "as_of", "previous"),
    [
        # a Q1 goes back to Q4 of the year before; a Q3 to Q2
        ("quarter", "2025-04-01", ("2024-10-01", "2025-01-01", "quarter", "2024-Q4")),
        ("quarter", "2024-11-13", ("2024-04-01", "2024-07-01", "quarter", "2024-Q2")),
        # the month before, whatever its length: February of a leap year has 29 days
        ("month", "2024-04-01", ("2024-02-01", "2024-03-01", "month", "2024-02")),
        ("month", "2025-04-01", ("2025-02-01", "2025-03-01", "month", "2025-02")),
        ("month", "2025-02-01", ("2024-12-01", "2025-01-01", "month", "2024-12")),
        # the day before 1 March of a leap year is the leap day
        ("day", "2024-03-02", ("2024-02-29", "2024-03-01", "day", "2024-02-29")),
        # the ISO week before, across a year's end (Mon 30 Dec 2024 is in 2025-W01)
        ("week", "2025-01-13", ("2024-12-30", "2025-01-06", "week", "2025-W01")),
        ("week", "2025-01-06", ("2024-12-23", "2024-12-30", "week", "2024-W52")),
        # a range: the same number of days just before, across the leap day
        (
            "2024-03-01..2024-03-10",
            "2024-06-01",
            ("2024-02-20", "2024-03-01", "range", "2024-02-20..2024-02-29"),
        ),
        # a range covering a calendar month stays a range of its length (31 days), not "the month before"
        (
            "2024-03-01..2024-03-31",
            "2024-06-01",
            ("2024-01-30", "2024-03-01", "range", "2024-01-30..2024-02-29"),
        ),
        (
            "2025-01-01..2025-01-01",
            "2025-06-01",
            ("2024-12-31", "2025-01-01", "range", "2024-12-31..2024-12-31"),
        ),
    ],
)
def test_the_previous_period_is_the_one_of_the_same_kind_just_before(
    spec: str, as_of: str, previous: tuple[str, str, str, str]
) -> None:
    period = parse_period(spec, T(as_of))
    before = period.previous()
    assert _span(before) == previous
    assert before.end == period.start  # adjacent: no gap, no overlap
    if period.kind in ("day", "week", "range"):
        assert before.days == period.days


def test_the_spec_names_the_same_days_to_the_cli() -> None:
    for spec, as_of in (("month", "2024-03-15"), ("quarter", "2025-01-01"), ("week", "2024-03-04")):
        period = parse_period(spec, T(as_of)).previous()
        again = parse_period(period.spec, T("2030-01-01"))  # a range does not depend on the as of
        assert (again.start, again.end, again.kind) == (period.start, period.end, "range")
    assert parse_period("month", T("2024-03-15")).previous().spec == "2024-01-01..2024-01-31"
    assert parse_period("month", T("2024-04-15")).previous().spec == "2024-02-01..2024-02-29"
