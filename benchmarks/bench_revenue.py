"""Monte Carlo speed: 10,000 open deals × 10,000 simulations for one period (goal: under 5 s).

Run: uv run python benchmarks/bench_revenue.py  (results go to benchmarks/RESULTS.md by hand)
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from forecast.revenue.forecast import forecast_revenue
from forecast.tracking.periods import Period


def main() -> None:
    rng = np.random.default_rng(0)
    edges = [0.0, 7, 14, 21, 30, 45, 60, 75, 90, 120, 150, 180, 240, 365]
    for n_deals, n_periods, groups in ((10_000, 1, 1), (10_000, 3, 1), (10_000, 3, 8)):
        deals = pd.DataFrame(
            {
                "amount": rng.lognormal(10, 1, n_deals),
                "group": rng.integers(0, groups, n_deals).astype(str),
            }
        )
        hazard = rng.uniform(0.02, 0.2, (n_deals, len(edges) - 1))
        closed_by = np.concatenate([np.zeros((n_deals, 1)), np.cumsum(hazard, axis=1)], axis=1).clip(0, 1)
        start = pd.Timestamp("2025-01-01")
        periods = [
            Period(start + pd.DateOffset(months=i), start + pd.DateOffset(months=i + 1), "month", str(i))
            for i in range(n_periods)
        ]
        best = []
        for _ in range(3):
            t = time.perf_counter()
            forecast_revenue(
                deals=deals,
                p_win=rng.uniform(0, 1, n_deals),
                closed_by=closed_by,
                edges=edges,
                horizon_days=180,
                new_deals=None,
                as_of=start,
                periods=periods,
                groups=sorted(deals["group"].unique()),
                won_to_date=np.zeros((n_periods, groups)),
                n_sims=10_000,
            )
            best.append(time.perf_counter() - t)
        print(
            f"{n_deals:,} deals × 10,000 simulations, {n_periods} period(s), {groups} group(s): "
            f"best {min(best):.2f} s, median {sorted(best)[1]:.2f} s"
        )


if __name__ == "__main__":
    main()
