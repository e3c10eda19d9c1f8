"""The tracking reports DuckDB computes over the warehouse, by name: :func:`report` as ``api.report``.

Each is the in-memory report of the same name (:data:`forecast.tracking.api.REPORTS`) aggregated
in SQL over :class:`~forecast.tracking.sql_cut.SqlCut`, or made by the in-memory functions from the
rows DuckDB selects (the Prospects list, the adjusted rates from the period's part of the CRM): the
same tables without reading the CRM into memory (``tests/unit/test_tracking_sql_reports.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import pandas as pd

from forecast.tracking import (
    sql_effectiveness,
    sql_funnel,
    sql_goals,
    sql_insights,
    sql_performance,
    sql_process,
    sql_prospects,
)
from forecast.tracking.periods import Period
from forecast.tracking.sql_cut import SqlCut

_MAIN: dict[str, Callable[..., pd.DataFrame]] = {
    "performance": sql_performance.performance,
    "effectiveness": sql_effectiveness.effectiveness,
    "process": sql_process.process,
    "goals": sql_goals.goals,
    "funnel": sql_funnel.funnel,
    "prospects": sql_prospects.prospects,
    "adjusted": sql_insights.adjusted,
}
_EXTRAS: dict[str, tuple[tuple[str, Callable[..., pd.DataFrame]], ...]] = {
    "process": (("stages", sql_process.stage_table),),
    "funnel": (("monthly", sql_funnel.monthly), ("loss_reasons", sql_funnel.loss_reasons)),
}
_BRIEFS = ("performance", "process")
_NARROWS = ("performance", "effectiveness", "process", "funnel")

NAMES = tuple(_MAIN)
"""The reports whose main table DuckDB computes."""
WHOLE = ("performance", "effectiveness", "process", "funnel", "prospects", "adjusted")
"""The reports DuckDB computes whole, with their extra tables (the goals' daily table is not: it is
read from the CRM in memory)."""


def computes(name: str, extras: bool) -> bool:
    """Whether :func:`report` computes report ``name`` (with its extra tables, or its main one alone)."""
    return name in (WHOLE if extras else NAMES)


def report(
    cut: SqlCut,
    name: str,
    period: Period,
    by: str,
    only: Collection[str] | None = None,
    *,
    extras: bool = True,
    brief: bool = False,
) -> dict[str, pd.DataFrame]:
    """:func:`forecast.tracking.api.report` of one of :data:`NAMES`, aggregated in DuckDB.

    Raises:
        KeyError: If the report is not one DuckDB computes so (:func:`computes`).
        forecast.tracking.sql_cut.NotInSqlError: The adjusted rates' part of the warehouse cannot be
            read as the whole read reads it (read the CRM).
        ValueError: ``only`` for a report that does not narrow (goals), as ``api.report``.
        forecast.tracking.common.GroupingError: If the report cannot use the grouping.
    """
    if not computes(name, extras):
        raise KeyError(f"{name}: not computed in DuckDB{' with its extra tables' if extras else ''}")
    if only is not None and name not in _NARROWS:
        raise ValueError(f"the {name} report is computed for every group only")
    main = _MAIN[name]
    narrow: dict[str, Any] = {} if only is None else {"only": only}
    if brief and name in _BRIEFS and not extras:
        return {name: main(cut, period, by, **narrow, brief=True)}
    out = {name: main(cut, period, by, **narrow)}
    for extra, fn in _EXTRAS.get(name, ()) if extras else ():
        out[extra] = fn(cut, period, by, **narrow)
    return out
