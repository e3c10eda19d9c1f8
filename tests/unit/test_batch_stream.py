"""The pieces of batch scoring that need no model: the files of a folder, the repeated rows, totals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.batch_stream import Totals, duplicate_rows, input_schema, parquet_files


def test_a_folder_reads_its_parquet_files_in_path_order(tmp_path: Path) -> None:
    frame = pd.DataFrame({"lead_id": ["a"]})
    for name in ("b=2/x.parquet", "a.pq", "_SUCCESS", ".tmp.parquet", "_temporary/y.parquet", "a.parquet"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(tmp_path / name)
    assert [p.relative_to(tmp_path).as_posix() for p in parquet_files(tmp_path) or []] == [
        "a.parquet",
        "a.pq",
        "b=2/x.parquet",
    ]
    assert parquet_files(tmp_path / "a.pq") == [tmp_path / "a.pq"]
    assert parquet_files(tmp_path / "missing.parquet") is None  # the whole-file path names the problem


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_repeated_rows_are_pandas_duplicated_over_all_parts(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 600
    ids = rng.choice(np.array(["a", "b", "c", "d", "e", None], dtype=object), n)
    days = rng.choice(np.array(["2025-01-01", "2025-02-01", None], dtype=object), n)
    frame = pd.DataFrame({"lead_id": ids, "as_of": pd.to_datetime(days), "x": rng.normal(size=n)})
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(n), 4)):
        frame.iloc[part].to_parquet(folder / f"part-{i}.parquet")
    files = parquet_files(folder) or []
    _, counts = input_schema(files)
    found = duplicate_rows(files, counts, "lead_id", ["lead_id", "as_of"], tmp_path)
    expected = frame.duplicated(subset=["lead_id", "as_of"], keep="first") & frame["lead_id"].notna()
    assert found.tolist() == (np.flatnonzero(expected.to_numpy()) + 1).tolist()
    assert found.size > 0
    assert [p.name for p in tmp_path.iterdir()] == ["parts"]  # the spill folder is gone


def test_the_totals_add_up_batches_exactly() -> None:
    totals = Totals("p")
    values = np.round(np.random.default_rng(0).uniform(size=1001), 6)
    for part in np.array_split(values, 7):
        scores = pd.DataFrame({"p": part, "band": "A", "warnings": ""})
        rejects = pd.DataFrame({"source_row": [1, 1, 2]})
        totals.add(len(part) + 2, scores, rejects)
    assert (totals.rows_in, totals.scored, totals.rejected) == (1001 + 14, 1001, 14)
    assert totals.bands == {"A": 1001, "B": 0, "C": 0, "D": 0}
    assert totals.mean_score == round(float(values.mean()), 4)


def test_batches_keep_the_dtypes_a_whole_read_gives(tmp_path: Path) -> None:
    """pandas' nullable Int64 and boolean (a gap in a batch of two) stay so, as a whole read keeps them."""
    from forecast.batch_stream import _batches, _nulls

    frame = pd.DataFrame(
        {
            "nullable_int": pd.array([1, None, 3, 4], dtype="Int64"),
            "nullable_bool": pd.array([True, None, False, True], dtype="boolean"),
            "plain_int": [1, 2, 3, 4],
        }
    )
    frame.to_parquet(tmp_path / "a.parquet")
    files = parquet_files(tmp_path) or []
    whole = pd.read_parquet(tmp_path / "a.parquet")
    schema, _ = input_schema(files)
    columns = list(whole.columns)
    batches = list(_batches(files, schema, columns, 2, _nulls(files, schema, columns)))
    joined = pd.concat(batches, ignore_index=True)
    assert str(joined["nullable_int"].dtype) == "Int64" and str(joined["nullable_bool"].dtype) == "boolean"
    pd.testing.assert_frame_equal(joined, whole)


def test_names_with_spaces_go_to_the_whole_read_and_clashing_ones_are_refused(tmp_path: Path) -> None:
    """The whole-file read strips column names and refuses two that clash; the batched one must not differ."""
    from forecast.batch import _plain_names
    from forecast.data.sources.base import SourceError

    pd.DataFrame({"lead_id": ["a"], "x": [1.0]}).to_parquet(tmp_path / "plain.parquet")
    assert _plain_names(tmp_path / "plain.parquet", [tmp_path / "plain.parquet"])
    pd.DataFrame({" lead_id": ["a"], "x": [1.0]}).to_parquet(tmp_path / "padded.parquet")
    assert not _plain_names(tmp_path / "padded.parquet", [tmp_path / "padded.parquet"])
    pd.DataFrame({"x": [1.0], "x ": [2.0]}).to_parquet(tmp_path / "clash.parquet")
    with pytest.raises(SourceError, match="duplicate column names"):
        _plain_names(tmp_path / "clash.parquet", [tmp_path / "clash.parquet"])
