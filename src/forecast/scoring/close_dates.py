"""Close dates: a time-to-close model's close-date distribution and slip risk of each deal."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forecast.errors import ScoringError
from forecast.scoring import fastpath
from forecast.scoring.model import ScoringModel

MAX_DAYS = 36_525
"""Largest day count taken as a date offset (a century)."""


def _dates_after(as_of: pd.Series, offsets: dict[str, np.ndarray]) -> dict[str, pd.Series]:
    """``(as_of + offset days).dt.normalize()`` per named offset, in one vectorised pass."""
    n = len(as_of)
    if not offsets or not n:
        return {name: (as_of + pd.to_timedelta(d, unit="D")).dt.normalize() for name, d in offsets.items()}
    stacked = as_of.iloc[np.tile(np.arange(n), len(offsets))].reset_index(drop=True)
    days = np.concatenate([np.asarray(d, dtype=float) for d in offsets.values()])
    dates = (stacked + pd.to_timedelta(days, unit="D")).dt.normalize()
    return {name: dates.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i, name in enumerate(offsets)}


def close_date_columns(model: ScoringModel, features: pd.DataFrame) -> pd.DataFrame:
    """Close-date distribution of each deal from a time-to-close model.

    Columns: ``p_close_<d>d`` for each reported horizon, ``close_date_p10`` / ``p50`` / ``p90``
    (dates by which the deal has closed with that probability; empty beyond the modelled
    horizon), ``expected_close_date`` (the rep's, when known) and ``slip_risk`` = P(the deal
    closes after the rep's expected close date; 1 when that date has already passed).

    Args:
        model: The loaded time-to-close model (pipeline ending in a hazard model).
        features: The model's input columns plus ``as_of``.
    """
    from forecast.models.survival import survival_at, survival_quantile

    survival_cfg = dict(model.meta.survival or {})
    edges = model.meta.survival_edges
    report = [float(x) for x in survival_cfg.get("report_days") or [30, 60, 90]]
    if not edges:
        raise ScoringError(f"model {model.name} v{model.version} is not a time-to-close model")
    surv = fastpath.survival(model.pipeline, features) if len(features) else np.empty((0, len(edges)))
    as_of = pd.to_datetime(features["as_of"]).reset_index(drop=True)
    columns: dict[str, Any] = {}
    for days in report:
        columns[f"p_close_{int(days)}d"] = np.round(1.0 - survival_at(surv, edges, days), 6)
    offsets = {f"close_date_p{int(q * 100)}": survival_quantile(surv, edges, q) for q in (0.1, 0.5, 0.9)}
    to_ecd = None
    if "days_to_expected_close" in features:
        to_ecd = pd.to_numeric(features["days_to_expected_close"], errors="coerce").to_numpy(dtype=float)
        # beyond a century the value is a data error, and no date can hold it: unknown
        to_ecd = np.where(np.abs(to_ecd) > MAX_DAYS, np.nan, to_ecd)
        offsets["expected_close_date"] = to_ecd
    columns.update(_dates_after(as_of, offsets))
    if to_ecd is not None:
        slip = np.where(to_ecd < 0, 1.0, survival_at(surv, edges, np.nan_to_num(to_ecd, nan=0.0)))
        columns["slip_risk"] = np.round(np.where(np.isnan(to_ecd), np.nan, slip), 6)
    out = pd.DataFrame(columns, index=range(len(features)))
    out["close_model_version"] = model.version
    return out.set_index(features.index)
