"""One rule for every name that becomes a path or a registry key (model, experiment names).

A model name ends up in ``models/<name>/``, in MLflow's artifact folder and registry, and in
monitoring output folders. It is checked before any work starts, so ``../../x`` or ``a/b`` never
trains a model first and then fails in MLflow's own check (leaving an orphan run), and
``has space`` never becomes a folder.
"""

from __future__ import annotations

import re

from forecast.errors import InputError, truncate

NAME_RULE = (
    "letters, digits, '-', '_' and '.' only, starting with a letter, digit or '_', without '..', "
    "at most 100 characters"
)
"""The rule, in words, as error messages state it."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")


def name_problem(value: str) -> str | None:
    """Why ``value`` is not a valid name, or ``None`` when it is.

    Args:
        value: The candidate name.

    Returns:
        The rule broken (``None``: valid).
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        return f"must use {NAME_RULE}"
    return None


def check_name(value: str, what: str = "model name") -> str:
    """Return ``value`` if it is a valid name, else raise naming the value and the rule.

    Args:
        value: The candidate name.
        what: What the name is, for the message (``model name``, ``--model``, ``experiment``).

    Returns:
        ``value``, unchanged.

    Raises:
        InputError: The name breaks the rule (CLI exit code 2; the API answers 400).
    """
    problem = name_problem(value)
    if problem is not None:
        raise InputError(f"{what} {truncate(value, 120)!r} is not a valid name: it {problem}")
    return value
