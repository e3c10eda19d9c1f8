"""Exact TreeSHAP of many rows at once: each tree's values computed once per distinct split pattern.

Path-dependent TreeSHAP (LightGBM's ``pred_contrib``) reads a row only through the direction it
takes at each split of a tree: two rows that go the same way at every split of a tree (not only on
their own path: the values also weigh the branches a row does not take) get the same values from
that tree. In a batch, a tree of 15 leaves sees few such *split patterns* (about 5% of the row-tree
pairs on the lead model, benchmarks/RESULTS.md "Reasons at bulk speed"), so here:

1. each row's pattern of every tree is computed with numpy from the booster's dump: per feature, a
   row's value falls in one of the intervals between the thresholds of the splits on it (or is
   missing, or a category code); a table per (tree, feature) maps the interval to the directions of
   that tree's splits on the feature, exactly as LightGBM decides them (missing values by the
   split's default direction and missing type, categories by the split's category set);
2. the distinct (tree, pattern) pairs of the batch are found, and the values of those not met
   before are read from per-leaf tables (:class:`_LeafTables`): TreeSHAP of one tree is a sum over
   its leaves of the Shapley values of a product game whose only row-dependent inputs are, per
   feature on the leaf's path, whether the row takes every split on it the path's way, i.e. bits
   of the pattern; each leaf's values for all those agreement sets are computed once, from the
   booster's dump (covers and leaf values), when the engine is built. Where a path has too many
   distinct features for a table, LightGBM's own TreeSHAP runs instead on one representative row
   of each pattern, one tree at a time (``start_iteration``);
3. every row's values are gathered back from its patterns and summed over the trees.

The numbers are TreeSHAP's (the same algorithm, on rows taking the same directions), up to the
order of the floating-point additions (1e-12 on the log-odds scale, tests/unit/test_pattern_shap.py);
per row they add up to the raw log-odds like ``pred_contrib``'s. :func:`tree_contributions` uses
this for batches of at least :data:`MIN_ROWS` rows and ``pred_contrib`` for fewer (a one-row call
would run one TreeSHAP call per tree); ``FORECAST_REASONS_METHOD=treeshap`` makes every call use
``pred_contrib`` (docs/models.md, "Reason codes").
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np

from forecast.models.pipeline import predict_threads

log = logging.getLogger(__name__)

ENV = "FORECAST_REASONS_METHOD"
"""Environment variable choosing how TreeSHAP values are computed: ``patterns`` (default) or ``treeshap``."""

METHODS = ("patterns", "treeshap")

MIN_ROWS = 2_000
"""Batches with fewer rows use ``pred_contrib`` directly when the engine has no leaf tables (the
per-tree calls cost more than they save); with them, every batch uses the engine."""

SMALL = 64
"""Batches of at most this many rows take the small-batch path (no per-feature or per-tree loops)."""

_MAX_TABLE = 1 << 24
"""Largest (trees x 2^splits) dense pattern table; beyond it patterns are deduplicated by sorting."""

CACHE_ENTRIES = 500_000
"""Most (tree, pattern) values kept between calls (500,000 x the widest tree's features x 8 bytes)."""

_MAX_SPLITS = 62
"""Trees with more splits than this do not fit a 64-bit pattern (``pred_contrib`` is used)."""

_ZERO = float(np.float32(1e-35))
"""LightGBM's ``kZeroThreshold`` (a float constant), for splits whose missing type is ``Zero``."""

_CLIPPED = 1e300
"""What ``dump_model`` writes for an infinite threshold."""

_BLOCK = 256
"""Rows per block when computing patterns (keeps the (pairs x rows) temporaries in cache)."""

_CACHE: weakref.WeakKeyDictionary[lgb.Booster, dict[Any, PatternShap | None]] = weakref.WeakKeyDictionary()
"""Engines per booster: by tree count (and class), and by the arguments asked for."""


def method() -> str:
    """The configured method (``FORECAST_REASONS_METHOD``; default ``patterns``).

    Raises:
        ValueError: The variable is set to something else.
    """
    value = os.environ.get(ENV, "").strip().lower() or METHODS[0]
    if value not in METHODS:
        raise ValueError(f"{ENV} must be one of {', '.join(METHODS)}, got {value!r}")
    return value


def tree_contributions(booster: lgb.Booster, rows: np.ndarray, iteration: int | None) -> np.ndarray:
    """TreeSHAP values of a booster's first ``iteration`` trees, shape (n, features + 1), bias last.

    What ``booster.predict(rows, num_iteration=iteration, pred_contrib=True)`` returns, computed
    per split pattern for large batches (see the module docstring).

    Args:
        booster: A binary LightGBM booster (one tree per iteration).
        rows: Float matrix of the booster's features.
        iteration: Trees used (``None`` or <= 0: all).
    """
    engine = None
    if method() == "patterns":
        engine = pattern_shap(booster, iteration)
        if engine is not None and engine._leaf is None and len(rows) < MIN_ROWS:
            engine = None  # without leaf tables a small batch costs less through pred_contrib
    if engine is None:
        return np.asarray(
            booster.predict(
                rows, num_iteration=iteration, pred_contrib=True, num_threads=predict_threads(len(rows))
            ),
            dtype=np.float64,
        )
    return engine.contributions(rows)


def tree_contributions_and_raw(
    booster: lgb.Booster, rows: np.ndarray, iteration: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`tree_contributions` and, when the engine has them, the rows' raw scores (else ``None``).

    The raw scores are ``booster.predict(rows, num_iteration=iteration, raw_score=True)`` to the
    last bit, from the same split patterns (no second walk of the trees).
    """
    if method() == "patterns":
        engine = pattern_shap(booster, iteration)
        if engine is not None and engine._leaf is not None:
            return engine.contributions_and_raw(rows)
    return tree_contributions(booster, rows, iteration), None


def class_contributions(
    booster: lgb.Booster, rows: np.ndarray, iteration: int | None, klass: int
) -> np.ndarray:
    """TreeSHAP values of one class's trees of a multiclass booster, shape (n, features + 1), bias last.

    What the class's block of ``booster.predict(rows, num_iteration=iteration, pred_contrib=True)``
    holds, through the pattern engine of that class's trees when it has leaf tables (any batch
    size), else from ``pred_contrib`` itself.

    Args:
        booster: A LightGBM booster with one or more trees per iteration.
        rows: Float matrix of the booster's features.
        iteration: Iterations used (``None`` or <= 0: all).
        klass: The class whose trees are explained (0 for a binary booster).
    """
    engine = pattern_shap(booster, iteration, klass) if method() == "patterns" else None
    if engine is None or engine._leaf is None:
        width = booster.num_feature() + 1
        exact = booster.predict(
            rows, num_iteration=iteration, pred_contrib=True, num_threads=predict_threads(len(rows))
        )
        return np.asarray(exact, dtype=np.float64)[:, klass * width : (klass + 1) * width]
    return engine.contributions(rows)


def pattern_shap(booster: lgb.Booster, iteration: int | None, klass: int = 0) -> PatternShap | None:
    """The checked pattern engine of a booster's class (built once per booster, tree count and class).

    ``None`` when the engine does not reproduce LightGBM for it.
    """
    if iteration is None:  # as Booster.predict: the booster's best iteration when it has one
        iteration = booster.best_iteration
    per_booster = _CACHE.setdefault(booster, {})
    asked = (int(iteration), klass, "asked")
    if asked in per_booster:  # a request's lookup without asking LightGBM for the tree counts again
        return per_booster[asked]
    per_class = booster.num_model_per_iteration()
    iterations = booster.num_trees() // per_class
    trees = iterations if iteration <= 0 else min(int(iteration), iterations)
    key: int | tuple[int, int] = trees if klass == 0 and per_class == 1 else (trees, klass)
    if key not in per_booster:
        engine: PatternShap | None
        try:
            engine = PatternShap(booster, trees, klass=klass)
            engine.self_check()
        except _UnsupportedError as exc:
            log.debug("no split-pattern TreeSHAP for this booster: %s", exc)
            engine = None
        except (AttributeError, KeyError, ValueError, TypeError, IndexError) as exc:  # an unusual dump
            log.debug("no split-pattern TreeSHAP for this booster: %r", exc)
            engine = None
        per_booster[key] = engine
    if 0 < iteration <= iterations:  # never capped: the same trees whatever the booster holds later
        per_booster[asked] = per_booster[key]
    return per_booster[key]


class _UnsupportedError(Exception):
    """A booster the pattern engine does not reproduce exactly."""


@dataclass
class _Feature:
    """How a row's value of one feature becomes a class index (``values[class]`` represents it)."""

    categorical: bool
    bounds: np.ndarray
    """Numeric: sorted split thresholds (and the zero band's edges). Categorical: unused."""
    levels: int
    """Categorical: category codes 0..levels-1 have their own class; the rest share class ``levels``."""
    values: np.ndarray
    """One value per class that takes every split on the feature the way the class's values do."""

    def classes(self, column: np.ndarray) -> np.ndarray:
        """Class index of each value."""
        if self.categorical:
            with np.errstate(invalid="ignore"):
                inside = (column > -1.0) & (column < self.levels)  # int(v) in [0, levels)
            return np.where(inside, np.trunc(np.where(inside, column, 0.0)), self.levels).astype(np.int32)
        with np.errstate(invalid="ignore"):
            column = np.where(np.abs(column) <= _ZERO, 0.0, column)  # as LightGBM reads its input
        out = np.searchsorted(self.bounds, column, side="left").astype(np.int32)
        out[np.isnan(column)] = len(self.bounds) + 1
        return out


def _goes_left(node: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """LightGBM's decision of one split for each value (``NumericalDecision`` / ``CategoricalDecision``).

    LightGBM reads a value within ``kZeroThreshold`` of zero as zero before any decision.
    """
    values = np.asarray(values, dtype=np.float64)
    missing_value = np.isnan(values)
    with np.errstate(invalid="ignore"):
        values = np.where(np.abs(values) <= _ZERO, 0.0, values)
    if node["decision_type"] == "==":
        codes = np.array(sorted({int(c) for c in str(node["threshold"]).split("||")}), dtype=np.float64)
        whole = np.trunc(np.where(missing_value, -1.0, values))  # int(value): towards zero
        return ~missing_value & (whole >= 0) & np.isin(whole, codes)
    if node["decision_type"] != "<=":
        raise _UnsupportedError(f"decision type {node['decision_type']}")
    missing = node["missing_type"]
    if missing != "NaN":
        values = np.where(missing_value, 0.0, values)
    if missing == "Zero":
        default = (values >= -_ZERO) & (values <= _ZERO)
    elif missing == "NaN":
        default = missing_value
    else:
        default = np.zeros(len(values), dtype=bool)
    with np.errstate(invalid="ignore"):
        return np.where(default, bool(node["default_left"]), values <= _threshold(node))


def _threshold(node: dict[str, Any]) -> float:
    """A numeric split's threshold; the dump writes +-inf as +-1e300 (``AvoidInf``)."""
    value = float(node["threshold"])
    return float(np.sign(value) * np.inf) if abs(value) >= _CLIPPED else value


def _splits(tree: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The split nodes of a dumped tree by ``split_index``."""
    out: dict[int, dict[str, Any]] = {}
    stack = [tree["tree_structure"]]
    while stack:
        node = stack.pop()
        if "split_index" in node:
            out[int(node["split_index"])] = node
            stack += [node["left_child"], node["right_child"]]
    return out


class PatternShap:
    """TreeSHAP of a booster's first ``trees`` trees through split patterns (see the module docstring).

    Args:
        booster: A LightGBM booster (binary, or several trees per iteration: one class's trees).
        trees: How many of its first iterations to explain.
        klass: The class whose trees are explained (with several trees per iteration: tree
            ``i * classes + klass`` of iteration ``i``, and its block of ``pred_contrib``).

    Raises:
        _UnsupportedError: Without leaf tables for a class of several, trees too large, or an
            unknown split kind.
    """

    def __init__(self, booster: lgb.Booster, trees: int, *, leaf_tables: bool = True, klass: int = 0) -> None:
        self.classes = booster.num_model_per_iteration()
        if not 0 <= klass < self.classes:
            raise _UnsupportedError(f"class {klass} of {self.classes}")
        self.klass = klass
        self.booster = booster
        self.trees = trees
        self.n_features = booster.num_feature()
        dumped = booster.dump_model(num_iteration=trees)["tree_info"][klass :: self.classes][:trees]
        self._dumped = dumped
        splits = [_splits(tree) for tree in dumped]
        self.bits = max([1, *(len(s) for s in splits)])
        if self.bits > _MAX_SPLITS:
            raise _UnsupportedError("trees too large for 64-bit patterns")
        by_feature: dict[int, list[tuple[int, int, dict[str, Any]]]] = {}
        for t, nodes in enumerate(splits):
            for j, node in nodes.items():
                by_feature.setdefault(int(node["split_feature"]), []).append((t, j, node))
        self.features = {f: _feature(nodes) for f, nodes in sorted(by_feature.items())}
        tables: dict[tuple[int, int], np.ndarray] = {}
        for f, on_feature in by_feature.items():
            values = self.features[f].values
            for t, j, node in on_feature:
                table = tables.setdefault((t, f), np.zeros(len(values), dtype=np.uint64))
                table |= _goes_left(node, values).astype(np.uint64) << np.uint64(j)
        pairs = sorted(tables)
        dtype = np.uint16 if self.bits <= 16 else (np.uint32 if self.bits <= 32 else np.uint64)
        self.dtype = dtype
        self.key_dtype = np.int32 if (trees << self.bits) < 2**31 else np.int64
        """Patterns and (tree, pattern) keys (``tree << bits | pattern``) fit this type."""
        widest = max([1, *(len(f.values) for f in self.features.values())])
        # every tree gets the same number of (tree, feature) tables, padded with an all-zero one
        self.width = max([1, *(sum(1 for p in pairs if p[0] == t) for t in range(trees))])
        chunks: list[np.ndarray] = [np.zeros(widest, dtype=dtype)]
        feature = np.zeros((trees, self.width), dtype=np.intp)
        offset = np.zeros((trees, self.width), dtype=np.int64)
        filled = np.zeros(trees, dtype=np.intp)
        start = widest
        for t, f in pairs:
            feature[t, filled[t]], offset[t, filled[t]] = f, start
            filled[t] += 1
            chunks.append(tables[(t, f)].astype(dtype))
            start += len(chunks[-1])
        self.flat = np.concatenate(chunks)
        self.pad_feature = feature.reshape(-1)
        self.pad_offset = offset.reshape(-1, 1).astype(np.int32 if start < 2**31 else np.int64)
        self.tree_features = [feature[t, : filled[t]] for t in range(trees)]
        # per (tree, value column) the output column; padding columns add their zeros to the bias's
        self.pad_columns = np.where(
            np.arange(self.width)[None, :] < filled[:, None], feature, self.n_features
        )
        self._small: tuple[np.ndarray, ...] | None = None
        self._small_index: dict[int, np.ndarray] = {}
        self._leaf: _LeafTables | None = None
        if leaf_tables:
            try:
                self._leaf = _LeafTables(dumped, self.tree_features, self.width, self.bits)
            except _UnsupportedError as exc:
                log.debug("no leaf tables for this booster: %s", exc)
        if (
            self._leaf is None and self.classes > 1
        ):  # one tree at a time through pred_contrib: not one class's
            raise _UnsupportedError("several trees per iteration without leaf tables")
        # a stored (tree, pattern) value: its TreeSHAP values and, with leaf tables, the tree's output
        self.stored_width = self.width + (self._leaf is not None)
        # small batches: per (tree, stored column) the output column (the tree's output: one past the bias)
        self.small_columns = np.hstack([self.pad_columns, np.full((trees, 1), self.n_features + 1)])[
            :, : self.stored_width
        ]
        self.raw_ok = self._leaf is not None
        """Whether the trees' summed outputs are LightGBM's raw scores (set by :meth:`self_check`)."""
        probe = np.zeros((1, self.n_features))
        self.bias = float(self._exact(probe, pred_contrib=True)[0, -1])
        # values of the patterns met so far, by key, when the keys fit a dense table
        self._known: np.ndarray | None = None
        self._store = np.zeros((0, self.stored_width))
        self._lock = threading.Lock()
        self._seen: np.ndarray | None = None
        self._number = self._row = np.zeros(0, dtype=np.int32)
        self._stored = 0
        if trees << self.bits <= _MAX_TABLE:
            self._known = np.full(trees << self.bits, -1, dtype=np.int32)

    def patterns(self, rows: np.ndarray) -> np.ndarray:
        """Each row's split pattern in each tree, shape (trees, n): bit ``j`` is split ``j`` going left."""
        n = len(rows)
        if n <= SMALL:  # rows first: the sums run along contiguous memory
            index = self._small_classes(rows).T[:, self.pad_feature]
            index += self.pad_offset.reshape(-1)
            bits = self.flat[index].reshape(n, self.trees, self.width)
            return np.ascontiguousarray(bits.sum(axis=2, dtype=self.dtype).T.astype(self.key_dtype))
        out = np.zeros((self.trees, n), dtype=self.key_dtype)
        classes = np.zeros((self.n_features, n), dtype=self.pad_offset.dtype)
        for f, feature in self.features.items():
            classes[f] = feature.classes(rows[:, f])
        for start in range(0, n, _BLOCK):
            index = classes[self.pad_feature, start : start + _BLOCK]
            index += self.pad_offset
            bits = self.flat[index].reshape(self.trees, self.width, -1)
            out[:, start : start + _BLOCK] = bits.sum(axis=1, dtype=self.dtype)  # disjoint bits: an OR
        return out

    def _small_classes(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`_Feature.classes` of every feature at once, shape (features, n), for a few rows.

        A numeric value's class is the number of its feature's bounds below it (``searchsorted``
        on the left), counted over all features' bounds in one comparison.
        """
        small = self._small
        if small is None:
            by_number = [f for f, feature in self.features.items() if not feature.categorical]
            by_code = [f for f, feature in self.features.items() if feature.categorical]
            edges = [self.features[f].bounds for f in by_number]
            small = self._small = (
                np.array(by_number, dtype=np.intp),
                np.concatenate([np.zeros(0), *edges]),
                np.repeat(np.arange(len(by_number)), [len(b) for b in edges]),
                np.cumsum([0, *(len(b) for b in edges)])[:-1],
                np.array([len(b) + 1 for b in edges], dtype=np.int64),
                np.array(by_code, dtype=np.intp),
                np.array([self.features[f].levels for f in by_code], dtype=np.float64),
            )
        numeric, bounds, owner, starts, missing, categorical, levels = small
        out = np.zeros((self.n_features, len(rows)), dtype=self.pad_offset.dtype)
        if len(numeric):
            values = rows[:, numeric]
            with np.errstate(invalid="ignore"):
                values = np.where(np.abs(values) <= _ZERO, 0.0, values)  # as LightGBM reads its input
                below = bounds[None, :] < values[:, owner]
            counts = np.add.reduceat(below, starts, axis=1, dtype=np.int64)
            out[numeric] = np.where(np.isnan(values), missing, counts).T
        if len(categorical):
            values = rows[:, categorical]
            with np.errstate(invalid="ignore"):
                inside = (values > -1.0) & (values < levels)
            out[categorical] = np.where(inside, np.trunc(np.where(inside, values, 0.0)), levels).T
        return out

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """TreeSHAP values of ``rows``, shape (n, features + 1), bias last (as ``pred_contrib``)."""
        return self.contributions_and_raw(rows)[0]

    def contributions_and_raw(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`contributions` and the rows' raw scores, or ``None`` without leaf tables.

        A pattern leads to one leaf, whose value the leaf tables keep beside the TreeSHAP values;
        summed over the trees in order from zero, as LightGBM sums them, they are the raw score
        ``predict(raw_score=True)`` returns, to the last bit (checked by :meth:`self_check`).
        """
        rows = np.ascontiguousarray(rows, dtype=np.float64)
        n = len(rows)
        if not n:
            return np.zeros((0, self.n_features + 1)), (np.zeros(0) if self.raw_ok else None)
        patterns = self.patterns(rows)
        if n <= SMALL and self._leaf is not None and self._known is not None:
            values, summed = self._small_contributions(patterns)
            return values, (summed if self.raw_ok else None)
        with self._lock:  # the tables and known values are shared by the threads using this booster
            keys, slot, first, bounds = self._distinct(patterns)
            values = self._values(rows, keys, first, bounds)
        out = np.zeros((self.n_features + 1, n))
        raw: np.ndarray | None = np.zeros(n) if self._leaf is not None else None
        for t in range(self.trees):  # tree by tree: small tables, gathered along the rows
            a, z = bounds[t], bounds[t + 1]
            used = self.tree_features[t]
            table = np.ascontiguousarray(values[a:z, : len(used)].T)
            out[used] += np.take(table, slot[t] - a, axis=1)
            if raw is not None:
                raw += np.take(values[a:z, self.width], slot[t] - a)
        out[-1] = self.bias
        return out.T, (raw if self.raw_ok else None)

    def _values(
        self, rows: np.ndarray, keys: np.ndarray, first: np.ndarray, bounds: np.ndarray
    ) -> np.ndarray:
        """Per distinct (tree, pattern) its tree's TreeSHAP values on the tree's features (padded).

        Values computed by earlier calls are reused (up to :data:`CACHE_ENTRIES` of them); the
        others come from ``pred_contrib`` on one row of each pattern, one tree at a time.
        """
        known = None if self._known is None else self._known[keys]
        if self._leaf is not None:
            return self._leaf_values(keys, known, bounds)
        out = np.zeros((len(keys), self.width))
        for t in range(self.trees):
            a, z = bounds[t], bounds[t + 1]
            todo = np.arange(a, z) if known is None else a + np.flatnonzero(known[a:z] < 0)
            if known is not None and len(todo) < z - a:
                done = np.arange(a, z)[known[a:z] >= 0]
                out[done] = self._store[known[done]]
            if not len(todo):
                continue
            used = self.tree_features[t]
            phi = np.asarray(
                self.booster.predict(
                    rows[first[todo]],
                    start_iteration=t,
                    num_iteration=1,
                    pred_contrib=True,
                    num_threads=predict_threads(len(todo)),
                )
            )
            out[todo, : len(used)] = phi[:, used]
            self._remember(keys, todo, out)
        return out

    def _leaf_values(self, keys: np.ndarray, known: np.ndarray | None, bounds: np.ndarray) -> np.ndarray:
        """:meth:`_values` from the leaf tables: every new (tree, pattern) pair at once."""
        assert self._leaf is not None
        # the pattern is the key's low bits (even where tree << bits wrapped around); the tree, by number
        mask = (np.int64(1) << np.int64(self.bits)) - 1
        trees = np.repeat(np.arange(self.trees), np.diff(bounds))
        if known is None:
            return self._leaf.values(trees, keys & mask)
        todo = np.flatnonzero(known < 0)
        new = self._leaf.values(trees[todo], keys[todo] & mask)
        if self._stored + len(todo) > CACHE_ENTRIES:  # the store is full: values of this call only
            out = np.empty((len(keys), self.stored_width))
            done = np.flatnonzero(known >= 0)
            out[done] = self._store[known[done]]
            out[todo] = new
            return out
        a, z = self._stored, self._stored + len(todo)
        self._reserve(z)
        self._store[a:z] = new
        assert self._known is not None
        self._known[keys[todo]] = known[todo] = np.arange(a, z, dtype=np.int32)
        self._stored = z
        if len(todo) == len(keys):
            return self._store[a:z]  # rows written once and never changed: a view is safe
        return self._store[known]

    def _remember(self, keys: np.ndarray, todo: np.ndarray, out: np.ndarray) -> None:
        """Keep the values of the new keys ``keys[todo]`` (while fewer than :data:`CACHE_ENTRIES`)."""
        if self._known is not None and len(todo) and self._stored + len(todo) <= CACHE_ENTRIES:
            a, z = self._stored, self._stored + len(todo)
            self._reserve(z)
            self._store[a:z] = out[todo]
            self._known[keys[todo]] = np.arange(a, z, dtype=np.int32)
            self._stored = z

    def _reserve(self, entries: int) -> None:
        """Grow the store of known values (doubling, at most :data:`CACHE_ENTRIES` rows)."""
        if entries > len(self._store):
            size = min(CACHE_ENTRIES, max(entries, 2 * len(self._store), 65_536))
            grown = np.empty((size, self.stored_width))
            grown[: self._stored] = self._store[: self._stored]
            self._store = grown

    def _small_contributions(self, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`contributions` of a few rows from their patterns (dense key tables and leaf tables).

        Known (tree, pattern) values are read by key, new ones computed from the leaf tables and
        kept; the sum over the trees is one weighted count (the same order of additions as the
        tree-by-tree sum of large batches).
        """
        assert self._known is not None and self._leaf is not None
        trees, n = patterns.shape
        offsets = (np.arange(trees, dtype=np.int64) << np.int64(self.bits)).astype(self.key_dtype)
        key = patterns + offsets[:, None]
        with self._lock:
            known = self._known[key]
            missing = known < 0
            if missing.any():
                new_keys = np.unique(key[missing])
                values = self._leaf.values(new_keys >> self.bits, new_keys & ((1 << self.bits) - 1))
                if self._stored + len(new_keys) <= CACHE_ENTRIES:
                    a, z = self._stored, self._stored + len(new_keys)
                    self._reserve(z)
                    self._store[a:z] = values
                    self._known[new_keys] = np.arange(a, z, dtype=np.int32)
                    self._stored = z
                    known = self._known[key]
                    gathered = self._store[known]
                else:  # the store is full: these values for this call only
                    gathered = np.empty((trees, n, self.stored_width))
                    gathered[~missing] = self._store[known[~missing]]
                    gathered[missing] = values[np.searchsorted(new_keys, key[missing])]
            else:
                gathered = self._store[known]
        columns = self.n_features + 2  # the features, the bias, the trees' summed output
        index = self._small_index.get(n)
        if index is None:
            index = (np.arange(n)[None, :, None] * columns + self.small_columns[:, None, :]).reshape(-1)
            self._small_index[n] = index
        out = np.bincount(index, weights=gathered.reshape(-1), minlength=n * columns).reshape(n, columns)
        out[:, -2] = self.bias
        return out[:, :-1], out[:, -1]

    def _distinct(self, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The distinct (tree, pattern) keys, numbered tree by tree; per (tree, row) its number; etc.

        Returns:
            ``keys`` (``tree << bits | pattern``, sorted), ``slot`` (trees, n): the number of each
            row's key, ``first``: a row of each key, ``bounds``: tree ``t`` owns numbers
            ``bounds[t]:bounds[t+1]``.
        """
        trees, n = patterns.shape
        offsets = (np.arange(trees, dtype=np.int64) << np.int64(self.bits)).astype(self.key_dtype)
        key = patterns + offsets[:, None]
        if self._known is not None:  # dense tables by key, kept between calls (no page faults)
            if self._seen is None:
                size = trees << self.bits
                self._seen = np.zeros(size, dtype=bool)
                self._number = np.zeros(size, dtype=np.int32)  # at most 2^24 keys, rows per call
                self._row = np.zeros(size, dtype=np.int32)
            seen, number, row = self._seen, self._number, self._row
            seen[key] = True
            keys = np.flatnonzero(seen)
            seen[keys] = False
            number[keys] = np.arange(len(keys))
            bounds = np.searchsorted(keys, np.arange(trees + 1, dtype=np.int64) << self.bits)
            if self._leaf is not None:  # the leaf tables need no row of each key
                return keys, number[key], np.zeros(0, dtype=np.int32), bounds
            row[key] = np.arange(n, dtype=np.int32)[None, :]
            return keys, number[key], row[keys], bounds
        slots = np.empty((trees, n), dtype=np.int64)
        all_keys, firsts, bounds_list = [], [], [0]
        for t in range(trees):
            uniq, first, inverse = np.unique(key[t], return_index=True, return_inverse=True)
            slots[t] = inverse.reshape(-1) + bounds_list[-1]
            all_keys.append(uniq)
            firsts.append(first)
            bounds_list.append(bounds_list[-1] + len(first))
        return np.concatenate(all_keys), slots, np.concatenate(firsts), np.array(bounds_list)

    def self_check(self) -> None:
        """Check the patterns and the values against LightGBM on rows covering every class of every feature.

        The leaf each pattern leads to must be the leaf LightGBM predicts (``pred_leaf``), and the
        values must be ``pred_contrib``'s.

        Raises:
            _UnsupportedError: On any difference (values: more than 1e-9).
        """
        width = max([8, *(len(f.values) for f in self.features.values())])
        rng = np.random.default_rng(0)
        blocks = []
        for _ in range(4):
            rows = np.zeros((width, self.n_features))
            for f, feature in self.features.items():
                rows[:, f] = rng.permutation(np.resize(feature.values, width))
            blocks.append(rows)
        rows = np.vstack(blocks)
        leaves = self._exact(rows, pred_leaf=True)
        if not np.array_equal(self._leaves(self.patterns(rows)), np.asarray(leaves, dtype=np.int64).T):
            raise _UnsupportedError("patterns do not lead to LightGBM's leaves")
        rows = rows[:width]  # the values on one block (every class of every feature), as LightGBM's
        exact = self._exact(rows, pred_contrib=True)
        values, raw = self.contributions_and_raw(rows)
        if not np.allclose(values, exact, rtol=0.0, atol=1e-9):
            raise _UnsupportedError("self-check differs")
        if raw is not None:
            scores = self._exact(rows, raw_score=True)
            small = self.contributions_and_raw(rows[:SMALL])[1]
            if not (
                np.array_equal(raw, scores) and small is not None and np.array_equal(small, scores[:SMALL])
            ):
                log.debug("the trees' summed outputs differ from LightGBM's raw scores: not used")
                self.raw_ok = False

    def _exact(self, rows: np.ndarray, **kind: bool) -> np.ndarray:
        """LightGBM's ``pred_leaf`` / ``pred_contrib`` / ``raw_score`` of this engine's class (one thread)."""
        out = np.asarray(self.booster.predict(rows, num_iteration=self.trees, num_threads=1, **kind))
        if self.classes == 1:
            return out
        if kind.get("pred_leaf"):  # one column per tree, iteration by iteration
            return out[:, self.klass :: self.classes]
        if kind.get("pred_contrib"):  # one block of features + bias per class
            width = self.n_features + 1
            return out[:, self.klass * width : (self.klass + 1) * width]
        return out[:, self.klass]

    def _leaves(self, patterns: np.ndarray) -> np.ndarray:
        """The leaf each (tree, row) pattern leads to, shape (trees, n)."""
        out = np.zeros(patterns.shape, dtype=np.int64)
        for t, tree in enumerate(self._dumped):
            if "split_index" not in tree["tree_structure"]:  # a single leaf
                continue
            node = np.zeros(patterns.shape[1], dtype=np.int64)  # >= 0: split index; < 0: ~leaf
            left, right = _children(tree)
            while (node >= 0).any():
                inner = node >= 0
                split = node[inner]
                goes_left = (patterns[t, inner] >> split) & 1
                node[inner] = np.where(goes_left == 1, left[split], right[split])
            out[t] = ~node
        return out


def _children(tree: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per split index, its left and right child (a split index, or ``~leaf_index``)."""
    nodes = _splits(tree)
    left = np.zeros(max(1, len(nodes)), dtype=np.int64)
    right = np.zeros(max(1, len(nodes)), dtype=np.int64)

    def ref(child: dict[str, Any]) -> int:
        return int(child["split_index"]) if "split_index" in child else ~int(child.get("leaf_index", 0))

    for j, node in nodes.items():
        left[j], right[j] = ref(node["left_child"]), ref(node["right_child"])
    return left, right


def _feature(nodes: list[tuple[int, int, dict[str, Any]]]) -> _Feature:
    """The classes of one feature from the splits on it."""
    kinds = {node["decision_type"] for _, _, node in nodes}
    if kinds == {"=="}:
        codes = [int(c) for _, _, node in nodes for c in str(node["threshold"]).split("||")]
        levels = max(codes) + 1
        return _Feature(True, np.zeros(0), levels, np.array([*range(levels), np.nan]))
    if "==" in kinds:
        raise _UnsupportedError("a feature split both ways")
    thresholds = [_threshold(node) for _, _, node in nodes]
    bounds = np.unique(np.array([*thresholds, np.nextafter(-_ZERO, -np.inf), _ZERO]))
    # values in (bounds[k-1], bounds[k]] take every split as bounds[k] does; above the last, as +inf
    return _Feature(False, bounds, 0, np.array([*bounds, np.inf, np.nan]))


_MAX_PATH_FEATURES = 12
"""Leaves whose path has more distinct features than this get no table (``pred_contrib`` is used)."""

_LEAF_BLOCK = 4_096
"""(tree, pattern) pairs evaluated at a time from the leaf tables (bounds the temporaries)."""


class _LeafTables:
    """Exact TreeSHAP of (tree, split pattern) pairs from per-leaf tables, without calling LightGBM.

    Path-dependent TreeSHAP sums, over the leaves of a tree, the Shapley values of a product game:
    leaf ``l`` with value ``v``, the distinct features ``U`` on its path, per feature ``j`` its
    *zero fraction* ``z_j`` (the product of the cover ratios of the path's splits on ``j``) and its
    *one fraction* ``o_j`` (1 when the row takes every split on ``j`` the path's way, else 0) gives
    feature ``i`` of ``U``::

        v (o_i - z_i) sum_k k! (|U|-k-1)! / |U|!  [t^k] prod_{j in U, j != i} (o_j t + z_j)

    (Lundberg et al. 2018, the sum that LightGBM's ``Tree::TreeSHAP`` evaluates with its unwound
    path). The ``o_j`` are the only part that depends on the row, and they are bits of the row's
    split pattern: so each leaf gets a table of its values for all ``2^|U|`` agreement sets, built
    once, and a pattern's values are the sum over the tree's leaves of one table row each.

    Args:
        dumped: ``dump_model()["tree_info"]`` of the explained trees.
        tree_features: Per tree, its features in the order of the engine's value columns.
        width: Value columns per (tree, pattern).
        bits: Bits of the widest tree's patterns.

    Raises:
        _UnsupportedError: A path with more than :data:`_MAX_PATH_FEATURES` distinct features.
    """

    def __init__(
        self, dumped: list[dict[str, Any]], tree_features: list[np.ndarray], width: int, bits: int
    ) -> None:
        trees = len(dumped)
        leaves: list[list[tuple[float, list[int], list[int], list[int], list[float]]]] = []
        for t, tree in enumerate(dumped):
            column = {int(f): c for c, f in enumerate(tree_features[t])}
            leaves.append(_leaf_paths(tree["tree_structure"], column))
        self.slots = max([1, *(len(found) for found in leaves)])
        self.depth = max([1, *(len(leaf[1]) for found in leaves for leaf in found)])
        if self.depth > _MAX_PATH_FEATURES:
            raise _UnsupportedError("a path with too many distinct features for a table")
        self.width = width
        # per (tree, leaf slot, path feature): the pattern bits of its splits and their directions
        self.mask = np.zeros((trees, self.slots, self.depth), dtype=np.int64)
        self.ways = np.zeros((trees, self.slots, self.depth), dtype=np.int64)
        self.used = np.zeros((trees, self.slots), dtype=np.int64)  # (1 << |U|) - 1
        self.base = np.zeros((trees, self.slots), dtype=np.int64)  # the leaf's first table row
        by_size: dict[int, list[tuple[int, int, float, list[int], list[float]]]] = {}
        rows = 1  # row 0: all zeros (padding leaf slots)
        for t, found in enumerate(leaves):
            for s, (value, masks, ways, columns, zeros) in enumerate(found):
                u = len(masks)
                self.mask[t, s, :u], self.ways[t, s, :u] = masks, ways
                self.used[t, s] = (1 << u) - 1
                self.base[t, s] = rows
                by_size.setdefault(u, []).append((rows, t, value, columns, zeros))
                rows += 1 << u
        # column ``width``: the leaf's value where the row agrees with its whole path (the leaf it
        # reaches), so that the slots' sum is the tree's output; single-leaf trees add a constant
        self.table = np.zeros((rows, width + 1))
        self.constant = np.zeros(trees)
        for t, tree in enumerate(dumped):
            if "split_index" not in tree["tree_structure"]:
                self.constant[t] = float(tree["tree_structure"].get("leaf_value", 0.0))
        for t, found in enumerate(leaves):
            for s, (value, masks, *_rest) in enumerate(found):
                self.table[self.base[t, s] + (1 << len(masks)) - 1, width] = value
        for u, group in by_size.items():
            first = np.array([g[0] for g in group])
            values = _product_game(np.array([g[2] for g in group]), np.array([g[4] for g in group]), u)
            cells = np.array([g[3] for g in group], dtype=np.intp).reshape(len(group), u)
            where = (first[:, None] + np.arange(1 << u)[None, :])[:, :, None] * (
                width + 1
            )  # (leaves, 2^u, 1)
            # distinct path features have distinct columns: every cell is written once
            np.put(self.table, (where + cells[:, None, :]).reshape(-1), values.reshape(-1))
        self.powers = (2.0 ** np.arange(self.depth)).astype(np.float32)
        if bits < 31:  # smaller temporaries
            self.mask, self.ways = self.mask.astype(np.int32), self.ways.astype(np.int32)

    def values(self, trees: np.ndarray, patterns: np.ndarray) -> np.ndarray:
        """TreeSHAP values of each (tree, pattern) pair and, last, the tree's output: (pairs, width + 1)."""
        out = np.empty((len(trees), self.width + 1))
        for start in range(0, len(trees), _LEAF_BLOCK):
            t = trees[start : start + _LEAF_BLOCK]
            p = patterns[start : start + _LEAF_BLOCK, None, None].astype(self.mask.dtype)
            agree = ((p ^ self.ways[t]) & self.mask[t]) == 0  # (pairs, slots, depth)
            # the agreement bits as a number: a float32 product of 0/1 and powers of two is exact
            sets = (agree.astype(np.float32) @ self.powers).astype(np.int64)
            sets &= self.used[t]
            rows = np.where(self.used[t] == 0, 0, self.base[t] + sets)
            block = out[start : start + _LEAF_BLOCK]
            np.take(self.table, rows[:, 0], axis=0, out=block)
            for slot in range(1, self.slots):
                block += np.take(self.table, rows[:, slot], axis=0)
            block[:, -1] += self.constant[t]
        return out


def _leaf_paths(
    root: dict[str, Any], column: dict[int, int]
) -> list[tuple[float, list[int], list[int], list[int], list[float]]]:
    """Per leaf, its value and per distinct path feature four lists.

    The pattern bits of the path's splits on the feature, the bits of the directions the path
    takes there, the feature's value column and its zero fraction.
    """
    out = []
    stack: list[tuple[dict[str, Any], dict[int, list[float]]]] = [(root, {})]
    while stack:
        node, path = stack.pop()
        if "split_index" not in node:
            if path:
                features = list(path)
                out.append(
                    (
                        float(node["leaf_value"]),
                        [int(path[f][0]) for f in features],
                        [int(path[f][1]) for f in features],
                        [column[f] for f in features],
                        [float(path[f][2]) for f in features],
                    )
                )
            continue
        bit = 1 << int(node["split_index"])
        feature = int(node["split_feature"])
        total = float(node["internal_count"])
        for child, left in ((node["left_child"], True), (node["right_child"], False)):
            count = float(child["internal_count"] if "split_index" in child else child["leaf_count"])
            mask, ways, zero = path.get(feature, [0, 0, 1.0])
            step = dict(path)
            step[feature] = [int(mask) | bit, int(ways) | (bit if left else 0), zero * count / total]
            stack.append((child, step))
    return out


def _product_game(values: np.ndarray, zeros: np.ndarray, u: int) -> np.ndarray:
    """Shapley values of the leaves' product games for every agreement set.

    The product ``prod_j (o_j t + z_j)`` is expanded once per agreement set, and each feature's
    factor divided out of it (as LightGBM's ``UnwoundPathSum`` does): by ``t + z_i`` from the
    highest power down when ``o_i = 1``, by ``z_i`` when ``o_i = 0``.

    Args:
        values: Leaf values, shape (leaves,).
        zeros: Zero fractions, shape (leaves, u), in (0, 1].
        u: Distinct path features.

    Returns:
        Shape (leaves, 2^u, u): per agreement set ``A`` (bit ``j``: ``o_j = 1``), each feature's value.
    """
    sets = np.arange(1 << u)
    ones = ((sets[:, None] >> np.arange(u)[None, :]) & 1).astype(np.float64)  # (2^u, u)
    weights = np.array([math.factorial(k) * math.factorial(u - k - 1) / math.factorial(u) for k in range(u)])
    poly = np.zeros((len(values), 1 << u, u + 1))  # [leaf, set, k]: coefficient of t^k
    poly[..., 0] = 1.0
    for j in range(u):
        grown = poly * zeros[:, j, None, None]
        grown[..., 1:] += poly[..., :-1] * ones[None, :, j, None]
        poly = grown
    out = np.empty((len(values), 1 << u, u))
    for i in range(u):
        z = zeros[:, i, None]
        quotient = poly[..., u]  # o_i = 1: divided by (t + z_i)
        agreeing = weights[u - 1] * quotient
        for k in range(u - 1, 0, -1):
            quotient = poly[..., k] - z * quotient
            agreeing = agreeing + weights[k - 1] * quotient
        with np.errstate(divide="ignore", invalid="ignore"):
            other = np.where(z > 0, (poly[..., :u] @ weights) / z, 0.0)  # o_i = 0: divided by z_i
        total = np.where(ones[None, :, i] == 1.0, agreeing, other)
        out[:, :, i] = values[:, None] * (ones[None, :, i] - z) * total
    return out
