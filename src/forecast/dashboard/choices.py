"""The values each group filter can take, and the check that a given filter is one of them.

The filter form offers these values, and a page or ``forecast report`` given another is refused
with the filter and the value named (a 400 page; ``--team 'X' ...`` and exit code 2 on the command
line), never answered with empty tables that look like a quiet week.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import pandas as pd

from forecast.errors import ECHO_LIMIT, InputError
from forecast.tracking.common import memo

if TYPE_CHECKING:
    from forecast.tracking.data import TrackingData
    from forecast.tracking.sql_cut import SqlCut


class Scoped(Protocol):
    """What a check reads of the page's filters (:class:`forecast.dashboard.data.Filters`)."""

    @property
    def scopes(self) -> list[tuple[str, str]]:
        """Every group filter given, ``(grouping, value)``."""
        ...


SHOWN = 12
"""Most accepted values an error lists."""


def known(data: TrackingData) -> dict[str, list[str]]:
    """Each group filter's values in the warehouse (as of the data's cut), sorted.

    ``rep`` is a rep id; ``team`` and ``region`` come from the reps; ``source`` from the leads and the
    deals (a deal without a lead has its own source). Found once per cut (every page's filter form
    and check read them; a million leads' sources are tens of milliseconds): do not change them.
    """
    held = memo(data.leads, "filter choices", lambda: (data.reps, data.opportunities, _known(data)))
    if held[0] is data.reps and held[1] is data.opportunities:
        return held[2]
    return _known(data)


def _known(data: TrackingData) -> dict[str, list[str]]:
    """:func:`known`, found."""
    reps = data.reps

    def values(*columns: pd.Series) -> list[str]:
        found: set[str] = set()
        for column in columns:
            found.update(str(v) for v in pd.unique(column.dropna()))
        return sorted(found)

    sources = [frame["source"] for frame in (data.leads, data.opportunities) if "source" in frame]
    return {
        "rep": values(reps["rep_id"]),
        "team": values(reps["team"]),
        "region": values(reps["region"]),
        "source": values(*sources),
    }


def known_in_sql(cut: SqlCut) -> dict[str, list[str]]:
    """:func:`known` of the warehouse cut in SQL (no read): the same values."""
    sources = cut.query(
        " SELECT DISTINCT source FROM leads_c UNION SELECT DISTINCT source FROM deals_c", {}, cold=False
    )["source"]
    reps = cut.reps

    def values(column: pd.Series) -> list[str]:
        return sorted({str(v) for v in pd.unique(column.dropna())})

    return {
        "rep": values(reps["rep_id"]),
        "team": values(reps["team"]),
        "region": values(reps["region"]),
        "source": values(sources),
    }


def check(data: TrackingData, filters: Scoped) -> None:
    """Refuse a rep, team, region or source the warehouse does not hold.

    Raises:
        InputError: Naming the filter (its ``parameter``) and the value, with the values it takes.
    """
    if filters.scopes:
        check_known(known(data), data.as_of, filters)


def check_known(choices: Mapping[str, list[str]], as_of: pd.Timestamp, filters: Scoped) -> None:
    """:func:`check` against the values :func:`known` found for the cut at ``as_of``.

    Raises:
        InputError: Naming the filter (its ``parameter``) and the value, with the values it takes.
    """
    for key, value in filters.scopes:
        accepted = choices[key]
        if value in accepted:
            continue
        shown = value if len(value) <= ECHO_LIMIT else value[:ECHO_LIMIT] + "…"
        if not accepted:
            raise InputError(f"'{shown}': the warehouse records no {key}", parameter=key)
        listed = ", ".join(accepted[:SHOWN]) + (
            f" and {len(accepted) - SHOWN} more" if len(accepted) > SHOWN else ""
        )
        day = as_of.date().isoformat()
        raise InputError(
            f"'{shown}' is not a {key} of the warehouse as of {day}: use one of {listed}", parameter=key
        )
