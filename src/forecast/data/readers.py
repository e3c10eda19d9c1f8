"""Read one CSV or Parquet file into a frame, or fail with one clear message naming file and problem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecast.data.sources.base import SourceError

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
_OTHER_DELIMITERS = (";", "\t", "|")


def find_table_file(directory: Path, stem: str) -> Path | None:
    """Return ``directory/stem.csv`` or ``directory/stem.parquet`` if one exists.

    Raises:
        SourceError: If both a CSV and a Parquet file exist for the same table.
    """
    found = [directory / f"{stem}{suffix}" for suffix in SUPPORTED_SUFFIXES]
    existing = [p for p in found if p.is_file()]
    if len(existing) > 1:
        raise SourceError(f"{directory}: both {existing[0].name} and {existing[1].name} exist for {stem!r}")
    return existing[0] if existing else None


def read_table_file(
    path: Path,
    *,
    required_columns: Sequence[str] = (),
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> pd.DataFrame:
    """Read a CSV (every value as a string, empty cells as missing) or a Parquet file (native types).

    Args:
        path: The file.
        required_columns: Columns that must be present (after stripping whitespace from names).
        encoding: Text encoding of a CSV file.
        delimiter: Field delimiter of a CSV file.

    Returns:
        The frame, with a default RangeIndex (row ``i`` is data row ``i + 1`` of the file). Blank
        lines inside a CSV are kept as rows of missing values (validation rejects them), so row
        numbers match the file's lines; blank lines at its end are dropped.

    Raises:
        SourceError: Missing or empty file, undecodable bytes, a delimiter other than the expected
            one, a malformed file or a missing required column. The message names the file.
    """
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    if not path.is_file():
        raise SourceError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes); expected a header row")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = _read_parquet(path)
    elif path.suffix.lower() == ".csv":
        frame = _read_csv(path, encoding=encoding, delimiter=delimiter)
    else:
        raise SourceError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    frame.columns = [str(c).strip() for c in frame.columns]
    dupes = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if dupes:
        raise SourceError(f"{path}: duplicate column names {dupes}")
    missing = [c for c in required_columns if c not in frame.columns]
    if missing:
        raise SourceError(f"{path}: missing required column(s) {missing}; found {list(frame.columns)}")
    return frame


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc
    return table.to_pandas()


def _read_csv(path: Path, *, encoding: str, delimiter: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            encoding=encoding,
            skipinitialspace=False,
            skip_blank_lines=False,  # keep row numbers equal to line numbers (minus the header)
            engine="c",
        )
    except UnicodeDecodeError as exc:
        raise SourceError(_encoding_problem(path, encoding)) from exc
    except pd.errors.EmptyDataError as exc:
        raise SourceError(f"{path}: file has no header row") from exc
    except pd.errors.ParserError as exc:
        raise SourceError(f"{path}: malformed CSV ({exc}); check the delimiter and quoting") from exc
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for other in _OTHER_DELIMITERS:
            if other != delimiter and other in header:
                raise SourceError(
                    f"{path}: the header is one column {header[:60]!r} that contains {other!r}; "
                    f"the file seems to use {other!r} as delimiter, not {delimiter!r} "
                    f"(pass --delimiter {other!r} if that is intended)"
                )
    filled = np.flatnonzero(frame.notna().any(axis=1).to_numpy())
    end = int(filled[-1]) + 1 if filled.size else 0
    return frame.iloc[:end] if end < len(frame) else frame  # trailing blank lines are no rows


def _encoding_problem(path: Path, encoding: str) -> str:
    """Describe the first line of ``path`` that does not decode as ``encoding``."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as exc:
                return (
                    f"{path}: line {lineno} is not valid {encoding} (byte {raw[exc.start]:#04x} at "
                    f"column {exc.start + 1}); re-export as {encoding} or pass --encoding "
                    "(e.g. cp1252 or latin-1)"
                )
    return f"{path}: not valid {encoding}"
