"""Where the revenue forecast takes the open deals' win level from: deal win, the hazard, their mean, or auto.

Usage: ``uv run python benchmarks/bench_revenue_level.py [--leads-per-month N] history-3m stages-8 ...``
(robustness presets; seed 7, 800 leads a month unless given; 2-10 minutes a world on the shared
2-core machine). Prints one JSON line
per world: WAPE, bias and months inside P10-P90 of the 3-month backtest after the world's cut
(:func:`forecast.robustness.revenue_coverage`), for each ``ShockSettings.win_level``, on the same
trained models (trained once per as_of, cached in this process), with the stage-weighted (``sw``)
and run-rate (``rr``) baselines' WAPE, and for ``auto`` the level it chose at each as_of.

The forecast books an open deal's win with probability ``p_win`` and spreads it over the periods by
the time-to-close model's win-timing curve. The level is the deal-win model's P(won within H)
(``deal_win``), the hazard's own incidence of a win within H (``hazard``), the mean of the two
(``blend``), or ``auto``: the one whose expected won amount was closest to the realised one on the
past cuts of the shock evidence. Results: docs/revenue.md.
"""

import json
import sys
from pathlib import Path
from typing import Any

import forecast.revenue.backtest as bt
from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.models.config import TrainingConfig
from forecast.revenue.engine import ShockSettings
from forecast.robustness import cut_of, revenue_coverage

REPO = Path(__file__).resolve().parents[1]
LEVELS = ("deal_win", "blend", "hazard", "auto")
_train_deal_models = bt.train_deal_models
_trained: dict[Any, Any] = {}


def _trained_once(tables: Any, pipeline: Any, as_of: Any, win: Any, close: Any) -> Any:
    """``bt.train_deal_models``, trained once per as_of so that every level uses the same models."""
    if as_of not in _trained:
        _trained[as_of] = _train_deal_models(tables, pipeline, as_of, win, close)
    return _trained[as_of]


def _judge(name: str, win: TrainingConfig, close: TrainingConfig, lpm: float) -> dict[str, Any]:
    """One world's 3-month backtest at each level."""
    _trained.clear()
    world = load_world(name).model_copy(update={"leads_per_month": lpm, "seed": 7, "n_leads": None})
    sim = simulate_crm(world.to_config(extra_months=6))
    pipeline, cut = world.pipeline(), cut_of(world)
    out: dict[str, Any] = {"world": name}
    for level in LEVELS:
        res = revenue_coverage(sim, pipeline, cut, 3, win, close, 2000, ShockSettings(win_level=level))
        out[level] = {
            "wape": round(res["wape"], 3),
            "bias": round(res["bias"], 3),
            "inside": res["inside_p10_p90"],
            "sw": round(res["wape_stage_weighted"], 3),
            "rr": round(res["wape_run_rate"], 3),
        }
        if level == "auto":
            out[level]["chosen"] = res["win_levels"]
    return out


def main() -> None:
    """Judge every world named on the command line."""
    bt.train_deal_models = _trained_once
    win = TrainingConfig.from_yaml(REPO / "training/deal_win.yaml")
    close = TrainingConfig.from_yaml(REPO / "training/time_to_close.yaml")
    args = sys.argv[1:]
    lpm = 800.0
    if "--leads-per-month" in args:
        i = args.index("--leads-per-month")
        lpm = float(args[i + 1])
        del args[i : i + 2]
    for name in args:
        print(json.dumps(_judge(name, win, close, lpm)), flush=True)


if __name__ == "__main__":
    main()
