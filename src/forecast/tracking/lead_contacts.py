"""Each lead's (or prospect's) last done activity before a cut-off, from codes kept once.

The process report counts the open leads nobody contacted for two weeks, so it needs each lead's
last done activity before the period's end; the Prospects list needs each open lead's and deal's.
Grouping ten million activities by lead in pandas for each new period costs more than a second on
a large CRM, most of it finding the groups again. :class:`ContactIndex` keeps each done activity's
lead (or prospect) as a code, once per activities frame; a cut-off is then one comparison of times
and one maximum per code (:meth:`ContactIndex.last_before`). The Prospects list's behaviour
columns read the engagement events the same way (:class:`EngagementIndex`): each lead's events of a
kind in the 30 days before the cut-off, and its last event before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.tracking.common import memo, truth

_NONE = np.iinfo(np.int64).min
"""No time yet (the smallest integer time, ``NaT``'s; a missing time is never kept)."""


@dataclass(frozen=True, eq=False)
class ContactIndex:
    """The done activities with a key (their lead, or their prospect) and a time, in the frame's order.

    Attributes:
        leads: The keys (lead ids, or deal and lead ids), in the order of their codes.
        codes: Each activity's key code.
        times: Each activity's time (the frame's datetime type).
    """

    leads: pd.Index
    codes: np.ndarray
    times: np.ndarray

    def last_before(self, cutoff: pd.Timestamp) -> pd.Series:
        """Each key's last activity time before ``cutoff``, by key (keys without one absent)."""
        latest = self.latest_before(cutoff)
        seen = np.flatnonzero(latest != _NONE)
        return pd.Series(latest[seen].view(self.times.dtype), index=self.leads[seen], name="occurred_at")

    def latest_before(self, cutoff: pd.Timestamp) -> np.ndarray:
        """Each key's last activity time before ``cutoff`` as an integer, by code (none: NaT's integer)."""
        before = self.times < cutoff.to_datetime64()
        latest = np.full(len(self.leads), _NONE, dtype=np.int64)
        np.maximum.at(latest, self.codes[before], self.times[before].view(np.int64))
        return latest

    def looked_up(self, latest: np.ndarray, keys: pd.Series) -> pd.Series:
        """``keys.map(last_before(cutoff))`` from :meth:`latest_before`'s ``latest``, without a new index.

        The keys' positions come from :attr:`leads`, whose lookup table is built once; a key
        without a time (or missing, or unknown) gets ``NaT``, as the map gives it.
        """
        at = self.leads.get_indexer(pd.Index(keys))
        values = np.full(len(at), _NONE, dtype=np.int64)  # NaT is the smallest integer
        found = at >= 0
        values[found] = latest[at[found]]  # (no key at all: every value NaT)
        return pd.Series(values.view(self.times.dtype), index=keys.index, name=keys.name)


def contact_index(acts: pd.DataFrame) -> ContactIndex | None:
    """The frame's :class:`ContactIndex` by lead (built once per frame); ``None`` for times with a zone."""
    return memo(acts, "done activities' lead codes", lambda: _build(acts, acts["lead_id"], "lead_id"))


def prospect_index(acts: pd.DataFrame) -> ContactIndex | None:
    """The frame's :class:`ContactIndex` by prospect: the deal of an activity on one, else its lead.

    Built once per frame; ``None`` for times with a zone.
    """

    def build() -> ContactIndex | None:
        deal = acts["opportunity_id"]
        entity = np.where(deal.notna(), deal, acts["lead_id"])
        return _build(acts, pd.Series(entity, index=acts.index), "entity")

    return memo(acts, "done activities' prospect codes", build)


@dataclass(frozen=True, eq=False)
class EngagementIndex:
    """The engagement events with a lead and a time, each event's lead and type as codes.

    Attributes:
        contacts: The events as a :class:`ContactIndex` by lead (in the frame's order).
        types: Each of those events' type code.
        type_names: The types, in the order of their codes.
    """

    contacts: ContactIndex
    types: np.ndarray
    type_names: np.ndarray

    def counts_within(
        self, start: pd.Timestamp, end: pd.Timestamp, kinds: Sequence[tuple[str, ...]]
    ) -> list[np.ndarray]:
        """Each lead's events of each of ``kinds`` (types) from ``start`` until before ``end``, by code."""
        times = self.contacts.times
        inside = np.flatnonzero((times >= start.to_datetime64()) & (times < end.to_datetime64()))
        codes, types = self.contacts.codes[inside], self.types[inside]
        out = []
        for kind in kinds:
            wanted = np.append(np.isin(self.type_names, list(kind)), False)  # a missing type (-1): none
            out.append(np.bincount(codes[wanted[types]], minlength=len(self.contacts.leads)))
        return out


def engagement_index(events: pd.DataFrame) -> EngagementIndex | None:
    """The frame's :class:`EngagementIndex` (built once per frame); ``None`` for times with a zone.

    Events without a lead or a time are left out (a grouping by lead leaves them out too).
    """

    def build() -> EngagementIndex | None:
        times = events["occurred_at"].to_numpy()
        if not isinstance(events["occurred_at"].dtype, np.dtype) or times.dtype.kind != "M":
            return None  # a zone, or Arrow's timestamps (the pandas grouping keeps their type)
        codes, ids = pd.factorize(events["lead_id"])
        types, names = pd.factorize(events["type"])
        rows = np.flatnonzero((codes >= 0) & ~np.isnat(times))
        narrow = np.int32 if len(ids) < 2**31 else np.int64
        contacts = ContactIndex(pd.Index(ids, name="lead_id"), codes[rows].astype(narrow), times[rows])
        return EngagementIndex(contacts, types[rows], np.asarray(names, dtype=object))

    return memo(events, "engagement events' lead and type codes", build)


def _build(acts: pd.DataFrame, keys: pd.Series, name: str) -> ContactIndex | None:
    """The :class:`ContactIndex` of ``acts`` by ``keys`` (named ``name``); ``None`` where not applicable."""
    times = acts["occurred_at"].to_numpy()
    if not isinstance(acts["occurred_at"].dtype, np.dtype) or times.dtype.kind != "M":
        return None  # a zone, or Arrow's timestamps (the pandas grouping keeps their type)
    codes, ids = pd.factorize(keys)
    rows = np.flatnonzero(truth(acts["done"]) & (codes >= 0) & ~np.isnat(times))
    narrow = np.int32 if len(ids) < 2**31 else np.int64
    return ContactIndex(pd.Index(ids, name=name), codes[rows].astype(narrow), times[rows])
