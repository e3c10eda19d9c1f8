"""Named simulated worlds: presets and world files that stress the models (the robustness matrix).

A *world* is a small, typed description of a CRM unlike the default one — a short history, another
pipeline, a low or high win rate, short or long cycles, a drifting win rate, rep turnover — turned
into a :class:`SimulationConfig` by :meth:`World.to_config`. Presets live in :data:`WORLDS`; a world
file (YAML or JSON) holds the same fields.

Example:
    >>> from forecast.data.simulation.worlds import load_world
    >>> world = load_world("stages-8")
    >>> world.to_config().pipeline.open_stages[:2]
    ['lead_in', 'scoping']
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.data.simulation.config import SimulationConfig

ALT_STAGE_NAMES = (
    "lead_in",
    "scoping",
    "solution_fit",
    "business_case",
    "evaluation",
    "commercials",
    "legal_review",
    "contracting",
)
"""Open-stage names of generated pipelines (none of them is a default stage name)."""
ALT_WON, ALT_LOST = "signed", "dropped"
DEFAULT_LEADS_PER_MONTH = 20_000 / 24
"""The default world's lead volume (20 000 leads over 24 months)."""


def stage_pipeline(n_open: int, names: list[str] | None = None) -> SalesPipeline:
    """A pipeline of ``n_open`` open stages with other names than the default one, then won / lost.

    Args:
        n_open: Number of open stages (1 to 8 without ``names``).
        names: Explicit open-stage names (``n_open`` is then their count); default: picked evenly
            from :data:`ALT_STAGE_NAMES`, keeping their order.

    Returns:
        The pipeline, named ``stages-<n>``.

    Raises:
        ValueError: If there are too many stages for the built-in names, or names repeat.
    """
    if names is None:
        if not 1 <= n_open <= len(ALT_STAGE_NAMES):
            raise ValueError(f"stages must lie between 1 and {len(ALT_STAGE_NAMES)} without names")
        picks = np.unique(np.round(np.linspace(0, len(ALT_STAGE_NAMES) - 1, n_open)).astype(int))
        names = [ALT_STAGE_NAMES[i] for i in picks]
    stages: list[dict[str, object]] = [{"name": n} for n in names]
    stages += [{"name": ALT_WON, "is_closed": True, "is_won": True}, {"name": ALT_LOST, "is_closed": True}]
    return SalesPipeline.from_dict({"name": f"stages-{len(names)}", "stages": stages})


class World(BaseModel):
    """A simulated world: the knobs of the robustness matrix on top of :class:`SimulationConfig`.

    Attributes:
        name: Label of the world (reports, file names).
        months: Months of history (the extraction time is ``start + months``).
        n_leads: Leads over the period; ``None``: ``leads_per_month × months``.
        leads_per_month: Lead volume when ``n_leads`` is not given (default world's: ~833).
        seed: Random seed.
        start: First day of the history.
        stages: Open stages: ``None`` keeps the default pipeline; a number generates a pipeline
            with other names (:func:`stage_pipeline`); a list gives the names.
        win_rate: Target eventual win rate of deals (e.g. 0.1 to 0.6); ``None``: the model's own (~0.3).
        cycle_days: Target median sales cycle of won deals in days (e.g. 20 to 200); ``None``: ~47.
        win_drift: Change of the win logit per year (e.g. -1.0: the win rate falls over time).
        rep_turnover: Share of reps leaving during the period, with as many joining.
        n_reps: Reps; ``None`` scales with the leads.
        quarter_push_days: Wins due within this many days of the quarter's end are often held to
            it (``None``: 21 days, within the third month; 75: the quarter's wins bunch in its
            third month, as in many real CRMs).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    months: int = Field(default=24, ge=1, le=120)
    n_leads: int | None = Field(default=None, ge=100)
    leads_per_month: float = Field(default=DEFAULT_LEADS_PER_MONTH, gt=0)
    seed: int = 42
    start: date = date(2024, 1, 1)
    stages: int | list[str] | None = None
    win_rate: float | None = Field(default=None, ge=0.01, le=0.99)
    cycle_days: float | None = Field(default=None, ge=1.0, le=2000.0)
    win_drift: float = 0.0
    rep_turnover: float | None = Field(default=None, ge=0.0, le=0.45)
    n_reps: int | None = Field(default=None, ge=1)
    quarter_push_days: float | None = Field(default=None, ge=0.0, le=92.0)

    @model_validator(mode="after")
    def _check_stages(self) -> World:
        if isinstance(self.stages, int) and not 1 <= self.stages <= len(ALT_STAGE_NAMES):
            raise ValueError(f"stages must lie between 1 and {len(ALT_STAGE_NAMES)}")
        if isinstance(self.stages, list) and not self.stages:
            raise ValueError("stages needs at least one name")
        return self

    def leads_for(self, months: int) -> int:
        """Leads of a period of ``months`` months at this world's volume."""
        if self.n_leads is not None and months == self.months:
            return self.n_leads
        per_month = self.n_leads / self.months if self.n_leads is not None else self.leads_per_month
        return max(100, round(per_month * months))

    def pipeline(self) -> SalesPipeline:
        """The world's pipeline."""
        if self.stages is None:
            return DEFAULT_PIPELINE
        if isinstance(self.stages, int):
            return stage_pipeline(self.stages)
        return stage_pipeline(len(self.stages), list(self.stages))

    def to_config(self, extra_months: int = 0) -> SimulationConfig:
        """The simulation configuration of this world.

        Args:
            extra_months: Months simulated after the history (a future to evaluate on, at the same
                lead volume); the extraction time moves with them.

        Returns:
            The configuration. The default world gives ``SimulationConfig()``'s output exactly.
        """
        months = self.months + extra_months
        return SimulationConfig(
            n_leads=self.leads_for(months),
            seed=self.seed,
            start=self.start,
            months=months,
            n_reps=self.n_reps,
            pipeline=self.pipeline(),
            win_rate=self.win_rate,
            win_drift=self.win_drift,
            cycle_days=self.cycle_days,
            rep_turnover=self.rep_turnover,
            quarter_push_days=self.quarter_push_days,
        )


def _preset(name: str, **fields: Any) -> World:
    return World(name=name, **fields)


WORLDS: dict[str, World] = {
    w.name: w
    for w in (
        _preset("default"),
        _preset("history-3m", months=3),
        _preset("history-6m", months=6),
        _preset("history-9m", months=9),
        _preset("history-24m", months=24),
        _preset("history-36m", months=36),
        _preset("stages-3", months=12, stages=3),
        _preset("stages-8", months=12, stages=8),
        _preset("win-10", months=12, win_rate=0.10),
        _preset("win-60", months=12, win_rate=0.60),
        _preset("cycle-20", months=12, cycle_days=20.0),
        _preset("cycle-200", months=12, cycle_days=200.0),
        _preset("drift", months=24, win_drift=-0.8),
        _preset("turnover", months=12, rep_turnover=0.3),
        _preset("quarter-end", months=12, quarter_push_days=75.0),
    )
}
"""Named presets (``forecast simulate --world NAME``): one knob each away from the default world."""


def load_world(name_or_path: str | Path) -> World:
    """A preset by name, or a world file (``.yaml``, ``.yml`` or ``.json``) holding :class:`World` fields.

    Raises:
        ValueError: For an unknown preset or an invalid file (the message lists the presets).
    """
    path = Path(name_or_path)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise ValueError(f"world file {path} not found")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError(f"world file {path}: expected a mapping of World fields")
        data.setdefault("name", path.stem)
        return World.model_validate(data)
    try:
        return WORLDS[str(name_or_path)]
    except KeyError:
        raise ValueError(
            f"unknown world {str(name_or_path)!r}; presets: {', '.join(WORLDS)} (or a .yaml/.json file)"
        ) from None
