"""Insights find a planted effect, name the right rep, and stay silent when reps are alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.tracking import adjusted, prepare
from forecast.tracking.insights import insights
from forecast.tracking.periods import parse_period

AS_OF = pd.Timestamp("2024-11-01")
OCTOBER = parse_period("month", AS_OF)


def prospecting_crm(
    conversions: dict[str, int], leads_per_rep: int = 150, calls_per_lead: int = 2
) -> dict[str, pd.DataFrame]:
    """Each rep cold-calls ``leads_per_rep`` leads in October; ``conversions[rep]`` of them become deals."""
    reps = list(conversions)
    rep_frame = pd.DataFrame({"rep_id": reps, "name": reps, "team": "T", "manager": "M", "region": "EU"})
    leads, acts, opps = [], [], []
    rng = np.random.default_rng(1)
    for rep in reps:
        for i in range(leads_per_rep):
            lead = f"{rep}-L{i}"
            created = pd.Timestamp("2024-10-01") + pd.Timedelta(hours=int(rng.integers(0, 24 * 10)))
            converts = i < conversions[rep]
            converted = created + pd.Timedelta(days=5) if converts else pd.NaT
            leads.append(
                {
                    "lead_id": lead, "created_at": created, "source": ["cold_call", "outbound_email"][i % 2],
                    "channel": "outbound", "rep_id": rep, "company_size": "11-50",
                    "status": "converted" if converts else "working",
                    "status_changed_at": converted if converts else created,
                    "converted_at": converted, "opportunity_id": f"{lead}-O" if converts else None,
                }
            )  # fmt: skip
            for c in range(calls_per_lead):
                acts.append(
                    {
                        "activity_id": f"{lead}-A{c}", "occurred_at": created + pd.Timedelta(hours=1 + c),
                        "type": "call", "direction": "outbound", "rep_id": rep, "lead_id": lead,
                        "duration_seconds": 120.0, "outcome": "completed",
                    }
                )  # fmt: skip
            if converts:
                opps.append(
                    {
                        "opportunity_id": f"{lead}-O", "lead_id": lead, "rep_id": rep,
                        "product": "pro", "created_at": converted, "amount": 10000.0,
                        "stage": "qualification", "outcome": "open",
                    }
                )  # fmt: skip
    history = pd.DataFrame(
        {"opportunity_id": [o["opportunity_id"] for o in opps], "stage": "qualification",
         "entered_at": [o["created_at"] for o in opps], "amount": 10000.0}
    )  # fmt: skip
    # a year of closed history so the revenue impact has a win rate and a deal size
    past = pd.DataFrame(
        {
            "opportunity_id": [f"P{i}" for i in range(40)],
            "rep_id": [reps[i % len(reps)] for i in range(40)],
            "product": "pro", "created_at": pd.Timestamp("2024-01-10"), "amount": 10000.0,
            "stage": ["closed_won" if i % 4 == 0 else "closed_lost" for i in range(40)],
            "outcome": ["won" if i % 4 == 0 else "lost" for i in range(40)],
            "closed_at": pd.Timestamp("2024-03-01"),
        }
    )  # fmt: skip
    return {
        "reps": rep_frame,
        "leads": pd.DataFrame(leads),
        "activities": pd.DataFrame(acts),
        "opportunities": pd.concat([pd.DataFrame(opps), past], ignore_index=True),
        "stage_history": history,
    }


def test_a_planted_prospecting_gap_is_found_and_names_the_rep() -> None:
    crm = prospecting_crm({"R1": 30, "R2": 28, "R3": 31, "R4": 29, "R5": 30, "R6": 3})
    data = prepare(crm, DEFAULT_PIPELINE, AS_OF)
    report = insights(data, OCTOBER)
    prospecting = [i for i in report.insights if i.rule == "prospecting"]
    assert [i.subject for i in prospecting] == ["R6"]
    top = prospecting[0]
    assert "300 cold calls to 150 leads" in top.message and "3 became opportunities" in top.message
    assert top.evidence["rate"] == 3 / 150 and top.evidence["rate_lo"] < 0.02 < top.evidence["rate_hi"]
    assert top.p_value < 0.001 and top.adjusted_for == "source, company_size, region"
    # expected = 150 leads at the others' 148/750 rate; impact = shortfall × win rate (10/40) × 10,000
    expected = 150 * 148 / 750
    assert top.evidence["expected"] == pytest.approx(expected, rel=0.05)
    assert top.expected_revenue_impact == pytest.approx((expected - 3) * 0.25 * 10000, rel=0.05)
    assert report.insights[0].expected_revenue_impact >= report.insights[-1].expected_revenue_impact


def test_no_insight_when_reps_differ_only_slightly() -> None:
    crm = prospecting_crm({"R1": 30, "R2": 28, "R3": 31, "R4": 29, "R5": 30, "R6": 32})
    report = insights(prepare(crm, DEFAULT_PIPELINE, AS_OF), OCTOBER)
    assert [i for i in report.insights if i.audience == "rep"] == []
    assert report.tested > 0


def test_small_samples_are_not_judged() -> None:
    crm = prospecting_crm({"R1": 5, "R2": 5, "R3": 0}, leads_per_rep=12)
    report = insights(prepare(crm, DEFAULT_PIPELINE, AS_OF), OCTOBER)
    assert [i for i in report.insights if i.rule == "prospecting"] == []


def test_mix_adjustment_accounts_for_harder_leads() -> None:
    """R2 only works the hard source; raw it looks worse, adjusted it is as good as R1."""
    crm = prospecting_crm({"R1": 0, "R2": 0})
    leads = crm["leads"]
    r1, r2 = leads["rep_id"] == "R1", leads["rep_id"] == "R2"
    leads.loc[r2, "source"] = "outbound_email"
    # R1: cold_call leads convert 40%, outbound_email 10%; R2 (all outbound_email) 10%
    r1_cold = leads.index[r1 & (leads["source"] == "cold_call")][:30]
    r1_mail = leads.index[r1 & (leads["source"] == "outbound_email")][:7]
    r2_mail = leads.index[r2][:15]
    for idx in (*r1_cold, *r1_mail, *r2_mail):
        leads.loc[idx, "converted_at"] = leads.loc[idx, "created_at"] + pd.Timedelta(days=3)
    table = adjusted(prepare(crm, DEFAULT_PIPELINE, AS_OF), OCTOBER, "rep")
    row = table[(table["metric"] == "cold_call_conversion") & (table["rep"] == "R2")].iloc[0]
    assert row["rate"] == 15 / 150 and row["others_rate"] == 37 / 150
    assert row["expected_rate"] < 0.15  # on R2's mix, R1 converts about 10%, not 25%
    assert row["ratio_lo"] < 1 < row["ratio_hi"] and row["adjusted_for"] == "source, company_size, region"


def test_a_rep_whose_id_is_the_name_is_not_named_twice() -> None:
    from forecast.tracking.insights import _Context

    ctx = _Context.__new__(_Context)
    ctx.names = {"Moses Frase": "Moses Frase", "r7": "Ana Ruiz", "r8": "(none)"}
    assert ctx.who("Moses Frase") == "rep Moses Frase"
    assert ctx.who("r7") == "rep r7 (Ana Ruiz)"
    assert ctx.who("r8") == "rep r8" and ctx.who("r9") == "rep r9"
