"""Tests of the simulator's world knobs and presets: each knob does what it says (fixed seeds)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import Simulation, SimulationConfig, simulate_crm
from forecast.data.simulation.worlds import ALT_STAGE_NAMES, WORLDS, World, load_world, stage_pipeline

N = 6_000


def _sim(**knobs: object) -> Simulation:
    return simulate_crm(SimulationConfig(n_leads=N, seed=11, months=24, **knobs))  # type: ignore[arg-type]


def _eventual_win_rate(sim: Simulation) -> float:
    return float((sim.truth["truth_opportunities"]["eventual_outcome"] == "won").mean())


def test_default_world_is_the_default_config() -> None:
    assert WORLDS["default"].to_config() == SimulationConfig()
    assert SimulationConfig().world_knobs() == {}


@pytest.mark.parametrize("target", [0.10, 0.60])
def test_win_rate_hits_its_target(target: float) -> None:
    sim = _sim(win_rate=target)
    opps = sim.tables["opportunities"]
    closed = opps[opps["outcome"] != "open"]
    assert len(closed) > 500
    assert abs(_eventual_win_rate(sim) - target) <= 0.03
    assert abs(float((closed["outcome"] == "won").mean()) - target) <= 0.04
    assert "win_shift_calibrated" in sim.params["config"]
    # The ground truth moves with it: the best achievable probability stays calibrated.
    truth = sim.truth["truth_opportunities"]
    assert abs(float(truth["p_win_observable"].mean()) - target) <= 0.03


def _median_cycle(sim: Simulation) -> float:
    truth = sim.truth["truth_opportunities"]
    won = truth["eventual_outcome"] == "won"
    created = sim.tables["opportunities"]["created_at"]
    return float((pd.to_datetime(truth.loc[won, "eventual_closed_at"]) - created[won]).dt.days.median())


@pytest.mark.parametrize("days", [20.0, 200.0])
def test_cycle_days_sets_the_median_cycle_of_won_deals(days: float) -> None:
    measured = _median_cycle(_sim(cycle_days=days))
    assert abs(measured - days) <= 0.15 * days, measured


def test_win_drift_shows_in_the_win_rate_by_half_year() -> None:
    falling, flat = _sim(win_drift=-1.0), _sim()

    def by_half(sim: Simulation) -> np.ndarray:
        created = sim.tables["opportunities"]["created_at"]
        half = created.dt.year * 2 + (created.dt.month > 6)
        won = sim.truth["truth_opportunities"]["eventual_outcome"].eq("won")
        return won.groupby(half.to_numpy()).mean().to_numpy()

    drift, base = by_half(falling), by_half(flat)
    assert drift[0] - drift[-1] >= 0.10, drift  # one logit point per year over two years
    assert abs(base[0] - base[-1]) <= 0.06, base
    assert np.all(np.diff(drift) < 0.03), drift  # falls half-year after half-year (up to noise)


def test_rep_turnover_reps_leave_and_others_join() -> None:
    default, churned = _sim(), _sim(rep_turnover=0.3)
    start = pd.Timestamp("2024-01-01")

    def counts(sim: Simulation) -> tuple[int, int]:
        reps = sim.tables["reps"]
        return int((~reps["active"].astype(bool)).sum()), int((reps["hired_at"] >= start).sum())

    left0, _ = counts(default)
    left, joined = counts(churned)
    n = len(churned.tables["reps"])
    assert left >= 0.15 * n and joined >= 0.15 * n, (left, joined, n)
    assert left > left0
    # Leavers log nothing after leaving; joiners nothing before joining.
    leaving = {rid: pd.Timestamp(p["left_at"]) for rid, p in churned.params["reps"].items() if p["left_at"]}
    acts = churned.tables["activities"]
    late = acts["rep_id"].map(leaving) < acts["occurred_at"] - pd.Timedelta(days=1)
    assert not late.any()
    hired = churned.tables["reps"].set_index("rep_id")["hired_at"]
    leads = churned.tables["leads"]
    assert (leads["created_at"] >= leads["rep_id"].map(hired)).all()


def test_turnover_shows_in_a_short_history() -> None:
    sim = simulate_crm(SimulationConfig(n_leads=3_000, seed=5, months=6, rep_turnover=0.3))
    assert (~sim.tables["reps"]["active"].astype(bool)).sum() >= 1


@pytest.mark.parametrize("n_open", [3, 8])
def test_generated_pipelines_have_other_names_and_are_used(n_open: int) -> None:
    pipeline = stage_pipeline(n_open)
    assert len(pipeline.open_stages) == n_open
    assert not set(pipeline.names) & set(DEFAULT_PIPELINE.names)
    assert set(pipeline.open_stages) <= set(ALT_STAGE_NAMES)
    sim = simulate_crm(SimulationConfig(n_leads=3_000, seed=3, months=12, pipeline=pipeline))
    assert set(sim.tables["stage_history"]["stage"]) <= set(pipeline.names)
    assert set(sim.tables["stage_history"]["stage"]) >= set(pipeline.open_stages)


def test_presets_and_world_files(tmp_path: Path) -> None:
    assert {"history-3m", "history-36m", "stages-3", "stages-8", "win-10", "win-60"} <= set(WORLDS)
    assert {"cycle-20", "cycle-200", "drift", "turnover"} <= set(WORLDS)
    assert load_world("history-3m").to_config().months == 3
    # The volume per month stays the same when the history grows (a future to evaluate on).
    world = load_world("history-6m")
    assert world.to_config(extra_months=6).n_leads == 2 * world.to_config().n_leads
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"months": 9, "stages": ["a", "b"], "win_rate": 0.2}), encoding="utf-8")
    mine = load_world(path)
    assert mine.name == "mine" and mine.pipeline().open_stages == ["a", "b"]
    yaml_path = tmp_path / "w.yaml"
    yaml_path.write_text("months: 3\ncycle_days: 30\nrep_turnover: 0.2\n", encoding="utf-8")
    assert load_world(yaml_path).to_config().cycle_days == 30.0
    with pytest.raises(ValueError, match="unknown world"):
        load_world("no-such-world")
    with pytest.raises(ValueError):
        World(stages=9)
    with pytest.raises(ValueError):
        World.model_validate({"months": 3, "typo": 1})


def test_world_knobs_are_deterministic_and_recorded() -> None:
    config = SimulationConfig(
        n_leads=2_000, seed=2, win_rate=0.2, win_drift=0.5, cycle_days=90.0, rep_turnover=0.2
    )
    a, b = simulate_crm(config), simulate_crm(config)
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name])
    recorded = a.params["config"]
    assert recorded["win_rate"] == 0.2 and recorded["cycle_days"] == 90.0 and recorded["rep_turnover"] == 0.2
    assert "cycle_scale" in recorded


def test_a_long_quarter_end_push_moves_wins_into_the_third_month() -> None:
    """``quarter_push_days`` longer than a month holds wins of the quarter's first two months to its
    end; the default push (21 days) stays within the third month."""
    with pytest.raises(ValueError, match="quarter_push_days"):
        SimulationConfig(quarter_push_days=120.0)
    world = load_world("quarter-end")
    assert world.quarter_push_days == 75.0 and world.to_config().world_knobs() == {"quarter_push_days": 75.0}

    def third_month_share(config: SimulationConfig) -> float:
        opps = simulate_crm(config).tables["opportunities"]
        won = pd.to_datetime(opps.loc[opps["outcome"] == "won", "closed_at"])
        return float(((won.dt.month - 1) % 3 == 2).mean())

    base = SimulationConfig(n_leads=4_000, seed=5, months=12)
    assert third_month_share(base) < 0.42  # about a third
    assert third_month_share(dataclasses.replace(base, quarter_push_days=75.0)) > 0.5
