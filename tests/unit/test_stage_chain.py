"""The small-data stage model's tail chained through the stages' moves (``models.stage_chain``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.models.stage_chain import chain_incidence, stage_moves
from forecast.models.stage_incidence import StageWinIncidence


def test_a_move_is_the_deal_s_next_snapshot_in_another_stage() -> None:
    ids = ["b", "a", "a", "a", "b", "a", "c"]
    times = pd.to_datetime(
        ["2024-01-01", "2024-01-15", "2024-01-01", "2024-01-08", "2024-01-08", "2024-01-22", "2024-01-01"]
    )
    stages = ["x", "q", "q", "q", "y", "d", "q"]
    days, moved_to = stage_moves(ids, times, stages)
    # in the input's order: b moves x -> y a week on; a leaves q for d on the 22nd; c and the last
    # snapshots show no move
    assert np.allclose(days[:4], [7, 7, 21, 14])
    assert list(moved_to) == ["y", "d", "d", "d", None, None, None]
    assert np.isnan(days[4:]).all()


def test_a_deal_s_stage_is_never_taken_for_another_deal_s() -> None:
    days, moved_to = stage_moves(["a", "b"], pd.to_datetime(["2024-01-01", "2024-01-08"]), ["q", "d"])
    assert np.isnan(days).all() and list(moved_to) == [None, None]


STAGES = ["s0", "s1", "s2", "s3"]


def _chain(seed: int, follow_up: float, n: int = 3000) -> tuple[np.ndarray, ...]:
    """Deals entering ``s0`` move on stage by stage (hazard 1/15) or lose (1/60); ``s3`` wins (1/40)
    or loses (1/60). Each deal gives a snapshot at its entry in each stage it reaches, followed at
    most ``follow_up`` days. Eventual win from ``s_i``: ``0.8 ** (3 - i) * 0.6``; ``s0``'s wins come
    after three moves, mostly past the follow-up."""
    rng = np.random.default_rng(seed)
    durations, causes, stages, move_days, move_to = [], [], [], [], []
    for _ in range(n):
        # the deal's path: entry day in each stage reached, then its close day and outcome
        entries, t, won = [0.0], 0.0, False
        for i in range(len(STAGES)):
            if i < len(STAGES) - 1:
                move, lose = rng.exponential(15), rng.exponential(60)
                if move < lose:
                    t += move
                    entries.append(t)
                    continue
                t += lose
            else:
                win, lose = rng.exponential(40), rng.exponential(60)
                t += min(win, lose)
                won = win < lose
            break
        for i, start in enumerate(entries):
            left = t - start
            durations.append(min(left, follow_up))
            causes.append(0 if left > follow_up else (1 if won else 2))
            stages.append(STAGES[i])
            nxt = entries[i + 1] - start if i + 1 < len(entries) else np.nan
            move_days.append(nxt if nxt <= follow_up else np.nan)
            move_to.append(STAGES[i + 1] if nxt <= follow_up else None)
    return (
        np.array(durations),
        np.array(causes),
        np.array(stages, dtype=object),
        np.array(move_days),
        np.array(move_to, dtype=object),
    )


def test_a_stage_that_wins_only_after_moving_on_gets_its_eventual_win_from_the_chain() -> None:
    durations, causes, stages, move_days, move_to = _chain(seed=3, follow_up=45.0)
    truth = [0.8 ** (3 - i) * 0.6 for i in range(4)]
    moves = (move_days, move_to)
    q = chain_incidence(durations, causes, stages, moves, STAGES, 45.0, 365.0, 0.0, np.zeros(4))
    assert q is not None
    assert q == pytest.approx(truth, abs=0.035)
    # each stage's tail from its own closes alone: the first stage's 45 days hold its losses and
    # few of its wins (0.21 against 0.31)
    frame = pd.DataFrame({"stage": stages})
    alone = StageWinIncidence(horizon_days=45.0, alpha=0.0, tail_days=365.0).fit(
        frame, durations=durations, causes=causes
    )
    assert alone.carried(alone.rates_["s0"], "s0") < truth[0] - 0.06
    chained = StageWinIncidence(horizon_days=45.0, alpha=0.0, tail_days=365.0, chain_weight=1.0).fit(
        frame, durations=durations, causes=causes, moves=(move_days, move_to)
    )
    assert chained.chained_ and not alone.chained_
    assert chained.carried(chained.rates_["s0"], "s0") == pytest.approx(truth[0], abs=0.035)
    # by default the chain and the stage's own tail are weighed half and half (their errors lie on
    # opposite sides on short simulated histories: docs/models.md)
    half = StageWinIncidence(horizon_days=45.0, alpha=0.0, tail_days=365.0).fit(
        frame, durations=durations, causes=causes, moves=(move_days, move_to)
    )
    both = [m.carried(m.rates_["s0"], "s0") for m in (chained, alone)]
    assert half.carried(half.rates_["s0"], "s0") == pytest.approx(np.mean(both), abs=1e-9)
    off = StageWinIncidence(horizon_days=45.0, alpha=0.0, tail_days=365.0, chain_weight=0.0).fit(
        frame, durations=durations, causes=causes, moves=(move_days, move_to)
    )
    assert not off.chained_ and off.tail_share_ == alone.tail_share_
    # the read incidence (what the revenue forecast spreads) does not change
    assert np.array_equal(chained.read_proba(frame), alone.read_proba(frame))
    # without a tail there is nothing to chain
    read = StageWinIncidence(horizon_days=45.0, alpha=0.0).fit(
        frame, durations=durations, causes=causes, moves=(move_days, move_to)
    )
    assert not read.chained_ and np.array_equal(read.predict_proba(frame)[:, 1], alone.read_proba(frame))


def test_a_stage_with_few_rows_keeps_most_of_its_own_estimate() -> None:
    durations, causes, stages, move_days, move_to = _chain(seed=5, follow_up=45.0)
    keep = np.r_[np.flatnonzero(stages == "s0")[:40], np.flatnonzero(stages != "s0")]  # forty s0 snapshots
    prior = np.array([0.9, 0.38, 0.48, 0.6])  # far from what s0's forty rows show (about 0.3)
    args = (durations[keep], causes[keep], stages[keep], (move_days[keep], move_to[keep]))
    light = chain_incidence(*args, STAGES, 45.0, 365.0, 0.0, prior)
    heavy = chain_incidence(*args, STAGES, 45.0, 365.0, 400.0, prior)
    assert light is not None and heavy is not None
    assert light[0] < 0.5
    # q = D * chain + (1 - D) * prior for s0, D = 40 / 440, its moves' stages barely shrunk
    # (hundreds of rows against 400) but for s0's own equation the prior dominates
    assert heavy[0] > 0.75
    assert heavy[0] == pytest.approx(40 / 440 * light[0] + 400 / 440 * 0.9, abs=0.05)


def test_no_move_seen_means_no_chain() -> None:
    durations, causes, stages, move_days, move_to = _chain(seed=5, follow_up=45.0)
    none = np.full(len(move_days), np.nan)
    assert (
        chain_incidence(durations, causes, stages, (none, move_to), STAGES, 45.0, 365.0, 30.0, np.zeros(4))
        is None
    )
    frame = pd.DataFrame({"stage": stages})
    fitted = StageWinIncidence(horizon_days=45.0, tail_days=365.0).fit(
        frame, durations=durations, causes=causes, moves=(none, np.full(len(none), None, dtype=object))
    )
    alone = StageWinIncidence(horizon_days=45.0, tail_days=365.0).fit(
        frame, durations=durations, causes=causes
    )
    assert not fitted.chained_ and fitted.tail_share_ == alone.tail_share_


def test_a_stage_missing_between_two_snapshots_is_no_move() -> None:
    times = pd.to_datetime(["2024-01-01", "2024-01-08", "2024-01-15", "2024-01-22"])
    days, moved_to = stage_moves(["a"] * 4, times, ["q", None, "q", "d"])
    assert np.allclose(days[:3], [21, 14, 7]) and list(moved_to) == ["d", "d", "d", None]
    # snapshots without a deal id are each their own deal
    days, moved_to = stage_moves([None, None], times[:2], ["q", "d"])
    assert np.isnan(days).all()


def test_moves_back_and_forth_are_solved_together() -> None:
    # a: half move to b within days, half lose; b: half move back to a, half win (all within 30 days)
    d = np.array([5.0, 6.0, 100.0, 7.0, 8.0, 9.0, 100.0, 10.0])
    c = np.array([2, 2, 0, 0, 1, 1, 0, 0])
    stages = np.array(["a", "a", "a", "a", "b", "b", "b", "b"], dtype=object)
    move_days = np.array([np.nan, np.nan, 3.0, 4.0, np.nan, np.nan, 3.0, 4.0])
    move_to = np.array([None, None, "b", "b", None, None, "a", "a"], dtype=object)
    q = chain_incidence(d, c, stages, (move_days, move_to), ["a", "b"], 30.0, 365.0, 0.0, np.zeros(2))
    assert q is not None
    # q_a = 0.5 q_b, q_b = 0.5 + 0.5 q_a: q_a = 1/3, q_b = 2/3
    assert q == pytest.approx([1 / 3, 2 / 3], abs=1e-9)
