"""Tracking metrics on a tiny hand-built CRM; every expected value is worked out by hand below.

The CRM (period March 2024, as of 2024-04-01):

- reps R1, R2 (team T1, EU) and R3 (team T2, US; no activity, no deals, no quota).
- L1 cold_call/outbound (R1) -> O1 on 03-10, won 03-25 for 10,000 (R1's only deal of the month).
- L2 cold_call/outbound (R1), created 03-02, still working.
- L3 web_form/inbound (R2) -> O2 on 03-06, lost 03-20 (price), 2,000.
- L4 web_form/inbound (R2), created 03-15, qualified 03-20.
- L5 referral/inbound (R1) -> O3 on 01-15, open in proposal, 5,000.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.tracking import (
    effectiveness,
    funnel,
    goals,
    performance,
    prepare,
    process,
    prospects,
    stage_table,
)
from forecast.tracking.common import GroupingError
from forecast.tracking.data import default_as_of
from forecast.tracking.goals import daily
from forecast.tracking.insights import insights
from forecast.tracking.periods import parse_period

AS_OF = pd.Timestamp("2024-04-01")
MARCH = parse_period("2024-03-01..2024-03-31", AS_OF)


def hand_tables() -> dict[str, pd.DataFrame]:
    reps = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R3"],
            "name": ["Ana", "Ben", "Cy"],
            "team": ["T1", "T1", "T2"],
            "manager": ["M1", "M1", "M2"],
            "region": ["EU", "EU", "US"],
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3", "L4", "L5"],
            "created_at": ["2024-02-20", "2024-03-02", "2024-03-05", "2024-03-15", "2024-01-10"],
            "source": ["cold_call", "cold_call", "web_form", "web_form", "referral"],
            "channel": ["outbound", "outbound", "inbound", "inbound", "inbound"],
            "rep_id": ["R1", "R1", "R2", "R2", "R1"],
            "company_size": ["11-50"] * 5,
            "status": ["converted", "working", "converted", "qualified", "converted"],
            "status_changed_at": ["2024-03-10", "2024-03-05", "2024-03-06", "2024-03-20", "2024-01-15"],
            "converted_at": ["2024-03-10", None, "2024-03-06", None, "2024-01-15"],
            "opportunity_id": ["O1", None, "O2", None, "O3"],
        }
    )
    opportunities = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2", "O3"],
            "lead_id": ["L1", "L3", "L5"],
            "rep_id": ["R1", "R2", "R1"],
            "product": ["pro", "basic", "pro"],
            "created_at": ["2024-03-10", "2024-03-06", "2024-01-15"],
            "amount": [10000.0, 2000.0, 5000.0],
            "stage": ["closed_won", "closed_lost", "proposal"],
            "expected_close_date": ["2024-03-25", "2024-03-20", "2024-04-30"],
            "closed_at": ["2024-03-25", "2024-03-20", None],
            "outcome": ["won", "lost", "open"],
            "loss_reason": [None, "price", None],
        }
    )
    stage_history = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O1", "O1", "O2", "O2", "O3", "O3"],
            "stage": [
                "qualification",
                "proposal",
                "closed_won",
                "qualification",
                "closed_lost",
                "qualification",
                "proposal",
            ],
            "entered_at": [
                "2024-03-10",
                "2024-03-15",
                "2024-03-25",
                "2024-03-06",
                "2024-03-20",
                "2024-01-15",
                "2024-02-01",
            ],
            "amount": [10000.0, 10000.0, 10000.0, 2000.0, 2000.0, 5000.0, 5000.0],
        }
    )
    a = [
        # id, when, type, direction, rep, lead, opp, seconds, outcome, opened, replied, scheduled_for
        ("A1", "2024-03-03", "call", "outbound", "R1", "L1", None, 600, "completed", None, None, None),
        ("A2", "2024-03-04", "call", "outbound", "R1", "L2", None, 30, "no_answer", None, None, None),
        ("A3", "2024-03-05", "call", "outbound", "R1", "L2", None, 300, "completed", None, None, None),
        ("A4", "2024-03-06", "email", "outbound", "R1", "L2", None, None, "completed", True, True, None),
        ("A5", "2024-03-07", "email", "outbound", "R1", "L2", None, None, "completed", False, False, None),
        ("A6", "2024-03-08", "email", "outbound", "R1", None, "O3", None, "completed", True, False, None),
        ("A7", "2024-03-12", "meeting", "outbound", "R1", None, "O1", 1800, "completed", None, None, None),
        ("A8", "2024-03-13", "meeting", "outbound", "R1", None, "O3", None, "cancelled", None, None, None),
        ("A9", "2024-03-14", "sms", "outbound", "R1", "L2", None, None, "completed", None, None, None),
        ("A10", "2024-03-20", "call", "outbound", "R1", None, "O3", 120, "completed", None, None, None),
        (
            "A11",
            "2024-03-28",
            "task",
            "outbound",
            "R1",
            None,
            "O3",
            None,
            "scheduled",
            None,
            None,
            "2024-04-05",
        ),
        ("A12", "2024-02-10", "call", "outbound", "R1", "L1", None, 200, "completed", None, None, None),
        ("A13", "2024-03-06", "call", "inbound", "R2", "L3", None, 400, "completed", None, None, None),
    ]
    cols = [
        "activity_id", "occurred_at", "type", "direction", "rep_id", "lead_id", "opportunity_id",
        "duration_seconds", "outcome", "email_opened", "email_replied", "scheduled_for",
    ]  # fmt: skip
    activities = pd.DataFrame(a, columns=cols)
    engagement = pd.DataFrame(
        {
            "event_id": ["E1", "E2", "E3"],
            "occurred_at": ["2024-03-20", "2024-03-21", "2024-01-02"],
            "lead_id": ["L2", "L2", "L2"],
            "type": ["web_visit", "pricing_page_view", "web_visit"],
            "value": [60.0, 30.0, 10.0],
        }
    )
    quotas = pd.DataFrame(
        {
            "owner_type": ["rep", "rep", "company"],
            "owner_id": ["R1", "R2", "company"],
            "period_start": ["2024-03-01"] * 3,
            "period_end": ["2024-03-31"] * 3,
            "amount": [31000.0, 31000.0, 62000.0],
        }
    )
    return {
        "reps": reps,
        "leads": leads,
        "opportunities": opportunities,
        "stage_history": stage_history,
        "activities": activities,
        "engagement_events": engagement,
        "quotas": quotas,
    }


@pytest.fixture
def data():  # type: ignore[no-untyped-def]
    return prepare(hand_tables(), DEFAULT_PIPELINE, AS_OF)


def _row(frame: pd.DataFrame, col: str, value: str) -> pd.Series:
    rows = frame[frame[col] == value]
    assert len(rows) == 1, f"{col}={value}: {len(rows)} rows"
    return rows.iloc[0]


def test_default_as_of_is_midnight_after_the_last_event() -> None:
    assert default_as_of(hand_tables()) == pd.Timestamp("2024-03-29")  # the task logged 03-28


def test_performance_by_rep(data) -> None:  # type: ignore[no-untyped-def]
    perf = performance(data, MARCH, "rep")
    r1 = _row(perf, "rep", "R1")
    assert r1["calls"] == 4  # A1, A2, A3, A10 (A12 is February, A13 inbound)
    assert r1["cold_calls"] == 3  # A10 is on a deal
    assert r1["cold_called_leads"] == 2 and r1["cold_call_opportunities"] == 1  # L1 converted after its call
    assert r1["cold_call_conversion"] == 0.5 and r1["cold_call_conversion_n"] == 2
    assert r1["call_hours"] == pytest.approx((600 + 30 + 300 + 120) / 3600)
    assert (
        r1["avg_call_minutes"] == pytest.approx((600 + 300 + 120) / 3 / 60) and r1["avg_call_minutes_n"] == 3
    )
    assert (r1["emails_sent"], r1["emails_opened"], r1["email_replies"]) == (3, 2, 1)
    assert r1["reply_rate"] == pytest.approx(1 / 3) and r1["reply_rate_n"] == 3
    assert r1["reply_rate_lo"] < 1 / 3 < r1["reply_rate_hi"]
    assert r1["sms_sent"] == 1
    assert (r1["meetings_completed"], r1["meetings_cancelled"], r1["meeting_held_rate"]) == (1, 1, 0.5)
    assert (r1["new_opportunities"], r1["value_created"]) == (1, 10000.0)
    # a rep with one deal: win rate 100% on n=1, with a wide interval
    assert (r1["won"], r1["lost"], r1["win_rate"], r1["win_rate_n"]) == (1, 0, 1.0, 1)
    assert r1["win_rate_lo"] < 0.3
    assert r1["selling_hours"] == pytest.approx(
        (600 + 30 + 300 + 1800 + 120) / 3600
    )  # the scheduled task is not done
    r2 = _row(perf, "rep", "R2")
    assert r2["calls"] == 0 and r2["avg_call_minutes"] == pytest.approx(400 / 60)
    assert math.isnan(r2["reply_rate"]) and r2["reply_rate_n"] == 0  # no email: n=0, not 0%
    assert (r2["won"], r2["lost"], r2["win_rate"]) == (0, 1, 0.0)
    # no activity, no deals
    r3 = _row(perf, "rep", "R3")
    assert r3["calls"] == 0 and r3["new_opportunities"] == 0 and r3["win_rate_n"] == 0
    assert math.isnan(r3["win_rate"]) and math.isnan(r3["won_value_per_selling_hour"])
    total = _row(perf, "rep", "(all)")
    assert total["calls"] == 4 and total["win_rate"] == 0.5 and total["win_rate_n"] == 2


def test_performance_by_source_and_product_is_refused(data) -> None:  # type: ignore[no-untyped-def]
    perf = performance(data, MARCH, "source")
    assert _row(perf, "source", "cold_call")["cold_calls"] == 3
    assert _row(perf, "source", "referral")["calls"] == 1  # A10 is on O3, whose lead came by referral
    with pytest.raises(GroupingError, match="product"):
        performance(data, MARCH, "product")


def test_funnel(data) -> None:  # type: ignore[no-untyped-def]
    f = funnel(data, MARCH, "rep")
    r1 = _row(f, "rep", "R1")
    assert (r1["open_opportunities"], r1["open_value"]) == (1, 5000.0)  # O3
    assert r1["weighted_pipeline"] == pytest.approx(5000.0)  # every closed deal that reached proposal was won
    assert (r1["won"], r1["lost"], r1["win_rate"]) == (1, 0, 1.0)
    assert r1["avg_deal_size"] == 10000.0 and r1["cycle_days"] == pytest.approx(15.0)
    assert r1["pipeline_velocity"] == pytest.approx(1 * 1.0 * 10000 / 15)
    assert r1["won_value_prev"] == 0 and math.isnan(r1["growth"])  # division by zero -> nan
    r2 = _row(f, "rep", "R2")
    assert r2["lost_per_day"] == pytest.approx(1 / 31) and r2["lost_per_week"] == pytest.approx(7 / 31)
    assert math.isnan(r2["avg_deal_size"]) and math.isnan(r2["pipeline_velocity"])
    total = _row(f, "rep", "(all)")
    assert total["pipeline_velocity"] == pytest.approx(1 * 0.5 * 10000 / 15)
    by_product = funnel(data, MARCH, "product")
    assert _row(by_product, "product", "basic")["lost"] == 1


def test_goals(data) -> None:  # type: ignore[no-untyped-def]
    g = goals(data, MARCH, "rep")
    r1 = _row(g, "rep", "R1")
    assert r1["goal"] == pytest.approx(31000) and r1["daily_goal"] == pytest.approx(1000)
    assert r1["weekly_goal"] == pytest.approx(7000) and r1["monthly_goal"] == pytest.approx(31000)
    assert r1["won_value"] == 10000 and r1["attainment"] == pytest.approx(10000 / 31000)
    assert r1["remaining"] == pytest.approx(21000)
    assert r1["deals_needed"] == 3  # 21,000 / average won deal 10,000, rounded up
    r3 = _row(g, "rep", "R3")  # a period without quota
    assert math.isnan(r3["goal"]) and math.isnan(r3["attainment"]) and math.isnan(r3["remaining"])
    total = _row(g, "rep", "(all)")
    assert total["goal"] == pytest.approx(62000) and total["remaining"] == pytest.approx(52000)
    half = goals(data, parse_period("2024-03-01..2024-03-15", AS_OF), "rep")
    assert _row(half, "rep", "R1")["goal"] == pytest.approx(15000)  # pro-rated by days
    april = goals(data, parse_period("2024-04-01..2024-04-30", pd.Timestamp("2024-05-01")), "team")
    assert april["goal"].isna().all()
    d = daily(data, MARCH, "rep")
    r1d = d[d["rep"] == "R1"]
    assert len(r1d) == 31 and r1d["cumulative_won"].iloc[-1] == 10000
    assert r1d["cumulative_goal"].iloc[-1] == pytest.approx(31000)
    assert r1d.loc[r1d["day"] == pd.Timestamp("2024-03-25").date(), "won_value"].item() == 10000


def test_process_and_stages(data) -> None:  # type: ignore[no-untyped-def]
    p = process(data, MARCH, "channel")
    inbound, outbound = _row(p, "channel", "inbound"), _row(p, "channel", "outbound")
    assert (inbound["prospects"], outbound["prospects"]) == (2, 1)  # L3, L4 / L2
    assert (inbound["qualified"], outbound["qualified"]) == (
        2,
        1,
    )  # L3 converted + L4 qualified / L1 converted
    assert inbound["lead_conversion"] == 0.5 and outbound["lead_conversion"] == 0.0
    s = stage_table(data, MARCH, "channel")
    qual = _row(s[s["channel"] == "(all)"], "stage", "qualification")
    assert (qual["entered"], qual["advanced"], qual["lost"]) == (2, 1, 1)
    assert qual["stage_conversion"] == 0.5
    assert qual["days_median"] == pytest.approx((5 + 14) / 2)  # O1 03-10→03-15, O2 03-06→03-20
    prop = _row(s[s["channel"] == "(all)"], "stage", "proposal")
    assert (prop["entered"], prop["advanced"], prop["in_stage"]) == (1, 1, 1)  # O3 sits in proposal
    demo = _row(s[s["channel"] == "(all)"], "stage", "demo")
    assert demo["entered"] == 0 and math.isnan(demo["stage_conversion"]) and demo["stage_conversion_n"] == 0


def test_effectiveness(data) -> None:  # type: ignore[no-untyped-def]
    e = effectiveness(data, MARCH, "team")
    t1 = _row(e, "team", "T1")
    assert t1["reply_rate"] == pytest.approx(1 / 3)
    assert t1["avg_call_minutes"] == pytest.approx((600 + 300 + 120 + 400) / 4 / 60)
    assert (t1["new_opportunities"], t1["new_opportunities_prev"]) == (2, 0)
    assert math.isnan(t1["new_opportunities_change"])  # division by zero
    t2 = _row(e, "team", "T2")
    assert t2["reply_rate_n"] == 0 and math.isnan(t2["corr_new_opportunities_calls"])


def test_prospects_with_and_without_scores(data) -> None:  # type: ignore[no-untyped-def]
    p = prospects(data, MARCH, "rep")
    assert set(p["prospect_id"]) == {"L2", "L4", "O3"}
    l2 = _row(p, "prospect_id", "L2")
    assert l2["last_contact"] == pd.Timestamp("2024-03-14")  # the text message
    assert (l2["web_visits_30d"], l2["pricing_views_30d"]) == (1, 1)  # the January visit is older
    assert l2["score_note"] == "no score yet"
    o3 = _row(p, "prospect_id", "O3")
    assert o3["last_contact"] == pd.Timestamp("2024-03-20") and o3["next_action"] == "task"
    assert o3["next_action_at"] == pd.Timestamp("2024-04-05") and o3["deal_size"] == 5000
    assert o3["expected_close"] == pd.Timestamp("2024-04-30") and o3["status"] == "proposal"
    tables = hand_tables()
    tables["lead_scores"] = pd.DataFrame(
        {
            "lead_id": ["L2", "L2"],
            "as_of": ["2024-03-30", "2024-05-01"],
            "score": [71, 99],
            "band": ["A", "A"],
        }
    )
    scored = prospects(prepare(tables, DEFAULT_PIPELINE, AS_OF), MARCH, "rep")
    l2 = _row(scored, "prospect_id", "L2")
    assert l2["score"] == 71  # the later score is after the snapshot
    assert _row(scored, "prospect_id", "L4")["score_note"] == "no score yet"


def test_point_in_time_cut(data) -> None:  # type: ignore[no-untyped-def]
    early = prepare(hand_tables(), DEFAULT_PIPELINE, pd.Timestamp("2024-03-21"))
    o1 = _row(early.opportunities, "opportunity_id", "O1")
    assert o1["outcome"] == "open" and o1["stage"] == "proposal" and pd.isna(o1["closed_at"])
    assert _row(early.leads, "lead_id", "L4")["status"] == "qualified"
    assert (early.activities["occurred_at"] < pd.Timestamp("2024-03-21")).all()


def test_empty_crm_does_not_crash() -> None:
    tables = {"reps": hand_tables()["reps"]}
    empty = prepare(tables, DEFAULT_PIPELINE, AS_OF)
    perf = performance(empty, MARCH, "rep")
    assert (perf["calls"] == 0).all() and perf["win_rate"].isna().all() and (perf["win_rate_n"] == 0).all()
    f = funnel(empty, MARCH, "rep")
    assert (f["open_opportunities"] == 0).all() and f["pipeline_velocity"].isna().all()
    assert goals(empty, MARCH, "rep")["goal"].isna().all()
    assert prospects(empty, MARCH, "rep").empty
    assert stage_table(empty, MARCH, "rep").empty
    assert process(empty, MARCH, "rep")["prospects"].eq(0).all()
    assert effectiveness(empty, MARCH, "team")["reply_rate_n"].eq(0).all()
    report = insights(empty, MARCH)
    assert report.insights == [] and report.notes
    for frame in (perf, f):
        numeric = frame.select_dtypes("number")
        assert not numeric.isin([float("inf"), float("-inf")]).any().any()


def test_a_past_period_s_prospects_are_as_they_stood_then() -> None:
    """March's list read on 1 May is March's list read on 1 April, although in April O3 moved to
    negotiation at a new amount and was lost, L2 converted, L4 was disqualified and L2 came back to
    the website: what happened after the period's end does not reach its snapshot."""
    tables = hand_tables()
    later = {k: v.copy() for k, v in tables.items()}
    leads, opps = later["leads"], later["opportunities"]
    leads.loc[leads["lead_id"] == "L2", ["status", "status_changed_at", "converted_at", "opportunity_id"]] = [
        "converted", "2024-04-15", "2024-04-15", "O4",
    ]  # fmt: skip
    leads.loc[leads["lead_id"] == "L4", ["status", "status_changed_at"]] = ["unqualified", "2024-04-02"]
    o3 = opps["opportunity_id"] == "O3"
    opps.loc[o3, ["stage", "amount", "closed_at", "outcome", "loss_reason", "expected_close_date"]] = [
        "closed_lost", 7000.0, "2024-04-20", "lost", "price", "2024-05-15",
    ]  # fmt: skip
    o4 = {
        "opportunity_id": "O4",
        "lead_id": "L2",
        "rep_id": "R1",
        "product": "pro",
        "created_at": "2024-04-15",
        "amount": 3000.0,
        "stage": "qualification",
        "expected_close_date": "2024-06-01",
        "closed_at": None,
        "outcome": "open",
        "loss_reason": None,
    }
    later["opportunities"] = pd.concat([opps, pd.DataFrame([o4])], ignore_index=True)
    moves = pd.DataFrame(
        {
            "opportunity_id": ["O3", "O3", "O4"],
            "stage": ["negotiation", "closed_lost", "qualification"],
            "entered_at": ["2024-04-05", "2024-04-20", "2024-04-15"],
            "amount": [7000.0, 7000.0, 3000.0],
        }
    )
    later["stage_history"] = pd.concat([later["stage_history"], moves], ignore_index=True)
    visits = pd.DataFrame(
        {
            "event_id": ["E4", "E5"],
            "occurred_at": ["2024-04-03", "2024-04-04"],
            "lead_id": ["L2", "L2"],
            "type": ["web_visit", "pricing_page_view"],
            "value": [5.0, 5.0],
        }
    )
    later["engagement_events"] = pd.concat([later["engagement_events"], visits], ignore_index=True)
    then = prospects(prepare(tables, DEFAULT_PIPELINE, AS_OF), MARCH, "rep")
    now = prospects(prepare(later, DEFAULT_PIPELINE, pd.Timestamp("2024-05-01")), MARCH, "rep")
    assert set(now["prospect_id"]) == {"L2", "L4", "O3"}
    o3_now = _row(now, "prospect_id", "O3")
    assert (o3_now["status"], o3_now["deal_size"]) == ("proposal", 5000)
    assert (_row(now, "prospect_id", "L2")["status"], _row(now, "prospect_id", "L4")["status"]) == (
        "working", "working",  # status changed after March: not known then (the warehouse read's rule)
    )  # fmt: skip
    columns = ["prospect_id", "kind", "deal_size", "last_contact", "days_since_contact", "next_action",
               "next_action_at", "web_visits_30d", "pricing_views_30d", "social_actions_30d",
               "last_engagement", "score"]  # fmt: skip
    pd.testing.assert_frame_equal(now[columns], then[columns], check_exact=True)
    # its stage changes record no expected close date: the warehouse's current one is all it knows
    assert o3_now["expected_close"] == pd.Timestamp("2024-05-15")
    assert _row(then, "prospect_id", "L4")["status"] == "qualified"  # known on 1 April (changed 20 March)


def test_open_leads_and_no_open_deal_list_the_leads(data) -> None:  # type: ignore[no-untyped-def]
    """Before the first deal (L5 came on 10 January, its deal O3 on the 15th): the leads alone,
    with the deal columns empty (this raised a KeyError, a 500 on the dashboard)."""
    p = prospects(data, parse_period("2024-01-01..2024-01-12", AS_OF), "rep")
    assert p["prospect_id"].tolist() == ["L5"] and p["kind"].tolist() == ["lead"]
    assert p["deal_size"].isna().all() and p["expected_close"].isna().all()
    assert p["deal_size"].dtype == np.float64 and p["expected_close"].dtype.kind == "M"
