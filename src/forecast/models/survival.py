"""Time to close: a discrete-time hazard model (LightGBM or logistic) and a stage-only baseline.

A deal snapshot's time to close is right-censored when the deal is still open at the data's end.
The discrete-time model splits the future into intervals (``edges``, in days after as_of) and
learns the *hazard* ``h_k(x)``: the probability that a deal still open at the start of interval
``k`` closes within it. Each snapshot contributes one row per interval it was observed at risk
(person-period expansion); a censored snapshot simply stops contributing when the data ends, so
censoring needs no special case and no deal is assumed lost or won. The survival curve is
``S(t_k) = prod_{j<k} (1 - h_j)``; within an interval the hazard is spread evenly in time.

Everything a deal's close-date distribution answers comes from ``S``: P(closes within 30 / 60 /
90 days) = ``1 - S(t)``, quantiles of the close date, and the slip risk P(closes after the rep's
expected close date) = ``S(days to that date)``.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from forecast.models.pipeline import (
    TREE_DEFAULTS,
    early_stopping_kwargs,
    isotonic_predict,
    lgbm_classifier,
    predict_threads,
)
from forecast.models.size_bands import amounts, size_band, size_edges

WIN_WITHIN_ROWS = 2_000
"""Rows :meth:`DiscreteTimeHazard.win_within` predicts at a time (their interval rows: ~25 MB)."""
DEFAULT_EDGES: tuple[float, ...] = (0, 7, 14, 21, 30, 45, 60, 75, 90, 120, 150, 180, 240, 365)
"""Interval edges in days after as_of (the last one is the longest horizon modelled)."""

INTERVAL = "__interval"
"""Column holding the interval index in the expanded (person-period) table."""

Explainer = Callable[[Any, np.ndarray, int, int], np.ndarray]
"""TreeSHAP of one class's trees: ``(booster, rows, iterations, class) -> (n, features + 1)``."""

IntervalProba = Callable[[np.ndarray, int], np.ndarray]
"""Class probabilities of the first ``k`` interval rows of encoded rows: ``(codes, k) -> (n, k, classes)``."""

STACKED_ROWS = 16
"""Curves of at most this many rows are calibrated at every edge at once (:class:`_StackedInterpolation`)."""


def expand_person_period(
    X: pd.DataFrame,  # noqa: N803
    durations: np.ndarray,
    events: np.ndarray,
    edges: Sequence[float],
    causes: np.ndarray | None = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """One row per (snapshot, interval at risk), with the event flag of that interval.

    A snapshot with duration ``d`` (days from as_of to the close, or to the data's end when
    censored) is at risk in interval ``k`` when ``d > edges[k]``. The row's label is 1 when the
    close falls in that interval (``event`` and ``d <= edges[k + 1]``). An interval the data ends
    inside is kept only if the close was observed in it: a censored partial interval says nothing
    about closing before its end.

    With ``causes`` (an integer cause per snapshot, e.g. 1 = won, 2 = lost), the label of the
    interval where the close falls is that cause instead of 1 (competing risks).

    Returns:
        The expanded features (with :data:`INTERVAL`) and the labels (0 = still open).
    """
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    lo, hi = np.asarray(edges[:-1], dtype=float), np.asarray(edges[1:], dtype=float)
    at_risk = d[:, None] > lo[None, :]
    closes_here = e[:, None] & (d[:, None] <= hi[None, :]) & at_risk
    # a censored row counts in an interval only if it was followed to the interval's end
    whole = d[:, None] >= hi[None, :]
    keep = at_risk & (whole | closes_here)
    rows, ks = np.nonzero(keep)
    out = X.iloc[rows].reset_index(drop=True)
    out[INTERVAL] = ks.astype(float)
    labels = closes_here[rows, ks].astype(int)
    if causes is not None:
        labels = labels * np.asarray(causes, dtype=int)[rows]
    return out, labels


def survival_from_hazards(hazards: np.ndarray) -> np.ndarray:
    """``S`` at each edge (first column 1.0) from per-interval hazards of shape (n, K)."""
    h = np.minimum(np.maximum(np.asarray(hazards, dtype=float), 0.0), 1.0)  # np.clip's values, faster
    return np.concatenate([np.ones((len(h), 1)), np.cumprod(1.0 - h, axis=1)], axis=1)


def survival_at(surv: np.ndarray, edges: Sequence[float], days: np.ndarray | float) -> np.ndarray:
    """``S(days)`` per row, interpolating linearly in time inside each interval.

    Beyond the last edge the last value is returned (the model does not look further); before 0
    the deal is certainly open (1.0).
    """
    e = np.asarray(edges, dtype=float)
    t = np.broadcast_to(np.asarray(days, dtype=float), (surv.shape[0],)).copy()
    t = np.clip(t, 0.0, e[-1])
    k = np.clip(np.searchsorted(e, t, side="right") - 1, 0, len(e) - 2)
    frac = (t - e[k]) / (e[k + 1] - e[k])
    rows = np.arange(surv.shape[0])
    return surv[rows, k] + frac * (surv[rows, k + 1] - surv[rows, k])


def survival_quantile(surv: np.ndarray, edges: Sequence[float], q: float) -> np.ndarray:
    """Days until ``P(closed) >= q`` per row (``nan`` when not reached within the last edge)."""
    e = np.asarray(edges, dtype=float)
    target = 1.0 - q
    below = surv <= target
    first = np.where(below.any(axis=1), below.argmax(axis=1), -1)
    out = np.full(surv.shape[0], np.nan)
    ok = first > 0
    k = first[ok]
    rows = np.flatnonzero(ok)
    s0, s1 = surv[rows, k - 1], surv[rows, k]
    frac = np.where(s0 > s1, (s0 - target) / np.where(s0 > s1, s0 - s1, 1.0), 0.0)
    out[rows] = e[k - 1] + frac * (e[k] - e[k - 1])
    out[first == 0] = 0.0
    return out


def survival_at_columns(surv: np.ndarray, edges: Sequence[float], days: np.ndarray) -> np.ndarray:
    """:func:`survival_at` of several day counts per row at once: ``days`` (n, m) -> (n, m).

    Column ``j`` is ``survival_at(surv, edges, days[:, j])`` to the last bit (the same operations
    on each element); one call instead of one per column is what a request of a few deals saves.
    """
    e = np.asarray(edges, dtype=float)
    t = np.clip(np.asarray(days, dtype=float), 0.0, e[-1])
    k = np.clip(np.searchsorted(e, t, side="right") - 1, 0, len(e) - 2)
    frac = (t - e[k]) / (e[k + 1] - e[k])
    rows = np.arange(surv.shape[0])[:, None]
    return surv[rows, k] + frac * (surv[rows, k + 1] - surv[rows, k])


def survival_quantiles(surv: np.ndarray, edges: Sequence[float], qs: Sequence[float]) -> np.ndarray:
    """:func:`survival_quantile` of several ``q`` at once, shape (n, len(qs)), each column to the last bit."""
    e = np.asarray(edges, dtype=float)
    target = np.array([1.0 - q for q in qs], dtype=float)
    below = surv[:, None, :] <= target[None, :, None]
    first = np.where(below.any(axis=2), below.argmax(axis=2), -1)
    out = np.full(first.shape, np.nan)
    rows, cols = np.nonzero(first > 0)
    k = first[rows, cols]
    goal = target[cols]
    s0, s1 = surv[rows, k - 1], surv[rows, k]
    frac = np.where(s0 > s1, (s0 - goal) / np.where(s0 > s1, s0 - s1, 1.0), 0.0)
    out[rows, cols] = e[k - 1] + frac * (e[k] - e[k - 1])
    out[first == 0] = 0.0
    return out


@dataclass(frozen=True)
class CurveCalibrationSet:
    """What :meth:`DiscreteTimeHazard.fit` calibrates its cumulative curves on.

    The curves are uncalibrated predictions for rows the hazard did not train on (e.g. the
    out-of-fold curves of :func:`~forecast.models.crossfit.fit_hazard`).

    Attributes:
        closed_by: Uncalibrated P(closed by each edge), shape (n, len(edges)).
        won_by: Uncalibrated P(won by each edge), or ``None`` without causes.
        durations: Days from as_of to the close (or to the data's end).
        events: Whether the close was observed.
        followup: Days each row was followed.
        causes: Cause of each close (1 = won), or ``None``: then P(won by t) stays uncalibrated.
        min_rows: Fewest rows followed to an edge for its calibrator.
    """

    closed_by: np.ndarray
    won_by: np.ndarray | None
    durations: np.ndarray
    events: np.ndarray
    followup: np.ndarray
    causes: np.ndarray | None = None
    min_rows: int = 200


def edge_calibrators(edges: Sequence[float], cal: CurveCalibrationSet) -> dict[str, list[Any]]:
    """Isotonic calibrators of P(closed by t) and P(won by t) at each edge ``t`` (``None``: left as is).

    At edge ``t`` only the rows followed for at least ``t`` days count (all of them, whatever
    happened, so quick closes are not over-represented); an edge with fewer than ``cal.min_rows``
    such rows, or one class only, stays uncalibrated. Hazard models fitted by log-loss come out
    too smooth here (early closes of slow deals over-predicted, of fast deals under-predicted).

    Args:
        edges: The interval edges in days.
        cal: The curves and outcomes to calibrate on.

    Returns:
        ``{"closed": [...], "won": [...]}``, one calibrator or ``None`` per edge.
    """
    from sklearn.isotonic import IsotonicRegression

    d, e, f = (np.asarray(a, dtype=float) for a in (cal.durations, cal.events, cal.followup))
    won_cause = None if cal.causes is None else np.asarray(cal.causes) == 1
    calibrators: dict[str, list[Any]] = {"closed": [], "won": []}
    for j, t in enumerate(edges):
        known = f >= t
        for name, curve, hit in (
            ("closed", cal.closed_by, (e > 0) & (d <= t)),
            ("won", cal.won_by, None if won_cause is None else (e > 0) & (d <= t) & won_cause),
        ):
            if curve is None or hit is None or j == 0 or known.sum() < cal.min_rows:
                calibrators[name].append(None)
                continue
            y = hit[known].astype(float)
            if y.min() == y.max():
                calibrators[name].append(None)
                continue
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            calibrators[name].append(iso.fit(curve[known, j], y))
    return calibrators


def edge_rows(edges: Sequence[float], followup: np.ndarray) -> np.ndarray:
    """Rows followed for at least each edge's days: what each edge's calibrator learns from.

    The weights of :func:`monotone_edges` (edge 0, where every curve is 0, gets all rows).
    """
    f = np.asarray(followup, dtype=float)
    rows = np.array([(f >= t).sum() for t in edges], dtype=float)
    if len(rows):
        rows[0] = len(f)
    return rows


EDGE_MONOTONE = ("max", "pava")
"""How :class:`DiscreteTimeHazard` keeps its calibrated cumulative curves from falling across edges."""

PAVA_ROWS = 4_096
"""Rows projected at a time by :func:`monotone_edges` (their interval means take rows x edges^2 floats)."""


def monotone_edges(curve: np.ndarray, method: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Each row of per-edge calibrated values made non-decreasing across the edges, a new array.

    ``max``: the running maximum (every upward step of one edge's calibrator noise is carried to
    all later edges). ``pava``: the weighted least-squares non-decreasing fit of each row (the
    pool-adjacent-violators solution), each edge weighted by the rows its calibrator learnt from, so
    the thinly supported far edges move most. Rows already non-decreasing, and rows with a
    non-finite value, are the running maximum's, to the last bit (for the first, themselves).

    Args:
        curve: Calibrated values, shape (n, edges); a curve may stop at an earlier edge.
        method: One of :data:`EDGE_MONOTONE`.
        weights: Per edge (at least ``curve.shape[1]`` of them), for ``pava``; ``None``: equal.
    """
    out = np.maximum.accumulate(curve, axis=1)
    if method == "max" or curve.shape[1] < 2:
        return out
    if method != "pava":
        raise ValueError(f"edge_monotone must be one of {', '.join(EDGE_MONOTONE)}: {method!r}")
    width = curve.shape[1]
    w = np.ones(width) if weights is None else np.maximum(np.asarray(weights, dtype=float)[:width], 1.0)
    falls = (np.diff(curve, axis=1) < 0).any(axis=1) & np.isfinite(curve).all(axis=1)
    rows = np.flatnonzero(falls)
    for start in range(0, len(rows), PAVA_ROWS):
        part = rows[start : start + PAVA_ROWS]
        out[part] = _isotonic_rows(curve[part], w)
    return out


def _isotonic_rows(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The weighted non-decreasing least-squares fit of each row (min-max formula), shape of ``y``.

    The fit at edge ``j`` is ``max over i <= j of min over k >= j of mean(y[i..k])`` (weighted):
    every interval's mean at once, for the few edges of a curve.
    """
    n, m = y.shape
    means = np.full((n, m, m), np.inf)  # means[:, i, k]: the weighted mean of edges i..k (k >= i)
    wy = y * w
    for i in range(m):
        means[:, i, i:] = np.cumsum(wy[:, i:], axis=1) / np.cumsum(w[i:])
    # min over k >= j of means[:, i, k], then max over i <= j
    low = np.minimum.accumulate(means[:, :, ::-1], axis=2)[:, :, ::-1]
    below_i, below_j = np.tril_indices(m, -1)
    low[:, below_i, below_j] = -np.inf  # i > j: no interval
    fit = low.max(axis=1)
    return np.maximum.accumulate(fit, axis=1)  # equal means computed apart may differ in the last bit


class _HazardBase(BaseEstimator):
    """What every time-to-close model answers, given :meth:`survival`."""

    edges: Sequence[float]
    proba_days: float

    def survival(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """``S`` at each edge, shape (n, len(edges))."""
        raise NotImplementedError

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """``[P(open after proba_days), P(closes within proba_days)]`` per row."""
        check_is_fitted(self)
        p = 1.0 - survival_at(self.survival(X), self.edges, self.proba_days)
        p = np.clip(p, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Median days to close (``nan`` beyond the last edge)."""
        check_is_fitted(self)
        return survival_quantile(self.survival(X), self.edges, 0.5)


class DiscreteTimeHazard(_HazardBase):
    """Discrete-time hazard model with LightGBM (the interval index is one more feature).

    Args:
        edges: Interval edges in days after as_of.
        proba_days: The horizon of :meth:`predict_proba` (P(closes within it)).
        n_estimators: Maximum boosting rounds (early stopping on the validation rows).
        learning_rate: Shrinkage.
        num_leaves: Leaves per tree.
        min_child_samples: Minimum rows per leaf.
        subsample: Row subsampling per round.
        colsample_bytree: Feature subsampling per tree.
        reg_lambda: L2 regularisation.
        early_stopping_rounds: Stop after this many rounds without validation improvement.
        random_state: Seed.
        edge_monotone: How the calibrated cumulative curves are kept from falling across edges
            (:func:`monotone_edges`): ``max``, the running maximum, or ``pava``, the weighted
            least-squares fit of each row across the edges (an option: measured no better on the
            served p_win, docs/models.md, "A monotone fit across edges instead of the running maximum").
    """

    edge_monotone: str = "max"  # models pickled before it kept the running maximum

    def __init__(
        self,
        edges: Sequence[float] = DEFAULT_EDGES,
        proba_days: float = 30.0,
        n_estimators: int = TREE_DEFAULTS.n_estimators,
        learning_rate: float = TREE_DEFAULTS.learning_rate,
        num_leaves: int = TREE_DEFAULTS.num_leaves,
        min_child_samples: int = TREE_DEFAULTS.min_child_samples,
        subsample: float = TREE_DEFAULTS.subsample,
        colsample_bytree: float = TREE_DEFAULTS.colsample_bytree,
        reg_lambda: float = TREE_DEFAULTS.reg_lambda,
        early_stopping_rounds: int = TREE_DEFAULTS.early_stopping_rounds,
        random_state: int = 0,
        edge_monotone: str = "max",
    ) -> None:
        self.edges = edges
        self.proba_days = proba_days
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.random_state = random_state
        self.edge_monotone = edge_monotone

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803
        durations: np.ndarray,
        events: np.ndarray,
        eval_set: tuple[Any, ...] | None = None,
        causes: np.ndarray | None = None,
        calibration_set: CurveCalibrationSet | None = None,
    ) -> DiscreteTimeHazard:
        """Fit the hazard on the expanded training rows (early stopping on the expanded ``eval_set``).

        Args:
            X: Encoded features.
            durations: Days from as_of to the close (or to the data's end when censored).
            events: Whether the close was observed.
            eval_set: ``(X, durations, events)`` or ``(X, durations, events, causes)`` of the
                validation rows.
            causes: Optional cause of each close (1 = won, 2 = lost): the model then learns the
                cause-specific hazards (a multiclass LightGBM), so the timing of wins is known
                apart from the timing of losses (:meth:`win_incidence`).
            calibration_set: Uncalibrated curves of rows these trees never trained on, and what
                happened to those rows: the cumulative curves' isotonic calibrators learn from them
                (:func:`edge_calibrators`). Without it the curves stay uncalibrated.
        """
        self.competing_ = causes is not None
        xl, yl = expand_person_period(X, durations, events, self.edges, causes)
        self.model_ = lgbm_classifier(
            self, **({"objective": "multiclass", "num_class": 3} if self.competing_ else {})
        )
        kw: dict[str, Any] = {"callbacks": []}
        if eval_set is not None:
            v_causes = eval_set[3] if self.competing_ and len(eval_set) > 3 else None
            xv, yv = expand_person_period(eval_set[0], eval_set[1], eval_set[2], self.edges, v_causes)
            metric = "multi_logloss" if self.competing_ else "binary_logloss"
            kw = early_stopping_kwargs(xv, yv, metric, self.early_stopping_rounds)
        self.model_.fit(xl, yl, **kw)
        self.best_iteration_ = int(self.model_.best_iteration_ or self.n_estimators)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.classes_ = np.array([0, 1])
        if self.edge_monotone not in EDGE_MONOTONE:
            raise ValueError(
                f"edge_monotone must be one of {', '.join(EDGE_MONOTONE)}: {self.edge_monotone!r}"
            )
        self.calibrators_: dict[str, list[Any]] = (
            {} if calibration_set is None else edge_calibrators(self.edges, calibration_set)
        )
        self.edge_rows_ = None if calibration_set is None else edge_rows(self.edges, calibration_set.followup)
        return self

    def _interval_proba(
        self,
        X: pd.DataFrame,  # noqa: N803
        trees: int | None = None,
        k: int | None = None,
    ) -> np.ndarray:
        """Class probabilities per (row, interval), shape (n, K, classes), from the first ``trees`` trees.

        ``k``: only the first ``k`` intervals (default: all of them).
        """
        check_is_fitted(self, "model_")
        k = len(self.edges) - 1 if k is None else k
        n = len(X)
        wide = X.iloc[np.repeat(np.arange(n), k)].reset_index(drop=True)
        wide[INTERVAL] = np.tile(np.arange(k, dtype=float), n)
        p = self._class_proba(wide, trees)
        return p.reshape(n, k, p.shape[1])

    def interval_proba_codes(self, codes: np.ndarray, k: int | None = None) -> np.ndarray:
        """:meth:`_interval_proba` from the encoded float matrix of ``X`` (categories as codes).

        Args:
            codes: The model's input columns as LightGBM sees them (category codes, ``nan`` missing),
                e.g. from :meth:`~forecast.models.pipeline.CategoryEncoder.encode`.
            k: Only the first ``k`` intervals (default: all of them).
        """
        k = len(self.edges) - 1 if k is None else k
        n = len(codes)
        wide = np.empty((n, k, codes.shape[1] + 1), dtype=np.float64)
        wide[:, :, :-1] = codes[:, None, :]  # no n*k temporary copy of the rows
        wide[:, :, -1] = np.arange(k, dtype=float)
        p = self._class_proba(wide.reshape(n * k, -1))
        return p.reshape(n, k, p.shape[1])

    def _class_proba(self, wide: Any, trees: int | None = None) -> np.ndarray:
        """What ``model_.predict_proba`` returns, from the booster directly (frame or float matrix)."""
        threads = predict_threads(len(wide))
        iteration = self.best_iteration_ if trees is None else trees
        p = np.asarray(self.model_.booster_.predict(wide, num_iteration=iteration, num_threads=threads))
        return p if p.ndim == 2 else np.vstack((1.0 - p, p)).transpose()

    def hazards(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Per-interval hazards of closing (any outcome), shape (n, len(edges) - 1)."""
        p = self._interval_proba(X)
        return 1.0 - p[:, :, 0]

    def _raw_curves(self, X: pd.DataFrame, trees: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: N803
        """Uncalibrated P(closed by each edge) and, with causes, P(won by each edge)."""
        return self._curves_from(self._interval_proba(X, trees))

    def raw_curves(self, X: pd.DataFrame, trees: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: N803
        """Uncalibrated P(closed by each edge) and, with causes, P(won by each edge), shape (n, edges).

        Args:
            X: Encoded features.
            trees: Use the first ``trees`` trees (default: ``best_iteration_``);
                :func:`~forecast.models.crossfit.fit_hazard` reads its held-out folds at the tree
                count chosen over all folds this way.
        """
        return self._raw_curves(X, trees)

    def _curves_from(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        surv = survival_from_hazards(1.0 - p[:, :, 0])
        if not getattr(self, "competing_", False):
            return 1.0 - surv, None
        won = surv[:, :-1] * p[:, :, 1]
        return 1.0 - surv, np.concatenate([np.zeros((len(won), 1)), np.cumsum(won, axis=1)], axis=1)

    def _calibrated(self, curve: np.ndarray, name: str) -> np.ndarray:
        calibrators = getattr(self, "calibrators_", {}).get(name)  # models logged before fit set it
        if not calibrators:
            return curve
        finite = bool(np.isfinite(curve).all())
        if finite and len(curve) <= STACKED_ROWS:
            stacked = _stacked_interpolation(self, (calibrators,), curve.shape[1])
            if stacked is not None:
                return self._monotone(stacked.apply(curve))
        out = curve.copy()
        for j, iso in enumerate(calibrators[: curve.shape[1]]):  # a curve may stop at an earlier edge
            if iso is None:
                continue
            table = _interpolation(iso) if finite else None
            if table is not None:
                x, y, low, high = table
                # np.clip's wrapper costs more than the interpolation for one deal; the same values
                out[:, j] = np.interp(np.minimum(np.maximum(curve[:, j], low), high), x, y)
            else:
                out[:, j] = isotonic_predict(iso, curve[:, j])
        return self._monotone(out)  # a cumulative curve never falls

    def _monotone(self, curve: np.ndarray) -> np.ndarray:
        """Calibrated values made non-decreasing across the edges (:func:`monotone_edges`)."""
        if self.edge_monotone == "max":  # the default: no call on a single deal's path
            return np.maximum.accumulate(curve, axis=1)
        return monotone_edges(curve, self.edge_monotone, getattr(self, "edge_rows_", None))

    def _causal(self) -> bool:
        """Whether a calibrated curve's edges never depend on later edges (the running maximum)."""
        return self.edge_monotone == "max" or not getattr(self, "calibrators_", {})

    def _won_incidence(self, closed_by: np.ndarray, won_by: np.ndarray) -> np.ndarray:
        """Calibrated P(won by each edge), never above calibrated P(closed by it) (:meth:`win_incidence`).

        A few rows' two curves are interpolated at once (:class:`_StackedInterpolation`).
        """
        calibrators = getattr(self, "calibrators_", {})
        won, closed = calibrators.get("won"), calibrators.get("closed")
        n, width = closed_by.shape
        if (
            won
            and closed
            and n <= STACKED_ROWS
            and bool(np.isfinite(closed_by).all() & np.isfinite(won_by).all())
        ):
            stacked = _stacked_interpolation(self, (won, closed), width)
            if stacked is not None:
                both = np.empty((n, 2 * width))
                both[:, :width], both[:, width:] = won_by, closed_by
                curves = stacked.apply(both).reshape(n, 2, width)
                return np.minimum(self._monotone(curves[:, 0]), self._monotone(curves[:, 1]))
        return np.minimum(self._calibrated(won_by, "won"), self._calibrated(closed_by, "closed"))

    def survival(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """``S`` at each edge, shape (n, len(edges)); calibrated when :meth:`fit` had a calibration set."""
        closed_by, _ = self._raw_curves(X)
        return 1.0 - self._calibrated(closed_by, "closed")

    def survival_codes(self, codes: np.ndarray) -> np.ndarray:
        """:meth:`survival` from the encoded float matrix of ``X`` (see :meth:`interval_proba_codes`)."""
        closed_by, _ = self._curves_from(self.interval_proba_codes(codes))
        return 1.0 - self._calibrated(closed_by, "closed")

    def win_incidence(self, X: pd.DataFrame) -> np.ndarray | None:  # noqa: N803
        """P(won by each edge) (the cumulative incidence of winning), or ``None`` without causes.

        Calibrated when :meth:`fit` had a ``calibration_set``, and never above P(closed by the same edge).
        """
        closed_by, won_by = self._raw_curves(X)
        if won_by is None:
            return None
        return np.minimum(self._calibrated(won_by, "won"), self._calibrated(closed_by, "closed"))

    def win_within(
        self,
        X: pd.DataFrame | np.ndarray,  # noqa: N803
        days: float,
        rows: int = WIN_WITHIN_ROWS,
        interval_proba: IntervalProba | None = None,
    ) -> np.ndarray:
        """P(won within ``days``) per row: :meth:`win_incidence` read at ``days``, the same numbers.

        Only the intervals up to the first edge at or after ``days`` are predicted when the calibrated
        curves keep their running maximum (the earlier edges then do not depend on the later ones;
        the least-squares fit across edges, ``edge_monotone="pava"``, reads them all),
        ``rows`` rows at a time (the interval rows of a whole batch would take 13 times its memory).

        Args:
            X: Encoded features, as a frame or as the float matrix of :meth:`interval_proba_codes`.
            days: Days after the snapshot.
            rows: Rows predicted at a time.
            interval_proba: What :meth:`interval_proba_codes` returns for a float matrix and ``k``,
                computed another way (the array scoring path's, the same numbers); default: it.

        Raises:
            ValueError: The model was fitted without causes (no win incidence).
        """
        if not getattr(self, "competing_", False):
            raise ValueError("the hazard was fitted without causes: it has no win incidence")
        k, at, frac = self.win_within_interval(days)
        proba = self.interval_proba_codes if interval_proba is None else interval_proba
        out = np.empty(len(X))
        for start in range(0, len(X), rows):
            part = X.iloc[start : start + rows] if isinstance(X, pd.DataFrame) else X[start : start + rows]
            p = self._interval_proba(part, k=k) if isinstance(part, pd.DataFrame) else proba(part, k)
            closed_by, won_by = self._curves_from(p)
            assert won_by is not None
            incidence = self._won_incidence(closed_by, won_by)
            out[start : start + len(part)] = incidence[:, at] + frac * (
                incidence[:, at + 1] - incidence[:, at]
            )
        return out

    def win_within_interval(self, days: float) -> tuple[int, int, float]:
        """What :meth:`win_within` reads at ``days``: ``(k, at, frac)``.

        ``k``: the intervals predicted (up to the first edge at or after ``days``, or all of them
        when a calibrated edge depends on later ones: :meth:`_causal`); ``at`` and ``frac``:
        ``survival_at``'s interpolation at ``days`` (its interval and share of it), with Python's
        floats (the same IEEE arithmetic as numpy's, without its per-call cost).
        """
        edges = [float(e) for e in self.edges]
        k = min(max(bisect.bisect_left(edges, float(days)), 1), len(edges) - 1)
        t = min(max(float(days), 0.0), edges[k])
        at = min(max(bisect.bisect_right(edges, t, 0, k + 1) - 1, 0), k - 1)
        return k if self._causal() else len(edges) - 1, at, (t - edges[at]) / (edges[at + 1] - edges[at])

    def contributions(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """TreeSHAP contributions to the log-odds of closing in the first ``proba_days`` interval.

        The interval feature is fixed at the first interval and its contribution folded into the
        bias, so the columns match ``X``'s features plus a bias (as for the classifiers).
        """
        wide = X.reset_index(drop=True).copy()
        wide[INTERVAL] = 0.0
        return self._first_interval_contributions(wide, len(wide))

    def contributions_codes(self, codes: np.ndarray, explain: Explainer | None = None) -> np.ndarray:
        """:meth:`contributions` from the encoded float matrix of ``X`` (the same numbers).

        Args:
            codes: The encoded rows (see :meth:`interval_proba_codes`).
            explain: Computes the TreeSHAP values of one class's trees, as
                ``explain(booster, rows, iterations, class)`` (the class's block of ``pred_contrib``);
                default: ``pred_contrib`` itself.
        """
        wide = np.zeros((len(codes), codes.shape[1] + 1), dtype=np.float64)
        wide[:, :-1] = codes
        return self._first_interval_contributions(wide, len(wide), explain)

    def _first_interval_contributions(
        self, wide: Any, n: int, explain: Explainer | None = None
    ) -> np.ndarray:
        competing = getattr(self, "competing_", False)
        if explain is not None:  # "still open" is class 0 of the competing model, negated
            contrib = explain(self.model_.booster_, wide, self.best_iteration_, 0)
            contrib = -contrib if competing else contrib
        else:
            threads = predict_threads(n)
            contrib = np.asarray(
                self.model_.booster_.predict(
                    wide, num_iteration=self.best_iteration_, pred_contrib=True, num_threads=threads
                )
            )
            if competing:  # one block per class: keep "still open", negated
                width = contrib.shape[1] // 3
                contrib = -contrib[:, :width]
        out = np.delete(contrib, -2, axis=1)
        out[:, -1] += contrib[:, -2]
        return out


class LogisticHazard(_HazardBase):
    """Discrete-time logistic hazard: the parametric alternative (one intercept per interval).

    Categorical columns are one-hot encoded, numeric ones imputed (with missing indicators) and
    scaled; the interval enters as its own categorical, so the baseline hazard is free and the
    features shift it proportionally on the log-odds scale.
    """

    def __init__(
        self,
        categorical: Sequence[str] = (),
        numeric: Sequence[str] = (),
        edges: Sequence[float] = DEFAULT_EDGES,
        proba_days: float = 30.0,
        C: float = 0.1,  # noqa: N803
    ) -> None:
        self.categorical = categorical
        self.numeric = numeric
        self.edges = edges
        self.proba_days = proba_days
        self.C = C

    def _design(self) -> Any:
        parts: list[Any] = [
            ("interval", OneHotEncoder(handle_unknown="ignore"), [INTERVAL]),
        ]
        if self.categorical:
            parts.append(("categorical", OneHotEncoder(handle_unknown="ignore"), list(self.categorical)))
        if self.numeric:
            parts.append(
                (
                    "numeric",
                    make_pipeline(
                        SimpleImputer(add_indicator=True, keep_empty_features=True), StandardScaler()
                    ),
                    list(self.numeric),
                )
            )
        return ColumnTransformer(parts)

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        out = X[[*self.categorical, *self.numeric]].copy()
        for col in self.categorical:
            out[col] = out[col].astype(object).where(out[col].notna(), "(missing)").astype(str)
        for col in self.numeric:
            out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
        return out

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803
        durations: np.ndarray,
        events: np.ndarray,
        eval_set: Any = None,
    ) -> LogisticHazard:
        """Fit on the expanded rows (``eval_set`` is accepted and unused)."""
        xl, yl = expand_person_period(self._frame(X), durations, events, self.edges)
        self.model_ = make_pipeline(self._design(), LogisticRegression(C=self.C, max_iter=2000))
        self.model_.fit(xl, yl)
        self.classes_ = np.array([0, 1])
        return self

    def survival(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """``S`` at each edge, shape (n, len(edges))."""
        k = len(self.edges) - 1
        base = self._frame(X)
        n = len(base)
        wide = base.iloc[np.repeat(np.arange(n), k)].reset_index(drop=True)
        wide[INTERVAL] = np.tile(np.arange(k, dtype=float), n)
        h = np.asarray(self.model_.predict_proba(wide)[:, 1]).reshape(n, k)
        return survival_from_hazards(h)


class StageKaplanMeier(_HazardBase):
    """Stage-only baseline: the Kaplan-Meier curve of the training snapshots in the same stage.

    What a CRM's "average days left in this stage" report amounts to, done right for censoring.
    A stage never seen in training gets the curve of all training snapshots.

    Fitted with ``causes`` (1 won, 2 lost), it also keeps each stage's cumulative incidence of a
    win (:meth:`win_incidence`): wins and losses keep their own timings, as in the learned hazard.
    With ``amount_column`` (and enough sized snapshots), each stage is split into size bands
    (quantiles of the fitting rows' amounts) whose per-interval hazards are shrunk towards their
    stage's by ``alpha`` pseudo-snapshots at risk: large deals close later and win less often, which
    a curve per stage cannot say.

    Args:
        stage_column: The stage column.
        edges: Interval edges in days after the snapshot.
        proba_days: The horizon of :meth:`predict_proba`.
        amount_column: The deal-size column (``None`` or absent from the input: stages only).
        amount_bins: Size bands.
        alpha: Shrinkage of a size band's hazards towards its stage's, in snapshots at risk.
    """

    # defaults for models pickled before these parameters existed (sklearn's get_params, repr and
    # clone read every parameter of __init__ from the object)
    amount_column: str | None = None
    amount_bins: int = 3
    alpha: float = 30.0

    def __init__(
        self,
        stage_column: str = "stage",
        edges: Sequence[float] = DEFAULT_EDGES,
        proba_days: float = 30.0,
        amount_column: str | None = None,
        amount_bins: int = 3,
        alpha: float = 30.0,
    ) -> None:
        self.stage_column = stage_column
        self.edges = edges
        self.proba_days = proba_days
        self.amount_column = amount_column
        self.amount_bins = amount_bins
        self.alpha = alpha

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803
        durations: np.ndarray,
        events: np.ndarray,
        eval_set: Any = None,
        causes: np.ndarray | None = None,
    ) -> StageKaplanMeier:
        """One discrete-time Kaplan-Meier curve per stage (and one overall), and size bands.

        Args:
            X: Rows with the stage column (and the amount column for size bands).
            durations: Days from each snapshot to its close (or the data's end).
            events: Whether the close was observed.
            eval_set: Not used.
            causes: 1 won, 2 lost, 0 open (``None``: closes only, no win incidence).
        """
        d, e = np.asarray(durations, dtype=float), np.asarray(events, dtype=bool)
        won = None if causes is None else (np.asarray(causes) == 1) & e
        stages = self._stages(X)
        counts = {"__all__": self._counts(d, e, won)}
        for stage in pd.unique(stages):
            mask = stages == stage
            if mask.sum() >= 20:
                counts[str(stage)] = self._counts(d[mask], e[mask], None if won is None else won[mask])
                if won is not None:
                    # with causes (the served small-data curves, not the stage-only baseline) each
                    # stage is shrunk towards all snapshots' hazards: a stage whose few deals never
                    # won keeps a small win incidence with a timing, so its deals' p_win is booked
                    counts[str(stage)] = self._shrunk(counts[str(stage)], counts["__all__"])
        self.curves_: dict[str, np.ndarray] = {k: self._survival_of(c) for k, c in counts.items()}
        self.competing_ = won is not None
        self.win_curves_: dict[str, np.ndarray] = (
            {k: self._won_of(c) for k, c in counts.items()} if self.competing_ else {}
        )
        self._fit_sizes(X, d, e, won, stages, counts)
        self.classes_ = np.array([0, 1])
        return self

    def _stages(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        col = X[self.stage_column].astype(object)
        return col.where(col.notna(), "(missing)").astype(str).to_numpy()

    def _counts(self, d: np.ndarray, e: np.ndarray, won: np.ndarray | None) -> np.ndarray:
        """Per interval: snapshots at risk, closes, and wins, shape (3, len(edges) - 1)."""
        causes = None if won is None else np.where(won, 1, 2)
        xl, y = expand_person_period(pd.DataFrame({"i": np.arange(len(d))}), d, e, self.edges, causes)
        k = len(self.edges) - 1
        interval = xl[INTERVAL].to_numpy().astype(int)
        y = np.asarray(y)
        return np.vstack(
            [
                np.bincount(interval, minlength=k).astype(float),
                np.bincount(interval, weights=(y > 0).astype(float), minlength=k),
                np.bincount(interval, weights=(y == 1).astype(float), minlength=k),
            ]
        )

    def _shrunk(self, c: np.ndarray, parent: np.ndarray) -> np.ndarray:
        """Counts plus ``alpha`` pseudo-snapshots at risk in every interval.

        The pseudo-snapshots close and win at ``parent``'s hazards, so a win hazard stays at or
        below the closing one, as in each part.
        """
        closing, winning = self._hazards(parent)
        return np.vstack([c[0] + self.alpha, c[1] + self.alpha * closing, c[2] + self.alpha * winning])

    @staticmethod
    def _hazards(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at_risk = np.maximum(c[0], 1.0)
        return np.where(c[0] > 0, c[1] / at_risk, 0.0), np.where(c[0] > 0, c[2] / at_risk, 0.0)

    def _survival_of(self, c: np.ndarray) -> np.ndarray:
        return survival_from_hazards(self._hazards(c)[0][None, :])[0]

    def _won_of(self, c: np.ndarray) -> np.ndarray:
        """P(won by each edge): the survival before each interval times its win hazard, summed."""
        closing, winning = self._hazards(c)
        surv = survival_from_hazards(closing[None, :])[0]
        return np.concatenate([[0.0], np.cumsum(surv[:-1] * winning)])

    def _fit_sizes(
        self,
        X: pd.DataFrame,  # noqa: N803
        d: np.ndarray,
        e: np.ndarray,
        won: np.ndarray | None,
        stages: np.ndarray,
        counts: dict[str, np.ndarray],
    ) -> None:
        """Each (stage, size band)'s curves, its hazards shrunk towards its stage's."""
        self.size_edges_ = size_edges(X, self.amount_column, self.amount_bins, self.amount_bins * self.alpha)
        self.cell_curves_: dict[tuple[str, int], tuple[np.ndarray, np.ndarray | None]] = {}
        if not len(self.size_edges_):
            return
        band = self._bands(amounts(X, str(self.amount_column)))
        for stage in pd.unique(stages):
            parent = counts.get(str(stage), counts["__all__"])
            for b in np.unique(band[(stages == stage) & (band >= 0)]):
                sel = (stages == stage) & (band == b)
                shrunk = self._shrunk(self._counts(d[sel], e[sel], None if won is None else won[sel]), parent)
                self.cell_curves_[(str(stage), int(b))] = (
                    self._survival_of(shrunk),
                    self._won_of(shrunk) if won is not None else None,
                )

    def _bands(self, amount: np.ndarray) -> np.ndarray:
        """Each amount's size band (``-1``: no amount)."""
        return size_band(self.size_edges_, amount)

    def _rows(self, X: pd.DataFrame, which: int, sized: bool = True) -> np.ndarray:  # noqa: N803
        """Each row's curve: its (stage, size band)'s, else its stage's, else all snapshots'.

        Args:
            X: The rows.
            which: 0 the survival curves, 1 the win incidences.
            sized: Whether a row's size band is read (``False``: its stage's curve).
        """
        curves = self.curves_ if which == 0 else self.win_curves_
        overall = curves["__all__"]
        if not len(X):
            return np.empty((0, len(self.edges)))
        stages = self._stages(X)
        out = np.vstack([curves.get(s, overall) for s in stages])
        cells = getattr(self, "cell_curves_", {})  # models fitted before size bands have none
        if sized and cells and self.amount_column in X.columns:
            band = self._bands(amounts(X, str(self.amount_column)))
            for i, (stage, b) in enumerate(zip(stages, band, strict=True)):
                cell = cells.get((stage, int(b))) if b >= 0 else None
                if cell is not None and cell[which] is not None:
                    out[i] = cell[which]
        return out

    def survival(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The curve of each row's stage (and size band)."""
        return self._rows(X, 0)

    def win_incidence(self, X: pd.DataFrame) -> np.ndarray | None:  # noqa: N803
        """P(won by each edge) of each row's stage (and size band); ``None`` fitted without causes."""
        if not getattr(self, "competing_", False):
            return None
        return self._rows(X, 1)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Log-odds contributions to closing within ``proba_days``, then the bias.

        The stage's shift from all snapshots' curve, and the size band's shift from the stage's
        (the reasons of ``/time_to_close`` when these curves serve); every other column 0.
        """

        def logit(curves: np.ndarray) -> np.ndarray:
            p = np.clip(1.0 - survival_at(curves, self.edges, self.proba_days), 1e-6, 1 - 1e-6)
            return np.asarray(np.log(p / (1 - p)), dtype=np.float64)

        names = list(X.columns)
        out = np.zeros((len(X), len(names) + 1))
        base = float(logit(self.curves_["__all__"][None, :])[0])
        stage = logit(self._rows(X, 0, sized=False)) if len(X) else np.zeros(0)
        if self.stage_column in names:
            out[:, names.index(self.stage_column)] = stage - base
        if self.amount_column is not None and self.amount_column in names and len(X):
            out[:, names.index(self.amount_column)] = logit(self._rows(X, 0)) - stage
        out[:, -1] = base
        return out


_TABLES: weakref.WeakKeyDictionary[Any, tuple[np.ndarray, np.ndarray, float, float] | None] = (
    weakref.WeakKeyDictionary()
)


def _interpolation(iso: Any) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """``(x, y, low, high)`` with ``isotonic_predict(iso, v) == np.interp(np.clip(v, low, high), x, y)``.

    For finite float64 ``v``: sklearn clips to the training range and calls scipy's linear
    ``interp1d``, which hands a float64 1-D table to ``np.interp`` itself; here ``np.interp`` is
    called directly (the wrappers' checks cost ten times the interpolation for one deal). Built once
    per calibrator, compared with ``isotonic_predict`` on every threshold, the midpoints between them
    and values beyond both ends; ``None`` (use ``isotonic_predict``) for any other calibrator or on
    any difference.
    """
    if iso not in _TABLES:
        try:
            _TABLES[iso] = _interpolation_table(iso)
        except (AttributeError, TypeError, ValueError, IndexError):
            _TABLES[iso] = None
    return _TABLES[iso]


def _interpolation_table(iso: Any) -> tuple[np.ndarray, np.ndarray, float, float] | None:
    """:func:`_interpolation`'s table, built and checked (``None`` when it would differ)."""
    from scipy.interpolate import interp1d

    f = iso.f_
    if not isinstance(f, interp1d) or f._call is not interp1d._call_linear_np or iso.out_of_bounds != "clip":
        return None
    x, y = np.asarray(f.x), np.asarray(f.y)
    low, high = float(iso.X_min_), float(iso.X_max_)
    plain = x.dtype == np.float64 and y.dtype == np.float64 and x.ndim == y.ndim == 1
    if not plain or np.asarray(iso.X_thresholds_).dtype != np.float64 or not x[0] <= low <= high <= x[-1]:
        return None
    probe = np.concatenate([x, (x[1:] + x[:-1]) / 2, [low - 1.0, high + 1.0, -1e9, 1e9]])
    if not np.array_equal(np.interp(np.clip(probe, low, high), x, y), isotonic_predict(iso, probe)):
        return None
    return x, y, low, high


_STACKED: weakref.WeakKeyDictionary[Any, dict[tuple[int, ...], tuple[Any, _StackedInterpolation | None]]] = (
    weakref.WeakKeyDictionary()
)


def _stacked_interpolation(
    owner: Any, curves: tuple[list[Any], ...], width: int
) -> _StackedInterpolation | None:
    """The checked :class:`_StackedInterpolation` of curves side by side, or ``None``.

    Args:
        owner: The model the calibrators belong to (the cache's key).
        curves: Per curve its calibrators (one per edge, ``None``: not calibrated); the curves'
            first ``width`` columns are placed side by side, in this order.
        width: Columns of each curve.

    Built once per calibrator lists and ``width``; ``None``: one interpolation per edge.
    """
    per_owner = _STACKED.setdefault(owner, {})
    key = (width, *(id(c) for c in curves))
    cached = per_owner.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], curves, strict=True)):
        return cached[1]
    calibrators: list[Any] = []
    for listed in curves:
        calibrators += [*listed[:width], *([None] * (width - len(listed[:width])))]
    stacked = _StackedInterpolation.build(calibrators, len(calibrators))
    per_owner[key] = (curves, stacked)
    return stacked


class _StackedInterpolation:
    """:meth:`DiscreteTimeHazard._calibrated`'s interpolations at every edge at once, for a few rows.

    ``np.interp`` one edge at a time costs a call per edge; here its arithmetic runs on all edges
    in whole-array operations: the edges' tables (:func:`_interpolation`) end to end, each value's
    interval found by counting the thresholds of its table at or below it (``np.interp``'s binary
    search finds the same one), then ``np.interp``'s own formula: ``y[j]`` at a threshold or beyond
    the last, else ``slope * (v - x[j]) + y[j]`` with ``slope = (y[j+1] - y[j]) / (x[j+1] - x[j])``
    (computed once per interval, as ``np.interp`` does for long inputs). Built only where every
    table is strictly increasing and finite, and compared with ``np.interp`` on every threshold,
    the midpoints between them and values beyond both ends when built.

    Args:
        columns: The curve's columns that are calibrated.
        tables: Their ``(x, y, low, high)`` tables.
        width: Columns of the curves.
    """

    def __init__(
        self, columns: list[int], tables: list[tuple[np.ndarray, np.ndarray, float, float]], width: int
    ) -> None:
        self.width = width
        self.columns = np.array(columns, dtype=np.intp)
        self.x = np.concatenate([t[0] for t in tables])
        self.y = np.concatenate([t[1] for t in tables])
        sizes = np.array([len(t[0]) for t in tables], dtype=np.intp)
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self.ends = self.starts + sizes - 1
        self.owner = np.repeat(np.arange(len(tables)), sizes)
        self.low = np.array([t[2] for t in tables])
        self.high = np.array([t[3] for t in tables])
        # np.interp's slope of each interval, as it computes it (the last of each table: unused)
        following = np.minimum(np.arange(len(self.x)) + 1, np.repeat(self.ends, sizes))
        with np.errstate(divide="ignore", invalid="ignore"):
            self.slope = (self.y[following] - self.y) / (self.x[following] - self.x)

    @classmethod
    def build(cls, calibrators: list[Any], width: int) -> _StackedInterpolation | None:
        """From the calibrators of the first ``width`` edges (``None``: not calibrated), checked."""
        columns, tables = [], []
        for j, iso in enumerate(calibrators[:width]):
            if iso is None:
                continue
            table = _interpolation(iso)
            if table is None:
                return None
            x, y = table[0], table[1]
            if len(x) < 1 or not (np.isfinite(x).all() and np.isfinite(y).all()) or (np.diff(x) <= 0).any():
                return None
            columns.append(j)
            tables.append(table)
        if not columns:
            return None
        stacked = cls(columns, tables, width)
        # every threshold, the midpoints between them and values beyond both ends, in every column
        probe = [
            np.concatenate([x, (x[1:] + x[:-1]) / 2, [low - 1.0, high + 1.0]]) for x, _, low, high in tables
        ]
        rows = max(len(p) for p in probe)
        curve = np.zeros((rows, width))
        expected = np.zeros((rows, width))
        for j, p, (x, y, low, high) in zip(columns, probe, tables, strict=True):
            curve[:, j] = np.resize(p, rows)
            expected[:, j] = np.interp(np.minimum(np.maximum(curve[:, j], low), high), x, y)
        if not np.array_equal(stacked.apply(curve)[:, columns], expected[:, columns]):
            return None
        return stacked

    def apply(self, curve: np.ndarray) -> np.ndarray:
        """The curve with its calibrated columns interpolated (finite values), a new array."""
        out = curve.copy()
        v = np.minimum(np.maximum(curve[:, self.columns], self.low), self.high)
        below = self.x[None, :] <= v[:, self.owner]
        j = np.add.reduceat(below, self.starts, axis=1, dtype=np.intp) - 1 + self.starts
        x0, y0 = self.x[j], self.y[j]
        value = self.slope[j] * (v - x0) + y0
        out[:, self.columns] = np.where((j == self.ends) | (x0 == v), y0, value)
        return out
