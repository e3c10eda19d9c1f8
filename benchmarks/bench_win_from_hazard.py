"""The win probability read from the time-to-close model, and blended, against the deal-win model.

Usage: ``uv run python benchmarks/bench_win_from_hazard.py [--seeds 1 2] [--worlds history-9m stages-8
win-60]`` (about 1 minute per world and seed on the shared 2-core machine). Each world is trained
at its cut by the project's jobs (deal win and time to close) and judged on the three months after
against eventual outcomes (``forecast.robustness``). Prints one JSON line per run and the means;
figures in docs/models.md (robustness matrix, issue 15 item 2).
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
VARIANTS = ("deal_win", "from_hazard", "blend")
METRICS = ("auc", "ece", "brier", "mean_p")


def main() -> None:
    """Run every world and seed and print each judgement and the means per variant."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--worlds", nargs="+", default=["history-9m", "stages-8", "win-60"])
    parser.add_argument("--leads-per-month", type=float, default=500.0)
    args = parser.parse_args()
    configs = {
        stem: TrainingConfig.from_yaml(REPO / "training" / f"{stem}.yaml")
        for stem in ("deal_win", "lead_scoring", "time_to_close")
    }
    settings = MatrixSettings(revenue=False, models=("deal_win", "time_to_close"))
    rows = []
    for seed in args.seeds:
        for name in args.worlds:
            world = load_world(name).model_copy(
                update={"leads_per_month": args.leads_per_month, "seed": seed}
            )
            judged = run_world(world, configs, settings)["deal_eval"]
            row: dict[str, object] = {"world": name, "seed": seed, "stage_auc": judged.get("stage_auc")}
            for variant in VARIANTS:
                source = judged if variant == "deal_win" else judged.get(variant) or {}
                row[variant] = {k: source.get(k) for k in METRICS}
            rows.append(row)
            print(json.dumps(row), flush=True)
    for variant in VARIANTS:
        done = [
            r[variant] for r in rows if isinstance(r[variant], dict) and r[variant].get("auc") is not None
        ]
        if done:
            print(variant, {k: round(mean(float(d[k]) for d in done), 4) for k in ("auc", "ece", "brier")})


if __name__ == "__main__":
    main()
