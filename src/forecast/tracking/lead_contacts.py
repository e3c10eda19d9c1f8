"""Each lead's last done activity before a cut-off, from the activities' lead codes kept once.

The process report counts the open leads nobody contacted for two weeks, so it needs each lead's
last done activity before the period's end. Grouping ten million activities by lead in pandas for
each new period costs more than a second on a large CRM, most of it finding the groups again.
:class:`ContactIndex` keeps each done activity's lead as a code, once per activities frame; a
cut-off is then one comparison of times and one maximum per code
(:meth:`ContactIndex.last_before`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking.common import memo, truth

_NONE = np.iinfo(np.int64).min
"""No time yet (the smallest integer time; a missing time is never kept)."""


@dataclass(frozen=True, eq=False)
class ContactIndex:
    """The done activities with a lead and a time, in the frame's order.

    Attributes:
        leads: The lead ids, in the order of their codes.
        codes: Each activity's lead code.
        times: Each activity's time (the frame's datetime type).
    """

    leads: pd.Index
    codes: np.ndarray
    times: np.ndarray

    def last_before(self, cutoff: pd.Timestamp) -> pd.Series:
        """Each lead's last activity time before ``cutoff``, by lead id (leads without one absent)."""
        before = self.times < cutoff.to_datetime64()
        latest = np.full(len(self.leads), _NONE, dtype=np.int64)
        np.maximum.at(latest, self.codes[before], self.times[before].view(np.int64))
        seen = np.flatnonzero(latest != _NONE)
        return pd.Series(latest[seen].view(self.times.dtype), index=self.leads[seen], name="occurred_at")


def contact_index(acts: pd.DataFrame) -> ContactIndex | None:
    """The frame's :class:`ContactIndex` (built once per frame); ``None`` for times with a time zone."""
    return memo(acts, "done activities' lead codes", lambda: _build(acts))


def _build(acts: pd.DataFrame) -> ContactIndex | None:
    """:func:`contact_index`, computed (``None`` where it does not apply)."""
    times = acts["occurred_at"].to_numpy()
    if times.dtype.kind != "M":
        return None
    codes, leads = pd.factorize(acts["lead_id"])
    rows = np.flatnonzero(truth(acts["done"]) & (codes >= 0) & ~np.isnat(times))
    narrow = np.int32 if len(leads) < 2**31 else np.int64
    return ContactIndex(pd.Index(leads, name="lead_id"), codes[rows].astype(narrow), times[rows])
