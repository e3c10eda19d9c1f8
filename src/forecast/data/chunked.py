"""Read one CSV or Parquet file in chunks of rows, with the checks and messages of :mod:`readers`.

A streamed import (:mod:`forecast.data.staged`) holds one chunk at a time, so memory does not grow
with the file. Each chunk is what :func:`~forecast.data.readers.read_table_file` would return for
those rows: every CSV value a string, empty cells missing, Parquet's native types, blank CSV lines
kept as rows of missing values (their row numbers stay the file's) except at the file's end.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api.types import union_categoricals

from forecast.data.readers import (
    ReadLimits,
    _check_cells,
    _check_csv_shape,
    _too_many_columns,
    check_columns,
    check_delimiter,
    check_file,
    csv_error,
)
from forecast.data.sources.base import SourceError


@dataclass
class TableChunks:
    """A file opened for chunked reading.

    Attributes:
        path: The file.
        columns: Its column names (stripped), checked as :func:`read_table_file` checks them.
        chunk_rows: Rows per chunk.
        encoding: CSV text encoding.
        delimiter: CSV delimiter.
        limits: Size limits.
    """

    path: Path
    columns: list[str]
    chunk_rows: int
    encoding: str
    delimiter: str
    limits: ReadLimits

    def __iter__(self) -> Iterator[tuple[int, pd.DataFrame]]:
        """Yield ``(first data row number, chunk)``; row numbers count from 1, as in rejects."""
        if self.path.suffix.lower() in (".parquet", ".pq"):
            return self._parquet()
        return self._csv()

    def _parquet(self) -> Iterator[tuple[int, pd.DataFrame]]:
        first = 1
        try:
            reader = pq.ParquetFile(self.path)
            for batch in reader.iter_batches(batch_size=self.chunk_rows):
                frame = pa.Table.from_batches([batch]).to_pandas()
                yield first, self._checked(frame, first)
                first += len(frame)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{self.path}: not a readable Parquet file ({exc})") from exc

    def _csv(self) -> Iterator[tuple[int, pd.DataFrame]]:
        first = 1
        pending: list[pd.DataFrame] = []  # blank rows held back: dropped if they end the file
        try:
            reader = pd.read_csv(
                self.path,
                sep=self.delimiter,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                encoding=self.encoding,
                skipinitialspace=False,
                skip_blank_lines=False,
                engine="c",
                chunksize=self.chunk_rows,
            )
            with reader:
                for frame in reader:
                    filled = frame.notna().any(axis=1).to_numpy()
                    if not filled.any():
                        pending.append(frame)
                        continue
                    last = int(filled.nonzero()[0][-1]) + 1
                    if pending:
                        frame = pd.concat([*pending, frame], ignore_index=True)
                        last += sum(len(p) for p in pending)
                        pending = []
                    body, tail = frame.iloc[:last], frame.iloc[last:]
                    if len(tail):
                        pending.append(tail)
                    body = body.reset_index(drop=True)
                    yield first, self._checked(body, first)
                    first += len(body)
        except (UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise csv_error(self.path, self.encoding, exc) from exc

    def _checked(self, frame: pd.DataFrame, first: int) -> pd.DataFrame:
        _check_cells(self.path, frame, self.limits, first_row=first)
        frame.columns = self.columns
        return frame


def open_chunks(
    path: Path,
    *,
    chunk_rows: int,
    required_columns: Sequence[str] = (),
    encoding: str = "utf-8",
    delimiter: str = ",",
    limits: ReadLimits | None = None,
) -> TableChunks:
    """Check a file's size, shape and header now; read its rows later, chunk by chunk.

    Raises:
        SourceError: What :func:`~forecast.data.readers.read_table_file` raises for the file's
            header and shape; a problem in a later row is raised while iterating.
    """
    limits = limits or ReadLimits.from_settings()
    check_file(path, limits)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc
        if len(schema.names) > limits.max_columns:
            raise _too_many_columns(path, len(schema.names), limits)
        header = pd.DataFrame(columns=schema.names)
    elif path.suffix.lower() == ".csv":
        _check_csv_shape(path, delimiter, limits)
        try:
            header = pd.read_csv(path, sep=delimiter, dtype=str, nrows=0, encoding=encoding, engine="c")
        except (UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            raise csv_error(path, encoding, exc) from exc
        check_delimiter(path, list(header.columns), delimiter)
    else:
        raise SourceError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    _check_cells(path, header, limits)
    columns = check_columns(path, header, required_columns)
    return TableChunks(path, columns, chunk_rows, encoding, delimiter, limits)


def read_columns(chunks: TableChunks, columns: Sequence[str], *, categorical: bool = False) -> pd.DataFrame:
    """The file's rows restricted to those of ``columns`` it has.

    Args:
        chunks: The opened file.
        columns: The columns wanted (those the file lacks are left out).
        categorical: Keep each column as a pandas category (memory: one code per row plus the
            distinct values), for columns of few distinct values read from a large file.

    Returns:
        The columns, one row per data row of the file.
    """
    keep = [c for c in columns if c in chunks.columns]
    parts = [frame[keep].astype("category") if categorical else frame[keep] for _, frame in chunks]
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in keep})
    if not categorical:
        return pd.concat(parts, ignore_index=True)
    return pd.DataFrame(
        {c: pd.Series(union_categoricals([p[c] for p in parts], ignore_order=True)) for c in keep}
    )
