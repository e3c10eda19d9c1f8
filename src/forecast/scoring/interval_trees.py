"""A competing-risks hazard's class probabilities on a deal's interval rows, one pattern per tree.

A discrete-time hazard (:class:`~forecast.models.survival.DiscreteTimeHazard`) scores a deal on one
row per interval: the deal's encoded columns and the interval's index. LightGBM walks every tree
once per interval row. Here the direction a deal takes at each split of a tree (its *split
pattern*, as :mod:`forecast.scoring.pattern_shap` computes it from the booster's dump) is computed
once per deal from its own columns; the interval column only takes the values ``0 .. k-1``, so the
directions of the splits on it are a precomputed table per (tree, interval), OR-ed into the deal's
pattern. A table per tree gives the leaf each pattern leads to; the leaves' values summed over the
iterations in LightGBM's order (from zero, one iteration after the other) and LightGBM's softmax
(the C library's ``exp``, as its C++ calls it) are ``booster.predict``'s probabilities to the last
bit. :func:`interval_trees` builds this once per booster and checks it against LightGBM on rows
covering every class of every feature; ``None`` when it differs or does not apply (callers then
use the booster).
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Any

import lightgbm as lgb
import numpy as np

from forecast.scoring.pattern_shap import _ZERO, _Feature, _feature, _goes_left, _splits, _UnsupportedError

log = logging.getLogger(__name__)

MAX_TABLE = 1 << 24
"""Most (tree, pattern) entries of the pattern-to-leaf tables (one byte each: 16 MiB; about 1,000
trees of 15 leaves, 340 iterations of a three-class hazard; larger boosters keep LightGBM)."""

BLOCK = 256
"""Deals evaluated at a time (bounds the (deals x trees x intervals) temporaries)."""

SMALL = 16
"""At most this many deals: each deal's pattern from one row of bits per feature (fewer operations)."""

_CACHE: weakref.WeakKeyDictionary[lgb.Booster, dict[tuple[int, int], IntervalTrees | None]] = (
    weakref.WeakKeyDictionary()
)


class UnsupportedError(Exception):
    """A booster whose interval rows this module does not reproduce."""


class IntervalTrees:
    """The class probabilities of a multiclass booster's first ``iterations`` on interval rows.

    The booster's last feature is the interval index; the others are a deal's encoded columns.

    Args:
        booster: A LightGBM ``multiclass`` (softmax) booster.
        iterations: Iterations used (as ``predict``'s ``num_iteration``; <= 0: all).
        intervals: ``k``: the interval rows ``0 .. k-1`` of each deal.

    Raises:
        UnsupportedError: Another objective, trees too large for the tables, or a split kind
            :mod:`~forecast.scoring.pattern_shap` does not reproduce.
    """

    def __init__(self, booster: lgb.Booster, iterations: int, intervals: int) -> None:
        per = booster.num_model_per_iteration()
        total = booster.num_trees() // per
        self.iterations = total if iterations <= 0 else min(int(iterations), total)
        dumped = booster.dump_model(num_iteration=self.iterations)
        if not str(dumped.get("objective", "")).startswith("multiclass ") or per < 2:
            raise UnsupportedError(f"objective {dumped.get('objective')}")
        trees = dumped["tree_info"][: self.iterations * per]
        # no reference to the booster is kept: the cache's value would keep its key alive
        self.classes, self.intervals = per, int(intervals)
        self.n_features = booster.num_feature()
        interval = self.n_features - 1
        splits = [_splits(tree) for tree in trees]
        self.bits = max([1, *(len(s) for s in splits)])
        # a tree's patterns are numbers below 2^(its splits): one table entry each, counted in
        # Python integers (a tree of 63 splits or more overflows int64)
        if self.bits >= MAX_TABLE.bit_length() or sum(1 << len(s) for s in splits) > MAX_TABLE:
            raise UnsupportedError("trees too large for the pattern tables")
        self.table_sizes = np.array([1 << len(s) for s in splits], dtype=np.int64)
        steps = np.arange(self.intervals, dtype=np.float64)
        self.interval_bits = np.zeros((len(trees), self.intervals), dtype=np.int64)
        by_feature: dict[int, list[tuple[int, int, dict[str, Any]]]] = {}
        for t, nodes in enumerate(splits):
            for j, node in nodes.items():
                f = int(node["split_feature"])
                if f == interval:
                    self.interval_bits[t] |= _goes_left(node, steps).astype(np.int64) << j
                else:
                    by_feature.setdefault(f, []).append((t, j, node))
        features = {f: _feature(nodes) for f, nodes in sorted(by_feature.items())}
        self._tables(len(trees), by_feature, features)
        self._classes_layout(features)
        self._leaf_tables(trees)

    def _tables(
        self,
        trees: int,
        by_feature: dict[int, list[tuple[int, int, dict[str, Any]]]],
        features: dict[int, _Feature],
    ) -> None:
        """Per (tree, feature) the split directions of each class of the feature, as pattern bits."""
        tables: dict[tuple[int, int], np.ndarray] = {}
        for f, nodes in by_feature.items():
            values = features[f].values
            for t, j, node in nodes:
                table = tables.setdefault((t, f), np.zeros(len(values), dtype=np.int64))
                table |= _goes_left(node, values).astype(np.int64) << j
        pairs = sorted(tables)
        width = max([1, *(sum(1 for p in pairs if p[0] == t) for t in range(trees))])
        widest = max([1, *(len(f.values) for f in features.values())])
        chunks: list[np.ndarray] = [np.zeros(widest, dtype=np.int64)]  # padding: no bits
        feature = np.zeros((trees, width), dtype=np.intp)
        offset = np.zeros((trees, width), dtype=np.intp)
        filled = np.zeros(trees, dtype=np.intp)
        start = widest
        for t, f in pairs:
            feature[t, filled[t]], offset[t, filled[t]] = f, start
            filled[t] += 1
            chunks.append(tables[(t, f)])
            start += len(tables[(t, f)])
        self.trees, self.width = trees, width
        self.dtype = np.uint16 if self.bits <= 16 else (np.uint32 if self.bits <= 32 else np.uint64)
        self.flat = np.concatenate(chunks).astype(self.dtype)
        self.pad_feature = feature.reshape(-1)
        self.pad_offset = offset.reshape(-1)
        # a few rows: per (feature, class) the bits of every tree, one row gathered per feature
        used = sorted(features)
        self.row_feature = np.array(used, dtype=np.intp)
        sizes = [len(features[f].values) for f in used]
        self.row_offset = np.cumsum([0, *sizes])[:-1].astype(np.intp)
        self.rows = np.zeros((max(1, sum(sizes)), trees), dtype=self.dtype)
        for (t, f), table in tables.items():
            at = self.row_offset[used.index(f)]
            self.rows[at : at + len(table), t] = table.astype(self.dtype)

    def _classes_layout(self, features: dict[int, _Feature]) -> None:
        """What :meth:`_feature_classes` needs: all numeric bounds in one array, the category counts."""
        numeric = [f for f, feature in features.items() if not feature.categorical]
        categorical = [f for f, feature in features.items() if feature.categorical]
        edges = [features[f].bounds for f in numeric]
        self.numeric = np.array(numeric, dtype=np.intp)
        self.bounds = np.concatenate([np.zeros(0), *edges])
        self.owner = np.repeat(np.arange(len(numeric)), [len(b) for b in edges])
        self.starts = np.cumsum([0, *(len(b) for b in edges)])[:-1].astype(np.intp)
        self.missing = np.array([len(b) + 1 for b in edges], dtype=np.intp)
        self.categorical = np.array(categorical, dtype=np.intp)
        self.levels = np.array([features[f].levels for f in categorical], dtype=np.float64)
        # a value of each class of each feature (and its missing value), for :meth:`self_check`
        self.probes = {f: feature.values for f, feature in features.items()}

    def _leaf_tables(self, trees: list[dict[str, Any]]) -> None:
        """Per tree the leaf of every pattern (``leaf_of``) and the leaves' values (``values``)."""
        starts = np.concatenate([[0], np.cumsum(self.table_sizes)[:-1]]).astype(np.int64)
        most = 1
        paths: list[list[tuple[int, int, float]]] = []
        for tree in trees:
            found = _leaf_paths(tree["tree_structure"])
            paths.append(found)
            most = max(most, len(found))
        if most > 255:
            raise UnsupportedError("more than 255 leaves in a tree")
        self.leaf_of = np.zeros(int(self.table_sizes.sum()), dtype=np.uint8)  # at most MAX_TABLE bytes
        self.values = np.zeros(len(trees) * most)
        for t, found in enumerate(paths):
            table = self.leaf_of[starts[t] : starts[t] + self.table_sizes[t]]
            patterns = np.arange(len(table), dtype=np.int64)
            for leaf, (mask, ways, value) in enumerate(found):
                table[(patterns & mask) == ways] = leaf
                self.values[t * most + leaf] = value
        # the distinct interval bits of each tree (its slots), and each (tree, interval)'s slot
        slot_tree, slot_bits, slot_of, count = [], [], np.zeros(self.interval_bits.shape, dtype=np.intp), 0
        for t, row in enumerate(self.interval_bits):
            distinct, inverse = np.unique(row, return_inverse=True)
            slot_tree += [t] * len(distinct)
            slot_bits += distinct.tolist()
            slot_of[t] = count + inverse.reshape(-1)
            count += len(distinct)
        self.slot_tree = np.array(slot_tree, dtype=np.intp)
        self.slot_bits = np.array(slot_bits, dtype=self.dtype)
        self.slot_of = slot_of
        self.slot_leaf_base = starts[self.slot_tree]
        self.slot_value_base = self.slot_tree.astype(np.int64) * most

    def _feature_classes(self, codes: np.ndarray) -> np.ndarray:
        """Each row's class of every split feature, shape (n, features) (``_Feature.classes``)."""
        out = np.zeros((len(codes), self.n_features), dtype=np.intp)
        if len(self.numeric):
            values = codes[:, self.numeric]
            with np.errstate(invalid="ignore"):
                values = np.where(np.abs(values) <= _ZERO, 0.0, values)  # as LightGBM reads its input
                below = self.bounds[None, :] < values[:, self.owner]
            counts = np.add.reduceat(below, self.starts, axis=1, dtype=np.intp)
            out[:, self.numeric] = np.where(np.isnan(values), self.missing, counts)
        if len(self.categorical):
            values = codes[:, self.categorical]
            with np.errstate(invalid="ignore"):
                inside = (values > -1.0) & (values < self.levels)  # int(v) in [0, levels)
            out[:, self.categorical] = np.where(inside, np.trunc(np.where(inside, values, 0.0)), self.levels)
        return out

    def raw(self, codes: np.ndarray) -> np.ndarray:
        """LightGBM's raw scores of the interval rows, shape (classes, k, n).

        Args:
            codes: The deals' encoded columns (the booster's features but the interval), (n, f).
        """
        n = len(codes)
        classes = self._feature_classes(codes)
        # a tree's splits have distinct bits: their sum is their OR
        if n <= SMALL:
            index = classes[:, self.row_feature] + self.row_offset
            base = self.rows[index].sum(axis=1, dtype=self.dtype)  # (n, trees)
        else:
            index = classes[:, self.pad_feature] + self.pad_offset
            base = self.flat[index].reshape(n, self.trees, self.width).sum(axis=2, dtype=self.dtype)
        # each tree's distinct directions at its splits on the interval: one leaf each
        patterns = base[:, self.slot_tree] | self.slot_bits  # (n, slots)
        values = self.values[self.leaf_of[patterns + self.slot_leaf_base] + self.slot_value_base].T
        # per (tree, interval) its slot's value; summed over the iterations one after the other
        # (a reduction over the outer axis adds in order, as LightGBM from zero)
        by_tree = values[self.slot_of]  # (trees, k, n)
        return by_tree.reshape(self.iterations, self.classes, self.intervals, n).sum(axis=0)

    def proba(self, codes: np.ndarray) -> np.ndarray:
        """``booster.predict`` of the interval rows, shape (n, k, classes) (as ``interval_proba_codes``)."""
        if len(codes) <= BLOCK:
            return _softmax(self.raw(codes))
        out = np.empty((len(codes), self.intervals, self.classes))
        for start in range(0, len(codes), BLOCK):
            out[start : start + BLOCK] = _softmax(self.raw(codes[start : start + BLOCK]))
        return out

    def self_check(self, booster: lgb.Booster) -> None:
        """Compare with LightGBM on rows covering every class of every split feature (both paths).

        Raises:
            UnsupportedError: On any difference (to the last bit).
        """
        rng = np.random.default_rng(0)
        probes = {
            f: np.array([*values, -np.inf, np.inf, -1.0, values[0] - 0.5, 1e9])
            for f, values in self.probes.items()
        }
        rows = np.zeros((4 * max([8, *(len(v) for v in probes.values())]), self.n_features - 1))
        for f, values in probes.items():
            rows[:, f] = rng.permutation(np.resize(values, len(rows)))
        exact = self.exact(booster, rows)
        few = [self.proba(rows[i : i + SMALL]) for i in range(0, len(rows), SMALL)]  # the few-rows path
        if not (np.array_equal(self.proba(rows), exact) and np.array_equal(np.concatenate(few), exact)):
            raise UnsupportedError("the interval rows' probabilities differ from LightGBM's")

    def exact(self, booster: lgb.Booster, codes: np.ndarray) -> np.ndarray:
        """``booster.predict`` itself on the interval rows, shape (n, k, classes) (one thread)."""
        n, k = len(codes), self.intervals
        wide = np.empty((n, k, codes.shape[1] + 1), dtype=np.float64)
        wide[:, :, :-1] = codes[:, None, :]
        wide[:, :, -1] = np.arange(k, dtype=np.float64)
        p = booster.predict(wide.reshape(n * k, -1), num_iteration=self.iterations, num_threads=1)
        return np.asarray(p, dtype=np.float64).reshape(n, k, self.classes)


def _softmax(raw: np.ndarray) -> np.ndarray:
    """LightGBM's ``Common::Softmax`` of raw scores (classes, k, n), as (n, k, classes).

    ``exp(raw - max)`` with the C library's ``exp`` (numpy's vectorised one may differ in the last
    bit), summed over the classes in order, each divided by the sum.
    """
    shifted = (raw - raw.max(axis=0)).reshape(-1)
    exp = np.fromiter(map(math.exp, shifted.tolist()), dtype=np.float64, count=len(shifted))
    exp = exp.reshape(raw.shape)
    return (exp / exp.sum(axis=0)).transpose(2, 1, 0)


def _leaf_paths(root: dict[str, Any]) -> list[tuple[int, int, float]]:
    """Per leaf (by ``leaf_index``) the pattern bits of its path's splits, their directions and its value."""
    if "split_index" not in root:  # a single leaf
        return [(0, 0, float(root.get("leaf_value", 0.0)))]
    found: dict[int, tuple[int, int, float]] = {}
    stack: list[tuple[dict[str, Any], int, int]] = [(root, 0, 0)]
    while stack:
        node, mask, ways = stack.pop()
        if "split_index" not in node:
            found[int(node.get("leaf_index", 0))] = (mask, ways, float(node["leaf_value"]))
            continue
        bit = 1 << int(node["split_index"])
        stack.append((node["left_child"], mask | bit, ways | bit))
        stack.append((node["right_child"], mask | bit, ways))
    return [found[i] for i in sorted(found)]


def interval_trees(booster: lgb.Booster, iterations: int, intervals: int) -> IntervalTrees | None:
    """The checked :class:`IntervalTrees` of a booster (built once per booster, iterations and ``k``).

    ``None`` when it does not reproduce LightGBM for this booster.
    """
    per_booster = _CACHE.setdefault(booster, {})
    key = (int(iterations), int(intervals))
    if key not in per_booster:
        engine: IntervalTrees | None
        try:
            engine = IntervalTrees(booster, iterations, intervals)
            engine.self_check(booster)
        except (UnsupportedError, _UnsupportedError) as exc:  # ours, or a split kind pattern_shap refuses
            log.debug("no interval-row patterns for this booster: %s", exc)
            engine = None
        except (AttributeError, KeyError, ValueError, TypeError, IndexError, ArithmeticError) as exc:
            log.debug("no interval-row patterns for this booster (an unusual dump): %r", exc)
            engine = None
        per_booster[key] = engine
    return per_booster[key]
