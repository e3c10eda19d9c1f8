"""Atomic file output: a result file is either complete or absent, never half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def atomic_write(path: Path, writer: Callable[[Path], None]) -> None:
    """Write through ``writer`` into a temporary file beside ``path``, then rename it into place.

    Args:
        path: The final file; its folder is created if needed.
        writer: Writes the content to the path it is given.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
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


def _to_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, date_format="%Y-%m-%d %H:%M:%S", lineterminator="\n")


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (UTF-8)."""

    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")

    atomic_write(path, write)
