"""Revenue from deals that do not exist yet: creation rate × win rate × cycle length, per group.

Fitted on the history before ``as_of`` only:

- creation rate: deals opened per day in the last ``window_days``, per group;
- win rate: of the deals opened in a *mature* cohort (opened between ``mature_days + cohort_days``
  and ``mature_days`` before as_of, so almost all have closed by as_of), the share won — a cohort
  judged before its slow deals closed would look worse than it is; per group, shrunk towards the
  overall rate with ``shrink`` pseudo-deals;
- cycle length: days from opening to winning of the deals won in the last ``cohort_days``;
- amounts: those deals' amounts per group (the overall pool for a group with fewer than 20).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd


@dataclass
class NewDealModel:
    """What the future deals of each group look like.

    Attributes:
        groups: Group names, in order.
        rate_per_day: Deals opened per day, per group.
        win_rate: Win rate of a new deal, per group.
        cycle_days: Sorted days from opening to winning (shared by all groups).
        amount_pools: Won amounts to draw from, per group.
    """

    groups: list[str]
    rate_per_day: np.ndarray
    win_rate: np.ndarray
    cycle_days: np.ndarray
    amount_pools: list[np.ndarray]

    def expected_wins(
        self, as_of: pd.Timestamp, periods: list[tuple[pd.Timestamp, pd.Timestamp]]
    ) -> np.ndarray:
        """Expected wins of deals opened from ``as_of`` on, closing in each period, shape (K, G)."""
        k = len(periods)
        out = np.zeros((k, len(self.groups)))
        if len(self.cycle_days) == 0 or k == 0:
            return out
        last = max(end for _, end in periods)
        created = pd.date_range(as_of, last, freq="D", inclusive="left")
        offsets = ((created - as_of) / pd.Timedelta(days=1)).to_numpy()
        cycle = self.cycle_days
        n = len(cycle)
        for j, (start, end) in enumerate(periods):
            lo = (start - as_of) / pd.Timedelta(days=1) - offsets
            hi = (end - as_of) / pd.Timedelta(days=1) - offsets
            share = (np.searchsorted(cycle, hi, side="left") - np.searchsorted(cycle, lo, side="left")) / n
            out[j] = share.sum() * self.rate_per_day * self.win_rate
        return out


def fit_new_deal_model(
    deals: pd.DataFrame,
    as_of: pd.Timestamp,
    groups: list[str],
    *,
    window_days: float = 180,
    mature_days: float = 180,
    cohort_days: float = 365,
    shrink: float = 20.0,
) -> NewDealModel:
    """Fit the new-deal model from the deals known before ``as_of``.

    Args:
        deals: Deals with ``group``, ``created_at``, ``closed_at``, ``outcome`` and ``amount``, as
            known at as_of (closes after it not visible).
        as_of: The forecast time.
        groups: Group names (every deal's ``group`` is one of them).
        window_days: Look-back of the creation rate.
        mature_days: Age of the win-rate cohort's youngest deals.
        cohort_days: Length of the win-rate cohort and of the cycle-length window.
        shrink: Pseudo-deals pulling a group's win rate towards the overall one.
    """
    created = _dates(deals["created_at"])
    closed = _dates(deals["closed_at"])
    recent = deals[(created >= as_of - pd.Timedelta(days=window_days)) & (created < as_of)]
    span = min(window_days, max((as_of - created.min()) / pd.Timedelta(days=1), 1.0)) if len(deals) else 1.0
    counts = recent["group"].value_counts()
    rate = counts.reindex(pd.Index(groups, dtype=object), fill_value=0).to_numpy(dtype=np.int64) / span
    c_hi = as_of - pd.Timedelta(days=mature_days)
    cohort = deals[(created >= c_hi - pd.Timedelta(days=cohort_days)) & (created < c_hi)]
    won_cohort = (cohort["outcome"] == "won") & (_dates(cohort["closed_at"]) < as_of)
    overall = float(won_cohort.mean()) if len(cohort) else float((deals["outcome"] == "won").mean() or 0.0)
    # each group's cohort and wins counted once by the group's code (whole numbers: exact)
    codes = _codes(cohort["group"], groups)
    listed = codes >= 0
    size = np.bincount(codes[listed], minlength=len(groups)).astype(float)
    wins = np.bincount(codes[listed], weights=won_cohort.to_numpy(dtype=float)[listed], minlength=len(groups))
    win = (wins + shrink * overall) / (size + shrink)
    won = deals[
        (deals["outcome"] == "won") & (closed < as_of) & (closed >= as_of - pd.Timedelta(days=cohort_days))
    ]
    cycle = np.sort(
        ((_dates(won["closed_at"]) - _dates(won["created_at"])) / pd.Timedelta(days=1)).to_numpy()
    )
    amounts = pd.to_numeric(won["amount"], errors="coerce")
    pool_all = amounts.dropna().to_numpy(dtype=float)
    known = amounts.notna().to_numpy()
    pools = _pools(amounts.to_numpy(dtype=float)[known], _codes(won["group"], groups)[known], len(groups))
    pools = [pool if len(pool) >= 20 else pool_all for pool in pools]
    return NewDealModel(list(groups), np.asarray(rate, dtype=float), win, cycle.astype(float), pools)


def _dates(values: pd.Series) -> pd.Series[pd.Timestamp]:
    """``pd.to_datetime(values)``, without its work where they are dates already (the same values)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return cast("pd.Series[pd.Timestamp]", values)
    return pd.to_datetime(values)


def _codes(values: pd.Series, groups: list[str]) -> np.ndarray:
    """Position of each value in ``groups`` (-1: not one of them)."""
    return pd.Index(groups, dtype=object).get_indexer(pd.Index(values.to_numpy(dtype=object)))


def _pools(amounts: np.ndarray, codes: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Per group, its amounts in their order (``codes``: each amount's group, -1 for none)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_groups + 1) - 0.5)
    return [amounts[order[bounds[g] : bounds[g + 1]]] for g in range(n_groups)]
