"""A deal's win within a long horizon, learned from censored snapshots by inverse-probability weights.

A fixed-horizon label ("won within H days") is unknown for every snapshot less than H days
before the data's end. Dropping those snapshots keeps the label unbiased but caps H: with H at
half the history, half of the snapshots are labelled, and the wins that come after H (slow deals)
are outside the label, so the model under-predicts the *eventual* win rate it is judged against.

Inverse probability of censoring weighting (IPCW) keeps every snapshot whose outcome within the
horizon ``tau`` is known at the data's end: the deal closed before it (a quick loss, a quick win),
or the snapshot was followed for ``tau`` days. Such a snapshot, decided at ``t = min(T, tau)``
days (``T``: days from the snapshot to the close), stands for the snapshots like it whose follow-up
ended before ``t``: its weight is ``1 / G(t)``, with ``G(t)`` the share of snapshots followed for at
least ``t`` days (the follow-up is administrative: the data's end, known for every snapshot). The
weighted mean of the label is then an unbiased estimate of P(won within ``tau``) wherever the
follow-up does not depend on the outcome, and ``tau`` can reach far beyond half the history.
``G`` is floored at ``min_survival`` so that a few long-followed snapshots cannot dominate (a bias
only for the slowest closes, in exchange for a bounded variance).

The weights depend on where the data ends: the evaluation model is fitted with the labels and
weights known at the test cut (``follow_up`` shortened to it), so nothing after the cut teaches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DAYS_TO_CLOSE = "label_days_to_close"
CLOSE_OBSERVED = "label_close_observed"
WON = "label_won"
FOLLOW_UP = "label_followup_days"
COLUMNS = (DAYS_TO_CLOSE, CLOSE_OBSERVED, WON, FOLLOW_UP)
"""Snapshot columns the weights are computed from (``features.snapshots.build_opportunity_spine``)."""


@dataclass(frozen=True)
class WeightedLabel:
    """Labels and weights of snapshots; a weight of 0 marks a snapshot whose label is not known yet.

    Attributes:
        y: 0/1: won within the horizon (0 where unknown).
        weight: ``1 / max(G(t), min_survival)`` where the label is known, else 0.
    """

    y: np.ndarray
    weight: np.ndarray

    @property
    def known(self) -> np.ndarray:
        """Whether each snapshot's label is known."""
        return self.weight > 0


def censoring_survival(follow_up: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``G(t)``: the share of snapshots followed for at least ``t`` days, at each ``t`` of ``at``."""
    ordered = np.sort(np.asarray(follow_up, dtype=float))
    if len(ordered) == 0:
        return np.ones(len(at))
    below = np.searchsorted(ordered, np.asarray(at, dtype=float), side="left")
    return np.asarray(1.0 - below / len(ordered), dtype=float)


def weighted_win_label(
    days_to_close: np.ndarray,
    close_observed: np.ndarray,
    won: np.ndarray,
    follow_up: np.ndarray,
    tau: float,
    min_survival: float,
) -> WeightedLabel:
    """Won within ``tau`` days of each snapshot, with its inverse-probability-of-censoring weight.

    Args:
        days_to_close: Days from the snapshot to the deal's close (to the data's end while open; any
            value beyond ``follow_up`` reads as "not closed yet").
        close_observed: Whether the deal ever closed (in the whole data).
        won: Whether it was won (read only where it closed; ``False`` where unknown).
        follow_up: Days from the snapshot to the data's end as the model sees it (the test cut for
            the evaluation model); snapshots at or after that end must be left out by the caller.
        tau: The label's horizon in days.
        min_survival: Floor of ``G`` in the weights (a weight is at most ``1 / min_survival``).

    Returns:
        The labels and weights.
    """
    t_close = np.asarray(days_to_close, dtype=float)
    f = np.asarray(follow_up, dtype=float)
    closed = np.asarray(close_observed, dtype=bool) & (t_close <= f)
    early = closed & (t_close < tau)
    known = early | (f >= tau)
    y = early & np.asarray(won, dtype=bool)
    decided_at = np.where(early, t_close, tau)
    g = np.maximum(censoring_survival(f, decided_at), min_survival)
    return WeightedLabel(y=y.astype(int), weight=np.where(known, 1.0 / g, 0.0))


def label_of(frame: pd.DataFrame, tau: float, min_survival: float, shift_days: float = 0.0) -> WeightedLabel:
    """:func:`weighted_win_label` of a snapshot frame, with the data's end moved back ``shift_days``."""
    return weighted_win_label(
        frame[DAYS_TO_CLOSE].to_numpy(dtype=float),
        frame[CLOSE_OBSERVED].astype(bool).to_numpy(),
        frame[WON].astype("boolean").to_numpy(dtype=bool, na_value=False),
        frame[FOLLOW_UP].to_numpy(dtype=float) - shift_days,
        tau,
        min_survival,
    )
