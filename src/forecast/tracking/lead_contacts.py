"""Each lead's last done activity before a cut-off, from an index of the activities built once.

The process report counts the open leads nobody contacted for two weeks, so it needs each lead's
last done activity before the period's end. Grouping ten million activities by lead for each new
period costs more than a second on a large CRM. :class:`ContactIndex` sorts the done activities
by lead and time once per activities frame; a cut-off is then one comparison of integers and one
count per lead (:meth:`ContactIndex.last_before`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking.common import memo, truth


@dataclass(frozen=True, eq=False)
class ContactIndex:
    """The done activities with a lead and a time, sorted by lead and time.

    Attributes:
        leads: The lead ids, in the order of their codes.
        starts: Where each lead's activities start in the sorted arrays (one more: the end).
        times: Each activity's time (the frame's datetime type), sorted within its lead.
    """

    leads: pd.Index
    starts: np.ndarray
    times: np.ndarray

    def last_before(self, cutoff: pd.Timestamp) -> pd.Series:
        """Each lead's last activity time before ``cutoff``, by lead id (leads without one absent)."""
        before = np.concatenate([[0], np.cumsum(self.times < cutoff.to_datetime64())])
        counts = before[self.starts[1:]] - before[self.starts[:-1]]  # within a lead, the earliest first
        seen = np.flatnonzero(counts > 0)
        last = self.times[self.starts[seen] + counts[seen] - 1]
        return pd.Series(last, index=self.leads[seen], name="occurred_at")


def contact_index(acts: pd.DataFrame) -> ContactIndex | None:
    """The frame's :class:`ContactIndex` (built once per frame); ``None`` for times with a time zone."""
    return memo(acts, "done activities by lead and time", lambda: _build(acts))


def _build(acts: pd.DataFrame) -> ContactIndex | None:
    times = acts["occurred_at"].to_numpy()
    if times.dtype.kind != "M":
        return None
    codes, leads = pd.factorize(acts["lead_id"])
    rows = np.flatnonzero(truth(acts["done"]) & (codes >= 0) & ~np.isnat(times))
    order = np.lexsort((times[rows].view(np.int64), codes[rows]))
    rows = rows[order]
    starts = np.searchsorted(codes[rows], np.arange(len(leads) + 1))
    return ContactIndex(pd.Index(leads, name="lead_id"), starts, times[rows])
