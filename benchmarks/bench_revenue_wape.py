"""The revenue forecast's point error against its two baselines over more months and seeds than the matrix.

Usage: ``uv run python benchmarks/bench_revenue_wape.py [--worlds history-6m cycle-20 ...]
[--seeds 1 2] [--months 6] [--retrain-every 3] [--leads-per-month 1000] [--recentre] [--weigh-wins-by amount]
[--no-calendar] [--out FILE.jsonl]``, or ``--summarise RESULTS.jsonl ...`` to summarise earlier runs.

The matrix (``bench_robustness.py``) judges the issue's WAPE gate (the forecast's WAPE at most 0.8
times the better of the stage-weighted pipeline and the run rate) on three months of one seed per
world: a dozen whole-team months, where one unusual month decides the gate. Here each world and
seed is backtested over ``--months`` months after its cut (models retrained every
``--retrain-every`` months on the CRM as it stood then, :func:`forecast.revenue.backtest.backtest_revenue`),
and every month's absolute error is kept, so that the comparison can be pooled: per world, the
WAPE over all its seeds' months; over everything, the mean paired difference of absolute errors
(the forecast's minus the better baseline's, each month scaled by the world's mean actual) with
its standard error over the world-seed runs (months of one run share their models and errors).

Prints one JSON line per world and seed (each month's actual, P10/P50/P90, the baselines, and the
expected and realised won amount from the deals open at the month's start and from those opened
after it), then one summary line (per world: WAPEs, bias, and each part's expected over
realised). About 1 minute per world-seed at 6 months of history, 3-6 at 12-24 months, on the shared
2-core machine (``FORECAST_THREADS=1``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.models.config import TrainingConfig
from forecast.revenue.backtest import backtest_revenue
from forecast.revenue.calendar import CalendarSettings
from forecast.revenue.engine import NewDealSettings, ShockSettings
from forecast.revenue.forecast import period_grid
from forecast.robustness import cut_of

REPO = Path(__file__).resolve().parents[1]
WORLDS = ("history-3m", "history-6m", "history-9m", "cycle-20", "win-10", "win-60", "quarter-end")


def run_one(world_name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One world and seed: the backtest's months, with the forecast and both baselines."""
    update = {"leads_per_month": args.leads_per_month, "seed": seed, "n_leads": None}
    world = load_world(world_name).model_copy(update=update)
    sim = simulate_crm(world.to_config(extra_months=args.months + 1))
    win = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")
    close = TrainingConfig.from_yaml(REPO / "training" / "time_to_close.yaml")
    cut = cut_of(world)
    dates = [cut + pd.DateOffset(months=k) for k in range(args.months)]
    started = time.time()
    result = backtest_revenue(
        sim.tables,
        world.pipeline(),
        dates,
        lambda d: period_grid(d, 1, "month")[0],
        win,
        close,
        retrain_every=args.retrain_every,
        new_deals=NewDealSettings(),
        n_sims=2_000,
        shock=ShockSettings(recentre=args.recentre, weigh_wins_by=args.weigh_wins_by),
        calendar=CalendarSettings(include=not args.no_calendar),
    )
    t = result.table.assign(**_actual_parts(sim.tables["opportunities"], dates))
    cols = [
        "actual",
        "p10",
        "p50",
        "p90",
        "stage_weighted",
        "run_rate",
        "from_open_deals",
        "from_new_deals",
        "actual_from_open_deals",
        "actual_from_new_deals",
    ]
    return {
        "world": world_name,
        "seed": seed,
        "months": [
            {"period": str(p), **{c: round(float(v), 0) for c, v in row.items()}}
            for p, row in zip(t["period"], t[cols].to_dict("records"), strict=True)
        ],
        "seconds": round(time.time() - started, 1),
        "recentre": bool(args.recentre),
        "weigh_wins_by": args.weigh_wins_by,
        "calendar": not args.no_calendar,
        "calendar_applied": [bool(v) for v in t["calendar_applied"]],
        "retrain_every": args.retrain_every,
        "leads_per_month": args.leads_per_month,
    }


def _actual_parts(opps: pd.DataFrame, dates: list[pd.Timestamp]) -> dict[str, list[float]]:
    """The won amount of each date's month, from deals open at the date and from deals opened after it."""
    created, closed = pd.to_datetime(opps["created_at"]), pd.to_datetime(opps["closed_at"])
    amount = pd.to_numeric(opps["amount"], errors="coerce").fillna(0.0)
    parts: dict[str, list[float]] = {"actual_from_open_deals": [], "actual_from_new_deals": []}
    for d in dates:
        won = (opps["outcome"] == "won") & (closed >= d) & (closed < d + pd.DateOffset(months=1))
        parts["actual_from_open_deals"].append(float(amount[won & (created < d)].sum()))
        parts["actual_from_new_deals"].append(float(amount[won & (created >= d)].sum()))
    return parts


def wape(actual: np.ndarray, point: np.ndarray) -> float:
    """Sum of absolute errors over the sum of actuals."""
    return float(np.abs(point - actual).sum() / max(float(actual.sum()), 1e-9))


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per world the pooled WAPEs and months inside P10-P90; overall the paired difference."""
    per_world: dict[str, Any] = {}
    diffs = []
    for name in dict.fromkeys(r["world"] for r in runs):
        months = pd.DataFrame([m for r in runs if r["world"] == name for m in r["months"]])
        a = months["actual"].to_numpy(float)
        w = {
            k: wape(a, months[c].to_numpy(float))
            for k, c in (("model", "p50"), ("stage_weighted", "stage_weighted"), ("run_rate", "run_rate"))
        }
        better_name = "stage_weighted" if w["stage_weighted"] < w["run_rate"] else "run_rate"
        better = w[better_name]
        # months scaled by the world's mean actual; the SE treats months as independent, which
        # months of one run (one training, one set of errors) are not: a lower bound on the spread
        paired = (
            np.abs(months["p50"].to_numpy(float) - a) - np.abs(months[better_name].to_numpy(float) - a)
        ) / (float(a.mean()) or 1.0)
        inside = ((months["p10"] <= months["actual"]) & (months["actual"] <= months["p90"])).to_numpy()
        total = max(float(a.sum()), 1e-9)
        parts = {
            f"{part}_ratio": round(
                float(months[f"from_{part}_deals"].sum() / months[f"actual_from_{part}_deals"].sum()), 3
            )
            for part in ("open", "new")
            if f"actual_from_{part}_deals" in months and months[f"actual_from_{part}_deals"].sum() > 0
        }
        per_world[name] = {
            **{k: round(v, 3) for k, v in w.items()},
            "bias": round(float(months["p50"].sum() - a.sum()) / total, 3),
            "months_below_p50": int((months["actual"] < months["p50"]).sum()),
            **parts,
            "ratio_to_better": round(w["model"] / max(better, 1e-9), 2),
            "better_baseline": better_name,
            "paired_minus_better": round(float(paired.mean()), 3),
            "paired_se_over_months": round(float(paired.std(ddof=1) / np.sqrt(len(paired))), 3)
            if len(paired) > 1
            else None,
            "gate_0_8": bool(w["model"] <= 0.8 * better),
            "months": len(months),
            "inside_p10_p90": int(inside.sum()),
        }
        scale = float(a.mean()) or 1.0
        for r in runs:
            if r["world"] != name:
                continue
            m = pd.DataFrame(r["months"])
            act = m["actual"].to_numpy(float)
            err = {c: np.abs(m[c].to_numpy(float) - act) for c in ("p50", "stage_weighted", "run_rate")}
            best = np.minimum(err["stage_weighted"].sum(), err["run_rate"].sum())
            diffs.append((err["p50"].sum() - best) / (scale * len(m)))
    d = np.asarray(diffs)
    return {
        "summary": per_world,
        "paired_mean_abs_error_minus_better_baseline": round(float(d.mean()), 4) if len(d) else None,
        "se_over_runs": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4) if len(d) > 1 else None,
        "runs": len(d),
    }


SETTINGS = ("months", "retrain_every", "leads_per_month", "calendar", "recentre", "weigh_wins_by")
"""What a run was made with (``None`` where an older file did not write it)."""


def latest_runs(paths: list[Path]) -> list[dict[str, Any]]:
    """The last run of each world and seed across ``paths`` (in order), each world of one setting.

    Each kept run is named on stderr with its file. Runs of one world with different settings
    (:data:`SETTINGS`) are refused: their months would be pooled as if alike.

    Raises:
        SystemExit: A world's kept runs differ in their settings.
    """
    latest: dict[tuple[str, int], tuple[dict[str, Any], Path]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if "world" in row:
                latest[(row["world"], int(row["seed"]))] = (row, path)
    settings: dict[str, set[tuple[Any, ...]]] = {}
    for (world, seed), (row, path) in latest.items():
        made = tuple(len(row["months"]) if k == "months" else row.get(k) for k in SETTINGS)
        settings.setdefault(world, set()).add(made)
        print(f"{world} seed {seed}: {path} ({dict(zip(SETTINGS, made, strict=True))})", file=sys.stderr)
    mixed = {w: sorted(map(str, s)) for w, s in settings.items() if len(s) > 1}
    if mixed:
        raise SystemExit(f"runs of one world with different settings {SETTINGS}: {mixed}")
    return [row for row, _ in latest.values()]


def main() -> None:
    """Backtest every world and seed, print each, then the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="+", default=list(WORLDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--retrain-every", type=int, default=3)
    parser.add_argument("--leads-per-month", type=float, default=1_000.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--summarise",
        nargs="+",
        type=Path,
        default=None,
        metavar="RESULTS.jsonl",
        help="run nothing: print the summary of earlier results (the last run of each world and seed counts)",
    )
    parser.add_argument(
        "--recentre",
        action="store_true",
        help="centre the win shocks on the cuts' bias (ShockSettings.recentre)",
    )
    parser.add_argument(
        "--weigh-wins-by",
        choices=("count", "amount"),
        default="count",
        help="what the cuts' win evidence matches (ShockSettings.weigh_wins_by)",
    )
    parser.add_argument(
        "--no-calendar",
        action="store_true",
        help="keep the close timing flat in the calendar (no month-of-quarter profile of wins)",
    )
    args = parser.parse_args()
    if args.summarise is not None:
        print(json.dumps(summarise(latest_runs(args.summarise))), flush=True)
        return
    runs = []
    for name in args.worlds:
        for seed in args.seeds:
            run = run_one(name, seed, args)
            runs.append(run)
            line = json.dumps(run)
            print(line, flush=True)
            if args.out is not None:
                with args.out.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
    print(json.dumps(summarise(runs)), flush=True)


if __name__ == "__main__":
    main()
