"""Flags of the entities of one as_of: history signals + p_churn + rules -> flags and a summary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.features.build import ID_COLUMN
from forecast.flags.config import FlagsConfig
from forecast.flags.history import History, entity_attributes, stage_limits, unanswered_attempts
from forecast.flags.rules import Availability, evaluate_flags, summarise
from forecast.flags.silence import expected_silence, fit_silence
from forecast.models.names import CHURN_RISK


@dataclass
class ChurnScorer:
    """A churn model as the flags use it: the pipeline, its inputs and how its reasons read."""

    pipeline: Pipeline
    features: list[str]
    descriptions: dict[str, str]
    categorical: list[str]
    name: str = CHURN_RISK
    version: str | None = None


@dataclass
class SnapshotFlags:
    """Flags of one as_of: one row per (entity, flag), and one summary row per entity."""

    flags: pd.DataFrame
    summary: pd.DataFrame


def availability(history: History) -> Availability:
    """What the history's source records."""
    return Availability(history.has_activities, history.has_stage_history, history.has_close_dates)


def snapshot_signals(
    history: History, frame: pd.DataFrame, as_of: pd.Timestamp, config: FlagsConfig
) -> pd.DataFrame:
    """The learned and counted signals of each row of one as_of (aligned with ``frame``)."""
    ids = frame[ID_COLUMN[history.entity]].reset_index(drop=True)
    out = entity_attributes(history, ids)
    out.insert(0, "entity_id", ids.to_numpy())
    out = pd.concat([out, unanswered_attempts(history, ids, as_of)], axis=1)
    if history.entity == "opportunity":
        out["stage"] = frame["stage"].to_numpy()
        st = config.rules.stalled_in_stage
        limits = stage_limits(history, as_of, st.quantile, st.min_spells)
        out["stage_limit_days"] = out["stage"].map(limits["limit_days"]).astype(float)
        out["stage_spells"] = out["stage"].map(limits["spells"]).astype(float)
    else:
        out["stage_limit_days"] = np.nan
        out["stage_spells"] = np.nan
    model = fit_silence(history.gaps, as_of, config.going_cold, with_stage=history.entity == "opportunity")
    out = pd.concat([out, expected_silence(model, out)], axis=1)
    return out


def churn_probability(
    scorer: ChurnScorer, frame: pd.DataFrame, threshold: float | None = None, reasons: bool = True
) -> tuple[np.ndarray, pd.Series]:
    """p_churn of each row, and its main reason.

    Reasons are computed only for rows at or above ``threshold`` (all rows without one), and not
    at all without ``reasons``.
    """
    from forecast.scoring.reasons import reason_codes

    if frame.empty:
        return np.array([]), pd.Series(dtype=object)
    p = scorer.pipeline.predict_proba(frame[scorer.features])[:, 1]
    why_main = pd.Series([None] * len(frame), dtype=object)
    pick = np.flatnonzero(p >= threshold) if threshold is not None else np.arange(len(frame))
    if reasons and len(pick):
        why = reason_codes(
            scorer.pipeline,
            frame[scorer.features].iloc[pick],
            scorer.descriptions,
            top_k=1,
            kinds=dict.fromkeys(scorer.categorical, "categorical"),
        )
        why_main.iloc[pick] = why["reason_up_1"].to_numpy()
    return p, why_main


def flag_snapshot(
    history: History,
    frame: pd.DataFrame,
    as_of: pd.Timestamp,
    config: FlagsConfig,
    *,
    p_churn: np.ndarray | None = None,
    churn_reason: pd.Series | None = None,
) -> SnapshotFlags:
    """Every flag of the entities of one as_of.

    Args:
        history: The CRM history (read once).
        frame: The snapshot features of that as_of (one row per open entity).
        as_of: The snapshot time.
        config: Thresholds.
        p_churn: Churn probabilities aligned with ``frame`` (no churn flag without them).
        churn_reason: The main reason of each high p_churn.
    """
    frame = frame.reset_index(drop=True)
    signals = snapshot_signals(history, frame, as_of, config)
    if p_churn is not None:
        signals["p_churn"] = p_churn
        signals["churn_reason"] = (
            churn_reason.to_numpy() if churn_reason is not None else np.full(len(frame), None, dtype=object)
        )
    flags = evaluate_flags(frame, signals, history.entity, config, availability(history))
    summary = summarise(flags, len(frame), config)
    return SnapshotFlags(flags, summary)
