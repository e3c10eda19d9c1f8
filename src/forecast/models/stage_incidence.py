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

from forecast.features.horizon import levelled_off_at, win_incidence_curve
from forecast.models.size_bands import amounts, size_band, size_edges
from forecast.models.stage_chain import chain_incidence, first_event_incidence

_EPS = 1e-6


def win_incidence(
    durations: np.ndarray,
    causes: np.ndarray,
    horizon: float,
    tail_days: float | None = None,
    levelled_at: float | None = None,
) -> tuple[float, int]:
    """Aalen-Johansen cumulative incidence of cause 1 (won) by ``horizon``, and the rows used.

    With ``tail_days`` beyond ``horizon``, the incidence is carried on to ``tail_days``
    (:func:`extrapolated_incidence`); where the closes have levelled off at ``levelled_at``
    (:func:`~forecast.features.horizon.levelled_off_at`: deals open well past the longest close
    seen), it is read from the data up to that close instead, since none comes later.

    Args:
        durations: Days from the snapshot to its close, or to the data's end when open.
        causes: 1 won, 2 lost, 0 still open (censored at ``durations``).
        horizon: Days read from the data.
        tail_days: Days to carry the incidence on to (``None``: ``horizon``).
        levelled_at: The longest close, where the closes have levelled off there (``None``: not).

    Returns:
        The incidence (``nan`` without rows) and the number of rows.
    """
    d = np.asarray(durations, dtype=float)
    n = int(np.isfinite(d).sum())
    if n == 0:
        return float("nan"), 0
    times, incidence = win_incidence_curve(d, causes)
    upto = np.searchsorted(times, horizon, side="right")
    read = float(incidence[upto - 1]) if upto else 0.0
    if tail_days is None or tail_days <= horizon:
        return read, n
    c = np.asarray(causes, dtype=int)
    if levelled_at is not None:
        upto = np.searchsorted(times, min(float(tail_days), max(levelled_at, horizon)), side="right")
        return (float(incidence[upto - 1]) if upto else 0.0), n
    return extrapolated_incidence(d, c, horizon, tail_days, read), n


def extrapolated_incidence(
    durations: np.ndarray, causes: np.ndarray, horizon: float, tail_days: float, read: float
) -> float:
    """The win incidence by ``tail_days``, from the one read at ``horizon`` and the last window's hazards.

    Beyond the follow-up the data reach nothing is observed; the deals still open at ``horizon``
    (the all-cause Kaplan-Meier survival ``S(horizon)``) are taken to close at the win and loss
    hazards of the last read window, ``(horizon / 2, horizon]``, held constant:
    ``read + S(horizon) * h_won / h * (1 - exp(-h * (tail_days - horizon)))``, ``h`` the two
    hazards' sum. A CRM whose history stops its follow-up at a few weeks would otherwise give
    every deal only the wins of those weeks (measured on a three-month CRM: 0.26 predicted for
    deals of which 0.41 were eventually won; docs/models.md). It carries on only what the last
    window shows: wins that start only after the follow-up (a segment whose deals all win late) stay
    unseen.

    Args:
        durations: Days from each snapshot to its close, or to the data's end when open.
        causes: 1 won, 2 lost, 0 still open.
        horizon: The days read from the data.
        tail_days: The days to carry the incidence on to.
        read: The incidence read at ``horizon``.

    Returns:
        The incidence by ``tail_days`` (``read`` where the last window saw no close).
    """
    finite = np.isfinite(durations)
    parts = first_event_incidence(durations[finite], causes[finite], horizon, tail_days, 0)
    return read if parts is None else float(read + parts[1])


def _share(read: float, far: float) -> float:
    """The share of the part not won by the read days that is won by the far ones."""
    return float(np.clip((far - read) / max(1.0 - read, _EPS), 0.0, 1.0))


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
        tail_days: Days beyond ``horizon_days`` that p_win reaches; ``None``: p_win stops at
            ``horizon_days``. Each stage's incidence is carried on with its last read window's
            hazards (:func:`extrapolated_incidence`, shrunk like the read one), as the share ``k``
            of what the stage had not won by ``horizon_days`` that it wins after; every estimate of
            the stage (its size cells too) gets the same share of its own part not yet won,
            ``p + (1 - p) * k``, which keeps it below 1 and keeps the order within the stage. A
            size cell holds too few late closes to carry its own tail on (docs/models.md).
            :meth:`read_proba` still gives the incidence read at ``horizon_days`` (what the revenue
            forecast spreads over the close model's timing).
        chain_weight: With the stage moves given to :meth:`fit`, the weight of each stage's
            eventual win chained through them (:func:`~forecast.models.stage_chain.chain_incidence`)
            in its carried-on estimate; the rest is the stage's own tail. The two extrapolations err
            on opposite sides (docs/models.md, "A stage's tail chained through its moves"); 0: the
            stage's own tail alone.
    """

    tail_days: float | None = None  # models pickled before the tail have none (get_params, clone)
    chain_weight: float = 0.5  # nor the chain through the stages' moves

    def __init__(
        self,
        stage_column: str = "stage",
        horizon_days: float = 180.0,
        alpha: float = 30.0,
        amount_column: str | None = None,
        amount_bins: int = 3,
        tail_days: float | None = None,
        chain_weight: float = 0.5,
    ) -> None:
        self.stage_column = stage_column
        self.horizon_days = horizon_days
        self.alpha = alpha
        self.amount_column = amount_column
        self.amount_bins = amount_bins
        self.tail_days = tail_days
        self.chain_weight = chain_weight

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803
        y: Any = None,
        *,
        durations: Any,
        causes: Any,
        moves: tuple[Any, Any] | None = None,
        deals: Any = None,
    ) -> StageWinIncidence:
        """Estimate each stage's incidence of a win within the horizon.

        The estimate needs each row's time to its close and how it closed, not a label: ``y`` is
        not used (a label "won within H" is unknown for rows censored before H).

        Args:
            X: Rows with the stage column.
            y: Not used.
            durations: Days from each row's as_of to its close (or the data's end).
            causes: 1 won, 2 lost, 0 open at the data's end.
            moves: Each row's days to its deal's next stage change and the stage moved to
                (:func:`~forecast.models.stage_chain.stage_moves`); with a tail, each stage's is
                chained through them (:func:`~forecast.models.stage_chain.chain_incidence`).
                ``None``: each stage's tail from its own closes alone.
            deals: Each row's deal: with a tail, where at least 20 deals stayed open 1.25 times
                past the longest close seen (``levelled_at_``), the closes have levelled off and
                no win is carried past that close, nor chained. ``None``: not checked.

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
        keys = np.array([str(s) if pd.notna(s) else None for s in stages], dtype=object)
        self._fit_sizes(X, d, c, keys)
        self.levelled_at_ = (
            None if deals is None else levelled_off_at(d, c > 0, np.asarray(deals, dtype=object))
        )
        self._fit_tail(d, c, keys, moves)
        self.classes_ = np.array([0, 1])  # won within the horizon (1) or not (0): no label to learn them from
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _fit_sizes(self, X: pd.DataFrame, d: np.ndarray, c: np.ndarray, stages: np.ndarray) -> None:  # noqa: N803
        """Each (stage, size band)'s incidence, shrunk towards its stage's (no bands: ``edges_`` empty).

        ``stages`` holds each row's stage key (``str`` of its stage, ``None`` without one).
        """
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

    def _fit_tail(
        self, d: np.ndarray, c: np.ndarray, stages: np.ndarray, moves: tuple[Any, Any] | None = None
    ) -> None:
        """Each stage's share of its part not won by ``horizon_days`` won by ``tail_days`` (0: no tail).

        ``stages`` holds each row's stage key, as for :meth:`_fit_sizes`. With ``moves``, each
        stage's eventual win is also chained through its moves to the other stages, shrunk towards
        its own carried-on estimate, and the two are weighed by ``chain_weight`` (``chained_``
        says whether the chain was used).
        """
        self.chained_ = False
        tail = self.tail_days is not None and self.tail_days > self.horizon_days
        # the days its p_win reaches (models.win_horizon), and the days read from the data
        self.p_win_days_ = float(self.tail_days if tail else self.horizon_days)  # type: ignore[arg-type]
        self.read_days_ = float(self.horizon_days)
        self.tail_share_all_ = 0.0
        self.tail_share_: dict[str, float] = {}
        if not tail:
            return
        levelled = getattr(self, "levelled_at_", None)
        far, _ = win_incidence(d, c, self.horizon_days, self.tail_days, levelled)
        self.tail_share_all_ = _share(self.overall_, far)
        for stage, rate in self.rates_.items():
            sel = stages == stage
            p, n = win_incidence(d[sel], c[sel], self.horizon_days, self.tail_days, levelled)
            self.tail_share_[stage] = _share(rate, (n * p + self.alpha * far) / (n + self.alpha))
        # data that follow deals past every close already hold the wins after the moves: no chain
        if moves is None or not self.tail_share_ or self.chain_weight <= 0 or levelled is not None:
            return
        keys = list(self.rates_)
        own = np.array([self.carried(self.rates_[k], k) for k in keys])
        chained = chain_incidence(
            d,
            c,
            stages,
            (np.asarray(moves[0], dtype=float), np.asarray(moves[1], dtype=object)),
            keys,
            self.horizon_days,
            self.p_win_days_,
            self.alpha,
            own,
        )
        if chained is None:
            return
        self.chained_ = True
        blended = self.chain_weight * chained + (1.0 - self.chain_weight) * own
        for key, q in zip(keys, blended, strict=True):
            self.tail_share_[key] = _share(self.rates_[key], float(q))

    def _bands(self, amount: np.ndarray) -> np.ndarray:
        """Each amount's size band (``-1``: no amount)."""
        return size_band(self.edges_, amount)

    def tail_share(self, stage: Any) -> float:
        """The share of its part not won by ``read_days_`` that ``stage`` wins by ``p_win_days_``.

        All stages' share for an unseen or missing stage; 0 without a tail (or for a model fitted
        before the tail).
        """
        shares = getattr(self, "tail_share_", {})
        every = getattr(self, "tail_share_all_", 0.0)
        return shares.get(str(stage), every) if stage is not None and pd.notna(stage) else every

    def carried(self, read: Any, stage: Any = None) -> Any:
        """An estimate read at ``read_days_`` carried on with ``stage``'s share: ``p + (1 - p) * k``."""
        return np.clip(read + (1.0 - read) * self.tail_share(stage), _EPS, 1 - _EPS)

    def _carried(self, X: pd.DataFrame, read: np.ndarray) -> np.ndarray:  # noqa: N803
        """``read`` carried on with each row's stage's share (:meth:`tail_share`)."""
        if not hasattr(self, "tail_share_all_"):  # models fitted before the tail have none
            return read
        k = X[self.stage_column].astype(object).map(self.tail_share).to_numpy(dtype=float)
        return np.clip(read + (1.0 - read) * k, _EPS, 1 - _EPS)

    def _stage_p(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Each row's stage estimate (all stages' for unseen or missing stages), with its tail."""
        return self._carried(X, self._stage_read(X))

    def _stage_read(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Each row's stage estimate read at ``horizon_days``."""
        check_is_fitted(self, "rates_")
        stages = X[self.stage_column].astype(object)
        p = stages.map(lambda s: self.rates_.get(str(s), self.overall_) if pd.notna(s) else self.overall_)
        return np.clip(p.to_numpy(dtype=float), _EPS, 1 - _EPS)

    def _p(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Each row's estimate with its stage's tail."""
        return self._carried(X, self._read(X))

    def _read(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Each row's estimate read at ``horizon_days``: its size cell's, else its stage's."""
        stage_p = self._stage_read(X)
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

    def read_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """P(won within ``read_days_``), the incidence read from the data, without the carried-on tail."""
        return self._read(X)

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Labels at 0.5."""
        return self.classes_[(self._p(X) >= 0.5).astype(int)]

    def contributions(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Log-odds contributions, then the bias.

        The stage's shift from all stages' estimate, and the size band's shift from the stage's.
        """
        p, stage_p = self._p(X), self._stage_p(X)
        overall = float(self.carried(self.overall_))
        base = np.log(overall / (1 - overall)) if 0 < self.overall_ < 1 else 0.0
        out = np.zeros((len(X), len(self.feature_names_in_) + 1))
        names = list(self.feature_names_in_)
        out[:, names.index(self.stage_column)] = np.log(stage_p / (1 - stage_p)) - base
        if self.amount_column in names:
            out[:, names.index(self.amount_column)] = np.log(p / (1 - p)) - np.log(stage_p / (1 - stage_p))
        out[:, -1] = base
        return out
