"""Single-record (and small-batch) scoring latency, stage by stage, with the real champions.

Usage: uv run --frozen python benchmarks/bench_single_record.py [--reps 300] [--json OUT] [--profile]
       uv run --frozen python benchmarks/bench_single_record.py --requests [--reps 200] [--json OUT]

Needs the champions of ``forecast run`` in the local MLflow (``lead_scoring``, ``deal_win``,
``time_to_close``). Feature rows are the open leads and deals of the warehouse
(``score_warehouse(...).features``). For 1 row and for 32 rows, each stage is timed with
``time.perf_counter_ns`` over ``--reps`` repetitions (after a warm-up) and reported as median and
p99 in microseconds:

- ``score_frame``: probabilities, band and reasons (what the service calls per request);
- ``predict_proba``: the whole pipeline, then each step (``columns``, ``categories``, the model on
  the prepared frame);
- ``reason_codes``, split into ``contributions`` (TreeSHAP, plus the prior's linear terms) and
  ``phrasing`` (:func:`~forecast.scoring.reasons.reasons_from_contributions`);
- ``close_date_columns`` for deals (the time-to-close hazard model), and its ``survival`` alone.

``--profile`` prints a cProfile of ``score_frame`` and ``close_date_columns`` on one row.

``--requests`` times what each scoring route computes for one request, in process: the bodies
``benchmarks/serving/lead.json`` and ``deal.json`` parsed by the service's request models, then
``json_safe(score_records(...))`` (``/lead_score``, ``/win_probability``) and
``json_safe(close_records(...))`` (``/time_to_close``), median and p99 of ``--reps`` calls after 20
warm-up calls (no warehouse needed: only the champions). Run it with ``PYTHONPATH`` on another
checkout's ``src`` for that code's figures; ``--compare`` reads two such ``--json`` files too.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.batch import score_warehouse
from forecast.config import load_settings
from forecast.models.survival import DiscreteTimeHazard
from forecast.registry import LoadedModel, load_model
from forecast.scoring.close_dates import close_date_columns
from forecast.scoring.contributions import contributions
from forecast.scoring.frame import score_frame
from forecast.scoring.reasons import reason_codes, reasons_from_contributions

SIZES = (1, 32)


def timed(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    """Median and p99 of ``fn()`` in microseconds over ``reps`` calls (after a warm-up)."""
    for _ in range(max(3, reps // 20)):
        fn()
    samples = np.empty(reps, dtype=np.int64)
    for i in range(reps):
        start = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - start
    return {"median_us": float(np.median(samples)) / 1e3, "p99_us": float(np.percentile(samples, 99)) / 1e3}


def sample_rows(features: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows spread over the frame (deterministic)."""
    idx = np.linspace(0, len(features) - 1, n).round().astype(int)
    return features.iloc[idx]


def classifier_stages(model: LoadedModel, rows: pd.DataFrame) -> dict[str, Callable[[], Any]]:
    """The stages of ``score_frame`` for a classifier champion on ``rows``."""
    pipeline = model.pipeline
    meta = model.metadata
    descriptions = dict(meta.get("descriptions") or {})
    kinds = dict.fromkeys(meta.get("categorical") or [], "categorical")
    ids = pd.Series(np.arange(len(rows)), index=rows.index)
    selected = pipeline.named_steps["columns"].transform(rows)
    prepared = pipeline.named_steps["categories"].transform(selected)
    contrib = contributions(pipeline, rows)
    final = pipeline.steps[-1][1]
    stages: dict[str, Callable[[], Any]] = {
        "score_frame": lambda: score_frame(model, rows, ids),
        "predict_proba": lambda: pipeline.predict_proba(rows),
        "  step columns": lambda: pipeline.named_steps["columns"].transform(rows),
        "  step categories": lambda: pipeline.named_steps["categories"].transform(selected),
        "  step model": lambda: final.predict_proba(prepared),
        "reason_codes": lambda: reason_codes(pipeline, rows, descriptions, top_k=3, kinds=kinds),
        "  contributions": lambda: contributions(pipeline, rows),
        "  phrasing": lambda: reasons_from_contributions(contrib, rows, descriptions, top_k=3, kinds=kinds),
    }
    return {**stages, **_array_stages(pipeline, rows)}


def _array_stages(pipeline: Any, rows: pd.DataFrame) -> dict[str, Callable[[], Any]]:
    """The array path's stages (``forecast.scoring.fastpath``), when this version of the code has it."""
    try:
        from forecast.scoring import fastpath  # absent before the array path
    except ImportError:
        return {}
    fast = fastpath.coded(pipeline)
    if fast is None:
        return {}
    codes = fast.encode(rows)
    if isinstance(fast.model, DiscreteTimeHazard):
        return {"  array encode": lambda: fast.encode(rows), "  array survival": lambda: fast.survival(codes)}
    return {
        "  array encode": lambda: fast.encode(rows),
        "  array predict_proba": lambda: fast.predict_proba(codes),
        "  array contributions": lambda: fast.contributions(codes),
    }


def hazard_stages(model: LoadedModel, rows: pd.DataFrame) -> dict[str, Callable[[], Any]]:
    """The stages of ``close_date_columns`` for the time-to-close champion on ``rows``."""
    pipeline = model.pipeline
    prepared = pipeline[:-1].transform(rows)
    hazard = pipeline.steps[-1][1]
    stages: dict[str, Callable[[], Any]] = {
        "close_date_columns": lambda: close_date_columns(model, rows),
        "  steps columns+categories": lambda: pipeline[:-1].transform(rows),
        "  survival": lambda: hazard.survival(prepared),
    }
    return {**stages, **_array_stages(pipeline, rows)}


def measure(
    models: dict[str, LoadedModel], frames: dict[str, pd.DataFrame], reps: int
) -> list[dict[str, Any]]:
    """One record per (model, rows, stage)."""
    results: list[dict[str, Any]] = []
    for name, model in models.items():
        frame = frames[name]
        for n in SIZES:
            rows = sample_rows(frame, n)
            stages = hazard_stages(model, rows) if name == "time_to_close" else classifier_stages(model, rows)
            for stage, fn in stages.items():
                stats = timed(fn, reps if n == 1 else max(reps // 3, 30))
                results.append({"model": name, "rows": n, "stage": stage, **stats})
                print(
                    f"{name:14s} {n:3d} {stage:28s} median {stats['median_us']:10.1f} µs"
                    f"  p99 {stats['p99_us']:10.1f} µs",
                    flush=True,
                )
    return results


def markdown(results: list[dict[str, Any]]) -> str:
    """A markdown table: one line per (model, stage), median/p99 for 1 and 32 rows."""
    lines = [
        "| model | stage | 1 row median | 1 row p99 | 32 rows median | 32 rows p99 |",
        "|---|---|---|---|---|---|",
    ]
    keyed = {(r["model"], r["stage"], r["rows"]): r for r in results}
    seen: list[tuple[str, str]] = []
    for r in results:
        if (r["model"], r["stage"]) not in seen:
            seen.append((r["model"], r["stage"]))
    for model, stage in seen:
        cells = []
        for n in SIZES:
            r = keyed.get((model, stage, n))
            cells += ["–", "–"] if r is None else [f"{r['median_us']:,.0f}", f"{r['p99_us']:,.0f}"]
        lines.append(f"| {model} | {stage.strip()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """A markdown table of two runs (``--json`` files): median / p99 in µs, before → after."""
    lines = [
        "| model | stage | 1 row before | 1 row after | 32 rows before | 32 rows after |",
        "|---|---|---|---|---|---|",
    ]
    old = {(r["model"], r["stage"], r["rows"]): r for r in before}
    new = {(r["model"], r["stage"], r["rows"]): r for r in after}
    stages = list(dict.fromkeys((r["model"], r["stage"]) for r in [*before, *after]))
    for model, stage in stages:
        cells = []
        for n in SIZES:
            cells += [_cell(old.get((model, stage, n))), _cell(new.get((model, stage, n)))]
        lines.append(f"| {model} | {stage.strip()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(record: dict[str, Any] | None) -> str:
    if record is None:
        return "–"
    return f"{record['median_us']:,.0f} / {record['p99_us']:,.0f}"


def profile(models: dict[str, LoadedModel], frames: dict[str, pd.DataFrame]) -> None:
    """cProfile of one-row ``score_frame`` (deal win) and ``close_date_columns``, top functions."""
    rows = sample_rows(frames["deal_win"], 1)
    ids = pd.Series([0], index=rows.index)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(50):
        score_frame(models["deal_win"], rows, ids)
        close_date_columns(models["time_to_close"], rows)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def load() -> tuple[dict[str, LoadedModel], dict[str, pd.DataFrame]]:
    """The three champions and realistic feature rows (open leads, open deals)."""
    settings = load_settings()
    models = {name: load_model(name, settings) for name in ("lead_scoring", "deal_win", "time_to_close")}
    leads = score_warehouse(models["lead_scoring"], settings, None)[0].features
    deals = score_warehouse(models["deal_win"], settings, None)[0].features
    assert leads is not None and deals is not None
    return models, {"lead_scoring": leads, "deal_win": deals, "time_to_close": deals}


ROOT = Path(__file__).resolve().parents[1]


def request_stages() -> dict[str, Callable[[], Any]]:
    """Per scoring route, one request of its benchmark body as the service computes it (``--requests``)."""
    from forecast.serving.schemas import DealRequest, LeadScoreRequest
    from forecast.serving.scoring import close_records, json_safe, score_records

    settings = load_settings()
    models = {name: load_model(name, settings) for name in ("lead_scoring", "deal_win", "time_to_close")}
    lead = LeadScoreRequest.model_validate_json((ROOT / "benchmarks/serving/lead.json").read_text()).lead
    deal = DealRequest.model_validate_json((ROOT / "benchmarks/serving/deal.json").read_text()).deal
    return {
        "/lead_score": lambda: json_safe(score_records(models["lead_scoring"], [lead], "lead")),
        "/win_probability": lambda: json_safe(score_records(models["deal_win"], [deal], "opportunity")),
        "/time_to_close": lambda: json_safe(close_records(models["time_to_close"], [deal])),
    }


def measure_requests(reps: int) -> list[dict[str, Any]]:
    """One record per route: median and p99 of ``reps`` requests after 20 warm-up requests."""
    results = []
    for route, fn in request_stages().items():
        for _ in range(20):
            fn()
        samples = np.empty(reps, dtype=np.int64)
        for i in range(reps):
            start = time.perf_counter_ns()
            fn()
            samples[i] = time.perf_counter_ns() - start
        stats = {
            "median_us": float(np.median(samples)) / 1e3,
            "p99_us": float(np.percentile(samples, 99)) / 1e3,
        }
        results.append({"model": route, "rows": 1, "stage": "request", **stats})
        print(f"{route:18s} median {stats['median_us']:8.1f} µs  p99 {stats['p99_us']:8.1f} µs", flush=True)
    return results


def main() -> None:
    """Run the benchmark and print a markdown table (optionally save the JSON)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--requests", action="store_true", help="time one request of each scoring route")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"), default=None)
    args = parser.parse_args()
    if args.compare is not None:
        print(comparison(*(json.loads(path.read_text()) for path in args.compare)))
        return
    warnings.filterwarnings("ignore")
    if args.requests:
        results = measure_requests(args.reps)
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=1))
        return
    models, frames = load()
    if args.profile:
        profile(models, frames)
        return
    results = measure(models, frames, args.reps)
    print(f"\n{platform.machine()}, {platform.python_version()}, versions: {_versions(models)}\n")
    print(markdown(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


def _versions(models: dict[str, LoadedModel]) -> str:
    return ", ".join(f"{name} v{m.version}" for name, m in models.items())


if __name__ == "__main__":
    main()
