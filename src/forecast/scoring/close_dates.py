"""Close dates: a time-to-close model's close-date distribution and slip risk of each deal.

The dates are computed on nanosecond integers with numpy (:func:`dates_after`), with pandas'
rules: a day count becomes a duration as ``pd.to_timedelta(days, unit="D")`` converts it, and the
date is ``Series.dt.normalize()``'s midnight. pandas' own arithmetic cost most of a one-deal
request (1.5 ms of 2.2 ms); the numpy rules are checked against pandas once per process and any
difference (another pandas) or a value out of its range sends the dates through pandas again.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from forecast.errors import ScoringError
from forecast.scoring import fastpath
from forecast.scoring.model import ScoringModel

MAX_DAYS = 36_525
"""Largest day count taken as a date offset (a century)."""

DAY_NS = 86_400 * 10**9
"""Nanoseconds in a day."""

_DIGITS = int(math.log10(DAY_NS))
"""Decimals pandas rounds a day count's fraction to before scaling it (``int(log10(unit in ns))``)."""

_NAT = np.iinfo(np.int64).min
"""NaT as an int64 (numpy's and pandas')."""

_MAX_OFFSET_DAYS = 100_000
"""Largest day count converted with numpy (its nanoseconds still fit an int64)."""


def days_to_ns(days: np.ndarray) -> np.ndarray:
    """``pd.to_timedelta(days, unit="D")`` as int64 nanoseconds (NaT for ``nan``), for finite |days| < 1e5.

    pandas converts a float day count in two parts so that the float's error does not reach the
    nanoseconds: the whole days (truncated towards zero) times the unit, plus the fraction rounded
    to :data:`_DIGITS` decimals, times the unit, truncated.
    """
    days = np.asarray(days, dtype=np.float64)
    missing = np.isnan(days)
    safe = np.where(missing, 0.0, days)
    whole = safe.astype(np.int64)
    fraction = np.round(safe - whole, _DIGITS)
    out = whole * DAY_NS + (fraction * DAY_NS).astype(np.int64)
    out[missing] = _NAT
    return out


def _midnight(stamps: np.ndarray) -> np.ndarray:
    """``Series.dt.normalize()`` of zone-less int64 nanoseconds (NaT stays NaT)."""
    out = stamps - np.mod(stamps, DAY_NS)
    out[stamps == _NAT] = _NAT
    return out


@cache
def _numpy_dates_agree() -> bool:
    """Whether :func:`dates_after`'s numpy rules give pandas' dates here (checked once per process)."""
    odd = [np.nan, 0.0, -0.0, 1e-9, -1e-9, 0.5, -0.5, 1 / 3, -2 / 3, 13.0, 29.99999, 364.123456789, -36_524.9]
    days = np.array([*odd, *np.linspace(-400.0, 400.0, 97)])
    moments = pd.Series(
        pd.to_datetime(
            ["1900-01-01 00:00:00", "1969-12-31 23:59:59.5", "2026-12-04 21:50:13.25", "2099-12-31 23:00:00"],
            format="ISO8601",
        )
    )
    stacked = moments.iloc[np.repeat(np.arange(len(moments)), len(days))].reset_index(drop=True)
    offsets = np.tile(days, len(moments))
    expected = (stacked + pd.to_timedelta(offsets, unit="D")).dt.normalize().to_numpy().view(np.int64)
    start = stacked.to_numpy().astype("datetime64[ns]").view(np.int64)
    return bool(np.array_equal(_numpy_dates(start, days_to_ns(offsets)), expected))


def _numpy_dates(start: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Midnight of ``start + step`` (int64 ns, NaT propagated)."""
    stamps = start + step
    stamps[(start == _NAT) | (step == _NAT)] = _NAT
    return _midnight(stamps)


def dates_after(as_of: Any, offsets: dict[str, np.ndarray]) -> dict[str, Any]:
    """``(as_of + offset days).dt.normalize()`` per named offset.

    Zone-less moments (a ``datetime64`` Series or array) get ``datetime64[ns]`` arrays computed with
    numpy; anything else (zones, moments or offsets near the ends of pandas' range) gets pandas'
    own Series (index ``0..n-1``), as before.

    Args:
        as_of: The moments.
        offsets: Day counts (float, ``nan`` unknown) per name, each as long as ``as_of``.
    """
    start = _nanoseconds(as_of.to_numpy() if isinstance(as_of, pd.Series) else np.asarray(as_of))
    if start is not None and offsets and _numpy_dates_agree():
        dates = _numpy_dates_of(start, offsets)
        if dates is not None:
            return dates
    series = pd.to_datetime(pd.Series(as_of).reset_index(drop=True))
    return {
        name: (series + pd.to_timedelta(np.asarray(days, dtype=float), unit="D")).dt.normalize()
        for name, days in offsets.items()
    }


_NS_PER = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def _nanoseconds(moments: np.ndarray) -> np.ndarray | None:
    """Zone-less ``datetime64`` moments as int64 nanoseconds (NaT kept); ``None`` if not such or beyond ns."""
    if moments.dtype.kind != "M":
        return None
    unit, count = np.datetime_data(moments.dtype)
    factor = _NS_PER.get(unit)
    if factor is None or count != 1:
        return None
    values = moments.view(np.int64)
    if factor == 1:
        return values
    known = values[values != _NAT]
    if len(known) and np.abs(known).max() >= -(_NAT + 1) // factor:
        return None
    out = values * factor
    out[values == _NAT] = _NAT
    return out


def _numpy_dates_of(start: np.ndarray, offsets: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """:func:`dates_after` with numpy, all offsets in one pass; ``None`` if a sum could leave the ns range."""
    n = len(start)
    days = np.concatenate([np.asarray(d, dtype=np.float64).reshape(-1) for d in offsets.values()])
    if not np.all(np.isnan(days) | (np.abs(days) <= _MAX_OFFSET_DAYS)):
        return None
    step = days_to_ns(days)
    starts = np.tile(start, len(offsets))
    known = (starts != _NAT) & (step != _NAT)
    if known.any():  # Python integers: no overflow in the test itself
        low = int(starts[known].min()) + int(step[known].min())
        high = int(starts[known].max()) + int(step[known].max())
        if low < _NAT + 1 + DAY_NS or high > -(_NAT + 1) - DAY_NS:
            return None
    dates = _numpy_dates(starts, step).view("datetime64[ns]")
    return {name: dates[i * n : (i + 1) * n] for i, name in enumerate(offsets)}


def close_date_arrays(
    model: ScoringModel, surv: np.ndarray, as_of: Any, days_to_expected_close: np.ndarray | None
) -> dict[str, Any]:
    """:func:`close_date_columns`' columns as arrays, from the deals' survival curves.

    Args:
        model: The time-to-close model (its survival edges and reported horizons).
        surv: The survival curves, shape (deals, edges) (:func:`forecast.scoring.fastpath.survival`).
        as_of: Each deal's moment (zone-less).
        days_to_expected_close: Days to the rep's expected close date (``nan`` unknown), or ``None``
            when the deals have no such column (no expected date and no slip risk).

    Returns:
        ``p_close_<d>d``, ``close_date_p10`` / ``p50`` / ``p90``, then with the expected close date
        ``expected_close_date`` and ``slip_risk``: float arrays, and dates as :func:`dates_after`
        gives them (``datetime64[ns]`` arrays for zone-less moments).
    """
    from forecast.models.survival import survival_at_columns, survival_quantiles

    survival_cfg = dict(model.meta.survival or {})
    edges = model.meta.survival_edges
    report = [float(x) for x in survival_cfg.get("report_days") or [30, 60, 90]]
    n = surv.shape[0]
    to_ecd = None
    if days_to_expected_close is not None:
        to_ecd = np.asarray(days_to_expected_close, dtype=float)
        # beyond a century the value is a data error, and no date can hold it: unknown
        to_ecd = np.where(np.abs(to_ecd) > MAX_DAYS, np.nan, to_ecd)
    # S at the reported horizons (and at the expected close date) in one pass
    days = np.empty((n, len(report) + (to_ecd is not None)))
    days[:, : len(report)] = report
    if to_ecd is not None:
        days[:, -1] = np.nan_to_num(to_ecd, nan=0.0)
    at = survival_at_columns(surv, edges, days)
    columns: dict[str, Any] = {}
    for j, horizon in enumerate(report):
        columns[f"p_close_{int(horizon)}d"] = np.round(1.0 - at[:, j], 6)
    quantiles = (0.1, 0.5, 0.9)
    spans = survival_quantiles(surv, edges, quantiles)
    offsets = {f"close_date_p{int(q * 100)}": spans[:, j] for j, q in enumerate(quantiles)}
    if to_ecd is not None:
        offsets["expected_close_date"] = to_ecd
    columns.update(dates_after(as_of, offsets))
    if to_ecd is not None:
        slip = np.where(to_ecd < 0, 1.0, at[:, -1])
        columns["slip_risk"] = np.round(np.where(np.isnan(to_ecd), np.nan, slip), 6)
    return columns


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
    edges = model.meta.survival_edges
    if not edges:
        raise ScoringError(f"model {model.name} v{model.version} is not a time-to-close model")
    surv = fastpath.survival(model.pipeline, features) if len(features) else np.empty((0, len(edges)))
    as_of = pd.to_datetime(features["as_of"]).reset_index(drop=True)
    to_ecd = None
    if "days_to_expected_close" in features:
        to_ecd = pd.to_numeric(features["days_to_expected_close"], errors="coerce").to_numpy(dtype=float)
    columns = close_date_arrays(model, surv, as_of, to_ecd)
    out = pd.DataFrame(columns, index=range(len(features)))
    out["close_model_version"] = model.version
    return out.set_index(features.index)
