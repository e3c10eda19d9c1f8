"""Bands A-D: a probability's letter, from the model's cut-offs (``ModelMetadata.bands``)."""

from __future__ import annotations

import numpy as np


def band_of(p: np.ndarray, bands: dict[str, float]) -> np.ndarray:
    """Band A-D of each probability (A is the highest; D below the C cut-off)."""
    return np.select([p >= bands["A"], p >= bands["B"], p >= bands["C"]], ["A", "B", "C"], "D")
