"""Deal-win horizon read from the time to a close or to a win: the future AUC and ECE per world.

Usage: ``uv run python benchmarks/bench_horizon.py [--seeds 1 2 3] [--worlds history-9m stages-8 win-60]
[--settings close:0.95 win:0.95 close:0.99:ipcw]`` (a setting is ``horizon_of:horizon_quantile``, then
optionally ``:censoring`` (``drop`` or ``ipcw``); about
2.5 minutes per setting for the defaults on the shared 2-core machine). Prints one JSON line per run and
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
KEYS = (
    "auc",
    "stage_auc",
    "ece",
    "stage_only_ece",
    "ece_noise_q90",
    "brier",
    "stage_brier",
    "auc_creation",
    "best_auc_creation",
    "mean_p",
    "win_rate",
    "deals",
)
"""What each run prints of the future's judgement (``forecast.robustness.evaluate_deal_win``)."""


def main() -> None:
    """Run every world and seed with both horizon settings and print the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--worlds", nargs="+", default=["history-9m", "stages-8", "win-60"])
    parser.add_argument("--leads-per-month", type=float, default=500.0)
    parser.add_argument("--settings", nargs="+", default=["close:0.95", "win:0.95"])
    parser.add_argument(
        "--lightgbm", nargs="*", default=[], metavar="KEY=VALUE", help="deal-win lightgbm settings"
    )
    parser.add_argument(
        "--win-blend",
        type=float,
        default=None,
        metavar="WEIGHT",
        help="the win hazard's weight in p_win (win_blend.hazard_weight; default: training/deal_win.yaml's)",
    )
    args = parser.parse_args()
    base = {
        stem: TrainingConfig.from_yaml(REPO / "training" / f"{stem}.yaml")
        for stem in ("deal_win", "lead_scoring", "time_to_close")
    }
    if args.win_blend is not None:
        blend = base["deal_win"].win_blend.model_copy(update={"hazard_weight": args.win_blend})
        base["deal_win"] = base["deal_win"].model_copy(update={"win_blend": blend})
    if args.lightgbm:
        changes = dict(item.split("=", 1) for item in args.lightgbm)
        settings = base["deal_win"].lightgbm.model_dump() | changes
        base["deal_win"] = base["deal_win"].model_copy(
            update={"lightgbm": type(base["deal_win"].lightgbm).model_validate(settings)}
        )
    rows = []
    for setting in args.settings:
        of, quantile, *censoring = setting.split(":")
        win = base["deal_win"]
        configs = dict(base)
        snapshots = {"horizon_of": of, "horizon_quantile": float(quantile)}
        if censoring:
            snapshots["censoring"] = censoring[0]
        configs["deal_win"] = win.model_copy(update={"snapshots": win.snapshots.model_copy(update=snapshots)})
        for seed in args.seeds:
            for name in args.worlds:
                world = load_world(name).model_copy(
                    update={"leads_per_month": args.leads_per_month, "seed": seed}
                )
                result = run_world(world, configs, MatrixSettings(revenue=False, models=("deal_win",)))
                deal = result["deal_eval"]
                row = {"setting": setting, "seed": seed, "world": name}
                row["horizon_days"] = result["deal_win"].get("horizon_days")
                row["p_win_days"] = result["deal_win"].get("p_win_days")
                row.update({k: deal.get(k) for k in KEYS})
                row["model_kind"] = result["deal_win"].get("model_kind")
                row["win_blend"] = base["deal_win"].win_blend.hazard_weight
                row["win_blend_served"] = result["deal_win"].get("win_blend_served")
                rows.append(row)
                print(json.dumps(row), flush=True)
    for setting in args.settings:
        mine = [r for r in rows if r["setting"] == setting and r["auc"] is not None]
        if mine:
            print(
                f"{setting}: mean AUC {mean(r['auc'] for r in mine):.3f}, "
                f"stage-only {mean(r['stage_auc'] for r in mine):.3f}, "
                f"mean ECE {mean(r['ece'] for r in mine):.3f} "
                f"({min(r['ece'] for r in mine):.3f}-{max(r['ece'] for r in mine):.3f}), "
                f"mean Brier {mean(r['brier'] for r in mine):.4f}, "
                f"mean AUC at creation {mean(r['auc_creation'] or 0.5 for r in mine):.3f}"
            )


if __name__ == "__main__":
    main()
