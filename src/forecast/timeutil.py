"""Times as the warehouse holds them: UTC without a time zone, and the one parser of ``--as-of``.

Every timestamp forecast stores or compares is naive UTC. A value with an offset is converted to
UTC and its zone dropped; a value without one is taken as UTC already. The module is named
``timeutil`` rather than ``time`` so that it can never shadow the standard library's module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar, overload

import pandas as pd

from forecast.errors import InputError

_D = TypeVar("_D")


@overload
def to_utc_naive(ts: pd.Series) -> pd.Series: ...


@overload
def to_utc_naive(ts: pd.Timestamp | datetime) -> pd.Timestamp: ...


def to_utc_naive(ts: pd.Series | pd.Timestamp | datetime) -> pd.Series | pd.Timestamp:
    """A time (or a column of times) in UTC without a time zone.

    Args:
        ts: A timestamp, a ``datetime`` or a datetime Series; zone-aware values are converted to
            UTC, naive ones are taken as UTC and returned unchanged.

    Returns:
        The naive UTC timestamp, or the Series with a naive dtype.
    """
    if isinstance(ts, pd.Series):
        if getattr(ts.dt, "tz", None) is None:
            return ts
        return ts.dt.tz_convert("UTC").dt.tz_localize(None)
    stamp = pd.Timestamp(ts)
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def utc_now() -> pd.Timestamp:
    """Now, as a naive UTC timestamp (the warehouse's convention)."""
    return to_utc_naive(pd.Timestamp.now(tz="UTC"))


def parse_time(value: str, parameter: str = "as_of") -> pd.Timestamp:
    """Parse a time given on the command line to naive UTC.

    ``""`` and ``"nat"`` are errors, never "no limit": a missing time is ``None``, not a string.

    Args:
        value: An ISO date or timestamp, with or without an offset.
        parameter: The parameter's name, for the message (the CLI shows it as its option).

    Returns:
        The naive UTC timestamp.

    Raises:
        InputError: If ``value`` is empty or not a date.
    """
    if not value.strip():
        raise InputError("is empty", parameter=parameter)
    problem = f"{value!r} is not an ISO date or timestamp (YYYY-MM-DD[THH:MM:SS[+HH:MM]])"
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(problem, parameter=parameter) from None
    if pd.isna(ts):  # "nat" parses to NaT, which would silently disable a time limit
        raise InputError(problem, parameter=parameter)
    return to_utc_naive(ts)


def as_of_after(last_event: pd.Timestamp | datetime) -> pd.Timestamp:
    """The default as-of of a CRM whose latest event is ``last_event``: midnight after that event's day.

    The one default of every command (``score``, ``flags``, ``revenue``, ``metrics``, ``monitor``,
    ``features``) and of the API when a request gives no as-of and the service reads a warehouse.
    As of ``T`` means that everything strictly before ``T`` is known, so with this default
    everything that happened on the data's last day, at any time, is in the past: a deal closed
    at 15:00 on that day is closed, not open. (The warehouse holds no event after ``last_event``,
    so nothing later is mistaken for known.)

    Args:
        last_event: The latest event time in the data (naive UTC, or with a zone).

    Returns:
        Midnight (naive UTC) at the end of ``last_event``'s day.
    """
    return to_utc_naive(last_event).normalize() + pd.Timedelta(days=1)


def resolve_as_of(
    value: str | pd.Timestamp | datetime | None, default_source: Callable[[], _D]
) -> pd.Timestamp | _D:
    """The as-of time: ``value`` when given (parsed, naive UTC), else ``default_source()``.

    Every command reading a CRM passes its :func:`as_of_after` (``FeatureSource.default_as_of``,
    ``tracking.data.default_as_of``); an import passes now. Passing it as a callable keeps the
    default lazy (it may read the warehouse).

    Args:
        value: A time, an ISO string or ``None`` (not given).
        default_source: Called only when ``value`` is ``None``.

    Returns:
        The as-of time.

    Raises:
        InputError: If ``value`` is a string that is not a date.
    """
    if value is None:
        return default_source()
    if isinstance(value, str):
        return parse_time(value)
    return to_utc_naive(value)
