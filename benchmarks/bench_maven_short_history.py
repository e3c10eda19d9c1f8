"""The Maven sample cut after a few months: which deal model serves, judged on the next 3 months.

At each cut the deal models are trained on the CRM as it stood then (``train_deal_models``, as a
backtest does), then the deals open at each week of the next 3 months are scored and judged on
their outcome in the whole sample. A third of those deals are still open when the sample ends
(2017-12-31), so their eventual outcome is unknown: the figures are given with them left out and
with them counted as not won, which bracket the truth. Before 2017-03-01 the sample holds no close
at all, so a cut there gets no deal model (and is told why).

Usage:
    uv run python benchmarks/bench_maven_short_history.py                  # cuts 2017-02-01 .. 06-01
    uv run python benchmarks/bench_maven_short_history.py --cuts 2017-04-01
    uv run python benchmarks/bench_maven_short_history.py --truncated-history read_from_first_close

Prints one JSON line per cut. Needs ``../shared/data/maven-crm-sales-opportunities``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from forecast.data.as_of import crm_as_of
from forecast.data.ingest import ingest
from forecast.data.warehouse import Warehouse
from forecast.errors import InsufficientDataError
from forecast.evaluate import expected_calibration_error
from forecast.features.build import build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.revenue.backtest import stage_win_rates, train_deal_models
from forecast.tracking.data import read_frames

REPO = Path(__file__).resolve().parents[1]
MAVEN = REPO.parent / "shared" / "data" / "maven-crm-sales-opportunities"
DEFAULTS = REPO / "src" / "forecast" / "defaults"


def _judged(y: np.ndarray, p: np.ndarray, table: np.ndarray) -> dict[str, float | None]:
    """AUC and ECE of the model and of the stage-only table on outcomes ``y``."""
    both = len(np.unique(y)) == 2
    return {
        "rows": len(y),
        "won": round(float(y.mean()), 3),
        "mean_p": round(float(p.mean()), 3),
        "auc": round(float(roc_auc_score(y, p)), 3) if both else None,
        "ece": round(float(expected_calibration_error(y, p)), 3),
        "table_mean_p": round(float(table.mean()), 3),
        "table_auc": round(float(roc_auc_score(y, table)), 3) if both and len(np.unique(table)) > 1 else None,
        "table_ece": round(float(expected_calibration_error(y, table)), 3),
    }


def _with(config: TrainingConfig, truncated: str | None) -> TrainingConfig:
    """``config`` with ``snapshots.truncated_history`` set (``None``: as it is)."""
    if truncated is None:
        return config
    snapshots = config.snapshots.model_copy(update={"truncated_history": truncated})
    return config.model_copy(update={"snapshots": snapshots})


def main() -> None:
    """Ingest the sample into a temporary warehouse and judge the deal model at each cut."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maven", type=Path, default=MAVEN)
    parser.add_argument("--cuts", nargs="*", default=["2017-02-01", "2017-04-01", "2017-05-01", "2017-06-01"])
    parser.add_argument(
        "--truncated-history",
        choices=["note", "read_from_first_close", "off"],
        default=None,
        help="snapshots.truncated_history of both models (default: the configs'); the sample holds no "
        "close before 2017-03-01 (docs/models.md, 'A history whose early closes are missing')",
    )
    args = parser.parse_args()
    if not args.maven.is_dir():
        print(json.dumps({"skipped": f"{args.maven} not found"}))
        return
    with tempfile.TemporaryDirectory() as tmp:
        warehouse = Warehouse(Path(tmp) / "maven.duckdb")
        ingest(args.maven, "maven", warehouse)
        with warehouse.connect(read_only=True) as con:
            frames, pipeline = read_frames(con)
    win = _with(TrainingConfig.from_yaml(DEFAULTS / "deal_win_maven.yaml"), args.truncated_history)
    close = _with(TrainingConfig.from_yaml(DEFAULTS / "time_to_close_maven.yaml"), args.truncated_history)
    opps = frames["opportunities"].set_index("opportunity_id")
    data_end = pd.Timestamp(opps["closed_at"].max()).normalize() + pd.Timedelta(days=1)
    for text in args.cuts:
        cut = pd.Timestamp(text)
        try:
            models = train_deal_models(frames, pipeline, cut, win, close)
        except InsufficientDataError as exc:
            print(json.dumps({"cut": text, "model": None, "error": str(exc)}), flush=True)
            continue
        dates = [cut + pd.Timedelta(weeks=k) for k in range(13)]
        with frames_source(frames, pipeline) as src:
            label = LabelConfig.both(int(models.label_days or models.horizon_days))
            frame = build_feature_table(src, "opportunity", dates, label, data_end=data_end).frame
        stage = opps.loc[frame["opportunity_id"], "stage"].to_numpy()
        p = models.win.predict_proba(frame)[:, 1]
        rates = stage_win_rates(crm_as_of(frames, cut, pipeline))
        table = frame["stage"].map(rates).fillna(rates["__all__"]).to_numpy(dtype=float)
        closed = np.isin(stage, ["won", "lost"])
        won = (stage == "won").astype(int)
        print(
            json.dumps(
                {
                    "cut": text,
                    "model": type(models.win[-1]).__name__,
                    "truncated_history": win.snapshots.truncated_history,
                    "snapshots": len(frame),
                    "open_at_the_end_left_out": _judged(won[closed], p[closed], table[closed]),
                    "open_at_the_end_not_won": _judged(won, p, table),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
