"""The served deal-win probability blended with a competing-risks hazard (issue 15 item 2).

The blend is the classifier's calibrated probability and the hazard's P(won within the label
horizon), weighted (creation snapshots, which the classifier's prior scores alone, keep the
classifier's probability); the array scoring path returns the same numbers; the evaluation's hazard knows
nothing of the test deals or of what happened after the test cut.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.models.survival import survival_at
from forecast.models.win_blend import HazardBlendedClassifier
from forecast.scoring import fastpath
from forecast.scoring.contributions import contributions
from forecast.training import win_blend
from forecast.training.binary import TrainResult, _blend_wins, train_binary
from forecast.training.card import _blend_lines
from forecast.training.datasets import resolve_horizon, snapshot_table, table_input
from forecast.training.inputs import ModelInput
from tests.conftest import REPO

WIN = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")


@pytest.fixture(scope="module")
def trained() -> tuple[TrainResult, ModelInput, TrainingConfig]:
    sim = simulate_crm(SimulationConfig(n_leads=6000, seed=3))
    with frames_source(sim.tables) as src:
        end = src.data_end()
        config = resolve_horizon(src, WIN)
        h = config.snapshots.horizon_days
        table = snapshot_table(src, config, LabelConfig(h, h), data_end=end)
    data = table_input(table, config.label)
    return train_binary(data, config), data, config


def test_the_served_probability_is_the_weighted_mean_of_the_classifier_and_the_hazard(
    trained: tuple[TrainResult, ModelInput, TrainingConfig],
) -> None:
    result, data, config = trained
    model = result.pipeline.steps[-1][1]
    assert isinstance(model, HazardBlendedClassifier)
    assert model.hazard_weight_ == config.win_blend.hazard_weight == 0.5
    assert model.hazard_days_ == config.snapshots.horizon_days
    x = data.frame[data.features].iloc[::7]
    prepared = result.pipeline[:-1].transform(x)
    classifier = model.classifier_proba(prepared)[:, 1]
    within = model.win_within(prepared)
    served = result.pipeline.predict_proba(x)[:, 1]
    alone = model._alone_rows(prepared)  # creation snapshots: the prior alone, as without the hazard
    assert alone.any() and (~alone).any()
    assert np.allclose(served, np.where(alone, classifier, 0.5 * classifier + 0.5 * within), atol=1e-12)
    assert np.abs(classifier - within).mean() > 0.01  # two different models, not one twice
    assert np.corrcoef(classifier, within)[0, 1] > 0.5  # that answer the same question
    assert any("competing-risks hazard" in n for n in result.notes)


def test_the_array_path_and_a_pickled_copy_return_the_same_numbers(
    trained: tuple[TrainResult, ModelInput, TrainingConfig],
) -> None:
    result, data, _ = trained
    x = data.frame[data.features].iloc[::5]
    fast = fastpath.coded(result.pipeline)
    assert fast is not None, "the blend must keep the array scoring path (serving latency)"
    expected = result.pipeline.predict_proba(x)
    assert np.array_equal(fast.predict_proba(fast.encode(x)), expected)
    proba, _ = fast.proba_and_contributions(fast.encode(x))
    assert np.array_equal(proba, expected)
    copy = pickle.loads(pickle.dumps(result.pipeline))
    assert np.array_equal(copy.predict_proba(x), expected)


def test_the_reasons_are_the_classifier_s_contributions(
    trained: tuple[TrainResult, ModelInput, TrainingConfig],
) -> None:
    result, data, _ = trained
    x = data.frame[data.features].iloc[:50]
    model = result.pipeline.steps[-1][1]
    plain = CalibratedLGBMClassifier.__new__(CalibratedLGBMClassifier)
    plain.__dict__.update({k: v for k, v in model.__dict__.items() if not k.startswith("hazard_")})
    classifier = type(result.pipeline)([*result.pipeline.steps[:-1], ("model", plain)])
    assert np.allclose(contributions(result.pipeline, x), contributions(classifier, x), atol=1e-12)


def test_the_card_judges_the_parts_and_the_blend_on_the_same_test_slice(
    trained: tuple[TrainResult, ModelInput, TrainingConfig],
) -> None:
    result, _, _ = trained
    blend = result.fit["win_blend"]
    test = blend["test"]
    assert set(test) == {"classifier", "hazard", "blend"}
    assert blend["served"] and test["blend"]["brier"] <= test["classifier"]["brier"]
    assert test["blend"]["brier"] == pytest.approx(result.metrics["brier"], abs=1e-6)
    # the evaluation's hazard: fewer snapshots than the served one, censored at the test cut
    assert blend["evaluation"]["censored_at"] == result.splits["cuts"][1]
    assert blend["evaluation"]["rows"] < blend["final"]["rows"]
    assert blend["final"]["wins"] > 0 and blend["final"]["losses"] > 0


def test_the_evaluation_hazard_forgets_the_test_deals_and_what_came_after_the_cut() -> None:
    frame = pd.DataFrame(
        {
            "opportunity_id": ["a", "a", "b", "c", "d"],
            "as_of": pd.to_datetime(["2025-01-01", "2025-03-01", "2025-01-01", "2025-01-15", "2025-02-20"]),
            "stage": ["x", "y", "x", "x", "x"],
            win_blend.DURATION: [100.0, 41.0, 20.0, 10.0, 30.0],
            win_blend.EVENT: [True, True, True, True, False],
            win_blend.FOLLOWUP: [200.0, 141.0, 200.0, 186.0, 150.0],
            win_blend.WON: [True, True, False, True, pd.NA],
        }
    )
    data = ModelInput(
        frame=frame,
        id_column="opportunity_id",
        label="label_won_within_h",
        features=["stage"],
        categorical=["stage"],
        time_column="as_of",
    )
    cut = pd.Timestamp("2025-02-01")
    rows = win_blend.hazard_rows(data, cut, without=["c"])
    # a's March snapshot is after the cut, c is a test deal, d is dated after the cut
    assert rows.rows.tolist() == [0, 2]
    # a won on day 100 (April 11), after the cut: open on day 31 at the cut; b lost on day 20
    assert rows.durations.tolist() == [31.0, 20.0]
    assert rows.events.tolist() == [False, True]
    assert rows.causes.tolist() == [0, 2]
    assert rows.followup.tolist() == [31.0, 31.0]
    served = win_blend.hazard_rows(data)
    assert served.rows.tolist() == [0, 1, 2, 3, 4]
    assert served.causes.tolist() == [1, 1, 2, 1, 0]


def test_a_zero_weight_or_another_entity_is_not_blended(
    trained: tuple[TrainResult, ModelInput, TrainingConfig],
) -> None:
    result, data, config = trained
    off = config.model_copy(update={"win_blend": config.win_blend.model_copy(update={"hazard_weight": 0.0})})
    leads = config.model_copy(update={"entity": "lead"})
    assert win_blend.applies(data, config, result.eval_pipeline)
    assert not win_blend.applies(data, off, result.eval_pipeline)
    assert not win_blend.applies(data, leads, result.eval_pipeline)


def test_the_blend_is_served_only_where_it_scores_no_worse_than_the_classifier_alone() -> None:
    def test(blend: float, alone: float) -> dict[str, dict[str, float]]:
        return {"blend": {"brier": blend}, "classifier": {"brier": alone}, "hazard": {"brier": 0.3}}

    assert _blend_wins(test(0.1832, 0.1866))
    assert _blend_wins(test(0.1866, 0.1866))
    assert not _blend_wins(test(0.1911, 0.1866))  # the Maven CRM (docs/models.md)


def test_the_hazard_read_at_the_horizon_equals_its_whole_curve_read_there(
    trained: tuple[TrainResult, ModelInput, TrainingConfig],
) -> None:
    result, data, _ = trained
    model = result.pipeline.steps[-1][1]
    hazard, days = model.hazard_, model.hazard_days_
    x = data.frame[data.features].iloc[::3]
    prepared = result.pipeline[:-1].transform(x)
    whole = survival_at(hazard.win_incidence(prepared), hazard.edges, days)
    fast = fastpath.coded(result.pipeline)
    assert fast is not None
    for rows in (7, 2_000):  # in small chunks, and in one
        assert np.array_equal(hazard.win_within(prepared, days, rows=rows), whole)
        assert np.array_equal(hazard.win_within(fast.encode(x), days, rows=rows), whole)
    assert 0 < days < hazard.edges[-1]  # only the intervals up to the horizon were predicted


def test_a_final_hazard_that_cannot_be_fitted_leaves_the_judged_classifier_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = simulate_crm(SimulationConfig(n_leads=3000, seed=4))
    with frames_source(sim.tables) as src:
        config = resolve_horizon(src, WIN)
        h = config.snapshots.horizon_days
        table = snapshot_table(src, config, LabelConfig(h, h), data_end=src.data_end())
    calls: list[int] = []
    fit = win_blend.fit_win_hazard

    def second_fails(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("isotonic calibration failed")
        return fit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(win_blend, "fit_win_hazard", second_fails)
    result = train_binary(table_input(table, config.label), config)
    assert len(calls) == 2
    assert result.model_kind == "lightgbm"  # not the small-data stage table
    model = result.pipeline.steps[-1][1]
    assert type(model) is CalibratedLGBMClassifier
    assert result.fit["win_blend"]["served"] is False
    assert "isotonic calibration failed" in result.fit["win_blend"]["final"]["error"]
    assert any("could not be fitted on every snapshot" in n for n in result.notes)
    card = _blend_lines(result.fit["win_blend"])
    assert "is not served: the hazard could not be fitted" in card[0]


def test_the_card_says_whether_the_blend_serves_and_how_each_part_scored() -> None:
    test = {
        "classifier": {"brier": 0.19, "ece": 0.04, "roc_auc": 0.7},
        "hazard": {"brier": 0.18, "ece": 0.03, "roc_auc": 0.72},
        "blend": {"brier": 0.185, "ece": 0.03, "roc_auc": 0.71},
    }
    served = {
        "weight": 0.5,
        "days": 98.0,
        "served": True,
        "evaluation": {"rows": 100, "censored_at": "2025-01-01T00:00:00"},
        "final": {"rows": 150},
        "test": test,
    }
    lines = _blend_lines(served)
    assert "P(won within 98 days)" in lines[0] and "100 snapshots censored at the test cut" in lines[0]
    assert "150 for the served model" in lines[0]
    assert "blend Brier 0.185" in lines[1] and "classifier Brier 0.19" in lines[1]
    lost = {**served, "served": False, "evaluation": {"rows": 100, "censored_at": None}, "note": "n"}
    lines = _blend_lines(lost)
    assert "is not served: it scored a worse Brier score" in lines[0] and "outside the test deals" in lines[0]
    assert lines[-1] == "- n"
