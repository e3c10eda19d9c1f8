"""When in the quarter wins land: the CRM's own month-of-quarter profile of won deals.

Many sales teams close at the end of the quarter (targets are quarterly, buyers spend budgets
before the quarter ends), so a month's won revenue depends on where the month sits in its quarter.
The close-timing model counts days from a snapshot and does not see the calendar; averaged over the
history it learnt from, its timing is right over a quarter but flat within it. Where a CRM's wins
bunch, a forecast of a quarter's third month comes out too low and of its first too high, and a
run rate over the last 90 days (one month of each kind) beats it.

The profile is measured, never assumed:

- the wins of each complete calendar month known at ``as_of`` (from the first month whose first
  day the CRM already records closes on) are counted;
- a Poisson model with one level per quarter (growth, a bad quarter) and one daily intensity per
  month of the quarter (first, second, third), with each month's days as exposure, is fitted by
  iterative proportional fitting; quarters without a win or of one month are left out;
- the profile is used only where the month positions explain the counts beyond the quarters'
  levels, by an F test at level ``alpha`` on the deviance they remove over the counts'
  overdispersion (moderated: a prior pooled with the residuals' own), and only where some month's
  intensity is at least ``min_effect`` from 1 (:class:`CalendarSettings`).

A profile changes *when* within the win horizon a deal's win lands, never *whether*: each open
deal's timing mass over ``[0, horizon)`` is reweighted by the intensity of the days it falls on and
scaled back to the same total (:func:`calendar_shares`); the deals not created yet get each
period's mean intensity as a factor on their expected wins.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from forecast.models.survival import survival_at
from forecast.tracking.periods import Period

MEAN_DAYS = np.array([30.75, 30.0625, 30.5])
"""Mean days of a quarter's first, second and third month (the weights of the intensities' mean of 1)."""


@dataclass(frozen=True)
class CalendarSettings:
    """How the month-of-quarter profile is measured.

    Attributes:
        include: Measure it (``False``: the close timing stays flat in the calendar).
        alpha: Level of the test that the month positions matter.
        min_months: Complete months of recorded closes needed before testing.
        dispersion_prior: The counts' overdispersion expected before any month is seen (monthly
            win counts of real CRMs vary more than Poisson counts).
        dispersion_prior_df: What that prior is worth, in months of residuals: with few months
            the test leans on it, with many on the residuals' own dispersion.
        min_effect: A profile is applied only where some month's intensity is at least this far
            from 1 (smaller ones are within what growth inside a quarter gives).
    """

    include: bool = True
    alpha: float = 0.001
    min_months: int = 6
    dispersion_prior: float = 2.0
    dispersion_prior_df: float = 4.0
    min_effect: float = 0.15


@dataclass(frozen=True)
class CalendarProfile:
    """Daily win intensity of each month of the quarter, with the evidence behind it.

    Attributes:
        factors: Intensity of a day in the quarter's first, second and third month (their mean over
            a quarter's days is 1); all 1 where the profile is not applied.
        applied: Whether the forecast uses it (the test passed and the effect is large enough).
        months: Complete months the test counted.
        p_value: The test's p-value (1 without a test).
        measured: The factors as measured, applied or not.
    """

    factors: tuple[float, float, float] = (1.0, 1.0, 1.0)
    applied: bool = False
    months: int = 0
    p_value: float = 1.0
    measured: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def at(self, days: pd.DatetimeIndex) -> np.ndarray:
        """The intensity of each of ``days`` (by its month's position in the quarter)."""
        return np.asarray(self.factors)[(np.asarray(days.month) - 1) % 3]

    def period_factors(
        self, as_of: pd.Timestamp, periods: Sequence[tuple[pd.Timestamp, pd.Timestamp]]
    ) -> np.ndarray:
        """Each period's mean intensity over its days from ``as_of`` on, shape (K,) (1 for none left)."""
        out = np.ones(len(periods))
        if not self.applied:
            return out
        for k, (start, end) in enumerate(periods):
            days = pd.date_range(max(start, as_of).normalize(), end, freq="D", inclusive="left")
            if len(days):
                out[k] = float(self.at(days).mean())
        return out

    def to_dict(self) -> dict[str, object]:
        """The profile as JSON-ready values."""
        return {
            "applied": self.applied,
            "factors": [round(f, 4) for f in self.factors],
            "measured": [round(f, 4) for f in self.measured],
            "months": self.months,
            "p_value": self.p_value,
        }


FLAT = CalendarProfile()
"""No profile: every day weighs the same."""


def describe(calendar: object) -> str | None:
    """The sentence a manager reads about an applied profile (its ``to_dict``), or ``None``.

    Never raises: anything else than an applied profile's document (say, JSON edited by hand) is
    ``None``.
    """
    try:
        if not isinstance(calendar, dict) or calendar.get("applied") is not True:
            return None
        first, second, third = (float(f) for f in calendar["factors"])
        months, p_value = int(calendar["months"]), float(calendar["p_value"])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    if not all(math.isfinite(x) for x in (first, second, third, p_value)):
        return None
    return (
        f"wins bunch by month of the quarter in this CRM (measured on {months} months, "
        f"p={p_value:.1g}): a day weighs {first:.2f}, {second:.2f} and {third:.2f} in the "
        "quarter's first, second and third month, and the forecast books its wins so (docs/revenue.md)"
    )


def fit_calendar(
    won_at: pd.Series, first_close: pd.Timestamp | None, as_of: pd.Timestamp, settings: CalendarSettings
) -> CalendarProfile:
    """Measure the month-of-quarter profile of the wins known at ``as_of``.

    Args:
        won_at: Close dates of the won deals (those after ``as_of`` are ignored).
        first_close: The CRM's first recorded close (any outcome), or ``None``.
        as_of: The forecast time.
        settings: Level and minimum evidence.

    Returns:
        The profile; :data:`FLAT` (with the evidence) where it is not applied.
    """
    if not settings.include or first_close is None or pd.isna(first_close):
        return FLAT
    first = pd.Timestamp(first_close)
    start = first.normalize().replace(day=1)
    if first.normalize() != start:  # a month the CRM records from its middle on is not complete
        start += pd.DateOffset(months=1)
    end = pd.Timestamp(as_of).normalize().replace(day=1)
    months = pd.date_range(start, end, freq="MS", inclusive="left")
    if len(months) < settings.min_months:
        return replace(FLAT, months=len(months))
    dates = pd.to_datetime(won_at).dropna()
    dates = dates[(dates >= start) & (dates < end)]
    counts = dates.dt.to_period("M").value_counts()
    n = np.array([float(counts.get(m.to_period("M"), 0)) for m in months])
    days = np.array([float(m.days_in_month) for m in months])
    quarter = np.array([m.year * 4 + (m.month - 1) // 3 for m in months])
    position = (np.asarray(months.month) - 1) % 3
    return _test(n, days, quarter, position, settings)


def _test(
    n: np.ndarray, days: np.ndarray, quarter: np.ndarray, position: np.ndarray, settings: CalendarSettings
) -> CalendarProfile:
    """Fit the quarter levels and position intensities, and test the positions.

    Quarters without a win say nothing (a CRM whose first close is a stray old record), nor do
    quarters of one month (their level fits that month exactly): both are left out. Each position
    must then be seen, and at least one month must be left to check the fit against.
    """
    months = len(n)
    totals = pd.Series(n).groupby(quarter).transform("sum").to_numpy()
    sizes = pd.Series(n).groupby(quarter).transform("size").to_numpy()
    keep = (totals > 0) & (sizes >= 2)
    n, days, position = n[keep], days[keep], position[keep]
    _, q = np.unique(quarter[keep], return_inverse=True)
    if len(n) == 0 or (np.bincount(position, minlength=3) == 0).any():
        return replace(FLAT, months=months)
    f = np.ones(3)
    for _ in range(200):  # iterative proportional fitting of mu = level[q] * f[position] * days
        level = np.bincount(q, weights=n) / np.bincount(q, weights=f[position] * days)
        new = np.bincount(position, weights=n, minlength=3) / np.maximum(
            np.bincount(position, weights=level[q] * days, minlength=3), 1e-300
        )
        new /= float((new * MEAN_DAYS).sum() / MEAN_DAYS.sum())
        if np.allclose(new, f, rtol=1e-10, atol=0.0):
            f = new
            break
        f = new
    level = np.bincount(q, weights=n) / np.bincount(q, weights=f[position] * days)
    mu1 = level[q] * f[position] * days
    mu0 = (np.bincount(q, weights=n) / np.bincount(q, weights=days))[q] * days
    with np.errstate(divide="ignore", invalid="ignore"):  # a position without wins: refused below
        deviance, null = (
            2.0 * float(np.sum(np.where(n > 0, n * np.log(np.maximum(n, 1e-300) / mu), 0.0) - (n - mu)))
            for mu in (mu1, mu0)
        )
        pearson = float(np.sum((n - mu1) ** 2 / np.maximum(mu1, 1e-300)))
    change = max(null - deviance, 0.0)
    df = len(n) - int(q.max()) - 1 - 2
    if df < 1:  # no month left to check the fit against: nothing replicated
        return replace(FLAT, months=months)
    # the dispersion moderated by its prior (a scaled inverse chi-square worth prior_df months), and
    # the F test on the pooled degrees of freedom: few months lean on the prior, many on the data
    pooled = settings.dispersion_prior_df + df
    dispersion = max(1.0, (settings.dispersion_prior_df * settings.dispersion_prior + pearson) / pooled)
    p_value = float(stats.f.sf(change / 2.0 / dispersion, 2, pooled))
    measured = (float(f[0]), float(f[1]), float(f[2]))
    if not (math.isfinite(p_value) and all(math.isfinite(x) and x > 0 for x in measured)):
        return replace(FLAT, months=months)
    material = max(abs(x - 1.0) for x in measured) >= settings.min_effect
    applied = p_value < settings.alpha and material
    return CalendarProfile(measured if applied else FLAT.factors, applied, months, p_value, measured)


def period_span(period: Period, as_of: pd.Timestamp, horizon_days: float) -> tuple[float, float]:
    """The days after ``as_of`` a period covers, clipped to ``[0, horizon_days]``."""
    day = pd.Timedelta(days=1)
    return (
        min(max((period.start - as_of) / day, 0.0), horizon_days),
        min(max((period.end - as_of) / day, 0.0), horizon_days),
    )


def calendar_shares(
    closed_by: np.ndarray,
    edges: Sequence[float],
    as_of: pd.Timestamp,
    periods: Sequence[Period],
    horizon_days: float,
    profile: CalendarProfile,
) -> np.ndarray:
    """P(close in period k | the deal closes within ``horizon_days``), shape (n, K), under ``profile``.

    The timing mass of each stretch of days (cut at the periods' bounds and the months' starts) is
    weighted by its month's intensity and the weights scaled back to the mass within the horizon.

    Args:
        closed_by: Cumulative win (or close) timing curves at ``edges``.
        edges: The curves' edges (days after ``as_of``).
        as_of: Forecast time.
        periods: The periods.
        horizon_days: The win probability's horizon.
        profile: The month-of-quarter intensities.
    """
    day = pd.Timedelta(days=1)
    spans = [period_span(p, as_of, horizon_days) for p in periods]
    cuts = {0.0, float(horizon_days), *(bound for span in spans for bound in span)}
    month = pd.Timestamp(as_of).normalize().replace(day=1) + pd.DateOffset(months=1)
    while (month - as_of) / day < horizon_days:
        cuts.add((month - as_of) / day)
        month += pd.DateOffset(months=1)
    bounds = np.array(sorted(cuts))
    intensity = profile.at(
        pd.DatetimeIndex([as_of + (a + b) / 2 * day for a, b in itertools.pairwise(bounds)])
    )
    out = np.zeros((closed_by.shape[0], len(periods)))
    plain = np.zeros_like(out)  # the flat timing, for a deal whose days all weigh 0
    total = np.zeros(closed_by.shape[0])
    flat = np.zeros(closed_by.shape[0])
    before = survival_at(closed_by, edges, bounds[0])
    for j, (a, b) in enumerate(itertools.pairwise(bounds)):  # one stretch at a time: O(n K) memory
        after = survival_at(closed_by, edges, b)
        mass = np.maximum(after - before, 0.0)
        flat += mass
        weighted = mass * intensity[j]
        total += weighted
        for k, (lo, hi) in enumerate(spans):
            if lo <= a and b <= hi:
                out[:, k] += weighted
                plain[:, k] += mass
        before = after
    # a deal whose whole timing falls on days of intensity 0 keeps its flat timing: never lost
    lost = (total <= 1e-12) & (flat > 1e-9)
    out[lost], total[lost] = plain[lost], flat[lost]
    # which deals win is the flat timing's question (its threshold on the unweighted mass)
    return np.where(flat[:, None] > 1e-9, out / np.maximum(total[:, None], 1e-300), 0.0)
