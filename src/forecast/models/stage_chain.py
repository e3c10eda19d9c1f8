"""A stage's eventual win as the chain of its moves to other stages (the small-data model's tail).

A CRM with a few months of history follows each snapshot for a few weeks only. A late stage's deals
close within those weeks; an early stage's deals mostly move on to later stages first and win only
after, so the weeks read hold their losses and few of their wins (measured on a four-month CRM: 0.21
predicted for qualification deals of which 0.35 were eventually won; docs/models.md). The moves
themselves come within the weeks read. :func:`chain_incidence` reads, per stage, the incidence of
each first event within the follow-up (won, lost, or a move to another stage, with the data's end as
censoring), and chains them: a stage's eventual win is its own wins, plus each move's share times
the stage moved to's eventual win, plus the deals still in the stage at the follow-up's end,
carried on with the hazards of its last read window. Each stage's equation is shrunk towards its
own estimate without moves (the stage's win incidence carried on alone), so a stage with few rows
keeps what it shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def stage_moves(ids: ArrayLike, times: ArrayLike, stages: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Each snapshot's days to its deal's next stage change, and the stage moved to.

    A move is seen at the deal's first later snapshot in another stage, so its day is known to the
    snapshots' cadence; a deal that moves and closes between two snapshots shows the close only. A
    snapshot without a stage keeps its deal's last known one (no move to the same stage), and one
    without a deal id has no later snapshot. The snapshots are one per deal and as_of (the training
    cadence's); two of one deal on the same day would be ordered as given.

    Args:
        ids: The deal of each snapshot.
        times: Each snapshot's as_of.
        stages: Each snapshot's stage.

    Returns:
        Days to the next move (``nan``: none seen) and the stage moved to (``str``; ``None``: none),
        in the order of the input.
    """
    codes = pd.factorize(pd.Series(np.asarray(ids, dtype=object)))[0]
    missing = codes < 0
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))  # each its own deal
    t_all = pd.to_datetime(pd.Series(np.asarray(times))).to_numpy()
    order = np.lexsort((t_all, codes))
    deal = codes[order]
    known = pd.Series([str(s) if pd.notna(s) else None for s in np.asarray(stages, dtype=object)])
    stage = known.iloc[order].groupby(deal).ffill().to_numpy(dtype=object)
    t = t_all[order]
    n = len(order)
    change = np.zeros(n, dtype=bool)  # a snapshot in another stage than its deal's previous one
    change[1:] = (deal[1:] == deal[:-1]) & (stage[1:] != stage[:-1]) & pd.notna(stage[1:])
    points = np.flatnonzero(change)
    nxt = np.searchsorted(points, np.arange(n), side="right")
    seen = nxt < len(points)
    at = points[nxt[seen]]
    seen[seen] = deal[at] == deal[seen]
    at = points[nxt[seen]]
    days, moved_to = np.full(n, np.nan), np.full(n, None, dtype=object)
    days[order[seen]] = (t[at] - t[seen]) / np.timedelta64(1, "D")
    moved_to[order[seen]] = stage[at]
    return days, moved_to


def chain_incidence(
    durations: np.ndarray,
    causes: np.ndarray,
    stages: np.ndarray,
    moves: tuple[np.ndarray, np.ndarray],
    keys: Sequence[str],
    horizon: float,
    tail_days: float,
    alpha: float,
    prior: np.ndarray,
) -> np.ndarray | None:
    """Each stage's incidence of a win by ``tail_days``, chained through its moves to other stages.

    Per stage ``i``, from its snapshots' first events within ``horizon`` (Aalen-Johansen, the data's
    end censoring): ``W_i`` the wins, ``M_ij`` the moves to stage ``j``, ``S_i`` the share still
    in the stage. The deals still in it close or move at the hazards of the last read window,
    ``(horizon / 2, horizon]``, held constant until ``tail_days`` (``R_i`` their wins, ``Rm_ij``
    their moves). Then, with ``D_i = n_i / (n_i + alpha)`` (``n_i`` the stage's snapshots)::

        q_i = D_i * (W_i + R_i + sum_j (M_ij + Rm_ij) * q_j) + (1 - D_i) * prior_i

    solved as one linear system (moves back to earlier stages included). A deal that moved is
    given the eventual win of the stage it moved to from its snapshots as a whole, not of the days
    left to ``tail_days``.

    Args:
        durations: Days from each snapshot to its close, or to the data's end when open.
        causes: 1 won, 2 lost, 0 open.
        stages: Each snapshot's stage key (``str``; ``None`` without one).
        moves: Days to the deal's next stage change and the stage moved to (:func:`stage_moves`).
        keys: The stages, in the order of the result.
        horizon: The days read from the data.
        tail_days: The days the incidence is carried on to.
        alpha: Shrinkage of each stage's equation towards ``prior``, in snapshots.
        prior: Each stage's estimate without moves (the order of ``keys``).

    Returns:
        The incidence per stage of ``keys``; ``None`` where no move to another of ``keys`` is seen
        or the system has no solution in [0, 1].
    """
    d = np.asarray(durations, dtype=float)
    c = np.asarray(causes, dtype=int)
    move_days, moved_to = moves
    slot = {k: j for j, k in enumerate(keys)}
    target = np.array([slot.get(s, -1) if s is not None else -1 for s in moved_to], dtype=int)
    own_stage = np.array([slot.get(s, -1) if s is not None else -1 for s in stages], dtype=int)
    moved = (
        np.isfinite(move_days) & (target >= 0) & (target != own_stage) & ~(np.isfinite(d) & (d <= move_days))
    )
    if not moved.any():
        return None
    first = np.where(moved, move_days, d)
    code = np.where(moved, 3 + target, c)  # 0 open, 1 won, 2 lost, 3 + j moved to keys[j]
    n_stages = len(keys)
    wins, carried = np.zeros(n_stages), np.zeros(n_stages)
    flows = np.zeros((n_stages, n_stages))
    counts = np.zeros(n_stages)
    for i, key in enumerate(keys):
        sel = (stages == key) & np.isfinite(first)
        parts = first_event_incidence(first[sel], code[sel], horizon, tail_days, n_stages)
        if parts is not None:  # a stage with no event read keeps its own estimate
            counts[i] = sel.sum()
            wins[i], carried[i], flows[i] = parts
    shrink = counts / (counts + alpha)
    system = np.eye(n_stages) - shrink[:, None] * flows
    try:
        q = np.linalg.solve(system, shrink * (wins + carried) + (1 - shrink) * np.asarray(prior, dtype=float))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(q)) or q.min() < -1e-9 or q.max() > 1 + 1e-9:
        return None
    return np.clip(q, 0.0, 1.0)


def first_event_incidence(
    first: np.ndarray, code: np.ndarray, horizon: float, tail_days: float, n_stages: int
) -> tuple[float, float, np.ndarray] | None:
    """Aalen-Johansen incidences by ``horizon`` of competing first events, and their tail past it.

    The events still to come at ``horizon`` (the all-cause Kaplan-Meier survival there) happen at
    the hazards of the last read window ``(horizon / 2, horizon]``, held constant until
    ``tail_days``, shared out as that window's events are. Also the small-data stage model's own
    tail (``models.stage_incidence.extrapolated_incidence``, no moves).

    Args:
        first: Days from each snapshot to its first event, or to the data's end (censored).
        code: 0 censored, 1 won, 2 lost, ``3 + j`` moved to the ``j``-th stage.
        horizon: The days read from the data.
        tail_days: The days carried on to.
        n_stages: How many stages moves may go to.

    Returns:
        The wins by ``horizon``, the wins after it to ``tail_days``, and the moves to each stage
        (both parts); ``None`` without any event within ``horizon``.
    """
    e = np.maximum(first, 0.0)
    within = (code > 0) & (e <= horizon)
    times = np.unique(e[within])
    if len(times) == 0:
        return None
    at_risk = len(e) - np.searchsorted(np.sort(e), times, side="left")
    slot = np.searchsorted(times, e[within])
    events = np.bincount(slot, minlength=len(times))
    before = np.concatenate([[1.0], np.cumprod(1.0 - events / at_risk)[:-1]])
    still = float(np.prod(1.0 - events / at_risk))

    def incidence(kind: int) -> float:
        return float((before * np.bincount(slot[code[within] == kind], minlength=len(times)) / at_risk).sum())

    flows = np.array([incidence(3 + j) for j in range(n_stages)])
    wins = incidence(1)
    start = horizon / 2.0
    exposure = float(np.clip(np.minimum(e, horizon) - start, 0.0, None).sum())
    late = (e > start) & within
    n_late = int(late.sum())
    carried = 0.0
    if exposure > 0 and n_late:
        share = still * (1.0 - np.exp(-n_late / exposure * (tail_days - horizon))) / n_late
        carried = share * int((late & (code == 1)).sum())
        flows = flows + share * np.array([int((late & (code == 3 + j)).sum()) for j in range(n_stages)])
    return wins, carried, flows
