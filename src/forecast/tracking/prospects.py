"""Prospect tracking (docs/tracking.md, 2): one row per open lead and open deal at the end of the period.

The leads and deals are those open at the snapshot, with their status, stage, amount and expected
close date then (:func:`_open_leads_at`, :func:`_deals_as_they_stood`). Last contact is the latest
activity done (either direction) on the lead or deal; the next action is the earliest planned
activity (``scheduled_for``) at or after the snapshot time; behaviour counts the prospect's
engagement events in the 30 days before it, and its last engagement is the latest event before it.
Nothing after the snapshot counts, so a past period's list is as it stood then. The score is the
latest lead score written by ``forecast score leads --write-back`` with an as-of not after the
snapshot ("no score yet" when the warehouse has none).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.as_of import deals_at, lead_status_at
from forecast.tracking.common import check_grouping, rows_of_columns, truth
from forecast.tracking.data import TrackingData, days
from forecast.tracking.lead_contacts import engagement_index, prospect_index
from forecast.tracking.periods import Period

GROUPINGS = ("rep", "team", "manager", "region", "source", "channel")
OPEN_STATUSES = ("new", "working", "qualified")
"""The statuses of a lead still open (not converted, not disqualified)."""
BEHAVIOUR_DAYS = 30
NO_SCORE = "no score yet"
_VISITS = ("web_visit", "page_view")
_SOCIAL = ("social_interaction", "email_click")
_ACTIVITY_COLUMNS = ("occurred_at", "lead_id", "opportunity_id", "done", "type", "scheduled_for")
"""The activities' columns the last contact and the next action read."""
BEHAVIOUR = (
    ("web_visits_30d", _VISITS),
    ("pricing_views_30d", ("pricing_page_view",)),
    ("social_actions_30d", _SOCIAL),
)
"""Each behaviour column and the engagement event types it counts."""


def prospects(data: TrackingData, period: Period, by: str = "rep") -> pd.DataFrame:
    """Open prospects (leads not yet converted and open deals) at the end of the period.

    Args:
        data: The tracking data.
        period: The period; the list is a snapshot at its end (or at as-of if earlier).
        by: The grouping used to sort the list (every key is a column anyway).

    Returns:
        One row per open lead or deal, grouped by ``by``, highest score and deal size first.
    """
    check_grouping("prospects", by, GROUPINGS, "leads carry no product")
    cutoff = min(period.end, data.as_of)
    open_leads = _open_leads_at(data.leads, cutoff)
    opps = data.opportunities
    open_deals = _deals_as_they_stood(
        opps[(opps["created_at"] < cutoff) & ~(opps["closed_at"] < cutoff)], data, cutoff
    )
    out = prospect_rows(open_leads, open_deals)
    if out.empty:
        return empty_list(out)
    every = data.activities  # the columns and rows read only: ten million activities on a large CRM
    last = _last_contact_of(every, cutoff, out["prospect_id"])
    soon = np.flatnonzero(truth((every["occurred_at"] < cutoff) & (every["scheduled_for"] >= cutoff)))
    planned = _with_entity(rows_of_columns(every, soon, _ACTIVITY_COLUMNS)).sort_values(
        "scheduled_for", kind="stable"
    )
    first = planned.groupby("entity").head(1).set_index("entity")
    behaviour = _behaviour(data.engagement, cutoff, out["lead_id"])
    return completed(out, cutoff, last, first, behaviour, data.lead_scores, by)


KEYS = ("rep", "rep_id", "team", "manager", "region", "source", "channel")
"""The group keys of each prospect's row."""


def prospect_rows(open_leads: pd.DataFrame, open_deals: pd.DataFrame) -> pd.DataFrame:
    """One row per open lead, then one per open deal, in their frames' order (no contact yet).

    Args:
        open_leads: The leads open at the cut-off: lead_id, created_at, status (then) and the keys.
        open_deals: The deals open then as they stood: opportunity_id, lead_id, created_at, stage,
            amount, expected_close_date and the keys.
    """
    lead_rows = pd.DataFrame(
        {
            "prospect_id": open_leads["lead_id"].astype(str),
            "kind": "lead",
            "lead_id": open_leads["lead_id"].astype(str),
            **{k: open_leads[k] for k in KEYS},
            "status": open_leads["status"],
            "created_at": open_leads["created_at"],
        }
    )
    deal_rows = pd.DataFrame(
        {
            "prospect_id": open_deals["opportunity_id"].astype(str),
            "kind": "opportunity",
            "lead_id": open_deals["lead_id"],
            **{k: open_deals[k] for k in KEYS},
            "status": open_deals["stage"],
            "created_at": open_deals["created_at"],
            "deal_size": open_deals["amount"],
            "expected_close": open_deals["expected_close_date"],
        }
    )
    out = pd.concat([d for d in (lead_rows, deal_rows) if not d.empty] or [deal_rows], ignore_index=True)
    out = out.reindex(columns=deal_rows.columns)  # open leads and no open deal: their columns empty
    out["deal_size"] = pd.to_numeric(out["deal_size"], errors="coerce")
    out["expected_close"] = pd.to_datetime(out["expected_close"])
    return out


def empty_list(out: pd.DataFrame) -> pd.DataFrame:
    """The list without a prospect (``out``: :func:`prospect_rows` of none), with every column."""
    return out.assign(
        last_contact=pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]"),
        days_since_contact=np.nan,
        next_action=None,
        next_action_at=pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]"),
        web_visits_30d=0,
        pricing_views_30d=0,
        social_actions_30d=0,
        last_engagement=pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns]"),
        score=np.nan,
        score_band=None,
        score_note=NO_SCORE,
    )


def completed(
    out: pd.DataFrame,
    cutoff: pd.Timestamp,
    last_contact: pd.Series,
    first_planned: pd.DataFrame,
    behaviour: dict[str, pd.Series],
    scores: pd.DataFrame | None,
    by: str,
) -> pd.DataFrame:
    """The list: :func:`prospect_rows`' ``out`` with what is known of each prospect, sorted.

    Args:
        out: The prospects' rows (not empty).
        cutoff: The snapshot time.
        last_contact: Each row's last done activity before the cut-off (``NaT``: none), on ``out``'s index.
        first_planned: By prospect id (deal, else lead), the earliest activity planned at or after
            the cut-off: its ``type`` and ``scheduled_for``.
        behaviour: The :data:`BEHAVIOUR` counts and ``last_engagement``, on ``out``'s index.
        scores: The written lead scores (``None``: none), the latest of each lead not after the cut-off read.
        by: The grouping the list is sorted by.
    """
    out["last_contact"] = last_contact
    out["days_since_contact"] = days(cutoff - out["last_contact"])
    out["next_action"] = out["prospect_id"].map(first_planned["type"])
    out["next_action_at"] = out["prospect_id"].map(first_planned["scheduled_for"])
    for name, values in behaviour.items():
        out[name] = values
    out = _with_scores(out, scores, cutoff)
    out = out.sort_values([by, "score", "deal_size"], ascending=[True, False, False], na_position="last")
    return out.reset_index(drop=True)


def _open_leads_at(leads: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The leads open at ``cutoff``, with their status then.

    Created before it and new, working or qualified then, by the rule of every cut of the leads
    (:func:`forecast.data.as_of.lead_status_at`): a status changed at or after the cut-off is not
    known then, so a lead converted or disqualified after a past period's end is in that period's
    list as ``working``.
    """
    status, _converted, _known = lead_status_at(leads, cutoff)
    open_now = truth(leads["created_at"] < cutoff) & truth(status.isin(OPEN_STATUSES))
    return leads[open_now].assign(status=status[open_now])


def _deals_as_they_stood(deals: pd.DataFrame, data: TrackingData, cutoff: pd.Timestamp) -> pd.DataFrame:
    """``deals`` (open at ``cutoff``) with the stage, amount and expected close date they had then.

    Those of each deal's last stage change before the cut-off, by the rule of the warehouse read
    (:func:`forecast.data.as_of.deals_at`): a deal closed after a past period's end is in that
    period's list in the stage it was in, not as ``closed_lost``. At the as of itself: as read.
    A value its changes before the cut-off do not record (a history that starts later, a change
    without an amount or a close date) is the one the warehouse holds at the as of, as the read
    takes it for a deal without any stage change: a later warehouse knows no earlier value.
    """
    if cutoff >= data.as_of or deals.empty:
        return deals
    history = data.stage_history
    mine = history[truth(history["opportunity_id"].isin(deals["opportunity_id"]))]
    return deals_at(deals, mine, data.pipeline, cutoff)


def _behaviour(events: pd.DataFrame, cutoff: pd.Timestamp, leads: pd.Series) -> dict[str, pd.Series]:
    """Each of ``leads``' engagement before ``cutoff``: the behaviour columns and the last engagement.

    The :data:`BEHAVIOUR` counts are of the 30 days before the cut-off; ``last_engagement`` is the
    lead's latest event before it (``NaT``: none).

    Looked up in the events' lead and type codes kept once per frame
    (:func:`~forecast.tracking.lead_contacts.engagement_index`); times with a zone are grouped in
    pandas (:func:`_behaviour_grouped`), with the same values.
    """
    index = engagement_index(events)
    if index is None:
        return _behaviour_grouped(events, cutoff, leads)
    start = cutoff - pd.Timedelta(days=BEHAVIOUR_DAYS)
    at = index.contacts.leads.get_indexer(pd.Index(leads))
    found = at >= 0
    out: dict[str, pd.Series] = {}
    each = index.counts_within(start, cutoff, [types for _name, types in BEHAVIOUR])
    for (name, _types), by_code in zip(BEHAVIOUR, each, strict=True):
        counts = np.zeros(len(at), dtype=np.int64)
        counts[found] = by_code[at[found]]
        out[name] = pd.Series(counts, index=leads.index)
    contacts = index.contacts
    out["last_engagement"] = contacts.looked_up(contacts.latest_before(cutoff), leads).rename(None)
    return out


def _behaviour_grouped(events: pd.DataFrame, cutoff: pd.Timestamp, leads: pd.Series) -> dict[str, pd.Series]:
    """:func:`_behaviour` by grouping the events in pandas."""
    before = events[events["occurred_at"] < cutoff]
    recent = before[before["occurred_at"] >= cutoff - pd.Timedelta(days=BEHAVIOUR_DAYS)]
    out: dict[str, pd.Series] = {}
    for name, types in BEHAVIOUR:
        counts = recent[recent["type"].isin(types)].groupby("lead_id").size()
        out[name] = leads.map(counts).fillna(0).astype(int)
    out["last_engagement"] = leads.map(before.groupby("lead_id")["occurred_at"].max()).rename(None)
    return out


def _with_entity(acts: pd.DataFrame) -> pd.DataFrame:
    """``acts`` with each one's prospect (``entity``): its deal where it is on one, else its lead."""
    return acts.assign(
        entity=np.where(acts["opportunity_id"].notna(), acts["opportunity_id"], acts["lead_id"])
    )


def _last_contact_of(acts: pd.DataFrame, cutoff: pd.Timestamp, prospects: pd.Series) -> pd.Series:
    """Each of ``prospects``' last done activity before ``cutoff`` (``NaT``: none), by deal else lead.

    Looked up in the activities' prospect codes kept once per frame
    (:func:`~forecast.tracking.lead_contacts.prospect_index`); times with a zone map the pandas
    grouping of :func:`_last_contacts`.
    """
    index = prospect_index(acts)
    if index is not None:
        return index.looked_up(index.latest_before(cutoff), prospects)
    return prospects.map(_last_contacts(acts, cutoff))


def _last_contacts(acts: pd.DataFrame, cutoff: pd.Timestamp) -> pd.Series:
    """Each prospect's last done activity before ``cutoff``, by prospect id, grouped in pandas."""
    before = acts.loc[acts["occurred_at"] < cutoff, list(_ACTIVITY_COLUMNS)]
    done = _with_entity(before[before["done"]])
    return done.groupby("entity")["occurred_at"].max()


def _with_scores(out: pd.DataFrame, scores: pd.DataFrame | None, cutoff: pd.Timestamp) -> pd.DataFrame:
    out = out.assign(score=np.nan, score_band=None, score_note=NO_SCORE)
    if scores is None or scores.empty or "lead_id" not in scores.columns or "score" not in scores.columns:
        return out
    s = scores.copy()
    if "as_of" in s.columns:
        s["as_of"] = pd.to_datetime(s["as_of"], errors="coerce")
        if isinstance(s["as_of"].dtype, pd.DatetimeTZDtype):  # a zone: as UTC, as every time here
            s["as_of"] = s["as_of"].dt.tz_convert("UTC").dt.tz_localize(None)
        s = s[s["as_of"] <= cutoff].sort_values("as_of", kind="stable")
    if s.empty:
        return out
    latest = s.groupby("lead_id").tail(1).set_index("lead_id")
    score = out["lead_id"].map(pd.to_numeric(latest["score"], errors="coerce"))
    out["score"] = score
    if "band" in latest.columns:
        out["score_band"] = out["lead_id"].map(latest["band"])
    out["score_note"] = np.where(score.notna(), "", NO_SCORE)
    if "as_of" in latest.columns:
        when = out["lead_id"].map(latest["as_of"])
        out["score_note"] = np.where(score.notna(), "scored " + when.dt.date.astype(str), NO_SCORE)
    return out
