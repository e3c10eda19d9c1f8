"""File output: atomic, with one permission policy, and CSVs a spreadsheet cannot execute.

* A result file is either complete or absent, never half-written (:func:`atomic_write`).
* Every file gets the mode an ordinary ``open()`` would give it: ``0o666`` minus the process's
  umask (``0o644`` under the usual ``022``), like the warehouse and the MLflow store.
* Every CSV the project writes goes through :func:`csv_safe_frame` (via :func:`write_frame`,
  :func:`write_csv` or :func:`csv_text`): a text cell or header starting with ``=``, ``+``, ``-``,
  ``@``, a tab or a carriage return gets a leading single quote (the OWASP rule against CSV formula
  injection). Numbers are never changed: numeric columns are untouched, and a text cell that is a
  plain number (``-5``, ``+1.5e3``) is a number to a spreadsheet, not a formula. Parquet and JSON
  keep raw values.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import IO, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CSV_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    Linux reports it in ``/proc/self/status`` (``Umask:``); elsewhere it is read by setting and
    restoring it under a lock (the only portable way; the lock keeps two of our threads from
    racing, and the window is two system calls long).

    Returns:
        The umask, e.g. ``0o022``.
    """
    try:
        with Path("/proc/self/status").open(encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode new output files get: ``0o666`` minus the umask, as ``open()`` would give."""
    return 0o666 & ~current_umask()


def neutralise_cell(value: str) -> str:
    """Prefix ``'`` to a text that a spreadsheet would read as a formula.

    Args:
        value: One cell or header.

    Returns:
        ``value`` unchanged unless it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
        return and is not a plain number; then ``"'" + value``.
    """
    if value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and headers cannot start a spreadsheet formula.

    Only cells holding ``str`` (object, string and categorical columns) change; numeric, boolean and
    datetime columns, and numbers inside object columns, keep their values.

    Args:
        frame: The frame to write as CSV.

    Returns:
        ``frame`` itself when nothing needs neutralising, else a neutralised copy.
    """
    columns: list[Hashable] = [neutralise_cell(c) if isinstance(c, str) else c for c in frame.columns]
    out = frame
    if columns != list(frame.columns):
        out = frame.copy(deep=False)
        out.columns = pd.Index(columns)
    for i in range(out.shape[1]):
        col = out.iloc[:, i]
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            values = col.astype(object)
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            values = col
        else:
            continue
        raw = values.astype(object).tolist()
        hits = [
            j
            for j, v in enumerate(raw)
            if isinstance(v, str) and v.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(v)
        ]
        if not hits:
            continue
        fixed = values.to_numpy(dtype=object, copy=True)
        for j in hits:
            fixed[j] = "'" + raw[j]
        if out is frame:
            out = frame.copy(deep=False)
        out.isetitem(i, fixed)
    return out


def atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    """Write through ``writer`` into a temporary file beside ``path``, then rename it into place.

    The file gets :func:`file_mode` (``mkstemp`` alone would leave it ``0o600`` whatever the umask).

    Args:
        path: The final file; its folder is created if needed.
        writer: Writes the content to the path it is given.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        Path(tmp).chmod(file_mode())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_frame(frame: pd.DataFrame, path: Path, fmt: Literal["parquet", "csv"] = "parquet") -> None:
    """Write one frame atomically; the bytes depend only on the frame's content."""
    if fmt == "parquet":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        atomic_write(path, lambda p: pq.write_table(table, p, compression="zstd"))
    elif fmt == "csv":
        atomic_write(
            path,
            lambda p: _to_csv(frame, p),
        )
    else:
        raise ValueError(f"unknown format {fmt!r}; use 'parquet' or 'csv'")


def _to_csv(frame: pd.DataFrame, target: Path | IO[str]) -> None:
    csv_safe_frame(frame).to_csv(target, index=False, date_format=_CSV_DATE_FORMAT, lineterminator="\n")


def write_csv(frame: pd.DataFrame, target: Path | IO[str]) -> None:
    """Write ``frame`` as a neutralised CSV: atomically to a path, or to an open text stream.

    Args:
        frame: The frame.
        target: A file path (written atomically) or a stream such as ``sys.stdout``.
    """
    if isinstance(target, Path):
        atomic_write(target, lambda p: _to_csv(frame, p))
    else:
        _to_csv(frame, target)


def csv_text(frame: pd.DataFrame, **kwargs: Any) -> str:
    """The neutralised CSV of ``frame`` as text (for MLflow artifacts logged with ``log_text``).

    Args:
        frame: The frame.
        **kwargs: Passed to :meth:`pandas.DataFrame.to_csv` (``index`` defaults to ``False``).

    Returns:
        The CSV text.
    """
    buffer = io.StringIO()
    csv_safe_frame(frame).to_csv(buffer, **{"index": False, **kwargs})
    return buffer.getvalue()


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    atomic_write(path, write)
