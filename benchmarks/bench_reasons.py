"""Reasons at bulk speed: TreeSHAP by split pattern against ``pred_contrib``, and two approximations.

Uses the ``lead_scoring`` champion (or ``--model``'s) of the local registry (run ``forecast run``
first) and snapshot rows of its entity in a *second* simulated CRM (another seed, its own
warehouse), one as_of a week, so the rows are distinct and the model never saw them:

    uv run forecast simulate --out data/crm_bench7 --seed 7
    uv run forecast --warehouse data/bench7.duckdb ingest data/crm_bench7
    FORECAST_THREADS=1 uv run python benchmarks/bench_reasons.py --warehouse data/bench7.duckdb --rows 60000

Measured on the same rows, in 20,000-row chunks as ``score_frame`` scores them, CPU seconds of this
process (one thread: what a quiet machine's wall clock gives) and wall seconds:

1. exact TreeSHAP (``pred_contrib``, ``FORECAST_REASONS_METHOD=treeshap``);
2. TreeSHAP by split pattern (:mod:`forecast.scoring.pattern_shap`): the values of new patterns
   by LightGBM's ``pred_contrib`` one tree at a time (the engine without leaf tables), and from the
   per-leaf tables (the default), on a fresh engine (no pattern known yet) and on a warm one (the
   patterns of a previous pass known);
3. path attribution ("Saabas": per leaf, the changes of the count-weighted mean along its path)
   and the leaf mean of exact TreeSHAP over a reference sample (the best any leaf-indexed table can
   do), both from ``pred_leaf``, for agreement only;
4. ``score_frame`` with reasons with each of the two exact methods (the split-pattern engine
   built in the run, built beforehand as a service builds it at load, and warm), and without
   reasons.

Agreement with exact TreeSHAP: the share of rows whose top-1 up / top-1 down feature is the same,
whose top-3 sets up / down are equal, the mean Spearman and Kendall correlations of the per-row
contributions, and the largest gap between a row's contributions plus bias and its raw log-odds.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import kendalltau, spearmanr

from forecast.config import load_settings
from forecast.features.build import LabelConfig, build_feature_table
from forecast.features.source import warehouse_source
from forecast.registry import load_model
from forecast.scoring import fastpath, pattern_shap
from forecast.scoring.frame import CHUNK, score_frame


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def _chunks(fn: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> np.ndarray:
    return np.vstack([fn(rows[s : s + CHUNK]) for s in range(0, len(rows), CHUNK)])


def _top(values: np.ndarray, k: int, sign: int) -> np.ndarray:
    score = np.where(sign * values > 1e-6, sign * values, -np.inf)
    idx = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return np.where(np.isfinite(np.take_along_axis(score, idx, axis=1)), idx, -1)


def agreement(exact: np.ndarray, other: np.ndarray, raw: np.ndarray, sample: int = 2_000) -> dict[str, float]:
    """Agreement of ``other`` (n, features + 1; bias last) with ``exact``."""
    e, o = exact[:, :-1], other[:, :-1]
    out = {
        "top1_up": float((_top(e, 1, 1) == _top(o, 1, 1)).mean()),
        "top1_down": float((_top(e, 1, -1) == _top(o, 1, -1)).mean()),
        "top3_up": float((np.sort(_top(e, 3, 1), 1) == np.sort(_top(o, 3, 1), 1)).all(1).mean()),
        "top3_down": float((np.sort(_top(e, 3, -1), 1) == np.sort(_top(o, 3, -1), 1)).all(1).mean()),
    }
    pick = np.random.default_rng(0).choice(len(e), size=min(sample, len(e)), replace=False)
    used = [i for i in pick if np.ptp(e[i]) > 0 and np.ptp(o[i]) > 0]
    out["spearman"] = float(np.mean([spearmanr(e[i], o[i]).statistic for i in used]))
    out["kendall"] = float(np.mean([kendalltau(e[i], o[i]).statistic for i in used]))
    out["max_abs_sum_minus_raw"] = float(np.abs(other.sum(axis=1) - raw).max())
    out["max_abs_diff"] = float(np.abs(other - exact).max())
    return out


def _leaf_tables(booster: lgb.Booster, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per leaf: Saabas vector, leaf mean of exact TreeSHAP over ``reference``; each tree's first leaf."""
    features = booster.num_feature()
    dumped = booster.dump_model()["tree_info"]
    offsets = np.cumsum([0, *(t["num_leaves"] for t in dumped)])
    saabas = np.zeros((offsets[-1], features + 1))

    def mean(node: dict[str, Any]) -> tuple[float, float]:
        if "leaf_index" in node or "split_index" not in node:
            node["_n"], node["_e"] = float(node.get("leaf_count", 1)), float(node["leaf_value"])
            return node["_n"], node["_e"]
        (a, ea), (b, eb) = mean(node["left_child"]), mean(node["right_child"])
        node["_n"], node["_e"] = a + b, (a * ea + b * eb) / (a + b) if a + b else 0.0
        return node["_n"], node["_e"]

    for t, tree in enumerate(dumped):
        root = tree["tree_structure"]
        mean(root)
        stack = [(root, np.zeros(features + 1))]
        stack[0][1][-1] = root["_e"]
        while stack:
            node, acc = stack.pop()
            if "split_index" not in node:
                saabas[offsets[t] + node.get("leaf_index", 0)] = acc
                continue
            for child in (node["left_child"], node["right_child"]):
                step = acc.copy()
                step[node["split_feature"]] += child["_e"] - node["_e"]
                stack.append((child, step))
    leaves = booster.predict(reference, pred_leaf=True, num_threads=1).astype(np.int64) + offsets[:-1]
    sums, counts = np.zeros_like(saabas), np.zeros(len(saabas))
    for t in range(len(dumped)):
        phi = booster.predict(reference, start_iteration=t, num_iteration=1, pred_contrib=True, num_threads=1)
        np.add.at(sums, leaves[:, t], phi)
        np.add.at(counts, leaves[:, t], 1.0)
    leaf_mean = saabas.copy()  # leaves the reference never reaches keep Saabas
    seen = counts > 0
    leaf_mean[seen] = sums[seen] / counts[seen, None]
    return saabas, leaf_mean, offsets[:-1]


def _from_leaves(
    booster: lgb.Booster, table: np.ndarray, offsets: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    leaves = booster.predict(rows, pred_leaf=True, num_threads=1).astype(np.int64) + offsets
    out = np.zeros((len(rows), table.shape[1]))
    for t in range(leaves.shape[1]):
        out += table[leaves[:, t]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", default="data/bench7.duckdb", help="the second CRM's warehouse")
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--model", default="lead_scoring", help="a champion (its entity's snapshots)")
    args = parser.parse_args()
    settings = load_settings()
    model = load_model(args.model, settings)
    final = model.pipeline.steps[-1][1]
    features = list(model.metadata["features"])
    dates = list(pd.date_range("2024-03-01", "2025-12-31", freq="7D"))
    with warehouse_source(args.warehouse) as src:
        entity = str(model.meta.entity)
        table = build_feature_table(src, entity, dates, LabelConfig.both(model.meta.horizon_days))  # type: ignore[arg-type]
    frame = table.frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    cut = min(20_000, len(frame) // 4)
    reference, rows = frame.iloc[:cut][features], frame.iloc[cut : cut + args.rows][features]
    ids = pd.Series(np.char.add("L", np.arange(len(rows)).astype(str)))
    fast = fastpath.coded(model.pipeline)
    assert fast is not None
    booster = final.model_.booster_
    trees = final.best_iteration_
    codes = fast.encode(rows)[:, fast.tree_index]
    n = len(codes)
    print(
        f"{args.model} v{model.version}: {len(features)} features, {trees} trees of "
        f"{final.model_.num_leaves} leaves; {n:,} rows (+{len(reference):,} reference) of {len(frame):,} "
        f"weekly {entity} snapshots of {args.warehouse}; {os.cpu_count()} cores, FORECAST_THREADS="
        f"{os.environ.get('FORECAST_THREADS')}; load average {os.getloadavg()[0]:.2f} at the start"
    )
    raw = booster.predict(codes, num_iteration=trees, raw_score=True, num_threads=1)

    def exact_fn(r: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(r, num_iteration=trees, pred_contrib=True, num_threads=1))

    print(
        "| method | rows/s (CPU) | rows/s (wall) | top-1 up | top-1 down | top-3 up | top-3 down "
        "| Spearman | Kendall | max abs(sum - raw) | max abs diff to exact |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    exact, cpu, wall = _timed(lambda: _chunks(exact_fn, codes))

    def line(name: str, values: np.ndarray, cpu: float, wall: float) -> None:
        a = agreement(exact, values, raw)
        print(
            f"| {name} | {n / cpu:,.0f} | {n / wall:,.0f} | {a['top1_up']:.4f} | {a['top1_down']:.4f} "
            f"| {a['top3_up']:.4f} | {a['top3_down']:.4f} | {a['spearman']:.4f} | {a['kendall']:.4f} "
            f"| {a['max_abs_sum_minus_raw']:.1e} | {a['max_abs_diff']:.1e} |",
            flush=True,
        )

    line("exact TreeSHAP (`pred_contrib`)", exact, cpu, wall)
    per_tree = pattern_shap.PatternShap(booster, trees, leaf_tables=False)
    cold, cpu, wall = _timed(lambda: _chunks(per_tree.contributions, codes))
    line("by split pattern, new patterns by `pred_contrib` per tree, first pass", cold, cpu, wall)
    engine, build_cpu, build_wall = _timed(lambda: pattern_shap.PatternShap(booster, trees))
    _, check_cpu, _ = _timed(engine.self_check)
    engine = pattern_shap.PatternShap(booster, trees)  # no pattern known (the check's are not kept)
    cold, cpu, wall = _timed(lambda: _chunks(engine.contributions, codes))
    line("by split pattern, new patterns from the leaf tables (default), first pass", cold, cpu, wall)
    warm, cpu, wall = _timed(lambda: _chunks(engine.contributions, codes))
    line(f"by split pattern, leaf tables, second pass ({engine._stored:,} patterns known)", warm, cpu, wall)
    print(
        f"\nengine with leaf tables: built in {build_cpu:.2f} s CPU ({build_wall:.2f} s wall), "
        f"self-check {check_cpu:.2f} s CPU",
        flush=True,
    )
    saabas, leaf_mean, offsets = _leaf_tables(booster, fast.encode(reference)[:, fast.tree_index])
    values, cpu, wall = _timed(lambda: _chunks(lambda r: _from_leaves(booster, saabas, offsets, r), codes))
    line("path attribution (Saabas) from `pred_leaf`", values, cpu, wall)
    values, cpu, wall = _timed(lambda: _chunks(lambda r: _from_leaves(booster, leaf_mean, offsets, r), codes))
    line(f"leaf mean of exact TreeSHAP over {cut:,} reference rows, from `pred_leaf`", values, cpu, wall)

    print("\n| `score_frame` | rows/s (CPU) | rows/s (wall) | reasons equal to exact's (share of rows) |")
    print("|---|---|---|---|")
    outputs = {}
    meta_score = model.meta.score_name
    for name, env, reasons in (
        ("without reasons", "patterns", False),
        ("with reasons, exact TreeSHAP (`FORECAST_REASONS_METHOD=treeshap`)", "treeshap", True),
        ("with reasons, by split pattern (default), fresh engine (built in the run)", "patterns", True),
        (
            "with reasons, by split pattern (default), engine built beforehand, no pattern known",
            "patterns",
            True,
        ),
        ("with reasons, by split pattern (default), warm engine", "patterns", True),
    ):
        os.environ[pattern_shap.ENV] = env
        if "fresh" in name:
            pattern_shap._CACHE.clear()
        if "beforehand" in name:
            pattern_shap._CACHE.clear()
            pattern_shap.pattern_shap(booster, trees)  # built and checked, as a service does at load
            built = pattern_shap.pattern_shap(booster, trees)
            assert built is not None
            built._known = None if built._known is None else np.full_like(built._known, -1)
            built._stored = 0
        out, cpu, wall = _timed(lambda: score_frame(model, rows, ids, reasons=reasons))  # noqa: B023
        outputs[name] = out
        same = ""
        if reasons and env == "patterns":
            reference_out = outputs["with reasons, exact TreeSHAP (`FORECAST_REASONS_METHOD=treeshap`)"]
            columns = [c for c in out.columns if c.startswith("reason_")]
            same = f"{(out[columns].fillna('') == reference_out[columns].fillna('')).all(axis=1).mean():.4f}"
            scores = [meta_score, "score", "band"]
            same += f"; {meta_score}, score, band equal: {bool(out[scores].equals(reference_out[scores]))}"
        print(f"| {name} | {n / cpu:,.0f} | {n / wall:,.0f} | {same} |", flush=True)
    print(f"load average {os.getloadavg()} at the end")


if __name__ == "__main__":
    main()
