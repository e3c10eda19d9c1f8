"""The small robustness matrix of issue 15: the gates on worlds unlike the default one (fixed seeds).

Each world is simulated for its history plus six months; the CRM at the end of the history goes
through ingest and the project's own training job; the models are judged on the three months after
(``forecast.robustness``; the bigger matrix is ``benchmarks/bench_robustness.py``, figures in
docs/models.md). Gates (issue 15): a deal-win model for every world with at least 3 months of
history; deal win AUC at least the stage-only historical win rate's + 0.02 wherever that baseline's
AUC is above 0.55; ECE at most 0.03. Lead scoring and the revenue backtest are judged by the
benchmark only (they would double the runtime).

Cases marked ``xfail`` (:data:`OPEN_GAPS`) were measured failing after the issue-15 training fixes;
the marks are strict, so a case that starts passing fails the run until its mark is removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forecast.data.simulation.worlds import World, load_world
from forecast.models.config import TrainingConfig
from forecast.registry import promote
from forecast.robustness import (
    AUC_MARGIN,
    BEST_RATIO_MIN,
    ECE_MAX,
    STAGE_AUC_INFORMATIVE,
    STAGE_ECE_MAX,
    MatrixSettings,
    run_world,
    work_settings,
)
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains in several simulated worlds

LEADS_PER_MONTH = 500.0
SEED = 7
WORLDS = ("history-3m", "history-9m", "stages-8", "win-60")
"""Small worlds (1 500 to 6 000 leads of history): short histories, another pipeline, a high win rate."""

OPEN_GAPS: dict[str, dict[str, str]] = {
    "calibrated": {
        "history-3m": "3 months: the label stops at 49 days (half the history) and the data follow a tenth "
        "of the snapshots 56 days; the stage model carries its incidence on to 365 days with the hazards of "
        "days 28-56, half of it chained through each stage's moves to later stages (ECE 0.041, within "
        "the 0.057 of chance but above 0.03; mean p 0.38 against 0.41 won; 0.068 and 0.35 before the "
        "chain, 0.152 and 0.26 read at 56 days)",
        "stages-8": "ECE 0.047 on 391 future deals (0.053 before p_win was blended with the win hazard)",
    },
    "stage_calibrated": {
        "history-3m": "per stage (>= 100 deals) ECE 0.04-0.07 (proposal 0.072; 0.06-0.13 before the "
        "chain through the stages' moves, 0.13-0.18 read at 56 days), each within chance",
        "history-9m": "per stage ECE 0.04-0.08 (demo 0.082) on 322 future deals, within chance",
        "stages-8": "per stage ECE up to 0.13 (evaluation 0.132, business_case 0.129)",
        "win-60": "per stage ECE up to 0.051 (0.024-0.051), within the noise of ~100-deal stages",
    },
    "stage_within_noise": {
        "stages-8": "business_case 0.129 and scoping 0.100 against 0.125 and 0.095 by chance: just outside "
        "(evaluation and solution_fit within it)",
    },
    "creation": {
        "history-3m": "the small-data stage model gives a new deal its first stage's rate by deal size: AUC "
        "0.535 at creation against 0.611 best achievable",
        "stages-8": "AUC at creation 0.635 against 0.97 x 0.658 best achievable (0.638)",
    },
}
"""Cases measured failing after the issue-15 training fixes (docs/models.md), kept visible as
``xfail(strict=True)``: a fix that makes one pass turns the mark into a failure to remove it."""

_cache: dict[str, dict[str, Any]] = {}


def _world(name: str) -> World:
    return load_world(name).model_copy(update={"leads_per_month": LEADS_PER_MONTH, "seed": SEED})


def _result(name: str) -> dict[str, Any]:
    if name not in _cache:
        configs = {
            stem: TrainingConfig.from_yaml(REPO / "training" / f"{stem}.yaml")
            for stem in ("deal_win", "lead_scoring", "time_to_close")
        }
        settings = MatrixSettings(revenue=False, models=("deal_win",))
        _cache[name] = run_world(_world(name), configs, settings)
    return _cache[name]


def _case(name: str, gate: str | None = None) -> Any:
    reason = OPEN_GAPS.get(gate or "", {}).get(name)
    return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=reason) if reason else ())


@pytest.mark.parametrize("name", [_case(n) for n in WORLDS])
def test_every_world_with_three_months_gets_a_model(name: str) -> None:
    result = _result(name)
    assert result["world"]["months"] >= 3
    assert result["deal_win"]["ok"], result["deal_win"].get("error")
    # and the promotion gate would serve it: it loses to no baseline on its test slice
    assert result["deal_win"]["internal"]["promotion_losses"] == [], result["deal_win"]["internal"]


@pytest.mark.parametrize("name", [_case(n, "beats_stage") for n in WORLDS])
def test_deal_win_beats_the_stage_only_win_rate_on_the_future(name: str) -> None:
    """Issue 15: AUC at least the stage-only table's + 0.02 where the table ranks at all.

    history-3m holds since the small-data model's tail is half chained through the stages' moves,
    by a hair: 0.682 against 0.681 needed (0.674 before; docs/models.md).
    """
    deal = _result(name)["deal_eval"]
    print(name, {k: deal.get(k) for k in ("auc", "stage_auc", "ece", "rows", "deals")})
    assert deal.get("rows", 0) >= 500, deal
    assert deal.get("auc") is not None, "no deal-win model to judge"
    if deal["stage_auc"] is not None and deal["stage_auc"] > STAGE_AUC_INFORMATIVE:
        assert deal["auc"] >= deal["stage_auc"] + AUC_MARGIN, deal


@pytest.mark.parametrize("name", [_case(n, "calibrated") for n in WORLDS])
def test_deal_win_is_calibrated_on_the_future(name: str) -> None:
    deal = _result(name)["deal_eval"]
    assert deal.get("ece") is not None, "no deal-win model to judge"
    assert deal["ece"] <= ECE_MAX, deal


@pytest.mark.parametrize("name", [_case(n, "within_noise") for n in WORLDS])
def test_deal_win_calibration_error_is_within_sampling_noise(name: str) -> None:
    """ECE 0.03 cannot be told from chance on a few hundred future deals; this asks what can be told.

    A perfectly calibrated model scores a positive ECE on a finite sample (labels drawn from its own
    probabilities, one draw per deal shared by its snapshots: ``ece_noise_floor``). The model must
    stay within the 90th percentile of that, or within ``ECE_MAX`` where the sample is large enough
    for the floor to be below it.
    """
    deal = _result(name)["deal_eval"]
    assert deal.get("ece") is not None, "no deal-win model to judge"
    assert 0.0 < deal["ece_noise"] <= deal["ece_noise_q90"], deal
    assert deal["ece"] <= max(ECE_MAX, deal["ece_noise_q90"]), deal


@pytest.mark.parametrize("name", [_case(n, "stage_calibrated") for n in WORLDS])
def test_deal_win_is_calibrated_within_each_stage_holding_enough_deals(name: str) -> None:
    """Issue 15: ECE at most 0.05 within each stage holding at least 100 judged deals."""
    deal = _result(name)["deal_eval"]
    assert deal.get("ece") is not None, "no deal-win model to judge"
    print(name, deal.get("ece_by_stage"), "calibrated model's 90th pct.:", deal.get("ece_noise_q90_by_stage"))
    if deal["stage_ece_max"] is not None:
        assert deal["stage_ece_max"] <= STAGE_ECE_MAX, deal["ece_by_stage"]


@pytest.mark.parametrize("name", [_case(n, "stage_within_noise") for n in WORLDS])
def test_deal_win_stage_calibration_is_within_sampling_noise(name: str) -> None:
    """Per stage, as overall: within what a calibrated model scores by chance on the same deals.

    A stage holds 100-300 judged deals, whose weekly snapshots share one outcome: a calibrated
    model's ECE there is itself 0.04-0.13 one time in ten (``ece_noise_q90_by_stage``).
    """
    deal = _result(name)["deal_eval"]
    ece, noise = deal.get("ece_by_stage") or {}, deal.get("ece_noise_q90_by_stage") or {}
    assert ece and set(ece) == set(noise), deal
    over = {s: (ece[s], noise[s]) for s in ece if ece[s] > max(STAGE_ECE_MAX, noise[s])}
    assert not over, over


@pytest.mark.parametrize("name", [_case(n, "creation") for n in WORLDS])
def test_deal_win_at_creation_reaches_most_of_the_best_achievable(name: str) -> None:
    """Issue 15: at creation, AUC at least 0.97 of the simulator's best achievable from what is recorded."""
    deal = _result(name)["deal_eval"]
    assert deal.get("auc_creation") is not None and deal.get("best_auc_creation"), deal
    print(name, deal["auc_creation"], deal["best_auc_creation"], deal.get("creation_rows"))
    assert deal["auc_creation"] >= BEST_RATIO_MIN * deal["best_auc_creation"], deal


def test_three_months_of_history_get_a_lead_model_that_is_promoted_and_ranks_the_future(
    tmp_path: Path,
) -> None:
    """history-3m: the lead model's evaluation slice is a few hundred rows (429, 86 converted).

    Measured (seed 7, 500 leads a month): gap shortened to 12 days, test AUC 0.578 within noise of
    every baseline, so the gate promotes it; on the three months after the cut AUC 0.786, ECE 0.039,
    at creation 0.612 against 0.667 best achievable. Before the gap rule the slice held 380 rows,
    AUC 0.36, and the model was refused: the CRM had no lead model.
    """
    configs = {
        stem: TrainingConfig.from_yaml(REPO / "training" / f"{stem}.yaml")
        for stem in ("deal_win", "lead_scoring", "time_to_close")
    }
    settings = MatrixSettings(revenue=False, models=("lead_scoring",))
    result = run_world(_world("history-3m"), configs, settings, workdir=tmp_path)
    assert result["lead_scoring"]["ok"], result["lead_scoring"].get("error")
    decision = promote(
        "lead_scoring", work_settings(tmp_path), max_auc_drop=configs["lead_scoring"].promotion.max_auc_drop
    )
    assert decision.promoted, decision.reason
    lead = result["lead_eval"]
    assert lead["auc"] >= 0.75 and lead["ece"] <= 0.05, lead


def test_a_crm_that_has_never_won_a_deal_is_told_so_not_given_a_made_up_win_rate() -> None:
    """200-day cycles and 3 months of history: 232 deals, none won yet (measured, seed 7).

    No win probability can be read from such a CRM; ``train deal-win`` refuses and says why, instead
    of serving a stage table of zeros or a rate from nowhere.
    """
    configs = {
        stem: TrainingConfig.from_yaml(REPO / "training" / f"{stem}.yaml")
        for stem in ("deal_win", "lead_scoring", "time_to_close")
    }
    world = load_world("cycle-200").model_copy(
        update={"leads_per_month": LEADS_PER_MONTH, "seed": SEED, "months": 3}
    )
    result = run_world(world, configs, MatrixSettings(revenue=False, models=("deal_win",)))
    assert not result["deal_win"]["ok"]
    assert "deals in these snapshots has been won" in result["deal_win"]["error"], result["deal_win"]
