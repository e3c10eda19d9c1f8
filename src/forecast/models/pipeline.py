"""The scoring pipeline: raw feature columns in, calibrated probabilities out.

``build_pipeline`` returns an sklearn ``Pipeline`` of three steps:

1. ``columns`` (:class:`ColumnSelector`): the model's input columns, in a fixed order;
2. ``categories`` (:class:`CategoryEncoder`): strings become pandas categories with the levels seen
   in training (rare levels pooled, unseen ones missing), numbers become floats. MLflow signatures
   reject ``category`` columns and LightGBM needs identical categories at predict time, so the cast
   lives inside the pipeline;
3. ``model`` (:class:`CalibratedLGBMClassifier`): LightGBM with early stopping on a time-based
   validation split, then a calibrator (sigmoid or isotonic, chosen by cross-validated Brier score on
   that validation split) fitted on predictions for rows the trees never trained on.

The logged MLflow model is this whole pipeline. For one record or a few,
:mod:`forecast.scoring.fastpath` scores the same pipeline on one float matrix
(:meth:`CategoryEncoder.encode`) with the same numbers; lookup tables it needs are built lazily and
never pickled, so models logged before it load and score unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from forecast.categories import OTHER as OTHER
from forecast.models.baselines import LogisticBaseline
from forecast.models.config import LightGBMSettings
from forecast.models.contract import binary_tags, fit_frame, labels_of, predict_frame
from forecast.models.logistic_terms import TRAINING_MEANS_ATTR, logistic_contributions, logistic_matrix
from forecast.models.threads import tree_threads

_EPS = 1e-6


class ColumnSelector(BaseEstimator, TransformerMixin):
    """Select the model's input columns in a fixed order.

    Args:
        columns: Input column names.
    """

    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> ColumnSelector:  # noqa: N803
        """Check the columns exist."""
        self._check(X)
        self.columns_ = list(self.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        """Return ``X`` restricted to the columns.

        Raises:
            KeyError: Naming the missing columns.
        """
        self._check(X)
        return X.loc[:, list(self.columns)]

    def _check(self, X: pd.DataFrame) -> None:  # noqa: N803
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise KeyError(f"input lacks the model's column(s): {missing}")


class CategoryEncoder(BaseEstimator, TransformerMixin):
    """Cast strings to categories with the training levels; everything else to float.

    Args:
        categorical: Columns to treat as categorical.
        min_count: Levels seen fewer times in training are pooled into ``__other__``.
        max_levels: At most this many levels per column are kept (the most frequent).
    """

    def __init__(self, categorical: Sequence[str] = (), min_count: int = 10, max_levels: int = 100) -> None:
        self.categorical = categorical
        self.min_count = min_count
        self.max_levels = max_levels

    def fit(self, X: pd.DataFrame, y: Any = None) -> CategoryEncoder:  # noqa: N803
        """Learn each categorical column's levels (frequent ones kept, rare ones pooled)."""
        self.levels_: dict[str, list[str]] = {}
        self.rare_: dict[str, list[str]] = {}
        for col in self.categorical:
            counts = X[col].dropna().astype(str).value_counts(sort=False)
            counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
            # OTHER is reserved (see forecast.categories): values pooled upstream land in it and it
            # is appended exactly once, whatever its count.
            counts = counts.drop(OTHER, errors="ignore")
            kept = counts[counts >= self.min_count].index[: self.max_levels]
            self.levels_[col] = [*sorted(kept), OTHER]
            self.rare_[col] = sorted(set(counts.index) - set(kept))
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        """Apply the learned levels: rare training levels become ``__other__``, unseen ones missing."""
        return self.frame_from_codes(self.encode(X), list(X.columns), X.index)

    def encode(self, X: pd.DataFrame, columns: Sequence[str] | None = None) -> np.ndarray:  # noqa: N803
        """:meth:`transform` as one float matrix: category codes (``nan`` when missing) and numbers.

        A categorical column holds the position of its (pooled) level in ``levels_``, as
        ``transform``'s categories' codes, with ``nan`` for missing and unseen values; any other
        column holds ``pd.to_numeric(..., errors="coerce")`` as float64. No frame is built, so one
        row costs microseconds.

        Args:
            X: Raw rows.
            columns: Columns of ``X`` to encode, in this order (default: all of them).

        Returns:
            A float64 array of shape ``(len(X), len(columns))``.

        Raises:
            KeyError: ``X`` lacks one of ``columns``.
        """
        names = [str(c) for c in X.columns] if columns is None else list(columns)
        if not X.columns.is_unique:
            X = X.loc[:, ~X.columns.duplicated()]  # noqa: N806 - as ``X[col]`` would, first one wins
        where = X.columns.get_indexer(pd.Index(names))
        if (where < 0).any():
            missing = [c for c, w in zip(names, where, strict=True) if w < 0]
            raise KeyError(f"input lacks the model's column(s): {missing}")
        maps = self._code_maps()
        dtypes = X.dtypes.to_numpy()
        values = X.to_numpy(dtype=object) if len(X) <= _SMALL_ROWS else None
        out = np.empty((len(X), len(names)), dtype=np.float64)
        plain = [j for j, c in enumerate(names) if c not in maps and _plain_number(dtypes[where[j]])]
        if plain and values is not None:
            out[:, plain] = np.asarray(values[:, where[plain]], dtype=np.float64)
        elif plain:
            out[:, plain] = X.iloc[:, where[plain]].to_numpy(np.float64)
        done = set(plain)
        for j, name in enumerate(names):
            if name in maps:
                column = values[:, where[j]] if values is not None else X.iloc[:, where[j]]
                out[:, j] = _category_codes(column, maps[name])
            elif j not in done:
                out[:, j] = pd.to_numeric(X.iloc[:, where[j]], errors="coerce").astype("float64").to_numpy()
        return out

    def frame_from_codes(self, codes: np.ndarray, columns: Sequence[str], index: Any = None) -> pd.DataFrame:
        """The frame :meth:`transform` returns, from :meth:`encode`'s matrix of the same columns."""
        out: dict[str, Any] = {}
        for j, col in enumerate(columns):
            if col in self.levels_:
                column = codes[:, j]
                ints = np.where(np.isnan(column), -1, column).astype(np.int64)
                out[col] = pd.Categorical.from_codes(ints, categories=pd.Index(self.levels_[col]))
            else:
                out[col] = codes[:, j]
        return pd.DataFrame(out, index=index)

    def _code_maps(self) -> dict[str, dict[str, float]]:
        """Per categorical column, text -> code (rare levels -> ``__other__``); built once, not pickled."""
        maps: dict[str, dict[str, float]] | None = self.__dict__.get("_code_maps_cache")
        if maps is None:
            maps = {}
            for col, levels in self.levels_.items():
                mapping = {level: float(i) for i, level in enumerate(levels)}
                other = mapping[OTHER]
                mapping.update(dict.fromkeys(self.rare_.get(col, ()), other))  # as transform: rare first
                maps[col] = mapping
            self.__dict__["_code_maps_cache"] = maps
        return maps

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the lazily built lookup tables."""
        state = dict(super().__getstate__())
        state.pop("_code_maps_cache", None)
        return state


_SMALL_ROWS = 64
"""Up to this many rows, :meth:`CategoryEncoder.encode` reads the values through one object array."""


def _plain_number(dtype: Any) -> bool:
    """A numpy bool, integer or float dtype (cast to float64 exactly as ``pd.to_numeric`` would)."""
    return isinstance(dtype, np.dtype) and dtype.kind in "biuf"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    missing = pd.isna(value)
    return bool(missing) if isinstance(missing, bool | np.bool_) else False


def _code_of(value: Any, mapping: dict[str, float]) -> float:
    """The code of one raw value: text as is, other values as ``str(value)``, missing as ``nan``."""
    if isinstance(value, str):
        return mapping.get(value, np.nan)
    if _is_missing(value):
        return np.nan
    return mapping.get(str(value), np.nan)


def _category_codes(column: np.ndarray | pd.Series, mapping: dict[str, float]) -> np.ndarray:
    """Codes of a column: each distinct value looked up once when the column allows it."""
    if isinstance(column, pd.Series):
        if isinstance(column.dtype, pd.CategoricalDtype):
            table = np.array([*(_code_of(v, mapping) for v in column.cat.categories), np.nan])
            return table[column.cat.codes.to_numpy()]  # code -1 (missing) takes the last entry
        raw = column.to_numpy(dtype=object)
        if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            codes, uniques = pd.factorize(raw, use_na_sentinel=True)
            if all(isinstance(u, str) for u in uniques):
                table = np.array([*(mapping.get(u, np.nan) for u in uniques), np.nan])
                return table[codes]
        column = raw
    return np.fromiter((_code_of(v, mapping) for v in column), dtype=np.float64, count=len(column))


SMALL_BATCH = 2_000
"""Up to this many rows the trees predict on one thread: starting threads costs more than the trees."""


def predict_threads(rows: int) -> int:
    """Threads for predicting ``rows`` rows: one for small batches, else :func:`tree_threads`.

    The numbers do not depend on it (each row is predicted by one thread); the latency does: on a
    busy two-core machine one row took 1.2 ms on two threads against 27 µs on one.
    """
    if rows <= SMALL_BATCH:
        return 1
    return tree_threads()


TREE_DEFAULTS = LightGBMSettings()
"""Default tree parameters of every estimator here and in ``survival`` (``LightGBMSettings`` is
their one source; the training YAML overrides them)."""


def lgbm_classifier(params: Any, **extra: Any) -> lgb.LGBMClassifier:
    """The project's LightGBM classifier from an estimator's tree parameters.

    Args:
        params: An object with ``n_estimators``, ``learning_rate``, ``num_leaves``,
            ``min_child_samples``, ``subsample``, ``colsample_bytree``, ``reg_lambda`` and
            ``random_state`` (our estimators).
        extra: More LightGBM parameters (e.g. monotone constraints).

    ``force_row_wise=True``: LightGBM's automatic row/column-wise choice measured 29 s against
    2.2 s for the same trees here; :func:`tree_threads` threads, deterministic, quiet.
    """
    return lgb.LGBMClassifier(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        min_child_samples=params.min_child_samples,
        subsample=params.subsample,
        subsample_freq=1,
        colsample_bytree=params.colsample_bytree,
        reg_lambda=params.reg_lambda,
        random_state=params.random_state,
        n_jobs=tree_threads(),
        verbose=-1,
        deterministic=True,
        force_row_wise=True,
        **extra,
    )


def early_stopping_kwargs(eval_x: Any, eval_y: np.ndarray, metric: str, rounds: int) -> dict[str, Any]:
    """``LGBMClassifier.fit``'s keywords to stop early on one validation set.

    Args:
        eval_x: The validation rows, as the trees see them.
        eval_y: Their labels.
        metric: The metric stopping is judged on (``binary_logloss``, ``multi_logloss``).
        rounds: Stop after this many rounds without improvement.

    Returns:
        ``eval_X``, ``eval_y``, ``eval_metric`` and ``callbacks`` (more may be added, e.g.
        ``eval_init_score``).
    """
    return {
        "eval_X": (eval_x,),
        "eval_y": (eval_y,),
        "eval_metric": metric,
        "callbacks": [lgb.early_stopping(rounds, verbose=False)],
    }


class CalibratedLGBMClassifier(ClassifierMixin, BaseEstimator):
    """LightGBM with early stopping and a calibrator fitted on held-out predictions.

    Args:
        n_estimators: Maximum boosting rounds (early stopping picks the number used).
        learning_rate: Shrinkage.
        num_leaves: Leaves per tree (small trees keep reason codes fast).
        min_child_samples: Minimum rows per leaf.
        subsample: Row subsampling per round.
        colsample_bytree: Feature subsampling per tree.
        reg_lambda: L2 regularisation.
        early_stopping_rounds: Stop after this many rounds without validation improvement.
        calibration: ``sigmoid``, ``isotonic``, ``none`` or ``auto`` (the lower cross-validated
            Brier score on the validation split).
        monotone_increasing: Numeric features whose increase may never lower the score
            (e.g. engagement); enforced by LightGBM's monotone constraints.
        monotone_decreasing: Numeric features whose increase may never raise the score
            (e.g. days since the last visit).
        separate_calibration: Split the validation rows in two, in their order (time order for
            snapshots): the first half steers early stopping, the second fits the calibrator, so
            the calibrator never sees rows that chose the number of trees. With too few rows of
            either class in a half, both uses share all validation rows. Off by default: on the
            simulated CRM it calibrated the test slice worse (ECE 0.013 against 0.010; at creation
            0.032 against 0.027), the calibrator having half the rows.
        prior_features: Columns of a regularised logistic *prior* (one-hot categoricals,
            standardised numbers, see :class:`~forecast.models.baselines.LogisticBaseline`). When
            set, the prior's log-odds are LightGBM's ``init_score``: the trees boost from the
            prior and learn only the residual, and the calibrator sees the sum. Weak additive
            effects of many profile fields (and of the rep) are estimated with few parameters
            instead of being split away by trees grown mostly on later snapshots. Empty: no prior.
        prior_only: Prior features the trees do not see (e.g. a high-cardinality rep id).
        prior_c: Inverse L2 regularisation of the prior, or ``"cv"`` (chosen by cross-validation).
        prior_fit_column: If set, the prior is fitted only on training rows whose value in this
            column is at most ``prior_fit_max`` (``age_days`` <= 0.01: the creation snapshots, one
            per deal); otherwise on all training rows.
        prior_fit_max: See ``prior_fit_column``.
        prior_alone: Rows the prior is fitted on (``prior_fit_column`` <= ``prior_fit_max``) are
            scored by the prior alone: the trees neither train on them, nor stop early on them, nor
            score them. For creation snapshots, where nothing but the profile is known yet, trees
            grown on later snapshots only add noise to the prior's ranking (measured: creation
            AUC 0.602 for the prior alone, 0.585 with the trees added, at 60k simulated leads).
        prior_folds: The rows the prior is fitted on get out-of-fold prior log-odds as their
            ``init_score`` (this many folds), so the trees do not learn from an optimistic prior;
            other rows get the prior fitted on all of them. Below 2: in-sample log-odds.
        random_state: Seed.
    """

    def __init__(
        self,
        n_estimators: int = TREE_DEFAULTS.n_estimators,
        learning_rate: float = TREE_DEFAULTS.learning_rate,
        num_leaves: int = TREE_DEFAULTS.num_leaves,
        min_child_samples: int = TREE_DEFAULTS.min_child_samples,
        subsample: float = TREE_DEFAULTS.subsample,
        colsample_bytree: float = TREE_DEFAULTS.colsample_bytree,
        reg_lambda: float = TREE_DEFAULTS.reg_lambda,
        early_stopping_rounds: int = TREE_DEFAULTS.early_stopping_rounds,
        calibration: str = "auto",
        monotone_increasing: Sequence[str] = (),
        monotone_decreasing: Sequence[str] = (),
        separate_calibration: bool = False,
        prior_features: Sequence[str] = (),
        prior_only: Sequence[str] = (),
        prior_c: float | str = 0.1,
        prior_fit_column: str | None = None,
        prior_fit_max: float = 0.0,
        prior_folds: int = 5,
        prior_alone: bool = False,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.early_stopping_rounds = early_stopping_rounds
        self.calibration = calibration
        self.monotone_increasing = monotone_increasing
        self.monotone_decreasing = monotone_decreasing
        self.separate_calibration = separate_calibration
        self.prior_features = prior_features
        self.prior_only = prior_only
        self.prior_c = prior_c
        self.prior_fit_column = prior_fit_column
        self.prior_fit_max = prior_fit_max
        self.prior_folds = prior_folds
        self.prior_alone = prior_alone
        self.random_state = random_state

    def __sklearn_tags__(self) -> Tags:
        """Binary only; LightGBM takes missing values."""
        return binary_tags(super().__sklearn_tags__())

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803
        y: Any,
        eval_set: tuple[Any, ...] | None = None,
        calibration_set: tuple[Any, ...] | None = None,
        row_weight: np.ndarray | None = None,
    ) -> CalibratedLGBMClassifier:
        """Fit the trees on ``X`` (early stopping on ``eval_set``), then the calibrator.

        Args:
            X: Encoded training features (a frame, or numeric rows: see :mod:`forecast.models.contract`).
            y: 0/1 training labels.
            eval_set: Encoded validation features and labels: the trees stop early on them and,
                without ``calibration_set``, the calibrator learns from them. Without it no early
                stopping happens.
            calibration_set: Uncalibrated probabilities of rows these trees never trained on (the
                out-of-fold predictions of :func:`forecast.models.crossfit.fit_calibrated`) and
                their 0/1 labels: the calibrator learns from them instead of from ``eval_set``.
            row_weight: Optional weight of each training row (the prior, the trees): censoring
                weights (``training.ipcw``), named apart from scikit-learn's ``sample_weight``
                because a weight of 2 is not two copies of a row here (row subsampling, early
                stopping). With it,
                ``eval_set`` and ``calibration_set`` may carry their rows' weights as a third item.

        Raises:
            ValueError: Calibration is asked for (not ``none``) without rows to calibrate on.
        """
        frame, y_arr = fit_frame(self, X, y)
        w = None if row_weight is None else np.asarray(row_weight, dtype=float)
        init_train = self._fit_trees_input(frame, y_arr, w)
        keep = ~self._alone_rows(frame)
        stop_set, calib_set = _halves(eval_set) if self.separate_calibration else (eval_set, eval_set)
        self.model_ = lgbm_classifier(self, **self._monotone_constraints())
        fit_kw = self._boosting_kwargs(stop_set, None if init_train is None else init_train[keep])
        if w is not None:
            fit_kw["sample_weight"] = w[keep]
        self.model_.fit(frame.loc[keep, self.tree_features_], y_arr[keep], **fit_kw)
        self.best_iteration_ = int(self.model_.best_iteration_ or self.n_estimators)
        self.calibration_ = "none"
        self.calibration_cv_brier_: dict[str, float] = {}
        self.calibrator_: Any = None
        if self.calibration != "none":
            if calibration_set is not None:
                raw, y_cal = (
                    np.asarray(calibration_set[0], dtype=float),
                    np.asarray(calibration_set[1], dtype=int),
                )
                w_cal = _third(calibration_set)
            elif calib_set is not None:
                raw, y_cal = self._raw(calib_set[0]), np.asarray(calib_set[1], dtype=int)
                w_cal = _third(calib_set)
            else:
                raise ValueError(
                    "calibration needs an eval_set or a calibration_set the trees did not train on"
                )
            self.calibration_, self.calibration_cv_brier_ = choose_calibration(
                self.calibration, raw, y_cal, self.random_state, w_cal
            )
            if self.calibration_ != "none":
                self.calibrator_ = fit_calibrator(self.calibration_, raw, y_cal, w_cal)
        return self

    def _fit_trees_input(
        self,
        X: pd.DataFrame,  # noqa: N803
        y: np.ndarray,
        weight: np.ndarray | None = None,
    ) -> np.ndarray | None:
        """Check the prior's columns; set ``tree_features_``, ``prior_``, ``prior_alone_``; the init score.

        Returns:
            Each training row's ``init_score`` (the prior's log-odds), or ``None`` without a prior.
        """
        unknown = [c for c in [*self.prior_features, *self.prior_only] if c not in X.columns]
        if unknown:
            raise KeyError(f"prior column(s) not in the input: {unknown}")
        if set(self.prior_only) - set(self.prior_features):
            raise ValueError("prior_only columns must also be prior_features")
        hidden = set(self.prior_only)
        self.tree_features_ = [c for c in X.columns if c not in hidden]
        init_train, self.prior_ = self._fit_prior(X, y, weight)
        self.prior_alone_ = self.prior_alone
        if self._alone_rows(X).all():
            # Every row is of the kind the prior scores alone (a short history whose fitting slice
            # holds creation snapshots only): the trees boost from the prior on those rows instead.
            self.prior_alone_ = False
        return init_train

    def _monotone_constraints(self) -> dict[str, Any]:
        """LightGBM's monotone constraints of the tree features (none when no column has one)."""
        up, down = set(self.monotone_increasing), set(self.monotone_decreasing)
        monotone = [1 if c in up else (-1 if c in down else 0) for c in self.tree_features_]
        if not any(monotone):
            return {}
        # "advanced" crashed LightGBM 4.7 here (segfault); "intermediate" is exact enough.
        return {"monotone_constraints": monotone, "monotone_constraints_method": "intermediate"}

    def _boosting_kwargs(self, stop_set: tuple[Any, ...] | None, init_train: Any) -> dict[str, Any]:
        """``LGBMClassifier.fit``'s keywords: early stopping on ``stop_set``, the prior's init scores."""
        fit_kw: dict[str, Any] = {"callbacks": []}
        if stop_set is not None:
            xv, yv = stop_set[0], stop_set[1]
            wv = _third(stop_set)
            keep_v = ~self._alone_rows(xv)
            xv, yv = xv.loc[keep_v], np.asarray(yv, dtype=int)[keep_v]
            fit_kw = early_stopping_kwargs(
                xv.loc[:, self.tree_features_], yv, "binary_logloss", self.early_stopping_rounds
            )
            if wv is not None:
                fit_kw["eval_sample_weight"] = [wv[keep_v]]
            if self.prior_ is not None:
                fit_kw["eval_init_score"] = [self._prior_logit(xv)]
        if init_train is not None:
            fit_kw["init_score"] = init_train
        return fit_kw

    def _fit_prior(
        self,
        X: pd.DataFrame,  # noqa: N803
        y: np.ndarray,
        weight: np.ndarray | None = None,
    ) -> tuple[np.ndarray | None, Any]:
        """The logistic prior and the training rows' ``init_score`` (out-of-fold where fitted)."""
        if not self.prior_features:
            return None, None
        fit_idx = np.flatnonzero(self._fit_rows(X))
        counts = np.bincount(y[fit_idx], minlength=2)
        if counts.min() < 2:
            raise ValueError(
                f"the prior has {counts[0]} negative and {counts[1]} positive rows to learn from "
                f"({self.prior_fit_column} <= {self.prior_fit_max}); at least 2 of each are needed"
            )
        prior = self._new_prior(X).fit(X.iloc[fit_idx], y[fit_idx], row_weight=_at(weight, fit_idx))
        _store_prior_means(prior, X.iloc[fit_idx])
        init = _prior_margin(prior, X)
        n_splits = int(min(self.prior_folds, counts.min()))
        if n_splits >= 2:
            folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=self.random_state)
            for train_part, held in folds.split(fit_idx, y[fit_idx]):
                rows = fit_idx[train_part]
                part = self._new_prior(X).fit(X.iloc[rows], y[rows], row_weight=_at(weight, rows))
                init[fit_idx[held]] = _prior_margin(part, X.iloc[fit_idx[held]])
        return init, prior

    def _new_prior(self, X: pd.DataFrame) -> Any:  # noqa: N803
        columns = list(self.prior_features)
        categorical = [c for c in columns if not pd.api.types.is_numeric_dtype(X[c])]
        return LogisticBaseline(
            categorical=categorical,
            numeric=[c for c in columns if c not in categorical],
            C=self.prior_c,
            max_levels=1000,
            random_state=self.random_state,
        )

    def _fit_rows(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Rows of ``X`` of the kind the prior is fitted on."""
        if self.prior_fit_column is None:
            return np.ones(len(X), dtype=bool)
        values = pd.to_numeric(X[self.prior_fit_column], errors="coerce").to_numpy(dtype=float)
        return np.asarray(np.nan_to_num(values, nan=np.inf) <= self.prior_fit_max)

    def _alone_rows(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Rows scored by the prior alone (none unless ``prior_alone`` held when fitting)."""
        if self.prior_ is None or not self.prior_alone_:
            return np.zeros(len(X), dtype=bool)
        return self._fit_rows(X)

    def _prior_logit(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return np.zeros(len(X)) if self.prior_ is None else _prior_margin(self.prior_, X)

    def uncalibrated_proba(self, X: pd.DataFrame, trees: int | None = None) -> np.ndarray:  # noqa: N803
        """P(positive) before calibration, from the first ``trees`` trees (default: ``best_iteration_``).

        :func:`~forecast.models.crossfit.fit_calibrated` reads its held-out folds' predictions
        at the tree count chosen over all folds this way.
        """
        return self._raw(predict_frame(self, X), trees)

    def _raw(self, X: pd.DataFrame, trees: int | None = None) -> np.ndarray:  # noqa: N803
        rows = X.loc[:, self.tree_features_]
        prior = None if self.prior_ is None else self._prior_logit(X)
        return self._raw_from(rows, self._alone_rows(X), prior, trees)

    def _raw_from(
        self, trees: Any, alone: np.ndarray, prior_logit: np.ndarray | None, iteration: int | None = None
    ) -> np.ndarray:
        """Uncalibrated probabilities from the trees' input (frame or matrix) and the prior's log-odds."""
        if prior_logit is None:
            return self._tree_predict(trees, iteration=iteration)
        margin = np.zeros(len(trees))
        grown = ~alone
        if grown.any():
            rows = trees.loc[grown] if isinstance(trees, pd.DataFrame) else trees[grown]
            margin[grown] = self._tree_predict(rows, iteration=iteration, raw_score=True)
        return np.asarray(1.0 / (1.0 + np.exp(-(margin + prior_logit))))

    def _tree_predict(self, trees: Any, iteration: int | None = None, **kwargs: Any) -> np.ndarray:
        """The booster on a frame or a float matrix (what the sklearn wrapper returns, faster)."""
        threads = predict_threads(len(trees))
        return np.asarray(
            self.model_.booster_.predict(
                trees,
                num_iteration=self.best_iteration_ if iteration is None else iteration,
                num_threads=threads,
                **kwargs,
            ),
            dtype=np.float64,
        )

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Calibrated probabilities, shape (n, 2)."""
        return self._proba_from_raw(self._raw(predict_frame(self, X)))

    def _proba_from_raw(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated ``(n, 2)`` probabilities from uncalibrated ones."""
        p = raw if self.calibrator_ is None else apply_calibrator(self.calibration_, self.calibrator_, raw)
        p = np.clip(p, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Labels at a 0.5 threshold (scoring uses probabilities)."""
        positive = self.predict_proba(X)[:, 1] >= 0.5
        return labels_of(self.classes_, positive)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load models pickled before the logistic prior existed (no prior, every column to trees)."""
        for name, value in (
            ("prior_features", ()),
            ("prior_c", 0.1),
            ("prior_fit_column", None),
            ("prior_fit_max", 0.0),
            ("prior_folds", 5),
            ("prior_alone", False),
            ("prior_only", ()),
            ("prior_", None),
        ):
            state.setdefault(name, value)
        state.setdefault("prior_alone_", state["prior_alone"])
        if "tree_features_" not in state and "feature_names_in_" in state:
            state["tree_features_"] = list(state["feature_names_in_"])
        self.__dict__.update(state)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Contributions to the raw log-odds, shape (n, n_features + 1); last column is the bias.

        TreeSHAP values of the trees (none on rows the prior scores alone); with a prior, plus the
        prior's exact linear contributions (coefficient times the distance from the mean of the rows
        it was fitted on), its intercept
        and mean term going to the bias. Per row the columns add up to the raw log-odds.
        """
        X = predict_frame(self, X)  # noqa: N806
        columns = [str(c) for c in X.columns]
        trees = self._tree_predict(X.loc[:, self.tree_features_], pred_contrib=True)
        prior = None
        if self.prior_ is not None:
            prior = logistic_contributions(self.prior_, X, columns)
        return self._contributions_from(trees, columns, self._alone_rows(X), prior)

    def _contributions_from(
        self,
        trees: np.ndarray,
        columns: list[str],
        alone: np.ndarray,
        prior: tuple[np.ndarray, np.ndarray] | None,
    ) -> np.ndarray:
        """Contributions (see :meth:`contributions`) from the trees' and the prior's parts."""
        out = np.zeros((len(trees), len(columns) + 1))
        position = {c: i for i, c in enumerate(columns)}
        out[:, [position[c] for c in self.tree_features_]] = trees[:, :-1]
        out[:, -1] = trees[:, -1]
        out[alone] = 0.0
        if prior is not None:
            values, bias = prior
            out[:, :-1] += values
            out[:, -1] += bias
        return out

    def tree_gain(self) -> np.ndarray:
        """Total split gain of the trees per input column (0 for prior-only columns)."""
        check_is_fitted(self, "model_")
        gain = self.model_.booster_.feature_importance(importance_type="gain", iteration=self.best_iteration_)
        by_name = dict(zip(self.tree_features_, np.asarray(gain, dtype=float), strict=True))
        return np.array([by_name.get(c, 0.0) for c in self.feature_names_in_], dtype=float)


def choose_calibration(
    setting: str, raw: np.ndarray, y: Any, seed: int = 0, weight: np.ndarray | None = None
) -> tuple[str, dict[str, float]]:
    """The calibration method: ``setting`` itself, or for ``auto`` the lower cross-validated Brier.

    Args:
        setting: ``sigmoid``, ``isotonic``, ``none`` or ``auto``.
        raw: Uncalibrated probabilities of rows the model did not train on.
        y: Their 0/1 labels.
        seed: Seed of the 5-fold split.
        weight: Optional row weights (of the calibrators and of the Brier score).

    Returns:
        The method and, for ``auto``, each candidate's cross-validated Brier score.
    """
    if setting in ("sigmoid", "isotonic", "none"):
        return setting, {}
    y_arr = np.asarray(y, dtype=int)
    n_splits = int(min(5, np.bincount(y_arr, minlength=2).min()))
    if n_splits < 2:
        return "sigmoid", {}
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    for method in ("sigmoid", "isotonic"):
        errors = []
        for fit_idx, eval_idx in folds.split(raw.reshape(-1, 1), y_arr):
            cal = fit_calibrator(method, raw[fit_idx], y_arr[fit_idx], _at(weight, fit_idx))
            p = apply_calibrator(method, cal, raw[eval_idx])
            errors.append(np.average((p - y_arr[eval_idx]) ** 2, weights=_at(weight, eval_idx)))
        scores[method] = float(np.mean(errors))
    return min(scores, key=lambda m: (scores[m], m)), scores


def _prior_margin(prior: Any, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
    """Log-odds of a fitted logistic prior."""
    frame = X.loc[:, prior.categorical_ + prior.numeric_]
    return np.asarray(prior.pipeline_.decision_function(frame), dtype=np.float64)


def _store_prior_means(prior: Any, X: pd.DataFrame) -> None:  # noqa: N803
    """Training means of the prior's design (the reference of its contributions)."""
    setattr(prior, TRAINING_MEANS_ATTR, logistic_matrix(prior, X).mean(axis=0))


def _halves(eval_set: tuple[Any, ...] | None) -> tuple[Any, Any]:
    """Early-stopping and calibration parts of the validation rows (first half, second half)."""
    if eval_set is None:
        return None, None
    x, y = eval_set[0], eval_set[1]
    w = _third(eval_set)
    y_arr = np.asarray(y, dtype=int)
    mid = len(y_arr) // 2
    first, second = y_arr[:mid], y_arr[mid:]
    if min(first.sum(), len(first) - first.sum(), second.sum(), len(second) - second.sum()) < 20:
        return eval_set, eval_set
    return (x.iloc[:mid], first, _at(w, slice(None, mid))), (x.iloc[mid:], second, _at(w, slice(mid, None)))


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def fit_calibrator(method: str, raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> Any:
    """A sigmoid (on the log-odds) or isotonic calibrator of uncalibrated probabilities (rows weighted)."""
    if method == "isotonic":
        return _bounded_isotonic(raw, np.asarray(y, dtype=float), weight)
    return LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), y, sample_weight=weight)


def _at(weight: np.ndarray | None, rows: Any) -> np.ndarray | None:
    """``weight[rows]``, or ``None`` without weights."""
    return None if weight is None else weight[rows]


def _third(parts: tuple[Any, ...]) -> np.ndarray | None:
    """The weights of an ``(x, y)`` or ``(x, y, weight)`` set."""
    return None if len(parts) < 3 or parts[2] is None else np.asarray(parts[2], dtype=float)


def _bounded_isotonic(raw: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> IsotonicRegression:
    """An isotonic calibrator whose end blocks never claim a certainty the rows cannot show.

    Plain isotonic regression maps the lowest block to exactly 0 when none of its rows is
    positive (and the highest to 1 when all are): a lead scored 0% that converts costs an
    unbounded log loss, and "0%" is not what a few hundred negatives show. Such an end block's
    value becomes ``(positives + 0.5) / (rows + 1)`` (a Jeffreys-like estimate): the fit is
    repeated with those values as ``y_min`` / ``y_max``, which clips and keeps the map monotone.
    """
    plain = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(raw, y, sample_weight=weight)
    fitted = plain.predict(raw)
    w = np.ones(len(y)) if weight is None else weight
    low, high = 0.0, 1.0
    if (block := fitted == 0.0).any():
        low = (float(np.sum(w[block] * y[block])) + 0.5) / (float(w[block].sum()) + 1)
    if (block := fitted == 1.0).any():
        high = (float(np.sum(w[block] * y[block])) + 0.5) / (float(w[block].sum()) + 1)
    if (low, high) == (0.0, 1.0):
        return plain
    bounded = IsotonicRegression(y_min=min(low, high), y_max=high, out_of_bounds="clip")
    return bounded.fit(raw, y, sample_weight=weight)


def apply_calibrator(method: str, calibrator: Any, raw: np.ndarray) -> np.ndarray:
    """Calibrated probabilities from a calibrator of :func:`fit_calibrator`."""
    if method == "isotonic":
        return isotonic_predict(calibrator, raw)
    return sigmoid_predict(calibrator, _logit(raw))


def sigmoid_predict(lr: LogisticRegression, logits: np.ndarray) -> np.ndarray:
    """``lr.predict_proba(logits.reshape(-1, 1))[:, 1]`` for a one-feature binary logistic regression.

    The same arithmetic as sklearn's (``x @ coef_.T + intercept_``, then ``expit``) without its
    input checks (about 90 µs a call); anything unusual still goes through ``predict_proba``.
    """
    column = logits.reshape(-1, 1)
    coef: Any = getattr(lr, "coef_", None)
    plain = (
        coef is not None
        and coef.shape == (1, 1)
        and len(lr.classes_) == 2
        and column.dtype == np.float64
        and bool(np.isfinite(column).all())
    )
    if not plain:
        return np.asarray(lr.predict_proba(column)[:, 1])
    scores = (column @ coef.T + lr.intercept_).reshape(-1)
    return np.asarray(expit(scores, out=scores))


def isotonic_predict(iso: IsotonicRegression, values: np.ndarray) -> np.ndarray:
    """``iso.predict(values)`` without sklearn's input checks: the same clip, then the same ``f_``.

    The checks cost about 60 µs a call, more than the interpolation; inputs they would refuse or
    convert (not finite, not float64, other ``out_of_bounds``) still go through ``predict``.
    """
    thresholds = getattr(iso, "X_thresholds_", None)
    plain = (
        isinstance(values, np.ndarray)
        and values.ndim == 1
        and values.dtype == np.float64
        and thresholds is not None
        and thresholds.dtype == np.float64
        and iso.out_of_bounds == "clip"
        and hasattr(iso, "f_")
    )
    if not plain or not np.isfinite(values).all():
        return np.asarray(iso.predict(values))
    clipped = np.clip(values, iso.X_min_, iso.X_max_)
    return np.asarray(iso.f_(clipped)).astype(clipped.dtype)


def build_pipeline(
    columns: Sequence[str], categorical: Sequence[str], model: BaseEstimator, *, encode: bool = True
) -> Pipeline:
    """The unfitted pipeline: select columns, encode categories, then ``model``.

    Args:
        columns: The model's input columns.
        categorical: Those cast to categories by the encoder.
        model: The last step.
        encode: Without encoding (a model that reads the raw values itself, such as the logistic
            regression's one-hot encoding or a stage table), the ``categories`` step is
            ``"passthrough"``.
    """
    encoder: Any = CategoryEncoder(list(categorical)) if encode else "passthrough"
    return Pipeline([("columns", ColumnSelector(list(columns))), ("categories", encoder), ("model", model)])


def fit_pipeline(
    pipeline: Pipeline,
    X_train: pd.DataFrame,  # noqa: N803
    y_train: Any,
    X_valid: pd.DataFrame | None = None,  # noqa: N803
    y_valid: Any = None,
    calibration_set: tuple[Any, ...] | None = None,
    *,
    sample_weight: np.ndarray | None = None,
    valid_weight: np.ndarray | None = None,
) -> Pipeline:
    """Fit the preparation steps on the training rows, then the model with the validation rows.

    sklearn's ``Pipeline.fit`` cannot pass a transformed validation set to the last step, so the
    steps are fitted here one by one; the result is an ordinary fitted ``Pipeline``.
    ``calibration_set`` (uncalibrated probabilities and labels of rows the trees never see) goes
    to :meth:`CalibratedLGBMClassifier.fit`, as do the rows' weights (``sample_weight`` of the
    training rows, ``valid_weight`` of the validation rows; LightGBM only).
    """
    prep = Pipeline(pipeline.steps[:-1]).fit(X_train, y_train)
    model = pipeline.steps[-1][1]
    xt = prep.transform(X_train)
    if isinstance(model, CalibratedLGBMClassifier) and (X_valid is not None or calibration_set is not None):
        eval_set = None if X_valid is None else (prep.transform(X_valid), y_valid, valid_weight)
        model.fit(xt, y_train, eval_set=eval_set, calibration_set=calibration_set, row_weight=sample_weight)
    elif isinstance(model, CalibratedLGBMClassifier):
        model.fit(xt, np.asarray(y_train, dtype=int), row_weight=sample_weight)
    else:
        if sample_weight is not None:
            raise ValueError(f"{type(model).__name__} takes no row weights here")
        model.fit(xt, np.asarray(y_train, dtype=int))
    return pipeline
