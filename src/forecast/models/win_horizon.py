"""How many days ahead a fitted deal-win model's p_win reaches.

A deal-win model answers "won within H days", H its label horizon. Where half the history caps H
below the CRM's cycle, the served model also counts the wins expected after H, up to
``snapshots.p_win_days`` (:func:`forecast.features.horizon.tail_horizon`): a blended classifier
through its hazard (:class:`~forecast.models.win_blend.HazardBlendedClassifier`), the small-data
stage model by reading its incidence there. Whatever spreads p_win over time (the revenue
forecast's win dates) must use the days p_win reaches, not the label's.
"""

from __future__ import annotations

from typing import Any


def p_win_days(pipeline: Any, label_days: float) -> float:
    """The days ``pipeline``'s probability reaches: its model's own, else ``label_days``.

    Args:
        pipeline: A fitted deal-win pipeline (or model).
        label_days: The label horizon logged with it (``ModelMetadata.horizon_days``).
    """
    steps = getattr(pipeline, "steps", None)
    model = steps[-1][1] if steps else pipeline
    days = getattr(model, "p_win_days_", None)
    return float(days) if days is not None and float(days) > float(label_days) else float(label_days)


def _final(pipeline: Any) -> Any:
    steps = getattr(pipeline, "steps", None)
    return steps[-1][1] if steps else pipeline


def read_days(pipeline: Any, label_days: float) -> float:
    """The days ``pipeline``'s :func:`read_proba` reaches: what the data were read at.

    The small-data stage model may carry its p_win on past what the data follow
    (``snapshots.tail_extrapolate``); the revenue forecast spreads a win over the close model's
    timing, which stops where the data do, so it takes the incidence read from the data and these
    days. Every other model: :func:`p_win_days`.
    """
    days = getattr(_final(pipeline), "read_days_", None)
    return float(days) if days is not None else p_win_days(pipeline, label_days)


def read_proba(pipeline: Any, X: Any) -> Any:  # noqa: N803
    """P(won within :func:`read_days`) per row: ``predict_proba`` unless the model carries a tail on."""
    model = _final(pipeline)
    if not hasattr(model, "read_proba"):
        return pipeline.predict_proba(X)[:, 1]
    steps = getattr(pipeline, "steps", None)
    return model.read_proba(pipeline[:-1].transform(X) if steps and len(steps) > 1 else X)
