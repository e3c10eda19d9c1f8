"""Read one CSV or Parquet file into a frame, or fail with one clear message naming file and problem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from forecast.data.sources.base import SourceError
from forecast.errors import truncate

if TYPE_CHECKING:
    from forecast.config import Settings

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
_OTHER_DELIMITERS = (";", "\t", "|")
_CHUNK = 1 << 22  # bytes per read while scanning a CSV's lines (bounded memory)


@dataclass(frozen=True)
class ReadLimits:
    """How large an input file may be; checked before (and while) pandas parses it.

    A hostile or broken export (a million columns, a 200 MB cell, a many-GB file) is refused within
    seconds in bounded memory, naming the file, the limit and the setting that raises it.

    Attributes:
        max_file_bytes: Largest file (``FORECAST_MAX_FILE_BYTES``).
        max_columns: Most columns (``FORECAST_MAX_COLUMNS``).
        max_line_bytes: Longest CSV line in bytes (``FORECAST_MAX_LINE_BYTES``).
        max_cell_bytes: Longest cell or column name in characters (``FORECAST_MAX_CELL_BYTES``).
    """

    max_file_bytes: int = 2_000_000_000
    max_columns: int = 2_000
    max_line_bytes: int = 10_000_000
    max_cell_bytes: int = 1_000_000

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ReadLimits:
        """The limits of ``settings`` (default: :func:`forecast.config.load_settings`)."""
        from forecast.config import load_settings

        s = settings or load_settings()
        return cls(s.max_file_bytes, s.max_columns, s.max_line_bytes, s.max_cell_bytes)


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
    limits: ReadLimits | None = None,
) -> pd.DataFrame:
    """Read a CSV (every value as a string, empty cells as missing) or a Parquet file (native types).

    Args:
        path: The file.
        required_columns: Columns that must be present (after stripping whitespace from names).
        encoding: Text encoding of a CSV file.
        delimiter: Field delimiter of a CSV file.
        limits: Size limits (default: from the settings, :meth:`ReadLimits.from_settings`).

    Returns:
        The frame, with a default RangeIndex (row ``i`` is data row ``i + 1`` of the file). Blank
        lines inside a CSV are kept as rows of missing values (validation rejects them), so row
        numbers match the file's lines; blank lines at its end are dropped.

    Raises:
        SourceError: Missing or empty file, undecodable bytes, a delimiter other than the expected
            one, a malformed file, a missing required column or a file beyond ``limits`` (too large,
            too many columns, a line or cell too long). The message names the file.
    """
    limits = limits or ReadLimits.from_settings()
    check_file(path, limits)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = _read_parquet(path, limits)
    elif path.suffix.lower() == ".csv":
        _check_csv_shape(path, delimiter, limits)
        frame = _read_csv(path, encoding=encoding, delimiter=delimiter)
    else:
        raise SourceError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    _check_cells(path, frame, limits)
    frame.columns = check_columns(path, frame, required_columns)
    return frame


def check_file(path: Path, limits: ReadLimits) -> None:
    """Refuse a path that is missing, not a file, empty or larger than ``limits`` allow.

    Raises:
        SourceError: Naming the file and the problem.
    """
    if not path.exists():
        raise SourceError(f"{path}: file not found")
    if not path.is_file():
        raise SourceError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise SourceError(f"{path}: file is empty (0 bytes); expected a header row")
    if size > limits.max_file_bytes:
        raise SourceError(
            f"{path}: the file has {size:,} bytes, more than the limit of {limits.max_file_bytes:,} "
            "(FORECAST_MAX_FILE_BYTES); split the export or raise the limit"
        )


def check_columns(path: Path, frame: pd.DataFrame, required_columns: Sequence[str]) -> list[str]:
    """The frame's column names stripped of whitespace, refused when duplicated or missing one required.

    Raises:
        SourceError: Naming the file and the columns.
    """
    columns = [str(c).strip() for c in frame.columns]
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise SourceError(f"{path}: duplicate column names {dupes}")
    missing = [c for c in required_columns if c not in columns]
    if missing:
        raise SourceError(f"{path}: missing required column(s) {missing}; found {columns}")
    return columns


def _too_many_columns(path: Path, n: int, limits: ReadLimits, at_least: bool = False) -> SourceError:
    return SourceError(
        f"{path}: {'at least ' if at_least else ''}{n:,} columns in the header, "
        f"more than the limit of {limits.max_columns:,} (FORECAST_MAX_COLUMNS); "
        "export only the columns you need or raise the limit"
    )


def _check_csv_shape(path: Path, delimiter: str, limits: ReadLimits) -> None:
    """Refuse a CSV with too many header columns or a line too long, before pandas reads it.

    One pass over the bytes in fixed-size chunks (memory stays bounded whatever the file): line
    lengths from the positions of newline bytes; the header's columns are the delimiters outside quotes
    of its first line (a quoted newline continues it).

    Raises:
        SourceError: Naming the file, the line and the limit.
    """
    sep = delimiter.encode("utf-8")
    header = bytearray()
    header_done = False
    quotes = 0  # quote characters seen in the header so far (odd: inside a quoted field)
    line = 1  # the line being read
    carry = 0  # bytes of that line in earlier chunks
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            if not header_done:
                header_done, quotes = _header_part(chunk, header, quotes)
                columns = _count_outside_quotes(bytes(header), sep) + 1 if len(sep) == 1 else 0
                if columns > limits.max_columns:
                    raise _too_many_columns(path, columns, limits, at_least=not header_done)
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            if ends.size == 0:
                carry += len(chunk)
                if carry > limits.max_line_bytes:
                    raise _line_too_long(path, line, carry, limits)
                continue
            lengths = np.diff(ends, prepend=-1) - 1
            lengths[0] += carry
            longest = int(np.argmax(lengths))
            if lengths[longest] > limits.max_line_bytes:
                raise _line_too_long(path, line + longest, int(lengths[longest]), limits)
            line += int(ends.size)
            carry = len(chunk) - int(ends[-1]) - 1


def _header_part(chunk: bytes, header: bytearray, quotes: int) -> tuple[bool, int]:
    """Add ``chunk``'s part of the header line to ``header``; return (header complete, quotes seen)."""
    position = 0
    while True:
        newline = chunk.find(b"\n", position)
        if newline < 0:
            header += chunk
            return False, quotes + chunk.count(b'"', position)
        quotes += chunk.count(b'"', position, newline)
        if quotes % 2 == 0:  # a newline outside quotes ends the header
            header += chunk[:newline]
            return True, quotes
        position = newline + 1


def _count_outside_quotes(data: bytes, sep: bytes) -> int:
    """How many ``sep`` bytes of ``data`` lie outside double-quoted fields (``""`` is an escape)."""
    return sum(part.count(sep) for part in data.split(b'"')[::2])


def _line_too_long(path: Path, line: int, length: int, limits: ReadLimits) -> SourceError:
    return SourceError(
        f"{path}: line {line:,} has more than {limits.max_line_bytes:,} bytes "
        f"(at least {length:,}; FORECAST_MAX_LINE_BYTES); check the quoting, or raise the limit"
    )


def _check_cells(path: Path, frame: pd.DataFrame, limits: ReadLimits, first_row: int = 1) -> None:
    """Refuse a frame with too many columns, or a column name or text cell beyond the cell limit.

    ``first_row`` is the data-row number of the frame's first row (a chunk of a longer file).
    """
    if frame.shape[1] > limits.max_columns:
        raise _too_many_columns(path, frame.shape[1], limits)
    cap = limits.max_cell_bytes
    for name in frame.columns:
        if len(str(name)) > cap:
            raise SourceError(
                f"{path}: a column name of {len(str(name)):,} characters ({truncate(name, 60)!r}), "
                f"more than the limit of {cap:,} (FORECAST_MAX_CELL_BYTES)"
            )
    for i in range(frame.shape[1]):
        values = frame.iloc[:, i]
        if not (pd.api.types.is_object_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype)):
            continue
        if _longest_text(values) <= cap:
            continue
        lengths = values.map(lambda v: len(v) if isinstance(v, (str, bytes)) else 0).to_numpy()
        if lengths.size and int(lengths.max()) > cap:
            row = int(np.argmax(lengths))
            raise SourceError(
                f"{path}: row {row + first_row}, column {truncate(frame.columns[i], 60)!r}: a cell of "
                f"{int(lengths[row]):,} characters, more than the limit of {cap:,} "
                "(FORECAST_MAX_CELL_BYTES); the value starts "
                f"{truncate(values.iloc[row], 60)!r}"
            )


def _longest_text(values: pd.Series) -> int:
    """The longest text cell of ``values`` in characters (bytes for binary cells), 0 for none.

    Counted by Arrow in C++ when every cell is text or missing (the usual case); else in Python.
    """
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        lengths = values.map(lambda v: len(v) if isinstance(v, (str, bytes)) else 0)
        return int(lengths.max()) if len(lengths) else 0
    array = pa.array(values, type=pa.large_string(), from_pandas=True)
    return int(pc.max(pc.utf8_length(array)).as_py() or 0)


def _read_parquet(path: Path, limits: ReadLimits) -> pd.DataFrame:
    try:
        columns = pq.read_metadata(path).num_columns
        if columns > limits.max_columns:
            raise _too_many_columns(path, columns, limits)
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
    except (UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise csv_error(path, encoding, exc) from exc
    check_delimiter(path, list(frame.columns), delimiter)
    filled = np.flatnonzero(frame.notna().any(axis=1).to_numpy())
    end = int(filled[-1]) + 1 if filled.size else 0
    return frame.iloc[:end] if end < len(frame) else frame  # trailing blank lines are no rows


def csv_error(path: Path, encoding: str, exc: Exception) -> SourceError:
    """The clear error for what pandas raised while parsing the CSV at ``path``."""
    if isinstance(exc, UnicodeDecodeError):
        return SourceError(_encoding_problem(path, encoding))
    if isinstance(exc, pd.errors.EmptyDataError):
        return SourceError(f"{path}: file has no header row")
    return SourceError(f"{path}: malformed CSV ({exc}); check the delimiter and quoting")


def check_delimiter(path: Path, columns: list[object], delimiter: str) -> None:
    """Refuse a header read as one column that holds another usual delimiter.

    Raises:
        SourceError: Naming the file and the delimiter it seems to use.
    """
    if len(columns) != 1:
        return
    header = str(columns[0])
    for other in _OTHER_DELIMITERS:
        if other != delimiter and other in header:
            raise SourceError(
                f"{path}: the header is one column {header[:60]!r} that contains {other!r}; "
                f"the file seems to use {other!r} as delimiter, not {delimiter!r} "
                f"(pass --delimiter {other!r} if that is intended)"
            )


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
