"""The robustness matrix (issue 15): train through the jobs on simulated worlds, judge on their future.

Each world is simulated for its history plus a future; the CRM at the end of the history is ingested
into a temporary warehouse, ``deal_win`` and ``lead_scoring`` are trained by the project's own job
(temporary MLflow store) and judged on the months after the cut (see ``forecast.robustness``).
Failures (e.g. a one-class train split) are results, not crashes.

Usage:
    uv run python benchmarks/bench_robustness.py                       # the full matrix below
    uv run python benchmarks/bench_robustness.py --worlds history-3m win-10 --leads-per-month 800
    uv run python benchmarks/bench_robustness.py --world-file my_world.yaml --no-revenue
    uv run python benchmarks/bench_robustness.py --worlds win-10 cycle-200 --months 24 --models deal_win

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/robustness``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from forecast.data.simulation.worlds import WORLDS, World, load_world
from forecast.models.config import TrainingConfig
from forecast.robustness import MatrixSettings, markdown_table, run_world, write_results

REPO = Path(__file__).resolve().parents[1]
MATRIX = (
    "history-3m",
    "history-6m",
    "history-9m",
    "history-24m",
    "history-36m",
    "stages-3",
    "stages-8",
    "win-10",
    "win-60",
    "cycle-20",
    "cycle-200",
    "drift",
    "turnover",
    "quarter-end",
)
"""The benchmark matrix (presets of ``forecast.data.simulation.worlds``)."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worlds", nargs="*", default=list(MATRIX), help=f"presets: {', '.join(WORLDS)}")
    parser.add_argument("--world-file", type=Path, action="append", default=[], help="a .yaml/.json world")
    parser.add_argument("--leads-per-month", type=float, default=1_000.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--eval-months", type=int, default=3)
    parser.add_argument("--future-months", type=int, default=6)
    parser.add_argument("--months", type=int, default=None, help="override every world's history")
    parser.add_argument(
        "--models", nargs="+", default=["deal_win", "lead_scoring"], choices=["deal_win", "lead_scoring"]
    )
    parser.add_argument("--no-revenue", action="store_true", help="skip the revenue backtest")
    parser.add_argument("--sims", type=int, default=2_000)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "robustness")
    args = parser.parse_args()

    worlds: list[World] = [load_world(n) for n in args.worlds] + [load_world(p) for p in args.world_file]
    update: dict[str, object] = {"leads_per_month": args.leads_per_month, "seed": args.seed, "n_leads": None}
    worlds = [w.model_copy(update=update) for w in worlds]
    if args.months is not None:
        worlds = [
            w.model_copy(update={"months": args.months, "name": f"{w.name}@{args.months}m"}) for w in worlds
        ]
    configs = {
        stem: TrainingConfig.from_yaml(REPO / "training" / f"{stem}.yaml")
        for stem in ("deal_win", "lead_scoring", "time_to_close")
    }
    settings = MatrixSettings(
        eval_months=args.eval_months,
        future_months=args.future_months,
        revenue=not args.no_revenue,
        n_sims=args.sims,
        models=tuple(args.models),
    )
    results = []
    t0 = time.perf_counter()
    for world in worlds:
        record = run_world(world, configs, settings, progress=lambda m: print(m, file=sys.stderr, flush=True))
        results.append(record)
        write_results(results, args.out)  # after every world: a long run keeps what it has
        print(f"{world.name}: {record['seconds']} s, gates {record['gates']}", file=sys.stderr, flush=True)
    print(markdown_table(results))
    print(f"total {time.perf_counter() - t0:.0f} s; wrote {args.out}.json and .md", file=sys.stderr)


if __name__ == "__main__":
    main()
