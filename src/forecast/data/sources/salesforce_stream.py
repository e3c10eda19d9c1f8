"""Read a Salesforce export in bounded memory: each object file mapped chunk by chunk.

:func:`forecast.data.sources.salesforce.load` reads every object file whole and maps it whole. A
large export streams instead (:func:`open_export`): each file is opened with
:func:`~forecast.data.chunked.open_chunks` (the same checks and messages), and each chunk of rows
goes through the very ``map_*`` function of :mod:`.salesforce` as it is read. The mapped chunks
carry the Salesforce file and its data-row numbers, so the streamed canonical validation
(:func:`forecast.data.staged.stage_files`) stages them, applies every rule and names the Salesforce
file, row and column in each reject, exactly as for the whole-file adapter.

Every mapping is row by row, except:

- ``opportunities.lead_id`` is the first Lead whose ConvertedOpportunityId is the deal: a
  :class:`ConvertedLeads` lookup is filled while Lead.csv streams (it is read before
  Opportunity.csv); it holds one entry per distinct ConvertedOpportunityId (the converted leads
  only, never the other rows or columns of Lead.csv);
- events need ``as_of`` (one moment, fixed when the export is opened);
- which columns a mapping consumes or keeps as extras, and whether IsClosed/IsWon or an event's
  start columns exist, depend on the file's header only, the same for every chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecast.data.chunked import TableChunks, open_chunks
from forecast.data.pipeline import SALESFORCE_PIPELINE, SalesPipeline
from forecast.data.readers import find_table_file
from forecast.data.sources import salesforce
from forecast.data.sources.base import SourceError

Mapper = Callable[[pd.DataFrame], pd.DataFrame]
"""A Salesforce frame (Ids already 18 characters) -> its canonical frame, row for row."""


class ConvertedLeads:
    """Opportunity Id -> the first Lead converted into it, filled from Lead.csv chunk by chunk.

    It holds one ``ConvertedOpportunityId -> Lead Id`` pair per distinct converted-into deal (the
    first in file order), about 200 bytes each; leads that were not converted take no room. If
    the deals are mapped before Lead.csv has been read to its end, the missing part is read then
    (two columns, chunk by chunk).
    """

    def __init__(self, leads: TableChunks | None) -> None:
        self._leads = leads
        self._by_opportunity: dict[object, object] = {}
        self._rows_seen = 0
        self._complete = leads is None or "ConvertedOpportunityId" not in leads.columns

    def add(self, first: int, leads: pd.DataFrame) -> None:
        """Record the converted leads of one chunk (``first``: its first data row, from 1)."""
        if self._complete or first != self._rows_seen + 1:
            return  # already known, or not the next chunk (then read again in :meth:`mapping`)
        linked = leads.loc[leads["ConvertedOpportunityId"].notna(), ["ConvertedOpportunityId", "Id"]]
        for opportunity, lead in zip(linked["ConvertedOpportunityId"], linked["Id"], strict=True):
            self._by_opportunity.setdefault(opportunity, lead)
        self._rows_seen += len(leads)

    def finish(self) -> None:
        """Lead.csv was read to its end."""
        self._complete = True

    def mapping(self) -> dict[object, object]:
        """The whole lookup (reading the rest of Lead.csv first if needed)."""
        if not self._complete and self._leads is not None:
            for first, frame in self._leads:
                if first > self._rows_seen:
                    self.add(first, salesforce._normalise_ids(frame))
            self._complete = True
        return self._by_opportunity


@dataclass
class MappedChunks(TableChunks):
    """One Salesforce object file opened for chunked reading, each chunk mapped to canonical.

    ``path`` is the Salesforce file and row numbers are its own; ``columns`` are the mapped
    (canonical, then extra) columns, known from the header.

    Attributes:
        source: The Salesforce file opened for chunked reading.
        mapper: Its ``map_*`` function.
        on_chunk: Called with ``(first row, normalised Salesforce chunk)`` before mapping.
        on_end: Called when the file has been read to its end.
    """

    source: TableChunks
    mapper: Mapper
    on_chunk: Callable[[int, pd.DataFrame], None] | None = None
    on_end: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """Yield ``(first data row number, mapped chunk)``."""
        for first, frame in self.source:
            ids = salesforce._normalise_ids(frame.reset_index(drop=True))
            if self.on_chunk is not None:
                self.on_chunk(first, ids)
            yield first, self.mapper(ids)
        if self.on_end is not None:
            self.on_end()


@dataclass
class StreamedExport:
    """A Salesforce export opened for streaming.

    Attributes:
        files: ``(canonical table, mapped file)`` in the whole-file adapter's order (User, Account,
            Lead, Opportunity, OpportunityHistory, Task, Event).
        notes: The adapter's notes (:data:`salesforce.NOTES` and the file notes).
        pipeline: :data:`SALESFORCE_PIPELINE`.
    """

    files: list[tuple[str, TableChunks]]
    notes: list[str]
    pipeline: SalesPipeline


_TABLE_OF = {
    "User": "reps",
    "Account": "accounts",
    "Lead": "leads",
    "Opportunity": "opportunities",
    "OpportunityHistory": "stage_history",
    "Task": "activities",
    "Event": "activities",
}
"""Salesforce object -> canonical table, in the order the whole-file adapter maps them."""


def export_bytes(path: Path) -> int:
    """Bytes of the object files the adapter reads in ``path`` (0 if it is not a directory)."""
    if not path.is_dir():
        return 0
    files = [find_table_file(path, obj) for obj in salesforce.REQUIRED_COLUMNS]
    return sum(f.stat().st_size for f in files if f is not None)


def applies(path: Path, min_bytes: int) -> bool:
    """Whether the export at ``path`` is large enough to stream (``min_bytes <= 0``: always).

    A path that is not a directory never streams: the whole-file adapter reports it.
    """
    if not path.is_dir():
        return False
    return min_bytes <= 0 or export_bytes(path) > min_bytes


def open_export(
    path: Path,
    *,
    chunk_rows: int,
    encoding: str = "utf-8",
    delimiter: str = ",",
    as_of: pd.Timestamp | None = None,
) -> StreamedExport:
    """Check every object file's header now; map its rows later, chunk by chunk.

    Args:
        path: The export directory (``Opportunity.csv`` required).
        chunk_rows: Rows per chunk.
        encoding: Text encoding of the CSV files.
        delimiter: CSV delimiter.
        as_of: The moment that separates past events from planned ones (default: now, UTC).

    Returns:
        The mapped files, notes and pipeline, as :func:`salesforce.load` would give them.

    Raises:
        SourceError: What :func:`salesforce.load` raises for a missing directory, file, header
            column or event start column; a problem in a later row is raised while iterating.
    """
    found = salesforce._find_files(path)
    opened = {
        obj: open_chunks(
            file,
            chunk_rows=chunk_rows,
            required_columns=salesforce.REQUIRED_COLUMNS[obj],
            encoding=encoding,
            delimiter=delimiter,
        )
        for obj, file in found.items()
    }
    event = opened.get("Event")
    if event is not None and not any(c in event.columns for c in salesforce.EVENT_START_COLUMNS):
        raise SourceError(
            f"{found['Event']}: missing a start column (one of {list(salesforce.EVENT_START_COLUMNS)})"
        )
    now = salesforce._utc(as_of) if as_of is not None else pd.Timestamp.now(tz="UTC")
    converted = ConvertedLeads(opened.get("Lead"))
    mappers: dict[str, Mapper] = {
        "User": salesforce.map_users,
        "Account": salesforce.map_accounts,
        "Lead": salesforce.map_leads,
        "Opportunity": lambda f: salesforce.map_opportunities(f, lead_of=converted.mapping()),
        "OpportunityHistory": salesforce.map_history,
        "Task": salesforce.map_tasks,
        "Event": lambda f: salesforce.map_events(f, now),
    }
    files: list[tuple[str, TableChunks]] = []
    for obj, table in _TABLE_OF.items():
        chunks = opened.get(obj)
        if chunks is None:
            continue
        header = pd.DataFrame({c: pd.Series([], dtype=object) for c in chunks.columns})
        is_lead = obj == "Lead"
        # the mapped columns depend on the header alone: no lookup yet (Lead.csv streams first)
        shape = _without_lookup if obj == "Opportunity" else mappers[obj]
        mapped = MappedChunks(
            path=chunks.path,
            columns=[str(c) for c in shape(header).columns],
            chunk_rows=chunks.chunk_rows,
            encoding=chunks.encoding,
            delimiter=chunks.delimiter,
            limits=chunks.limits,
            source=chunks,
            mapper=mappers[obj],
            on_chunk=converted.add if is_lead else None,
            on_end=converted.finish if is_lead else None,
        )
        files.append((table, mapped))
    notes = [*salesforce.NOTES, *salesforce._file_notes(path, found)]
    return StreamedExport(files, notes, SALESFORCE_PIPELINE)


def _without_lookup(opps: pd.DataFrame) -> pd.DataFrame:
    """Opportunity rows mapped without the converted-lead lookup (for their columns only)."""
    return salesforce.map_opportunities(opps, lead_of={})
