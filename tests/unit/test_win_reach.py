"""p_win past a label horizon that half the history caps (``snapshots.tail_follow_up``, ``p_win_days``).

A CRM whose deals take 200 days, with a year of history: the label "won within H" stops at half the
history, and the served p_win adds the wins the hazard (or the stage incidence) expects after H.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.features.horizon import cycle_quantile, follow_up_quantile, tail_horizon
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.models.stage_incidence import StageWinIncidence
from forecast.models.win_blend import HazardBlendedClassifier
from forecast.models.win_horizon import p_win_days, read_days, read_proba
from forecast.scoring import fastpath
from forecast.training.binary import TrainResult, train_binary, train_stage_incidence
from forecast.training.datasets import resolve_horizon, snapshot_table, table_input
from forecast.training.inputs import ModelInput
from tests.conftest import REPO

WIN = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")


Facts = tuple[float | None, float | None]
"""The follow-up a tenth of the snapshots reach and the cycle's 95th percentile (days)."""


def _snapshots(name: str, leads_per_month: float, seed: int) -> tuple[ModelInput, TrainingConfig, Facts]:
    """A world's deal snapshots with the config's horizons resolved, and (reach, cycle) of its CRM."""
    world = load_world(name).model_copy(update={"leads_per_month": leads_per_month, "seed": seed})
    sim = simulate_crm(world.to_config())
    with frames_source(sim.tables, world.pipeline()) as src:
        end = src.data_end()
        config = resolve_horizon(src, WIN)
        h = config.snapshots.horizon_days
        table = snapshot_table(src, config, LabelConfig(h, h), data_end=end)
        reach = follow_up_quantile(src, float(WIN.snapshots.tail_follow_up or 0.1), end)
        cycle = cycle_quantile(src, 0.95, end)
    return table_input(table, config.label), config, (reach, cycle)


@pytest.fixture(scope="module")
def long_cycle() -> tuple[ModelInput, TrainingConfig, Facts]:
    return _snapshots("cycle-200", 350.0, 5)


@pytest.fixture(scope="module")
def trained(long_cycle: tuple[ModelInput, TrainingConfig, Facts]) -> TrainResult:
    data, config, _ = long_cycle
    return train_binary(data, config)


def test_a_capped_label_gets_a_p_win_that_reaches_the_cycle_within_the_follow_up(
    long_cycle: tuple[ModelInput, TrainingConfig, Facts],
) -> None:
    _, config, (reach, cycle) = long_cycle
    h, far = config.snapshots.horizon_days, config.snapshots.p_win_days
    assert far is not None and far > h, "200-day cycles on a year of history: the label is capped"
    assert far % 7 == 0 and far <= 7 * (reach // 7)  # whole weeks, where a tenth of the snapshots reach
    assert cycle is None or far <= 7 * -(-cycle // 7)  # and no further than the cycle's quantile
    assert far <= min(WIN.snapshots.horizon_days, WIN.survival.edges[-1])


def test_a_label_that_reaches_the_cycle_is_left_as_it_is() -> None:
    sim = simulate_crm(load_world("cycle-20").model_copy(update={"leads_per_month": 150.0}).to_config())
    with frames_source(sim.tables, load_world("cycle-20").pipeline()) as src:
        config = resolve_horizon(src, WIN)
        h = config.snapshots.horizon_days
        assert config.snapshots.p_win_days is None
        assert tail_horizon(src, 0.95, h, 365, 0.1) == h
        # without the option the horizon is the label's whatever the cycle
        off = WIN.model_copy(update={"snapshots": WIN.snapshots.model_copy(update={"tail_follow_up": None})})
        assert resolve_horizon(src, off).snapshots.p_win_days is None


def test_the_served_model_adds_the_hazard_s_wins_after_the_label_horizon(
    trained: TrainResult, long_cycle: tuple[ModelInput, TrainingConfig, Facts]
) -> None:
    data, config, _ = long_cycle
    model = trained.pipeline.steps[-1][1]
    assert isinstance(model, HazardBlendedClassifier)
    h, far = float(config.snapshots.horizon_days), float(config.snapshots.p_win_days or 0)
    assert model.hazard_days_ == h and model.p_win_days_ == far
    assert p_win_days(trained.pipeline, h) == far
    x = data.frame[data.features].iloc[::5]
    prepared = trained.pipeline[:-1].transform(x)
    within = model.win_within(prepared)
    at_far = np.clip(model.hazard_.win_within(prepared, far), 0.0, 1.0)
    tail = model.tail(prepared, within)
    assert tail is not None and (tail >= 0).all() and tail.mean() > 0.01
    assert np.allclose(tail, np.maximum(at_far - within, 0.0), atol=0)
    classifier = model.classifier_proba(prepared)[:, 1]
    w = np.where(model._alone_rows(prepared), 0.0, model.hazard_weight_)
    expected = np.clip((1 - w) * classifier + w * within + tail, 0.0, 1.0)
    served = trained.pipeline.predict_proba(x)[:, 1]
    assert np.allclose(served, expected, atol=1e-12)
    # the evaluation model (labels at H) has no tail: the card's test metrics are at the label's horizon
    assert trained.eval_pipeline is not None
    assert p_win_days(trained.eval_pipeline, h) == h
    note = trained.fit["win_blend"]["p_win_days"]
    assert note["days"] == far and note["mean_added_on_test_slice"] > 0
    assert any(f"p_win reaches {far:g} days" in n for n in trained.notes)
    assert trained.params["p_win_days"] == far


def test_the_array_path_and_a_pickled_copy_add_the_same_tail(
    trained: TrainResult, long_cycle: tuple[ModelInput, TrainingConfig, Facts]
) -> None:
    data = long_cycle[0]
    x = data.frame[data.features].iloc[::3]
    expected = trained.pipeline.predict_proba(x)
    fast = fastpath.coded(trained.pipeline)
    assert fast is not None
    assert np.array_equal(fast.predict_proba(fast.encode(x)), expected)
    proba, _ = fast.proba_and_contributions(fast.encode(x))
    assert np.array_equal(proba, expected)
    assert np.array_equal(pickle.loads(pickle.dumps(trained.pipeline)).predict_proba(x), expected)


def test_a_model_without_a_reach_says_the_label_s_horizon() -> None:
    assert p_win_days(object(), 91) == 91.0
    blend = HazardBlendedClassifier.__new__(HazardBlendedClassifier)  # pickled before the reach existed
    assert blend.p_win_days_ is None and p_win_days(blend, 91) == 91.0
    assert p_win_days(CalibratedLGBMClassifier(), 42) == 42.0


def test_the_stage_floor_is_read_at_the_reach_and_judged_at_the_label_horizon(
    long_cycle: tuple[ModelInput, TrainingConfig, Facts],
) -> None:
    data, config, _ = long_cycle
    h, far = float(config.snapshots.horizon_days), float(config.snapshots.p_win_days or 0)
    result = train_stage_incidence(data, config, reason="a test")
    served, judged = result.pipeline.steps[-1][1], result.eval_pipeline.steps[-1][1]  # type: ignore[union-attr]
    assert isinstance(served, StageWinIncidence) and isinstance(judged, StageWinIncidence)
    assert served.horizon_days == far and judged.horizon_days == h
    # past the follow-up the served p_win is carried on to the cycle's aim (snapshots.tail_extrapolate);
    # the revenue forecast reads it at the reach
    tail = float(config.snapshots.p_win_tail_days or 0)
    assert tail > far and served.tail_days == tail and judged.tail_days is None
    assert p_win_days(result.pipeline, h) == tail and read_days(result.pipeline, h) == far
    assert result.params["p_win_tail_days"] == tail
    assert any(f"carried on from {far:g} to {tail:g} days" in n for n in result.notes)
    x = data.frame[data.features]
    assert result.pipeline.predict_proba(x)[:, 1].mean() > result.eval_pipeline.predict_proba(x)[:, 1].mean()  # type: ignore[union-attr]
    assert result.params["p_win_days"] == far
    assert any(f"read at {far:g} days" in n for n in result.notes)


def _result_with(splits: dict[str, object]) -> TrainResult:
    result = TrainResult.__new__(TrainResult)
    result.splits = splits
    return result


def test_a_learned_model_judged_without_any_purge_gap_does_not_serve_over_the_stage_table() -> None:
    from forecast.training.binary import _not_judged_on_a_future

    shortened = {"method": "time", "gap_days": 0.0, "note": "the history is too short for a 49-day purge gap"}
    assert "no purge gap could be kept" in (_not_judged_on_a_future(_result_with(shortened)) or "")
    assert _not_judged_on_a_future(_result_with({"method": "entity_random", "note": "n"})) is not None
    # a gap shortened but kept, or none configured, still judges the learned model
    assert _not_judged_on_a_future(_result_with({**shortened, "gap_days": 22.75})) is None
    assert _not_judged_on_a_future(_result_with({"method": "time", "gap_days": 0.0})) is None


def test_three_months_of_history_get_the_stage_model_when_no_purge_gap_fits() -> None:
    data, config, _ = _snapshots("history-3m", 1000.0, 7)
    result = train_binary(data, config)
    assert result.model_kind == "stage_incidence_small_data"
    assert any("no purge gap could be kept" in n for n in result.notes)


def test_the_shock_evidence_spreads_the_evaluation_model_s_p_win_over_its_label_horizon(
    trained: TrainResult, long_cycle: tuple[ModelInput, TrainingConfig, Facts]
) -> None:
    from forecast.revenue.engine import DealModels, HeldOutModels, _cut_scorer

    _, config, _ = long_cycle
    h, far = float(config.snapshots.horizon_days), float(config.snapshots.p_win_days or 0)
    assert trained.eval_pipeline is not None
    held = HeldOutModels(trained.eval_pipeline, trained.eval_pipeline, None)
    served = DealModels(trained.pipeline, trained.pipeline, [0.0, 365.0], far, {}, held, label_days=h)
    scorer, _ = _cut_scorer(served, [])
    assert served.horizon_days == far and scorer.horizon_days == h
    # without a label horizon given (older callers) the served horizon is kept
    older = DealModels(trained.pipeline, trained.pipeline, [0.0, 365.0], far, {}, held)
    assert _cut_scorer(older, [])[0].horizon_days == far


def test_the_served_stage_model_weighs_in_its_tail_chained_through_the_stages_moves_unless_told_not_to(
    long_cycle: tuple[ModelInput, TrainingConfig, Facts],
) -> None:
    data, config, _ = long_cycle
    chained = train_stage_incidence(data, config, reason="a test")
    snapshots = config.snapshots.model_copy(update={"tail_chain_weight": 0.0})
    alone = train_stage_incidence(data, config.model_copy(update={"snapshots": snapshots}), reason="a test")
    served, own = chained.pipeline.steps[-1][1], alone.pipeline.steps[-1][1]
    assert isinstance(served, StageWinIncidence) and isinstance(own, StageWinIncidence)
    assert served.chained_ and not own.chained_
    assert any("0.5 for each stage's eventual win chained through" in n for n in chained.notes)
    assert not any("chained through" in n for n in alone.notes)
    assert chained.params["p_win_tail_chain_weight"] == 0.5 and "p_win_tail_chain_weight" not in alone.params
    # the same incidence read; only the carried-on part differs, and the evaluation model has none
    assert served.rates_ == own.rates_ and served.tail_share_ != own.tail_share_
    # the earliest stage (the lowest read), whose wins come after its moves, gains most: measured
    # 0.368 against 0.273 for its own tail (the later stages 0.01-0.06)
    first = min(served.rates_, key=served.rates_.__getitem__)
    gain = {k: float(served.carried(r, k) - own.carried(r, k)) for k, r in served.rates_.items()}
    assert gain[first] >= 0.05 and gain[first] == max(gain.values()), gain
    x = data.frame[data.features]
    assert np.array_equal(read_proba(chained.pipeline, x), read_proba(alone.pipeline, x))
    assert np.array_equal(
        chained.eval_pipeline.predict_proba(x),
        alone.eval_pipeline.predict_proba(x),  # type: ignore[union-attr]
    )
