"""The weekly report: the Overview, Reps and Insights pages as one self-contained HTML file.

The sections are the pages' own bodies (:mod:`forecast.dashboard.pages` over a
:class:`~forecast.dashboard.data.Reader`), so the report's figures are the dashboard's and the
CLI's. The stylesheet is inlined, the charts are inline SVG, and links are dropped (a mailed file
has no server to follow them to): the file references nothing outside itself.
"""

from __future__ import annotations

import re
from html import escape

from forecast.dashboard import choices, compare, pages
from forecast.dashboard.data import Filters, Reader

PRINT_CSS = (
    "@media print { body { background: #fff; } section { break-inside: avoid; } "
    ".scroll { overflow: visible; } table { font-size: 9pt; } td, th { white-space: normal; } } "
    ".report-part { page-break-before: always; } .report-part:first-of-type { page-break-before: auto; }"
)
"""Rules only the report needs (page breaks when printed)."""
_LINK = re.compile(r'\s(?:href|action)="[^"]*"')


def report_html(reader: Reader, filters: Filters) -> str:
    """The report for ``filters`` (as of, period, horizon, rep, team, region, source).

    The sections are the pages' with the pages' notes, so a filter a section cannot follow is said
    in that section ("the flags (the whole team's): not split by team, so the team filter (East)
    does not apply"); the head names every filter given.

    Args:
        reader: Reads the figures (the dashboard's reader: the same functions as the pages).
        filters: The filters, as on the pages.

    Returns:
        A whole HTML document with no reference to any other file or host.

    Raises:
        InputError: A rep, team, region or source the warehouse does not hold, or a rep with a team
            or region they are not in (as on the pages).
        FileNotFoundError: No warehouse.
        ValueError: A warehouse without any dated event, or a period that cannot be parsed
            (:class:`~forecast.tracking.periods.PeriodError`).
    """
    choices.check(reader.tracking(filters), filters)  # before any figure is computed
    overview = reader.overview(filters)
    reps = reader.reps(filters)
    insights = reader.insights(filters)
    period = reps["period"].label
    scope = "".join(f" · {k} <strong>{escape(v)}</strong>" for k, v in filters.scopes)
    applied = (
        "; ".join(f'{k} <strong data-filter="{escape(k)}">{escape(v)}</strong>' for k, v in filters.scopes)
        if filters.scopes
        else "none (the whole team)"
    )
    overview_html = pages.overview_body(
        overview, compare.overview_changes(reader, filters), pages.overview_notes(filters)
    )
    parts = [
        ("Overview", overview_html),
        (f"Reps: {period}", pages.reps_body(reps, compare.reps_changes(reader, filters, reps))),
        (f"Insights: {period}", pages.insights_body(insights, filters)),
    ]
    body = "".join(f'<div class="report-part"><h1>{escape(title)}</h1>{html}</div>' for title, html in parts)
    as_of = overview.as_of
    head = (
        f'<p class="asof">As of <strong data-figure="as_of" data-value="{escape(as_of, quote=True)}">'
        f"{escape(as_of)}</strong> · period <strong>{escape(period)}</strong> · forecast by "
        f"{escape(filters.horizon)}{scope}</p>"
        f'<p class="filters-applied">Filters: {applied}. A section that cannot follow one says so in '
        "its notes.</p>"
    )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Weekly report · {escape(as_of[:10])} · forecast</title>"
        f"<style>{pages.stylesheet()}\n{PRINT_CSS}</style></head><body>"
        f"<header><h1>Weekly sales report</h1>{head}</header><main>{body}</main>"
        "<footer>Written by forecast report: every figure is the dashboard's and the CLI's for the same "
        "as of and period (docs/dashboard.md).</footer></body></html>"
    )
    return _LINK.sub("", document)
