"""The effectiveness report from numpy columns and one rep-week count: the per-group values, to the bit.

``_reference`` is the report as it was computed before: each group's activities and deals filtered
out of the whole frames, and its rep-weeks counted on their own (:func:`rep_weeks`).
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.tracking import common, rep_week_counts
from forecast.tracking.activity_index import activity_index
from forecast.tracking.common import Row, add_rate, per_group, subset
from forecast.tracking.data import TrackingData, prepare
from forecast.tracking.periods import Period, parse_period
from forecast.tracking.stats import correlation, mean_interval, rate_ratio_test, safe_div

eff = importlib.import_module("forecast.tracking.effectiveness")  # the package shadows it: a function
CORRELATION_WEEKS, _PERIOD_COLUMNS = eff.CORRELATION_WEEKS, eff._PERIOD_COLUMNS
_columns, _week_rows, rep_weeks = eff._columns, eff._week_rows, eff.rep_weeks


def _reference(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    acts = data.activities
    in_period = acts.loc[
        acts["done"] & period.contains(acts["occurred_at"]), _columns(acts, by, _PERIOD_COLUMNS)
    ]
    opps = data.opportunities
    prev = period.previous()
    created = opps[period.contains(opps["created_at"])]
    created_prev = opps[prev.contains(opps["created_at"])]
    end = min(period.end, data.as_of)
    start = min(period.start, end - pd.Timedelta(weeks=CORRELATION_WEEKS))
    window = _week_rows(acts, by, start, end)

    def compute(group: str) -> Row:
        row: Row = {}
        a = subset(in_period, by, group)
        emails = a[(a["type"] == "email") & (a["direction"] == "outbound")]
        replied = emails["email_replied"].dropna().astype(bool)
        add_rate(row, "reply_rate", int(replied.sum()), len(replied))
        calls = a[(a["type"] == "call") & (a["outcome"] == "completed") & a["duration_seconds"].notna()]
        mean, n, lo, hi = mean_interval(calls["duration_seconds"] / 60)
        row.update(
            avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
        )
        new, new_prev = len(subset(created, by, group)), len(subset(created_prev, by, group))
        row["new_opportunities"] = new
        row["new_opportunities_prev"] = new_prev
        row["new_opportunities_change"] = safe_div(new - new_prev, new_prev)
        row["new_opportunities_p_value"] = rate_ratio_test(new, period.days, new_prev, prev.days)
        weeks = rep_weeks(subset(window, by, group), subset(opps, by, group), start, end)
        for name in ("calls", "emails"):
            c = correlation(weeks[name], weeks["new_opportunities"]) if len(weeks) else correlation([], [])
            key = f"corr_new_opportunities_{name}"
            row.update(
                {key: c.r, f"{key}_n": c.n, f"{key}_lo": c.lo, f"{key}_hi": c.hi, f"{key}_p_value": c.p_value}
            )
        return row

    return per_group(data, by, [in_period, created], compute)


@pytest.fixture(scope="module")
def data() -> TrackingData:
    crm = simulate_crm(SimulationConfig(n_leads=3000, seed=12, months=12))
    return prepare(crm.tables, DEFAULT_PIPELINE)


def _with_gaps(data: TrackingData) -> TrackingData:
    """Missing directions, replies, durations and reps; an unknown rep; deals without a source."""
    rng = np.random.default_rng(5)
    acts = data.activities.copy()
    for column, share in [
        ("direction", 0.05),
        ("email_replied", 0.2),
        ("duration_seconds", 0.2),
        ("rep_id", 0.02),
        ("team", 0.03),
    ]:
        if column in acts.columns:
            acts.loc[rng.random(len(acts)) < share, column] = None
    acts.loc[rng.random(len(acts)) < 0.02, "rep_id"] = "R-unknown"
    opps = data.opportunities.copy()
    if "source" in opps.columns:
        opps.loc[rng.random(len(opps)) < 0.1, "source"] = None
    return TrackingData(**{**data.__dict__, "activities": acts, "opportunities": opps})


@pytest.mark.parametrize("by", eff.GROUPINGS)
def test_the_report_equals_the_per_group_filters(data: TrackingData, by: str) -> None:
    for crm in (data, _with_gaps(data)):
        for name in ("month", "quarter", "week"):
            period = parse_period(name, crm.as_of)
            new, old = eff.effectiveness(crm, period, by), _reference(crm, period, by)
            pd.testing.assert_frame_equal(new, old, check_exact=True)
            assert new["corr_new_opportunities_calls_n"].iloc[-1] > 10  # the rep-weeks mean something


def test_a_grouping_the_deals_lack_counts_no_deal_for_its_groups(data: TrackingData) -> None:
    crm = TrackingData(**{**data.__dict__, "opportunities": data.opportunities.drop(columns=["channel"])})
    period = parse_period("quarter", crm.as_of)
    new, old = eff.effectiveness(crm, period, "channel"), _reference(crm, period, "channel")
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert (new["new_opportunities"].iloc[:-1] == 0).all() and new["new_opportunities"].iloc[-1] > 0


def test_the_week_numbers_group_and_order_as_the_mondays_of_rep_weeks() -> None:
    """``_week`` (days to each ISO week's Monday) against ``rep_weeks``' own Monday timestamps."""
    rng = np.random.default_rng(3)
    edges = [
        "1969-12-28 23:59",
        "1969-12-29",
        "1970-01-01",
        "2026-01-04 23:59:59",
        "2026-01-05",
        "2024-02-29 12:00",
    ]
    spread = pd.Timestamp("1968-01-01") + pd.to_timedelta(rng.integers(0, 60 * 365 * 86400, 5000), unit="s")
    times = pd.Series(pd.to_datetime(edges, format="ISO8601").append(spread))
    monday = times.dt.normalize() - pd.to_timedelta(times.dt.dayofweek, unit="D")
    for series in (times, times.astype("datetime64[us]")):
        weeks = eff._week(series)
        assert weeks.dtype == np.int64 and weeks.index.equals(series.index)
        assert np.array_equal(weeks.to_numpy(), monday.to_numpy().astype("datetime64[D]").astype(np.int64))
        assert np.array_equal(pd.factorize(weeks, sort=True)[0], pd.factorize(monday, sort=True)[0])
    # a time zone, or a missing time (no week, so not grouped), takes rep_weeks' arithmetic itself
    for other in (times.dt.tz_localize("UTC"), times.where(times.index != 3)):
        expected = (other.dt.normalize() - pd.to_timedelta(other.dt.dayofweek, unit="D")).rename("week")
        pd.testing.assert_series_equal(eff._week(other), expected)


@pytest.mark.parametrize("by", eff.GROUPINGS)
def test_the_coded_rep_weeks_are_the_pandas_counts_row_for_row(data: TrackingData, by: str) -> None:
    """The rep-weeks counted from the coded index: the pandas counts' rows, groups and order."""
    for crm in (data, _with_gaps(data)):
        acts, opps = crm.activities, crm.opportunities
        for start, end in [
            (crm.as_of - pd.Timedelta(weeks=26), crm.as_of),
            (
                pd.Timestamp(crm.as_of.date()) - pd.Timedelta(days=200, hours=5),
                crm.as_of - pd.Timedelta(days=9),
            ),
        ]:
            for only in (None, ("(none)", "None", str(crm.reps["rep_id"].iloc[0]), "APAC", "web")):
                coded = eff._coded_rep_weeks(acts, activity_index(acts), opps, by, start, end, only)
                assert coded is not None
                pandas = eff._pandas_rep_weeks(acts, opps, by, start, end, only)
                assert coded.split.keys() == pandas.split.keys()
                for counts in ("whole", "table"):
                    got, expected = getattr(coded, counts), getattr(pandas, counts)
                    assert got.keys() == expected.keys()
                    for name, values in expected.items():
                        assert np.array_equal(got[name], values), (counts, name)
                assert len(coded.whole["calls"]) > 100


def test_the_index_finds_a_window_as_pandas_compares_times() -> None:
    """A window of times in microseconds bounded at a nanosecond: the rows pandas' comparison keeps."""
    rng = np.random.default_rng(7)
    times = pd.Series(
        pd.Timestamp("2025-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 10**6, 400)), unit="us")
    ).astype("datetime64[us]")
    acts = pd.DataFrame(
        {
            "occurred_at": times,
            "done": True,
            "direction": "outbound",
            "rep_id": "R1",
            "type": rng.choice(["call", "email", "meeting"], len(times)),
            "email_replied": None,
            "outcome": "completed",
            "duration_seconds": 60.0,
        }
    )
    index = activity_index(acts)
    assert index is not None and index.per_ns == 1000
    for _ in range(50):
        start, end = (
            pd.Timestamp("2025-01-01") + pd.Timedelta(int(v), unit="ns") for v in rng.integers(0, 10**9, 2)
        )
        kept = np.flatnonzero(((times >= start) & (times < end)).to_numpy())
        assert np.array_equal(index.rows[index.within(start, end)], kept)


def test_times_with_a_zone_take_the_period_s_rows_and_count_in_pandas(data: TrackingData) -> None:
    zone = "America/New_York"
    acts = data.activities.assign(occurred_at=data.activities["occurred_at"].dt.tz_localize(zone))
    opps = data.opportunities.assign(created_at=data.opportunities["created_at"].dt.tz_localize(zone))
    crm = TrackingData(**{**data.__dict__, "activities": acts, "opportunities": opps})
    assert activity_index(crm.activities) is None
    for name in ("quarter", "week"):
        period = parse_period(name, data.as_of.tz_localize(zone))
        new = eff.effectiveness(TrackingData(**{**crm.__dict__, "as_of": period.end}), period, "team")
        old = _reference(TrackingData(**{**crm.__dict__, "as_of": period.end}), period, "team")
        pd.testing.assert_frame_equal(new, old, check_exact=True)
        assert new["corr_new_opportunities_calls_n"].iloc[-1] > 10


def test_rep_ids_that_are_not_text_are_counted_in_pandas(data: TrackingData) -> None:
    numbered = {rep: i for i, rep in enumerate(data.reps["rep_id"])}
    acts, opps = data.activities, data.opportunities
    crm = TrackingData(
        **{
            **data.__dict__,
            "activities": acts.assign(rep_id=acts["rep_id"].map(numbered)),
            "opportunities": opps.assign(rep_id=opps["rep_id"].map(numbered)),
        }
    )
    index = activity_index(crm.activities)
    assert index is not None and not index.reps_are_text
    period = parse_period("quarter", crm.as_of)
    new, old = eff.effectiveness(crm, period, "team"), _reference(crm, period, "team")
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert new["corr_new_opportunities_calls_n"].iloc[-1] > 10


def test_odd_column_types_give_the_reference_s_figures(data: TrackingData) -> None:
    """Group values written alike but unequal, or not text; a duration that is not a number."""
    acts = data.activities
    rng = np.random.default_rng(9)
    mixed = pd.Series(rng.choice(np.array([1, "1", 1.0, True, None, "APAC"], dtype=object), len(acts)))
    not_done = np.flatnonzero(~acts["done"].to_numpy(dtype=bool, na_value=False))
    assert len(not_done)
    durations = acts["duration_seconds"].astype(object)
    durations.iloc[not_done[0]] = "n/a"  # never read: the activity is not done
    variants = {
        "mixed": {"activities": acts.assign(team=mixed.to_numpy())},
        "float32": {
            "activities": acts.assign(team=rng.choice([0.1, 0.2, np.nan], len(acts)).astype("float32"))
        },
        "durations as text": {"activities": acts.assign(duration_seconds=durations)},
    }
    for name, frames in variants.items():
        crm = TrackingData(**{**data.__dict__, **frames})
        period = parse_period("quarter", crm.as_of)
        new, old = eff.effectiveness(crm, period, "team"), _reference(crm, period, "team")
        pd.testing.assert_frame_equal(new, old, check_exact=True, obj=name)
        assert len(new) > 2 and new["corr_new_opportunities_calls_n"].iloc[-1] > 10


def test_categorical_rep_ids_are_counted_in_pandas(data: TrackingData) -> None:
    """A pandas grouping of categorical reps counts every category (seen or not): left to pandas."""
    acts, opps = data.activities, data.opportunities
    crm = TrackingData(
        **{
            **data.__dict__,
            "activities": acts.assign(rep_id=acts["rep_id"].astype("category")),
            "opportunities": opps.assign(rep_id=opps["rep_id"].astype("category")),
        }
    )
    index = activity_index(crm.activities)
    assert index is not None and not index.reps_are_text
    assert rep_week_counts.deals_side(crm.opportunities, np.zeros(len(opps), dtype=np.int64), None) is None
    period = parse_period("quarter", crm.as_of)
    end = min(period.end, crm.as_of)
    start = min(period.start, end - pd.Timedelta(weeks=eff.CORRELATION_WEEKS))
    assert eff._coded_rep_weeks(crm.activities, index, crm.opportunities, "team", start, end, None) is None


def test_many_group_and_rep_pairs_are_found_by_sorting(
    data: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beyond the dense table's size the (group, rep) pairs are sorted: the same counts."""
    acts, opps = data.activities, data.opportunities
    start, end = data.as_of - pd.Timedelta(weeks=26), data.as_of
    dense = eff._coded_rep_weeks(acts, activity_index(acts), opps, "source", start, end, None)
    monkeypatch.setattr(rep_week_counts, "_DENSE_PAIRS", 0)
    common._MEMO.clear()
    sorted_ = eff._coded_rep_weeks(acts, activity_index(acts), opps, "source", start, end, None)
    assert dense is not None and sorted_ is not None and len(dense.table["calls"]) > 100
    for name, values in dense.table.items():
        assert np.array_equal(sorted_.table[name], values)
