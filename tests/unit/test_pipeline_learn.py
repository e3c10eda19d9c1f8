"""Learning the sales pipeline from the deals (issue 17 item 3): order, closed, won, and when not to."""

from __future__ import annotations

import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.pipeline_learn import (
    PipelineLearnError,
    describe,
    learn_pipeline,
    needs_learning,
    stage_values,
)

RENAME = {
    "qualification": "Intro call",
    "discovery": "Needs",
    "demo": "Show",
    "proposal": "Offer",
    "negotiation": "Haggle",
    "closed_won": "Ganado",
    "closed_lost": "Perdido",
}


def _renamed(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = {k: v.copy() for k, v in tables.items()}
    for name in ("opportunities", "stage_history"):
        out[name]["stage"] = out[name]["stage"].map(RENAME)
    return out


@pytest.fixture(scope="module")
def simulated() -> dict[str, pd.DataFrame]:
    from forecast.data.simulate import SimulationConfig, simulate_crm

    return simulate_crm(SimulationConfig(n_leads=400, months=6, seed=5)).tables


def _history(*deals: tuple[str, list[str]]) -> pd.DataFrame:
    rows = [
        {
            "opportunity_id": deal,
            "stage": stage,
            "entered_at": pd.Timestamp("2024-01-01") + pd.Timedelta(days=i),
        }
        for deal, stages in deals
        for i, stage in enumerate(stages)
    ]
    return pd.DataFrame(rows)


def _deals(history: pd.DataFrame, outcomes: dict[str, str]) -> pd.DataFrame:
    last = history.groupby("opportunity_id")["stage"].last()
    return pd.DataFrame(
        {"opportunity_id": last.index, "stage": last.to_numpy(), "outcome": last.index.map(outcomes)}
    )


def test_a_renamed_simulated_crm_gives_back_the_default_order_won_and_lost(simulated) -> None:
    tables = _renamed(simulated)
    values = stage_values([tables["opportunities"], tables["stage_history"]])
    assert needs_learning(values)
    learnt = learn_pipeline(tables["opportunities"], tables["stage_history"])
    assert learnt.names == [RENAME[s] for s in DEFAULT_PIPELINE.names]
    assert (learnt.won_stages, learnt.lost_stages) == (["Ganado"], ["Perdido"])
    assert describe(learnt) == "Intro call → Needs → Show → Offer → Haggle → Ganado (won) / Perdido (lost)"


def test_the_default_named_crm_needs_no_learning_and_a_few_typos_do_not_make_stages(simulated) -> None:
    opp, hist = simulated["opportunities"], simulated["stage_history"].copy()
    assert not needs_learning(stage_values([opp, hist]))
    hist.loc[hist.index[:3], "stage"] = "Proposal!"  # a few bad values: rejected later, as before
    assert not needs_learning(stage_values([opp, hist]))
    # learning from the default names gives the default pipeline back
    assert learn_pipeline(opp, simulated["stage_history"]).names == DEFAULT_PIPELINE.names


def test_skipped_stages_and_back_moves_keep_the_order() -> None:
    history = _history(
        ("d1", ["a", "b", "c", "d", "win"]),
        ("d2", ["a", "c", "b", "c", "d", "win"]),  # a back-move from c to b
        ("d3", ["a", "c", "lose"]),  # b skipped
        ("d4", ["b", "d", "lose"]),  # a and c skipped
        ("d5", ["a", "b", "d"]),  # still open
        ("d6", ["a", "b", "c", "b", "c", "d", "win"]),  # back and forth
        ("d7", ["a", "b", "c", "d", "lose"]),
    )
    outcomes = {"d1": "won", "d2": "won", "d3": "lost", "d4": "lost", "d5": "open", "d6": "won", "d7": "lost"}
    learnt = learn_pipeline(_deals(history, outcomes), history)
    assert learnt.names == ["a", "b", "c", "d", "win", "lose"]
    assert learnt.won_stages == ["win"]


def test_without_outcomes_terminal_stages_are_closed_and_names_tell_won_from_lost() -> None:
    history = _history(
        ("d1", ["lead", "pitch", "Closed - Signed"]),
        ("d2", ["lead", "Closed - Dead"]),
        ("d3", ["lead", "pitch"]),
        ("d4", ["lead", "pitch", "Closed - Signed"]),
    )
    learnt = learn_pipeline(None, history)  # no opportunities: only the history
    assert learnt.open_stages == ["lead", "pitch"]
    assert (learnt.won_stages, learnt.lost_stages) == (["Closed - Signed"], ["Closed - Dead"])


def test_the_outcome_column_outranks_the_names() -> None:
    history = _history(("d1", ["s1", "finished_a"]), ("d2", ["s1", "s2", "finished_b"]), ("d3", ["s1", "s2"]))
    learnt = learn_pipeline(_deals(history, {"d1": "lost", "d2": "won", "d3": "open"}), history)
    assert (learnt.open_stages, learnt.won_stages, learnt.lost_stages) == (
        ["s1", "s2"],
        ["finished_b"],
        ["finished_a"],
    )


def test_when_the_won_stage_cannot_be_told_the_error_asks_for_a_pipeline_file() -> None:
    history = _history(("d1", ["s1", "s2", "end_a"]), ("d2", ["s1", "end_b"]), ("d3", ["s1", "s2"]))
    deals = _deals(history, {"d1": "open", "d2": "open", "d3": "open"})  # outcomes say nothing
    with pytest.raises(PipelineLearnError) as caught:
        learn_pipeline(deals, history, source="crm/")
    message = str(caught.value)
    assert message.startswith("crm/: ") and "--pipeline FILE" in message and "won" in message
    assert "  - name: s1\n  - name: s2\n" in message and "{name: end_a, is_closed: true}" in message
    assert "is_won: true" in message
