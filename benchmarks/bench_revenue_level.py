"""Where the revenue forecast takes the open deals' win level from: deal win, the hazard, or their mean.

Usage: ``uv run python benchmarks/bench_revenue_level.py history-3m stages-8 ...`` (robustness presets;
seed 7, 800 leads a month; 2-10 minutes a world on the shared 2-core machine). Prints one JSON line
per world: WAPE, bias and months inside P10-P90 of the 3-month backtest after the world's cut, for
each level, on the same trained models (trained once per as_of, cached), with the stage-weighted
(``sw``) and run-rate (``rr``) baselines' WAPE.

The forecast books an open deal's win with probability ``p_win`` (the deal-win model: a win within
H days) and spreads it over the periods by the time-to-close model's win-timing curve. This
experiment swaps ``p_win`` for the hazard's own incidence of a win within H (``hazard``), or the
mean of the two (``blend``), by wrapping ``forecast.revenue.engine.score_deals`` in this process
only: a measurement harness, not a product option. Results: docs/revenue.md.
"""

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

import forecast.revenue.backtest as bt
import forecast.revenue.engine as engine
from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.models.config import TrainingConfig
from forecast.models.survival import survival_at
from forecast.revenue.engine import NewDealSettings
from forecast.revenue.forecast import period_grid
from forecast.robustness import cut_of

REPO = Path(__file__).resolve().parents[1]
LEVELS = ("deal_win", "blend", "hazard")
_level = {"v": "deal_win"}
_score_deals = engine.score_deals
_train_deal_models = bt.train_deal_models
_trained: dict[Any, Any] = {}


def _scored(tables: Any, pipeline: Any, dates: Any, models: Any, data_end: Any) -> Any:
    """``engine.score_deals`` with ``p_win`` replaced as the current level says."""
    frame, p, closed_by = _score_deals(tables, pipeline, dates, models, data_end)
    if len(frame) and _level["v"] != "deal_win":
        within_h = survival_at(closed_by, models.edges, models.horizon_days)
        p = within_h if _level["v"] == "hazard" else 0.5 * (p + within_h)
    return frame, p, closed_by


def _trained_once(tables: Any, pipeline: Any, as_of: Any, win: Any, close: Any) -> Any:
    """``bt.train_deal_models``, trained once per as_of so that every level uses the same models."""
    if as_of not in _trained:
        _trained[as_of] = _train_deal_models(tables, pipeline, as_of, win, close)
    return _trained[as_of]


def _judge(name: str, win: TrainingConfig, close: TrainingConfig) -> dict[str, Any]:
    """One world's 3-month backtest at each level."""
    _trained.clear()
    world = load_world(name).model_copy(update={"leads_per_month": 800.0, "seed": 7, "n_leads": None})
    sim = simulate_crm(world.to_config(extra_months=6))
    pipeline, cut = world.pipeline(), cut_of(world)
    dates = [cut + pd.DateOffset(months=k) for k in range(3)]
    out: dict[str, Any] = {"world": name}
    for level in LEVELS:
        _level["v"] = level
        res = bt.backtest_revenue(
            sim.tables,
            pipeline,
            dates,
            lambda d: period_grid(d, 1, "month")[0],
            win,
            close,
            retrain_every=3,
            new_deals=NewDealSettings(),
            n_sims=2000,
        )
        t, m = res.table, res.metrics
        out[level] = {
            "wape": round(m["model"]["wape"], 3),
            "bias": round(m["model"]["bias"], 3),
            "inside": int(((t.actual >= t.p10) & (t.actual <= t.p90)).sum()),
            "sw": round(m["stage_weighted"]["wape"], 3),
            "rr": round(m["run_rate"]["wape"], 3),
        }
    return out


def main() -> None:
    """Judge every world named on the command line."""
    engine.score_deals = _scored
    bt.train_deal_models = _trained_once
    win = TrainingConfig.from_yaml(REPO / "training/deal_win.yaml")
    close = TrainingConfig.from_yaml(REPO / "training/time_to_close.yaml")
    for name in sys.argv[1:]:
        print(json.dumps(_judge(name, win, close)), flush=True)


if __name__ == "__main__":
    main()
