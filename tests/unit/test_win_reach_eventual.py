"""``snapshots.tail_to: eventual``: p_win counts the wins after the label horizon wherever the data reach.

The label "won within H" stops at the cycle's 95th percentile; the wins after it (about 2 points of
the win rate among weekly snapshots, measured in docs/models.md) are outside every label, so the
option lets the served p_win count them from the win hazard, also where the label is not capped.
"""

from __future__ import annotations

import pytest

from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.features.horizon import follow_up_quantile, tail_horizon
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.training.datasets import resolve_horizon
from tests.conftest import REPO

WIN = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")


def _with(**snapshots: object) -> TrainingConfig:
    return WIN.model_copy(update={"snapshots": WIN.snapshots.model_copy(update=snapshots)})


@pytest.fixture(scope="module")
def short_cycle_sim():  # type: ignore[no-untyped-def]
    world = load_world("cycle-20").model_copy(update={"leads_per_month": 80.0, "seed": 3})
    return simulate_crm(world.to_config()), world.pipeline()


def test_the_default_reaches_no_further_than_a_label_that_covers_the_cycle(short_cycle_sim) -> None:  # type: ignore[no-untyped-def]
    sim, pipeline = short_cycle_sim
    assert WIN.snapshots.tail_to == "cycle"
    with frames_source(sim.tables, pipeline) as src:
        assert resolve_horizon(src, WIN).snapshots.p_win_days is None


def test_eventual_reaches_past_a_label_that_covers_the_cycle_within_the_follow_up(short_cycle_sim) -> None:  # type: ignore[no-untyped-def]
    sim, pipeline = short_cycle_sim
    with frames_source(sim.tables, pipeline) as src:
        end = src.data_end()
        config = resolve_horizon(src, _with(tail_to="eventual"))
        reach = follow_up_quantile(src, float(WIN.snapshots.tail_follow_up or 0.1), end)
        h, far = config.snapshots.horizon_days, config.snapshots.p_win_days
        assert far is not None and far > h, (
            "20-day cycles: the label covers the cycle, the tail still reaches on"
        )
        assert reach is not None and far % 7 == 0 and far <= 7 * (reach // 7)
        assert far <= min(WIN.snapshots.horizon_days, WIN.survival.edges[-1])
        assert tail_horizon(src, 0.95, h, 365, 0.1, eventual=True) == far
        assert tail_horizon(src, 0.95, h, 365, 0.1) == h
        # without a follow-up share there is no tail, whatever tail_to says
        off = resolve_horizon(src, _with(tail_to="eventual", tail_follow_up=None))
        assert off.snapshots.p_win_days is None
