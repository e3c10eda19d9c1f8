"""How the project's binary classifiers read ``X`` and ``y`` (the scikit-learn estimator contract).

The models are written for pandas frames (columns by name, categories as text). A frame passes
through unchanged; any other input (a numpy array, a list of rows) is checked by scikit-learn's
``validate_data`` (numbers, no infinity, no sparse matrix, the feature count at predict time) and
becomes a frame of float columns named ``x0``, ``x1``, ... Labels 0/1 (or bools, the projects'
labels) give ``classes_ = [0, 1]`` whatever the training rows hold, so a model always answers
P(positive); any other two labels are learned from ``y``, the second in sorted order being the
positive class.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from forecast.evaluate import binary_labels


def binary_tags(tags: Tags) -> Tags:
    """``tags`` of a binary classifier that takes missing values (each model handles them)."""
    tags.input_tags.allow_nan = True
    if tags.classifier_tags is not None:
        tags.classifier_tags.multi_class = False
    return tags


def array_columns(n: int) -> list[str]:
    """The column names a frame made from an array gets: ``x0``, ``x1``, ..."""
    return [f"x{i}" for i in range(n)]


def fit_frame(estimator: Any, X: Any, y: Any) -> tuple[pd.DataFrame, np.ndarray]:  # noqa: N803
    """Check the training rows; set ``n_features_in_``, ``feature_names_in_`` (frames) and ``classes_``.

    Args:
        estimator: The classifier being fitted.
        X: A frame, or numeric rows of any array-like.
        y: Two class labels (0/1 or bools in the project's data).

    Returns:
        The rows as a frame and their labels as 0/1 (1 = ``classes_[1]``).

    Raises:
        ValueError: Rows and labels disagree in length, labels are not of two classes (or 0/1),
            or array rows are empty or hold infinity.
    """
    if isinstance(X, pd.DataFrame):
        frame = _text_columns(X)
        estimator.n_features_in_ = frame.shape[1]
        estimator.feature_names_in_ = np.asarray([str(c) for c in frame.columns], dtype=object)
    else:
        values, y = validate_data(estimator, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        frame = pd.DataFrame(values, columns=array_columns(values.shape[1]))
    estimator.classes_, labels = _binary_target(y)
    if len(frame) != labels.size:
        raise ValueError(f"X and y must have the same length, got {len(frame)} and {labels.size}")
    return frame, labels


def predict_frame(estimator: Any, X: Any) -> pd.DataFrame:  # noqa: N803
    """The rows to predict as a frame, after checking that ``estimator`` is fitted.

    Raises:
        sklearn.exceptions.NotFittedError: ``estimator`` was not fitted.
        ValueError: Array rows with another number of features than at fit, or with infinity.
    """
    check_is_fitted(estimator, "classes_")
    if isinstance(X, pd.DataFrame):
        return _text_columns(X)
    values = validate_data(estimator, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)
    return pd.DataFrame(values, columns=array_columns(values.shape[1]))


def labels_of(classes: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Predicted labels: ``classes[1]`` where ``positive`` holds, else ``classes[0]``."""
    return np.asarray(classes)[np.asarray(positive, dtype=bool).astype(np.int64)]


def _binary_target(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """``classes_`` and 0/1 labels: 0/1 labels as they are, any other two labels in sorted order."""
    try:
        return np.array([0, 1]), binary_labels(y)
    except (TypeError, ValueError):
        pass
    values = np.asarray(y)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values.ravel()
    check_classification_targets(values)
    classes = np.unique(values)
    if classes.size > 2:
        raise ValueError(f"Only binary classification is supported; y has {classes.size} classes")
    if classes.size < 2:
        raise ValueError("y has one class: a binary classifier needs two (or 0/1 labels)")
    return classes, (values == classes[1]).astype(np.int64)


def _text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` itself when its column names are text, else a view of it with ``str`` names."""
    if all(isinstance(c, str) for c in frame.columns):
        return frame
    return frame.rename(columns=str)
