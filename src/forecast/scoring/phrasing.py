"""The English of reason codes: one feature and its value in words a sales rep understands.

:func:`phrase` writes one reason (``"3 pricing-page views in the last 7 days"``, ``"no next step
is booked"``); :func:`phrases` writes a column of values, once per distinct value.
:mod:`forecast.scoring.reasons` calls them for the reasons it chose.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np
import pandas as pd

from forecast.categories import OTHER

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


def phrases(feature: str, raw: np.ndarray, description: str | None, kind: str | None) -> np.ndarray:
    """The phrase of each value, built once per distinct value (missing values as ``None``)."""
    if len(raw) == 1:  # one value: what factorizing it would give, without the cost
        value = raw[0]
        return np.asarray(
            [phrase(feature, None if _is_missing(value) else value, description, kind)], dtype=object
        )
    codes, uniques = pd.factorize(_rounded(feature, raw, description, kind), use_na_sentinel=True)
    texts = [phrase(feature, u, description, kind) for u in uniques]
    texts.append(phrase(feature, None, description, kind))  # code -1: missing
    return np.asarray(texts, dtype=object)[codes]


def _rounded(feature: str, raw: np.ndarray, description: str | None, kind: str | None) -> np.ndarray:
    """``raw`` with each value replaced by one that reads the same, where many values read alike.

    Days of two or more are written as whole days (``round``) and money of 100 or more in whole
    units (``:,.0f``), both rounding half to even on the exact binary value as :func:`numpy.rint`
    does: such values are rounded here, so that :func:`phrases` words each distinct text once
    instead of each distinct value (a days column of distinct rows has as many values as rows).
    Other values, and columns worded by another rule, are returned as they are.
    """
    if (
        not description
        or kind in ("boolean", "categorical")
        or not isinstance(raw, np.ndarray)
        or raw.dtype.kind != "f"
        or _is_rate(feature, description)
    ):
        return raw
    if _is_money(feature):
        edge = 100.0
    elif _is_days(feature):
        edge = 2.0
    else:
        return raw
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(raw) >= edge, np.rint(raw), raw)


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


@lru_cache(maxsize=4096)  # the rules below depend on the feature and its description only
def _tokens(feature: str) -> tuple[str, ...]:
    return tuple(t for t in re.split(r"[^a-z0-9]+", feature.lower()) if t)


@lru_cache(maxsize=4096)
def _is_rate(feature: str, description: str) -> bool:
    return "rate" in _tokens(feature) or description.lower().startswith("share of")


@lru_cache(maxsize=4096)
def _is_money(feature: str) -> bool:
    tokens = _tokens(feature)
    return bool(tokens) and tokens[-1] in ("amount", "revenue")


@lru_cache(maxsize=4096)
def _is_days(feature: str) -> bool:
    return "days" in _tokens(feature)


@lru_cache(maxsize=4096)
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


@lru_cache(maxsize=4096)
def _without_negative_note(description: str) -> str:
    return re.sub(r"\s*\(negative:[^)]*\)", "", description).strip()


def _days_phrase(description: str, number: float) -> str:
    """Value-first days: "12 days since the last contact", "5 days past the expected close date"."""
    text = _without_negative_note(description)
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
