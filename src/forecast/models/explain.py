"""Reason codes: which features raised or lowered each score, in words a sales rep understands.

Every score comes with its top positive and negative factors (DESIGN §4). Two steps:

1. :func:`contributions`: per row, the contribution of each *input* column of the pipeline (the
   ``columns`` step) to the model's log-odds.

   - LightGBM (:class:`~forecast.models.pipeline.CalibratedLGBMClassifier`): TreeSHAP values of the
     booster (``pred_contrib``), without the bias column. Per row, the contributions plus the bias
     equal the booster's raw log-odds exactly. They explain the trees' score, before calibration;
     the calibrator is monotone, so "raised" and "lowered" keep their meaning.
   - Small-data logistic model (:class:`~forecast.models.baselines.LogisticBaseline`): the linear
     decomposition ``coef_j * (z_j - m_j)`` of every transformed column ``z_j`` against its training
     mean ``m_j``, summed back onto the input column it came from (a numeric column's scaled value and
     its missing-value indicator; a categorical column's one-hot columns). Numeric and indicator
     columns are standardised inside the model, so their training mean is exactly 0. One-hot columns
     use the training level frequencies stored by :func:`store_training_means`; without them (the
     fitted encoder does not keep frequencies) every level of a column is taken as equally frequent,
     i.e. a level's contribution is its coefficient minus the mean coefficient of the column's levels.
     Per row, the contributions plus ``intercept + sum_j coef_j * m_j`` equal the model's log-odds.

2. :func:`reasons_from_contributions` (called by :func:`reason_codes`): the ``top_k`` largest
   positive and most negative contributions of each row, chosen with numpy over the whole matrix;
   text (:func:`phrase`) is built only for the chosen cells, once per distinct (feature, value).

TreeSHAP dominates the cost (DESIGN §7); choosing and phrasing the reasons adds little to it. For
a LightGBM pipeline, :func:`contributions` runs on the encoded float matrix of
:mod:`forecast.models.fastpath` (the booster called directly, the prior's design from lookup tables):
the same numbers as through the frames, about 0.3 ms for one row instead of 12-30 ms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.models.baselines import LogisticBaseline
from forecast.models.fastpath import coded
from forecast.models.logistic_terms import TRAINING_MEANS_ATTR, logistic_contributions, logistic_matrix
from forecast.models.pipeline import OTHER, CalibratedLGBMClassifier

MIN_CONTRIBUTION = 1e-6
"""Contributions smaller than this in absolute value are never reasons."""

_logistic_contributions = logistic_contributions  # its former name here (tests use it)

_TRUE_WORDS = frozenset({"yes", "y", "true", "t", "1", "1.0"})
_COUNT_PREFIXES = ("act_", "eng_", "n_", "acct_prior_", "rep_")
_NOT_COUNTABLE = ("average", "share", "the ", "how ", "interest", "days", "time in", "whether", "a ", "an ")
_NOUN_END = frozenset(
    {
        "in",
        "from",
        "with",
        "by",
        "the",
        "so",
        "on",
        "that",
        "before",
        "at",
        "per",
        "held",
        "spent",
        "over",
        "won",
        "lost",
    }
)


# --------------------------------------------------------------------------------------------------
# Contributions
# --------------------------------------------------------------------------------------------------


def input_columns(pipeline: Pipeline) -> list[str]:
    """The pipeline's input columns (its ``columns`` step), in model order."""
    return [str(c) for c in pipeline.named_steps["columns"].columns]


def contributions(pipeline: Pipeline, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """Per-row contribution (log-odds) of each input column of a fitted scoring pipeline.

    Args:
        pipeline: A fitted pipeline from :func:`~forecast.models.pipeline.build_pipeline` whose model
            is a :class:`CalibratedLGBMClassifier` or a :class:`LogisticBaseline` (see the module
            docstring for how each is decomposed).
        X: Raw rows with (at least) the pipeline's input columns.

    Returns:
        A float frame with the same index as ``X`` and one column per input column.

    Raises:
        KeyError: ``X`` lacks an input column.
        TypeError: The model is neither of the two supported kinds.
    """
    columns = input_columns(pipeline)
    model = pipeline.steps[-1][1]
    fast = coded(pipeline) if len(X) else None
    if fast is not None and isinstance(model, CalibratedLGBMClassifier):
        values = fast.contributions(fast.encode(X))[:, :-1]
        return pd.DataFrame(values, index=X.index, columns=columns)
    if fast is not None and callable(getattr(model, "contributions_codes", None)):  # time to close
        values = fast.hazard_contributions(fast.encode(X))[:, :-1]
        return pd.DataFrame(values, index=X.index, columns=columns)
    prepared = pipeline[:-1].transform(X)
    if isinstance(model, CalibratedLGBMClassifier):
        values = np.asarray(model.contributions(prepared), dtype=np.float64)[:, :-1]
    elif isinstance(model, LogisticBaseline):
        values, _ = logistic_contributions(model, prepared, columns)
    elif callable(getattr(model, "contributions", None)):  # e.g. a time-to-close hazard model
        values = np.asarray(model.contributions(prepared), dtype=np.float64)[:, :-1]
    else:
        raise TypeError(f"no reason codes for a {type(model).__name__} model")
    return pd.DataFrame(values, index=X.index, columns=columns)


def store_training_means(pipeline: Pipeline, X_train: pd.DataFrame) -> Pipeline:  # noqa: N803
    """Remember the training means of a logistic model's transformed columns (for its reasons).

    Call it once after fitting a small-data logistic pipeline, with the rows it was fitted on; the
    means are pickled with the model. LightGBM pipelines are returned unchanged.

    Args:
        pipeline: A fitted scoring pipeline.
        X_train: The rows the model was fitted on (raw columns).

    Returns:
        ``pipeline`` (changed in place).
    """
    model = pipeline.steps[-1][1]
    if isinstance(model, LogisticBaseline):
        prepared = pipeline[:-1].transform(X_train)
        design = logistic_matrix(model, prepared)
        setattr(model, TRAINING_MEANS_ATTR, design.mean(axis=0))
    return pipeline


# --------------------------------------------------------------------------------------------------
# Choosing the reasons
# --------------------------------------------------------------------------------------------------


def reason_codes(
    pipeline: Pipeline,
    X: pd.DataFrame,  # noqa: N803
    descriptions: Mapping[str, str],
    *,
    top_k: int = 3,
    kinds: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """The features that raised and lowered each row's score most, in plain words.

    Args:
        pipeline: A fitted scoring pipeline (see :func:`contributions`).
        X: Raw rows with the pipeline's input columns.
        descriptions: Plain-words meaning per feature (e.g. from the feature catalogue); features
            without one are shown as ``<feature> = <value>``.
        top_k: Reasons per direction.
        kinds: ``numeric`` / ``categorical`` / ``boolean`` per feature (default: from ``X``'s dtypes).

    Returns:
        ``reason_up_1..top_k`` (largest positive contribution first) and ``reason_down_1..top_k``
        (most negative first), strings or ``None``, with the same index as ``X``.
    """
    return reasons_from_contributions(contributions(pipeline, X), X, descriptions, top_k=top_k, kinds=kinds)


def reason_columns(top_k: int) -> list[str]:
    """Names of the reason columns for ``top_k`` reasons per direction."""
    return [f"reason_up_{i}" for i in range(1, top_k + 1)] + [f"reason_down_{i}" for i in range(1, top_k + 1)]


def reasons_from_contributions(
    contrib: pd.DataFrame,
    X: pd.DataFrame,  # noqa: N803
    descriptions: Mapping[str, str],
    *,
    top_k: int = 3,
    kinds: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Reason codes from a contribution matrix (as :func:`reason_codes`, contributions given).

    Args:
        contrib: Per-row contributions, one column per feature (rows aligned with ``X``).
        X: The raw rows (the reasons quote their values).
        descriptions: Plain-words meaning per feature.
        top_k: Reasons per direction.
        kinds: Feature kinds (default: from ``X``'s dtypes).

    Returns:
        The reason columns (see :func:`reason_codes`), indexed like ``X``.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if len(contrib) != len(X):
        raise ValueError(f"contributions have {len(contrib)} rows but X has {len(X)}")
    features = [str(c) for c in contrib.columns]
    values = contrib.to_numpy(dtype=np.float64)
    n, f = values.shape
    k = min(top_k, f)
    out = np.full((n, 2 * top_k), None, dtype=object)
    if n and k:
        up_idx, up_ok = _top(np.where(values >= MIN_CONTRIBUTION, values, -np.inf), k)
        down_idx, down_ok = _top(np.where(values <= -MIN_CONTRIBUTION, -values, -np.inf), k)
        chosen = np.concatenate([up_idx, down_idx], axis=1)
        ok = np.concatenate([up_ok, down_ok], axis=1)
        slots = np.concatenate([np.arange(k), top_k + np.arange(k)])
        rows, cells = np.nonzero(ok)
        feats = chosen[rows, cells]
        order = np.argsort(feats, kind="stable")
        rows, cells, feats = rows[order], cells[order], feats[order]
        starts = np.flatnonzero(np.r_[True, feats[1:] != feats[:-1]]) if feats.size else np.array([], int)
        ends = np.r_[starts[1:], feats.size]
        for start, end in zip(starts, ends, strict=True):
            feature = features[feats[start]]
            raw = X[feature].to_numpy()[rows[start:end]]
            kind = (kinds.get(feature) if kinds is not None else None) or _dtype_kind(X[feature])
            out[rows[start:end], slots[cells[start:end]]] = _phrases(
                feature, raw, descriptions.get(feature), kind
            )
    return pd.DataFrame(out, index=X.index, columns=reason_columns(top_k))


def _phrases(feature: str, raw: np.ndarray, description: str | None, kind: str | None) -> np.ndarray:
    """The phrase of each value, built once per distinct value (missing values as ``None``)."""
    if len(raw) == 1:  # one value: what factorizing it would give, without the cost
        value = raw[0]
        return np.asarray(
            [phrase(feature, None if _is_missing(value) else value, description, kind)], dtype=object
        )
    codes, uniques = pd.factorize(raw, use_na_sentinel=True)
    texts = [phrase(feature, u, description, kind) for u in uniques]
    texts.append(phrase(feature, None, description, kind))  # code -1: missing
    return np.asarray(texts, dtype=object)[codes]


def _top(score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the ``k`` largest scores per row (descending) and whether each is finite."""
    f = score.shape[1]
    if k < f:
        part = np.argpartition(-score, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(score, part, axis=1)
        # descending score; ties by column index so results do not depend on the partition
        order = np.lexsort((part, -picked), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
    else:
        idx = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return idx, np.isfinite(np.take_along_axis(score, idx, axis=1))


def _dtype_kind(column: pd.Series) -> str | None:
    types = pd.api.types
    if types.is_bool_dtype(column):
        return "boolean"
    if types.is_numeric_dtype(column):
        return None
    return "categorical"


# --------------------------------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------------------------------


def phrase(feature: str, value: object, description: str | None, kind: str | None = None) -> str:
    """One reason in plain words: a feature and its value.

    Rules, in order (a feature's ``kind`` is inferred from the value when not given):

    - no description (e.g. a flat export's column): ``"<feature> = <value>"``;
    - missing value: ``"<description>: unknown"``;
    - boolean: the description when true ("a next step is booked"), its negation when false
      ("no next step is booked", "the contact is not …"); other descriptions get ``: yes`` / ``: no``;
    - categorical: ``"where the lead came from: referral"``;
    - rates (``rate`` in the name, or a description starting "share of"): ``"…: 40%"``;
    - money (name ending in ``amount`` or ``revenue``): thousands separators, ``"deal size: 48,000"``;
    - days (``days`` in the name): value first, ``"12 days since the last contact"``, ``"5 hours
      since …"`` below a day, ``"3 days past the expected close date"`` when overdue;
    - counts (names ending in ``_<n>d`` or starting with ``act_``, ``eng_``, ``n_``, ``rep_``,
      ``acct_prior_``, with a countable description): value first, ``"3 pricing-page views in the last
      7 days"``, ``"no calls in the last 30 days"``, ``"1 call in the last 7 days"``; descriptions
      starting "times …" read ``"the deal size was cut: twice"``-style (never / once / N times);
    - anything else: ``"<description>: <value>"``.

    Integers are written without ``.0``.

    Args:
        feature: Feature (column) name.
        value: The row's raw value.
        description: Plain-words meaning, or ``None``.
        kind: ``numeric``, ``categorical`` or ``boolean`` (``None``: from the value's type).

    Returns:
        The phrase.
    """
    missing = _is_missing(value)
    if kind is None and not missing:
        kind = _value_kind(value)
        if (
            kind == "numeric"
            and description
            and description.strip().lower().startswith(("a ", "an "))
            and _as_float(value) in (0.0, 1.0)
        ):
            kind = "boolean"  # "a next step is booked" stored as 0/1
    if not description:
        return f"{feature} = {'unknown' if missing else _plain_value(feature, value, kind)}"
    if missing:
        return f"{description}: unknown"
    if kind == "boolean":
        return _boolean_phrase(description, _truthy(value))
    if kind == "categorical" or isinstance(value, str):
        return f"{description}: {_category_text(value)}"
    number = _as_float(value)
    if number is None:
        return f"{description}: {value}"
    if _is_rate(feature, description):
        return f"{description}: {_percent(number)}"
    if _is_money(feature):
        return f"{description}: {_money(number)}"
    if _is_days(feature):
        return _days_phrase(description, number)
    if _is_count(feature, description):
        return _count_phrase(description, number)
    return f"{description}: {_number(number)}"


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False


def _value_kind(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, str):
        return "categorical"
    return "numeric"


def _as_float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in _TRUE_WORDS
    number = _as_float(value)
    return bool(value) if number is None else number != 0.0


def _category_text(value: object) -> str:
    text = str(value)
    return "other" if text == OTHER else text


def _plain_value(feature: str, value: object, kind: str | None) -> str:
    if kind == "boolean":
        return "yes" if _truthy(value) else "no"
    if isinstance(value, str) or kind == "categorical":
        return _category_text(value)
    number = _as_float(value)
    if number is None:
        return str(value)
    return _money(number) if _is_money(feature) else _number(number)


def _tokens(feature: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", feature.lower()) if t]


def _is_rate(feature: str, description: str) -> bool:
    return "rate" in _tokens(feature) or description.lower().startswith("share of")


def _is_money(feature: str) -> bool:
    tokens = _tokens(feature)
    return bool(tokens) and tokens[-1] in ("amount", "revenue")


def _is_days(feature: str) -> bool:
    return "days" in _tokens(feature)


def _is_count(feature: str, description: str) -> bool:
    name = feature.lower()
    countable_name = (
        bool(re.search(r"_\d+d$", name)) or name.startswith(_COUNT_PREFIXES) or name.endswith("_total")
    )
    text = description.lower()
    return countable_name and ":" not in text and not text.startswith(_NOT_COUNTABLE)


def _number(number: float) -> str:
    if number.is_integer():
        return str(int(number))
    if abs(number) >= 1:
        return f"{number:.2f}".rstrip("0").rstrip(".")
    return f"{number:.3g}"


def _days_phrase(description: str, number: float) -> str:
    """Value-first days: "12 days since the last contact", "5 days past the expected close date"."""
    text = re.sub(r"\s*\(negative:[^)]*\)", "", description).strip()
    if not text.lower().startswith("days "):
        return f"{description}: {_days(number)}"
    rest = text[5:]
    if number < 0 and rest.startswith("until "):
        return f"{_days(-number)} past {rest[6:]}"
    return f"{_days(number)} {rest}"


def _days(number: float) -> str:
    """Whole days from two days on ("730 days"), hours below ("5 hours"), one decimal between."""
    if abs(number) >= 2:
        return f"{round(number)} days"
    if abs(number) >= 1:
        return "1 day" if round(number, 1) == 1 else f"{number:.1f} days"
    hours = round(number * 24)
    return "1 hour" if hours == 1 else f"{hours} hours"


def _money(number: float) -> str:
    if number.is_integer() or abs(number) >= 100:
        return f"{number:,.0f}"
    return f"{number:,.2f}"


def _percent(number: float) -> str:
    share = number * 100 if abs(number) <= 1 else number
    return f"{share:.0f}%"


def _count_phrase(description: str, number: float) -> str:
    text = description.removeprefix("all ")
    if text.startswith("times "):
        rest = text.removeprefix("times ")
        how_often = {0.0: "never", 1.0: "once", 2.0: "twice"}.get(number, f"{_number(number)} times")
        return f"{rest}: {how_often}"
    if number == 0:
        return f"no {text}"
    if number == 1:
        text = _singular(text)
    return f"{_number(number)} {text}"


def _singular(text: str) -> str:
    """``"calls in the last 7 days"`` -> ``"call in the last 7 days"`` (the head noun only)."""
    words = text.split(" ")
    end = len(words)
    for i, word in enumerate(words):
        if i and (word in _NOUN_END or word.startswith("(")):
            end = i
            break
    if end == 0:
        return text
    if "and" in words[:end]:
        before = words[words.index("and") - 1] if words.index("and") else ""
        if before.endswith("s"):
            return text  # "meetings and demos held": leave the plural
    head = words[end - 1]
    if head.endswith("ies"):
        head = head[:-3] + "y"
    elif head.endswith(("ches", "shes", "sses", "xes")):
        head = head[:-2]
    elif head.endswith("s") and not head.endswith("ss"):
        head = head[:-1]
    return " ".join([*words[: end - 1], head, *words[end:]])


def _is_statement(description: str) -> bool:
    lowered = description.strip().lower()
    return lowered.startswith(("a ", "an ")) or bool(re.search(r" (is|are|was|were|has|have) ", lowered))


def _boolean_phrase(description: str, truth: bool) -> str:
    text = description.strip()
    lowered = text.lower()
    if not _is_statement(text):
        return f"{text}: {'yes' if truth else 'no'}"
    if truth:
        return text
    if lowered.startswith(("a ", "an ")):
        return "no " + text.split(" ", 1)[1]
    match = re.search(r" (is|are|was|were|has|have) ", text)
    assert match is not None
    verb = match.group(1)
    negated = {"has": "does not have", "have": "do not have"}.get(verb, f"{verb} not")
    return f"{text[: match.start()]} {negated} {text[match.end() :]}"


def describe(catalogue: Sequence[Any]) -> tuple[dict[str, str], dict[str, str]]:
    """Descriptions and kinds by feature name from a feature catalogue (``Feature`` records).

    Args:
        catalogue: Objects with ``name``, ``description`` and ``kind`` (e.g. ``feature_catalogue(entity)``).

    Returns:
        ``(descriptions, kinds)`` for :func:`reason_codes`.
    """
    return {f.name: f.description for f in catalogue}, {f.name: f.kind for f in catalogue}
