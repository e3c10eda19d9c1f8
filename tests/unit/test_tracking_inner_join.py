"""The stage changes' deal keys taken by position: the frame an inner merge gives, or that merge."""

from __future__ import annotations

import pandas as pd
import pytest

from forecast.tracking.data import _inner_join


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (["O1", "O2", "O1", "O3"], ["O3", "O1", "O2"]),  # every change's deal known
        (["O1", "O9", "O2"], ["O2", "O1"]),  # a change of a deal the table lacks: dropped
        (["O1", "O2"], ["O1", "O1", "O2"]),  # a deal twice: the merge (rows repeat)
        (["O1", None, "O2"], ["O2", None, "O1"]),  # a missing id meets a missing id, as merge does
        ([1, "2", 2.0], ["1", "2", 2]),  # ids of several types: 2.0 is 2, not "1" 1
    ],
)
def test_the_keys_taken_by_position_are_the_inner_merge(left: list[object], right: list[object]) -> None:
    changes = pd.DataFrame(
        {"opportunity_id": pd.Series(left, dtype=object), "stage": [f"s{i}" for i in range(len(left))]}
    )
    changes.index = changes.index[::-1]  # a sorted frame's index: not its positions
    deals = pd.DataFrame(
        {
            "opportunity_id": pd.Series(right, dtype=object),
            "rep": [f"r{i}" for i in range(len(right))],
            "amount": range(len(right)),
        }
    )
    got = _inner_join(changes, deals, "opportunity_id", ["rep", "amount"])
    pd.testing.assert_frame_equal(got, changes.merge(deals, on="opportunity_id", how="inner"))
