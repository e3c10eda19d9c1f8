"""Where a deal history's record of closes starts: exports that left out the closes before a date.

A CRM export often holds every deal still open on some date (the day of a migration, the first day
of an export window) with its real creation date, but none of the deals that had closed before it.
Such a history is *left-truncated*: its early deals are only the ones that stayed open until that
date, which are the slow ones. Snapshots taken before it show deals that cannot close (none did),
and deal ages and cycle lengths read from them are too long. Example: the Maven sample's deals were
engaged from 2016-10-20, but its first close is 2017-03-01; deals engaged after that close in 16
days at the median, yet none of the 1,185 engaged before it closed in up to 132 days.

:func:`outcome_record_start` tells such a history from a CRM that simply started: with the closing
curve read from the deals created after the first close (Kaplan-Meier, open deals censored), it sums
the chance that each deal created before the first close would have closed before it (its age then).
That sum is the expected number of closes the history should hold before its first one; for a CRM
that started empty it is about one (the first close comes when the first is due), and ten or more
with none seen is a record that starts at its first close (the chance of seeing none is below 1 in
20,000). Training says so in its notes (``training.datasets.resolve_horizon``), and with
``snapshots.truncated_history: read_from_first_close`` reads the history from that date only:
every deal open on a later date is in the export, so snapshots from it on are complete.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forecast.features.horizon import days_since, deal_closes, km_cdf
from forecast.features.source import FeatureSource

EXPECTED_CLOSES = 10.0
"""Closes expected before the first one (with none seen) that mark the record's start there."""


@dataclass(frozen=True)
class RecordStart:
    """Where a history whose earlier closes are missing is read from, and the evidence for it."""

    at: pd.Timestamp
    """The first midnight on or after the history's first close."""
    deals_before: int
    expected_closes: float


def outcome_record_start(src: FeatureSource, data_end: pd.Timestamp | None = None) -> RecordStart | None:
    """The first close of a deal history that holds no close before it (``None``: a complete record).

    Args:
        src: The CRM.
        data_end: What is known (default: the data's end); deals and closes after it are not read.

    Returns:
        The first midnight on or after the first close, and the evidence, where the closes expected
        before the first close (module docstring) reach :data:`EXPECTED_CLOSES`; ``None`` otherwise,
        and without any close.
    """
    end = data_end if data_end is not None else src.data_end()
    deals = deal_closes(src, end)
    if deals is None or not deals["observed"].any():
        return None
    first = pd.Timestamp(deals.loc[deals["observed"], "closed"].min())
    before = (deals["created"] < first).to_numpy()
    after = ~before
    if not before.any() or not after.any():
        return None
    days = deals["days"].to_numpy(dtype=float)[after]
    ages = days_since(deals["created"], first)[before]
    expected = float(km_cdf(days, deals["observed"].to_numpy(dtype=bool)[after], ages).sum())
    if expected < EXPECTED_CLOSES:
        return None
    # Snapshots are taken at midnight: the first one complete is the first close's day, or the next
    # day if it closed during it (the export may have dropped closes earlier that day).
    return RecordStart(at=first.ceil("D"), deals_before=int(before.sum()), expected_closes=expected)
