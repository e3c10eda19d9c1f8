"""The registered model names: one constant each, used instead of string literals.

A name is also the model's config stem (``training/<name>.yaml``), its MLflow experiment and
registered model by default, and its folder under ``models/``. The CLI spells them with hyphens
(``deal-win``).
"""

from __future__ import annotations

from typing import Final

LEAD_SCORING: Final = "lead_scoring"
"""P(lead converts within H) for open leads."""
DEAL_WIN: Final = "deal_win"
"""P(deal won within the CRM's cycle) for open deals."""
TIME_TO_CLOSE: Final = "time_to_close"
"""Discrete-time hazards of closing (won / lost) for open deals: close dates and slip risk."""
CHURN_RISK: Final = "churn_risk"
"""P(deal lost or silent within 30 days): the flags' p_churn of deals."""
CHURN_RISK_LEADS: Final = "churn_risk_leads"
"""P(lead disqualified or silent within 30 days): the flags' p_churn of leads."""

MODEL_NAMES: Final = (LEAD_SCORING, DEAL_WIN, TIME_TO_CLOSE, CHURN_RISK, CHURN_RISK_LEADS)
"""Every model forecast trains, in the order the CLI lists them."""


def cli_name(name: str) -> str:
    """The CLI spelling of a model name (``deal_win`` -> ``deal-win``)."""
    return name.replace("_", "-")
