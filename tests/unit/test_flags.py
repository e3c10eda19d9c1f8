"""Unit tests of the flags: rules and evidence, learned silence, actions, backtest metrics, config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.flags.actions import ACTIONS
from forecast.flags.backtest import confusion_metrics, top_k
from forecast.flags.config import FlagsConfig, GoingCold
from forecast.flags.rules import FLAG_ORDER, Availability, evaluate_flags, skipped_flags, summarise
from forecast.flags.silence import expected_silence, fit_silence
from tests.conftest import REPO

AS_OF = pd.Timestamp("2025-06-01")


def _deals() -> pd.DataFrame:
    """Three open deals: a cold and troubled one, a healthy one, a silent one with a booked step."""
    return pd.DataFrame(
        {
            "opportunity_id": ["cold", "fine", "booked"],
            "as_of": AS_OF,
            "act_days_since_last_touch": [23.0, 1.0, 30.0],
            "act_next_action_scheduled": [False, True, True],
            "stage": ["negotiation", "proposal", "proposal"],
            "days_in_stage": [41.0, 3.0, 5.0],
            "days_to_expected_close": [-12.0, 20.0, 5.0],
            "n_close_date_pushes": [3.0, 0.0, 1.0],
            "n_amount_decreases": [1.0, 0.0, 0.0],
            "amount": [18000.0, 5000.0, 7000.0],
            "amount_change_ratio": [0.8, 1.0, 1.0],
        }
    )


def _signals(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "outbound_since_answer": [5.0, 0.0, 1.0][:n],
            "days_since_answer": [20.0, 1.0, np.nan][:n],
            "stage_limit_days": [28.0, 15.0, 15.0][:n],
            "stage_spells": [512.0, 300.0, 300.0][:n],
            "gap_q50": [6.0, 3.0, 3.0][:n],
            "gap_q_hi": [12.0, 8.0, 8.0][:n],
            "gap_n": [140.0, 300.0, 300.0][:n],
            "group": ["stage+segment+cadence", "stage", "stage"][:n],
            "cadence": ["fast", None, None][:n],
            "segment": ["Enterprise", "Starter", "Starter"][:n],
            "p_churn": [0.72, 0.1, 0.3][:n],
            "churn_reason": ["no contact for 23 days", None, None][:n],
        }
    )


def test_every_rule_fires_with_its_numbers_in_words() -> None:
    flags = evaluate_flags(_deals(), _signals(), "opportunity", FlagsConfig())
    cold = flags[flags["row"] == 0].set_index("flag")
    assert list(cold.index) == [
        "churn_risk",
        "going_cold",
        "ghosted",
        "no_activity",
        "close_overdue",
        "stalled_in_stage",
        "close_date_pushed",
        "amount_decreased",
        "no_next_step",
    ]
    assert cold.loc["going_cold", "evidence"] == (
        "no contact for 23 days and no next step booked; similar deals in negotiation (Enterprise, "
        "fast-cadence rep) are usually touched every 6 days (90th pct 12 days, from 140 gaps)"
    )
    assert cold.loc["stalled_in_stage", "evidence"] == (
        "41 days in negotiation; 90% of deals leave it within 28 days (from 512 past stays)"
    )
    assert cold.loc["close_overdue", "evidence"].startswith(
        "expected close date passed 12 days ago (2025-05-20)"
    )
    assert cold.loc["ghosted", "evidence"].startswith(
        "5 outbound touches without an answer since the last one 20 days"
    )
    assert cold.loc["close_date_pushed", "evidence"] == "expected close date pushed later 3 times"
    assert (
        cold.loc["amount_decreased", "evidence"] == "amount cut 1 time, now 80% of its first value (18,000)"
    )
    assert (
        "72%" in cold.loc["churn_risk", "evidence"]
        and "no contact for 23 days" in cold.loc["churn_risk", "evidence"]
    )
    assert (cold["suggested_action"].str.len() > 20).all() and cold["decision"].notna().all()
    # the healthy deal carries nothing; a booked next step stops "going cold" but not "no activity"
    assert (flags["row"] == 1).sum() == 0
    booked = set(flags.loc[flags["row"] == 2, "flag"])
    assert "going_cold" not in booked and "no_activity" in booked


def test_thresholds_come_from_the_config() -> None:
    cfg = FlagsConfig.model_validate(
        {
            "rules": {"no_activity": {"days": 40}, "ghosted": {"outbound_touches": 6}},
            "churn_risk": {"threshold": 0.8},
        }
    )
    flags = evaluate_flags(_deals(), _signals(), "opportunity", cfg)
    assert not {"no_activity", "ghosted", "churn_risk"} & set(flags["flag"])
    off = FlagsConfig.model_validate({"going_cold": {"enabled": False}})
    assert "going_cold" not in set(evaluate_flags(_deals(), _signals(), "opportunity", off)["flag"])


def test_flags_needing_missing_data_are_skipped_not_guessed() -> None:
    maven = Availability(activities=False, stage_history=False, close_dates=False)
    flags = evaluate_flags(_deals(), _signals(), "opportunity", FlagsConfig(), maven)
    assert set(flags["flag"]) == {"churn_risk"}
    skipped = skipped_flags("opportunity", FlagsConfig(), maven)
    assert skipped["going_cold"] == "the source records no activities"
    assert skipped["close_overdue"] == "the source records no expected close dates"
    assert skipped["stalled_in_stage"] == "the source records no stage history"


def test_summary_picks_the_most_severe_flag() -> None:
    cfg = FlagsConfig()
    flags = evaluate_flags(_deals(), _signals(), "opportunity", cfg)
    summary = summarise(flags, 3, cfg)
    assert summary.loc[0, "top_flag"] == "churn_risk" and summary.loc[0, "severity"] == "high"
    assert bool(summary.loc[0, "at_risk"]) and summary.loc[0, "n_flags"] == 9
    assert summary.loc[1, "flags"] == "" and not summary.loc[1, "at_risk"]
    assert summary.loc[2, "top_flag"] == "no_activity" and not summary.loc[2, "at_risk"]  # medium only


def test_every_flag_has_an_action_from_the_brief() -> None:
    assert set(ACTIONS) == set(FLAG_ORDER)
    decisions = (
        (REPO.parent / "shared" / "DESIGN.md").read_text(encoding="utf-8")
        if (REPO.parent / "shared" / "DESIGN.md").is_file()
        else ""
    )
    for flag, action in ACTIONS.items():
        assert action.text.endswith("."), flag
        for part in action.decision.split(";"):
            phrase = part.strip().split(" -> ")[0]
            if decisions:
                assert phrase.split(":")[0] in decisions.lower() or phrase in decisions, (flag, phrase)


def _gaps() -> pd.DataFrame:
    """Gaps of two reps: R1 touches every ~2 days, R2 every ~10; one stage; a late outlier gap."""
    rng = np.random.default_rng(0)
    n = 400
    rep = np.where(np.arange(n) % 2 == 0, "R1", "R2")
    gap = np.where(rep == "R1", rng.exponential(2.0, n), rng.exponential(10.0, n))
    ended = AS_OF - pd.to_timedelta(rng.uniform(1, 300, n), unit="D")
    frame = pd.DataFrame(
        {
            "entity_id": [f"D{i % 40}" for i in range(n)],
            "rep_id": rep,
            "segment": "Pro",
            "stage": "proposal",
            "ended_at": ended,
            "gap_days": gap,
        }
    )
    future = frame.iloc[:50].assign(ended_at=AS_OF + pd.Timedelta(days=3), gap_days=500.0)
    return pd.concat([frame, future], ignore_index=True)


def test_learned_silence_depends_on_rep_cadence_and_ignores_the_future() -> None:
    cfg = GoingCold(cadence_bands=2, min_rep_gaps=20, own_cadence=False)
    model = fit_silence(_gaps(), AS_OF, cfg, with_stage=True)
    assert model.tables[0]["n"].iloc[0] == 400  # the gaps ended after as_of are not used
    rows = pd.DataFrame({"rep_id": ["R1", "R2", "R9"], "segment": "Pro", "stage": "proposal"})
    got = expected_silence(model, rows)
    assert got.loc[0, "cadence"] == "fast" and got.loc[1, "cadence"] == "slow"
    assert got.loc[0, "gap_q_hi"] < got.loc[1, "gap_q_hi"]
    assert got.loc[2, "group"] == "stage"  # unknown rep: the coarser group
    assert 3.0 < got.loc[0, "gap_q_hi"] < 8.0  # exponential(2) p90 = 4.6, shrunk towards the stage's


def test_shrinkage_pulls_small_groups_towards_their_parent() -> None:
    gaps = _gaps().iloc[:400]
    small = gaps.iloc[:6].assign(segment="Rare", gap_days=100.0)
    model = fit_silence(
        pd.concat([gaps, small], ignore_index=True), AS_OF, GoingCold(shrinkage=30, own_cadence=False), True
    )
    rows = pd.DataFrame({"rep_id": ["R1"], "segment": ["Rare"], "stage": ["proposal"]})
    q = expected_silence(model, rows).loc[0, "gap_q_hi"]
    assert q < 40  # six gaps of 100 days do not make the rule: shrunk towards the R1 estimate


def test_confusion_metrics_and_top_k() -> None:
    y = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0, 0], dtype=bool)
    flagged = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 0], dtype=bool)
    m = confusion_metrics(flagged, y)
    assert m["precision"] == 0.5 and m["recall"] == pytest.approx(1 / 3)
    assert m["f1"] == pytest.approx(0.4) and m["lift"] == pytest.approx(0.5 / 0.3)
    assert m["flag_rate"] == 0.2
    mask = top_k(np.array([3.0, np.nan, 5.0, 5.0, 1.0]), 2)
    assert mask.tolist() == [False, False, True, True, False]


def test_the_repository_flags_config_loads() -> None:
    cfg = FlagsConfig.from_yaml(REPO / "training" / "flags.yaml")
    assert cfg.horizon_days == 30 and cfg.rules.no_activity.days == 14
    with pytest.raises(ValueError, match="outbound"):
        FlagsConfig.model_validate({"rules": {"ghosted": {"outbound": 3}}})


def test_a_record_silent_past_every_usual_gap_is_dormant_not_going_cold() -> None:
    """Issue 17: leads untouched for 730 days led the at-risk list; they are a clean-up hint now."""
    deals = _deals().assign(act_days_since_last_touch=[23.0, 1.0, 730.0], act_next_action_scheduled=False)
    signals = _signals().assign(gap_dormant=90.0)
    flags = evaluate_flags(deals, signals, "opportunity", FlagsConfig())
    stale = flags[flags["row"] == 2].set_index("flag")
    assert "dormant" in stale.index and "going_cold" not in stale.index
    assert not {"no_activity", "no_next_step"} & set(stale.index)  # one hint, not one per rule of silence
    assert stale.loc["dormant", "severity"] == "low"
    assert stale.loc["dormant", "evidence"] == (
        "no contact for 730 days: 99% of the gaps between touches of all deals in the last 365 days "
        "were shorter than 90 days; dormant rather than going cold"
    )
    assert "nurture" in stale.loc["dormant", "suggested_action"]
    # 23 days is cold, not dormant; without a learned dormant limit nothing is dormant
    assert "going_cold" in set(flags.loc[flags["row"] == 0, "flag"])
    unknown = evaluate_flags(deals, _signals(), "opportunity", FlagsConfig())
    assert "dormant" not in set(unknown["flag"]) and "going_cold" in set(
        unknown.loc[unknown["row"] == 2, "flag"]
    )


def test_the_dormant_limit_is_a_high_quantile_of_every_past_gap() -> None:
    model = fit_silence(_gaps(), AS_OF, GoingCold(dormant_quantile=0.99, own_cadence=False), with_stage=True)
    gaps = _gaps()
    window = gaps[gaps["ended_at"] < AS_OF]["gap_days"]
    assert model.dormant_days == pytest.approx(float(window.quantile(0.99)))
    rows = pd.DataFrame({"rep_id": ["R1"], "segment": "Pro", "stage": "proposal"})
    assert expected_silence(model, rows).loc[0, "gap_dormant"] == pytest.approx(model.dormant_days)
    assert FlagsConfig().severity_of("dormant") == "low"


def test_one_rule_per_flag_in_flag_order() -> None:
    from forecast.flags.rules import RULES

    assert list(RULES) == FLAG_ORDER
