"""What an adapter hands over: canonical-named raw tables with their origin, and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from forecast.data.pipeline import SalesPipeline


class SourceError(Exception):
    """Input that cannot be read at all (missing file, bad encoding or delimiter, missing column).

    The message names the file and the problem; nothing is written to the warehouse.
    """


@dataclass
class RawTable:
    """One canonical table as read from one source file, before validation.

    Attributes:
        table: Canonical table name (a key of :data:`forecast.data.schema.TABLES`).
        frame: Columns named canonically, plus any extra (custom) columns. Values may still be
            strings; validation coerces them.
        source_file: The file the rows came from (shown in rejects and errors).
        source_row: For each row, its 1-based data-row number in ``source_file`` (the header is
            not counted, so data row 1 is the file's second line).
    """

    table: str
    frame: pd.DataFrame
    source_file: str
    source_row: pd.Series

    def __post_init__(self) -> None:
        self.frame = self.frame.reset_index(drop=True)
        self.source_row = pd.Series(self.source_row, dtype="int64").reset_index(drop=True)
        if len(self.frame) != len(self.source_row):
            raise ValueError("frame and source_row lengths differ")


@dataclass
class SourceBatch:
    """Everything an adapter read from one path.

    Attributes:
        source_format: Adapter name (``canonical``, ``maven``, ``salesforce``).
        tables: Raw tables; a table may come from several files.
        pipeline: The pipeline the source's stages follow.
        notes: Plain-words notes on what the source lacks or how it was mapped.
        expected_rejects: Losses the source always has, ``(table, rule, column) -> why``: the
            ingest guard (:mod:`forecast.data.reject_guard`) reports them and does not refuse.
    """

    source_format: str
    tables: list[RawTable]
    pipeline: SalesPipeline
    notes: list[str] = field(default_factory=list)
    expected_rejects: dict[tuple[str, str, str], str] = field(default_factory=dict)
