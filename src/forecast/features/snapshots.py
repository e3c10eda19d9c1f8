"""Snapshots: one row per entity alive at each as_of date, with labels from what happens afterwards.

A lead is alive at ``as_of`` when it was created before it and had neither converted nor been
disqualified before it (a disqualified lead without a disqualification date, as Salesforce exports
give, cannot be placed in time and is left out; so is a converted lead without a conversion date).
A deal is alive when it was created before ``as_of`` and had not closed before it. Features
(elsewhere) use only events strictly before ``as_of``; the labels here use only what happens at or
after it, and say when the data ends too early to know (censoring).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from forecast.errors import InputError
from forecast.features.source import FeatureSource

CENSOR_FLAG = {
    "label_converted": "label_censored",
    "label_won": "label_won_censored",
    "label_won_within_h": "label_within_h_censored",
    "label_lost_within_h": "label_within_h_censored",
    "label_closed_within_h": "label_within_h_censored",
    "label_disqualified_within_h": "label_censored",
    "label_churn": "label_churn_censored",
}
"""For each binary label, the column that says its value is not known yet."""

TOUCH_SQL = "outcome IS DISTINCT FROM 'scheduled'"
"""An activity is a touch (a contact that happened) unless it is only a planned next action."""


def _silent_sql(key: str, h: int) -> str:
    """SQL that is true when the snapshot's entity gets no touch in [as_of, as_of + h days).

    A source without any activity at all (the Maven sample) cannot show silence: the expression is
    then false, so churn there means lost (or disqualified) only.
    """
    return f"""(EXISTS (SELECT 1 FROM activities)
                AND NOT EXISTS (SELECT 1 FROM activities a
                                WHERE a.{key} = e.entity_id AND {TOUCH_SQL}
                                  AND a.occurred_at >= e.as_of
                                  AND a.occurred_at < e.as_of + INTERVAL {h} DAY))"""


SPINE = "_spine"
"""Name of the temporary spine table: ``_sid`` (row id), ``entity_id``, ``as_of``, ``_born`` (the
entity's creation) and labels."""


@dataclass(frozen=True)
class LabelConfig:
    """Label definitions.

    Attributes:
        lead_horizon_days: A lead is a positive if it converts within this many days of as_of.
        deal_horizon_days: Horizon of ``label_won_within_h`` and ``label_closed_within_h``.
    """

    lead_horizon_days: int = 90
    deal_horizon_days: int = 90

    @classmethod
    def both(cls, days: int) -> LabelConfig:
        """The same horizon for leads and deals (a table of one entity reads only its own)."""
        return cls(days, days)


def parse_every(value: str) -> pd.Timedelta:
    """Parse a cadence such as ``7d``, ``2w`` or ``1m`` (30 days).

    Raises:
        ValueError: For anything else.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([dwm])\s*", value.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"cadence {value!r} must look like 7d, 2w or 1m")
    n, unit = int(match.group(1)), match.group(2)
    return pd.Timedelta(days=n * {"d": 1, "w": 7, "m": 30}[unit])


def as_of_grid(start: pd.Timestamp, end: pd.Timestamp, every: pd.Timedelta) -> list[pd.Timestamp]:
    """Dates from ``start`` to ``end`` (inclusive) every ``every``, at midnight."""
    if end < start:
        raise InputError(f"{end.date()} is before the start ({start.date()})", parameter="to")
    dates = pd.date_range(start.normalize(), end.normalize(), freq=every)
    return list(dates)


def _register_dates(src: FeatureSource, dates: Sequence[pd.Timestamp]) -> None:
    if not dates:
        raise ValueError("no as_of dates given")
    frame = pd.DataFrame({"as_of": pd.to_datetime(list(dates)).astype("datetime64[ns]")}).drop_duplicates()
    src.con.register("_asof_frame", frame)
    src.con.execute("CREATE OR REPLACE TEMP TABLE _asof AS SELECT as_of FROM _asof_frame")
    src.con.unregister("_asof_frame")


AT_CREATION = "at_creation"
"""Pass as ``dates`` to snapshot every entity one second after its creation (nothing known yet)."""


def _date_join(src: FeatureSource, dates: Sequence[pd.Timestamp] | str, alias: str) -> str:
    """The FROM-clause fragment pairing entities with their as_of dates."""
    if isinstance(dates, str):
        if dates != AT_CREATION:
            raise ValueError(f"unknown snapshot spec {dates!r}")
        return f"CROSS JOIN LATERAL (SELECT {alias}.created_at + INTERVAL 1 SECOND AS as_of) d"
    _register_dates(src, dates)
    return f"JOIN _asof d ON {alias}.created_at < d.as_of"


def build_lead_spine(
    src: FeatureSource, dates: Sequence[pd.Timestamp] | str, labels: LabelConfig, data_end: pd.Timestamp
) -> None:
    """Create the spine of lead snapshots with their labels.

    Labels: ``label_converted`` (converted within the horizon) and ``label_censored`` (the horizon
    passes the data's end, so the label is not known for every lead of that date; train on
    uncensored rows only). ``label_disqualified_within_h``: disqualified within the horizon (censored
    by ``label_censored``). ``label_churn``: the lead is disqualified within the horizon, or it is
    still open at its end and got no touch during it (gone silent); ``label_churn_censored`` by the
    same date rule.
    """
    join = _date_join(src, dates, "l")
    h = int(labels.lead_horizon_days)
    src.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {SPINE} AS
        WITH e AS (
            SELECT l.lead_id AS entity_id, d.as_of, l.created_at AS _born,
                   (l.converted_at IS NOT NULL AND l.converted_at < d.as_of + INTERVAL {h} DAY) AS _conv,
                   coalesce(
                       l.status = 'disqualified' AND l.status_changed_at < d.as_of + INTERVAL {h} DAY, false
                   ) AS _disq
            FROM leads l {join}
            WHERE (l.converted_at IS NULL OR l.converted_at >= d.as_of)
              AND NOT (l.status = 'disqualified' AND coalesce(l.status_changed_at < d.as_of, true))
              AND NOT (l.status = 'converted' AND l.converted_at IS NULL)
        )
        SELECT row_number() OVER (ORDER BY e.as_of, e.entity_id) - 1 AS _sid,
               e.entity_id, e.as_of, e._born,
               e._conv AS label_converted,
               (e.as_of + INTERVAL {h} DAY > ?) AS label_censored,
               e._disq AS label_disqualified_within_h,
               (e._disq OR (NOT e._conv AND {_silent_sql("lead_id", h)})) AS label_churn,
               (e.as_of + INTERVAL {h} DAY > ?) AS label_churn_censored
        FROM e
        """,
        [data_end.to_pydatetime(), data_end.to_pydatetime()],
    )


def build_opportunity_spine(
    src: FeatureSource, dates: Sequence[pd.Timestamp] | str, labels: LabelConfig, data_end: pd.Timestamp
) -> None:
    """Create the spine of deal snapshots with their labels.

    Labels: ``label_won`` (eventually won; null while still open at the data's end),
    ``label_won_censored`` (still open at the end; the known ``label_won`` of recent snapshots
    leans towards quick losses, so models train on ``label_won_within_h`` with a long horizon),
    ``label_won_within_h`` and ``label_closed_within_h`` (won / closed within the horizon;
    ``label_within_h_censored`` when the horizon passes the data's end), ``label_lost_within_h``,
    ``label_days_to_close`` (days from as_of to the close, or to the data's end while open) with
    ``label_close_observed``, ``label_followup_days`` (days from as_of to the data's end), and
    ``label_churn``: lost within the horizon, or still open at its end without any touch during it
    (gone silent); ``label_churn_censored`` by the same date rule.

    A fixed-horizon label is censored whenever its horizon passes the data's end, whatever
    happened before: keeping the rows whose outcome came early (a quick loss, a quick conversion)
    and dropping the others would bias the labels of the latest snapshots towards fast outcomes.
    """
    join = _date_join(src, dates, "o")
    h = int(labels.deal_horizon_days)
    src.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {SPINE} AS
        WITH e AS (
        SELECT o.opportunity_id AS entity_id, d.as_of, o.created_at AS _born,
               CASE WHEN o.outcome = 'open' THEN NULL ELSE o.outcome = 'won' END AS label_won,
               (o.outcome = 'open') AS label_won_censored,
               (o.outcome = 'won' AND o.closed_at < d.as_of + INTERVAL {h} DAY) AS label_won_within_h,
               (o.outcome = 'lost' AND o.closed_at < d.as_of + INTERVAL {h} DAY) AS label_lost_within_h,
               (o.outcome <> 'open' AND o.closed_at < d.as_of + INTERVAL {h} DAY) AS label_closed_within_h,
               (d.as_of + INTERVAL {h} DAY > ?) AS label_within_h_censored,
               date_diff('second', d.as_of, coalesce(o.closed_at, ?)) / 86400.0 AS label_days_to_close,
               (o.outcome <> 'open') AS label_close_observed,
               date_diff('second', d.as_of, ?) / 86400.0 AS label_followup_days
        FROM opportunities o {join}
        WHERE o.closed_at IS NULL OR o.closed_at >= d.as_of
        )
        SELECT row_number() OVER (ORDER BY e.as_of, e.entity_id) - 1 AS _sid, e.*,
               (e.label_lost_within_h
                OR (NOT e.label_closed_within_h AND {_silent_sql("opportunity_id", h)})) AS label_churn,
               e.label_within_h_censored AS label_churn_censored
        FROM e
        """,
        [data_end.to_pydatetime(), data_end.to_pydatetime(), data_end.to_pydatetime()],
    )
