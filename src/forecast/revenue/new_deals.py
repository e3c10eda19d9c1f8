"""Revenue from deals that do not exist yet: creation rate × win rate × cycle length, per group.

Fitted on the history before ``as_of`` only:

- creation rate: deals opened per day in the last ``window_days``, per group;
- win rate: of the deals opened in a *mature* cohort (opened between ``mature_days + cohort_days``
  and ``mature_days`` before as_of, so almost all have closed by as_of), the share won — a cohort
  judged before its slow deals closed would look worse than it is; per group, shrunk towards the
  overall rate with ``shrink`` pseudo-deals;
- cycle length and amount, **together**: the (days from opening to winning, amount) of each deal
  won in the last ``cohort_days``, per group (the overall pairs for a group with fewer than 20).

Cycle and amount are drawn as pairs because they go together: small deals close fast, so the
wins of deals opened in the forecast's own weeks are the small ones. A pool of amounts drawn apart
from their cycles gave those early wins the mean amount of all wins, and the new deals' revenue
came out 2.6 to 8 times the realised one in six simulated worlds (``docs/models.md``). A deal won in
period ``j`` is one of the pairs ``i`` whose cycle ``c_i`` lands it there from one of the creation days
``t`` ahead (``start_j <= t + c_i < end_j``); each pair is weighted by how many creation days do so.
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
        amount_pools: Per group, the won amounts to draw from.
        cycle_pools: Per group, the days from opening to winning of each of those deals (aligned
            with ``amount_pools``: pair ``i`` is one won deal).
    """

    groups: list[str]
    rate_per_day: np.ndarray
    win_rate: np.ndarray
    amount_pools: list[np.ndarray]
    cycle_pools: list[np.ndarray]

    def __post_init__(self) -> None:
        """Refuse pools that are not pairs: an amount without its cycle, or a cycle without its amount."""
        sizes = (len(self.groups), len(self.rate_per_day), len(self.win_rate))
        if len(set(sizes)) != 1 or len(self.amount_pools) != sizes[0] or len(self.cycle_pools) != sizes[0]:
            raise ValueError(
                "a new-deal model needs one rate, win rate, amount pool and cycle pool per group"
            )
        for name, amounts, cycles in zip(self.groups, self.amount_pools, self.cycle_pools, strict=True):
            if len(amounts) != len(cycles):
                raise ValueError(f"group {name!r}: {len(amounts)} amounts for {len(cycles)} cycles")

    def pair_weights(
        self, as_of: pd.Timestamp, periods: list[tuple[pd.Timestamp, pd.Timestamp]]
    ) -> list[np.ndarray]:
        """Per group, shape (K, n_g): how many creation days ahead land each pair's win in each period.

        Deals are opened on each day ``t = as_of + 0, 1, ...`` up to the last period's end; pair
        ``i`` (cycle ``c_i``) wins in period ``[s, e)`` from the days with ``s <= t + c_i < e``. Groups
        sharing one pool (the overall one) share its array, which is read-only.
        """
        day = pd.Timedelta(days=1)
        k = len(periods)
        if k == 0:
            return [np.zeros((0, len(c))) for c in self.cycle_pools]
        last = max(end for _, end in periods)
        n_days = len(pd.date_range(as_of, last, freq="D", inclusive="left"))
        starts = np.array([(start - as_of) / day for start, _ in periods], dtype=float)[:, None]
        ends = np.array([(end - as_of) / day for _, end in periods], dtype=float)[:, None]
        done: dict[int, np.ndarray] = {}
        out = []
        for cycles in self.cycle_pools:
            if id(cycles) not in done:
                c = np.asarray(cycles, dtype=float)[None, :]
                # rounded first: a cycle landing exactly on a bound counts on its side, whatever
                # the float noise of an as-of with a time of day
                lo = np.clip(np.ceil(np.round(starts - c, 9)), 0, n_days)
                hi = np.clip(np.ceil(np.round(ends - c, 9)), 0, n_days)
                weights = np.maximum(hi - lo, 0.0)
                weights.setflags(write=False)
                done[id(cycles)] = weights
            out.append(done[id(cycles)])
        return out

    def expected_wins(
        self,
        as_of: pd.Timestamp,
        periods: list[tuple[pd.Timestamp, pd.Timestamp]],
        weights: list[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Expected wins of deals opened from ``as_of`` on, closing in each period, shape (K, G).

        Args:
            as_of: The forecast time.
            periods: The periods' ``(start, end)``.
            weights: :meth:`pair_weights` of the same periods, where the caller has them.
        """
        weights = self.pair_weights(as_of, periods) if weights is None else weights
        out = np.zeros((len(periods), len(self.groups)))
        means: dict[int, np.ndarray] = {}  # per weights array (groups on the overall pool share one)
        for g, w in enumerate(weights):
            if w.shape[1]:
                if id(w) not in means:
                    means[id(w)] = w.sum(axis=1) / w.shape[1]
                out[:, g] = means[id(w)] * self.rate_per_day[g] * self.win_rate[g]
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
    days = (_dates(won["closed_at"]) - _dates(won["created_at"])) / pd.Timedelta(days=1)
    cycle = days.to_numpy(dtype=float)
    amounts = pd.to_numeric(won["amount"], errors="coerce")
    known = amounts.notna().to_numpy() & np.isfinite(cycle)  # (a win without its dates has no cycle)
    amount_all, cycle_all = amounts.to_numpy(dtype=float)[known], cycle[known]
    won_codes = _codes(won["group"], groups)[known]
    n = len(groups)
    own = zip(_pools(amount_all, won_codes, n), _pools(cycle_all, won_codes, n), strict=True)
    pairs = [(a, c) if len(a) >= 20 else (amount_all, cycle_all) for a, c in own]
    return NewDealModel(
        list(groups), np.asarray(rate, dtype=float), win, [a for a, _ in pairs], [c for _, c in pairs]
    )


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
