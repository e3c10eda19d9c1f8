"""Helpers shared by the reports: one row per group plus the ``(all)`` row, rates with n and CI."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from forecast.errors import InputError
from forecast.tracking.data import ALL_LABEL, GROUPINGS, TrackingData, group_values
from forecast.tracking.stats import wilson

Row = dict[str, Any]


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


def subset(frame: pd.DataFrame, by: str, group: str) -> pd.DataFrame:
    """Rows of ``frame`` in ``group`` (all rows for the ``(all)`` group; none if ``by`` is absent)."""
    if group == ALL_LABEL:
        return frame
    if by not in frame.columns:
        return frame.iloc[0:0]
    return frame[frame[by].astype(str) == group]


def per_group(
    data: TrackingData,
    by: str,
    frames: Sequence[pd.DataFrame],
    compute: Callable[[str], Row],
    *,
    include_all: bool = True,
) -> pd.DataFrame:
    """One row per group (every known rep, team, … and every value in ``frames``) plus ``(all)``.

    Args:
        data: The tracking data (for the list of reps, teams, …).
        by: The grouping column.
        frames: Frames whose values of ``by`` define groups too.
        compute: Returns the metrics of one group (called with the group label).
        include_all: Whether to append the ``(all)`` row.
    """
    groups = group_values(data, by, *frames)
    if include_all:
        groups.append(ALL_LABEL)
    rows = []
    for g in groups:
        row: Row = {by: g}
        if by == "rep":
            names = data.reps.set_index("rep_id")["name"]
            row["name"] = str(names.get(g, "")) if g != ALL_LABEL else ""
        row.update(compute(g))
        rows.append(row)
    return pd.DataFrame(rows)


def amount_sum(frame: pd.DataFrame, col: str = "amount") -> float:
    """Sum of a money column (0 when empty; missing amounts count as 0)."""
    return float(pd.to_numeric(frame[col], errors="coerce").fillna(0).sum()) if len(frame) else 0.0
