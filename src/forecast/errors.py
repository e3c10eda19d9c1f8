"""The error that means "the user's input is wrong" (CLI exit code 2).

Everything else that escapes a command is an internal error (exit code 1, traceback under
``--log-level DEBUG``): a ``ValueError`` raised deep inside pandas or scikit-learn is a bug of ours,
not bad input, so the CLI never maps bare ``ValueError`` to exit code 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names the file, row or column, the rule broken and what to do.

    An error about one parameter of a call (an as-of, a period, a grouping) names the parameter,
    not a command-line flag: the domain code is also reached over HTTP, where there are no flags.
    ``str(error)`` reads ``<parameter> <message>`` (``as_of 'x' is not an ISO date ...``); the CLI
    shows the same error as its option (``--as-of 'x' ...``, :func:`cli_message`) and the service
    names the field.

    Args:
        message: What is wrong and what to do, without the parameter's name.
        parameter: The parameter at fault, by its public name (``as_of``, ``period``, ``by``).
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.parameter = parameter

    def __str__(self) -> str:
        return self.message if self.parameter is None else f"{self.parameter} {self.message}"


def option_name(parameter: str) -> str:
    """The command-line option of a parameter: ``as_of`` → ``--as-of``."""
    return "--" + parameter.replace("_", "-")


def parameter_name(option: str) -> str:
    """The parameter of a command-line option: ``--as-of`` → ``as_of``."""
    return option.lstrip("-").replace("-", "_")


def cli_message(error: BaseException) -> str:
    """An error's message as the command line shows it: a parameter as its option."""
    if isinstance(error, InputError) and error.parameter is not None:
        return f"{option_name(error.parameter)} {error.message}"
    return str(error)


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
