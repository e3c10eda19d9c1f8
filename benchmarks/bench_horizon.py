"""Deal-win horizon read from the time to a close or to a win: the future AUC and ECE per world.

Usage: ``uv run python benchmarks/bench_horizon.py [--seeds 1 2 3] [--worlds history-9m stages-8 win-60]``
(about 5 minutes for the defaults on the shared 2-core machine). Prints one JSON line per run and
a summary per setting; figures in docs/models.md (deal win, robustness).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from statistics import mean

from forecast.data.simulation.worlds import load_world
from forecast.models.config import TrainingConfig
from forecast.robustness import MatrixSettings, run_world

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run every world and seed with both horizon settings and print the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--worlds", nargs="+", default=["history-9m", "stages-8", "win-60"])
    parser.add_argument("--leads-per-month", type=float, default=500.0)
    args = parser.parse_args()
    base = {
        stem: TrainingConfig.from_yaml(REPO / "training" / f"{stem}.yaml")
        for stem in ("deal_win", "lead_scoring", "time_to_close")
    }
    rows = []
    for of in ("close", "win"):
        win = base["deal_win"]
        configs = dict(base)
        configs["deal_win"] = win.model_copy(
            update={"snapshots": win.snapshots.model_copy(update={"horizon_of": of})}
        )
        for seed in args.seeds:
            for name in args.worlds:
                world = load_world(name).model_copy(
                    update={"leads_per_month": args.leads_per_month, "seed": seed}
                )
                result = run_world(world, configs, MatrixSettings(revenue=False, models=("deal_win",)))
                deal = result["deal_eval"]
                row = {"of": of, "seed": seed, "world": name}
                row.update(
                    {k: deal.get(k) for k in ("auc", "stage_auc", "ece", "mean_p", "win_rate", "deals")}
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    for of in ("close", "win"):
        mine = [r for r in rows if r["of"] == of and r["auc"] is not None]
        if mine:
            print(
                f"{of}: mean AUC {mean(r['auc'] for r in mine):.3f}, "
                f"stage-only {mean(r['stage_auc'] for r in mine):.3f}, "
                f"mean ECE {mean(r['ece'] for r in mine):.3f} "
                f"({min(r['ece'] for r in mine):.3f}-{max(r['ece'] for r in mine):.3f})"
            )


if __name__ == "__main__":
    main()
