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

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.data.warehouse import Warehouse
from forecast.tracking.adjust import adjusted
from forecast.tracking.data import ALL_LABEL, TrackingData
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
    "narrowed",
    "open_warehouse",
    "parse_period",
    "report",
    "run_reports",
]

ReportFn = Callable[..., pd.DataFrame]
"""``fn(data, period, by)``; a report that :attr:`Report.narrows` also takes ``only=`` (groups)."""


@dataclass(frozen=True)
class Report:
    """A report: its main table and the extra tables computed with it.

    Attributes:
        name: The report's name.
        main: Computes the main table.
        extras: Extra tables by name (computed with the same data, period and grouping).
        default_by: The grouping used when none is given.
        description: One line for ``--help`` and the docs.
        narrows: Whether it computes given groups alone (``only=``: the whole table's rows of
            those groups and ``(all)``, in order; a table without the grouping whole).
        briefs: Whether its main table has a brief form (``brief=True``: some of its columns,
            each with the whole table's values, without the costly rest).
    """

    name: str
    main: ReportFn
    extras: tuple[tuple[str, ReportFn], ...]
    default_by: str
    description: str
    narrows: bool = False
    briefs: bool = False


def _monthly(data: TrackingData, period: Period, by: str, only: object = None) -> pd.DataFrame:
    return monthly(data, period)


def _loss_reasons(data: TrackingData, period: Period, by: str, only: object = None) -> pd.DataFrame:
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
            narrows=True,
            briefs=True,
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
            narrows=True,
        ),
        Report(
            "effectiveness",
            effectiveness,
            (),
            "team",
            "reply rate, call length, new deals and their correlations",
            narrows=True,
        ),
        Report(
            "process",
            process,
            (("stages", stage_table),),
            "channel",
            "prospects in, qualification, stage conversion",
            narrows=True,
            briefs=True,
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


def report(
    data: TrackingData,
    name: str,
    period: Period,
    by: str | None = None,
    only: Collection[str] | None = None,
    *,
    extras: bool = True,
    brief: bool = False,
) -> dict[str, pd.DataFrame]:
    """Compute one report: ``{name: main table, extra name: extra table, ...}``.

    ``only`` (a report that :attr:`Report.narrows`): the rows of these groups and ``(all)`` alone,
    the whole report's rows of them in its order (:func:`narrowed`), computed without the others.
    ``extras=False``: the main table alone (a page that reads one column of it need not compute
    the process report's stage table for every rep). ``brief=True`` (with ``extras=False``, a
    report that :attr:`Report.briefs`): the main table's brief form, the columns a comparison of
    headline figures reads (the same values as the whole table's).

    Raises:
        KeyError: If the report is unknown.
        ValueError: ``only`` for a report that does not narrow.
        forecast.tracking.common.GroupingError: If the report cannot use the grouping.
    """
    spec = REPORTS[name]
    group = by or spec.default_by
    if only is not None and not spec.narrows:
        raise ValueError(f"the {name} report is computed for every group only")
    narrow: dict[str, Any] = {} if only is None else {"only": only}  # the others take no `only`
    if brief and spec.briefs and not extras:
        return {name: spec.main(data, period, group, **narrow, brief=True)}
    out = {name: spec.main(data, period, group, **narrow)}
    for extra, fn in spec.extras if extras else ():
        out[extra] = fn(data, period, group, **narrow)
    return out


def narrowed(tables: Mapping[str, pd.DataFrame], by: str, only: Collection[str]) -> dict[str, pd.DataFrame]:
    """The rows of ``only``'s groups and ``(all)`` of each table grouped ``by`` (the others whole).

    What :func:`report` with ``only`` gives, from a whole report's tables (which are not changed).
    """
    keep = [*only, ALL_LABEL]
    return {
        key: table[table[by].astype(str).isin(keep)].reset_index(drop=True) if by in table.columns else table
        for key, table in tables.items()
    }


def run_reports(
    data: TrackingData, names: list[str], period: Period, by: str | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """Compute several reports (see :func:`report`)."""
    return {name: report(data, name, period, by) for name in names}


def default_period(data: TrackingData) -> Period:
    """The last complete month before the data's as-of time."""
    return parse_period(None, data.as_of)
