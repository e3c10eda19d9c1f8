"""Deal-size bands of the small-data models: quantiles of the fitting rows' amounts.

The stage win incidence (:class:`~forecast.models.stage_incidence.StageWinIncidence`) and the
stage curves of time to close (:class:`~forecast.models.survival.StageKaplanMeier`) split each
stage by the same bands, each band's estimate shrunk towards its stage's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def amounts(X: pd.DataFrame, column: str) -> np.ndarray:  # noqa: N803
    """The column as floats (``nan``: no amount)."""
    return pd.to_numeric(X[column], errors="coerce").to_numpy(dtype=float)


def size_edges(X: pd.DataFrame, column: str | None, bins: int, min_rows: float) -> np.ndarray:  # noqa: N803
    """The inner quantile edges of ``bins`` size bands, or none (empty).

    Args:
        X: The fitting rows.
        column: The amount column (``None`` or absent: no bands).
        bins: Bands wanted (fewer than 2: no bands).
        min_rows: Fewer rows with an amount: no bands (too few for bands to say anything).
    """
    if column is None or column not in X.columns or bins < 2:
        return np.zeros(0)
    amount = amounts(X, column)
    known = np.isfinite(amount)
    if known.sum() < min_rows:
        return np.zeros(0)
    return np.unique(np.quantile(amount[known], np.linspace(0, 1, bins + 1)[1:-1]))


def size_band(edges: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """Each amount's band (``-1``: no amount)."""
    band = np.searchsorted(edges, amount, side="right")
    return np.where(np.isfinite(amount), band, -1)
