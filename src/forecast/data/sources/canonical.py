"""The canonical format: one CSV or Parquet file per table, named after the table.

``leads.csv`` (or ``leads.parquet``) holds the ``leads`` table, and so on for every table of
docs/data-model.md. Column names are the canonical ones; extra columns are kept as custom fields. A table
without a file is simply not part of this import. A file whose name is not a canonical table
(``truth_leads.parquet`` from the simulator, say) is ignored and listed in the notes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.data.readers import SUPPORTED_SUFFIXES, find_table_file, read_table_file
from forecast.data.schema import TABLES
from forecast.data.sources.base import RawTable, SourceBatch, SourceError


def load(
    path: Path,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    pipeline: SalesPipeline | None = None,
) -> SourceBatch:
    """Read canonical files from a directory, or a single file named after its table.

    Args:
        path: A directory with ``<table>.csv|parquet`` files, or one such file.
        encoding: Text encoding of CSV files.
        delimiter: CSV delimiter.
        pipeline: The pipeline the stages follow (default: :data:`DEFAULT_PIPELINE`).

    Returns:
        The raw tables found.

    Raises:
        SourceError: If the path does not exist, holds no canonical file, or a file is unreadable.
    """
    files, notes = table_files(path)
    tables = []
    for table, file in files:
        frame = read_table_file(
            file,
            required_columns=TABLES[table].required_columns,
            encoding=encoding,
            delimiter=delimiter,
        )
        tables.append(RawTable(table, frame, str(file), pd.Series(range(1, len(frame) + 1))))
    return SourceBatch("canonical", tables, pipeline or DEFAULT_PIPELINE, notes)


def table_files(path: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """The canonical files of ``path``: ``(table, file)`` in the tables' order, and notes.

    Raises:
        SourceError: If the path does not exist, holds no canonical file, or names another table.
    """
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    notes: list[str] = []
    files: list[tuple[str, Path]] = []
    if path.is_file():
        if path.stem not in TABLES:
            raise SourceError(
                f"{path}: file name must be a canonical table name ({', '.join(TABLES)}) "
                "with a .csv or .parquet suffix"
            )
        files.append((path.stem, path))
    else:
        for table in TABLES:
            found = find_table_file(path, table)
            if found is not None:
                files.append((table, found))
        ignored = sorted(
            p.name for p in path.iterdir() if p.suffix.lower() in SUPPORTED_SUFFIXES and p.stem not in TABLES
        )
        if ignored:
            notes.append(f"ignored files that are not canonical tables: {', '.join(ignored)}")
    if not files:
        raise SourceError(
            f"{path}: no canonical table files found (expected e.g. leads.csv or opportunities.parquet)"
        )
    return files, notes
