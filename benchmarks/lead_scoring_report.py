"""Measure lead scoring on the simulated CRM and on UCI bank marketing (figures for docs/models.md).

Usage: uv run python benchmarks/lead_scoring_report.py [--leads 20000] [--seed 42]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.evaluate import expected_calibration_error
from forecast.features.build import build_feature_table
from forecast.features.snapshots import AT_CREATION, LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.training.binary import train_binary
from forecast.training.datasets import export_input, snapshot_table, table_input

REPO = Path(__file__).resolve().parents[1]
UCI = REPO.parent / "shared" / "data" / "uci-bank-marketing" / "bank-additional-full.csv"


def _row(metrics: dict) -> dict:
    return {k: round(float(metrics[k]), 4) for k in ("roc_auc", "pr_auc", "brier", "log_loss", "ece")}


def simulated(leads: int, seed: int, config: TrainingConfig) -> dict:
    sim = simulate_crm(SimulationConfig(n_leads=leads, seed=seed))
    with frames_source(sim.tables) as src:
        end = src.data_end()
        table = snapshot_table(src, config, LabelConfig(90, 90), data_end=end)
        creation = build_feature_table(src, "lead", AT_CREATION, LabelConfig(90, 90), data_end=end).frame
    result = train_binary(table_input(table, "label_converted"), config)
    cut = pd.Timestamp(result.splits["cuts"][1])
    rows = creation[(creation["as_of"] >= cut) & ~creation["label_censored"]]
    y = rows["label_converted"].astype(int)
    p = result.pipeline.predict_proba(rows)[:, 1]
    best = sim.truth["truth_leads"].set_index("lead_id").loc[rows["lead_id"], "p_convert_observable"]
    return {
        "rows": result.data["rows"],
        "test_rows": int(result.metrics["n"]),
        "model": _row(result.metrics),
        "baselines": {k: _row(v) for k, v in result.baselines.items()},
        "calibration": result.calibration.get("method"),
        "at_creation": {
            "rows": len(rows),
            "auc_model": round(roc_auc_score(y, p), 4),
            "auc_best_achievable": round(roc_auc_score(y, best), 4),
            "ece_model": round(expected_calibration_error(y, p), 4),
        },
    }


def uci(config: TrainingConfig) -> dict | None:
    if not UCI.exists():
        return None
    data, _export, _raw = export_input(UCI, target="y", drop_columns=["duration"], delimiter=";")
    cfg = config.model_copy(
        update={
            "split": config.split.model_copy(update={"without_time": "order"}),
            "segments": [],
            "monotone_increasing": [],
            "monotone_decreasing": [],
        }
    )
    result = train_binary(data, cfg)
    return {"model": _row(result.metrics), "baselines": {k: _row(v) for k, v in result.baselines.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    config = TrainingConfig.from_yaml(REPO / "training" / "lead_scoring.yaml")
    print(json.dumps({"simulated": simulated(args.leads, args.seed, config), "uci": uci(config)}, indent=2))


if __name__ == "__main__":
    main()
