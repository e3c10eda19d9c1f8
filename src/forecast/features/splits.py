"""Time-based train / validation / test splits of a snapshot table, with no entity in two splits.

Entities are ordered by their first snapshot and cut at two dates (by row share). Each entity
belongs to the split where its first snapshot falls; its later snapshots that fall into a later
split's window are dropped, so every split holds whole-entity histories and the splits follow each
other in time.

A purge gap (set it to the label horizon) drops the last ``gap_days`` before the test cut from
the earlier splits: a row's label needs ``horizon`` days after its as_of to be known, so without
the gap the training labels would be read from the test period — data a model trained at the cut
could not have had. ``valid_gap_days`` does the same before the validation cut (default 0: the
validation rows only steer early stopping and calibration, and a full gap there would leave
little validation data on a short history).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "valid", "test")


@dataclass
class Splits:
    """Row positions of each split and what they cover.

    Attributes:
        train: Row positions (into the input frame) of the training split.
        valid: Row positions of the validation split.
        test: Row positions of the test split.
        cuts: The two cut dates (validation starts at the first, test at the second).
        gap_days: The purge gap before the test cut.
        valid_gap_days: The purge gap before the validation cut.
        dropped_rows: Rows in no split (an entity's snapshots after its split, or inside a gap).
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    cuts: tuple[pd.Timestamp, pd.Timestamp]
    gap_days: float
    valid_gap_days: float
    dropped_rows: int
    _ranges: dict[str, dict[str, Any]]

    def ranges(self) -> dict[str, dict[str, Any]]:
        """Per split: rows, entities, first and last as_of (for logs and MLflow)."""
        return self._ranges

    def summary(self) -> dict[str, Any]:
        """Everything a trained model logs about its splits."""
        return {
            "cuts": [c.isoformat() for c in self.cuts],
            "gap_days": self.gap_days,
            "valid_gap_days": self.valid_gap_days,
            "dropped_rows": self.dropped_rows,
            "splits": self._ranges,
        }


def time_splits(
    frame: pd.DataFrame,
    id_column: str,
    *,
    time_column: str = "as_of",
    valid_fraction: float = 0.15,
    test_fraction: float = 0.15,
    gap_days: float = 0.0,
    valid_gap_days: float = 0.0,
) -> Splits:
    """Split ``frame`` by time with whole entities per split.

    Args:
        frame: Snapshot rows.
        id_column: The entity id column.
        time_column: The as_of column.
        valid_fraction: Share of rows (by time) for validation before entity assignment; with a
            gap, the validation split keeps this share relative to the training split (of the
            rows before the gap, ``valid_fraction / (1 - test_fraction)``).
        test_fraction: Share of rows (by time) for the test.
        gap_days: Purge gap before the test cut (the label horizon for an honest test).
        valid_gap_days: Purge gap before the validation cut.

    Returns:
        The splits.

    Raises:
        ValueError: Bad fractions, too few distinct dates, or a split left empty (too short a
            history for the gap).
    """
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in (0, 1) and sum to less than 1")
    times = pd.to_datetime(frame[time_column]).reset_index(drop=True)
    dates = np.sort(times.unique())
    if len(dates) < 3:
        raise ValueError(f"need at least 3 distinct {time_column} dates for a time split, got {len(dates)}")
    first_seen = times.groupby(frame[id_column].reset_index(drop=True)).transform("min")
    # Cut on when entities first appear: a split's rows are its entities' rows.
    seen = np.sort(first_seen.to_numpy())
    n = len(seen)
    c2 = _cut(seen, dates, int(n * (1 - test_fraction)), first=2)
    # The validation window ends where the test gap begins. It takes its share of the rows left
    # before the gap (valid : train as valid_fraction : the rest), not of all rows: sized on all
    # rows, a long gap left the training split a sliver of the history.
    before_gap = int(np.searchsorted(seen, np.datetime64(c2 - pd.Timedelta(days=gap_days)), side="left"))
    share = valid_fraction / (1.0 - test_fraction)
    c1 = _cut(seen, dates, before_gap - round(before_gap * share), first=1)
    c1 = min(c1, pd.Timestamp(dates[np.searchsorted(dates, np.datetime64(c2)) - 1]))
    gap, vgap = pd.Timedelta(days=gap_days), pd.Timedelta(days=valid_gap_days)
    window = np.select([times < c1, times < c2], [0, 1], 2)
    home = np.select([first_seen < c1, first_seen < c2], [0, 1], 2)
    in_gap = ((window == 0) & (times >= min(c1, c2 - gap) - vgap)) | ((window == 1) & (times >= c2 - gap))
    keep = (window == home) & ~in_gap.to_numpy()
    parts = [np.flatnonzero(keep & (home == k)) for k in range(3)]
    for name, idx in zip(SPLIT_NAMES, parts, strict=True):
        if len(idx) == 0:
            raise ValueError(
                f"the {name} split is empty (cuts at {c1.date()} and {c2.date()}, gap {gap_days:g} days): "
                "the data spans too little time for these fractions and gap"
            )
    ids = frame[id_column].reset_index(drop=True)
    ranges = {
        name: {
            "rows": len(idx),
            "entities": int(ids.iloc[idx].nunique()),
            "from": None if len(idx) == 0 else times.iloc[idx].min().isoformat(),
            "to": None if len(idx) == 0 else times.iloc[idx].max().isoformat(),
        }
        for name, idx in zip(SPLIT_NAMES, parts, strict=True)
    }
    return Splits(
        parts[0], parts[1], parts[2], (c1, c2), gap_days, valid_gap_days, int((~keep).sum()), ranges
    )


def summary_test_cut(summary: Mapping[str, Any] | None) -> pd.Timestamp | None:
    """The test cut recorded in a run's split summary (``method`` ``time``, ``cuts``).

    Rows dated at or after it were never trained or calibrated on by that run's evaluation model.

    Returns:
        ``None`` when the summary is missing or the split was not in time.
    """
    if not summary or summary.get("method") != "time":
        return None
    cuts = summary.get("cuts") or []
    return pd.Timestamp(cuts[1]) if len(cuts) >= 2 else None


def _cut(sorted_times: np.ndarray, dates: np.ndarray, position: int, first: int) -> pd.Timestamp:
    """The date at a row position, kept strictly inside the date range."""
    value = sorted_times[min(max(position, 0), len(sorted_times) - 1)]
    value = max(value, dates[first])
    return pd.Timestamp(min(value, dates[-1]))


def _next_date(dates: np.ndarray, after: pd.Timestamp) -> pd.Timestamp:
    later = dates[dates > np.datetime64(after)]
    return pd.Timestamp(later[0]) if len(later) else pd.Timestamp(dates[-1])
