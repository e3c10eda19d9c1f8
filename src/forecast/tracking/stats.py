"""Small-sample statistics for tracking metrics, with the standard library and numpy (pandas for a fallback).

Every rate is reported with its sample size and a Wilson interval; comparisons return a two-sided
p-value; many comparisons at once are controlled with Benjamini–Hochberg. Undefined values
(0 trials, 0 expected events, fewer than 4 points for a correlation) are ``nan``, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

_NORMAL = NormalDist()
NAN = float("nan")


def z_value(confidence: float = 0.95) -> float:
    """The two-sided standard-normal quantile of a confidence level (1.96 for 95%)."""
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Rate:
    """A proportion with its sample size and confidence interval (all ``nan`` when ``n == 0``)."""

    successes: int
    n: int
    rate: float
    lo: float
    hi: float


def wilson(successes: float, n: float, confidence: float = 0.95) -> Rate:
    """Wilson score interval of ``successes / n``.

    Args:
        successes: Number of successes (clipped to ``[0, n]``).
        n: Number of trials.
        confidence: Two-sided confidence level.

    Returns:
        The rate with its interval; ``nan`` everywhere when ``n`` is 0.
    """
    n_i = int(n)
    k = int(min(max(successes, 0), n_i)) if n_i > 0 else 0
    if n_i <= 0:
        return Rate(k, 0, NAN, NAN, NAN)
    z = z_value(confidence)
    p = k / n_i
    denom = 1 + z * z / n_i
    centre = (p + z * z / (2 * n_i)) / denom
    half = z * math.sqrt(p * (1 - p) / n_i + z * z / (4 * n_i * n_i)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n_i else min(1.0, centre + half)
    return Rate(k, n_i, p, lo, hi)


def two_proportion_test(k1: float, n1: float, k2: float, n2: float) -> float:
    """Two-sided p-value of the pooled z-test that two proportions are equal (``nan`` if undefined)."""
    if n1 <= 0 or n2 <= 0:
        return NAN
    pooled = (k1 + k2) / (n1 + n2)
    if pooled <= 0 or pooled >= 1:
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (k1 / n1 - k2 / n2) / se
    return 2 * (1 - _NORMAL.cdf(abs(z)))


def _poisson_logpmf(k: int, mu: float) -> float:
    return k * math.log(mu) - mu - math.lgamma(k + 1)


def poisson_test(observed: float, expected: float) -> float:
    """Exact two-sided p-value that a count is Poisson with mean ``expected``.

    The two-sided value sums the probabilities of all counts no more likely than the observed one
    (the same convention as R's ``poisson.test``). ``nan`` when ``expected`` is not positive.
    """
    if not expected > 0:
        return NAN
    k = round(observed)
    p_obs = _poisson_logpmf(k, expected)
    upper = int(max(k, expected) + 20 * math.sqrt(expected) + 50)
    total = 0.0
    for i in range(upper + 1):
        lp = _poisson_logpmf(i, expected)
        if lp <= p_obs + 1e-7:
            total += math.exp(lp)
    return min(1.0, total)


def ratio_interval(observed: float, expected: float, confidence: float = 0.95) -> tuple[float, float]:
    """Confidence interval of observed / expected for a Poisson count (Byar's approximation)."""
    if not expected > 0:
        return NAN, NAN
    z = z_value(confidence)
    o = max(float(observed), 0.0)
    lo = 0.0 if o == 0 else o * (1 - 1 / (9 * o) - z / (3 * math.sqrt(o))) ** 3
    o1 = o + 1
    hi = o1 * (1 - 1 / (9 * o1) + z / (3 * math.sqrt(o1))) ** 3
    return lo / expected, hi / expected


def rate_ratio_test(k1: float, exposure1: float, k2: float, exposure2: float) -> float:
    """Two-sided p-value that two Poisson rates per unit of exposure are equal.

    Conditional on the total count, ``k1`` is binomial with ``p = e1 / (e1 + e2)`` under the null;
    the test is the normal approximation with a continuity correction (``nan`` if undefined).
    """
    total = k1 + k2
    if exposure1 <= 0 or exposure2 <= 0 or total <= 0:
        return NAN
    p = exposure1 / (exposure1 + exposure2)
    mean, sd = total * p, math.sqrt(total * p * (1 - p))
    if sd == 0:
        return 1.0
    z = max(abs(k1 - mean) - 0.5, 0.0) / sd
    return 2 * (1 - _NORMAL.cdf(z))


@dataclass(frozen=True)
class Correlation:
    """A Pearson correlation with its Fisher-z confidence interval."""

    r: float
    n: int
    lo: float
    hi: float
    p_value: float


def correlation(x: npt.ArrayLike, y: npt.ArrayLike, confidence: float = 0.95) -> Correlation:
    """Pearson correlation with a Fisher-z interval and p-value (``nan`` below 4 points or no spread)."""
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    if n < 4 or a.std() == 0 or b.std() == 0:
        return Correlation(NAN, n, NAN, NAN, NAN)
    r = float(np.corrcoef(a, b)[0, 1])
    r_c = min(max(r, -0.999999), 0.999999)
    zr = math.atanh(r_c)
    se = 1 / math.sqrt(n - 3)
    z = z_value(confidence)
    p = 2 * (1 - _NORMAL.cdf(abs(zr) / se))
    return Correlation(r, n, math.tanh(zr - z * se), math.tanh(zr + z * se), p)


def mean_interval(values: npt.ArrayLike, confidence: float = 0.95) -> tuple[float, int, float, float]:
    """Mean with a normal-approximation interval: ``(mean, n, lo, hi)`` (``nan`` when empty)."""
    a = np.asarray(values, dtype=float)
    a = a[np.isfinite(a)]
    n = len(a)
    if n == 0:
        return NAN, 0, NAN, NAN
    m = float(a.mean())
    if n == 1:
        return m, 1, NAN, NAN
    half = z_value(confidence) * float(a.std(ddof=1)) / math.sqrt(n)
    return m, n, m - half, m + half


def mean_skipna(values: np.ndarray) -> float:
    """The mean of the values that are not ``nan`` (``nan`` without one), as pandas' ``Series.mean``.

    Pandas adds the values with a missing one as 0 and divides by how many are known; so does this,
    on float64 values, to the same bit (``tests/unit/test_tracking_stats.py``), without a Series
    built for each of thousands of groups. Values of another type take pandas itself.
    """
    if values.dtype != np.float64:
        series = pd.Series(values)
        return float(series.mean()) if series.notna().any() else NAN
    missing = np.isnan(values)
    known = len(values) - int(missing.sum())
    if known == 0:
        return NAN
    if known < len(values):
        values = np.where(missing, 0.0, values)
    return float(values.sum() / np.float64(known))


def median_skipna(values: np.ndarray) -> float:
    """The median of the values that are not ``nan`` (``nan`` without one), as pandas' ``Series.median``.

    Of float64 values, to the same bit (``tests/unit/test_tracking_stats.py``); values of another
    type take pandas itself.
    """
    if values.dtype != np.float64:
        series = pd.Series(values)
        return float(series.median()) if series.notna().any() else NAN
    known = values[~np.isnan(values)]
    return float(np.median(known)) if len(known) else NAN


def welch_test(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Two-sided p-value that two means are equal (Welch, normal approximation; ``nan`` below 2 each)."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if len(x) < 2 or len(y) < 2:
        return NAN
    se = math.sqrt(x.var(ddof=1) / len(x) + y.var(ddof=1) / len(y))
    if se == 0:
        return 1.0 if x.mean() == y.mean() else 0.0
    return 2 * (1 - _NORMAL.cdf(abs(x.mean() - y.mean()) / se))


def benjamini_hochberg(p_values: Sequence[float], q: float = 0.05) -> list[bool]:
    """Which hypotheses are rejected at false-discovery rate ``q`` (``nan`` p-values never are)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p == p)
    m = len(indexed)
    cutoff = -1
    for rank, (p, _) in enumerate(indexed, start=1):
        if p <= q * rank / m:
            cutoff = rank
    rejected = [False] * len(p_values)
    for rank, (_, i) in enumerate(indexed, start=1):
        if rank <= cutoff:
            rejected[i] = True
    return rejected


def safe_div(num: float, den: float) -> float:
    """``num / den``, or ``nan`` when the denominator is 0 or missing (never ``inf``)."""
    if den is None or num is None or den != den or num != num or den == 0:
        return NAN
    return float(num) / float(den)
