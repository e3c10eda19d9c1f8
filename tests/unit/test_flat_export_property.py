"""Property test: any flat export either trains or fails as bad input naming what is wrong.

Hypothesis draws small exports mixing the column kinds real CRM reports carry (many levels, rare
levels pooled as ``__other__`` with 10+ rows, placeholders, numbers written as text, yes/no values,
dates, ids, constant columns) and a target of varying balance. Each one goes through what
``forecast train lead-scoring --table`` runs before MLflow (:func:`export_input`, then
:func:`train_binary`). It must either train, or raise the bad-input errors the CLI maps to exit
code 2 (:class:`InputError`, :class:`InsufficientDataError`) with a message naming a column of the
export or the rows missing. Any other exception is an internal bug (exit code 1) and fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forecast.errors import InputError, InsufficientDataError
from forecast.models.config import TrainingConfig
from forecast.training.binary import train_binary
from forecast.training.datasets import export_input

KINDS = (
    "many_levels",
    "rare_levels",
    "placeholders",
    "numeric_text",
    "money_text",
    "yes_no",
    "zero_one",
    "dates_iso",
    "dates_dmy",
    "string_id",
    "sequential_number",
    "constant",
    "one_value_or_blank",
    "numeric",
    "empty",
)
FAST = TrainingConfig(
    lightgbm={"n_estimators": 40, "early_stopping_rounds": 10, "learning_rate": 0.2, "min_child_samples": 10},
    small_data={"min_rows": 150, "min_minority": 25},
)


def _column(kind: str, n: int, rng: np.random.Generator) -> list[object]:
    if kind == "many_levels":
        return [f"L{int(v)}" for v in rng.zipf(1.6, n) % 120]
    if kind == "rare_levels":  # two common levels, then 20+ rows spread over rare ones (pooled)
        common = rng.choice(["alpha", "beta"], n).astype(object)
        rare = rng.random(n) < 0.15
        common[rare] = [f"rare{i}" for i in rng.integers(0, 40, int(rare.sum()))]
        return list(common)
    if kind == "placeholders":
        return list(rng.choice(["red", "blue", "N/A", "", "Select", "-", "unknown"], n))
    if kind == "numeric_text":
        return [f"{v:,}" for v in rng.integers(0, 5000, n)]
    if kind == "money_text":
        return [f"€{v}" if i % 2 else f"{v}%" for i, v in enumerate(rng.integers(0, 99, n))]
    if kind == "yes_no":
        return list(rng.choice(["Yes", "No"], n))
    if kind == "zero_one":
        return list(rng.choice(["0", "1"], n))
    if kind == "dates_iso":
        days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
        return list(days.strftime("%Y-%m-%d"))
    if kind == "dates_dmy":
        days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, n), unit="D")
        return list(days.strftime("%d/%m/%Y"))
    if kind == "string_id":
        return [f"ID-{i:05d}" for i in rng.permutation(n)]
    if kind == "sequential_number":
        return [str(660000 + 7 * i) for i in range(n)]
    if kind == "constant":
        return ["same"] * n
    if kind == "one_value_or_blank":
        return list(np.where(rng.random(n) < 0.3, "x", ""))
    if kind == "numeric":
        return [f"{v:.2f}" for v in rng.normal(0, 1, n)]
    return [""] * n  # "empty"


@st.composite
def exports(draw: st.DrawFn) -> tuple[pd.DataFrame, str | None]:
    n = draw(st.integers(min_value=30, max_value=400))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
    rate = draw(st.sampled_from([0.0, 0.03, 0.15, 0.5]))
    target_words = draw(st.sampled_from([("Yes", "No"), ("Won", "Lost"), ("1", "0"), ("true", "false")]))
    seed = draw(st.integers(min_value=0, max_value=2**16))
    with_time = draw(st.booleans())
    rng = np.random.default_rng(seed)
    columns = {f"{kind} {i}": _column(kind, n, rng) for i, kind in enumerate(kinds)}
    frame = pd.DataFrame(columns)
    signal = frame.iloc[:, 0].astype(str).map(hash).to_numpy() % 3 == 0
    positive = rng.random(n) < np.clip(rate * (1.5 if rate else 0) * signal + rate * 0.5, 0, 1)
    frame["Outcome"] = np.where(positive, *target_words)
    time = None
    if with_time:
        created = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 700, n)), unit="D")
        frame["Created"] = created.strftime("%Y-%m-%d")
        time = "Created"
    return frame, time


@settings(
    max_examples=int(os.environ.get("FORECAST_PROPERTY_EXAMPLES", "12")),
    deadline=None,
    derandomize=os.environ.get("FORECAST_PROPERTY_EXAMPLES") is None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(exports())
def test_any_flat_export_trains_or_is_refused_as_bad_input(
    tmp_path_factory: object, case: tuple[pd.DataFrame, str | None]
) -> None:
    frame, time = case
    folder = Path(tmp_path_factory.mktemp("export"))  # type: ignore[attr-defined]
    path = folder / "export.csv"
    frame.to_csv(path, index=False)
    try:
        data, export, _raw = export_input(path, target="Outcome", time_column=time)
        result = train_binary(data, FAST)
    except InsufficientDataError as exc:
        assert "rows" in str(exc) or "split" in str(exc)
        return
    except InputError as exc:
        assert any(repr(c) in str(exc) or c in str(exc) for c in frame.columns), str(exc)
        return
    assert 0.0 <= result.metrics["roc_auc"] <= 1.0
    assert set(export.feature_columns) <= set(data.frame.columns)
    p = result.pipeline.predict_proba(data.frame[data.features])[:, 1]
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
