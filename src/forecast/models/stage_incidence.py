"""The small-data deal model: each stage's chance of a win within the horizon, censoring-aware.

A CRM with a few months of history has few snapshots whose "won within H days" label is known
(the horizon must lie inside the data), and the deals already closed are mostly the quick
losses. A stage win-rate table read off closed deals inherits that tilt. :class:`StageWinIncidence`
uses every snapshot instead, labelled or not: per stage, the Aalen-Johansen estimate of the
cumulative incidence of a win within H days of the snapshot, with the close (won or lost) as
competing events and the data's end as censoring; each stage's estimate is shrunk towards the
estimate over all stages by ``alpha`` pseudo-deals. With an amount column, each stage is split
further by deal size (the fitting rows' amount terciles), each cell shrunk towards its stage's
estimate the same way: large deals win later, so a stage's rate within H overstates them (measured
on a three-month CRM: 0.36 predicted for the largest third of the open deals, 0.09 won; docs/revenue.md).
It is what ``deal_win`` serves when too few
labelled rows exist to fit and evaluate the learned model (``model_kind`` ``stage_incidence_small_data``,
said in the notes and the card), and a baseline otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from forecast.features.horizon import win_incidence_curve
from forecast.models.size_bands import amounts, size_band, size_edges

_EPS = 1e-6


def win_incidence(durations: np.ndarray, causes: np.ndarray, horizon: float) -> tuple[float, int]:
    """Aalen-Johansen cumulative incidence of cause 1 (won) by ``horizon``, and the rows used.

    Args:
        durations: Days from the snapshot to its close, or to the data's end when open.
        causes: 1 won, 2 lost, 0 still open (censored at ``durations``).
        horizon: Days.

    Returns:
        The incidence (``nan`` without rows) and the number of rows.
    """
    d = np.asarray(durations, dtype=float)
    n = int(np.isfinite(d).sum())
    if n == 0:
        return float("nan"), 0
    times, incidence = win_incidence_curve(d, causes)
    upto = np.searchsorted(times, horizon, side="right")
    return (float(incidence[upto - 1]) if upto else 0.0), n


class StageWinIncidence(ClassifierMixin, BaseEstimator):
    """P(won within the horizon) per stage from every snapshot, censored ones included.

    Args:
        stage_column: The stage column of the (encoded) input.
        horizon_days: The label's horizon H.
        alpha: Shrinkage towards the all-stage estimate (and of a size cell towards its stage's),
            in snapshots.
        amount_column: The deal-size column (``None`` or absent from the input: stages only).
        amount_bins: Size bands (quantiles of the fitting rows' amounts); a row without an amount
            gets its stage's estimate.
    """

    def __init__(
        self,
        stage_column: str = "stage",
        horizon_days: float = 180.0,
        alpha: float = 30.0,
        amount_column: str | None = None,
        amount_bins: int = 3,
    ) -> None:
        self.stage_column = stage_column
        self.horizon_days = horizon_days
        self.alpha = alpha
        self.amount_column = amount_column
        self.amount_bins = amount_bins

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803
        y: Any = None,
        *,
        durations: Any,
        causes: Any,
    ) -> StageWinIncidence:
        """Estimate each stage's incidence of a win within the horizon.

        The estimate needs each row's time to its close and how it closed, not a label: ``y`` is
        not used (a label "won within H" is unknown for rows censored before H).

        Args:
            X: Rows with the stage column.
            y: Not used.
            durations: Days from each row's as_of to its close (or the data's end).
            causes: 1 won, 2 lost, 0 open at the data's end.

        Raises:
            ValueError: No row to estimate from.
        """
        d = np.asarray(durations, dtype=float)
        c = np.asarray(causes, dtype=int)
        overall, n_all = win_incidence(d, c, self.horizon_days)
        if n_all == 0 or not np.isfinite(overall):
            raise ValueError("no deal snapshot to estimate stage win rates from")
        self.overall_ = float(overall)
        stages = X[self.stage_column].astype(object).to_numpy()
        rates: dict[str, float] = {}
        counts: dict[str, int] = {}
        for stage in pd.unique(stages[pd.notna(stages)]):
            sel = stages == stage
            p, n = win_incidence(d[sel], c[sel], self.horizon_days)
            rates[str(stage)] = (n * p + self.alpha * overall) / (n + self.alpha)
            counts[str(stage)] = n
        self.rates_ = rates
        self.counts_ = counts
        self._fit_sizes(X, d, c, stages)
        self.classes_ = np.array([0, 1])  # won within the horizon (1) or not (0): no label to learn them from
        self.p_win_days_ = float(self.horizon_days)  # the days its p_win reaches (models.win_horizon)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_sizes(self, X: pd.DataFrame, d: np.ndarray, c: np.ndarray, stages: np.ndarray) -> None:  # noqa: N803
        """Each (stage, size band)'s incidence, shrunk towards its stage's (no bands: ``edges_`` empty)."""
        self.edges_ = size_edges(X, self.amount_column, self.amount_bins, self.amount_bins * self.alpha)
        self.cell_rates_: dict[tuple[str, int], float] = {}
        self.band_rates_: dict[int, float] = {}
        if not len(self.edges_):
            return
        band = self._bands(amounts(X, str(self.amount_column)))
        for b in np.unique(band[band >= 0]):
            p, n = win_incidence(d[band == b], c[band == b], self.horizon_days)
            self.band_rates_[int(b)] = (
                (n * p + self.alpha * self.overall_) / (n + self.alpha) if n else self.overall_
            )
        for stage, rate in self.rates_.items():
            for b in np.unique(band[(stages == stage) & (band >= 0)]):
                sel = (stages == stage) & (band == b)
                p, n = win_incidence(d[sel], c[sel], self.horizon_days)
                self.cell_rates_[(stage, int(b))] = (
                    (n * p + self.alpha * rate) / (n + self.alpha) if n else rate
                )

    def _bands(self, amount: np.ndarray) -> np.ndarray:
        """Each amount's size band (``-1``: no amount)."""
        return size_band(self.edges_, amount)

    def _stage_p(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Each row's stage estimate (all stages' for unseen or missing stages)."""
        check_is_fitted(self, "rates_")
        stages = X[self.stage_column].astype(object)
        p = stages.map(lambda s: self.rates_.get(str(s), self.overall_) if pd.notna(s) else self.overall_)
        return np.clip(p.to_numpy(dtype=float), _EPS, 1 - _EPS)

    def _p(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        stage_p = self._stage_p(X)
        edges = getattr(self, "edges_", np.zeros(0))  # models fitted before size bands have none
        if not len(edges) or self.amount_column not in X.columns:
            return stage_p
        band = self._bands(amounts(X, str(self.amount_column)))
        stages = X[self.stage_column].astype(object).to_numpy()
        p = stage_p.copy()
        for i, (stage, b) in enumerate(zip(stages, band, strict=True)):
            if b < 0:
                continue
            key = str(stage) if pd.notna(stage) else None
            if key in self.rates_:
                p[i] = self.cell_rates_.get((key, int(b)), stage_p[i])
            else:
                p[i] = self.band_rates_.get(int(b), stage_p[i])
        return np.clip(p, _EPS, 1 - _EPS)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """``(n, 2)`` probabilities: the row's stage estimate (all stages' for unseen ones)."""
        p = self._p(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Labels at 0.5."""
        return self.classes_[(self._p(X) >= 0.5).astype(int)]

    def contributions(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Log-odds contributions, then the bias.

        The stage's shift from all stages' estimate, and the size band's shift from the stage's.
        """
        p, stage_p = self._p(X), self._stage_p(X)
        base = np.log(self.overall_ / (1 - self.overall_)) if 0 < self.overall_ < 1 else 0.0
        out = np.zeros((len(X), len(self.feature_names_in_) + 1))
        names = list(self.feature_names_in_)
        out[:, names.index(self.stage_column)] = np.log(stage_p / (1 - stage_p)) - base
        if self.amount_column in names:
            out[:, names.index(self.amount_column)] = np.log(p / (1 - p)) - np.log(stage_p / (1 - stage_p))
        out[:, -1] = base
        return out
