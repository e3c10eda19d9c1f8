"""The error that means "the user's input is wrong" (CLI exit code 2).

Everything else that escapes a command is an internal error (exit code 1, traceback under
``--log-level DEBUG``): a ``ValueError`` raised deep inside pandas or scikit-learn is a bug of ours,
not bad input, so the CLI never maps bare ``ValueError`` to exit code 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names the file, row or column, the rule broken and what to do."""


class InsufficientDataError(InputError):
    """Too few labelled rows (or rows of the rarer class) to train anything honest."""


class ScoringError(InputError):
    """The input cannot be scored at all (wrong shape for the model, no warehouse, …)."""


ECHO_LIMIT = 200
"""Most characters of an input value echoed in a message, a rejects record or a JSON answer."""


def truncate(value: object, limit: int = ECHO_LIMIT) -> str:
    """``str(value)`` cut to ``limit`` characters with an ellipsis, so echoes stay bounded.

    A hostile cell (megabytes of text) must not be printed back whole in a message, a ``--json``
    document or a rejects file.

    Args:
        value: The value to echo.
        limit: The most characters kept before ``…``.

    Returns:
        The text, with ``… (N chars)`` when it was cut.
    """
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} chars)"
