"""The performance report from numpy columns gives the per-group filter's figures, to the last digit.

``_reference`` is the report as it was computed before (a pandas filter per group and metric).
Both run on simulated CRMs, and on one with gaps put in (missing durations, directions, email
flags and leads, unknown groups), for every grouping and several periods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.tracking import common
from forecast.tracking.activity_index import activity_index, built_activity_index
from forecast.tracking.common import Row, add_rate, amount_sum, memo_held, per_group, subset
from forecast.tracking.data import TrackingData, prepare
from forecast.tracking.performance import GROUPINGS, MEETING_FAILED, MEETING_TYPES, performance
from forecast.tracking.periods import Period, parse_period
from forecast.tracking.stats import NAN, mean_interval


def _reference(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    acts = data.activities
    acts = acts[period.contains(acts["occurred_at"]) & acts["done"]]
    opps = data.opportunities
    created = opps[period.contains(opps["created_at"])]
    closed = opps[period.contains(opps["closed_at"])]
    leads = data.leads.set_index("lead_id")["converted_at"]

    def compute(group: str) -> Row:
        a = subset(acts, by, group)
        row: Row = {}
        calls = a[(a["type"] == "call") & (a["direction"] == "outbound")]
        row["calls"] = len(calls)
        cold = a[a["cold"]]
        row["cold_calls"] = len(cold)
        first_call = cold.groupby("lead_id")["occurred_at"].min()
        conv = leads.reindex(first_call.index)
        row["cold_called_leads"] = len(first_call)
        add_rate(row, "cold_call_conversion", int((conv > first_call).sum()), len(first_call))
        row["cold_call_opportunities"] = int((conv > first_call).sum())
        all_calls = a[a["type"] == "call"]
        row["call_hours"] = float(all_calls["duration_seconds"].fillna(0).sum()) / 3600
        connected = all_calls[(all_calls["outcome"] == "completed") & all_calls["duration_seconds"].notna()]
        mean, n, lo, hi = mean_interval(connected["duration_seconds"] / 60)
        row.update(
            avg_call_minutes=mean, avg_call_minutes_n=n, avg_call_minutes_lo=lo, avg_call_minutes_hi=hi
        )
        emails = a[(a["type"] == "email") & (a["direction"] == "outbound")]
        row["emails_sent"] = len(emails)
        opened = emails["email_opened"].dropna().astype(bool)
        replied = emails["email_replied"].dropna().astype(bool)
        row["emails_opened"] = int(opened.sum())
        add_rate(row, "open_rate", int(opened.sum()), len(opened))
        row["email_replies"] = int(replied.sum())
        add_rate(row, "reply_rate", int(replied.sum()), len(replied))
        row["sms_sent"] = int(((a["type"] == "sms") & (a["direction"] != "inbound")).sum())
        meetings = a[a["type"].isin(MEETING_TYPES)]
        row["meetings_completed"] = int((meetings["outcome"] == "completed").sum())
        for outcome in MEETING_FAILED:
            row[f"meetings_{outcome}"] = int((meetings["outcome"] == outcome).sum())
        decided = meetings[meetings["outcome"].isin(("completed", *MEETING_FAILED))]
        add_rate(row, "meeting_held_rate", row["meetings_completed"], len(decided))
        c = subset(created, by, group)
        row["new_opportunities"] = len(c)
        row["value_created"] = amount_sum(c)
        d = subset(closed, by, group)
        won = d[d["outcome"] == "won"]
        row["won"] = len(won)
        row["won_value"] = amount_sum(won)
        row["lost"] = int((d["outcome"] == "lost").sum())
        add_rate(row, "win_rate", len(won), len(won) + row["lost"])
        row["selling_hours"] = float(a["duration_seconds"].fillna(0).sum()) / 3600
        row["won_value_per_selling_hour"] = (
            row["won_value"] / row["selling_hours"] if row["selling_hours"] > 0 else NAN
        )
        return row

    return per_group(data, by, [acts, created, closed], compute)


@pytest.fixture(scope="module")
def data() -> TrackingData:
    crm = simulate_crm(SimulationConfig(n_leads=3000, seed=11, months=12))
    return prepare(crm.tables, DEFAULT_PIPELINE)


@pytest.fixture(scope="module")
def gappy(data: TrackingData) -> TrackingData:
    """The same CRM with gaps: missing values where a CRM leaves them out, and unknown groups."""
    rng = np.random.default_rng(3)
    acts = data.activities.copy()

    def blank(column: str, share: float) -> None:
        rows = rng.random(len(acts)) < share
        acts.loc[rows, column] = None

    for column, share in [
        ("duration_seconds", 0.2),
        ("direction", 0.05),
        ("email_opened", 0.2),
        ("email_replied", 0.2),
        ("lead_id", 0.05),
        ("team", 0.03),
        ("source", 0.03),
    ]:
        if column in acts.columns:
            blank(column, share)
    if "rep" in acts.columns:
        acts.loc[rng.random(len(acts)) < 0.02, "rep"] = "R-unknown"
    opps = data.opportunities.copy()
    opps.loc[rng.random(len(opps)) < 0.1, "amount"] = np.nan
    return TrackingData(**{**data.__dict__, "activities": acts, "opportunities": opps})


def _periods(data: TrackingData) -> list[Period]:
    end = data.as_of.normalize()
    range_ = f"{(end - pd.Timedelta(days=200)).date()}..{(end - pd.Timedelta(days=20)).date()}"
    return [parse_period(p, data.as_of) for p in ("quarter", "month", "week", range_)]


@pytest.mark.parametrize("by", GROUPINGS)
@pytest.mark.parametrize("split_from", [0, 10**12])
def test_the_report_equals_the_per_group_filters(
    data: TrackingData, gappy: TrackingData, by: str, split_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "_SPLIT_FROM", split_from)
    for crm in (data, gappy):
        for period in _periods(crm):
            new, old = performance(crm, period, by), _reference(crm, period, by)
            pd.testing.assert_frame_equal(new, old, check_exact=True)
            assert len(new) > 1 and new["calls"].iloc[-1] > 0  # (all) saw activities


def test_gaps_reach_the_figures(data: TrackingData, gappy: TrackingData) -> None:
    """The gaps change the counts the reference counts (so the comparison above has teeth)."""
    period = parse_period("quarter", data.as_of)
    whole, holed = performance(data, period, "rep").iloc[-1], performance(gappy, period, "rep").iloc[-1]
    assert holed["avg_call_minutes_n"] < whole["avg_call_minutes_n"]
    assert holed["open_rate_n"] < whole["open_rate_n"]
    assert holed["cold_called_leads"] < whole["cold_called_leads"]
    assert holed["value_created"] < whole["value_created"]


def test_arrow_backed_text_with_gaps_counts_as_the_filter_does(gappy: TrackingData) -> None:
    """Text columns as pandas' ``string`` (a missing value is ``NA``): a missing value filters out."""
    acts = gappy.activities.copy()
    for column in ("type", "direction", "outcome"):
        acts[column] = acts[column].astype("string[pyarrow]")
    crm = TrackingData(**{**gappy.__dict__, "activities": acts})
    period = parse_period("quarter", crm.as_of)
    new, old = performance(crm, period, "team"), _reference(crm, period, "team")
    pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert acts["direction"].isna().any()


@pytest.mark.parametrize("text", ["object", "string[pyarrow]"])
@pytest.mark.parametrize("by", ["rep", "team", "source"])
def test_the_report_from_the_coded_activities_equals_the_per_group_filters(
    gappy: TrackingData, text: str, by: str
) -> None:
    """With the activity index built, the period's rows and columns come from codes: the same table."""
    acts = gappy.activities.copy()  # a frame of its own: the index built for it alone
    if text != "object":
        for column in ("type", "direction", "outcome"):
            acts[column] = acts[column].astype(text)
    crm = TrackingData(**{**gappy.__dict__, "activities": acts})
    assert built_activity_index(acts) is None and activity_index(acts) is not None
    for period in _periods(crm):
        new, old = performance(crm, period, by), _reference(crm, period, by)
        pd.testing.assert_frame_equal(new, old, check_exact=True)
    assert memo_held(acts, "performance columns") is not None  # the coded path was taken
