"""Activity and prospect-behaviour features: counts, rates and recency over 7 / 30 / 90-day windows.

Every aggregate reads only events strictly before the snapshot's as_of. "Days since" features of
something that never happened equal the record's age (the silence has lasted since creation), so
that "more recent" always means "smaller". Planned actions
(``outcome = 'scheduled'``) are not touches; their ``scheduled_for`` tells whether a next step is
booked.
"""

from __future__ import annotations

import pandas as pd

from forecast.data.schema import ACTIVITY_TYPES, ENGAGEMENT_TYPES
from forecast.features.catalog import Feature
from forecast.features.snapshots import SPINE
from forecast.features.source import FeatureSource

WINDOWS = (7, 30, 90)

_ACTIVITY_WORDS = {
    "call": "calls",
    "email": "emails",
    "sms": "text messages",
    "meeting": "meetings",
    "demo": "demos",
    "task": "tasks",
}
_ENGAGEMENT_WORDS = {
    "web_visit": "website visits",
    "page_view": "page views",
    "pricing_page_view": "pricing-page views",
    "form_submit": "form submissions",
    "content_download": "content downloads",
    "email_click": "email link clicks",
    "social_interaction": "social-media interactions",
}


def _activity_aggregates() -> list[tuple[Feature, str]]:
    f: list[tuple[Feature, str]] = []
    for t in ACTIVITY_TYPES:
        for w in WINDOWS:
            f.append(
                (
                    Feature(f"act_{t}_{w}d", "activity", f"{_ACTIVITY_WORDS[t]} in the last {w} days"),
                    f"count(*) FILTER (touch AND type = '{t}' AND age <= {w})",
                )
            )
    f += [
        (
            Feature(
                "act_inbound_30d",
                "activity",
                "inbound touches (the prospect reached out) in the last 30 days",
            ),
            "count(*) FILTER (touch AND direction = 'inbound' AND age <= 30)",
        ),
        (
            Feature("act_inbound_90d", "activity", "inbound touches in the last 90 days"),
            "count(*) FILTER (touch AND direction = 'inbound' AND age <= 90)",
        ),
        (
            Feature("act_outbound_30d", "activity", "outbound touches by the rep in the last 30 days"),
            "count(*) FILTER (touch AND direction = 'outbound' AND age <= 30)",
        ),
        (
            Feature("act_touches_total", "activity", "all touches so far"),
            "count(*) FILTER (touch)",
        ),
        (
            Feature(
                "act_call_connect_rate_90d", "activity", "share of calls that connected in the last 90 days"
            ),
            "avg((outcome = 'completed')::DOUBLE) FILTER (touch AND type = 'call' AND age <= 90)",
        ),
        (
            Feature(
                "act_call_avg_minutes_90d", "activity", "average length of connected calls (minutes, 90 days)"
            ),
            "avg(duration_seconds / 60.0) FILTER "
            "(touch AND type = 'call' AND outcome = 'completed' AND age <= 90)",
        ),
        (
            Feature("act_call_minutes_90d", "activity", "minutes spent on calls in the last 90 days"),
            "coalesce(sum(duration_seconds / 60.0) FILTER (touch AND type = 'call' AND age <= 90), 0)",
        ),
        (
            Feature("act_email_open_rate", "activity", "share of the rep's emails the prospect opened"),
            "avg(email_opened::DOUBLE) FILTER (touch AND type = 'email' AND direction = 'outbound')",
        ),
        (
            Feature("act_email_reply_rate", "activity", "share of the rep's emails the prospect answered"),
            "avg(email_replied::DOUBLE) FILTER (touch AND type = 'email' AND direction = 'outbound')",
        ),
        (
            Feature(
                "act_email_replies_30d", "activity", "email replies from the prospect in the last 30 days"
            ),
            "count(*) FILTER (touch AND type = 'email' AND "
            "(email_replied OR direction = 'inbound') AND age <= 30)",
        ),
        (
            Feature("act_meetings_completed_90d", "activity", "meetings and demos held in the last 90 days"),
            "count(*) FILTER (touch AND type IN ('meeting', 'demo') AND outcome = 'completed' AND age <= 90)",
        ),
        (
            Feature(
                "act_meetings_declined_90d", "activity", "meetings the prospect declined in the last 90 days"
            ),
            "count(*) FILTER (touch AND type IN ('meeting', 'demo') AND outcome = 'declined' AND age <= 90)",
        ),
        (
            Feature(
                "act_meeting_no_show_rate",
                "activity",
                "share of booked meetings that were no-shows or cancelled",
            ),
            "avg((outcome IN ('no_show', 'cancelled'))::DOUBLE) FILTER "
            "(touch AND type IN ('meeting', 'demo'))",
        ),
        (
            Feature(
                "act_days_since_last_touch", "activity", "days since the last contact (or since creation)"
            ),
            "min(age) FILTER (touch)",
        ),
        (
            Feature(
                "act_days_since_last_inbound",
                "activity",
                "days since the prospect last reached out (or since creation)",
            ),
            "min(age) FILTER (touch AND direction = 'inbound')",
        ),
        (
            Feature(
                "act_days_since_last_outbound",
                "activity",
                "days since the rep last reached out (or since creation)",
            ),
            "min(age) FILTER (touch AND direction = 'outbound')",
        ),
        (
            Feature("act_next_action_scheduled", "activity", "a next step is booked", "boolean"),
            "coalesce(bool_or(scheduled_for >= as_of), false)",
        ),
        (
            Feature("act_days_to_next_action", "activity", "days until the next booked step"),
            "min(date_diff('second', as_of, scheduled_for) / 86400.0) FILTER (scheduled_for >= as_of)",
        ),
    ]
    return f


def _engagement_aggregates() -> list[tuple[Feature, str]]:
    f: list[tuple[Feature, str]] = []
    for t in ENGAGEMENT_TYPES:
        for w in WINDOWS:
            f.append(
                (
                    Feature(f"eng_{t}_{w}d", "engagement", f"{_ENGAGEMENT_WORDS[t]} in the last {w} days"),
                    f"count(*) FILTER (type = '{t}' AND age <= {w})",
                )
            )
    f += [
        (
            Feature("eng_events_total", "engagement", "all website and content interactions so far"),
            "count(*)",
        ),
        (
            Feature("eng_events_7d", "engagement", "website and content interactions in the last 7 days"),
            "count(*) FILTER (age <= 7)",
        ),
        (
            Feature(
                "eng_trend_7v21",
                "engagement",
                "interest trend: interactions in the last 7 days against the weekly average of the 21 before",
            ),
            "(count(*) FILTER (age <= 7) + 1.0) / (count(*) FILTER (age > 7 AND age <= 28) / 3.0 + 1.0)",
        ),
        (
            Feature("eng_site_minutes_30d", "engagement", "minutes on the website in the last 30 days"),
            "coalesce(sum(value / 60.0) FILTER (type IN ('web_visit', 'page_view') AND age <= 30), 0)",
        ),
        (
            Feature(
                "eng_days_since_last",
                "engagement",
                "days since the last website or content interaction (or since creation)",
            ),
            "min(age)",
        ),
        (
            Feature(
                "eng_days_since_pricing_view",
                "engagement",
                "days since the last pricing-page view (or since creation)",
            ),
            "min(age) FILTER (type = 'pricing_page_view')",
        ),
    ]
    return f


ACTIVITY_FEATURES = _activity_aggregates()
ENGAGEMENT_FEATURES = _engagement_aggregates()
_RATE_OR_RECENCY = ("rate", "avg_minutes", "days_since", "days_to")


def _aggregate(
    src: FeatureSource, events_sql: str, aggregates: list[tuple[Feature, str]], extra: str = ""
) -> pd.DataFrame:
    """Join the spine to an event relation ``(entity_id, occurred_at, …)`` and aggregate per snapshot.

    Counts of snapshots without events are 0; rates and recencies stay missing (nothing to measure).
    """
    select = ",\n".join(f'{expr} AS "{feat.name}"' for feat, expr in aggregates)
    sql = f"""
        WITH ev AS ({events_sql}),
        j AS (
            SELECT s._sid, s.as_of, ev.*, date_diff('second', ev.occurred_at, s.as_of) / 86400.0 AS age
                   {extra}
            FROM {SPINE} s JOIN ev ON ev.entity_id = s.entity_id AND ev.occurred_at < s.as_of
        )
        SELECT _sid, {select} FROM j GROUP BY _sid
    """
    agg = src.df(sql)
    spine = src.df(
        f"SELECT _sid, date_diff('second', _born, as_of) / 86400.0 AS _age FROM {SPINE} ORDER BY _sid"
    )
    out = spine.merge(agg, on="_sid", how="left")
    for feat, _ in aggregates:
        if feat.kind == "boolean":
            out[feat.name] = out[feat.name].astype("boolean").fillna(False).astype(bool)
        elif not any(tag in feat.name for tag in _RATE_OR_RECENCY) and feat.name != "eng_trend_7v21":
            out[feat.name] = out[feat.name].fillna(0).astype("float64")
        elif feat.name.startswith(("act_days_since", "eng_days_since")):
            # Never happened: the silence has lasted since the record was created.
            out[feat.name] = out[feat.name].astype("float64").fillna(out["_age"]).clip(lower=0.0)
        else:
            out[feat.name] = out[feat.name].astype("float64")
    if "eng_trend_7v21" in out:
        out["eng_trend_7v21"] = out["eng_trend_7v21"].fillna(1.0)
    return out.drop(columns="_age").set_index("_sid")


def activity_features(src: FeatureSource, key: str) -> pd.DataFrame:
    """Activity features per snapshot, for the activities linked by ``key``.

    ``key`` is ``lead_id`` or ``opportunity_id``.
    """
    events = f"""SELECT {key} AS entity_id, occurred_at, type, direction, outcome, duration_seconds,
                    email_opened, email_replied, scheduled_for,
                    (outcome IS DISTINCT FROM 'scheduled') AS touch
                 FROM activities WHERE {key} IS NOT NULL"""
    return _aggregate(src, events, ACTIVITY_FEATURES)


def engagement_features(src: FeatureSource, entity: str) -> pd.DataFrame:
    """Prospect-behaviour features per snapshot.

    Leads see their own events. Deals see the events of the lead they came from and of their
    account (each event once).
    """
    if entity == "lead":
        events = (
            "SELECT lead_id AS entity_id, occurred_at, type, value FROM engagement_events "
            "WHERE lead_id IS NOT NULL"
        )
    else:
        # Two equi-joins and a UNION (an OR in one join condition would be a nested-loop join).
        events = """SELECT o.opportunity_id AS entity_id, e.occurred_at, e.type, e.value
                    FROM opportunities o JOIN engagement_events e ON e.lead_id = o.lead_id
                    UNION ALL
                    SELECT o.opportunity_id, e.occurred_at, e.type, e.value
                    FROM opportunities o JOIN engagement_events e ON e.account_id = o.account_id
                    WHERE e.lead_id IS DISTINCT FROM o.lead_id"""
    return _aggregate(src, events, ENGAGEMENT_FEATURES)
