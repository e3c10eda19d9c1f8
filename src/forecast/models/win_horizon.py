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
