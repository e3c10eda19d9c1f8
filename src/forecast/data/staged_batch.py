"""A streamed import's validated rows, held in a DuckDB staging database instead of pandas frames.

:mod:`forecast.data.staged` builds it; :func:`forecast.data.warehouse.write_batch` writes it as it
writes a :class:`~forecast.data.validate.ValidatedBatch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from forecast.data.pipeline import SalesPipeline
from forecast.data.validate import REJECT_COLUMNS, TableCounts

META_COLUMNS = ("__part", "__row", "__ok")
"""Columns a staged table has beside the data: the file index, the source row, and whether the
row is still valid."""


def quote(name: str) -> str:
    """A SQL identifier in double quotes."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class StagedBatch:
    """Valid rows and rejects of an import, in temporary tables of the import's connection.

    Attributes:
        catalog: The staging catalog (``temp``: DuckDB's temporary tables).
        counts: Row accounting per table.
        pipeline: The pipeline stages were checked against.
        notes: The adapter's notes.
        columns: Per table, the data columns of its staged table (canonical first, then extra).
        present_columns: Per table, the columns the source files really had (as
            :attr:`ValidatedBatch.present_columns`).
        rejects_count: Reject records staged.
    """

    catalog: str
    counts: dict[str, TableCounts]
    pipeline: SalesPipeline
    notes: list[str]
    columns: dict[str, list[str]] = field(default_factory=dict)
    present_columns: dict[str, list[str]] = field(default_factory=dict)
    rejects_count: int = 0

    def table(self, table: str) -> str:
        """The staged table of ``table``, qualified."""
        return f"{quote(self.catalog)}.{quote('staged_t_' + table)}"

    @property
    def rejects(self) -> str:
        """The staged rejects table, qualified (:data:`REJECT_COLUMNS` plus ``__seq``, their order)."""
        return f"{quote(self.catalog)}.staged_rejects"

    def valid_rows(self, table: str, columns: list[str]) -> str:
        """A parenthesised query of the valid rows of ``table`` with ``columns`` only."""
        return f"(SELECT {', '.join(quote(c) for c in columns)} FROM {self.table(table)} WHERE __ok)"

    def rejects_query(self) -> str:
        """A parenthesised query of the reject records, :data:`REJECT_COLUMNS`, in their order."""
        return f"(SELECT {', '.join(quote(c) for c in REJECT_COLUMNS)} FROM {self.rejects} ORDER BY __seq)"
