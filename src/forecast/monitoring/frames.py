"""Pure helpers on the reference and current frames: typing, outcomes, windows, data quality.

Every function takes and returns frames or plain values; nothing here reads files or MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from forecast.features.snapshots import CENSOR_FLAG
from forecast.monitoring.policy import DataQualityPolicy


def typed_features(frame: pd.DataFrame, features: list[str], categorical: list[str]) -> pd.DataFrame:
    """The features as Evidently and the checks need them: floats, and text (``None`` when missing).

    Raises:
        ValueError: A feature is missing from the frame.
    """
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise ValueError(
            f"lacks feature column(s) the model needs: {missing[:8]}{' …' if len(missing) > 8 else ''}"
        )
    cats = set(categorical)
    out = {}
    for col in features:
        values = frame[col]
        if col in cats:
            text = values.astype(object)
            out[col] = text.where(values.notna(), None).map(lambda v: v if v is None else str(v))
        else:
            if values.dtype == object:
                lowered = values.astype(str).str.strip().str.lower()
                values = values.where(~lowered.isin(["true", "false"]), lowered.eq("true"))
            out[col] = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


def _numbers(values: pd.Series) -> np.ndarray:
    """Floats from numbers, bools or their text (``"True"``, ``"0"``: a CSV holds text); NaN if missing."""
    if values.dtype == object or str(values.dtype) in ("string", "str"):
        text = values.astype(object)
        lowered = text.where(text.isna(), text.astype(str).str.strip().str.lower())
        values = lowered.replace({"true": "1", "false": "0"})
    return pd.to_numeric(values.astype(object), errors="coerce").to_numpy(dtype=float)


def outcomes(frame: pd.DataFrame, metadata: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row's 0/1 outcome and whether it has arrived (its label horizon has passed).

    Binary labels use their censor flag (:data:`~forecast.features.snapshots.CENSOR_FLAG`); a
    time-to-close model's "closes within d days" is known once the deal was followed for d days
    (or closed within them); without a flag, a label is known where it is not missing.

    Returns:
        ``(y, known)`` as int and bool arrays, or ``None`` when the frame has no outcome columns.
    """
    label = str(metadata.get("label") or "")
    survival = metadata.get("survival") or None
    if survival and {"label_days_to_close", "label_close_observed", "label_followup_days"} <= set(
        frame.columns
    ):
        days = float(survival.get("proba_days", 30))
        d = _numbers(frame["label_days_to_close"])
        closed = np.nan_to_num(_numbers(frame["label_close_observed"])) == 1
        follow = _numbers(frame["label_followup_days"])
        quick = closed & (d <= days)
        return quick.astype(int), (follow >= days) | quick
    if label not in frame.columns:
        return None
    y = _numbers(frame[label])
    known = np.isin(y, (0.0, 1.0))
    flag = CENSOR_FLAG.get(label)
    if flag is not None and flag in frame.columns:
        known &= _numbers(frame[flag]) == 0
    return np.where(known, y, 0).astype(int), known


def latest_rows(frame: pd.DataFrame, days: int, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Rows whose ``as_of`` falls in the last ``days`` days up to ``end`` (default: the latest as_of)."""
    if "as_of" not in frame.columns or frame.empty:
        return frame
    as_of = pd.to_datetime(frame["as_of"])
    last = as_of.max() if end is None else end
    return frame[as_of > last - pd.Timedelta(days=days)]


def sample_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows (a seeded sample, in the original order)."""
    if len(frame) <= n:
        return frame
    return frame.sample(n=n, random_state=seed).sort_index()


def data_quality_failures(
    reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str], policy: DataQualityPolicy
) -> list[str]:
    """Data-quality checks of the current features against the reference (typed frames).

    A feature fails when its missing share rises by more than ``max_missing_increase``; when more
    than ``max_new_category_share`` of current rows hold a category the reference never had;
    or when it varied in the reference (no value above 99% of rows) and is constant over at
    least ``stuck_min_rows`` current rows (a feed that stopped).

    Returns:
        One message per failed check.
    """
    failures: list[str] = []
    cats = set(categorical)
    for col in current.columns:
        if col not in reference.columns:
            continue
        ref, cur = reference[col], current[col]
        if cur.empty:
            continue
        ref_missing, cur_missing = float(ref.isna().mean()) if len(ref) else 0.0, float(cur.isna().mean())
        if cur_missing - ref_missing > policy.max_missing_increase:
            failures.append(f"{col}: missing in {cur_missing:.0%} of rows (reference {ref_missing:.0%})")
        present = cur.dropna()
        if col in cats and len(present):
            new = ~present.isin(set(ref.dropna()))
            if new.mean() > policy.max_new_category_share:
                values = ", ".join(map(str, present[new].value_counts().index[:3]))
                failures.append(
                    f"{col}: {new.mean():.0%} of rows hold values the reference never had ({values})"
                )
        ref_present = ref.dropna()
        if (
            len(present) >= policy.stuck_min_rows
            and present.nunique() == 1
            and len(ref_present)
            and ref_present.value_counts(normalize=True).iloc[0] < 0.99
        ):
            failures.append(
                f"{col}: constant ({present.iloc[0]}) in every current row, varied in the reference"
            )
    return failures
