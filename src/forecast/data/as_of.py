"""The CRM as it looked at a past moment: canonical tables cut at ``as_of``.

Backtests must not see the future. Rather than trusting every query to filter by date, a backtest
rebuilds the whole CRM as it stood at ``as_of`` and runs the ordinary code on it:

- records created at or after ``as_of`` are dropped (leads, deals, stage changes, activities,
  website events);
- a deal that closed at or after ``as_of`` is open again, with the stage, amount and expected close
  date of its last stage change before ``as_of``;
- a lead converted or disqualified at or after ``as_of`` is ``working`` again;
- reps, accounts and quotas (plans) are kept as they are.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from forecast.data.frames import column_at
from forecast.data.pipeline import SalesPipeline

EVENT_TIMES: dict[str, list[str]] = {
    "leads": ["created_at", "converted_at", "status_changed_at"],
    "opportunities": ["created_at", "closed_at"],
    "stage_history": ["entered_at"],
    "activities": ["occurred_at"],
    "engagement_events": ["occurred_at"],
}
"""The event times of each table: the latest of them is the data's end, and the midnight after its
day the CRM's default as-of (:func:`forecast.timeutil.as_of_after`)."""


def _before(frame: pd.DataFrame | None, column: str, when: pd.Timestamp) -> pd.DataFrame | None:
    """The rows of ``frame`` whose ``column`` is before ``when``, numbered from 0 (a new frame).

    ``frame.loc[mask].reset_index(drop=True)``, taken one column at a time: on ten million
    activities that whole-frame take first merges every text column into one block (a second of
    copying that holds Python's lock, so a dashboard's other requests wait for it).
    """
    if frame is None:
        return None
    times = _times(frame[column])
    keep = (times < when).to_numpy(dtype=bool, na_value=False)
    if not frame.columns.is_unique:  # a name for several columns: the frame's own take
        return frame.loc[keep].reset_index(drop=True)
    rows = np.flatnonzero(keep)
    index = pd.RangeIndex(len(rows))
    columns = {name: column_at(frame[name], rows, index) for name in frame.columns}
    return pd.DataFrame(columns, index=index, columns=frame.columns, copy=False)


def lead_status_at(leads: pd.DataFrame, when: pd.Timestamp) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Each lead's status at ``when``, whether it had converted by then, and whether its status is known.

    A lead converted before ``when`` is ``converted``; one whose status changed at or after it (or
    never) was ``working`` then, since the warehouse keeps only the last change; the others keep
    their status. The one rule of every cut of the leads (:func:`crm_as_of`, the tracking read, a
    past period's Prospects list).
    """
    converted = _times(leads["converted_at"]) < when
    known = (_times(leads["status_changed_at"]) < when) | converted
    status = leads["status"].where(known, "working").mask(converted, "converted")
    return status, converted, known


def _leads_at(leads: pd.DataFrame, when: pd.Timestamp) -> pd.DataFrame:
    out = leads.loc[_times(leads["created_at"]) < when].copy()
    status, converted, known = lead_status_at(out, when)
    out["converted_at"] = out["converted_at"].where(converted)
    out["opportunity_id"] = out["opportunity_id"].where(converted)
    out["status"] = status
    out["status_changed_at"] = out["status_changed_at"].where(known)
    return out.reset_index(drop=True)


def deals_at(
    opps: pd.DataFrame, history: pd.DataFrame | None, pipeline: SalesPipeline, when: pd.Timestamp
) -> pd.DataFrame:
    """Deals created before ``when``, as known then.

    Closes at or after ``when`` are undone; stage, amount and expected close date are those of
    each deal's last stage change before ``when``.
    """
    out = opps.loc[_times(opps["created_at"]) < when].copy()
    closed = _times(out["closed_at"]) < when
    out["closed_at"] = out["closed_at"].where(closed)
    out["loss_reason"] = out["loss_reason"].where(closed)
    out["outcome"] = out["outcome"].where(closed, "open")
    if history is not None and not history.empty:
        h = history.loc[_times(history["entered_at"]) < when]
        last = by_deal_and_time(h).groupby("opportunity_id").tail(1)
        last = last.set_index("opportunity_id")
        ids = out["opportunity_id"]
        for col in ("stage", "amount", "expected_close_date"):
            values = last[col].reindex(ids)
            known = values.notna().to_numpy()
            out.loc[known, col] = values.to_numpy()[known]
    reopened = (out["outcome"] == "open") & ~out["stage"].isin(pipeline.open_stages)
    if reopened.any() and pipeline.open_stages:
        out.loc[reopened, "stage"] = pipeline.open_stages[-1]
    return out.reset_index(drop=True)


def _times(values: pd.Series) -> pd.Series:
    """``pd.to_datetime(values, errors="coerce")``: ``values`` itself where they are times already.

    (pandas looks at a column's first values before it returns it unchanged: milliseconds a call,
    tens of calls a cut.)
    """
    kind = values.dtype
    if isinstance(kind, pd.DatetimeTZDtype) or (isinstance(kind, np.dtype) and kind.kind == "M"):
        return values
    return pd.to_datetime(values, errors="coerce")


def by_deal_and_time(history: pd.DataFrame) -> pd.DataFrame:
    """Stage changes sorted stably by deal and time: ``sort_values([...], kind="stable")``'s frame.

    ``history`` itself where it is in that order already (each deal's changes together, by id, in
    time order; a stable sort would leave every row where it is): a read of the changes in that
    order, or of changes sorted once and cut again, needs no second sort (two tenths of a second
    for the seven hundred thousand changes of a large CRM).
    """
    if _in_order(history):
        return history
    return history.sort_values(["opportunity_id", "entered_at"], kind="stable")


def _in_order(history: pd.DataFrame) -> bool:
    """Whether ``history`` is sorted by ``opportunity_id`` then ``entered_at`` (no missing time)."""
    if len(history) < 2:
        return False  # (one row: the sort's copy, as before)
    column, times = history["opportunity_id"], history["entered_at"]
    if column.dtype != np.dtype(object) or times.dtype.kind != "M" or times.isna().any():
        return False  # (categories, say, sort in their own order, not the values')
    ids = column.to_numpy()
    try:
        before, after = ids[:-1], ids[1:]
        ordered = before <= after
        same = before == after
    except TypeError:  # ids of several types: the sort says
        return False
    at = times.to_numpy()
    return bool(ordered.all() and (~same | (at[:-1] <= at[1:])).all())


def crm_as_of(
    tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp, pipeline: SalesPipeline
) -> dict[str, pd.DataFrame]:
    """The canonical tables as they were known just before ``as_of``.

    Args:
        tables: Canonical frames by table name (missing tables stay missing).
        as_of: The moment to rebuild.
        pipeline: The pipeline the deals follow (to reopen deals closed later).

    Returns:
        New frames; the inputs are not modified.
    """
    when = pd.Timestamp(as_of)
    out: dict[str, pd.DataFrame] = {}
    for name, frame in tables.items():
        if name == "leads":
            out[name] = _leads_at(frame, when)
        elif name == "opportunities":
            out[name] = deals_at(frame, tables.get("stage_history"), pipeline, when)
        elif name == "stage_history":
            out[name] = _before(frame, "entered_at", when)  # type: ignore[assignment]
        elif name in ("activities", "engagement_events"):
            out[name] = _before(frame, "occurred_at", when)  # type: ignore[assignment]
        else:
            out[name] = frame.copy()
    return out
