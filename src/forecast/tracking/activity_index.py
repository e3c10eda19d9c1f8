"""The done activities of a frame as numpy columns of integer codes, built once per frame.

The activity effectiveness report reads, for each period asked for, the period's done activities
(reply rates, call durations) and a 26-week window of the outbound ones (rep-weeks), each split by
group. On a large CRM (ten million activities) taking those rows out of the frame and comparing
their text in pandas costs seconds for every new period. :class:`ActivityIndex` holds what those
figures read of every done activity, coded once; a period is then a comparison of integers, and a
group's rows a split of integer codes (:func:`~forecast.tracking.common.split_codes`). The values
are those the pandas expressions give row by row, so the figures are the same to the bit
(``tests/unit/test_tracking_effectiveness.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast.tracking.common import memo, memo_held, rows_of_columns, truth

CALL, EMAIL, OTHER = 0, 1, 2
"""The codes of :attr:`ActivityIndex.kinds`."""

_NS_PER = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
"""Nanoseconds per unit of the datetime units the index takes."""


@dataclass(frozen=True, eq=False)
class ActivityIndex:
    """The done activities with a time, in the frame's order, as numpy columns.

    Attributes:
        times: Each activity's time as an integer of the frame's time unit.
        per_ns: Nanoseconds per unit of ``times``.
        rows: Each activity's position in the frame.
        outbound: Whether its direction is ``outbound``.
        kinds: :data:`CALL`, :data:`EMAIL` or :data:`OTHER` (its ``type``).
        weeks: Its ISO week: the day number (since 1970-01-01) of its Monday.
        reps: Its rep's code (-1: no rep).
        rep_ids: The rep ids the codes stand for.
        reps_are_text: Whether every rep id is text (the rep-weeks are counted in pandas otherwise).
        replied: Its ``email_replied``: 1 true, 0 false, -1 unknown.
        minutes: Its duration in minutes where it is a completed call with a duration, else NaN.
    """

    times: np.ndarray
    per_ns: int
    rows: np.ndarray
    outbound: np.ndarray
    kinds: np.ndarray
    weeks: np.ndarray
    reps: np.ndarray
    rep_ids: np.ndarray
    reps_are_text: bool
    replied: np.ndarray
    minutes: np.ndarray

    def within(self, start: pd.Timestamp, end: pd.Timestamp) -> np.ndarray:
        """The positions (ascending) of the activities in ``[start, end)``, times compared as pandas does."""
        times = self.times
        return np.flatnonzero((times >= _ceil(start, self.per_ns)) & (times < _ceil(end, self.per_ns)))


def _ceil(when: pd.Timestamp, per_ns: int) -> int:
    """The first time in units of ``per_ns`` ns at or after ``when`` (``t >= when`` iff ``t >= it``)."""
    return -(-int(when.value) // per_ns)


def activity_index(acts: pd.DataFrame) -> ActivityIndex | None:
    """The frame's :class:`ActivityIndex` (built once per frame); ``None`` for times with a zone.

    The frame must hold the prepared activities' columns (``occurred_at``, ``done``, ``direction``,
    ``type``, ``rep_id``, ``email_replied``, ``outcome``, ``duration_seconds``).
    """
    return memo(acts, _NAME, lambda: _build(acts))


def built_activity_index(acts: pd.DataFrame) -> ActivityIndex | None:
    """The frame's :class:`ActivityIndex` where a report has built it already, else ``None``.

    For a report that reads a few periods' done activities: building the index (seconds on ten
    million activities) pays off over many periods, not over one, so such a report uses it only
    once the effectiveness report (the dashboard's warm-up) has built it.
    """
    held: ActivityIndex | None = memo_held(acts, _NAME)
    return held


def done_within(
    acts: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, columns: Sequence[str] | None = None
) -> pd.DataFrame:
    """The done activities in ``[start, end)``, from the index where it is built.

    The rows ``acts[acts["done"] & (acts["occurred_at"] >= start) & (acts["occurred_at"] < end)]``
    gives, in the frame's order; with ``columns``, only those of them the frame has (a quarter of
    ten million activities: a tenth of a second less per column left out).
    """
    index = built_activity_index(acts)
    if index is None:
        times = acts["occurred_at"]
        within = acts["done"] & (times >= start) & (times < end)
        if columns is None:
            return acts[within]
        # the columns taken at those rows alone: a filter of the whole frame would first join its
        # columns into blocks (a second for a quarter's activities of a large CRM, read column by column)
        return rows_of_columns(acts, np.flatnonzero(truth(within)), columns)
    rows = index.rows[index.within(start, end)]
    return acts.iloc[rows] if columns is None else rows_of_columns(acts, rows, columns)


_NAME = "done activities index"


def _build(acts: pd.DataFrame) -> ActivityIndex | None:
    """:func:`activity_index`, computed (``None`` where it does not apply)."""
    times = acts["occurred_at"].to_numpy()
    if not isinstance(acts["occurred_at"].dtype, np.dtype) or times.dtype.kind != "M":
        return None  # a zone, or Arrow's timestamps
    try:  # the pandas path converts the period's rows alone: let it say what does not convert
        duration = acts["duration_seconds"].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        return None
    unit, count = np.datetime_data(times.dtype)
    if unit not in _NS_PER:
        return None
    rows = _narrow(np.flatnonzero(truth(acts["done"]) & ~np.isnat(times)), len(acts))
    stamps = times[rows]
    kind = acts["type"]
    kinds = np.full(len(acts), OTHER, dtype=np.int8)
    kinds[truth(kind == "call")] = CALL
    kinds[truth(kind == "email")] = EMAIL
    reps, rep_ids = pd.factorize(acts["rep_id"].to_numpy()[rows])
    replied = acts["email_replied"]
    known = replied.notna().to_numpy(dtype=bool, na_value=False)
    answers = np.full(len(acts), -1, dtype=np.int8)
    answers[known] = replied[known].astype(bool).to_numpy()
    connected = truth((kind == "call") & (acts["outcome"] == "completed") & acts["duration_seconds"].notna())
    minutes = np.where(connected, duration / 60, np.nan)
    days = stamps.astype("datetime64[D]").astype(np.int64)
    return ActivityIndex(
        times=stamps.view(np.int64),
        per_ns=_NS_PER[unit] * count,
        rows=rows,
        outbound=truth(acts["direction"] == "outbound")[rows],
        kinds=kinds[rows],
        weeks=(days - (days + 3) % 7).astype(np.int32),  # (days since 1970: within 5.8 million years)
        reps=_narrow(reps, len(rep_ids)),
        rep_ids=np.asarray(rep_ids, dtype=object),
        reps_are_text=plain_texts(acts["rep_id"], rep_ids),
        replied=answers[rows],
        minutes=minutes[rows],
    )


def _narrow(values: np.ndarray, bound: int) -> np.ndarray:
    """Integers below ``bound`` (and at least -1) in 32 bits where they fit (ten million: 40 MB, not 80)."""
    return values.astype(np.int32 if bound < 2**31 else np.int64, copy=False)


def plain_texts(column: pd.Series, uniques: Any) -> bool:
    """Whether ``column`` holds text (or missing values) as plain objects: its ``uniques`` all ``str``.

    Not a categorical: a pandas grouping of one counts every category, seen or not.
    """
    return column.dtype == np.dtype(object) and all(isinstance(u, str) for u in uniques)


def coded_texts(acts: pd.DataFrame, by: str) -> tuple[np.ndarray, np.ndarray]:
    """Each activity's ``by`` as text, coded (:func:`text_codes`), kept once per frame and column."""
    return memo(acts, f"activities' {by} as text, coded", lambda: text_codes(acts[by]))


def text_codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each value of ``column`` as text (``astype(str)``), coded: every row's code and the distinct texts.

    The texts sorted (as a pandas grouping of the text sorts them), without writing every row as
    text. A column of text is coded as it is (its missing values as ``astype(str)`` writes them:
    ``None``, ``nan``, ``<NA>``); any other is written as text first, so values that compare equal
    but are written apart (``1``, ``1.0``, ``True``) stay apart, as ``astype(str)`` keeps them.
    """
    codes, uniques = pd.factorize(column)
    texts = np.asarray(uniques, dtype=object)
    if not plain_texts(column, uniques):
        codes, written = pd.factorize(column.astype(str).to_numpy(dtype=object))
        texts = np.asarray(written, dtype=object)
    missing = codes < 0
    if missing.any():  # a missing value's text as astype(str) writes it
        more, extra = pd.factorize(column[missing].astype(str).to_numpy(dtype=object))
        codes[missing] = more + len(texts)
        texts = np.concatenate([texts, np.asarray(extra, dtype=object)])
    distinct, canon = np.unique(texts, return_inverse=True)
    return _narrow(canon.take(codes), len(distinct)), distinct
