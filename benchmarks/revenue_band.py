"""Coverage of the revenue band with and without common shocks on simulated worlds.

Runs the point-in-time revenue backtest (:func:`forecast.revenue.backtest.backtest_revenue`) on a
simulated CRM twice, once with deals independent given their probabilities and once with the
common shocks of :mod:`forecast.revenue.shock`; the models of each as_of are trained once and
shared by both runs. Prints one JSON line per run (whole-team and per-team coverage, WAPE against
the baselines) and the per-month table.

    nice python -m benchmarks.revenue_band --leads 30000 --months 36 --seed 42 \\
        --from 2026-01-01 --to 2026-12-01 --retrain-every 4
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

import forecast.revenue.backtest as bt
from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.models.config import TrainingConfig
from forecast.revenue.engine import DealModels, ShockSettings
from forecast.revenue.forecast import period_grid

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    """Parse the arguments, run both backtests, print the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=30_000)
    ap.add_argument("--months", type=int, default=36)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--start", default="2024-01-01")
    ap.add_argument("--win-shift", type=float, default=0.0)
    ap.add_argument("--stage-days", default=None, help="Comma-separated median days per open stage.")
    ap.add_argument("--from", dest="date_from", required=True)
    ap.add_argument("--to", dest="date_to", required=True)
    ap.add_argument("--retrain-every", type=int, default=4)
    ap.add_argument("--sims", type=int, default=2000)
    ap.add_argument("--warehouse", default=None, help="Backtest this warehouse instead of a simulation.")
    ap.add_argument("--win-config", default=str(REPO / "training" / "deal_win.yaml"))
    ap.add_argument("--close-config", default=str(REPO / "training" / "time_to_close.yaml"))
    ap.add_argument("--variants", default="independent,shock,recentred")
    args = ap.parse_args()
    stage_days = tuple(float(x) for x in args.stage_days.split(",")) if args.stage_days else None
    config = SimulationConfig(
        n_leads=args.leads,
        seed=args.seed,
        months=args.months,
        start=date.fromisoformat(args.start),
        win_shift=args.win_shift,
        stage_median_days=stage_days,
    )
    pipeline = DEFAULT_PIPELINE
    if args.warehouse:
        from forecast.config import Settings
        from forecast.revenue.job import read_crm

        tables, pipeline = read_crm(Settings(warehouse=Path(args.warehouse)))
    else:
        tables = simulate_crm(config).tables
    win = TrainingConfig.from_yaml(Path(args.win_config))
    close = TrainingConfig.from_yaml(Path(args.close_config))
    cache: dict[pd.Timestamp, DealModels] = {}
    train = bt.train_deal_models

    def cached(tables_: Any, pipeline: Any, as_of: pd.Timestamp, w: Any, c: Any) -> DealModels:
        if as_of not in cache:
            cache[as_of] = train(tables_, pipeline, as_of, w, c)
        return cache[as_of]

    bt.train_deal_models = cached  # type: ignore[assignment]  # share the training of both runs
    dates = list(pd.date_range(args.date_from, args.date_to, freq="MS"))
    world = {k: v for k, v in vars(args).items() if k not in ("date_from", "date_to")}
    variants = {
        "independent": ShockSettings(include=False),
        "shock": ShockSettings(),
        "recentred": ShockSettings(recentre=True),
    }
    for name in args.variants.split(","):
        result = bt.backtest_revenue(
            tables,
            pipeline,
            dates,
            lambda d: period_grid(d, 1, "month")[0],
            win,
            close,
            retrain_every=args.retrain_every,
            by="team",
            shock=variants[name],
            n_sims=args.sims,
        )
        m = result.metrics
        t = result.table
        inside = ((t["p10"] <= t["actual"]) & (t["actual"] <= t["p90"])).tolist()
        print(t.drop(columns=["as_of", "models_trained_at"]).round(2).to_string())
        summary = {
            "world": world,
            "variant": name,
            "months": len(t),
            "coverage_all": m["model"]["coverage_p10_p90"],
            "inside_all": inside,
            "coverage_team": m["model_by_team"]["coverage_p10_p90"],
            "team_cells": m["model_by_team"]["cells"],
            "wape": m["model"]["wape"],
            "wape_stage_weighted": m["stage_weighted"]["wape"],
            "wape_run_rate": m["run_rate"]["wape"],
            "bias": m["model"]["bias"],
            "pinball_mean": m["model"]["pinball_mean"],
            "win_shock_sigma": t["win_shock_sigma"].round(3).tolist(),
        }
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
