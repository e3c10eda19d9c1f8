"""BentoML service for the CRM. For now it serves the warehouse's data-quality summary.

Model endpoints (lead score, win probability, time to close, flags, revenue) join as the models
land. Start it with ``bentoml serve`` from the repository root (``bentofile.yaml`` names it).
"""

from __future__ import annotations

from typing import Any

import bentoml

from forecast.config import load_settings
from forecast.data.quality import quality_summary
from forecast.data.warehouse import Warehouse


@bentoml.service(name="forecast", traffic={"timeout": 30})
class ForecastService:
    """forecast over HTTP; settings come from ``FORECAST_*`` environment variables."""

    def __init__(self) -> None:
        self.settings = load_settings()

    @bentoml.api(route="/data_quality")
    def data_quality(self) -> dict[str, Any]:
        """The warehouse's data-quality summary (as ``forecast quality --json``)."""
        return quality_summary(Warehouse(self.settings.warehouse))
