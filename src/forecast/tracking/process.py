"""The sales process (docs/tracking.md, 6): prospects in, qualification, conversion per stage, bottlenecks.

A *stay* is a deal's time in one open stage, from entering it to the next stage change (or its
close). Conversion per stage follows the deals that entered the stage in the period: ``advanced``
(reached a later stage or won by as-of) over ``advanced + lost`` (closed lost from that stage).
Time in stage is measured on stays that ended in the period. A deal is *stuck* when it has sat in
its current stage longer than 90% of the completed stays of that stage before the cut-off.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import pandas as pd

from forecast.data.as_of import by_deal_and_time
from forecast.tracking.common import (
    Row,
    add_rate,
    check_grouping,
    group_rows,
    memo,
    narrow,
    per_group,
    rows_of_columns,
    truth,
)
from forecast.tracking.data import ALL_LABEL, TrackingData, days, group_values, whole_history
from forecast.tracking.funnel import DAYS_PER_MONTH
from forecast.tracking.lead_contacts import contact_index
from forecast.tracking.periods import Period
from forecast.tracking.stats import NAN

GROUPINGS = ("rep", "team", "manager", "region", "source", "channel")
STAGE_GROUPINGS = (*GROUPINGS, "product")
NO_CONTACT_DAYS = 14
STUCK_QUANTILE = 0.9


_CONTACT_COLUMNS = ("lead_id", "occurred_at")
"""The activities' columns a lead's last contact reads."""


def process(
    data: TrackingData,
    period: Period,
    by: str = "channel",
    only: Collection[str] | None = None,
    *,
    brief: bool = False,
) -> pd.DataFrame:
    """Inbound and outbound prospects, qualified per month and lead conversion, per group.

    Args:
        data: The tracking data.
        period: The period.
        by: rep, team, manager, region, source or channel (leads carry no product).
        only: Only these groups' rows and ``(all)`` (:func:`~forecast.tracking.common.per_group`).
        brief: The new and qualified leads alone, not the open leads left without a contact
            (each open lead's last contact is the costly part): the same values as the whole
            table's, for a comparison of headline figures with another period.

    Returns:
        One row per group plus ``(all)``.
    """
    check_grouping("process", by, GROUPINGS, "leads carry no product; see the stage table")
    leads = data.leads
    cutoff = min(period.end, data.as_of)
    # each frame's rows of the columns a group's row reads (not every column of a million leads)
    created = rows_of_columns(
        leads, _rows(period.contains(leads["created_at"])), (by, "channel", "converted_at")
    )
    qualified_mask = period.contains(leads["converted_at"]) | (
        (leads["status"] == "qualified") & period.contains(leads["status_changed_at"])
    )
    qualified = rows_of_columns(leads, _rows(qualified_mask), (by,))
    silent = None if brief else _silent_open_leads(data, cutoff, by)
    months = period.days / DAYS_PER_MONTH
    created_rows, qualified_rows = (group_rows(f, by) for f in (created, qualified))
    inbound = truth(created["channel"] == "inbound")
    outbound = truth(created["channel"] == "outbound")
    converted = created["converted_at"].notna().to_numpy(dtype=bool)

    def compute(group: str) -> Row:  # counts at the group's row positions (frames split once)
        row: Row = {}
        c = created_rows(group)
        row["prospects"] = len(c)
        row["inbound_prospects"] = int(inbound[c].sum())
        row["outbound_prospects"] = int(outbound[c].sum())
        q = qualified_rows(group)
        row["qualified"] = len(q)
        row["qualified_per_month"] = len(q) / months if months > 0 else NAN
        add_rate(row, "lead_conversion", int(converted[c].sum()), len(c))
        if silent is not None:
            open_rows, is_silent = silent
            o = open_rows(group)
            row["open_leads"] = len(o)
            add_rate(row, "open_leads_silent", int(is_silent[o].sum()), len(o))
        return row

    return per_group(data, by, [created, qualified], compute, only=only)


def _silent_open_leads(
    data: TrackingData, cutoff: pd.Timestamp, by: str
) -> tuple[Callable[[str], np.ndarray], np.ndarray]:
    """The open leads at ``cutoff``: a group's rows among them, and whether each went without contact."""
    leads = data.leads
    open_mask = (
        (leads["created_at"] < cutoff)
        & leads["status"].isin(["new", "working", "qualified"])
        & leads["converted_at"].isna()
    )
    open_leads = rows_of_columns(leads, _rows(open_mask), (by, "lead_id", "created_at"))
    last = pd.to_datetime(last_contact_of(data.activities, cutoff, open_leads["lead_id"]))
    last = last.fillna(open_leads["created_at"])
    silent = days(cutoff - last) > NO_CONTACT_DAYS
    open_leads = narrow(open_leads.assign(silent=silent), by, "silent")
    return group_rows(open_leads, by), truth(open_leads["silent"])


def _rows(mask: pd.Series) -> np.ndarray:
    """The positions where a filter ``frame[mask]`` keeps a row."""
    return np.flatnonzero(truth(mask))


def last_contact_of(acts: pd.DataFrame, cutoff: pd.Timestamp, leads: pd.Series) -> pd.Series:
    """``leads.map(last_contacts(acts, cutoff))``: each lead's last done activity before ``cutoff``.

    From the lead codes' latest times, kept once per frame and cutoff, looked up in the codes' own
    index (a series indexed by a million leads anew for each cutoff is a second lookup table to
    build); times with a zone map :func:`last_contacts`.
    """
    index = contact_index(acts)
    if index is None:
        return leads.map(last_contacts(acts, cutoff))
    name = f"latest contact codes before {cutoff.isoformat()}"
    return index.looked_up(memo(acts, name, lambda: index.latest_before(cutoff)), leads)


def last_contacts(acts: pd.DataFrame, cutoff: pd.Timestamp) -> pd.Series:
    """Each lead's last done activity before ``cutoff``, by lead id (the leads without one absent).

    Computed once per activities frame and cutoff (:func:`~forecast.tracking.common.memo`): every
    grouping of the process report reads the same one. A new cutoff reads the activities' lead
    codes kept once per frame (:mod:`~forecast.tracking.lead_contacts`: a maximum per code), not a
    grouping of ten million activities by lead on a large CRM; times with a zone are grouped in
    pandas. The leads' order is not the activities' (it is for looking up). The series must not be
    changed.
    """

    def compute() -> pd.Series:
        index = contact_index(acts)
        if index is not None:
            return index.last_before(cutoff)
        # the rows and columns read are taken, not a copy of every activity
        contacts = acts.loc[acts["done"] & (acts["occurred_at"] < cutoff), list(_CONTACT_COLUMNS)]
        return contacts.groupby("lead_id", sort=False)["occurred_at"].max()

    return memo(acts, f"last contacts before {cutoff.isoformat()}", compute)


def stays(data: TrackingData) -> pd.DataFrame:
    """One row per stay in an open stage: start, end (``NaT`` while in it) and how it ended.

    ``result`` is ``advanced``, ``lost``, ``open`` (still there at as-of) or ``back`` (moved to an
    earlier stage). Consecutive rows of the same stage (amount changes) are one stay.

    Computed once per stage history, deals and pipeline (the same ``data``'s; each grouping of the
    stage table and the insights read it): the frame must not be changed.
    """
    held = memo(data.stage_history, "stays", lambda: (data.opportunities, data.pipeline, _stays(data)))
    if held[0] is data.opportunities and held[1] is data.pipeline:
        return held[2]
    return _stays(data)  # the same history with other deals (never in the reports): not kept


def _stays(data: TrackingData) -> pd.DataFrame:
    """:func:`stays`, computed."""
    hist = by_deal_and_time(whole_history(data, "stays"))  # (as prepared: already in that order)
    if hist.empty:
        return pd.DataFrame(columns=["opportunity_id", "stage", "entered_at", "left_at", "result", "days"])
    hist = hist[hist["stage"] != hist.groupby("opportunity_id")["stage"].shift(1)]
    pipeline = data.pipeline
    order = {s.name: s.order for s in pipeline.stages}
    lost_names = set(pipeline.lost_stages)
    closed_names = {s.name for s in pipeline.stages if s.is_closed}
    nxt = hist.groupby("opportunity_id")[["stage", "entered_at"]].shift(-1)
    deals = data.opportunities.set_index("opportunity_id")
    outcome = deals["outcome"].reindex(hist["opportunity_id"]).to_numpy()
    closed_at = deals["closed_at"].reindex(hist["opportunity_id"]).to_numpy()
    out = hist.assign(next_stage=nxt["stage"].to_numpy(), left_at=nxt["entered_at"].to_numpy())
    out = out[~out["stage"].isin(closed_names)].copy()
    keep = ~hist["stage"].isin(closed_names).to_numpy()
    outcome, closed_at = outcome[keep], closed_at[keep]
    no_next = out["next_stage"].isna().to_numpy()
    out.loc[no_next, "left_at"] = np.where(
        outcome[no_next] == "open", np.datetime64("NaT"), closed_at[no_next]
    )
    stage_order = out["stage"].map(order).to_numpy()
    next_order = out["next_stage"].map(order).to_numpy()
    result = np.where(
        no_next,
        np.where(outcome == "open", "open", np.where(outcome == "won", "advanced", "lost")),
        np.where(
            out["next_stage"].isin(lost_names).to_numpy(),
            "lost",
            np.where(next_order > stage_order, "advanced", "back"),
        ),
    )
    out["result"] = result
    out["left_at"] = pd.to_datetime(out["left_at"])
    out["days"] = days(out["left_at"] - out["entered_at"])
    return out.drop(columns=["next_stage"]).reset_index(drop=True)


def stage_table(
    data: TrackingData, period: Period, by: str = "channel", only: Collection[str] | None = None
) -> pd.DataFrame:
    """Conversion, time in stage and stuck deals per group and open stage.

    Args:
        data: The tracking data.
        period: The period.
        by: Any grouping (deals carry a product).
        only: Only these groups' rows and ``(all)``'s (the whole table's rows of them, in order).

    Returns:
        One row per group and stage (empty without stage history).
    """
    check_grouping("process", by, STAGE_GROUPINGS)
    all_stays = stays(data)
    if all_stays.empty:
        return pd.DataFrame()
    cutoff = min(period.end, data.as_of)
    done_before = all_stays[all_stays["left_at"] < cutoff]
    limits = done_before.groupby("stage")["days"].quantile(STUCK_QUANTILE)
    entered = all_stays[period.contains(all_stays["entered_at"])]
    ended = all_stays[period.contains(all_stays["left_at"])]
    current = all_stays[(all_stays["entered_at"] < cutoff) & ~(all_stays["left_at"] < cutoff)]
    current = current.assign(age=days(cutoff - current["entered_at"]))
    stages = list(data.pipeline.open_stages)
    e, f, c = (_ByGroupAndStage(frame, by, stages) for frame in (entered, ended, current))
    result = entered["result"]
    advanced_at, lost_at, open_at_ = (
        (result == r).to_numpy(dtype=bool, na_value=False) for r in ("advanced", "lost", "open")
    )
    ended_days = ended["days"].to_numpy()
    too_old = current["age"].to_numpy()
    rows = []
    groups = group_values(data, by, entered)
    if only is not None:
        groups = [g for g in groups if g in only]
    for group in [*groups, ALL_LABEL]:
        for k, stage in enumerate(stages):
            es, fs, cs = e.rows(group, k), f.rows(group, k), c.rows(group, k)
            row: Row = {by: group, "stage": stage, "entered": len(es)}
            advanced = int(advanced_at[es].sum())
            lost = int(lost_at[es].sum())
            row.update(advanced=advanced, lost=lost, still_open=int(open_at_[es].sum()))
            add_rate(row, "stage_conversion", advanced, advanced + lost)
            spent = pd.Series(ended_days[fs])  # pandas' median and mean of the same values in order
            row["days_median"] = float(spent.median()) if len(fs) else NAN
            row["days_mean"] = float(spent.mean()) if len(fs) else NAN
            row["days_n"] = len(fs)
            limit = float(limits.get(stage, NAN))
            row["stuck_limit_days"] = limit
            row["in_stage"] = len(cs)
            stuck = int((too_old[cs] > limit).sum()) if limit == limit else 0
            row["stuck"] = stuck
            add_rate(row, "stuck_share", stuck, len(cs) if limit == limit else 0)
            rows.append(row)
    return pd.DataFrame(rows)


class _ByGroupAndStage:
    """The row positions (ascending) of each group's stays in each stage of a stays frame."""

    def __init__(self, frame: pd.DataFrame, by: str, stages: list[str]) -> None:
        self.group = group_rows(frame, by)
        self.stage = pd.Categorical(frame["stage"], categories=stages).codes  # -1: another stage

    def rows(self, group: str, stage: int) -> np.ndarray:
        """The positions of ``group``'s stays in the ``stage``-th open stage."""
        rows = self.group(group)
        return rows[self.stage[rows] == stage]
