"""Rows of a frame taken one column at a time.

``frame.iloc[rows]`` (or ``frame.loc[mask]``) takes every column of a frame, and on a frame of ten
million activities it first merges every text column into one block: seconds of copying that hold
Python's lock. Taking each column read alone copies only those, each by its own type.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def column_at(column: pd.Series, rows: np.ndarray, index: pd.Index) -> pd.Series:
    """A column's values at ``rows`` (positions), labelled ``index``, of its own type.

    Of its numpy array, or its extension array's take; objects stay objects (nothing is inferred
    from them, as a frame built from the bare arrays would).
    """
    values: Any = column.to_numpy()[rows] if isinstance(column.dtype, np.dtype) else column.array.take(rows)
    return pd.Series(values, index=index, dtype=column.dtype, copy=False)
