"""Track-record features: the rep's and the account's history, known at as_of.

Only deals closed (or leads resolved) strictly before as_of count, so a rep's win rate at a past
date is the one a manager could have computed on that date. Rates are shrunk towards the team-wide
rate of the same date (``k`` pseudo-observations) so that a rep with three closed deals is not
judged on them alone.
"""

from __future__ import annotations

import pandas as pd

from forecast.features.catalog import Feature
from forecast.features.snapshots import SPINE
from forecast.features.source import FeatureSource

SHRINK_K = 10.0

REP_FEATURES = [
    Feature(
        "rep_win_rate_prior",
        "rep",
        "the rep's win rate on deals closed before this date (shrunk to the team's)",
    ),
    Feature("rep_deals_closed_prior", "rep", "deals the rep had closed before this date"),
    Feature("rep_cycle_days_prior", "rep", "the rep's median days to win a deal, before this date"),
    Feature("rep_open_deals", "rep", "deals the rep has open at this date (workload)"),
    Feature("rep_touches_30d", "rep", "touches the rep logged in the last 30 days (all prospects)"),
    Feature(
        "rep_lead_conversion_prior",
        "rep",
        "share of the rep's settled leads that converted, before this date",
    ),
]
ACCOUNT_FEATURES = [
    Feature("acct_prior_deals", "account", "earlier deals with the same company"),
    Feature("acct_prior_won", "account", "earlier deals won with the same company"),
    Feature("acct_prior_lost", "account", "earlier deals lost with the same company"),
    Feature("acct_prior_won_amount", "account", "revenue already won from the same company"),
]


def rep_features(src: FeatureSource, entity_sql: str) -> pd.DataFrame:
    """Rep track record per snapshot.

    Args:
        src: The feature source (the spine exists).
        entity_sql: ``SELECT entity_id, rep_id FROM …`` for the spine's entity.
    """
    sql = f"""
        WITH s AS (
            SELECT sp._sid, sp.as_of, e.rep_id FROM {SPINE} sp JOIN ({entity_sql}) e USING (entity_id)
        ),
        pairs AS (SELECT DISTINCT rep_id, as_of FROM s WHERE rep_id IS NOT NULL),
        dates AS (SELECT DISTINCT as_of FROM pairs),
        closed AS (
            SELECT rep_id, created_at, closed_at, outcome
            FROM opportunities WHERE outcome IN ('won', 'lost')
        ),
        overall AS (
            SELECT d.as_of, avg((c.outcome = 'won')::DOUBLE) AS win_rate
            FROM dates d LEFT JOIN closed c ON c.closed_at < d.as_of GROUP BY d.as_of
        ),
        deals AS (
            SELECT p.rep_id, p.as_of, count(c.outcome) AS n, count(*) FILTER (c.outcome = 'won') AS won,
                   median(date_diff('second', c.created_at, c.closed_at) / 86400.0)
                       FILTER (c.outcome = 'won') AS cycle
            FROM pairs p LEFT JOIN closed c ON c.rep_id = p.rep_id AND c.closed_at < p.as_of
            GROUP BY p.rep_id, p.as_of
        ),
        open_deals AS (
            SELECT p.rep_id, p.as_of, count(o.opportunity_id) AS n_open
            FROM pairs p LEFT JOIN opportunities o ON o.rep_id = p.rep_id AND o.created_at < p.as_of
                 AND (o.closed_at IS NULL OR o.closed_at >= p.as_of)
            GROUP BY p.rep_id, p.as_of
        ),
        touches AS (
            SELECT p.rep_id, p.as_of, count(a.activity_id) AS n_touch
            FROM pairs p LEFT JOIN activities a ON a.rep_id = p.rep_id AND a.occurred_at < p.as_of
                 AND a.occurred_at >= p.as_of - INTERVAL 30 DAY AND a.outcome IS DISTINCT FROM 'scheduled'
            GROUP BY p.rep_id, p.as_of
        ),
        settled AS (
            SELECT rep_id, coalesce(converted_at, status_changed_at) AS settled_at,
                   status = 'converted' AS conv
            FROM leads WHERE status IN ('converted', 'disqualified')
        ),
        lead_overall AS (
            SELECT d.as_of, avg(l.conv::DOUBLE) AS conv_rate
            FROM dates d LEFT JOIN settled l ON l.settled_at < d.as_of GROUP BY d.as_of
        ),
        lead_conv AS (
            SELECT p.rep_id, p.as_of, count(l.conv) AS n, count(*) FILTER (l.conv) AS conv
            FROM pairs p LEFT JOIN settled l ON l.rep_id = p.rep_id AND l.settled_at < p.as_of
            GROUP BY p.rep_id, p.as_of
        )
        SELECT s._sid,
               (d.won + {SHRINK_K} * g.win_rate) / (d.n + {SHRINK_K}) AS rep_win_rate_prior,
               d.n::DOUBLE AS rep_deals_closed_prior,
               d.cycle AS rep_cycle_days_prior,
               od.n_open::DOUBLE AS rep_open_deals,
               t.n_touch::DOUBLE AS rep_touches_30d,
               (lc.conv + {SHRINK_K} * lg.conv_rate) / (lc.n + {SHRINK_K}) AS rep_lead_conversion_prior
        FROM s
        LEFT JOIN deals d USING (rep_id, as_of)
        LEFT JOIN overall g USING (as_of)
        LEFT JOIN open_deals od USING (rep_id, as_of)
        LEFT JOIN touches t USING (rep_id, as_of)
        LEFT JOIN lead_conv lc USING (rep_id, as_of)
        LEFT JOIN lead_overall lg USING (as_of)
    """
    return _on_spine(src, src.df(sql), REP_FEATURES)


def account_features(src: FeatureSource, entity_sql: str, exclude_self: bool) -> pd.DataFrame:
    """The account's earlier deals per snapshot.

    Args:
        src: The feature source (the spine exists).
        entity_sql: ``SELECT entity_id, account_id FROM …`` for the spine's entity.
        exclude_self: Leave the snapshot's own deal out (deal snapshots).
    """
    self_clause = "AND o.opportunity_id <> s.entity_id" if exclude_self else ""
    sql = f"""
        WITH s AS (
            SELECT sp._sid, sp.as_of, sp.entity_id, e.account_id
            FROM {SPINE} sp JOIN ({entity_sql}) e USING (entity_id) WHERE e.account_id IS NOT NULL
        )
        SELECT s._sid,
               count(o.opportunity_id)::DOUBLE AS acct_prior_deals,
               count(*) FILTER (o.outcome = 'won' AND o.closed_at < s.as_of)::DOUBLE AS acct_prior_won,
               count(*) FILTER (o.outcome = 'lost' AND o.closed_at < s.as_of)::DOUBLE AS acct_prior_lost,
               coalesce(sum(o.amount) FILTER (o.outcome = 'won' AND o.closed_at < s.as_of), 0)
                   AS acct_prior_won_amount
        FROM s LEFT JOIN opportunities o
             ON o.account_id = s.account_id AND o.created_at < s.as_of {self_clause}
        GROUP BY s._sid
    """
    out = _on_spine(src, src.df(sql), ACCOUNT_FEATURES)
    return out.fillna(0.0)


def _on_spine(src: FeatureSource, frame: pd.DataFrame, features: list[Feature]) -> pd.DataFrame:
    spine = src.df(f"SELECT _sid FROM {SPINE} ORDER BY _sid")
    out = spine.merge(frame, on="_sid", how="left").set_index("_sid")
    return out[[f.name for f in features]].astype("float64")
