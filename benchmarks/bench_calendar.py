"""Where the month-of-quarter profile of wins is applied: every simulated world, and the Maven sample.

Usage: ``uv run python benchmarks/bench_calendar.py [--worlds default quarter-end ...] [--seeds 1 2]
[--maven ../shared/data/maven-crm-sales-opportunities]``, or ``--speed [--deals 1000000]`` for the
cost of the timing shares with a profile against the flat ones.

The profile (:mod:`forecast.revenue.calendar`) must be applied where a CRM's wins bunch by month of
the quarter and nowhere else: a profile applied by chance moves the timing of every forecast. For
each world and seed, the CRM is simulated over its history and seven more months and the profile is
measured at the cut and three and six months after it, as a forecast would (the wins known then);
for Maven, at each month from 2017-06 to 2017-12. One line per world and seed: applied or not,
p-value, the measured intensities of the quarter's first, second and third month, months counted.
About a minute for all the presets at 1,000 leads a month (``FORECAST_THREADS=1``).

``--speed``: :func:`forecast.revenue.forecast.close_shares` of ``--deals`` random monotone win-timing
curves (40 edges over 365 days, a 200-day horizon) for 3 months and for 13 weeks, flat and with a
profile applied; the best of 3 runs and the peak memory the call adds (``tracemalloc``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import WORLDS, load_world
from forecast.revenue.calendar import CalendarProfile, CalendarSettings, fit_calendar
from forecast.robustness import cut_of

REPO = Path(__file__).resolve().parents[1]
MAVEN = REPO.parent / "shared" / "data" / "maven-crm-sales-opportunities"


def _row(profile: CalendarProfile, when: pd.Timestamp) -> dict[str, object]:
    return {
        "as_of": str(when.date()),
        "applied": profile.applied,
        "p_value": float(f"{profile.p_value:.3g}"),
        "measured": [round(f, 3) for f in profile.measured],
        "months": profile.months,
    }


def _profiles(opps: pd.DataFrame, dates: list[pd.Timestamp]) -> list[dict[str, object]]:
    won = pd.to_datetime(opps.loc[opps["outcome"] == "won", "closed_at"])
    first = pd.to_datetime(opps["closed_at"]).min()
    return [_row(fit_calendar(won, first, d, CalendarSettings()), d) for d in dates]


def speed(n: int) -> None:
    """Time the timing shares flat and with a profile, one JSON line per period kind."""
    import time
    import tracemalloc

    import numpy as np

    from forecast.revenue.forecast import close_shares, period_grid

    rng = np.random.default_rng(0)
    edges = np.linspace(0.0, 365.0, 40)
    curves = np.cumsum(rng.uniform(0, 1, (n, 40)), axis=1)
    curves = (curves - curves[:, :1]) / (curves[:, -1:] - curves[:, :1]) * rng.uniform(0.2, 1.0, (n, 1))
    as_of = pd.Timestamp("2025-02-10 09:30")
    profile = CalendarProfile((0.7, 1.04, 1.26), applied=True)
    for by, k in (("month", 3), ("week", 13)):
        periods = period_grid(as_of, k, by)
        row: dict[str, object] = {"deals": n, "periods": f"{k} {by}s"}
        for name, cal in (("flat", None), ("profile", profile)):
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                close_shares(curves, edges, as_of, periods, 200.0, cal)
                best = min(best, time.perf_counter() - started)
            tracemalloc.start()
            close_shares(curves, edges, as_of, periods, 200.0, cal)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            row[f"{name}_s"] = round(best, 3)
            row[f"{name}_peak_mb"] = round(peak / 2**20, 1)
        print(json.dumps(row), flush=True)


def main() -> None:
    """Measure the profile per world and seed (and on Maven), one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--leads-per-month", type=float, default=1_000.0)
    parser.add_argument("--maven", type=Path, default=MAVEN)
    parser.add_argument("--speed", action="store_true", help="time the timing shares instead")
    parser.add_argument("--deals", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.speed:
        speed(args.deals)
        return
    applied = checked = 0
    for name in args.worlds:
        for seed in args.seeds:
            update = {"seed": seed, "leads_per_month": args.leads_per_month, "n_leads": None}
            world = load_world(name).model_copy(update=update)
            sim = simulate_crm(world.to_config(extra_months=7))
            cut = cut_of(world)
            rows = _profiles(sim.tables["opportunities"], [cut + pd.DateOffset(months=k) for k in (0, 3, 6)])
            applied += sum(bool(r["applied"]) for r in rows)
            checked += len(rows)
            print(json.dumps({"world": name, "seed": seed, "profiles": rows}), flush=True)
    if args.maven.is_dir():
        from forecast.data.sources import maven

        opps = next(t.frame for t in maven.load(args.maven).tables if t.table == "opportunities")
        dates = list(pd.date_range("2017-06-01", "2017-12-01", freq="MS"))
        print(json.dumps({"world": "maven", "profiles": _profiles(opps, dates)}), flush=True)
    else:
        print(json.dumps({"world": "maven", "skipped": f"{args.maven} not found"}), flush=True)
    print(json.dumps({"summary": {"simulated_profiles_applied": applied, "simulated_profiles": checked}}))


if __name__ == "__main__":
    main()
