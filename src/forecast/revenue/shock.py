"""Common shocks: the models' own error, shared by every deal of one simulation (pure numpy).

Given its probabilities, the Monte Carlo treats deals as independent, so its band only holds the
luck of the draws. But when the model is off, it is off for all open deals at once (the win rate
of a month moves together), and with hundreds of deals that shared error dominates the spread.
So each simulation draws

- a **win shock** ``d``: every deal's win probability moves to ``sigmoid(logit(p) + d)``; it
  also moves the win rate of the deals not created yet;
- a **volume shock** ``v``: the number of new deals is multiplied by ``exp(v)``.

Their spread is estimated from evidence, not set by hand: at past cuts ``c`` (one a window apart,
before as_of) the deals open at ``c`` are scored with the *same* models, and the logit shift
``d_c`` that makes the expected number of wins in ``[c, c + window)`` equal the realised one is
solved for (:func:`logit_shift`); the timing error of the window is folded into it. Likewise
``v_c`` = log(realised / expected new deals created in the window). Each ``d_c`` holds the binomial
noise of a finite cohort too (``se_c^2``, which the Monte Carlo already simulates), so the shared
variance is the method-of-moments estimate of a random-effects model, shrunk towards a prior:

    sigma^2 = (n0 * sigma0^2 + max(sum_c (d_c^2 - se_c^2), 0)) / (n0 + n)

(``d_c^2``, not its spread around the mean: a model biased at every cut is wrong, not lucky).
The shock is drawn from the posterior predictive of a normal with that unknown variance, a
Student t with ``n0 + n`` degrees of freedom, so that little evidence means heavier tails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

EPS = 1e-9
MAX_SHIFT = 4.0
"""Largest logit shift estimated from one cut (a cut with no win at all would otherwise be -inf)."""
MAX_VOLUME = 2.0
"""Largest log volume multiplier drawn (exp(2) = 7.4 times the expected number of new deals)."""


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of ``p``, clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`logit`."""
    return np.asarray(expit(np.asarray(x, dtype=float)), dtype=float)


def shifted(p: np.ndarray, shift: float | np.ndarray) -> np.ndarray:
    """``sigmoid(logit(p) + shift)``; probabilities of exactly 0 or 1 stay where they are."""
    p = np.asarray(p, dtype=float)
    out = sigmoid(logit(p) + shift)
    return np.where(p <= 0.0, 0.0, np.where(p >= 1.0, 1.0, out))


def logit_shift(
    p: np.ndarray, share: np.ndarray, observed: float, weight: np.ndarray | None = None
) -> tuple[float, float]:
    """The common logit shift that makes a cohort's expected wins in a window match the observed.

    Deal ``i`` wins inside the window with probability ``share_i * sigmoid(logit(p_i) + d)``
    (``share_i``: the part of its win-date distribution falling in the window). Solves
    ``sum_i w_i * share_i * sigmoid(logit(p_i) + d) = observed`` by bisection (the left side
    increases with ``d``), clipped to ``[-MAX_SHIFT, MAX_SHIFT]``.

    Args:
        p: Win probabilities of the cohort, shape (n,).
        share: P(the win falls in the window | won within the horizon), shape (n,).
        observed: Wins realised in the window (with ``weight``: their weights' sum).
        weight: Per deal, what a win counts (e.g. its amount, to match the won amount rather
            than the number of wins); ``None``: 1 each.

    Returns:
        The shift ``d`` and its sampling variance ``se^2`` (delta method at ``d``: the variance of
        the weighted wins over the squared slope of their expectation in ``d``; ``inf`` when the
        cohort carries no information).
    """
    p = np.asarray(p, dtype=float)
    share = np.clip(np.asarray(share, dtype=float), 0.0, 1.0)
    w = np.ones(len(p)) if weight is None else np.maximum(np.asarray(weight, dtype=float), 0.0)

    def expected(d: float) -> float:
        return float((w * share * shifted(p, d)).sum())

    lo, hi = -MAX_SHIFT, MAX_SHIFT
    if observed <= expected(lo):
        d = lo
    elif observed >= expected(hi):
        d = hi
    else:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if expected(mid) < observed:
                lo = mid
            else:
                hi = mid
        d = 0.5 * (lo + hi)
    ps = shifted(p, d)
    q = share * ps
    slope = float((w * share * ps * (1.0 - ps)).sum())
    variance = float((w**2 * q * (1.0 - q)).sum())
    se2 = variance / slope**2 if slope > 1e-12 else float("inf")
    return d, se2


def log_ratio(observed: float, expected: float) -> tuple[float, float]:
    """Log of observed over expected counts (half a count added to both) and its Poisson variance."""
    return float(np.log((observed + 0.5) / (expected + 0.5))), 1.0 / (expected + 0.5)


@dataclass(frozen=True)
class ShockPrior:
    """Prior of a shock's spread: ``sigma`` worth ``weight`` cuts of evidence.

    Attributes:
        sigma: Prior standard deviation (logit scale for the win shock, log scale for volume).
        weight: How many cuts of evidence the prior counts as (``n0``).
    """

    sigma: float
    weight: float


@dataclass(frozen=True)
class ShockScale:
    """A shock's estimated spread: draw ``sigma * t(df)``.

    Attributes:
        sigma: Scale.
        df: Degrees of freedom of the Student t (``n0 + n``).
        cuts: Cuts of evidence used (``n``).
        raw: The evidence alone, ``sqrt(max(mean(d^2 - se^2), 0))`` (nan without evidence).
        mean_shift: Mean of the cuts' shifts (a steady bias of the model; reported, not applied).
    """

    sigma: float
    df: float
    cuts: int
    raw: float = float("nan")
    mean_shift: float = float("nan")

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` shocks (zeros when ``sigma`` is 0)."""
        if self.sigma <= 0.0 or n == 0:
            return np.zeros(n)
        return self.sigma * rng.standard_t(max(self.df, 1.0), n)


def shock_scale(shifts: Sequence[float], variances: Sequence[float], prior: ShockPrior) -> ShockScale:
    """Random-effects spread of per-cut shifts, shrunk towards the prior (see the module doc).

    Args:
        shifts: One estimated shift per cut.
        variances: Their sampling variances (cuts with an infinite or nan variance are skipped).
        prior: The prior.
    """
    d = np.asarray(shifts, dtype=float)
    v = np.asarray(variances, dtype=float)
    keep = np.isfinite(d) & np.isfinite(v)
    d, v = d[keep], v[keep]
    n = len(d)
    excess = float(np.sum(d**2 - v)) if n else 0.0
    sigma2 = (
        (prior.weight * prior.sigma**2 + max(excess, 0.0)) / (prior.weight + n) if prior.weight + n else 0.0
    )
    return ShockScale(
        sigma=float(np.sqrt(sigma2)),
        df=float(prior.weight + n),
        cuts=n,
        raw=float(np.sqrt(max(excess / n, 0.0))) if n else float("nan"),
        mean_shift=float(d.mean()) if n else float("nan"),
    )


def bias_estimate(
    shifts: Sequence[float], variances: Sequence[float], sigma: float, prior_sd: float
) -> float:
    """Shrunk mean of per-cut shifts: the model's steady bias, for recentring the shocks.

    Each ``d_c ~ N(mu, sigma^2 + se_c^2)`` with ``mu ~ N(0, prior_sd^2)``; returns the posterior
    mean of ``mu`` (0 without evidence or with ``prior_sd`` 0).
    """
    d = np.asarray(shifts, dtype=float)
    v = np.asarray(variances, dtype=float)
    keep = np.isfinite(d) & np.isfinite(v)
    if not keep.any() or prior_sd <= 0.0:
        return 0.0
    w = 1.0 / (sigma**2 + v[keep])
    return float((w * d[keep]).sum() / (w.sum() + 1.0 / prior_sd**2))


@dataclass(frozen=True)
class CommonShock:
    """The spreads of the win and volume shocks of one forecast.

    Attributes:
        win: Logit shift of every deal's win probability.
        volume: Log multiplier of the number of deals not created yet.
        evidence: Per-cut evidence behind them (for the output).
        centre: Logit shift added to every draw of the win shock (the model's steady bias, when
            the forecast recentres; 0: the shocks are centred on the model). It is the deal
            models' bias, so the forecast moves the open deals by it, not the deals not created
            yet (their win rate comes from past cohorts, not from those models).
        win_level: Where the open deals' win probability comes from (``deal_win``, ``hazard`` or
            ``blend``: :data:`forecast.revenue.engine.WIN_LEVELS`), chosen with the evidence.
        level_errors: Per candidate level, its WAPE of the won amount over the cuts that chose it.
    """

    win: ShockScale
    volume: ShockScale
    evidence: list[dict[str, float]] = field(default_factory=list)
    centre: float = 0.0
    win_level: str = "deal_win"
    level_errors: dict[str, float] = field(default_factory=dict)

    def draw(self, n_sims: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per simulation: the logit win shift and the log volume multiplier (both shape (n_sims,))."""
        win, _, volume = self.draw_parts(n_sims, rng)
        return win, volume

    def draw_parts(self, n_sims: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per simulation: the open deals' win shift, the new deals' and the log volume multiplier.

        The open deals' shift includes the centre (the deal models' bias), the new deals' does not;
        the same draws as :meth:`draw`.
        """
        noise = self.win.draw(n_sims, rng)
        win = np.clip(self.centre + noise, -MAX_SHIFT, MAX_SHIFT)
        volume = np.clip(self.volume.draw(n_sims, rng), -MAX_VOLUME, MAX_VOLUME)
        return win, np.clip(noise, -MAX_SHIFT, MAX_SHIFT), volume

    def summary(self) -> dict[str, float]:
        """Flat figures for outputs and MLflow."""
        return {
            "win_shock_sigma": self.win.sigma,
            "win_shock_df": self.win.df,
            "win_shock_cuts": float(self.win.cuts),
            "win_shock_evidence_sigma": self.win.raw,
            "win_shock_mean_shift": self.win.mean_shift,
            "win_shock_centre": self.centre,
            "volume_shock_sigma": self.volume.sigma,
            "volume_shock_cuts": float(self.volume.cuts),
            "volume_shock_evidence_sigma": self.volume.raw,
        }


NO_SHOCK = CommonShock(ShockScale(0.0, 1.0, 0), ShockScale(0.0, 1.0, 0))
"""Deals independent given their probabilities (the band of luck alone)."""
