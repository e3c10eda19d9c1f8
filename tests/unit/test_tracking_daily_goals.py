"""The goals report and its daily table from numpy columns: the per-group filters' values, to the bit.

``_reference_daily`` and ``_reference_goals`` are the tables as they were computed before (the goal
of every day asked on its own; each group's deals and leads filtered out of the whole frames).
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.tracking.common import Row, amount_sum, per_group, subset
from forecast.tracking.data import ALL_LABEL, TrackingData, group_values, prepare
from forecast.tracking.goals import (
    REFERENCE_DAYS,
    _ceil,
    _quota_intervals,
    daily,
    daily_goals,
    goal_between,
    goal_table,
    goals,
    quota_rows,
)
from forecast.tracking.periods import Period, parse_period
from forecast.tracking.stats import NAN, safe_div

goals_module = importlib.import_module("forecast.tracking.goals")


def _reference_daily(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    opps = data.opportunities
    cutoff = min(period.end, data.as_of)
    won = opps[(opps["outcome"] == "won") & period.contains(opps["closed_at"])].copy()
    won["day"] = won["closed_at"].dt.normalize()
    days = pd.date_range(period.start, cutoff - pd.Timedelta(microseconds=1), freq="D")
    frames = []
    for group in [*group_values(data, by, won), ALL_LABEL]:
        w = subset(won, by, group)
        sums = pd.to_numeric(w["amount"], errors="coerce").fillna(0).groupby(w["day"]).sum()
        values = sums.reindex(days, fill_value=0.0).to_numpy()
        rows = quota_rows(data, by, group)
        goal_day = [goal_between(rows, d, d + pd.Timedelta(days=1)) for d in days]
        frame = pd.DataFrame({by: group, "day": days.date, "won_value": values, "daily_goal": goal_day})
        frame["cumulative_won"] = frame["won_value"].cumsum()
        frame["cumulative_goal"] = frame["daily_goal"].cumsum(skipna=False)
        frame["cumulative_gap"] = frame["cumulative_goal"] - frame["cumulative_won"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _reference_goals(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    opps = data.opportunities
    cutoff = min(period.end, data.as_of)
    won = opps[(opps["outcome"] == "won") & opps["closed_at"].notna()]
    in_period = won[period.contains(won["closed_at"])]
    year_start = (period.end - pd.Timedelta(days=1)).normalize().replace(month=1, day=1)
    ytd = won[(won["closed_at"] >= year_start) & (won["closed_at"] < cutoff)]
    ref_start = cutoff - pd.Timedelta(days=REFERENCE_DAYS)
    ref_closed = opps[(opps["closed_at"] >= ref_start) & (opps["closed_at"] < cutoff)]
    ref_leads = data.leads[(data.leads["created_at"] >= ref_start) & (data.leads["created_at"] < cutoff)]
    team_rates = _old_rates(ref_closed, ref_leads)
    month_end = (period.end - pd.Timedelta(days=1)).normalize()
    month_start = month_end.replace(day=1)
    days_left = max((period.end - max(data.as_of, period.start)) / pd.Timedelta(days=1), 0.0)

    def compute(group: str) -> Row:
        rows = quota_rows(data, by, group)
        row: Row = {}
        goal = goal_between(rows, period.start, period.end)
        row["goal"] = goal
        row["daily_goal"] = safe_div(goal, period.days)
        row["weekly_goal"] = row["daily_goal"] * 7
        row["monthly_goal"] = goal_between(rows, month_start, month_start + pd.offsets.MonthBegin(1))
        row["year_goal"] = goal_between(rows, year_start, year_start + pd.DateOffset(years=1))
        w = subset(in_period, by, group)
        row["won_deals"] = len(w)
        row["won_value"] = amount_sum(w)
        row["attainment"] = safe_div(row["won_value"], goal) if goal > 0 else NAN
        row["remaining"] = max(goal - row["won_value"], 0.0) if goal == goal else NAN
        row["won_ytd"] = amount_sum(subset(ytd, by, group))
        row["ytd_goal"] = goal_between(rows, year_start, cutoff)
        row["ytd_attainment"] = safe_div(row["won_ytd"], row["ytd_goal"]) if row["ytd_goal"] > 0 else NAN
        rates = _old_rates(subset(ref_closed, by, group), subset(ref_leads, by, group))
        for key, value in rates.items():
            if value != value or value <= 0:
                rates[key] = team_rates[key]
        row.update({f"ref_{k}": v for k, v in rates.items()})
        row["deals_needed"] = _ceil(safe_div(row["remaining"], rates["avg_won_amount"]))
        row["opportunities_needed"] = _ceil(safe_div(row["deals_needed"], rates["win_rate"]))
        row["prospects_needed"] = _ceil(safe_div(row["opportunities_needed"], rates["lead_conversion"]))
        row["days_left"] = days_left
        row["needed_per_day"] = safe_div(row["remaining"], days_left)
        return row

    return per_group(data, by, [in_period], compute)


def _old_rates(closed: pd.DataFrame, leads: pd.DataFrame) -> dict[str, float]:
    won = closed[closed["outcome"] == "won"]
    return {
        "avg_won_amount": float(won["amount"].mean()) if won["amount"].notna().any() else NAN,
        "win_rate": safe_div(len(won), len(closed)),
        "lead_conversion": safe_div(float(leads["converted_at"].notna().sum()), len(leads)),
    }


@pytest.fixture(scope="module")
def data() -> TrackingData:
    crm = simulate_crm(SimulationConfig(n_leads=2000, seed=4, months=14))
    return prepare(crm.tables, DEFAULT_PIPELINE)


def _periods(data: TrackingData) -> list[Period]:
    end = data.as_of.normalize()
    range_ = f"{(end - pd.Timedelta(days=300)).date()}..{(end - pd.Timedelta(days=3)).date()}"
    return [parse_period(p, data.as_of) for p in ("quarter", "month", "week", "day", range_)]


@pytest.mark.parametrize("by", ["rep", "team", "manager", "region"])
def test_the_daily_table_equals_the_day_by_day_one(data: TrackingData, by: str) -> None:
    for period in _periods(data):
        new, old = daily(data, period, by), _reference_daily(data, period, by)
        pd.testing.assert_frame_equal(new, old, check_exact=True)
        assert new["daily_goal"].notna().any()


def test_odd_quota_rows_get_each_days_own_goal() -> None:
    """Rows of any length, overlapping, starting on any day, with a missing amount."""
    rng = np.random.default_rng(8)
    starts = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 200, 40), unit="D")
    quotas = pd.DataFrame(
        {
            "owner_type": "rep",
            "owner_id": "r1",
            "period_start": starts,
            "period_end": starts + pd.to_timedelta(rng.integers(0, 95, 40), unit="D"),
            "amount": np.where(rng.random(40) < 0.1, np.nan, rng.uniform(1e3, 1e6, 40)),
        }
    )
    rows = _quota_intervals(quotas)
    days = pd.date_range("2024-12-20", "2025-09-30", freq="D")
    expected = [goal_between(rows, d, d + pd.Timedelta(days=1)) for d in days]
    got = daily_goals(rows, days)
    np.testing.assert_array_equal(np.array(got), np.array(expected))  # NaN where NaN, else bit-equal
    assert np.isnan(got[0]) and not np.isnan(got[100])
    assert np.isnan(daily_goals(rows.iloc[0:0], days[:3])).all()  # no quota row: no goal


def test_one_groups_table_is_its_rows_of_the_whole_table(data: TrackingData) -> None:
    period = parse_period("quarter", data.as_of)
    whole = daily(data, period, "team")
    for group in [*sorted(set(data.reps["team"])), ALL_LABEL]:
        alone = daily(data, period, "team", only=group)
        pd.testing.assert_frame_equal(
            alone, whole[whole["team"] == group].reset_index(drop=True), check_exact=True
        )
    assert daily(data, period, "team", only="nobody").empty


@pytest.mark.parametrize("by", ["rep", "team", "manager", "region"])
def test_the_goals_table_equals_the_per_group_filters(data: TrackingData, by: str) -> None:
    for crm in (data, _with_gaps(data)):
        for period in _periods(crm):
            new, old = goals(crm, period, by), _reference_goals(crm, period, by)
            pd.testing.assert_frame_equal(new, old, check_exact=True)
            assert new["won_value"].iloc[-1] > 0 or period.days <= 7


def _with_gaps(data: TrackingData) -> TrackingData:
    """Missing amounts and conversion times, and a few deals of an unknown rep."""
    rng = np.random.default_rng(9)
    opps = data.opportunities.copy()
    opps.loc[rng.random(len(opps)) < 0.15, "amount"] = np.nan
    opps.loc[rng.random(len(opps)) < 0.02, "rep"] = "R-unknown"
    leads = data.leads.copy()
    leads.loc[rng.random(len(leads)) < 0.1, "converted_at"] = pd.NaT
    return TrackingData(**{**data.__dict__, "opportunities": opps, "leads": leads})


def _goal_bounds(data: TrackingData) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Whole days, hours, a range a microsecond off midnight, an empty and an inverted range."""
    end = data.as_of.normalize()
    out = []
    for back in (0, 3, 40, 200, 400):
        start = end - pd.Timedelta(days=back)
        for length in (
            pd.Timedelta(hours=5),
            pd.Timedelta(days=1),
            pd.Timedelta(days=31),
            pd.Timedelta(days=366),
        ):
            out.append((start, start + length))
    out.append((end + pd.Timedelta(microseconds=1), end + pd.Timedelta(days=2)))
    out.extend([(end, end), (end, end - pd.Timedelta(days=3))])
    return out


@pytest.mark.parametrize("by", ["rep", "team", "manager", "region"])
@pytest.mark.parametrize("kind", ["as read", "whole amounts", "no quotas"])
def test_the_goal_table_is_goal_between_of_each_group_to_the_bit(
    data: TrackingData, by: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    quotas = data.quotas.copy()
    if kind == "whole amounts":  # integer amounts: the pandas arithmetic
        quotas["amount"] = pd.to_numeric(quotas["amount"]).round().astype("int64")
    elif kind == "no quotas":
        quotas = quotas.iloc[0:0]
    crm = TrackingData(**{**data.__dict__, "quotas": quotas})
    groups = [*sorted(set(crm.reps["rep_id" if by == "rep" else by])), "nobody", ALL_LABEL]
    bounds = _goal_bounds(crm)
    frame_path = goals_module._goal_between_frame
    calls: list[object] = []
    monkeypatch.setattr(goals_module, "_goal_between_frame", lambda *a: calls.append(a) or frame_path(*a))
    table = goal_table(crm, by, groups, bounds)
    monkeypatch.undo()
    with_quotas = sum(len(quota_rows(crm, by, g)) > 0 for g in groups)
    assert len(calls) == (len(bounds) * with_quotas if kind == "whole amounts" else 0)  # pandas' arithmetic
    assert table.shape == (len(groups), len(bounds))
    for i, group in enumerate(groups):
        rows = quota_rows(crm, by, group)
        want = np.array([goal_between(rows, start, end) for start, end in bounds])
        np.testing.assert_array_equal(table[i], want)  # equal, nan where nan
    assert (kind == "no quotas") == bool(np.isnan(table).all())


@pytest.mark.parametrize("by", ["rep", "team", "manager", "region"])
@pytest.mark.parametrize("kind", ["as read", "whole amounts", "overlapping", "no quotas"])
def test_the_daily_goal_table_is_each_groups_daily_goals_to_the_bit(
    data: TrackingData, by: str, kind: str
) -> None:
    quotas = data.quotas.copy()
    if kind == "whole amounts":  # integer amounts: the pandas arithmetic
        quotas["amount"] = pd.to_numeric(quotas["amount"]).round().astype("int64")
    elif kind == "overlapping":  # a second, shifted quota of each rep: days covered by two rows
        shifted = quotas.assign(
            period_start=pd.to_datetime(quotas["period_start"]) + pd.Timedelta(days=10),
            period_end=pd.to_datetime(quotas["period_end"]) + pd.Timedelta(days=10),
            amount=pd.to_numeric(quotas["amount"]) / 3,
        )
        quotas = pd.concat([quotas, shifted], ignore_index=True)
    elif kind == "no quotas":
        quotas = quotas.iloc[0:0]
    crm = TrackingData(**{**data.__dict__, "quotas": quotas})
    groups = [*sorted(set(crm.reps["rep_id" if by == "rep" else by])), "nobody", ALL_LABEL]
    for period in _periods(crm):
        days = pd.date_range(
            period.start, min(period.end, crm.as_of) - pd.Timedelta(microseconds=1), freq="D"
        )
        table = goals_module.daily_goal_table(crm, by, groups, days)
        want = np.array([daily_goals(quota_rows(crm, by, g), days) for g in groups], dtype=float)
        np.testing.assert_array_equal(table, want.reshape(len(groups), len(days)))
        assert (kind == "no quotas") == bool(np.isnan(table).all()) or len(days) == 0
