"""Score a Parquet table batch by batch: memory bounded by the batch, not by the input.

The local engine's path for a Parquet snapshot table (one file, or a folder of part files read in
the order of their paths, each file in its own order: the Spark engine's row numbering). Two
passes over the input:

1. DuckDB finds the rows whose id and ``as_of`` came at an earlier row (an aggregate of the repeated
   keys joined back to the rows; exact, and DuckDB spills beyond :data:`MEMORY_LIMIT` to a folder
   beside the output). Only those row numbers are kept in memory.
2. The input is read ``batch_rows`` rows at a time (pyarrow), each batch scored by the caller's
   function, and its scores and rejects appended to temporary files beside the outputs, which are
   renamed into place at the end (:func:`forecast.io.atomic_write`): a failed job leaves the
   previous output untouched.

The totals of the summary (rows, bands, warnings, the mean score) are added up batch by batch.
The scoring itself is the caller's (:func:`forecast.batch.score_job` passes the whole-file path's
own row function), so both paths give the same rows, scores, reasons and rejects.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecast.data.readers import ReadLimits, _check_cells
from forecast.errors import ScoringError
from forecast.io import atomic_write, csv_safe_frame
from forecast.models.threads import tree_threads
from forecast.scoring.scored import REJECT_COLUMNS, empty_rejects

DEFAULT_BATCH_ROWS = 100_000
"""Rows read and scored at a time (``--batch-rows``; 0 reads the whole input at once)."""
MEMORY_LIMIT = "1GB"
"""DuckDB's memory limit while it finds the repeated rows (beyond it, it spills to disk)."""
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
"""How timestamps are written to a CSV (as :func:`forecast.io.write_frame` writes them)."""

BatchScorer = Callable[[pd.DataFrame, np.ndarray, np.ndarray], tuple[pd.DataFrame, pd.DataFrame]]
"""Scores one batch: (rows, duplicate flags, 1-based source rows) -> (scores, rejects)."""


@dataclass
class Totals:
    """What the batches added up to: the counts of the summary and the sum of the scores."""

    score_name: str
    rows_in: int = 0
    scored: int = 0
    rejected: int = 0
    bands: dict[str, int] = field(default_factory=lambda: dict.fromkeys("ABCD", 0))
    rows_with_warnings: int = 0
    score_micros: int = 0
    """The sum of the scores in millionths (scores carry six decimals: the sum is exact)."""

    def add(self, n_rows: int, scores: pd.DataFrame, rejects: pd.DataFrame) -> None:
        """Count one batch of ``n_rows`` input rows."""
        self.rows_in += n_rows
        self.scored += len(scores)
        self.rejected += int(rejects["source_row"].nunique())
        if len(scores):
            for band, n in scores["band"].value_counts().items():
                if band in self.bands:
                    self.bands[str(band)] += int(n)
            self.rows_with_warnings += int((scores["warnings"] != "").sum())
            values = scores[self.score_name].to_numpy(dtype=float)
            self.score_micros += int(np.rint(values * 1e6).astype(np.int64).sum())

    @property
    def mean_score(self) -> float | None:
        """The mean score to four decimals (``None`` when nothing was scored)."""
        return None if self.scored == 0 else round(self.score_micros / 1e6 / self.scored, 4)


def parquet_files(path: Path) -> list[Path] | None:
    """The Parquet files of ``path`` in reading order, or ``None`` when it is not Parquet.

    A folder gives its ``.parquet`` / ``.pq`` files at any depth (Hive-style ``key=value/``
    folders included, their keys not added as columns) in path order, leaving out names starting
    with ``_`` or ``.`` (``_SUCCESS``, temporary files), as Spark does.

    Raises:
        ScoringError: A folder without Parquet files.
    """
    if path.is_dir():
        files = sorted(
            (
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in PARQUET_SUFFIXES
                and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
            ),
            key=str,
        )
        if not files:
            raise ScoringError(f"{path}: a folder without .parquet files")
        return files
    if path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES:
        return [path]
    return None


def input_schema(files: Sequence[Path]) -> tuple[pa.Schema, list[int]]:
    """The schema of the files together (types promoted, e.g. an all-null part) and their row counts.

    Raises:
        ScoringError: A file that is not readable Parquet, or parts whose types do not unify.
    """
    schemas, counts = [], []
    for file in files:
        try:
            meta = pq.read_metadata(file)
            schemas.append(meta.schema.to_arrow_schema())
        except (pa.ArrowInvalid, OSError) as exc:
            raise ScoringError(f"{file}: not a readable Parquet file ({exc})") from exc
        counts.append(meta.num_rows)
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise ScoringError(f"{files[0].parent}: the part files' columns do not agree ({exc})") from exc
    return schema, counts


def duplicate_rows(
    files: Sequence[Path], counts: Sequence[int], id_column: str, keys: Sequence[str], spill: Path
) -> np.ndarray:
    """The sorted 1-based row numbers whose ``keys`` came at an earlier row (rows without an id never).

    Equal keys as :meth:`pandas.DataFrame.duplicated` sees them (a missing ``as_of`` equals another
    missing one). DuckDB aggregates the repeated keys and joins them back, spilling to a temporary
    folder in ``spill`` (removed afterwards) beyond :data:`MEMORY_LIMIT`.
    """
    import duckdb

    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    offsets = pd.DataFrame(
        {"_file": [str(f) for f in files], "_offset": np.concatenate([[0], np.cumsum(counts)[:-1]])}
    )
    folder = Path(tempfile.mkdtemp(prefix=".forecast-score-", dir=spill))
    try:
        with duckdb.connect() as con:
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            con.execute(f"SET temp_directory = '{str(folder).replace(chr(39), chr(39) * 2)}'")
            con.execute(f"SET threads = {tree_threads()}")
            con.execute("SET preserve_insertion_order = false")
            con.execute("SET enable_progress_bar = false")
            con.register("_offsets", offsets)
            key_cols = ", ".join(f"p.{quoted(k)} AS k{i}" for i, k in enumerate(keys))
            kinds = con.execute(
                f"SELECT {', '.join(f'typeof({quoted(k)})' for k in keys)} "
                "FROM read_parquet(?, union_by_name = true) LIMIT 1",
                [offsets["_file"].tolist()],
            ).fetchone()
            present = f"p.{quoted(id_column)} IS NOT NULL"
            if kinds is not None and kinds[0] in ("FLOAT", "DOUBLE"):
                present += f" AND NOT isnan(p.{quoted(id_column)})"
            names = ", ".join(f"k{i}" for i in range(len(keys)))
            on = " AND ".join(f"t.k{i} IS NOT DISTINCT FROM r.k{i}" for i in range(len(keys)))
            sql = f"""
                WITH t AS (
                    SELECT o._offset + p.file_row_number + 1 AS row, {key_cols}
                    FROM read_parquet(?, filename = true, file_row_number = true, union_by_name = true) p
                    JOIN _offsets o ON p.filename = o._file
                    WHERE {present}
                ),
                r AS (SELECT {names}, min(row) AS first FROM t GROUP BY {names} HAVING count(*) > 1)
                SELECT t.row FROM t JOIN r ON {on} WHERE t.row > r.first ORDER BY t.row
            """
            found = con.execute(sql, [offsets["_file"].tolist()]).fetchnumpy()["row"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return np.asarray(found, dtype=np.int64)


def _nulls(files: Sequence[Path], schema: pa.Schema, columns: Sequence[str]) -> set[str]:
    """The integer and boolean ``columns`` with a missing value somewhere in ``files``.

    Read whole, such a column becomes float (integers) or object (booleans) in pandas for every row;
    a batch without a missing value would keep its own type, so these are converted per batch.
    """
    kinds = {c: schema.field(c).type for c in columns}
    wanted = [c for c, kind in kinds.items() if pa.types.is_integer(kind) or pa.types.is_boolean(kind)]
    found: set[str] = set()
    for file in files:
        meta = pq.ParquetFile(file).metadata
        names = meta.schema.to_arrow_schema().names
        for column in wanted:
            if column in found:
                continue
            if column not in names:
                found.add(column)
                continue
            index = meta.schema.names.index(column) if column in meta.schema.names else None
            nulls = 0
            for g in range(meta.num_row_groups):
                stats = meta.row_group(g).column(index).statistics if index is not None else None
                if stats is None or not stats.has_null_count:
                    nulls = int(pq.read_table(file, columns=[column])[column].null_count)
                    break
                nulls += stats.null_count
            if nulls:
                found.add(column)
    return found


def _batches(
    files: Sequence[Path], schema: pa.Schema, columns: Sequence[str], batch_rows: int, nullable: set[str]
) -> Iterator[pd.DataFrame]:
    """The ``columns`` of the files, ``batch_rows`` rows at a time, typed as the whole input would be."""
    target = pa.schema([schema.field(c) for c in columns], metadata=schema.metadata)
    for file in files:
        parquet = pq.ParquetFile(file)
        here = set(parquet.schema_arrow.names)
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=[c for c in columns if c in here]):
            table = pa.Table.from_batches([batch])
            for column in columns:
                if column not in here:
                    table = table.append_column(column, pa.nulls(len(table), schema.field(column).type))
            frame = table.select(list(columns)).cast(target).to_pandas()
            for column in nullable:
                if not isinstance(frame[column].dtype, np.dtype):
                    continue  # pandas' nullable Int64 or boolean (from its metadata): a whole read keeps it
                if pa.types.is_boolean(schema.field(column).type):
                    frame[column] = frame[column].astype(object)
                elif frame[column].dtype.kind in "iu":
                    frame[column] = frame[column].astype("float64")
            yield frame.reset_index(drop=True)


class _ScoresFile:
    """The scores written batch by batch: Parquet (one writer, the first batch's types) or CSV."""

    def __init__(self, path: Path, csv: bool) -> None:
        self.path = path
        self.csv = csv
        self.columns: list[str] | None = None
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        self._text: IO[str] | None = None

    def write(self, scores: pd.DataFrame) -> None:
        if self.columns is None:
            self.columns = list(scores.columns)
        scores = scores.reindex(columns=self.columns)
        if self.csv:
            header = self._text is None
            if self._text is None:
                self._text = self.path.open("w", encoding="utf-8", newline="")
            csv_safe_frame(scores).to_csv(
                self._text, index=False, header=header, date_format=CSV_DATE_FORMAT, lineterminator="\n"
            )
            return
        table = pa.Table.from_pandas(scores, preserve_index=False)
        if self._writer is None:
            # a column empty in the first batch (a reason no row has) is text
            fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in table.schema]
            self._schema = pa.schema(fields, metadata=table.schema.metadata)
            self._writer = pq.ParquetWriter(self.path, self._schema, compression="zstd")
        assert self._schema is not None
        self._writer.write_table(table.cast(self._schema))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._text is not None:
            self._text.close()


def stream_score(
    files: Sequence[Path],
    columns: Sequence[str],
    keys: Sequence[str],
    score: BatchScorer,
    output: Path,
    rejects: Path,
    *,
    score_name: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[str, float | None], None] | None = None,
    limits: ReadLimits | None = None,
) -> Totals:
    """Score the Parquet ``files`` batch by batch into ``output`` and ``rejects``, atomically.

    Args:
        files: The input's files in reading order (:func:`parquet_files`).
        columns: The columns to read (the id first; each must be in the input).
        keys: The columns a repeated row repeats (the id, and ``as_of`` when present).
        score: Scores one batch (its rows, duplicate flags and source rows).
        output: The scores file (``.csv`` or ``.parquet``).
        rejects: The rejects CSV.
        score_name: The score column summed for the mean.
        batch_rows: Rows per batch (at least 1).
        progress: Called with a description and the fraction done.
        limits: The input limits but the file size (default: the settings'): the columns of the
            input, and each batch's cells (as a file read whole is checked).

    Returns:
        The totals (the caller checks the row accounting against them).

    Raises:
        ScoringError: An output that is neither CSV nor Parquet, an unreadable input.
    """
    suffix = output.suffix.lower()
    if suffix not in (".csv", *PARQUET_SUFFIXES):
        raise ScoringError(f"{output}: output must end in .csv or .parquet")
    schema, counts = input_schema(files)
    total = int(sum(counts))
    limits = limits or ReadLimits.from_settings()
    if len(schema) > limits.max_columns:
        raise ScoringError(
            f"{files[0]}: {len(schema):,} columns, more than the limit of {limits.max_columns:,} "
            "(FORECAST_MAX_COLUMNS); write only the columns you need or raise the limit"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    if progress is not None:
        progress("finding repeated rows", None)
    repeated = duplicate_rows(files, counts, columns[0], keys, output.parent)
    nullable = _nulls(files, schema, columns)
    totals = Totals(score_name)

    def write_both(scores_path: Path, rejects_path: Path) -> None:
        out = _ScoresFile(scores_path, csv=suffix == ".csv")
        try:
            with rejects_path.open("w", encoding="utf-8", newline="") as bad:
                empty_rejects().to_csv(bad, index=False, lineterminator="\n")
                last: pd.DataFrame | None = None
                start = 0
                for frame in _batches(files, schema, columns, max(1, batch_rows), nullable):
                    _check_cells(files[0] if len(files) == 1 else files[0].parent, frame, limits, start + 1)
                    rows = np.arange(start + 1, start + len(frame) + 1, dtype=np.int64)
                    lo, hi = np.searchsorted(repeated, [rows[0], rows[-1] + 1]) if len(rows) else (0, 0)
                    duplicate = np.isin(rows, repeated[lo:hi])
                    scores, batch_rejects = score(frame, duplicate, rows)
                    totals.add(len(frame), scores, batch_rejects)
                    if len(scores):
                        out.write(scores)
                    last = scores
                    if len(batch_rejects):
                        _append_csv(batch_rejects.reindex(columns=REJECT_COLUMNS), bad)
                    start += len(frame)
                    if progress is not None:
                        progress("scoring", start / total if total else 1.0)
                if out.columns is None:  # nothing scored: the columns of an empty result
                    if last is None:
                        empty = schema.empty_table().select(list(columns)).to_pandas()
                        last, _ = score(empty, np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))
                    out.write(last)
        finally:
            out.close()

    atomic_write(output, lambda tmp: atomic_write(rejects, lambda bad: write_both(tmp, bad)))
    return totals


def _append_csv(frame: pd.DataFrame, handle: IO[str]) -> None:
    """Append ``frame``'s rows (no header) to an open CSV, neutralised as every CSV of the project."""
    csv_safe_frame(frame).to_csv(
        handle, index=False, header=False, date_format=CSV_DATE_FORMAT, lineterminator="\n"
    )
