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
