"""Sales tracking (docs/tracking.md): the brief's six kinds of tracking and the decisions they point to.

Pure functions over a :class:`~forecast.tracking.data.TrackingData` (canonical frames cut at an
as-of time) and a :class:`~forecast.tracking.periods.Period`, returning DataFrames:

- :func:`performance` — activity comparison per rep;
- :func:`prospects` — open leads and deals with last contact, next action, behaviour and score;
- :func:`goals` and :func:`daily` — goals against bookings, daily and cumulative totals;
- :func:`funnel`, :func:`monthly`, :func:`loss_reasons` — pipeline, losses, velocity, growth;
- :func:`effectiveness` — reply rate, call length, new deals and their correlations;
- :func:`process` and :func:`stage_table` — prospects in, qualification, stage conversion;
- :func:`adjusted` — rep rates adjusted for mix;
- :func:`insights` — ranked decisions with their evidence.

:mod:`forecast.tracking.api` runs them by name and opens the warehouse read-only.
"""

from forecast.tracking.adjust import adjusted
from forecast.tracking.data import TrackingData, load, prepare
from forecast.tracking.effectiveness import effectiveness
from forecast.tracking.funnel import funnel, loss_reasons, monthly
from forecast.tracking.goals import daily, goals
from forecast.tracking.insights import Insight, InsightConfig, InsightReport, insights
from forecast.tracking.performance import performance
from forecast.tracking.periods import Period, parse_period
from forecast.tracking.process import process, stage_table
from forecast.tracking.prospects import prospects

__all__ = [
    "Insight",
    "InsightConfig",
    "InsightReport",
    "Period",
    "TrackingData",
    "adjusted",
    "daily",
    "effectiveness",
    "funnel",
    "goals",
    "insights",
    "load",
    "loss_reasons",
    "monthly",
    "parse_period",
    "performance",
    "prepare",
    "process",
    "prospects",
    "stage_table",
]
