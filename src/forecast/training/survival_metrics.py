"""Metrics of a time-to-close model under right censoring.

- :func:`concordance_index`: Harrell's C — of two deals where the earlier close was observed, how
  often the model expected the earlier one to close sooner (0.5 is chance, 1 perfect).
- :func:`integrated_brier_score`: the Brier score of ``S(t)`` against "still open at t", weighted by
  the inverse probability of censoring (Graf et al., 1999), averaged over ``t``; lower is better.
- :func:`restricted_mean_days`: expected days to close within the modelled horizon (the risk score
  the C-index ranks; smaller means sooner).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from forecast.models.survival import survival_at


def restricted_mean_days(surv: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Area under ``S`` from 0 to the last edge (trapezoids; ``S`` is linear inside intervals)."""
    widths = np.diff(np.asarray(edges, dtype=float))
    return ((surv[:, :-1] + surv[:, 1:]) / 2.0) @ widths


def concordance_index(
    durations: np.ndarray, events: np.ndarray, predicted_days: np.ndarray, chunk: int = 2000
) -> float:
    """Harrell's concordance index of predicted days to close against observed (censored) durations.

    A pair is comparable when the shorter duration ended in an observed close. It is concordant
    when that deal also has the smaller prediction; ties in prediction count one half.

    Returns:
        C in [0, 1], or ``nan`` without comparable pairs.
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    p = np.asarray(predicted_days, dtype=float)
    concordant = 0.0
    comparable = 0.0
    idx = np.flatnonzero(e)
    for lo in range(0, len(idx), chunk):
        i = idx[lo : lo + chunk]
        later = d[None, :] > d[i, None]
        comparable += later.sum()
        concordant += (later & (p[None, :] > p[i, None])).sum() + 0.5 * (
            later & (p[None, :] == p[i, None])
        ).sum()
    return float(concordant / comparable) if comparable else float("nan")


def c_index_gap_se(
    d: np.ndarray,
    e: np.ndarray,
    groups: np.ndarray,
    model_days: np.ndarray,
    base_days: np.ndarray,
    seed: int = 0,
    n_boot: int = 200,
) -> float:
    """Standard error of the C-index difference of two predictions on the same rows.

    A bootstrap over whole deals (their weekly snapshots share one close), both predictions scored
    on the same draws. Meant for the small test slices of a short history (each draw is quadratic).
    """
    codes = pd.factorize(pd.Series(groups))[0]
    members = [np.flatnonzero(codes == g) for g in range(int(codes.max()) + 1 if len(codes) else 0)]
    if len(members) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    gaps = []
    for _ in range(n_boot):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        gap = concordance_index(d[rows], e[rows], model_days[rows]) - concordance_index(
            d[rows], e[rows], base_days[rows]
        )
        if np.isfinite(gap):
            gaps.append(gap)
    return float(np.std(gaps, ddof=1)) if len(gaps) > 1 else float("nan")


def _censoring_survival(durations: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate of the censoring distribution G (censoring is the 'event')."""
    order = np.argsort(durations, kind="stable")
    d, c = durations[order], ~events[order]
    times = np.unique(d)
    at_risk = len(d) - np.searchsorted(d, times, side="left")
    censored = np.bincount(np.searchsorted(times, d), weights=c, minlength=len(times))
    g = np.cumprod(1.0 - censored / np.maximum(at_risk, 1))
    return times, g


def _g_at(times: np.ndarray, g: np.ndarray, t: np.ndarray, left: bool) -> np.ndarray:
    """G(t) (or G(t-) when ``left``), a step function."""
    pos = np.searchsorted(times, t, side="left" if left else "right") - 1
    return np.where(pos >= 0, g[np.clip(pos, 0, len(g) - 1)], 1.0)


def brier_at(
    durations: np.ndarray, events: np.ndarray, surv: np.ndarray, edges: Sequence[float], t: float
) -> float:
    """IPCW Brier score of ``S(t)`` at one time ``t`` (days)."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    times, g = _censoring_survival(d, e)
    s_t = survival_at(surv, edges, t)
    closed_before = (d <= t) & e
    still_open = d > t
    g_d = np.maximum(_g_at(times, g, d, left=True), 1e-6)
    g_t = max(float(_g_at(times, g, np.array([t]), left=False)[0]), 1e-6)
    score = np.where(closed_before, s_t**2 / g_d, 0.0) + np.where(still_open, (1.0 - s_t) ** 2 / g_t, 0.0)
    return float(score.mean())


def integrated_brier_score(
    durations: np.ndarray,
    events: np.ndarray,
    surv: np.ndarray,
    edges: Sequence[float],
    times: Sequence[float] | None = None,
) -> float:
    """Average IPCW Brier score over ``times``.

    Default times: every 7 days up to the 90th percentile of the durations (at most the last edge).
    """
    d = np.asarray(durations, dtype=float)
    if times is None:
        top = min(float(np.quantile(d, 0.9)), float(edges[-1]))
        t = np.arange(7.0, max(top, 7.0) + 1e-9, 7.0)
    else:
        t = np.asarray(times, dtype=float)
    scores = np.array([brier_at(d, events, surv, edges, float(x)) for x in t])
    if len(t) == 1:
        return float(scores[0])
    return float(np.trapezoid(scores, t) / (t[-1] - t[0]))
