"""Vectorised Monte Carlo of revenue per period and group (pure numpy, no I/O).

Open deals: each deal ``i`` is won *and closes in period k* with probability ``q[i, k]`` (its win
probability times the share of its close-date distribution falling in the period); the periods
are exclusive, so one uniform draw per deal and simulation decides which period (if any) books it.
Revenue of period ``k`` in simulation ``s`` is the sum of the amounts booked there.

Deals not created yet: wins of future deals closing in period ``k`` arrive as a Poisson number
with mean ``mu[k, g]`` per group, each worth an amount drawn from the group's recent won deals
(a compound Poisson sum; Poisson thinning makes the periods independent).

Common shocks (:mod:`forecast.revenue.shock`): given a logit ``shift`` per simulation, every
open deal's win probability in that simulation is ``sigmoid(logit(p) + shift)`` (its timing
unchanged); given a ``factor`` per simulation (and group), the new deals' Poisson means are
multiplied by it. Without them the deals are independent given their probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def booking_probabilities(p_win: np.ndarray, close_share: np.ndarray) -> np.ndarray:
    """``q[i, k]`` = P(deal i is won and closes in period k).

    Args:
        p_win: Win probability per deal, shape (n,).
        close_share: P(close in period k | the deal closes within the win horizon), shape (n, K);
            rows sum to at most 1.
    """
    q = np.clip(p_win, 0.0, 1.0)[:, None] * np.clip(close_share, 0.0, 1.0)
    total = q.sum(axis=1, keepdims=True)
    return np.where(total > 1.0, q / np.maximum(total, 1e-12), q)


def simulate_open_deals(
    q: np.ndarray,
    amounts: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    n_sims: int,
    rng: np.random.Generator,
    chunk: int = 500,
    *,
    p_win: np.ndarray | None = None,
    shift: np.ndarray | None = None,
    by_codes_from: int = 16,
) -> np.ndarray:
    """Simulated revenue of the open deals, shape (n_sims, K, n_groups).

    The booked amounts of each simulation, period and group are the sums of a float32 matrix product
    of the booked deals and a dense amount-per-group matrix. Its cost grows with the number of
    groups: beyond ``by_codes_from`` groups they are summed by one ``bincount`` of the booked deals'
    group codes instead, in float64 (the amounts as float32). The two agree exactly while every
    partial sum is a whole multiple of the amounts' finest power of two below 2**24 of them (float32
    then rounds nothing); a block of simulations where that does not hold is summed by the product.

    Args:
        q: Booking probabilities (n, K) from :func:`booking_probabilities`.
        amounts: Deal amounts (n,); missing amounts count 0.
        groups: Group index of each deal in ``[0, n_groups)``.
        n_groups: Number of groups.
        n_sims: Simulations.
        rng: Random generator.
        chunk: Simulations per block (memory: chunk × n float32).
        p_win: The win probabilities behind ``q`` (needed with ``shift``).
        shift: Logit shift of all win probabilities per simulation, shape (n_sims,): in
            simulation ``s`` deal ``i`` books in period ``k`` with probability
            ``q[i, k] * sigmoid(logit(p_i) + shift_s) / p_i``.
        by_codes_from: More groups than this are summed by their codes (the same numbers).
    """
    n, k = q.shape
    out = np.zeros((n_sims, k, n_groups), dtype=np.float64)
    if n == 0 or n_sims == 0:
        return out
    amount32 = np.nan_to_num(amounts.astype(np.float32))
    cum = np.cumsum(q, axis=1).astype(np.float32)
    sums = _GroupSums(amount32, np.asarray(groups, dtype=np.intp), n_groups, cum)
    p32 = np.clip(p_win if p_win is not None else np.zeros(n), 0.0, 1.0).astype(np.float32)
    p_loss = (1.0 - p32) if shift is not None and p_win is not None else None
    for lo in range(0, n_sims, chunk):
        hi = min(lo + chunk, n_sims)
        u = rng.random((hi - lo, n), dtype=np.float32)
        if p_loss is not None and shift is not None:
            # deal i books in period j when u < cum[i, j] · p_s / p, i.e. u · p / p_s < cum[i, j];
            # with p_s = sigmoid(logit(p) + d): p / p_s = p + (1 - p) · exp(-d)
            loss_scale = np.exp(-shift[lo:hi]).astype(np.float32)
            u *= p32[None, :] + p_loss[None, :] * loss_scale[:, None]
        block = sums.by_codes(u) if n_groups > by_codes_from else None
        out[lo:hi] = block if block is not None else sums.by_product(u)
    return out


CODES_ENTRIES = 1 << 24
"""Draws (simulations × deals) :meth:`_GroupSums.by_codes` sums at a time: its arrays of the booked
deals take about 40 bytes each, so about 0.7 GB at most, whatever the number of open deals."""


class _GroupSums:
    """The booked amounts of a block of simulations per period and group (see :func:`simulate_open_deals`).

    A deal books in period ``j`` when its draw ``u`` is below ``cum[i, j]`` and not below
    ``cum[i, j - 1]``. :meth:`by_product` is the float32 matrix product of the booked deals and a
    dense amount-per-group matrix; :meth:`by_codes` gives its sums while they are exact.
    """

    def __init__(self, amount32: np.ndarray, groups: np.ndarray, n_groups: int, cum: np.ndarray) -> None:
        self.amount32 = amount32
        self.groups = groups
        self.n_groups = n_groups
        self.cum = cum
        self.k = cum.shape[1]
        self.limit = _exact_limit(amount32)
        self.negative = bool((amount32 < 0).any())
        self.amount = amount32.astype(np.float64)
        self.monotone = bool(np.all(cum[:, 1:] >= cum[:, :-1]))
        self.bounds = np.ascontiguousarray(cum.T)  # each period's bounds side by side
        self._weights: np.ndarray | None = None
        # Where one deal's amount reaches the bound (amounts with cents: a bound of about 2**11),
        # a block's sums almost surely fail it: the product from the start, not after a bincount.
        largest = float(np.abs(amount32).max()) if len(amount32) else 0.0
        self.codes_useful = self.monotone and largest < self.limit

    def by_codes(self, u: np.ndarray) -> np.ndarray | None:
        """Sums of shape (rows, K, G) by one ``bincount`` of the booked deals' codes.

        ``None`` where float32 sums could round (checked on the block's sums; at once where one
        amount reaches the bound), or where ``cum`` is not non-decreasing along its periods (a deal
        then books in the first period ``j`` with ``u < cum[i, j]``: the one the product's masks
        book it in).
        """
        if not self.codes_useful:
            return None
        out = np.empty((u.shape[0], self.k, self.n_groups))
        step = max(1, CODES_ENTRIES // max(u.shape[1], 1))  # the booked pairs' arrays stay bounded
        for r0 in range(0, u.shape[0], step):
            part = self._codes_rows(u[r0 : r0 + step])
            if part is None:
                return None
            out[r0 : r0 + step] = part
        return out

    def _codes_rows(self, u: np.ndarray) -> np.ndarray | None:
        """:meth:`by_codes` of a few rows (each row's sums depend on its draws alone)."""
        rows, k, g = u.shape[0], self.k, self.n_groups
        period = np.zeros(u.shape, dtype=np.int8 if k < 127 else np.int32)
        for j in range(k):  # the number of bounds at or below u: the first period booking it, or k
            period += ~(u < self.bounds[j])
        s_idx, i_idx = np.nonzero(period < k)
        key = (s_idx * k + period[s_idx, i_idx]) * g + self.groups[i_idx]
        amount = self.amount[i_idx]
        total = np.bincount(key, weights=amount, minlength=rows * k * g)
        bound = np.bincount(key, weights=np.abs(amount), minlength=rows * k * g) if self.negative else total
        if len(bound) and not bound.max() < self.limit:
            return None
        return total.reshape(rows, k, g)

    def by_product(self, u: np.ndarray) -> np.ndarray:
        """Sums of shape (rows, K, G) as a float32 matrix product of the booked deals and the amounts."""
        if self._weights is None:
            n = len(self.amount32)
            self._weights = np.zeros((n, self.n_groups), dtype=np.float32)
            self._weights[np.arange(n), self.groups] = self.amount32
        out = np.empty((u.shape[0], self.k, self.n_groups))
        below = np.zeros_like(u, dtype=bool)
        for j in range(self.k):
            upto = u < self.cum[:, j]
            out[:, j, :] = (upto & ~below).astype(np.float32) @ self._weights
            below = upto
        return out


def _exact_limit(amount32: np.ndarray) -> float:
    """A bound below which every float32 sum of these amounts (in any order) is exact.

    The finite non-zero amounts are whole multiples of ``2**e`` (the smallest of their lowest set
    bits); a float32 holds every whole multiple of ``2**e`` below ``2**(24 + e)``. ``0`` (nothing is
    known exact) when an amount is not finite.
    """
    if not np.all(np.isfinite(amount32)):
        return 0.0
    nonzero = amount32[amount32 != 0].astype(np.float64)
    if len(nonzero) == 0:
        return math.inf
    mantissa, exponent = np.frexp(nonzero)
    whole = np.abs(mantissa * 2.0**24).astype(np.int64)  # the 24-bit significand, exact
    lowest = whole & -whole
    e = int((exponent - 24 + np.log2(lowest).astype(np.int64)).min())
    return math.ldexp(1.0, 24 + e)


def simulate_new_deals(
    mu: np.ndarray,
    amount_pools: list[np.ndarray],
    n_sims: int,
    rng: np.random.Generator,
    factor: np.ndarray | Callable[[int], np.ndarray] | None = None,
    block: int = 64,
    pair_weights: list[np.ndarray] | None = None,
) -> np.ndarray:
    """Simulated revenue of deals not created yet, shape (n_sims, K, G).

    The draws are made group by group and period by period (the random stream's order); each
    block of ``block`` groups is written to the result at once.

    Args:
        mu: Expected number of such wins per period and group, shape (K, G).
        amount_pools: Per group, the amounts to draw from (recent won deals); an empty pool adds 0.
        n_sims: Simulations.
        rng: Random generator.
        factor: Multiplier of the Poisson means per simulation and group, shape (n_sims, G), or a
            function of a group's position giving its column (common shocks; ``None``: 1).
        block: Groups written to the result at once.
        pair_weights: Per group, shape (K, len(pool)): how likely each pool amount is a win of
            each period (:meth:`~forecast.revenue.new_deals.NewDealModel.pair_weights`, the
            amount drawn with its cycle); ``None``: every amount of the pool equally.
    """
    k, g = mu.shape
    out = np.zeros((n_sims, k, g))
    held = np.zeros((min(block, g), k, n_sims))
    every = np.arange(n_sims)
    picker = _WeightedPicks(pair_weights) if pair_weights is not None else None
    for g0 in range(0, g, block):
        g1 = min(g0 + block, g)
        held[:] = 0.0
        for gi in range(g0, g1):
            pool = amount_pools[gi]
            if len(pool) == 0:
                continue
            column = None
            for ki in range(k):
                if mu[ki, gi] <= 0:
                    continue
                if factor is not None and column is None:
                    column = factor(gi) if callable(factor) else factor[:, gi]
                lam = mu[ki, gi] if column is None else mu[ki, gi] * column
                counts = rng.poisson(lam, n_sims)
                total = int(counts.sum())
                if total == 0:
                    continue
                if picker is None:
                    draws = pool[rng.integers(0, len(pool), total)]
                else:
                    draws = pool[picker(gi, ki, total, rng)]
                held[gi - g0, ki] = np.bincount(np.repeat(every, counts), weights=draws, minlength=n_sims)
        out[:, :, g0:g1] = held[: g1 - g0].transpose(2, 1, 0)
    return out


class _WeightedPicks:
    """Positions in a group's pool drawn with probabilities proportional to its period's weights.

    The weights are whole numbers of creation days (at most the days ahead), so the pool's pairs
    fall into few classes of equal weight: a draw picks a class by its mass (a search among those
    few classes, not among the pool's thousands of pairs), then a pair of the class uniformly, both
    from one uniform number: exact, and about as fast as a uniform pick. The tables are made once
    per weights array and period (groups on the overall pool share its array).
    """

    def __init__(self, pair_weights: list[np.ndarray]) -> None:
        self.weights = pair_weights
        self.done: dict[tuple[int, int], tuple[np.ndarray, ...]] = {}

    def _table(self, w: np.ndarray) -> tuple[np.ndarray, ...]:
        """The positive pairs sorted by weight; each class's weight, first position, size, cumulative mass."""
        pos = np.flatnonzero(w > 0)
        order = np.argsort(w[pos], kind="stable")
        pos, values = pos[order], np.asarray(w[pos][order], dtype=float)
        weight, first, size = np.unique(values, return_index=True, return_counts=True)
        cum = np.cumsum(weight * size)
        return pos, weight, first, size - 1, cum, np.concatenate([[0.0], cum[:-1]])

    def __call__(self, gi: int, ki: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` positions of group ``gi``'s pool for period ``ki`` (never one weighing 0).

        Raises:
            ValueError: The period expects wins but no pair of the group lands in it.
        """
        w = self.weights[gi]
        key = (id(w), ki)
        if key not in self.done:
            self.done[key] = self._table(w[ki])
        pos, weight, first, last, cum, before = self.done[key]
        if len(cum) == 0:
            raise ValueError(f"group {gi}, period {ki}: wins expected but no pair of the pool lands there")
        x = rng.random(n) * cum[-1]
        c = np.searchsorted(cum, x, side="right")
        np.minimum(c, len(cum) - 1, out=c)  # (x rounded up to the total mass)
        x -= before[c]  # (>= 0: the class's mass starts at or below x)
        x //= weight[c]
        within = np.minimum(x.astype(np.int64), last[c])
        within += first[c]
        return pos[within]
