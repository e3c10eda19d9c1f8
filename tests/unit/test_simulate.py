"""Tests of the CRM simulator: schema, integrity, time, plausibility, truth and determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE, MAVEN_PIPELINE
from forecast.data.schema import TABLES, pandera_schema
from forecast.data.simulate import Simulation, SimulationConfig, simulate_crm

# Plausibility ranges at the default configuration (documented in docs/simulator.md).
RANGES = {
    "lead_conversion": (0.10, 0.30),
    "win_rate": (0.20, 0.40),
    "median_cycle_days_won": (30.0, 120.0),
    "activities_per_lead": (3.0, 40.0),
    "email_reply_rate": (0.05, 0.25),
    "open_deal_share": (0.01, 0.30),
}


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate_crm(SimulationConfig())


@pytest.fixture(scope="module")
def small() -> Simulation:
    return simulate_crm(SimulationConfig(n_leads=5_000, seed=7))


def _measures(s: Simulation) -> dict[str, float]:
    leads, opps, acts = s.tables["leads"], s.tables["opportunities"], s.tables["activities"]
    mature = leads["created_at"] < s.end - pd.Timedelta(days=180)
    closed = opps[opps["outcome"] != "open"]
    won = opps[opps["outcome"] == "won"]
    emails = acts[(acts["type"] == "email") & (acts["direction"] == "outbound")]
    return {
        "lead_conversion": float(leads.loc[mature, "converted_at"].notna().mean()),
        "win_rate": float((closed["outcome"] == "won").mean()),
        "median_cycle_days_won": float(((won["closed_at"] - won["created_at"]).dt.days).median()),
        "activities_per_lead": len(acts) / len(leads),
        "email_reply_rate": float(emails["email_replied"].astype(float).mean()),
        "open_deal_share": float((opps["outcome"] == "open").mean()),
    }


# --- schema and keys -------------------------------------------------------------------------------


def test_tables_match_canonical_schema(sim: Simulation) -> None:
    assert set(sim.tables) == set(TABLES)
    for name, spec in TABLES.items():
        frame = sim.tables[name]
        assert list(frame.columns) == spec.column_names, name
        assert len(frame) > 0, name
        pandera_schema(spec, DEFAULT_PIPELINE.names).validate(frame)


def test_primary_keys_unique_with_id_formats(sim: Simulation) -> None:
    t = sim.tables
    patterns = {
        ("reps", "rep_id"): r"R\d{3}",
        ("accounts", "account_id"): r"A\d{6}",
        ("leads", "lead_id"): r"L\d{7}",
        ("opportunities", "opportunity_id"): r"O\d{7}",
        ("activities", "activity_id"): r"ACT\d{8}",
        ("engagement_events", "event_id"): r"EV\d{8}",
    }
    for (table, col), pattern in patterns.items():
        assert t[table][col].is_unique, table
        assert t[table][col].str.fullmatch(pattern).all(), table
    for name, spec in TABLES.items():
        assert not t[name].duplicated(list(spec.key)).any(), name


def test_foreign_keys_resolve(sim: Simulation) -> None:
    t = sim.tables
    for name, spec in TABLES.items():
        for fk in spec.foreign_keys:
            values = t[name][fk.column].dropna()
            target = t[fk.table][TABLES[fk.table].key[0]]
            assert values.isin(target).all(), f"{name}.{fk.column} -> {fk.table}"
    rep_teams = set(t["reps"]["team"])
    quotas = t["quotas"]
    assert set(quotas.loc[quotas.owner_type == "team", "owner_id"]) <= rep_teams
    assert quotas.loc[quotas.owner_type == "rep", "owner_id"].isin(t["reps"]["rep_id"]).all()


def test_lead_opportunity_links_are_consistent(sim: Simulation) -> None:
    leads, opps = sim.tables["leads"], sim.tables["opportunities"]
    linked = leads.dropna(subset=["opportunity_id"]).set_index("opportunity_id")
    assert (linked["status"] == "converted").all()
    assert linked["converted_at"].notna().all()
    joined = opps.set_index("opportunity_id").join(linked, rsuffix="_lead", how="left")
    assert (joined["lead_id"] == joined["lead_id_lead"]).all()
    assert (joined["created_at"] == joined["converted_at"]).all()
    assert (joined["rep_id"] == joined["rep_id_lead"]).all()
    assert (leads["status"] == "converted").sum() == len(opps)


# --- time --------------------------------------------------------------------------------------------


def test_nothing_happens_after_the_end(sim: Simulation) -> None:
    for name, spec in TABLES.items():
        for col in spec.columns:
            if col.kind == "timestamp" and not col.future_ok:
                assert (sim.tables[name][col.name].dropna() <= sim.end).all(), f"{name}.{col.name}"


def test_row_level_time_orders(sim: Simulation) -> None:
    t = sim.tables
    for name, spec in TABLES.items():
        for order in spec.orders:
            frame = t[name].dropna(subset=[order.earlier, order.later])
            assert (frame[order.later] >= frame[order.earlier]).all(), f"{name}: {order}"
    leads = t["leads"]
    assert (leads.loc[leads.status == "new", "status_changed_at"].isna()).all()
    assert leads.loc[leads.status != "new", "status_changed_at"].notna().all()


def test_children_fall_within_their_parents_lifetime(sim: Simulation) -> None:
    t = sim.tables
    opps = t["opportunities"].set_index("opportunity_id")
    life_end = opps["closed_at"].fillna(sim.end)
    hist = t["stage_history"]
    assert (hist["entered_at"].to_numpy() >= opps.loc[hist.opportunity_id, "created_at"].to_numpy()).all()
    assert (hist["entered_at"].to_numpy() <= life_end.loc[hist.opportunity_id].to_numpy()).all()
    acts = t["activities"]
    assert (acts["lead_id"].isna() ^ acts["opportunity_id"].isna()).all()
    on_deal = acts.dropna(subset=["opportunity_id"])
    assert (
        on_deal["occurred_at"].to_numpy() >= opps.loc[on_deal.opportunity_id, "created_at"].to_numpy()
    ).all()
    assert (on_deal["occurred_at"].to_numpy() <= life_end.loc[on_deal.opportunity_id].to_numpy()).all()
    leads = t["leads"].set_index("lead_id")
    on_lead = acts.dropna(subset=["lead_id"])
    assert (on_lead["occurred_at"].to_numpy() >= leads.loc[on_lead.lead_id, "created_at"].to_numpy()).all()
    conv = leads.loc[on_lead.lead_id, "converted_at"].to_numpy()
    assert not (on_lead["occurred_at"].to_numpy() > conv).any()
    ev = t["engagement_events"]
    assert (ev["occurred_at"].to_numpy() >= leads.loc[ev.lead_id, "created_at"].to_numpy()).all()
    reps = t["reps"].set_index("rep_id")
    assert (acts["occurred_at"].to_numpy() >= reps.loc[acts.rep_id, "hired_at"].to_numpy()).all()


def test_stage_history_matches_deal_state(sim: Simulation) -> None:
    opps = sim.tables["opportunities"].set_index("opportunity_id")
    hist = sim.tables["stage_history"].sort_values(["opportunity_id", "entered_at"], kind="stable")
    first = hist.groupby("opportunity_id").first()
    last = hist.groupby("opportunity_id").last()
    assert len(first) == len(opps)
    assert (first["stage"] == DEFAULT_PIPELINE.open_stages[0]).all()
    assert (first["entered_at"] == opps.loc[first.index, "created_at"]).all()
    o = opps.loc[last.index]
    assert (last["stage"] == o["stage"]).all()
    assert (last["amount"] == o["amount"]).all()
    assert (last["expected_close_date"] == o["expected_close_date"]).all()
    closed = o["outcome"] != "open"
    assert (last.loc[closed, "entered_at"] == o.loc[closed, "closed_at"]).all()
    stage_order = hist["stage"].map({s: i for i, s in enumerate(DEFAULT_PIPELINE.names)})
    assert (stage_order.groupby(hist["opportunity_id"]).diff().dropna() > 0).all()


def test_outcome_stage_and_loss_reason_agree(sim: Simulation) -> None:
    o = sim.tables["opportunities"]
    is_open = o["outcome"] == "open"
    assert is_open.any()
    assert o.loc[is_open, "closed_at"].isna().all()
    assert o.loc[is_open, "stage"].isin(DEFAULT_PIPELINE.open_stages).all()
    assert o.loc[is_open, "loss_reason"].isna().all()
    assert (o.loc[o.outcome == "won", "stage"] == "closed_won").all()
    lost = o[o.outcome == "lost"]
    assert (lost["stage"] == "closed_lost").all()
    assert lost["loss_reason"].notna().all()
    assert lost["loss_reason"].nunique() >= 5
    assert o.loc[o.outcome != "lost", "loss_reason"].isna().all()


def test_deals_slip_and_amounts_shrink(sim: Simulation) -> None:
    hist = sim.tables["stage_history"].sort_values(["opportunity_id", "entered_at"], kind="stable")
    g = hist.groupby("opportunity_id")
    slips = (g["expected_close_date"].diff().dt.days > 0).groupby(hist["opportunity_id"]).sum()
    assert (slips >= 1).mean() > 0.2
    assert (slips >= 3).sum() > 0
    assert (g["amount"].diff() < 0).groupby(hist["opportunity_id"]).any().mean() > 0.1


def test_quarter_end_bunching(sim: Simulation) -> None:
    won = sim.tables["opportunities"].query("outcome == 'won'")["closed_at"]
    days_left = ((won + pd.offsets.QuarterEnd(0)).dt.normalize() - won.dt.normalize()).dt.days
    assert (days_left < 7).mean() > 1.5 * 7 / 91


def test_planned_next_actions_reach_past_the_end(sim: Simulation) -> None:
    acts, opps = sim.tables["activities"], sim.tables["opportunities"]
    future = acts[acts["scheduled_for"] > sim.end]
    open_ids = opps.loc[opps.outcome == "open", "opportunity_id"]
    share = open_ids.isin(future["opportunity_id"]).mean()
    assert 0.3 < share < 1.0
    assert (acts["scheduled_for"].dropna() >= acts.loc[acts.scheduled_for.notna(), "occurred_at"]).all()


def test_activity_vocabulary_is_used(sim: Simulation) -> None:
    acts = sim.tables["activities"]
    assert set(acts["type"]) == {"call", "email", "sms", "meeting", "demo", "task"}
    assert set(acts["outcome"]) == {
        "completed",
        "no_answer",
        "voicemail",
        "cancelled",
        "no_show",
        "declined",
        "scheduled",
    }
    assert set(acts["direction"]) == {"inbound", "outbound"}
    calls = acts[(acts.type == "call") & (acts.outcome == "completed")]
    assert 60 < calls["duration_seconds"].median() < 1200
    assert acts.loc[acts.type != "email", "email_opened"].isna().all()
    assert set(sim.tables["engagement_events"]["type"]) == set(
        TABLES["engagement_events"].column("type").allowed or ()
    )


def test_quotas_roll_up_and_cover_the_period(sim: Simulation) -> None:
    q = sim.tables["quotas"]
    reps = q[q.owner_type == "rep"].merge(sim.tables["reps"], left_on="owner_id", right_on="rep_id")
    by_team = reps.groupby(["period_start", "team"])["amount"].sum()
    teams = q[q.owner_type == "team"].set_index(["period_start", "owner_id"])["amount"]
    pd.testing.assert_series_equal(by_team.sort_index(), teams.sort_index(), check_names=False)
    company = q[q.owner_type == "company"].set_index("period_start")["amount"]
    assert np.allclose(q[q.owner_type == "rep"].groupby("period_start")["amount"].sum(), company)
    assert q["period_start"].min() <= pd.Timestamp(SimulationConfig().start)
    assert q["period_end"].max() >= sim.end
    assert (q["amount"] > 0).all()


# --- plausibility -----------------------------------------------------------------------------------


@pytest.mark.parametrize("measure", sorted(RANGES))
def test_plausibility_at_default_size(sim: Simulation, measure: str) -> None:
    lo, hi = RANGES[measure]
    value = _measures(sim)[measure]
    assert lo <= value <= hi, f"{measure}={value:.3f} outside [{lo}, {hi}]"


def test_inbound_leads_convert_better_than_cold_outbound(sim: Simulation) -> None:
    leads = sim.tables["leads"]
    rate = leads.assign(c=leads.converted_at.notna()).groupby("source")["c"].mean()
    inbound = leads.assign(c=leads.converted_at.notna()).groupby("channel")["c"].mean()
    assert inbound["inbound"] > 1.5 * inbound["outbound"]
    assert rate["referral"] > rate["cold_call"] and rate["web_form"] > rate["outbound_email"]


def test_higher_skill_reps_win_more(sim: Simulation) -> None:
    skill = pd.Series({k: v["skill"] for k, v in sim.params["reps"].items()})
    closed = sim.tables["opportunities"].query("outcome != 'open'")
    high = closed["rep_id"].map(skill) > skill.median()
    won = closed["outcome"] == "won"
    assert won[high].mean() > won[~high].mean() + 0.05


def test_more_activity_goes_with_more_wins(sim: Simulation) -> None:
    closed = sim.tables["opportunities"].query("outcome != 'open'")
    acts = sim.tables["activities"].dropna(subset=["opportunity_id"])
    n = closed["opportunity_id"].map(acts.groupby("opportunity_id").size()).fillna(0)
    days = ((closed["closed_at"] - closed["created_at"]).dt.total_seconds() / 86400).clip(lower=1)
    won = (closed["outcome"] == "won").astype(float)
    assert np.corrcoef(n, won)[0, 1] > 0.1
    assert np.corrcoef(n / days, won)[0, 1] > 0.05


def test_going_silent_precedes_losses(sim: Simulation) -> None:
    closed = sim.tables["opportunities"].query("outcome != 'open'").set_index("opportunity_id")
    acts = sim.tables["activities"].dropna(subset=["opportunity_id"])
    last = acts.groupby("opportunity_id")["occurred_at"].max()
    silence = (closed["closed_at"] - last.reindex(closed.index)).dt.days
    assert silence[closed.outcome == "lost"].median() > silence[closed.outcome == "won"].median() + 3


def test_high_intent_leads_ramp_up_web_behaviour(sim: Simulation) -> None:
    ev = sim.tables["engagement_events"]
    leads = sim.tables["leads"].set_index("lead_id")
    per_lead = ev.groupby("lead_id").size().reindex(leads.index, fill_value=0)
    converted = leads["converted_at"].notna()
    assert per_lead[converted].mean() > 1.5 * per_lead[~converted].mean()
    pricing = ev[ev.type == "pricing_page_view"].lead_id
    assert leads.loc[pricing.unique(), "converted_at"].notna().mean() > converted.mean()


# --- truth -----------------------------------------------------------------------------------------


def test_truth_aligns_one_to_one(sim: Simulation) -> None:
    tl, to = sim.truth["truth_leads"], sim.truth["truth_opportunities"]
    assert tl["lead_id"].tolist() == sim.tables["leads"]["lead_id"].tolist()
    assert to["opportunity_id"].tolist() == sim.tables["opportunities"]["opportunity_id"].tolist()
    for frame, cols in (
        (tl, ["true_p_convert", "p_convert_observable"]),
        (to, ["true_p_win", "p_win_observable"]),
    ):
        assert frame[cols].notna().all().all()
        assert ((frame[cols] > 0) & (frame[cols] < 1)).all().all()
    opps = sim.tables["opportunities"]
    closed = opps.outcome != "open"
    assert (to.loc[closed, "eventual_outcome"] == opps.loc[closed, "outcome"]).all()
    converted = sim.tables["leads"]["converted_at"].notna()
    assert tl.loc[converted, "converts_eventually"].all()


def _brier(y: np.ndarray, p: np.ndarray | float) -> float:
    return float(np.mean((y - p) ** 2))


def test_observable_probability_beats_base_rate_and_truth_beats_both(sim: Simulation) -> None:
    tl = sim.truth["truth_leads"]
    y = tl["converts_eventually"].to_numpy(float)
    base, obs, true = _brier(y, y.mean()), _brier(y, tl.p_convert_observable), _brier(y, tl.true_p_convert)
    assert true < obs < base
    assert abs(tl["p_convert_observable"].mean() - y.mean()) < 0.02  # calibrated
    to = sim.truth["truth_opportunities"]
    y = (to["eventual_outcome"] == "won").to_numpy(float)
    base, obs, true = _brier(y, y.mean()), _brier(y, to.p_win_observable), _brier(y, to.true_p_win)
    assert true < obs < base
    assert abs(to["p_win_observable"].mean() - y.mean()) < 0.03


def test_params_are_json_and_complete(sim: Simulation) -> None:
    text = json.dumps(sim.params, sort_keys=True)
    params = json.loads(text)
    assert params["config"]["seed"] == 42
    assert set(params["reps"]) == set(sim.tables["reps"]["rep_id"])
    assert pd.Timestamp(params["end"]) == sim.end == pd.Timestamp("2026-01-01")


# --- determinism and files --------------------------------------------------------------------------


def _digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_same_seed_gives_identical_bytes(tmp_path: Path, fmt: str) -> None:
    cfg = SimulationConfig(n_leads=2_000, seed=11, months=12)
    a = _digests(simulate_crm(cfg).write(tmp_path / "a", fmt))  # type: ignore[arg-type]
    b = _digests(simulate_crm(cfg).write(tmp_path / "b", fmt))  # type: ignore[arg-type]
    assert a == b
    assert len(a) == len(TABLES) + 3
    assert not list((tmp_path / "a").glob(".*tmp"))
    c = _digests(simulate_crm(SimulationConfig(n_leads=2_000, seed=12, months=12)).write(tmp_path / "c", fmt))  # type: ignore[arg-type]
    assert a["leads." + fmt] != c["leads." + fmt]
    assert a["activities." + fmt] != c["activities." + fmt]


def test_written_parquet_round_trips(tmp_path: Path, small: Simulation) -> None:
    small.write(tmp_path)
    for name, frame in small.tables.items():
        back = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, frame, check_dtype=True)


# --- configuration knobs -----------------------------------------------------------------------------


def test_conversion_shift_and_source_mix_drift(small: Simulation) -> None:
    base = small.tables["leads"]["converted_at"].notna().mean()
    shifted = simulate_crm(SimulationConfig(n_leads=5_000, seed=7, conversion_shift=1.0))
    assert shifted.tables["leads"]["converted_at"].notna().mean() > base + 0.05
    outbound = simulate_crm(SimulationConfig(n_leads=3_000, seed=7, source_mix={"cold_call": 1.0}))
    assert set(outbound.tables["leads"]["source"]) == {"cold_call"}
    assert set(outbound.tables["leads"]["channel"]) == {"outbound"}


def test_custom_pipeline_and_rep_count() -> None:
    s = simulate_crm(SimulationConfig(n_leads=3_000, seed=3, pipeline=MAVEN_PIPELINE, n_reps=9))
    assert len(s.tables["reps"]) == 9
    assert set(s.tables["stage_history"]["stage"]) <= set(MAVEN_PIPELINE.names)
    pandera_schema(TABLES["opportunities"], MAVEN_PIPELINE.names).validate(s.tables["opportunities"])


def test_reps_scale_with_leads_in_teams_with_managers(sim: Simulation) -> None:
    reps = sim.tables["reps"]
    assert len(reps) == round(20_000 / 600)
    assert reps.groupby("team")["manager"].nunique().eq(1).all()
    assert 3 <= reps.groupby("team").size().median() <= 8
    assert reps["region"].nunique() == 4
    assert (~reps["active"]).sum() >= 0
    assert (reps["hired_at"] <= sim.end).all()


def test_progress_is_reported() -> None:
    seen: list[tuple[str, float]] = []
    simulate_crm(SimulationConfig(n_leads=500, seed=1), progress=lambda s, f: seen.append((s, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_leads": 0},
        {"months": 0},
        {"n_reps": 0},
        {"source_mix": {"bogus": 1.0}},
        {"stage_median_days": (1.0,)},
    ],
)
def test_invalid_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**kwargs)  # type: ignore[arg-type]
