"""The sales pipeline definition: ordered stages, which are closed and which are won.

The pipeline is configuration, not a table (docs/data-model.md). Every source adapter declares the
pipeline its stages follow; the simulator uses :data:`DEFAULT_PIPELINE`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes:
        name: Canonical stage name as stored in ``opportunities.stage`` and ``stage_history.stage``.
        order: Position in the pipeline (0 is the first open stage). Closed stages share the last order.
        is_closed: Whether a deal in this stage is finished.
        is_won: Whether a deal in this stage has been won (implies ``is_closed``).
    """

    name: str
    order: int
    is_closed: bool = False
    is_won: bool = False


@dataclass(frozen=True)
class SalesPipeline:
    """An ordered list of stages."""

    name: str
    stages: tuple[Stage, ...]

    @property
    def names(self) -> list[str]:
        """All stage names, in order."""
        return [s.name for s in self.stages]

    @property
    def open_stages(self) -> list[str]:
        """Names of the stages where a deal is still open, in order."""
        return [s.name for s in self.stages if not s.is_closed]

    @property
    def won_stages(self) -> list[str]:
        """Names of the closed-won stages."""
        return [s.name for s in self.stages if s.is_won]

    @property
    def lost_stages(self) -> list[str]:
        """Names of the closed-lost stages."""
        return [s.name for s in self.stages if s.is_closed and not s.is_won]

    def order_of(self, stage: str) -> int:
        """Return the position of ``stage`` in the pipeline.

        Raises:
            KeyError: If the stage is not part of the pipeline.
        """
        for s in self.stages:
            if s.name == stage:
                return s.order
        raise KeyError(stage)

    def to_dict(self) -> dict[str, object]:
        """Serialise to a plain dict (for YAML, JSON and the warehouse)."""
        return {
            "name": self.name,
            "stages": [{"name": s.name, "is_closed": s.is_closed, "is_won": s.is_won} for s in self.stages],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SalesPipeline:
        """Build a pipeline from ``{"name": ..., "stages": [{"name", "is_closed", "is_won"}, ...]}``.

        Open stages get increasing orders; closed stages share the order after the last open one.

        Raises:
            ValueError: If the definition is empty, has duplicate names or a won stage that is not closed.
        """
        raw = data.get("stages")
        if not isinstance(raw, list) or not raw:
            raise ValueError("pipeline definition needs a non-empty 'stages' list")
        stages: list[Stage] = []
        n_open = sum(1 for s in raw if not s.get("is_closed", False))
        next_open = 0
        for item in raw:
            name = str(item["name"])
            is_closed = bool(item.get("is_closed", False))
            is_won = bool(item.get("is_won", False))
            if is_won and not is_closed:
                raise ValueError(f"stage {name!r}: is_won requires is_closed")
            order = n_open if is_closed else next_open
            if not is_closed:
                next_open += 1
            stages.append(Stage(name, order, is_closed, is_won))
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"pipeline has duplicate stage names: {names}")
        if not any(s.is_won for s in stages) or not any(s.is_closed and not s.is_won for s in stages):
            raise ValueError("pipeline needs at least one won and one lost closed stage")
        return cls(name=str(data.get("name", "custom")), stages=tuple(stages))

    @classmethod
    def from_yaml(cls, path: Path) -> SalesPipeline:
        """Read a pipeline definition from a YAML file."""
        with path.open(encoding="utf-8") as fh:
            return cls.from_dict(yaml.safe_load(fh))


def _pipeline(name: str, open_stages: list[str], won: str, lost: str) -> SalesPipeline:
    stages: list[dict[str, object]] = [{"name": s} for s in open_stages]
    stages += [{"name": won, "is_closed": True, "is_won": True}, {"name": lost, "is_closed": True}]
    return SalesPipeline.from_dict({"name": name, "stages": stages})


DEFAULT_PIPELINE = _pipeline(
    "default",
    ["qualification", "discovery", "demo", "proposal", "negotiation"],
    "closed_won",
    "closed_lost",
)
"""The B2B pipeline the simulator follows and canonical imports use unless told otherwise."""

MAVEN_PIPELINE = _pipeline("maven", ["prospecting", "engaging"], "won", "lost")
"""The Maven CRM sample's stages (Prospecting > Engaging > Won / Lost)."""

SALESFORCE_PIPELINE = _pipeline(
    "salesforce",
    [
        "prospecting",
        "qualification",
        "needs_analysis",
        "value_proposition",
        "id_decision_makers",
        "perception_analysis",
        "proposal_price_quote",
        "negotiation_review",
    ],
    "closed_won",
    "closed_lost",
)
"""Salesforce's default opportunity stages, with names normalised to snake case."""
