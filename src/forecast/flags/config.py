"""Flags configuration (``training/flags.yaml``), typed with pydantic: every threshold in one file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from forecast.models.names import CHURN_RISK, CHURN_RISK_LEADS
from forecast.yaml_config import read_yaml_model

Severity = Literal["high", "medium", "low"]
SEVERITY_RANK: dict[str, int] = {"high": 3, "medium": 2, "low": 1}
"""Higher is more urgent; the top flag of an entity is its most severe one."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Flag(_Strict):
    """A flag that can be switched off, with its severity (subclasses set their default)."""

    enabled: bool = True
    severity: Severity = "medium"


class NoActivityRule(_Flag):
    """No touch (call, email, meeting, …) for ``days`` or more."""

    days: float = Field(default=14, gt=0)


class GhostedRule(_Flag):
    """``outbound_touches`` or more outbound attempts since the prospect's last answer."""

    outbound_touches: int = Field(default=4, ge=1)


class CloseOverdueRule(_Flag):
    """The expected close date passed more than ``grace_days`` ago and the deal is still open."""

    grace_days: float = Field(default=0, ge=0)


class StalledRule(_Flag):
    """Time in the current stage above that stage's ``quantile`` of past spells."""

    quantile: float = Field(default=0.9, gt=0, lt=1)
    min_spells: int = Field(default=20, ge=1, description="fewer completed spells of a stage: no flag")


class PushedRule(_Flag):
    """The expected close date was pushed later ``pushes`` times or more."""

    severity: Severity = "low"
    pushes: int = Field(default=2, ge=1)


class AmountDecreasedRule(_Flag):
    """The deal's amount was cut ``decreases`` times or more."""

    severity: Severity = "low"
    decreases: int = Field(default=1, ge=1)


class NoNextStepRule(_Flag):
    """No next action booked."""

    severity: Severity = "low"


class Rules(_Strict):
    """The rule warnings (each can be switched off)."""

    no_activity: NoActivityRule = NoActivityRule()
    ghosted: GhostedRule = GhostedRule()
    close_overdue: CloseOverdueRule = CloseOverdueRule()
    stalled_in_stage: StalledRule = StalledRule()
    close_date_pushed: PushedRule = PushedRule()
    amount_decreased: AmountDecreasedRule = AmountDecreasedRule()
    no_next_step: NoNextStepRule = NoNextStepRule()


class GoingCold(_Flag):
    """The learned silence: expected gap between touches of similar deals or leads."""

    severity: Severity = "high"
    quantile: float = Field(default=0.9, gt=0.5, lt=1, description="silence above this quantile is cold")
    dormant_quantile: float = Field(
        default=0.99,
        gt=0.5,
        lt=1,
        description=(
            "silence beyond this quantile of every gap that ended in a touch (all groups) is dormant, "
            "not going cold: hardly anyone was ever re-contacted after so long"
        ),
    )
    dormant_severity: Severity = Field(default="low", description="dormant records are a clean-up hint")
    history_days: float = Field(default=365, gt=0, description="gaps ended this long before as_of are used")
    shrinkage: float = Field(
        default=30, ge=0, description="pseudo-gaps pulling a small group's quantile to its coarser group"
    )
    cadence_bands: int = Field(default=3, ge=1, le=5, description="rep cadence bands (by median gap)")
    min_rep_gaps: int = Field(default=20, ge=1, description="fewer gaps: the rep's cadence is unknown")
    own_cadence: bool = Field(default=True, description="finest level: the entity's own past gaps")
    deal_segment: str = Field(default="product", description="opportunities column grouping deals")
    lead_segment: str = Field(default="source", description="leads column grouping leads")


class ChurnFlag(_Flag):
    """The learned churn risk becomes a flag at or above ``threshold``."""

    severity: Severity = "high"
    threshold: float = Field(default=0.5, gt=0, lt=1, description="deals")
    lead_threshold: float = Field(
        default=0.85, gt=0, lt=1, description="leads (most leads are disqualified or go silent within H)"
    )
    deal_model: str = CHURN_RISK
    lead_model: str = CHURN_RISK_LEADS


class BacktestSettings(_Strict):
    """How ``forecast backtest flags`` runs."""

    every: str = "14d"
    baseline_days: float = Field(default=14, gt=0, description="the fixed 'no activity for N days' rule")
    target: Literal["lost", "churn"] = "lost"
    deal_config: str = "churn_risk.yaml"
    lead_config: str = "churn_risk_leads.yaml"


class FlagsConfig(_Strict):
    """Everything the flags need besides the data.

    Attributes:
        horizon_days: The horizon H of churn (and of the backtest's actual losses).
        alert_severities: Flags of these severities make an entity "at risk" (counted in the
            backtest); lower ones are hints shown with the others.
        rules: The rule warnings.
        going_cold: The learned silence.
        churn_risk: The p_churn flag.
        backtest: Backtest settings.
    """

    horizon_days: int = Field(default=30, ge=1)
    alert_severities: list[Severity] = ["high"]
    rules: Rules = Rules()
    going_cold: GoingCold = GoingCold()
    churn_risk: ChurnFlag = ChurnFlag()
    backtest: BacktestSettings = BacktestSettings()

    @classmethod
    def from_yaml(cls, path: Path) -> FlagsConfig:
        """Read a YAML config.

        Raises:
            ValueError: With the file name and pydantic's field paths.
        """
        return read_yaml_model(cls, path, "flags config")

    def churn_threshold(self, entity: str) -> float:
        """The p_churn threshold of the churn_risk flag for ``entity``."""
        return self.churn_risk.threshold if entity == "opportunity" else self.churn_risk.lead_threshold

    def severity_of(self, flag: str) -> str:
        """The configured severity of a flag."""
        if flag == "going_cold":
            return self.going_cold.severity
        if flag == "dormant":
            return self.going_cold.dormant_severity
        if flag == "churn_risk":
            return self.churn_risk.severity
        return str(getattr(self.rules, flag).severity)
