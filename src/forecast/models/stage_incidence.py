"""The small-data deal model: each stage's chance of a win within the horizon, censoring-aware.

A CRM with a few months of history has few snapshots whose "won within H days" label is known
(the horizon must lie inside the data), and the deals already closed are mostly the quick
losses. A stage win-rate table read off closed deals inherits that tilt. :class:`StageWinIncidence`
uses every snapshot instead, labelled or not: per stage, the Aalen-Johansen estimate of the
cumulative incidence of a win within H days of the snapshot, with the close (won or lost) as
competing events and the data's end as censoring; each stage's estimate is shrunk towards the
estimate over all stages by ``alpha`` pseudo-deals. It is what ``deal_win`` serves when too few
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
        alpha: Shrinkage towards the all-stage estimate, in snapshots.
    """

    def __init__(self, stage_column: str = "stage", horizon_days: float = 180.0, alpha: float = 30.0) -> None:
        self.stage_column = stage_column
        self.horizon_days = horizon_days
        self.alpha = alpha

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
        self.classes_ = np.array([0, 1])  # won within the horizon (1) or not (0): no label to learn them from
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _p(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        check_is_fitted(self, "rates_")
        stages = X[self.stage_column].astype(object)
        p = stages.map(lambda s: self.rates_.get(str(s), self.overall_) if pd.notna(s) else self.overall_)
        return np.clip(p.to_numpy(dtype=float), _EPS, 1 - _EPS)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """``(n, 2)`` probabilities: the row's stage estimate (all stages' for unseen ones)."""
        p = self._p(X)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Labels at 0.5."""
        return self.classes_[(self._p(X) >= 0.5).astype(int)]

    def contributions(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Log-odds contributions: the stage's shift from all stages' estimate, then the bias."""
        p = self._p(X)
        base = np.log(self.overall_ / (1 - self.overall_)) if 0 < self.overall_ < 1 else 0.0
        out = np.zeros((len(X), len(self.feature_names_in_) + 1))
        where = list(self.feature_names_in_).index(self.stage_column)
        out[:, where] = np.log(p / (1 - p)) - base
        out[:, -1] = base
        return out
