"""Baseline classifiers every experiment must beat (docs/models.md).

All four are scikit-learn estimators on a pandas ``DataFrame`` ``X`` (or numeric rows, see
:mod:`forecast.models.contract`) with binary ``y``: parameters live in ``__init__`` only (so
:func:`sklearn.base.clone` works), fitted state ends in ``_`` and is set in ``fit``, ``classes_`` is
learned there (``array([0, 1])`` for 0/1 labels), :meth:`predict_proba` returns an ``(n, 2)`` array
and :meth:`predict` thresholds the positive probability at 0.5. They are deterministic and
picklable; ``tests/unit/test_estimator_contract.py`` runs scikit-learn's estimator checks on them.

- :class:`BaseRateClassifier`: the training positive rate for everyone.
- :class:`StageWinRateBaseline`: the historical win rate of the deal's stage (stage-weighted forecast).
- :class:`NaiveBayesBaseline`: Odoo CRM's predictive lead scoring (naive Bayes on categorical fields).
- :class:`LogisticBaseline`: one-hot + scaled logistic regression; ``C="cv"`` chooses its
  regularisation by grouped cross-validation (the baseline the learned models are judged
  against); with a small fixed ``C`` it is the regularised model used when data is scarce.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted

from forecast.models.contract import binary_tags, fit_frame, labels_of, predict_frame

MISSING_LEVEL = "(missing)"
"""Level that replaces missing categorical values in :class:`LogisticBaseline`."""

C_GRID = (0.001, 0.01, 0.1, 1.0)
"""Regularisation strengths :class:`LogisticBaseline` chooses from with ``C="cv"``."""

CV_MAX_ROWS = 20_000
"""Rows (whole groups, drawn at random) the choice of ``C`` is made on; the final fit uses all."""

MIN_CATEGORY_COUNT = 5
"""Levels seen fewer times than this in training are pooled into one "infrequent" level."""


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _check_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"X lacks column(s) seen at fit: {missing}")


def _categorical_columns(frame: pd.DataFrame) -> list[str]:
    """Object, category, bool and string columns of ``frame``, in column order."""
    return [str(c) for c in frame.columns if _is_categorical(frame[c])]


def _numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric (not bool) columns of ``frame``, in column order."""
    types = pd.api.types
    return [
        str(c) for c in frame.columns if types.is_numeric_dtype(frame[c]) and not _is_categorical(frame[c])
    ]


def _is_categorical(column: pd.Series) -> bool:
    """Object, category, bool (incl. nullable) and string columns are categorical."""
    types = pd.api.types
    return bool(
        types.is_object_dtype(column)
        or isinstance(column.dtype, pd.CategoricalDtype)
        or types.is_bool_dtype(column)
        or types.is_string_dtype(column)
    )


def _as_object(column: pd.Series) -> pd.Series:
    """A column as plain Python objects, so that category/string dtypes map like object ones."""
    return column.astype(object)


class _BinaryFrameClassifier(ClassifierMixin, BaseEstimator):
    """Shared ``predict``/``predict_proba`` of the baselines; subclasses implement ``_positive_proba``."""

    def __sklearn_tags__(self) -> Tags:
        """Binary only; missing values are data (each model handles them)."""
        return binary_tags(super().__sklearn_tags__())

    def _positive_proba(self, frame: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Probabilities of classes ``[0, 1]`` for each row of ``X``, shape ``(n, 2)``."""
        positive = np.asarray(self._positive_proba(predict_frame(self, X)), dtype=np.float64)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Class labels: ``classes_[1]`` (1) where its probability is at least 0.5."""
        positive = self.predict_proba(X)[:, 1] >= 0.5
        return labels_of(self.classes_, positive)


# --------------------------------------------------------------------------------------------------
# Base rate
# --------------------------------------------------------------------------------------------------


class BaseRateClassifier(_BinaryFrameClassifier):
    """Predicts the training positive rate for every row (the "no model" baseline).

    Attributes:
        rate_: Positive rate of the training labels.
    """

    def __sklearn_tags__(self) -> Tags:
        """No skill by design: scikit-learn's checks expect no accuracy of it (as of its DummyClassifier)."""
        tags = super().__sklearn_tags__()
        if tags.classifier_tags is not None:
            tags.classifier_tags.poor_score = True
        return tags

    def fit(self, X: pd.DataFrame, y: Any, row_weight: Any = None) -> BaseRateClassifier:  # noqa: N803
        """Learn the (weighted) positive rate of ``y``; ``X`` only fixes the expected row count."""
        _, labels = fit_frame(self, X, y)
        self.rate_ = float(np.average(labels, weights=row_weight))
        return self

    def _positive_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.rate_)


# --------------------------------------------------------------------------------------------------
# Stage win rate
# --------------------------------------------------------------------------------------------------


class StageWinRateBaseline(_BinaryFrameClassifier):
    """Historical win rate of each stage, as in stage-weighted CRM pipeline forecasts.

    For a stage ``s`` with ``n_s`` training rows of which ``k_s`` are positive, and overall rate
    ``r``, the score is ``(k_s + alpha * r) / (n_s + alpha)``: the stage's rate shrunk towards ``r``
    by ``alpha`` pseudo-rows. Missing or unseen stages score ``r``.

    Args:
        stage_column: Column of ``X`` holding the stage.
        alpha: Pseudo-count of the shrinkage (0 = raw per-stage rates).

    Attributes:
        overall_rate_: Positive rate of all training rows (missing stages included).
        table_: Per stage: ``n``, ``positives``, ``raw_rate`` and the shrunk ``rate``.
        stage_rates_: The shrunk ``rate`` indexed by stage value.
    """

    def __init__(self, stage_column: str = "stage", alpha: float = 1.0) -> None:
        self.stage_column = stage_column
        self.alpha = alpha

    def fit(self, X: pd.DataFrame, y: Any, row_weight: Any = None) -> StageWinRateBaseline:  # noqa: N803
        """Count rows and positives per stage and shrink the rates towards the overall rate.

        With ``row_weight`` a row counts its weight (in ``n``, ``positives`` and the overall rate).
        """
        frame, labels = fit_frame(self, X, y)
        _check_columns(frame, [self.stage_column])
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        w = np.ones(len(labels), dtype=np.int64)
        if row_weight is not None:
            w = np.asarray(row_weight, dtype=float)
        self.overall_rate_ = float(np.average(labels, weights=w))
        stages = _as_object(frame[self.stage_column]).reset_index(drop=True)
        counts = pd.DataFrame({"stage": stages, "n": w, "y": labels * w})[stages.notna()]
        table = counts.groupby("stage", sort=True).agg(n=("n", "sum"), positives=("y", "sum"))
        table["raw_rate"] = table["positives"] / table["n"]
        table["rate"] = (table["positives"] + self.alpha * self.overall_rate_) / (table["n"] + self.alpha)
        self.table_ = table
        self.stage_rates_ = table["rate"].astype(np.float64)
        return self

    def _positive_proba(self, frame: pd.DataFrame) -> np.ndarray:
        _check_columns(frame, [self.stage_column])
        rates = _as_object(frame[self.stage_column]).map(self.stage_rates_)
        return rates.astype(np.float64).fillna(self.overall_rate_).to_numpy()


# --------------------------------------------------------------------------------------------------
# Odoo-style naive Bayes
# --------------------------------------------------------------------------------------------------


class NaiveBayesBaseline(_BinaryFrameClassifier):
    """Naive Bayes on categorical fields, after Odoo CRM's predictive lead scoring.

    How Odoo does it: Odoo keeps a *frequency table* with, for every scoring field (stage, country,
    state, source, language, tags, email/phone quality) and every value of it, the number of won and
    of lost leads that had that value. A lead's probability is naive Bayes over its field values,
    ``P(won | x) ∝ P(won) × Π_f P(x_f | won)`` against the same product for lost, with
    ``P(x_f = v | won) = won count of v / total won`` read from the table; values absent from the
    table are skipped, and a small pseudo-count smooths the counts so one zero does not zero the
    product (Laplace smoothing). Odoo also computes it per sales team and counts a lost lead in every
    stage it passed; neither applies to a generic frame, so they are left out here.

    This implementation, per categorical field ``f`` with ``K_f`` distinct training values::

        P(x_f = v | pos) = (count_pos(v) + alpha) / (n_pos_f + alpha * K_f)   (same for neg)
        log-odds(x) = log(prior_pos / prior_neg) + Σ_f [log P(x_f | pos) - log P(x_f | neg)]
        P(pos | x) = sigmoid(log-odds(x))

    where ``n_pos_f`` counts positives with a non-missing ``f``. Missing and unseen values
    contribute nothing (the field is skipped for that row). Everything is computed in log space.
    Values are matched by equality, so ``"A"`` in an object column and in a category column agree.

    Args:
        categorical: Fields to use; ``None`` = every object/category/bool/string column at fit.
        alpha: Laplace pseudo-count (> 0).

    Attributes:
        categorical_: Fields used.
        prior_: Training positive rate.
        log_prior_odds_: ``log(prior / (1 - prior))`` (±inf when ``y`` holds one class).
        tables_: Per field, a frame indexed by value with ``n_pos``, ``n_neg``, ``log_p_pos``,
            ``log_p_neg`` and ``log_odds`` (the value's contribution; handy for reason codes).
    """

    def __init__(self, categorical: list[str] | None = None, alpha: float = 1.0) -> None:
        self.categorical = categorical
        self.alpha = alpha

    def fit(self, X: pd.DataFrame, y: Any) -> NaiveBayesBaseline:  # noqa: N803
        """Build the smoothed per-value frequency tables of positives and negatives."""
        frame, labels = fit_frame(self, X, y)
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0 (Laplace smoothing), got {self.alpha}")
        fields = _categorical_columns(frame) if self.categorical is None else list(self.categorical)
        _check_columns(frame, fields)
        self.categorical_ = fields
        self.prior_ = float(labels.mean())
        with np.errstate(divide="ignore"):
            self.log_prior_odds_ = float(np.log(self.prior_) - np.log1p(-self.prior_))
        self.tables_ = {f: self._frequency_table(frame[f], labels) for f in fields}
        return self

    def _frequency_table(self, column: pd.Series, labels: np.ndarray) -> pd.DataFrame:
        """Smoothed log-likelihoods of each value of one field among positives and negatives."""
        values = _as_object(column).reset_index(drop=True)
        present = values.notna().to_numpy()
        counts = pd.crosstab(values[present], labels[present]).reindex(columns=[0, 1], fill_value=0)
        table = pd.DataFrame({"n_pos": counts[1], "n_neg": counts[0]}).astype(np.int64)
        table.index.name = "value"
        n_levels = len(table)
        if n_levels == 0:  # every value missing: the field carries no evidence (and log(0) no warning)
            return table.assign(
                log_p_pos=np.float64(0.0), log_p_neg=np.float64(0.0), log_odds=np.float64(0.0)
            )
        for suffix, column_name in (("pos", "n_pos"), ("neg", "n_neg")):
            denominator = table[column_name].sum() + self.alpha * n_levels
            table[f"log_p_{suffix}"] = np.log(table[column_name] + self.alpha) - np.log(denominator)
        table["log_odds"] = table["log_p_pos"] - table["log_p_neg"]
        return table

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Log-odds of the positive class for each row of ``X``."""
        frame = predict_frame(self, X)
        _check_columns(frame, self.categorical_)
        logit = np.full(len(frame), self.log_prior_odds_)
        for field, table in self.tables_.items():
            contribution = self._field_log_odds(frame[field], table["log_odds"])
            logit = logit + contribution
        return logit

    @staticmethod
    def _field_log_odds(column: pd.Series, log_odds: pd.Series) -> np.ndarray:
        """Per-row contribution of one field; 0 for missing or unseen values."""
        lookup: dict[Hashable, float] = log_odds.to_dict()
        mapped = _as_object(column).map(lambda v: lookup.get(v, 0.0) if pd.notna(v) else 0.0)
        return mapped.to_numpy(dtype=np.float64)

    def _positive_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(expit(self.decision_function(frame)), dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Logistic regression
# --------------------------------------------------------------------------------------------------


def _categorical_as_text(block: pd.DataFrame) -> pd.DataFrame:
    """Categorical block as strings with missing values as ``"(missing)"`` (module-level: picklable)."""
    frame = block.astype(object)
    return frame.where(frame.notna(), MISSING_LEVEL).astype(str)


def _numeric_as_float(block: pd.DataFrame) -> pd.DataFrame:
    """Numeric block as float64 with NaN for missing (handles nullable Int64/Float64)."""
    return pd.DataFrame({c: pd.to_numeric(block[c], errors="coerce") for c in block.columns}).astype(
        np.float64
    )


class LogisticBaseline(_BinaryFrameClassifier):
    """Logistic regression on one-hot categoricals and standardised numbers.

    Numeric columns: median imputation with missing-value indicators, then standardisation.
    Categorical columns: missing -> ``"(missing)"``, then one-hot with at most ``max_levels`` levels
    per column; levels seen fewer than :data:`MIN_CATEGORY_COUNT` times and levels unseen at fit
    share an "infrequent" column (or, if a column has no infrequent level, encode as all zeros).
    With a small ``C`` (e.g. 0.1) this is the regularised model for small data sets.

    Args:
        categorical: Categorical columns; ``None`` = object/category/bool/string columns at fit.
        numeric: Numeric columns; ``None`` = number columns at fit. Inferred or given, columns that
            are entirely missing at fit are dropped (see ``dropped_columns_``).
        C: Inverse L2 regularisation strength, or ``"cv"``: chosen from :data:`C_GRID` by the
            log loss of a 3-fold cross-validation whose folds keep each group (``groups`` of
            :meth:`fit`, e.g. the weekly snapshots of one deal) together. Rows of one entity are
            near copies, so a ``C`` fitted to them without grouping overfits: on the default CRM's
            deal snapshots ``C=1`` scored test ECE 0.10 and ``C`` chosen this way 0.05.
        max_levels: Maximum one-hot columns per categorical column.
        random_state: Seed passed to the solver.

    Attributes:
        categorical_: Categorical columns used.
        numeric_: Numeric columns used.
        dropped_columns_: Requested or inferred columns dropped because they were all missing.
        pipeline_: The fitted sklearn ``Pipeline`` (preprocessing + ``LogisticRegression``) taking
            ``X[categorical_ + numeric_]``.
        C_: The regularisation strength used.
        cv_log_loss_: Cross-validated log loss per candidate ``C`` (``C="cv"`` only).
    """

    def __init__(
        self,
        categorical: list[str] | None = None,
        numeric: list[str] | None = None,
        C: float | str = 1.0,  # noqa: N803
        max_levels: int = 50,
        random_state: int = 0,
    ) -> None:
        self.categorical = categorical
        self.numeric = numeric
        self.C = C
        self.max_levels = max_levels
        self.random_state = random_state

    def fit(
        self,
        X: pd.DataFrame,  # noqa: N803
        y: Any,
        groups: Any = None,
        row_weight: np.ndarray | None = None,
    ) -> LogisticBaseline:
        """Fit the preprocessing and the logistic regression.

        Args:
            X: Rows.
            y: Binary labels.
            groups: Optional group of each row (kept within one fold when ``C="cv"``).
            row_weight: Optional weight of each row in the regression (``C="cv"`` chooses
                without them).
        """
        frame, labels = fit_frame(self, X, y)
        if np.unique(labels).size < 2:
            raise ValueError(
                "LogisticBaseline needs both classes in y (one class given); use BaseRateClassifier instead"
            )
        categorical = _categorical_columns(frame) if self.categorical is None else list(self.categorical)
        numeric = _numeric_columns(frame) if self.numeric is None else list(self.numeric)
        _check_columns(frame, categorical + numeric)
        empty = {c for c in categorical + numeric if frame[c].isna().all()}
        self.dropped_columns_ = [c for c in categorical + numeric if c in empty]
        self.categorical_ = [c for c in categorical if c not in empty]
        self.numeric_ = [c for c in numeric if c not in empty]
        if not self.categorical_ + self.numeric_:
            raise ValueError("LogisticBaseline found no usable columns in X")
        used = frame[self.categorical_ + self.numeric_]
        self.cv_log_loss_: dict[float, float] = {}
        if isinstance(self.C, str):
            if self.C != "cv":
                raise ValueError(f"C must be a positive number or 'cv', got {self.C!r}")
            self.cv_log_loss_ = self._cv_losses(used, labels, groups)
            self.C_ = min(self.cv_log_loss_, key=lambda c: (self.cv_log_loss_[c], c))
        else:
            self.C_ = float(self.C)
        self.pipeline_ = self._build_pipeline(self.C_)
        if row_weight is None:
            self.pipeline_.fit(used, labels)
        else:
            self.pipeline_.fit(used, labels, model__sample_weight=np.asarray(row_weight, dtype=float))
        return self

    def _cv_losses(self, frame: pd.DataFrame, labels: np.ndarray, groups: Any) -> dict[float, float]:
        """Grouped 3-fold cross-validated log loss of each candidate ``C`` (on at most CV_MAX_ROWS)."""
        from sklearn.metrics import log_loss
        from sklearn.model_selection import GroupKFold

        keys = np.arange(len(frame)) if groups is None else pd.factorize(pd.Series(np.asarray(groups)))[0]
        if len(keys) != len(frame):
            raise ValueError(f"groups has {len(keys)} values for {len(frame)} rows")
        rng = np.random.default_rng(self.random_state)
        if len(frame) > CV_MAX_ROWS:
            order = rng.permutation(int(keys.max()) + 1)
            sizes = np.bincount(keys)[order]
            chosen = order[: max(1, int(np.searchsorted(np.cumsum(sizes), CV_MAX_ROWS)))]
            rows = np.flatnonzero(np.isin(keys, chosen))
            frame, labels, keys = frame.iloc[rows], labels[rows], keys[rows]
        n_groups = np.unique(keys).size
        if n_groups < 3 or np.unique(labels).size < 2:
            return {1.0: float("nan")}
        oof = {c: np.empty(len(labels)) for c in C_GRID}
        for train, held in GroupKFold(n_splits=3).split(frame, labels, keys):
            if np.unique(labels[train]).size < 2:
                for c in C_GRID:
                    oof[c][held] = labels[train].mean()
                continue
            # the preprocessing does not depend on C: fitted once per fold, each C's regression
            # then sees exactly the matrix its own pipeline would have made
            template = self._build_pipeline(C_GRID[0])
            prep = Pipeline(template.steps[:-1])
            x_train = prep.fit_transform(frame.iloc[train], labels[train])
            x_held = prep.transform(frame.iloc[held])
            for c in C_GRID:
                model = clone(template.named_steps["model"]).set_params(C=c)
                oof[c][held] = model.fit(x_train, labels[train]).predict_proba(x_held)[:, 1]
        return {c: float(log_loss(labels, np.clip(oof[c], 1e-6, 1 - 1e-6), labels=[0, 1])) for c in C_GRID}

    def _build_pipeline(self, c: float) -> Pipeline:
        transformers: list[tuple[str, Any, list[str]]] = []
        if self.numeric_:
            numeric = Pipeline(
                [
                    ("to_float", FunctionTransformer(_numeric_as_float, feature_names_out="one-to-one")),
                    (
                        "impute",
                        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    ),
                    ("scale", StandardScaler()),
                ]
            )
            transformers.append(("numeric", numeric, self.numeric_))
        if self.categorical_:
            categorical = Pipeline(
                [
                    ("to_text", FunctionTransformer(_categorical_as_text, feature_names_out="one-to-one")),
                    (
                        "one_hot",
                        OneHotEncoder(
                            handle_unknown="infrequent_if_exist",
                            max_categories=self.max_levels,
                            min_frequency=MIN_CATEGORY_COUNT,
                            sparse_output=False,
                        ),
                    ),
                ]
            )
            transformers.append(("categorical", categorical, self.categorical_))
        model = LogisticRegression(C=c, max_iter=2000, class_weight=None, random_state=self.random_state)
        return Pipeline([("preprocess", ColumnTransformer(transformers, remainder="drop")), ("model", model)])

    def _positive_proba(self, frame: pd.DataFrame) -> np.ndarray:
        _check_columns(frame, self.categorical_ + self.numeric_)
        return np.asarray(self.pipeline_.predict_proba(frame[self.categorical_ + self.numeric_])[:, 1])

    def coefficients(self) -> pd.Series:
        """Fitted coefficients indexed by encoded feature name (e.g. ``categorical__source_web``)."""
        check_is_fitted(self, "pipeline_")
        names = self.pipeline_.named_steps["preprocess"].get_feature_names_out()
        return pd.Series(self.pipeline_.named_steps["model"].coef_[0], index=names, name="coefficient")
