"""The booster both benchmark servers serve: LightGBM, 300 trees, 40 numeric features.

The model is trained once on random data and cached as a LightGBM text file, so that the bare app
and the BentoML service load exactly the same trees. ``FORECAST_BENCH_MODEL`` overrides the path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

N_FEATURES = 40
N_TREES = 300
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "out" / "serving" / "booster_300x40.txt"


def model_path() -> Path:
    return Path(os.environ.get("FORECAST_BENCH_MODEL", DEFAULT_PATH))


def ensure_model(path: Path | None = None) -> Path:
    """Train and save the booster unless the file exists; returns its path."""
    path = path or model_path()
    if path.exists():
        return path
    import lightgbm as lgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, N_FEATURES))
    logit = x[:, :8] @ rng.normal(size=8) + 0.5 * x[:, 8] * x[:, 9]
    y = (logit + rng.logistic(size=len(x)) > 0).astype(int)
    clf = lgb.LGBMClassifier(n_estimators=N_TREES, num_leaves=31, learning_rate=0.05, verbose=-1)
    clf.fit(x, y)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    clf.booster_.save_model(str(tmp))
    tmp.replace(path)
    return path


def load_booster(path: Path | None = None):  # -> lightgbm.Booster
    """The cached booster (trained first if missing), single-threaded for one-record calls."""
    import lightgbm as lgb

    return lgb.Booster(model_file=str(ensure_model(path)))


def predict_one(booster, features: list[float]) -> float:
    """Win probability of one record; the same code path in both servers."""
    row = np.asarray(features, dtype=np.float64).reshape(1, -1)
    if row.shape[1] != N_FEATURES:
        raise ValueError(f"expected {N_FEATURES} features, got {row.shape[1]}")
    return float(booster.predict(row, num_threads=1)[0])


def example_body() -> dict[str, list[float]]:
    """One JSON record: ``{"features": [40 floats]}``."""
    rng = np.random.default_rng(1)
    return {"features": [round(float(v), 4) for v in rng.normal(size=N_FEATURES)]}


if __name__ == "__main__":
    import json
    import time

    booster = load_booster()
    feats = example_body()["features"]
    t0 = time.perf_counter()
    n = 2000
    for _ in range(n):
        predict_one(booster, feats)
    per = (time.perf_counter() - t0) / n
    print(json.dumps({"model": str(model_path()), "predict_one_us": round(per * 1e6, 1)}))
