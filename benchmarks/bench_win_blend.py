"""What the win blend costs when scoring deals: the classifier alone against the served blend.

Trains the deal-win model on a warehouse (``training/deal_win.yaml``, no MLflow), then scores its
deal snapshots through the array path (:mod:`forecast.scoring.fastpath`) with the blended model and
with its classifier alone: one row at a time (probability and reasons, median and p99 of
``--calls`` calls of one row, and of ``--calls`` calls of a different row each) and a batch of
``--rows`` rows (probability; probability and reasons; traced peak memory). Usage: ``uv run python
benchmarks/bench_win_blend.py [--warehouse data/warehouse.duckdb]``; figures in
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from forecast.models.config import TrainingConfig
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.models.win_blend import HazardBlendedClassifier
from forecast.scoring import fastpath
from forecast.training.binary import train_binary
from forecast.training.datasets import warehouse_input

REPO = Path(__file__).resolve().parents[1]


def _classifier_alone(pipeline: Pipeline) -> Pipeline:
    """The blended pipeline with its classifier alone (the same fitted parts, no hazard)."""
    model = pipeline.steps[-1][1]
    plain = CalibratedLGBMClassifier.__new__(CalibratedLGBMClassifier)
    plain.__dict__.update({k: v for k, v in model.__dict__.items() if not k.startswith("hazard_")})
    return Pipeline([*pipeline.steps[:-1], ("model", plain)])


def main() -> None:
    """Train, then time both models on the same rows and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warehouse", type=Path, default=REPO / "data" / "warehouse.duckdb")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    config = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")
    data, _, config = warehouse_input(args.warehouse, config)
    started = time.perf_counter()
    result = train_binary(data, config)
    print(f"trained in {time.perf_counter() - started:.1f} s; {result.notes[-1]}")
    if not isinstance(result.pipeline.steps[-1][1], HazardBlendedClassifier):
        raise SystemExit("the blend is not served on this warehouse: nothing to compare")
    x = data.frame[data.features]
    batch = x.iloc[np.resize(np.arange(len(x)), args.rows)]
    for name, pipeline in (("classifier", _classifier_alone(result.pipeline)), ("blend", result.pipeline)):
        fast = fastpath.coded(pipeline)
        assert fast is not None
        one = fast.encode(x.iloc[[len(x) // 2]])
        for _ in range(50):
            fast.proba_and_contributions(one)
        times = []
        for _ in range(args.calls):
            t = time.perf_counter()
            fast.proba_and_contributions(fast.encode(x.iloc[[len(x) // 2]]))
            times.append(time.perf_counter() - t)
        varied = []  # a different deal each call, as a service sees them (other trees' leaves)
        for i in np.random.default_rng(0).integers(0, len(x), args.calls):
            t = time.perf_counter()
            fast.proba_and_contributions(fast.encode(x.iloc[[i]]))
            varied.append(time.perf_counter() - t)
        codes = fast.encode(batch)
        tracemalloc.start()
        t = time.perf_counter()
        fast.predict_proba(codes)
        proba = time.perf_counter() - t
        t = time.perf_counter()
        fast.proba_and_contributions(codes)
        both = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        print(
            f"{name}: one row with reasons median {np.median(times) * 1e3:.2f} ms, p99 "
            f"{np.quantile(times, 0.99) * 1e3:.2f} ms (a different row each call: median "
            f"{np.median(varied) * 1e3:.2f} ms, p99 {np.quantile(varied, 0.99) * 1e3:.2f} ms); "
            f"{args.rows:,} rows: probability {proba:.2f} s, "
            f"with reasons {both:.2f} s ({args.rows / both:,.0f} rows/s), traced peak {peak:.0f} MiB"
        )


if __name__ == "__main__":
    main()
