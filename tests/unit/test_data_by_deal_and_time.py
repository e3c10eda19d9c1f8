"""Stage changes in deal and time order: the sort is skipped only where it would move nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.as_of import by_deal_and_time


def _changes(ids: list[object], days: list[float]) -> pd.DataFrame:
    times = [pd.NaT if d != d else pd.Timestamp("2024-01-01") + pd.Timedelta(days=d) for d in days]
    return pd.DataFrame(
        {
            "opportunity_id": pd.Series(ids, dtype=object),
            "entered_at": pd.to_datetime(pd.Series(times)),
            "row": np.arange(len(ids)),  # where each change was read
        }
    )


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["opportunity_id", "entered_at"], kind="stable")


def test_changes_already_in_order_are_the_frame_itself() -> None:
    frame = _changes(["A", "A", "A", "B", "b"], [1, 1, 3, 0, 0])  # ties keep their rows' order
    assert by_deal_and_time(frame) is frame
    pd.testing.assert_frame_equal(by_deal_and_time(frame), _sorted(frame))


@pytest.mark.parametrize(
    ("ids", "days"),
    [
        (["B", "A", "A"], [0, 1, 2]),  # deals out of order
        (["A", "A", "B"], [2, 1, 0]),  # a deal's changes out of time order
        (["A", "A", "B"], [1, float("nan"), 0]),  # a missing time (sorted last in its deal)
        (["A", 1, "B"], [0, 1, 2]),  # ids of two types: the sort says what order is
        (["A", None, "B"], [0, 1, 2]),  # a missing id
        (["a10", "a9", "a9"], [0, 0, 1]),  # text order, not the numbers' ("a10" < "a9")
        (["é", "z", "z"], [0, 0, 1]),  # code points: "z" < "é"
    ],
)
def test_changes_out_of_order_are_sorted_as_pandas_sorts_them(ids: list[object], days: list[float]) -> None:
    frame = _changes(ids, days)
    try:
        expected = _sorted(frame)
    except TypeError:  # pandas cannot order them either: neither may the shortcut
        with pytest.raises(TypeError):
            by_deal_and_time(frame)
        return
    got = by_deal_and_time(frame)
    pd.testing.assert_frame_equal(got, expected)


def test_deals_as_categories_are_sorted_in_their_categories_order() -> None:
    frame = _changes(["a", "a", "b"], [0, 1, 0])  # in the values' order, not in the categories'
    frame["opportunity_id"] = pd.Categorical(frame["opportunity_id"], categories=["b", "a"], ordered=True)
    pd.testing.assert_frame_equal(by_deal_and_time(frame), _sorted(frame))
    assert by_deal_and_time(frame)["opportunity_id"].tolist() == ["b", "a", "a"]
