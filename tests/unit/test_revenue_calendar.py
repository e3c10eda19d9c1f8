"""The month-of-quarter profile of wins: measured where counts show it; it moves the timing, not the total."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.revenue.calendar import (
    FLAT,
    MEAN_DAYS,
    CalendarProfile,
    CalendarSettings,
    calendar_shares,
    describe,
    fit_calendar,
)
from forecast.revenue.forecast import close_shares, forecast_revenue, period_grid
from forecast.revenue.new_deals import NewDealModel
from forecast.tracking.periods import Period

T = pd.Timestamp


def _wins(per_day_by_position: tuple[float, float, float], months: pd.DatetimeIndex, seed: int) -> pd.Series:
    """Win dates drawn as a Poisson count per month, at each month's position's daily rate."""
    rng = np.random.default_rng(seed)
    dates: list[pd.Timestamp] = []
    for m in months:
        rate = per_day_by_position[(m.month - 1) % 3] * m.days_in_month
        dates += [m + pd.Timedelta(days=float(d)) for d in rng.uniform(0, m.days_in_month, rng.poisson(rate))]
    return pd.Series(pd.to_datetime(dates))


MONTHS = pd.date_range("2024-01-01", "2025-01-01", freq="MS", inclusive="left")
YEAR = (T("2024-01-01"), T("2025-01-01"))


def test_a_quarter_end_bunching_is_found_and_measured() -> None:
    profile = fit_calendar(_wins((5.0, 7.5, 12.5), MONTHS, 0), *YEAR, CalendarSettings())
    assert profile.applied and profile.months == 12 and profile.p_value < 1e-4
    rates = np.array([5.0, 7.5, 12.5])
    truth = rates / float((rates * MEAN_DAYS).sum() / MEAN_DAYS.sum())
    assert profile.factors == pytest.approx(truth.tolist(), rel=0.06)
    assert float((np.array(profile.factors) * MEAN_DAYS).sum() / MEAN_DAYS.sum()) == pytest.approx(1.0)


def test_flat_wins_leave_the_timing_flat() -> None:
    """Steady wins (Poisson noise only) pass the test at its level in none of 20 seeds here."""
    for seed in range(20):
        profile = fit_calendar(_wins((8.0, 8.0, 8.0), MONTHS, seed), *YEAR, CalendarSettings())
        assert not profile.applied and profile.factors == (1.0, 1.0, 1.0), seed
        assert profile.p_value > 0.001


def test_growth_across_quarters_is_not_taken_for_a_quarter_profile() -> None:
    """Each quarter has its own level: a team doubling its wins every quarter has no month profile."""
    rng = np.random.default_rng(3)
    dates: list[pd.Timestamp] = []
    for m in MONTHS:
        rate = 4.0 * 2.0 ** ((m.month - 1) // 3) * m.days_in_month
        dates += [m + pd.Timedelta(days=float(d)) for d in rng.uniform(0, m.days_in_month, rng.poisson(rate))]
    profile = fit_calendar(pd.Series(dates), *YEAR, CalendarSettings())
    assert not profile.applied


def test_too_few_months_and_a_partial_first_month_are_not_counted() -> None:
    wins = _wins((5.0, 7.5, 12.5), MONTHS, 1)
    short = fit_calendar(wins, T("2024-01-01"), T("2024-06-01"), CalendarSettings())
    assert short is not FLAT and not short.applied and short.months == 5
    partial = fit_calendar(wins, T("2024-01-15"), T("2024-08-01"), CalendarSettings())
    assert partial.months == 6  # February to July: January is recorded from its middle on
    off = fit_calendar(wins, T("2024-01-01"), T("2025-01-01"), CalendarSettings(include=False))
    assert off == FLAT


def test_a_flat_profile_gives_the_shares_of_close_shares() -> None:
    rng = np.random.default_rng(0)
    closed_by = np.sort(rng.uniform(0, 1, (50, 6)), axis=1)
    closed_by[:, 0] = 0.0
    edges = [0.0, 20.0, 45.0, 70.0, 100.0, 150.0]
    as_of = T("2025-02-10")
    periods = period_grid(as_of, 4, "month")
    flat = CalendarProfile((1.0, 1.0, 1.0), applied=True)
    assert calendar_shares(closed_by, edges, as_of, periods, 120.0, flat) == pytest.approx(
        close_shares(closed_by, edges, as_of, periods, 120.0), abs=1e-12
    )


def test_the_profile_moves_the_timing_within_the_horizon_not_the_total() -> None:
    """A deal closing evenly over a whole quarter lands its win in each month by intensity × days."""
    as_of = T("2025-01-01")
    periods = period_grid(as_of, 3, "month")
    horizon = 90.0  # January to March
    closed_by = np.array([[0.0, 1.0]])
    profile = CalendarProfile((0.5, 1.0, 1.5), applied=True)
    shares = close_shares(closed_by, [0.0, horizon], as_of, periods, horizon, profile)[0]
    weights = np.array([0.5 * 31, 1.0 * 28, 1.5 * 31])
    assert shares == pytest.approx(weights / weights.sum())
    assert shares.sum() == pytest.approx(1.0)
    # a deal sure to close in January keeps all of it there: the profile never adds to a deal's win
    early = np.array([[0.0, 1.0, 1.0]])
    shares = close_shares(early, [0.0, 20.0, horizon], as_of, periods, horizon, profile)[0]
    assert shares == pytest.approx([1, 0, 0])


def test_period_factors_are_the_mean_intensity_of_the_days_left() -> None:
    profile = CalendarProfile((0.5, 1.0, 1.5), applied=True)
    months = [(p.start, p.end) for p in period_grid(T("2025-01-01"), 3, "month")]
    assert profile.period_factors(T("2025-01-01"), months).tolist() == [0.5, 1.0, 1.5]
    quarter = [(T("2025-01-01"), T("2025-04-01"))]
    mean = (0.5 * 31 + 28 + 1.5 * 31) / 90
    assert profile.period_factors(T("2025-01-01"), quarter)[0] == pytest.approx(mean)
    assert profile.period_factors(T("2025-03-20"), quarter)[0] == 1.5  # only March's days are left
    assert FLAT.period_factors(T("2025-01-01"), months).tolist() == [1.0, 1.0, 1.0]


def test_the_new_deals_expected_wins_follow_the_profile() -> None:
    """A month in the quarter's third month expects its intensity times the flat forecast's wins."""
    model = NewDealModel(["x"], np.array([10.0]), np.array([0.5]), [np.full(200, 100.0)], [np.full(200, 3.0)])
    kwargs = {
        "deals": pd.DataFrame({"amount": [0.0], "group": ["x"]}),
        "p_win": np.array([0.0]),
        "closed_by": np.array([[0.0, 1.0]]),
        "edges": [0.0, 30.0],
        "horizon_days": 30.0,
        "new_deals": model,
        "as_of": T("2025-03-01"),
        "periods": [Period(T("2025-03-01"), T("2025-04-01"), "month", "2025-03")],
        "groups": ["x"],
        "won_to_date": np.array([[0.0]]),
        "n_sims": 20_000,
    }
    flat = forecast_revenue(**kwargs).table.set_index("group").loc["x", "from_new_deals"]
    bunched = forecast_revenue(**kwargs, calendar=CalendarProfile((0.7, 1.0, 1.3), applied=True))
    assert bunched.table.set_index("group").loc["x", "from_new_deals"] == pytest.approx(1.3 * flat, rel=0.02)
    assert bunched.calendar.applied


def test_a_stray_old_close_and_empty_quarters_are_no_evidence() -> None:
    """One test record a year before the CRM went live, then a ramp-up: no profile (it gave a
    factor of 0 for March before empty quarters were left out)."""
    rng = np.random.default_rng(0)
    jan = T("2025-01-01") + pd.to_timedelta(rng.uniform(0, 31, 40), unit="D")
    feb = T("2025-02-01") + pd.to_timedelta(rng.uniform(0, 28, 90), unit="D")
    profile = fit_calendar(pd.Series(jan.append(feb)), T("2024-01-20"), T("2025-03-15"), CalendarSettings())
    assert not profile.applied and profile.factors == (1.0, 1.0, 1.0)


def test_a_month_position_without_wins_gives_no_profile_and_finite_json() -> None:
    months = pd.date_range("2024-01-01", "2024-11-01", freq="MS", inclusive="left")
    wins = _wins((0.0, 6.0, 9.0), months, 2)
    profile = fit_calendar(wins, T("2024-01-01"), T("2024-11-15"), CalendarSettings())
    assert not profile.applied
    assert all(np.isfinite(v) for v in (*profile.measured, profile.p_value))


def test_a_day_of_intensity_zero_never_loses_a_win() -> None:
    as_of = T("2025-01-01")
    periods = period_grid(as_of, 3, "month")
    sure_in_january = np.array([[0.0, 1.0, 1.0]])
    shares = close_shares(
        sure_in_january, [0.0, 20.0, 90.0], as_of, periods, 90.0, CalendarProfile((0.0, 1.5, 1.5), True)
    )
    assert shares[0] == pytest.approx([1.0, 0.0, 0.0])


def test_smooth_growth_within_quarters_is_not_a_profile() -> None:
    """6% more wins every month, about 300 a month: the months of a quarter differ by about 6%, below
    the smallest profile worth applying (applied in 97% of such CRMs before that floor)."""
    rng = np.random.default_rng(4)
    months = pd.date_range("2023-01-01", periods=24, freq="MS")
    dates: list[pd.Timestamp] = []
    for i, m in enumerate(months):
        count = rng.poisson(10.0 * m.days_in_month * 1.06**i)
        dates += [m + pd.Timedelta(days=float(d)) for d in rng.uniform(0, m.days_in_month, count)]
    profile = fit_calendar(pd.Series(dates), T("2023-01-01"), T("2025-01-01"), CalendarSettings())
    assert profile.p_value < 0.001 and not profile.applied  # significant, but not material
    assert max(abs(f - 1) for f in profile.measured) < 0.15


def test_overdispersed_flat_counts_rarely_pass() -> None:
    """Monthly counts three times as variable as Poisson, no profile: the F test (dispersion
    estimated) or the assumed dispersion (too few months) keeps false profiles rare."""
    rng = np.random.default_rng(5)
    hits = 0
    for months in (6, 12, 24):
        span = pd.date_range("2024-01-01", periods=months, freq="MS")
        for _ in range(100):
            dates: list[pd.Timestamp] = []
            for m in span:
                mean = 10.0 * m.days_in_month
                count = rng.negative_binomial(mean / 2.0, 1.0 / 3.0)  # variance 3 × mean
                dates += [m + pd.Timedelta(days=float(d)) for d in rng.uniform(0, m.days_in_month, count)]
            end = span[-1] + pd.DateOffset(months=1)
            hits += fit_calendar(pd.Series(dates), T("2024-01-01"), end, CalendarSettings()).applied
    assert hits <= 6  # of 300


def test_the_sentence_says_the_profile_only_where_it_is_applied() -> None:
    applied = CalendarProfile((0.7, 1.04, 1.26), True, 9, 4e-5, (0.7, 1.04, 1.26)).to_dict()
    text = describe(applied)
    assert text is not None and "0.70, 1.04 and 1.26" in text and "9 months" in text and "p=4e-05" in text
    assert describe(FLAT.to_dict()) is None and describe({}) is None


def test_a_deal_the_flat_timing_books_is_booked_whatever_its_days_weigh() -> None:
    """A tiny win mass (just above the flat timing's threshold) on days of intensity below 1."""
    as_of = T("2025-01-01")
    periods = period_grid(as_of, 3, "month")
    tiny = np.array([[0.0, 1.5e-9, 1.5e-9]])
    profile = CalendarProfile((0.6, 0.8, 1.6), True)
    flat = close_shares(tiny, [0.0, 20.0, 90.0], as_of, periods, 90.0)
    assert close_shares(tiny, [0.0, 20.0, 90.0], as_of, periods, 90.0, profile) == pytest.approx(flat)


@pytest.mark.parametrize(
    "document",
    [
        {"applied": True, "factors": [0.7, 1.0, 1.3], "months": 9, "p_value": None},
        {"applied": True, "factors": [0.7, None, 1.3], "months": 9, "p_value": 0.001},
        {"applied": True, "factors": [0.7, 1.3], "months": 9, "p_value": 0.001},
        {"applied": "false", "factors": [0.7, 1.0, 1.3], "months": 9, "p_value": 0.001},
        {"applied": True, "factors": [0.7, 1.0, 1.3], "months": 9, "p_value": float("nan")},
        {"applied": True, "factors": [0.7, 1.0, 1.3]},
        ["applied"],
        "applied",
        None,
    ],
)
def test_the_sentence_never_raises_on_a_strange_document(document: object) -> None:
    assert describe(document) is None
