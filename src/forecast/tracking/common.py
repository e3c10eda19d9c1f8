"""Helpers shared by the reports: one row per group plus the ``(all)`` row, rates with n and CI."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from forecast.data.frames import column_at
from forecast.errors import InputError
from forecast.tracking.data import ALL_LABEL, GROUPINGS, TrackingData, group_values
from forecast.tracking.stats import wilson

Row = dict[str, Any]
T = TypeVar("T")


class GroupingError(InputError):
    """A grouping a report cannot use (e.g. product for activity metrics)."""


def check_grouping(report: str, by: str, allowed: Sequence[str], why: str = "") -> None:
    """Raise :class:`GroupingError` unless ``by`` is one of ``allowed``."""
    if by not in GROUPINGS:
        raise GroupingError(f"{by!r}: use one of {', '.join(GROUPINGS)}", parameter="by")
    if by not in allowed:
        reason = f" ({why})" if why else ""
        raise GroupingError(
            f"the {report} report cannot be grouped by {by}{reason}; use one of {', '.join(allowed)}"
        )


def add_rate(row: Row, name: str, successes: float, n: float) -> None:
    """Put ``name`` (the rate), ``name_n``, ``name_lo`` and ``name_hi`` (Wilson 95%) in ``row``."""
    r = wilson(successes, n)
    row[name] = r.rate
    row[f"{name}_n"] = r.n
    row[f"{name}_lo"] = r.lo
    row[f"{name}_hi"] = r.hi


_MEMO: dict[tuple[int, str], tuple[weakref.ref[pd.DataFrame], Any]] = {}
_MEMO_LOCK = threading.RLock()
"""Re-entrant: dropping a kept value may free a frame whose own entry is then forgotten (a weakref
callback, in the same thread, wherever the last reference went)."""


def by_key(frame: pd.DataFrame, key: str, *columns: str) -> pd.DataFrame:
    """``frame``'s ``columns`` indexed by its ``key`` column, kept while the frame lives.

    A report that looks up leads or deals by id for every period need not index a million rows
    each time; the frame must not change afterwards.
    """
    return memo(frame, f"{columns} by {key}", lambda: frame[[key, *columns]].set_index(key))


def memo_held(frame: pd.DataFrame, name: str) -> Any:
    """What :func:`memo` keeps for ``frame`` and ``name``, where it was computed already (else ``None``).

    For a faster path that pays off only once something else has built what it reads.
    """
    with _MEMO_LOCK:
        held = _MEMO.get((id(frame), name))
        return held[1] if held is not None and held[0]() is frame else None


def memo(frame: pd.DataFrame, name: str, compute: Callable[[], T]) -> T:
    """``compute()``, done once per ``frame`` object and ``name`` while the frame lives.

    For what a report derives from a frame of :class:`TrackingData` once per group (thousands of
    reps on a large CRM); the frame must not change afterwards (the reports never change one).
    """
    key = (id(frame), name)
    with _MEMO_LOCK:
        held = _MEMO.get(key)
        if held is not None and held[0]() is frame:
            value: T = held[1]
            return value
    value = compute()

    def forget(_: object, key: tuple[int, str] = key) -> None:
        with _MEMO_LOCK:
            gone = _MEMO.pop(key, None)
        del gone  # dropped outside the lock (it may hold frames with entries of their own)

    with _MEMO_LOCK:
        gone = _MEMO.get(key)  # a dead frame's entry not yet forgotten
        _MEMO[key] = (weakref.ref(frame, forget), value)
    del gone
    return value


def positions(labels: pd.Series) -> dict[str, np.ndarray]:
    """The row positions (ascending) of each value of ``labels`` (as text)."""
    codes, uniques = pd.factorize(labels.astype(str).to_numpy())
    return split_codes(codes, uniques)


def split_codes(codes: np.ndarray, names: Any) -> dict[str, np.ndarray]:
    """The row positions (ascending) of each name's rows, given each row's code into ``names``.

    In the order of ``names``; a name without rows is left out.
    """
    rows = zip(names, code_rows(codes, len(names)), strict=True)
    return {str(name): at for name, at in rows if len(at)}


def code_rows(codes: np.ndarray, n: int) -> list[np.ndarray]:
    """The row positions (ascending) of each code ``0 … n - 1`` (a missing code, ``-1``, in none)."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n)]


def key_runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions of ``keys`` sorted by key (each key's in their order) and where each key's run starts.

    ``order[starts]`` is each distinct key's first position; a run ends where the next begins.
    """
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(order) else order
    return order, starts


def subset(frame: pd.DataFrame, by: str, group: str) -> pd.DataFrame:
    """Rows of ``frame`` in ``group`` (all rows for the ``(all)`` group; none if ``by`` is absent).

    The same rows in the same order as ``frame[frame[by].astype(str) == group]``.
    """
    if group == ALL_LABEL:
        return frame
    if by not in frame.columns:
        return frame.iloc[0:0]
    if len(frame) < _SPLIT_FROM:
        return frame[frame[by].astype(str) == group]
    rows = memo(frame, f"rows by {by}", lambda: positions(frame[by])).get(group)
    return frame.iloc[rows] if rows is not None else frame.iloc[0:0]


_SPLIT_FROM = 2_000
"""Below this many rows a frame is compared directly (splitting it would cost more than it saves)."""


def per_group(
    data: TrackingData,
    by: str,
    frames: Sequence[pd.DataFrame],
    compute: Callable[[str], Row],
    *,
    include_all: bool = True,
    only: Collection[str] | None = None,
) -> pd.DataFrame:
    """One row per group (every known rep, team, … and every value in ``frames``) plus ``(all)``.

    Args:
        data: The tracking data (for the list of reps, teams, …).
        by: The grouping column.
        frames: Frames whose values of ``by`` define groups too.
        compute: Returns the metrics of one group (called with the group label).
        include_all: Whether to append the ``(all)`` row.
        only: Compute only these groups' rows (and ``(all)``): the rows of the whole table whose
            group is one of them, in its order (``None``: every group).
    """
    return rows_per_group(data.reps, by, group_values(data, by, *frames), compute, include_all, only)


def rows_per_group(
    reps: pd.DataFrame,
    by: str,
    groups: Sequence[str],
    compute: Callable[[str], Row],
    include_all: bool = True,
    only: Collection[str] | None = None,
) -> pd.DataFrame:
    """:func:`per_group`'s table for the ``groups`` given (in their order), named from ``reps``."""
    chosen = [g for g in groups if only is None or g in only]
    if include_all:
        chosen.append(ALL_LABEL)
    rows = []
    names = reps.set_index("rep_id")["name"] if by == "rep" else None
    for g in chosen:
        row: Row = {by: g}
        if names is not None:
            row["name"] = str(names.get(g, "")) if g != ALL_LABEL else ""
        row.update(compute(g))
        rows.append(row)
    return pd.DataFrame(rows)


def amount_sum(frame: pd.DataFrame, col: str = "amount") -> float:
    """Sum of a money column (0 when empty; missing amounts count as 0)."""
    return float(pd.to_numeric(frame[col], errors="coerce").fillna(0).sum()) if len(frame) else 0.0


_NONE = np.zeros(0, dtype=np.int64)


def group_rows(frame: pd.DataFrame, by: str) -> Callable[[str], np.ndarray]:
    """The row positions (ascending) of a group in ``frame``.

    Every row for ``(all)``; none for any other group when ``frame`` has no ``by`` column.
    """
    return rows_of_groups(positions(frame[by]) if by in frame.columns else {}, len(frame))


def rows_of_groups(split: dict[str, np.ndarray], n: int) -> Callable[[str], np.ndarray]:
    """A group's row positions from ``split`` (each group's rows): all ``n`` for ``(all)``, none if absent."""
    every = np.arange(n)

    def rows(group: str) -> np.ndarray:
        return every if group == ALL_LABEL else split.get(group, _NONE)

    return rows


def amounts(frame: pd.DataFrame) -> np.ndarray:
    """The ``amount`` column as floats, a missing or unreadable amount as 0."""
    return pd.to_numeric(frame["amount"], errors="coerce").fillna(0).to_numpy(dtype=float)


def amount_at(amounts: np.ndarray, rows: np.ndarray) -> float:
    """The sum of ``amounts`` at ``rows`` (0 when none), as :func:`amount_sum`."""
    return float(amounts[rows].sum()) if len(rows) else 0.0


def rows_of_columns(frame: pd.DataFrame, rows: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """The ``rows`` (positions) of those of ``columns`` that ``frame`` has, in the frame's order.

    Each column's values are taken at ``rows`` alone: ``frame.iloc[rows, positions]`` may take
    the columns of every row first, and ``frame.iloc[rows]`` takes every column (seconds, and a
    tenth of a second, on a quarter of ten million activities).
    """
    wanted = set(columns)
    if not frame.columns.is_unique:  # a name that stands for several columns: the frame's own take
        return narrow(frame.iloc[rows], *columns)
    index = frame.index[rows]
    taken = {c: column_at(frame[c], rows, index) for c in frame.columns if c in wanted}
    return pd.DataFrame(taken, index=index, columns=list(taken))


def narrow(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """``frame`` with only those of ``columns`` it has (a group's rows are then a cheap take)."""
    return frame[[c for c in dict.fromkeys(columns) if c in frame.columns]]


def truth(mask: pd.Series) -> np.ndarray:
    """A boolean mask as numpy, a missing value (pandas' ``NA``) as False, as a pandas filter takes it."""
    return mask.to_numpy(dtype=bool, na_value=False)
