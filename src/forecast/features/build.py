"""Assemble snapshot feature tables: the spine, every feature family, and the labels.

The output has one row per (entity, as_of): the entity id (``lead_id`` or ``opportunity_id``),
``as_of``, the features of :func:`feature_catalogue`, and labels in ``label_*`` columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from forecast.features.catalog import Feature, catalogue_frame
from forecast.features.history import ACCOUNT_FEATURES, REP_FEATURES, account_features, rep_features
from forecast.features.origin import ORIGIN_FEATURES, origin_features
from forecast.features.profile import DEAL_PROFILE, LEAD_PROFILE, deal_profile, lead_profile
from forecast.features.snapshots import (
    CENSOR_FLAG,
    SPINE,
    LabelConfig,
    build_lead_spine,
    build_opportunity_spine,
)
from forecast.features.source import FeatureSource
from forecast.features.stages import STAGE_FEATURES, stage_features
from forecast.features.windows import (
    ACTIVITY_FEATURES,
    ENGAGEMENT_FEATURES,
    activity_features,
    engagement_features,
)

Entity = Literal["lead", "opportunity"]
ID_COLUMN: dict[Entity, str] = {"lead": "lead_id", "opportunity": "opportunity_id"}


def feature_catalogue(entity: Entity) -> list[Feature]:
    """Every feature of ``entity``'s snapshot table, in column order."""
    activity = [f for f, _ in ACTIVITY_FEATURES]
    engagement = [f for f, _ in ENGAGEMENT_FEATURES]
    if entity == "lead":
        return LEAD_PROFILE + activity + engagement + REP_FEATURES + ACCOUNT_FEATURES
    return (
        DEAL_PROFILE
        + ORIGIN_FEATURES
        + STAGE_FEATURES
        + activity
        + engagement
        + REP_FEATURES
        + ACCOUNT_FEATURES
    )


@dataclass
class FeatureTable:
    """A snapshot feature table and what describes it.

    Attributes:
        entity: ``lead`` or ``opportunity``.
        frame: The table (id, ``as_of``, features, ``label_*``).
        features: The catalogue of its feature columns.
        labels: Label column names.
        data_end: The data's last event (labels after it are censored).
        label_config: The label definitions used.
    """

    entity: Entity
    frame: pd.DataFrame
    features: list[Feature]
    labels: list[str]
    data_end: pd.Timestamp
    label_config: LabelConfig
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id_column(self) -> str:
        """Name of the entity id column."""
        return ID_COLUMN[self.entity]

    def summary(self) -> dict[str, Any]:
        """Rows, date range, label rates (on uncensored rows) and the catalogue, for reports and JSON."""
        f = self.frame
        rates: dict[str, Any] = {}
        for label, flag in CENSOR_FLAG.items():
            if label in f:
                known = f.loc[~f[flag].astype(bool), label].astype(float)
                rates[label] = {
                    "rate": None if known.empty else round(float(known.mean()), 4),
                    "known_rows": int(known.size),
                    "censored_rows": int(f[flag].astype(bool).sum()),
                }
        if "label_days_to_close" in f:
            closed = f.loc[f["label_close_observed"].astype(bool), "label_days_to_close"]
            rates["label_days_to_close"] = {
                "median_observed": None if closed.empty else round(float(closed.median()), 1),
                "observed_rows": int(closed.size),
                "censored_rows": int((~f["label_close_observed"].astype(bool)).sum()),
            }
        return {
            "entity": self.entity,
            "rows": len(f),
            "entities": int(f[self.id_column].nunique()),
            "as_of_dates": int(f["as_of"].nunique()),
            "as_of_from": None if f.empty else f["as_of"].min().isoformat(),
            "as_of_to": None if f.empty else f["as_of"].max().isoformat(),
            "data_end": self.data_end.isoformat(),
            "horizon_days": (
                self.label_config.lead_horizon_days
                if self.entity == "lead"
                else self.label_config.deal_horizon_days
            ),
            "labels": rates,
            "n_features": len(self.features),
            "warnings": self.warnings(),
        }

    def warnings(self) -> list[str]:
        """Plain-words warnings about the table (empty, labels mostly censored)."""
        out: list[str] = []
        if self.frame.empty:
            what = "leads" if self.entity == "lead" else "deals"
            out.append(f"no {what} were alive at any as_of date (does the source have {what}?)")
        return out

    def catalogue(self) -> list[dict[str, str]]:
        """The feature catalogue as records."""
        return catalogue_frame(self.features)


def build_feature_table(
    src: FeatureSource,
    entity: Entity,
    dates: Sequence[pd.Timestamp] | str,
    labels: LabelConfig | None = None,
    *,
    data_end: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
) -> FeatureTable:
    """Build the snapshot feature table of ``entity`` at each of ``dates``.

    Args:
        src: Where the CRM tables are.
        entity: ``lead`` or ``opportunity``.
        dates: The as_of dates, or :data:`~forecast.features.snapshots.AT_CREATION` for one
            snapshot per entity one second after its creation.
        labels: Label definitions (default horizons: 90 days).
        data_end: The data's end for censoring (default: the latest event in the data).
        progress: Called with the family being computed.

    Returns:
        The feature table.
    """
    labels = labels or LabelConfig()
    end = data_end if data_end is not None else src.data_end()
    say = progress or (lambda _m: None)
    say("snapshots")
    if entity == "lead":
        build_lead_spine(src, dates, labels, end)
        entity_sql = "SELECT lead_id AS entity_id, rep_id, account_id FROM leads"
        families: list[tuple[str, Callable[[], pd.DataFrame]]] = [
            ("profile", lambda: lead_profile(src)),
            ("activities", lambda: activity_features(src, "lead_id")),
            ("engagement", lambda: engagement_features(src, "lead")),
            ("rep history", lambda: rep_features(src, entity_sql)),
            ("account history", lambda: account_features(src, entity_sql, exclude_self=False)),
        ]
    else:
        build_opportunity_spine(src, dates, labels, end)
        entity_sql = "SELECT opportunity_id AS entity_id, rep_id, account_id FROM opportunities"
        families = [
            ("profile", lambda: deal_profile(src)),
            ("origin", lambda: origin_features(src)),
            ("stage history", lambda: stage_features(src)),
            ("activities", lambda: activity_features(src, "opportunity_id")),
            ("engagement", lambda: engagement_features(src, "opportunity")),
            ("rep history", lambda: rep_features(src, entity_sql)),
            ("account history", lambda: account_features(src, entity_sql, exclude_self=True)),
        ]
    spine = src.df(f"SELECT * FROM {SPINE} ORDER BY _sid").set_index("_sid")
    parts = []
    for name, compute in families:
        say(name)
        parts.append(compute())
    id_col = ID_COLUMN[entity]
    label_cols = [c for c in spine.columns if c.startswith("label_")]
    head = spine[["entity_id", "as_of"]].rename(columns={"entity_id": id_col})
    head["as_of"] = pd.to_datetime(head["as_of"]).astype("datetime64[ns]")
    frame = pd.concat([head, *parts, spine[label_cols]], axis=1)
    for col in label_cols:
        if col in ("label_days_to_close", "label_followup_days"):
            frame[col] = frame[col].astype("float64")
        elif col == "label_won":
            frame[col] = frame[col].astype("boolean")
        else:
            frame[col] = frame[col].astype(bool)
    frame = frame.reset_index(drop=True)
    catalogue = feature_catalogue(entity)
    assert [f.name for f in catalogue] == [
        c for c in frame.columns if c not in (id_col, "as_of", *label_cols)
    ]
    return FeatureTable(entity, frame, catalogue, label_cols, end, labels)
