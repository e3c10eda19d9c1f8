"""Speed of the deals not created yet: wins drawn with their cycles against amounts drawn alone.

Run: ``uv run python benchmarks/bench_new_deals.py [--groups 1700] [--pairs 50000] [--periods 12]
[--sims 2000]`` (results go to benchmarks/RESULTS.md by hand).

A synthetic new-deal model of many groups: most share the overall pool of (cycle, amount) pairs,
30 have their own (as groups with 20 wins or more do); each group opens 0.2 deals a day and wins 30%
of them. Times :meth:`~forecast.revenue.new_deals.NewDealModel.pair_weights`,
:meth:`~forecast.revenue.new_deals.NewDealModel.expected_wins` and
:func:`~forecast.revenue.montecarlo.simulate_new_deals` with the pairs' weights (the default) and
without (every amount of a pool equally likely: the engine before the pairs), best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from forecast.revenue.montecarlo import simulate_new_deals
from forecast.revenue.new_deals import NewDealModel


def _best(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    """Build the model, then time each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1_700)
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--periods", type=int, default=12)
    parser.add_argument("--sims", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    amounts, cycles = rng.lognormal(10, 1, args.pairs), rng.gamma(2, 30, args.pairs)
    pools, cycle_pools = [amounts] * args.groups, [cycles] * args.groups
    for g in range(min(30, args.groups)):
        n = int(rng.integers(20, 2_000))
        pools[g], cycle_pools[g] = rng.lognormal(10, 1, n), rng.gamma(2, 30, n)
    model = NewDealModel(
        [f"g{i}" for i in range(args.groups)],
        np.full(args.groups, 0.2),
        np.full(args.groups, 0.3),
        pools,
        cycle_pools,
    )
    as_of = pd.Timestamp("2025-01-01")
    periods = [
        (as_of + pd.DateOffset(months=i), as_of + pd.DateOffset(months=i + 1)) for i in range(args.periods)
    ]
    weights = model.pair_weights(as_of, periods)
    mu = model.expected_wins(as_of, periods, weights)
    timings = {
        "pair_weights": _best(lambda: model.pair_weights(as_of, periods), args.repeat),
        "expected_wins": _best(lambda: model.expected_wins(as_of, periods, weights), args.repeat),
        "simulate, with cycles": _best(
            lambda: simulate_new_deals(
                mu, model.amount_pools, args.sims, np.random.default_rng(1), pair_weights=weights
            ),
            args.repeat,
        ),
        "simulate, amounts alone": _best(
            lambda: simulate_new_deals(mu, model.amount_pools, args.sims, np.random.default_rng(1)),
            args.repeat,
        ),
    }
    print(
        f"{args.groups} groups, {args.pairs} shared pairs, {args.periods} periods, {args.sims} simulations, "
        f"{mu.sum() * args.sims:,.0f} wins drawn"
    )
    for name, seconds in timings.items():
        print(f"  {name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
