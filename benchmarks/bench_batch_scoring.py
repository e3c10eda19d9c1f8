"""Batch scoring throughput: N leads (default 1M) with and without reasons, beside bare predict_proba.

Uses the ``lead_scoring`` champion of the local registry (run ``forecast run`` first) and the
feature rows of the warehouse's open leads, resampled to N rows. Four timings on the same rows:

1. bare ``LGBMClassifier.predict_proba`` of the champion's LightGBM model on the already encoded
   matrix (the floor: no encoding, no calibration);
2. the pipeline's ``predict_proba`` (encoding, prior, calibration);
3. :func:`forecast.scoring.frame.score_frame` without reasons (probability, score, band, ids);
4. :func:`forecast.scoring.frame.score_frame` with the top-3 reasons up and down (TreeSHAP + wording).

Run: ``uv run python benchmarks/bench_batch_scoring.py [--rows 1000000]`` (results go to
``benchmarks/RESULTS.md`` by hand, with the load average printed at the end).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import pandas as pd

from forecast.batch import score_warehouse
from forecast.config import load_settings
from forecast.registry import load_model
from forecast.scoring.frame import score_frame


def _timed(label: str, rows: int, fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    seconds = time.perf_counter() - start
    print(f"| {label} | {rows:,} | {seconds:,.1f} | {rows / seconds:,.0f} |", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    settings = load_settings()
    model = load_model("lead_scoring", settings)
    scored, when, _ = score_warehouse(model, settings, None)
    assert scored.features is not None
    features = list(model.metadata["features"])
    base = scored.features[features]
    rows = base.sample(n=args.rows, replace=True, random_state=0).reset_index(drop=True)
    ids = pd.Series(np.char.add("L", np.arange(args.rows).astype(str)))
    final = model.pipeline.steps[-1][1]
    encoded = model.pipeline[:-1].transform(rows)
    lgbm = final.model_
    matrix = encoded[final.tree_features_] if hasattr(final, "tree_features_") else encoded
    print(
        f"lead_scoring v{model.version}: {len(features)} features, {lgbm.n_estimators} trees max, "
        f"{final.best_iteration_} used, {lgbm.num_leaves} leaves; {len(base):,} open leads at {when} "
        f"resampled to {args.rows:,} rows; {os.cpu_count()} cores"
    )
    print("| step | rows | seconds | rows/s |")
    print("|---|---|---|---|")
    _timed(
        "bare LightGBM predict_proba (encoded matrix)",
        args.rows,
        lambda: lgbm.predict_proba(matrix, num_iteration=final.best_iteration_),
    )
    _timed(
        "pipeline predict_proba (encode + calibrate)", args.rows, lambda: model.pipeline.predict_proba(rows)
    )
    _timed("score_frame without reasons", args.rows, lambda: score_frame(model, rows, ids, reasons=False))
    _timed("score_frame with reasons (top 3 up and down)", args.rows, lambda: score_frame(model, rows, ids))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
