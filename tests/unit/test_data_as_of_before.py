"""A table's rows before the as of, taken one column at a time: the whole-frame take's frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data import as_of


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.Series(pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, n), unit="s"))
    times[rng.random(n) < 0.05] = None
    text = pd.Series(rng.choice(["a", "b", None], n), dtype=object)
    return pd.DataFrame(
        {
            "activity_id": [f"A{i}" for i in range(n)],
            "occurred_at": times,
            "type": text,
            "duration_seconds": rng.normal(60, 10, n),
            "count": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "flag": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "kind": pd.Categorical(rng.choice(["x", "y"], n)),
            "zoned": times.dt.tz_localize("UTC"),
            "done": rng.random(n) < 0.9,
        },
        index=np.arange(n) * 7 + 3,  # not numbered from 0: the cut is
    )


@pytest.mark.parametrize(("n", "seed"), [(0, 1), (1, 2), (500, 3), (5000, 4)])
def test_the_rows_before_are_the_whole_frame_take(n: int, seed: int) -> None:
    frame = _frame(n, seed)
    frame.columns.name = "columns"
    for when in ["2024-12-01", "2025-02-01 12:00:00.5", "2026-01-01"]:
        cut = pd.Timestamp(when)
        got = as_of._before(frame, "occurred_at", cut)
        expected = frame.loc[pd.to_datetime(frame["occurred_at"], errors="coerce") < cut].reset_index(
            drop=True
        )
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert got is not frame and (
            n == 0 or not np.shares_memory(got["duration_seconds"], frame["duration_seconds"])
        )


def test_a_repeated_column_name_takes_the_whole_frame() -> None:
    frame = _frame(100, 5)
    doubled = pd.concat([frame, frame[["type"]]], axis=1)
    cut = pd.Timestamp("2025-02-01")
    got = as_of._before(doubled, "occurred_at", cut)
    expected = doubled.loc[doubled["occurred_at"] < cut].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert as_of._before(None, "occurred_at", cut) is None
