"""Chunked reading gives the rows, row numbers and errors of reading the file whole."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecast.data.chunked import open_chunks, read_columns
from forecast.data.readers import ReadLimits, read_table_file
from forecast.data.sources.base import SourceError


def _csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _whole(path: Path, chunk_rows: int, **kw: object) -> tuple[list[int], pd.DataFrame]:
    chunks = open_chunks(path, chunk_rows=chunk_rows, **kw)  # type: ignore[arg-type]
    firsts, frames = [], []
    for first, frame in chunks:
        firsts.append(first)
        frames.append(frame)
    joined = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=chunks.columns)
    return firsts, joined


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4, 100])
def test_blank_lines_keep_their_row_numbers_inside_and_vanish_at_the_end(
    tmp_path: Path, chunk_rows: int
) -> None:
    path = _csv(tmp_path / "leads.csv", ["lead_id,name", "L1,a", ",", "", "L2,b", "L3,", "", "", ""])
    firsts, joined = _whole(path, chunk_rows)
    expected = read_table_file(path)
    pd.testing.assert_frame_equal(joined, expected)
    assert len(joined) == 5  # the three blank lines at the end are no rows
    sizes = [b - a for a, b in zip(firsts, [*firsts[1:], len(joined) + 1], strict=True)]
    assert firsts[0] == 1 and all(s > 0 for s in sizes)


def test_a_huge_cell_in_a_later_chunk_names_its_row_as_reading_whole_does(tmp_path: Path) -> None:
    rows = [f"L{i},x" for i in range(1, 11)]
    rows[7] = "L8," + "y" * 50
    path = _csv(tmp_path / "leads.csv", ["lead_id,name", *rows])
    limits = ReadLimits(max_cell_bytes=20)
    with pytest.raises(SourceError) as whole:
        read_table_file(path, limits=limits)
    with pytest.raises(SourceError) as chunked:
        _whole(path, 3, limits=limits)
    assert "row 8," in str(whole.value)
    assert str(chunked.value) == str(whole.value)


def test_header_problems_are_found_before_any_row_is_read(tmp_path: Path) -> None:
    path = _csv(tmp_path / "leads.csv", ["lead_id;name", "L1;a"])
    with pytest.raises(SourceError, match="seems to use ';' as delimiter"):
        open_chunks(path, chunk_rows=10)
    path = _csv(tmp_path / "other.csv", ["lead_id,name", "L1,a"])
    with pytest.raises(SourceError, match=r"missing required column\(s\) \['created_at'\]"):
        open_chunks(path, chunk_rows=10, required_columns=["lead_id", "created_at"])


def test_parquet_chunks_join_to_the_whole_file_and_columns_can_be_read_alone(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"lead_id": [f"L{i}" for i in range(25)], "score": range(25), "stage": ["a", None] * 12 + ["b"]}
    )
    path = tmp_path / "leads.parquet"
    frame.to_parquet(path)
    firsts, joined = _whole(path, 4)
    pd.testing.assert_frame_equal(joined, read_table_file(path))
    assert firsts == [1, 5, 9, 13, 17, 21, 25]
    only = read_columns(open_chunks(path, chunk_rows=4), ["stage", "missing"])
    assert list(only.columns) == ["stage"] and only["stage"].tolist() == frame["stage"].tolist()
    codes = read_columns(open_chunks(path, chunk_rows=4), ["stage"], categorical=True)
    assert isinstance(codes["stage"].dtype, pd.CategoricalDtype)
    assert (
        codes["stage"].astype(object).where(codes["stage"].notna(), None).tolist() == frame["stage"].tolist()
    )
