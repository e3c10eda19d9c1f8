"""Origin features of a deal: how its lead behaved before the deal was opened.

A deal snapshot at creation knows nothing about the deal itself yet, but the lead it came from has
a history: how fast it converted and how it answered the rep's calls and emails. Only the lead's
activities strictly before as_of count (they all happened before the deal was opened).
"""

from __future__ import annotations

import pandas as pd

from forecast.features.catalog import Feature
from forecast.features.snapshots import SPINE
from forecast.features.source import FeatureSource

ORIGIN_FEATURES = [
    Feature("origin_days_to_convert", "origin", "days the lead took to become a deal"),
    Feature("origin_touches", "origin", "contacts with the lead before the deal was opened"),
    Feature("origin_inbound", "origin", "times the lead reached out before the deal was opened"),
    Feature("origin_email_reply_rate", "origin", "share of the rep's emails the lead answered"),
    Feature("origin_meetings_completed", "origin", "meetings and demos held with the lead"),
    Feature("origin_call_connect_rate", "origin", "share of calls to the lead that connected"),
]


def origin_features(src: FeatureSource) -> pd.DataFrame:
    """Origin features of deal snapshots (missing where the deal has no lead)."""
    sql = f"""
        WITH s AS (
            SELECT sp._sid, sp.as_of, o.lead_id, o.created_at AS deal_created, l.created_at AS lead_created
            FROM {SPINE} sp JOIN opportunities o ON o.opportunity_id = sp.entity_id
            LEFT JOIN leads l ON l.lead_id = o.lead_id
        ),
        a AS (
            SELECT s._sid, x.type, x.direction, x.outcome, x.email_replied
            FROM s JOIN activities x ON x.lead_id = s.lead_id
            WHERE x.occurred_at < s.as_of AND x.occurred_at < s.deal_created
              AND x.outcome IS DISTINCT FROM 'scheduled'
        ),
        agg AS (
            SELECT _sid,
                   count(*) AS origin_touches,
                   count(*) FILTER (direction = 'inbound') AS origin_inbound,
                   avg(email_replied::DOUBLE) FILTER (type = 'email' AND direction = 'outbound')
                       AS origin_email_reply_rate,
                   count(*) FILTER (type IN ('meeting', 'demo') AND outcome = 'completed')
                       AS origin_meetings_completed,
                   avg((outcome = 'completed')::DOUBLE) FILTER (type = 'call') AS origin_call_connect_rate
            FROM a GROUP BY _sid
        )
        SELECT s._sid,
               greatest(date_diff('second', s.lead_created, s.deal_created) / 86400.0, 0)
                   AS origin_days_to_convert,
               CASE WHEN s.lead_id IS NULL THEN NULL ELSE coalesce(agg.origin_touches, 0) END
                   AS origin_touches,
               CASE WHEN s.lead_id IS NULL THEN NULL ELSE coalesce(agg.origin_inbound, 0) END
                   AS origin_inbound,
               agg.origin_email_reply_rate,
               CASE WHEN s.lead_id IS NULL THEN NULL ELSE coalesce(agg.origin_meetings_completed, 0) END
                   AS origin_meetings_completed,
               agg.origin_call_connect_rate
        FROM s LEFT JOIN agg USING (_sid)
        ORDER BY s._sid
    """
    out = src.df(sql).set_index("_sid")
    return out[[f.name for f in ORIGIN_FEATURES]].astype("float64")
