"""Profile features: who the prospect is, where it came from, what is being sold, who sells it.

These are fields entered when the lead or deal is created (source, firmographics, product) and
the age of the record at as_of. Status fields, conversion and close dates are final-state and never
appear here.
"""

from __future__ import annotations

import pandas as pd

from forecast.features.catalog import Feature
from forecast.features.snapshots import SPINE
from forecast.features.source import FeatureSource

_SENIORITY = (
    """CASE
    WHEN {t} IS NULL THEN NULL
    WHEN regexp_matches(lower({t}), '(^|[^a-z])(ceo|cto|cfo|coo|cio|cmo|chief|founder|owner|president|"""
    # the literal goes on without a line break: one regular expression
    """c-level|c level|c-suite|cxo)([^a-z]|$)')
        THEN 'c_level'
    WHEN regexp_matches(lower({t}), '(^|[^a-z])(vp|vice president|head)([^a-z]|$)') THEN 'vp_head'
    WHEN regexp_matches(lower({t}), 'director') THEN 'director'
    WHEN regexp_matches(lower({t}), 'manager|lead') THEN 'manager'
    ELSE 'individual' END"""
)


def _profile(source: str, channel: str, industry: str, age: str) -> list[Feature]:
    """The profile features shared by leads and deals, with the words that differ."""
    return [
        Feature("source", "profile", source, "categorical"),
        Feature("channel", "profile", channel, "categorical"),
        Feature("title_seniority", "profile", "seniority of the contact's job title", "categorical"),
        Feature("industry", "profile", industry, "categorical"),
        Feature("company_size", "profile", "company size band", "categorical"),
        Feature("country", "profile", "country", "categorical"),
        Feature("employees", "profile", "the company's employees"),
        Feature("annual_revenue", "profile", "the company's annual revenue"),
        Feature("team", "profile", "the rep's team", "categorical"),
        Feature("region", "profile", "the rep's region", "categorical"),
        Feature("age_days", "profile", age),
    ]


LEAD_PROFILE = _profile(
    "where the lead came from",
    "inbound or outbound",
    "the prospect's industry",
    "days since the lead was created",
)
DEAL_PROFILE = [
    Feature("product", "profile", "product being sold", "categorical"),
    *_profile(
        "where the deal's lead came from",
        "inbound or outbound origin",
        "the customer's industry",
        "days since the deal was opened",
    ),
]


def lead_profile(src: FeatureSource) -> pd.DataFrame:
    """Profile features of lead snapshots."""
    sql = f"""
        SELECT s._sid, l.source, l.channel, {_SENIORITY.format(t="l.title")} AS title_seniority,
               coalesce(l.industry, a.industry) AS industry, l.company_size,
               coalesce(l.country, a.country) AS country,
               a.employees::DOUBLE AS employees, a.annual_revenue::DOUBLE AS annual_revenue,
               r.team, r.region,
               date_diff('second', l.created_at, s.as_of) / 86400.0 AS age_days
        FROM {SPINE} s JOIN leads l ON l.lead_id = s.entity_id
        LEFT JOIN accounts a ON a.account_id = l.account_id
        LEFT JOIN reps r ON r.rep_id = l.rep_id
        ORDER BY s._sid
    """
    return _typed(src.df(sql), LEAD_PROFILE)


def deal_profile(src: FeatureSource) -> pd.DataFrame:
    """Profile features of deal snapshots (the lead's origin and the account's firmographics)."""
    sql = f"""
        SELECT s._sid, o.product, l.source, l.channel, {_SENIORITY.format(t="l.title")} AS title_seniority,
               coalesce(a.industry, l.industry) AS industry, l.company_size,
               coalesce(a.country, l.country) AS country,
               a.employees::DOUBLE AS employees, a.annual_revenue::DOUBLE AS annual_revenue,
               r.team, r.region,
               date_diff('second', o.created_at, s.as_of) / 86400.0 AS age_days
        FROM {SPINE} s JOIN opportunities o ON o.opportunity_id = s.entity_id
        LEFT JOIN leads l ON l.lead_id = o.lead_id
        LEFT JOIN accounts a ON a.account_id = o.account_id
        LEFT JOIN reps r ON r.rep_id = o.rep_id
        ORDER BY s._sid
    """
    return _typed(src.df(sql), DEAL_PROFILE)


def _typed(frame: pd.DataFrame, features: list[Feature]) -> pd.DataFrame:
    out = frame.set_index("_sid")
    for f in features:
        if f.kind == "categorical":
            out[f.name] = out[f.name].astype(object).where(out[f.name].notna(), None)
        else:
            out[f.name] = out[f.name].astype("float64")
    return out[[f.name for f in features]]
