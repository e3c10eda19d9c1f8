"""Statistics and periods of the tracking package, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from forecast.tracking.periods import PeriodError, last_complete, parse_period
from forecast.tracking.stats import (
    benjamini_hochberg,
    correlation,
    mean_skipna,
    median_skipna,
    poisson_test,
    rate_ratio_test,
    ratio_interval,
    safe_div,
    two_proportion_test,
    wilson,
)


def test_wilson_matches_the_formula() -> None:
    r = wilson(5, 10)
    # p=0.5, z=1.959964: centre 0.5, half = z*sqrt(0.025 + z²/400)/(1 + z²/10)
    z = 1.959964
    half = z * math.sqrt(0.25 / 10 + z * z / 400) / (1 + z * z / 10)
    assert r.rate == 0.5 and r.n == 10
    assert r.lo == pytest.approx(0.5 - half, abs=1e-6) and r.hi == pytest.approx(0.5 + half, abs=1e-6)
    assert r.lo == pytest.approx(0.2366, abs=1e-4)


def test_wilson_edges() -> None:
    empty = wilson(0, 0)
    assert empty.n == 0 and math.isnan(empty.rate) and math.isnan(empty.lo)
    zero, full = wilson(0, 7), wilson(7, 7)
    assert zero.lo == 0.0 and zero.hi < 1 and full.hi == 1.0 and full.lo > 0
    for k, n in [(1, 3), (3, 310), (40, 41)]:
        r = wilson(k, n)
        assert r.lo <= r.rate <= r.hi


def test_tests_and_intervals() -> None:
    assert two_proportion_test(10, 100, 10, 100) == pytest.approx(1.0)
    assert two_proportion_test(4, 310, 40, 1000) < 0.05
    assert math.isnan(two_proportion_test(1, 0, 1, 10))
    assert poisson_test(10, 10) > 0.5 and poisson_test(0, 10) < 0.001
    assert math.isnan(poisson_test(3, 0))
    lo, hi = ratio_interval(10, 10)
    assert lo < 1 < hi
    assert rate_ratio_test(10, 1.0, 10, 1.0) == pytest.approx(1.0)
    assert math.isnan(rate_ratio_test(0, 1.0, 0, 1.0))


def test_correlation_with_fisher_interval() -> None:
    x = np.arange(20.0)
    c = correlation(x, 2 * x + 1)
    assert c.r == pytest.approx(1.0) and c.n == 20
    rng = np.random.default_rng(0)
    noisy = correlation(x, x + rng.normal(0, 5, 20))
    assert noisy.lo < noisy.r < noisy.hi
    # by hand: z = atanh(r), se = 1/sqrt(n-3)
    assert noisy.lo == pytest.approx(math.tanh(math.atanh(noisy.r) - 1.959964 / math.sqrt(17)), abs=1e-5)
    assert math.isnan(correlation([1, 2, 3], [1, 2, 3]).r)  # fewer than 4 points
    assert math.isnan(correlation([1, 1, 1, 1], [1, 2, 3, 4]).r)  # no spread


def test_benjamini_hochberg() -> None:
    # sorted p: 0.001 (≤ .05/4·1), 0.02 (≤ .05/4·2 = .025), 0.04 (> .0375), 0.9
    assert benjamini_hochberg([0.04, 0.001, 0.9, 0.02], 0.05) == [False, True, False, True]
    assert benjamini_hochberg([float("nan"), 0.001]) == [False, True]
    assert benjamini_hochberg([]) == []


def test_safe_div_never_inf() -> None:
    assert math.isnan(safe_div(1, 0)) and math.isnan(safe_div(0, 0)) and math.isnan(safe_div(1, float("nan")))
    assert safe_div(1, 4) == 0.25


def test_periods() -> None:
    as_of = pd.Timestamp("2024-11-13 10:00")
    month = parse_period(None, as_of)
    assert (month.start, month.end, month.label) == (
        pd.Timestamp("2024-10-01"),
        pd.Timestamp("2024-11-01"),
        "2024-10",
    )
    assert month.previous().label == "2024-09"
    week = parse_period("week", as_of)  # 2024-11-13 is a Wednesday: last complete week is Mon 4 – Sun 10
    assert week.start == pd.Timestamp("2024-11-04") and week.days == 7
    assert parse_period("day", as_of).start == pd.Timestamp("2024-11-12")
    quarter = parse_period("quarter", as_of)
    assert (quarter.start, quarter.label) == (pd.Timestamp("2024-07-01"), "2024-Q3")
    assert quarter.previous().start == pd.Timestamp("2024-04-01")
    custom = parse_period("2024-10-01..2024-10-15", as_of)
    assert custom.end == pd.Timestamp("2024-10-16") and custom.days == 15
    assert custom.previous().start == pd.Timestamp("2024-09-16")
    assert last_complete("month", pd.Timestamp("2025-01-01")).label == "2024-12"
    for bad in ("fortnight", "2024-10-05..2024-10-01", "2024-13-01..2024-12-01"):
        with pytest.raises(PeriodError):
            parse_period(bad, as_of)


@pytest.mark.parametrize("seed", range(4))
def test_the_mean_and_median_without_nan_are_pandas_own_to_the_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for size in [0, 1, 2, 3, 7, 8, 9, 16, 127, 128, 129, 600, 1001, 5000]:
        values = rng.lognormal(10, 2, size) * rng.choice([1.0, -1.0, 1e-9], size)
        values[rng.random(size) < 0.2] = np.nan
        values[rng.random(size) < 0.1] = 1.5  # ties
        for x in (values, values[~np.isnan(values)], np.full(size, np.nan)):
            series = pd.Series(x)
            want_mean = float(series.mean()) if series.notna().any() else math.nan
            want_median = float(series.median()) if series.notna().any() else math.nan
            got_mean, got_median = mean_skipna(x), median_skipna(x)
            assert got_mean == want_mean or (math.isnan(got_mean) and math.isnan(want_mean)), size
            assert got_median == want_median or (math.isnan(got_median) and math.isnan(want_median)), size


def test_the_mean_and_median_of_other_types_are_pandas_own() -> None:
    ints = np.array([3, 1, 4, 1, 5], dtype=np.int64)
    assert mean_skipna(ints) == pd.Series(ints).mean() and median_skipna(ints) == 3.0
    texts = np.array([None, None], dtype=object)
    assert math.isnan(mean_skipna(texts)) and math.isnan(median_skipna(texts))
    mixed = np.array([2.0, None, 4.0], dtype=object)
    assert mean_skipna(mixed) == 3.0 and median_skipna(mixed) == 3.0
