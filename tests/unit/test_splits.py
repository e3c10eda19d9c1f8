from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast.features.splits import time_splits


def _snapshots(n_entities: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = rng.integers(0, 300, n_entities)
    life = rng.integers(1, 120, n_entities)
    rows = []
    for i in range(n_entities):
        for day in range(int(start[i]), int(start[i] + life[i]), 7):
            rows.append((f"E{i}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=day)))
    return pd.DataFrame(rows, columns=["entity", "as_of"])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), gap=st.sampled_from([0.0, 14.0, 30.0]))
def test_splits_are_disjoint_by_entity_and_ordered_in_time(seed: int, gap: float) -> None:
    frame = _snapshots(200, seed)
    try:
        splits = time_splits(frame, "entity", gap_days=gap, valid_gap_days=gap / 2)
    except ValueError as exc:  # a gap wider than a split's window leaves it empty: a clear error
        assert "split is empty" in str(exc) and gap > 0
        return
    parts = [splits.train, splits.valid, splits.test]
    ids = [set(frame["entity"].iloc[p]) for p in parts]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    times = [frame["as_of"].iloc[p] for p in parts]
    c1, c2 = splits.cuts
    assert times[0].max() < c1 - pd.Timedelta(days=gap / 2)
    assert times[0].max() < c2 - pd.Timedelta(days=gap)
    assert times[1].min() >= c1 and times[1].max() < c2 - pd.Timedelta(days=gap)
    assert times[2].min() >= c2
    used = sum(len(p) for p in parts)
    assert used + splits.dropped_rows == len(frame)
    assert splits.summary()["splits"]["test"]["rows"] == len(splits.test)


def test_split_sizes_follow_the_fractions_roughly() -> None:
    frame = _snapshots(500, 1)
    splits = time_splits(frame, "entity", valid_fraction=0.2, test_fraction=0.2)
    share = len(splits.test) / len(frame)
    assert 0.1 < share < 0.3
    assert len(splits.train) > len(splits.valid)


def test_too_few_dates_is_a_clear_error() -> None:
    frame = pd.DataFrame({"entity": ["a", "b"], "as_of": pd.to_datetime(["2024-01-01", "2024-01-08"])})
    with pytest.raises(ValueError, match="at least 3 distinct"):
        time_splits(frame, "entity")
