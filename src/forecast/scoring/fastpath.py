"""Array-based scoring of a fitted pipeline: the same numbers, without building frames.

A scoring pipeline (``columns`` → ``categories`` → a LightGBM model, see
:func:`~forecast.models.pipeline.build_pipeline`) spends most of a one-row call in pandas: the
category cast, LightGBM's frame conversion, the logistic prior's ``ColumnTransformer``. Here the
rows become one float matrix (:meth:`~forecast.models.pipeline.CategoryEncoder.encode`: category
codes and numbers, exactly what LightGBM derives from the encoded frame) and everything else runs
on it: the booster directly, the prior as precomputed one-hot rows per category code plus numpy
imputation and scaling, the calibrator as before.

:func:`coded` builds this once per fitted pipeline (kept in a weak cache, never pickled) and checks
it: the booster's features and categories must be the encoder's, and on synthetic rows covering
every category level, missing values and the prior's row kinds, the array path must return exactly
what the frame path returns. Otherwise it returns ``None`` and callers use the pipeline as before.
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.models.baselines import MISSING_LEVEL, LogisticBaseline
from forecast.models.logistic_terms import TRAINING_MEANS_ATTR, logistic_layout
from forecast.models.pipeline import CalibratedLGBMClassifier, CategoryEncoder, ColumnSelector
from forecast.models.survival import INTERVAL, DiscreteTimeHazard
from forecast.models.win_blend import HazardBlendedClassifier
from forecast.scoring.interval_trees import IntervalTrees, interval_trees
from forecast.scoring.pattern_shap import class_contributions, tree_contributions, tree_contributions_and_raw

log = logging.getLogger(__name__)

_CACHE: weakref.WeakKeyDictionary[Pipeline, tuple[tuple[Any, ...], CodedPipeline | None]] = (
    weakref.WeakKeyDictionary()
)


class UnsupportedError(Exception):
    """The pipeline has a part the array path does not reproduce."""


class CodedPrior:
    """A fitted :class:`LogisticBaseline` prior on encoded matrices (codes and numbers).

    Args:
        prior: The fitted prior (numeric block: impute + indicators + scale; categorical block:
            one-hot of ``"(missing)"``-filled text).
        columns: Columns of the encoded matrix.
        levels: Category levels per categorical column (code ``i`` is ``levels[col][i]``).

    Raises:
        UnsupportedError: The prior's preprocessing is not the one :class:`LogisticBaseline` builds.
    """

    def __init__(self, prior: LogisticBaseline, columns: list[str], levels: dict[str, list[str]]) -> None:
        preprocess = prior.pipeline_.named_steps["preprocess"]
        self.model = prior.pipeline_.named_steps["model"]
        position = {c: i for i, c in enumerate(columns)}
        self.blocks: list[tuple[str, list[int], Any]] = []
        for name, transformer, cols in preprocess.transformers_:
            if name == "remainder" and transformer == "drop":
                continue
            names = [str(c) for c in cols]
            if any(c not in position for c in names) or isinstance(transformer, str):
                raise UnsupportedError(f"prior block {name}")
            steps = dict(transformer.steps)
            where = [position[c] for c in names]
            if "one_hot" in steps and all(c in levels for c in names):
                self.blocks.append(("one_hot", where, _one_hot_tables(transformer, names, levels)))
            elif set(steps) == {"to_float", "impute", "scale"} and not any(c in levels for c in names):
                self.blocks.append(("numeric", where, _numeric_parts(steps["impute"], steps["scale"])))
            else:
                raise UnsupportedError(f"prior block {name}")
        owners, reference = logistic_layout(prior)
        means = getattr(prior, TRAINING_MEANS_ATTR, None)
        if means is not None and len(means) == len(reference):
            reference = np.asarray(means, dtype=np.float64)
        self.coef = np.asarray(self.model.coef_[0], dtype=np.float64)
        if len(owners) != self.coef.size:
            raise UnsupportedError("prior layout")
        self.reference = reference
        self.owner_matrix = np.zeros((self.coef.size, len(columns)))
        self.owner_matrix[np.arange(self.coef.size), [position[o] for o in owners]] = 1.0
        self.bias = float(self.model.intercept_[0]) + float(self.coef @ reference)

    def design(self, codes: np.ndarray) -> np.ndarray:
        """The prior's transformed matrix (as its ``ColumnTransformer`` returns it)."""
        parts = []
        for kind, where, tables in self.blocks:
            if kind == "numeric":
                parts.append(_numeric_block(codes[:, where], *tables))
            else:
                for j, table in zip(where, tables, strict=True):
                    column = codes[:, j]
                    index = np.where(np.isnan(column), len(table) - 1, column).astype(np.intp)
                    parts.append(table[index])
        return np.hstack(parts) if parts else np.zeros((len(codes), 0))

    def margin(self, codes: np.ndarray, design: np.ndarray | None = None) -> np.ndarray:
        """Log-odds of the prior (``_prior_margin``); ``design``: :meth:`design` of ``codes``, when known."""
        design = self.design(codes) if design is None else design
        coef = self.model.coef_
        if coef.ndim != 2 or coef.shape[0] != 1 or not np.isfinite(design).all():
            return np.asarray(self.model.decision_function(design), dtype=np.float64)
        # sklearn's decision_function without its input checks: the same product and sum
        return np.asarray((design @ coef.T + self.model.intercept_).reshape(-1), dtype=np.float64)

    def contributions(
        self, codes: np.ndarray, design: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per column contributions and per row bias; ``design``: :meth:`design` of ``codes``, when known.

        See :func:`~forecast.models.logistic_terms.logistic_contributions`.
        """
        design = self.design(codes) if design is None else design
        values = ((design - self.reference) * self.coef) @ self.owner_matrix
        return values, np.full(len(codes), self.bias)


def _one_hot_tables(transformer: Any, names: list[str], levels: dict[str, list[str]]) -> list[np.ndarray]:
    """Per column, the one-hot row of each code (last row: missing), from the fitted encoder itself."""
    encoder = transformer.steps[-1][1]
    widths = []
    for i, rare in enumerate(encoder.infrequent_categories_):
        widths.append(len(encoder.categories_[i]) - (len(rare) - 1 if rare is not None else 0))
    texts = {c: [*levels[c], MISSING_LEVEL] for c in names}
    rows = max(len(t) for t in texts.values())
    frame = pd.DataFrame({c: t + [MISSING_LEVEL] * (rows - len(t)) for c, t in texts.items()})
    hot = np.asarray(transformer.transform(frame), dtype=np.float64)
    if hot.shape[1] != sum(widths):
        raise UnsupportedError("one-hot layout")
    bounds = np.cumsum([0, *widths])
    return [hot[: len(texts[c]), bounds[i] : bounds[i + 1]].copy() for i, c in enumerate(names)]


def _numeric_parts(imputer: Any, scaler: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Medians, indicator columns, means and scales of the prior's numeric block."""
    stats = np.asarray(imputer.statistics_, dtype=np.float64)
    if np.isnan(stats).any():  # an all-missing column the imputer drops (keep_empty_features=False)
        raise UnsupportedError("imputer drops columns")
    indicator = getattr(imputer, "indicator_", None)
    flags = (
        np.zeros(0, dtype=np.intp) if indicator is None else np.asarray(indicator.features_, dtype=np.intp)
    )
    width = len(stats) + len(flags)
    mean = np.zeros(width) if scaler.mean_ is None else np.asarray(scaler.mean_, dtype=np.float64)
    scale = np.ones(width) if scaler.scale_ is None else np.asarray(scaler.scale_, dtype=np.float64)
    return stats, flags, mean, scale


def _numeric_block(
    values: np.ndarray, stats: np.ndarray, flags: np.ndarray, mean: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    missing = np.isnan(values)
    block = np.hstack([np.where(missing, stats, values), missing[:, flags].astype(np.float64)])
    block -= mean
    block /= scale
    return block


class CodedPipeline:
    """A fitted scoring pipeline on encoded matrices (see the module docstring).

    Args:
        pipeline: ``columns`` → ``categories`` → :class:`CalibratedLGBMClassifier` or
            :class:`DiscreteTimeHazard`.

    Raises:
        UnsupportedError: Another kind of pipeline, or a booster whose inputs are not the encoder's.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        steps = [step for _, step in pipeline.steps]
        if (
            len(steps) != 3
            or not isinstance(steps[0], ColumnSelector)
            or not isinstance(steps[1], CategoryEncoder)
        ):
            raise UnsupportedError("pipeline shape")
        self.encoder: CategoryEncoder = steps[1]
        self.model = steps[2]
        self.columns = [str(c) for c in steps[0].columns]
        if [str(c) for c in getattr(self.model, "feature_names_in_", [])] != self.columns:
            raise UnsupportedError("model columns")
        self.prior: CodedPrior | None = None
        self.hazard_trees: IntervalTrees | None = None
        self.alone_column: int | None = None
        self._sigmoid = False
        if isinstance(self.model, CalibratedLGBMClassifier):
            self._init_classifier(self.model)
            if isinstance(self.model, HazardBlendedClassifier):  # its hazard reads the same codes
                self._init_hazard(self.model)
        elif isinstance(self.model, DiscreteTimeHazard):
            self.tree_index = np.arange(len(self.columns))
            self._check_booster([*self.columns, INTERVAL])
        else:
            raise UnsupportedError(type(self.model).__name__)

    def _init_classifier(self, model: CalibratedLGBMClassifier) -> None:
        # LightGBM's probability of a binary model is 1 / (1 + exp(-raw)) with sigmoid 1
        self._sigmoid = (
            str(model.model_.booster_.dump_model(num_iteration=1).get("objective")) == "binary sigmoid:1"
        )
        trees = [str(c) for c in model.tree_features_]
        self.tree_index = np.array([self.columns.index(c) for c in trees], dtype=np.intp)
        self._check_booster(trees)
        if model.prior_ is not None:
            if not isinstance(model.prior_, LogisticBaseline):
                raise UnsupportedError("prior kind")
            self.prior = CodedPrior(model.prior_, self.columns, self.encoder.levels_)
        if model.prior_ is not None and model.prior_alone_ and model.prior_fit_column is not None:
            if model.prior_fit_column in self.encoder.levels_:
                raise UnsupportedError("categorical prior_fit_column")
            self.alone_column = self.columns.index(model.prior_fit_column)

    def _init_hazard(self, model: HazardBlendedClassifier) -> None:
        hazard = model.hazard_
        self._check_booster([*self.columns, INTERVAL], hazard.model_.booster_)
        # the intervals of P(won within H) and, past a label horizon the history caps, of p_win's reach
        days = [model.hazard_days_, *([] if model.p_win_days_ is None else [model.p_win_days_])]
        k = max(hazard.win_within_interval(d)[0] for d in days)
        # the interval rows' probabilities from one split pattern per deal and tree (LightGBM's numbers)
        self.hazard_trees = interval_trees(hazard.model_.booster_, hazard.best_iteration_, k)

    def _check_booster(self, features: list[str], booster: Any = None) -> None:
        booster = self.model.model_.booster_ if booster is None else booster
        if booster.feature_name() != features:
            raise UnsupportedError("booster features")
        categorical = [c for c in features if c in self.encoder.levels_]
        known = booster.pandas_categorical or []
        if [list(c) for c in known] != [list(self.encoder.levels_[c]) for c in categorical]:
            raise UnsupportedError("booster categories")

    def encode(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The model's input columns of ``X`` as one float matrix (categories as codes)."""
        return self.encoder.encode(X, self.columns)

    def _alone(self, codes: np.ndarray) -> np.ndarray:
        if self.alone_column is None:
            return np.zeros(len(codes), dtype=bool)
        values = np.nan_to_num(codes[:, self.alone_column], nan=np.inf)
        return np.asarray(values <= self.model.prior_fit_max)

    def predict_proba(self, codes: np.ndarray) -> np.ndarray:
        """``pipeline.predict_proba`` of a classifier pipeline, shape (n, 2)."""
        model: CalibratedLGBMClassifier = self.model
        prior = None if self.prior is None else self.prior.margin(codes)
        alone = self._alone(codes)
        raw = model._raw_from(codes[:, self.tree_index], alone, prior)
        return self._blended(model._proba_from_raw(raw), codes, alone)

    def _blended(self, proba: np.ndarray, codes: np.ndarray, alone: np.ndarray) -> np.ndarray:
        """A blended model's probabilities (:class:`HazardBlendedClassifier`), else ``proba``.

        ``alone``: :meth:`_alone` of ``codes``.
        """
        if not isinstance(self.model, HazardBlendedClassifier):
            return proba
        interval_proba = None if self.hazard_trees is None else self._hazard_proba
        within = self.model.win_within_codes(codes, interval_proba)
        return self.model.blend(proba, within, alone, self.model.tail_codes(codes, within, interval_proba))

    def _hazard_proba(self, codes: np.ndarray, k: int) -> np.ndarray:
        """The blend's hazard's ``interval_proba_codes`` through :attr:`hazard_trees` (the same numbers).

        Its first ``k`` interval rows: each interval row is scored on its own.
        """
        engine = self.hazard_trees
        if engine is None or k > engine.intervals:
            return self.model.hazard_.interval_proba_codes(codes, k)
        proba = engine.proba(codes)
        return proba if k == engine.intervals else proba[:, :k]

    def contributions(self, codes: np.ndarray) -> np.ndarray:
        """The classifier's contributions (:meth:`CalibratedLGBMClassifier.contributions`)."""
        model: CalibratedLGBMClassifier = self.model
        booster = model.model_.booster_
        trees = tree_contributions(booster, codes[:, self.tree_index], model.best_iteration_)
        prior = None if self.prior is None else self.prior.contributions(codes)
        return model._contributions_from(trees, self.columns, self._alone(codes), prior)

    def proba_and_contributions(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict_proba` and :meth:`contributions` of a classifier from one walk of the trees.

        With the split-pattern engine's raw scores (LightGBM's to the last bit), the trees'
        probability is LightGBM's binary sigmoid, ``1 / (1 + exp(-raw))`` with the C library's
        ``exp`` as LightGBM's C++ calls it (numpy's vectorised ``exp`` may differ in the last bit);
        otherwise both are computed as by the two methods.
        """
        model: CalibratedLGBMClassifier = self.model
        booster = model.model_.booster_
        trees, raw = tree_contributions_and_raw(booster, codes[:, self.tree_index], model.best_iteration_)
        design = None if self.prior is None else self.prior.design(codes)  # once for both of its uses
        prior = None if self.prior is None else self.prior.contributions(codes, design)
        alone = self._alone(codes)
        values = model._contributions_from(trees, self.columns, alone, prior)
        if raw is None or not self._sigmoid:
            return self.predict_proba(codes), values
        if self.prior is None:
            exp = np.fromiter(map(math.exp, (-raw).tolist()), dtype=np.float64, count=len(raw))
            uncalibrated = 1.0 / (1.0 + exp)
        else:  # as CalibratedLGBMClassifier._raw_from: the trees' raw score where they are grown
            margin = np.where(alone, 0.0, raw)
            uncalibrated = np.asarray(1.0 / (1.0 + np.exp(-(margin + self.prior.margin(codes, design)))))
        return self._blended(model._proba_from_raw(uncalibrated), codes, alone), values

    def hazard_contributions(self, codes: np.ndarray) -> np.ndarray:
        """The hazard model's contributions (:meth:`DiscreteTimeHazard.contributions`).

        Its "still open" trees are explained by the split-pattern engine
        (:func:`~forecast.scoring.pattern_shap.class_contributions`), as the classifiers' trees.
        """
        model: DiscreteTimeHazard = self.model
        return model.contributions_codes(codes, explain=class_contributions)

    def survival(self, codes: np.ndarray) -> np.ndarray:
        """The hazard model's survival curves (:meth:`DiscreteTimeHazard.survival`)."""
        model: DiscreteTimeHazard = self.model
        return model.survival_codes(codes)

    def frame(self, codes: np.ndarray) -> pd.DataFrame:
        """What the pipeline's preparation steps return for these codes."""
        return self.encoder.frame_from_codes(codes, self.columns)

    def self_check(self) -> None:
        """Compare with the frame path on synthetic rows.

        Raises:
            UnsupportedError: On any difference.
        """
        codes = self._synthetic()
        frame = self.frame(codes)
        if isinstance(self.model, DiscreteTimeHazard):  # the reasons' engine is built here too
            pairs = [
                (self.survival(codes), self.model.survival(frame)),
                (self.hazard_contributions(codes), self.model.contributions(frame)),
            ]
        else:
            pairs = [
                (self.predict_proba(codes), self.model.predict_proba(frame)),
                (self.contributions(codes), self.model.contributions(frame)),
            ]
            proba, values = self.proba_and_contributions(codes)
            if not np.array_equal(proba, pairs[0][0]) or not np.array_equal(values, pairs[1][0]):
                self._sigmoid = False  # the probability is then LightGBM's, by a second walk
        for fast, slow in pairs:
            if fast.shape != slow.shape or not np.allclose(fast, slow, rtol=0.0, atol=1e-12, equal_nan=True):
                raise UnsupportedError("self-check differs")

    def _synthetic(self) -> np.ndarray:
        """Rows cycling through every level (and missing) of each category, and varied numbers."""
        levels = self.encoder.levels_
        rows = max([8, *(len(levels[c]) + 1 for c in self.columns if c in levels)])
        numbers = np.array([np.nan, 0.0, 1.0, 2.5, -3.0, 30.0, 400.0, 0.005])
        out = np.empty((rows, len(self.columns)))
        for j, col in enumerate(self.columns):
            if col in levels:
                cycle = np.array([*range(len(levels[col])), np.nan], dtype=np.float64)
                out[:, j] = np.resize(np.roll(cycle, j), rows)
            else:
                out[:, j] = np.resize(np.roll(numbers, j), rows)
        return out


def _fingerprint(pipeline: Pipeline) -> tuple[Any, ...]:
    """The fitted objects a cached :class:`CodedPipeline` was built from (compared by identity)."""
    parts: list[Any] = [step for _, step in pipeline.steps]
    for step in parts[:]:
        for name in (
            "columns",
            "levels_",
            "rare_",
            "model_",
            "calibrator_",
            "prior_",
            "calibrators_",
            "hazard_",
        ):
            parts.append(getattr(step, name, None))
    return tuple(parts)


def coded(pipeline: Any) -> CodedPipeline | None:
    """The checked array path of a fitted pipeline, or ``None`` when it has none (built once).

    Args:
        pipeline: Any fitted estimator (only sklearn ``Pipeline`` objects of the supported shape
            get an array path).
    """
    if not isinstance(pipeline, Pipeline):
        return None
    fingerprint = _fingerprint(pipeline)
    cached = _CACHE.get(pipeline)
    if (
        cached is not None
        and len(cached[0]) == len(fingerprint)
        and all(a is b for a, b in zip(cached[0], fingerprint, strict=True))
    ):
        return cached[1]
    try:
        fast: CodedPipeline | None = CodedPipeline(pipeline)
        assert fast is not None
        fast.self_check()
    except UnsupportedError as exc:
        log.debug("no array path for this pipeline: %s", exc)
        fast = None
    except (AttributeError, KeyError, ValueError, TypeError, IndexError) as exc:  # unfitted or unusual
        log.debug("no array path for this pipeline: %r", exc)
        fast = None
    _CACHE[pipeline] = (fingerprint, fast)
    return fast


def predict_proba(pipeline: Any, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    """``pipeline.predict_proba(X)``, through the array path when the pipeline has one."""
    fast = coded(pipeline)
    if fast is None or not isinstance(fast.model, CalibratedLGBMClassifier) or not len(X):
        return np.asarray(pipeline.predict_proba(X))
    return fast.predict_proba(fast.encode(X))


def survival(pipeline: Any, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    """The survival curves of a time-to-close pipeline's rows, through the array path when it has one."""
    fast = coded(pipeline)
    if fast is None or not isinstance(fast.model, DiscreteTimeHazard) or not len(X):
        return np.asarray(pipeline.steps[-1][1].survival(pipeline[:-1].transform(X)))
    return fast.survival(fast.encode(X))
