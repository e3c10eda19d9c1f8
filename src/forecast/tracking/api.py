"""The tracking reports by name: the one place the CLI (and scripts) go through.

```python
from forecast.tracking import api

data = api.open_warehouse(Path("data/warehouse.duckdb"))          # read-only, as of the data's end
period = api.parse_period("month", data.as_of)
api.report(data, "funnel", period, by="rep")["funnel"]            # a DataFrame
api.insights(data, period).insights                               # ranked decisions
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecast.data.warehouse import Warehouse
from forecast.tracking.adjust import adjusted
from forecast.tracking.data import TrackingData
from forecast.tracking.effectiveness import effectiveness
from forecast.tracking.funnel import funnel, loss_reasons, monthly
from forecast.tracking.goals import daily, goals
from forecast.tracking.insights import InsightConfig, InsightReport, insights
from forecast.tracking.performance import performance
from forecast.tracking.periods import Period, parse_period
from forecast.tracking.process import process, stage_table
from forecast.tracking.prospects import prospects
from forecast.tracking.read import load

__all__ = [
    "DEFAULT_BY",
    "REPORTS",
    "InsightConfig",
    "InsightReport",
    "Period",
    "Report",
    "default_period",
    "insights",
    "open_warehouse",
    "parse_period",
    "report",
    "run_reports",
]

ReportFn = Callable[[TrackingData, Period, str], pd.DataFrame]


@dataclass(frozen=True)
class Report:
    """A report: its main table and the extra tables computed with it.

    Attributes:
        name: The report's name.
        main: Computes the main table.
        extras: Extra tables by name (computed with the same data, period and grouping).
        default_by: The grouping used when none is given.
        description: One line for ``--help`` and the docs.
    """

    name: str
    main: ReportFn
    extras: tuple[tuple[str, ReportFn], ...]
    default_by: str
    description: str


def _monthly(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    return monthly(data, period)


def _loss_reasons(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    return loss_reasons(data, period)


REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            "performance",
            performance,
            (),
            "rep",
            "activity comparison per rep (calls, emails, meetings, deals)",
        ),
        Report(
            "prospects",
            prospects,
            (),
            "rep",
            "open leads and deals: last contact, next action, behaviour, score",
        ),
        Report("goals", goals, (("daily", daily),), "rep", "goals against bookings and what is still needed"),
        Report(
            "funnel",
            funnel,
            (("monthly", _monthly), ("loss_reasons", _loss_reasons)),
            "rep",
            "open pipeline, losses, win rate, cycle, velocity, growth",
        ),
        Report(
            "effectiveness",
            effectiveness,
            (),
            "team",
            "reply rate, call length, new deals and their correlations",
        ),
        Report(
            "process",
            process,
            (("stages", stage_table),),
            "channel",
            "prospects in, qualification, stage conversion",
        ),
        Report("adjusted", adjusted, (), "rep", "rep rates adjusted for mix (observed / expected)"),
    )
}
DEFAULT_BY = {name: r.default_by for name, r in REPORTS.items()}


def open_warehouse(path: Path, as_of: pd.Timestamp | None = None) -> TrackingData:
    """Read the warehouse read-only and cut it at ``as_of`` (default: midnight after the last event).

    The event tables are cut and given their keys in DuckDB (:func:`forecast.tracking.read.load`).

    Raises:
        FileNotFoundError: If there is no warehouse.
        ValueError: If the warehouse holds no dated event.
    """
    with Warehouse(path).connect(read_only=True) as con:
        return load(con, as_of)


def report(data: TrackingData, name: str, period: Period, by: str | None = None) -> dict[str, pd.DataFrame]:
    """Compute one report: ``{name: main table, extra name: extra table, ...}``.

    Raises:
        KeyError: If the report is unknown.
        forecast.tracking.common.GroupingError: If the report cannot use the grouping.
    """
    spec = REPORTS[name]
    group = by or spec.default_by
    out = {name: spec.main(data, period, group)}
    for extra, fn in spec.extras:
        out[extra] = fn(data, period, group)
    return out


def run_reports(
    data: TrackingData, names: list[str], period: Period, by: str | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """Compute several reports (see :func:`report`)."""
    return {name: report(data, name, period, by) for name in names}


def default_period(data: TrackingData) -> Period:
    """The last complete month before the data's as-of time."""
    return parse_period(None, data.as_of)
