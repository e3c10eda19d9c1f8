"""The dashboard's pages as HTML strings: layout, filters, figures, tables and charts.

Server-rendered and script-free. Every figure carries its exact value in ``data-value`` (the
text shows it rounded), so a test or a script can compare a page with the CLI's JSON. Every value
from the warehouse is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from forecast.dashboard import charts
from forecast.dashboard.compare import HEADLINE, Change, Comparison
from forecast.dashboard.data import (
    NO_SCORE,
    PAGE_SIZE,
    PROSPECT_COLUMNS,
    SCOPES,
    Filters,
    Listing,
    Missing,
    Overview,
    about,
)
from forecast.tracking.data import ALL_LABEL

PAGES = (
    ("/", "Overview"),
    ("/reps", "Reps"),
    ("/pipeline", "Pipeline"),
    ("/prospects", "Prospects"),
    ("/activity", "Activity and process"),
    ("/insights", "Insights"),
    ("/models", "Models"),
)
_COMPANIONS = ("_n", "_lo", "_hi", "_p_value")
_MONEY = frozenset({"p10", "p50", "p90", "quota", "expected", "won_to_date", "won_ytd", "from_open_deals"})


# --- values -----------------------------------------------------------------------------------------


def _absent(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    kind = type(value)
    if kind is float or kind is np.float64:  # most cells of a table: the general test below, directly
        return not math.isfinite(value)
    if kind is int:
        return False
    try:
        return isinstance(value, float | int) and not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def money(value: Any) -> str:
    """Money for people (``—`` when unknown)."""
    return "—" if _absent(value) else charts.compact(float(value))


def pct(value: Any, digits: int = 0) -> str:
    """A fraction as a percentage (``—`` when unknown)."""
    return "—" if _absent(value) else f"{100 * float(value):.{digits}f}%"


def count(value: Any) -> str:
    """A count or other number (``—`` when unknown)."""
    if _absent(value):
        return "—"
    v = float(value)
    return f"{v:,.0f}" if v == int(v) else f"{v:,.2f}"


def _raw(value: Any) -> str:
    return "" if _absent(value) else escape(str(value), quote=True)


def figure(name: str, label: str, value: Any, text: str, note: str = "") -> str:
    """One headline number: its label, the rounded text and the exact value in ``data-value``."""
    extra = f'<span class="note">{escape(note)}</span>' if note else ""
    return (
        f'<div class="figure"><dt>{escape(label)}</dt>'
        f'<dd data-figure="{escape(name)}" data-value="{_raw(value)}">{escape(text)}</dd>{extra}</div>'
    )


def missing(item: Missing) -> str:
    """A plain sentence where data is absent (never a zero)."""
    detail = f'<span class="detail">{escape(item.detail)}</span>' if item.detail else ""
    return f'<p class="missing" role="status">{escape(item.message)} {detail}</p>'


def stylesheet() -> str:
    """The dashboard's one stylesheet (``static/dashboard.css``, shipped in the package)."""
    path = resources.files("forecast.dashboard").joinpath("static/dashboard.css")
    return path.read_text(encoding="utf-8")


# --- layout -----------------------------------------------------------------------------------------


def _options(name: str, values: Iterable[str], chosen: str | None) -> str:
    opts = ['<option value="">all</option>']
    for v in sorted(set(values)):
        sel = " selected" if v == chosen else ""
        opts.append(f'<option value="{escape(v, quote=True)}"{sel}>{escape(v)}</option>')
    return f'<label>{name} <select name="{name}">{"".join(opts)}</select></label>'


def filter_form(path: str, filters: Filters, offered: Mapping[str, list[str]] | None) -> str:
    """The filters as a GET form: everything lives in the query string.

    ``offered`` are each group filter's values (:func:`forecast.dashboard.choices.known`; ``None``: none).
    """
    offered = offered if offered is not None else {k: [] for k in SCOPES}
    horizon = "".join(
        f"<option{' selected' if h == filters.horizon else ''}>{h}</option>"
        for h in ("week", "month", "quarter")
    )
    periods = "".join(f'<option value="{p}">' for p in ("day", "week", "month", "quarter"))
    return (
        f'<form class="filters" method="get" action="{escape(path)}">'
        f'<label>as of <input name="as_of" value="{_raw(filters.as_of)}" placeholder="YYYY-MM-DD" '
        'size="11"></label>'
        f'<label>period <input name="period" list="periods" value="{_raw(filters.period)}" '
        f'placeholder="month or D1..D2" size="14"></label><datalist id="periods">{periods}</datalist>'
        f'<label>forecast by <select name="horizon">{horizon}</select></label>'
        + "".join(_options(k, offered[k], getattr(filters, k)) for k in SCOPES)
        + f'<button type="submit">Apply</button> <a href="{escape(path)}">clear</a></form>'
    )


def layout(
    title: str,
    path: str,
    filters: Filters,
    as_of: str,
    body: str,
    offered: Mapping[str, list[str]] | None = None,
    period: str = "",
    logout: bool = False,
) -> str:
    """A whole page: navigation (keeping the filters), the as-of line, the filter form and ``body``.

    ``offered`` are the filter form's values (:class:`~forecast.dashboard.data.Cut`'s ``known``).
    """
    query = escape(filters.query(), quote=True)
    nav = "".join(
        f'<a href="{href}{query}"{" aria-current=page" if href == path else ""}>{name}</a>'
        for href, name in PAGES
    )
    scoped = "".join(f" · {escape(k)} <strong>{escape(v)}</strong>" for k, v in filters.scopes)
    when = f'As of <strong data-figure="as_of" data-value="{_raw(as_of)}">{escape(as_of or "—")}</strong>'
    per = f" · period <strong>{escape(period)}</strong>" if period else ""
    out = (
        '<form method="post" action="/logout" class="logout"><button type="submit">Log out</button></form>'
        if logout
        else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · forecast</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"></head><body>'
        f'<header><nav aria-label="pages"><span class="brand">forecast</span>{nav}</nav>{out}'
        f'<p class="asof">{when}{per}{scoped}</p>{filter_form(path, filters, offered)}</header>'
        f"<main><h1>{escape(title)}</h1>{body}</main>"
        "<footer>Read-only view of the warehouse and the registry's champions; every figure is the "
        "CLI's for the same as of (docs/dashboard.md).</footer></body></html>"
    )


def simple_page(title: str, message: str, status_note: str = "") -> str:
    """A page without filters (errors, the login form's companions)."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{escape(title)} · forecast</title><link rel="stylesheet" href="/static/dashboard.css">'
        f'</head><body><main><h1>{escape(title)}</h1><p class="missing">{escape(message)}</p>'
        f"{status_note}</main></body></html>"
    )


def preparing_page(title: str, target: str, refresh_seconds: int = 1) -> str:
    """The answer while a view's figures are computed: it reloads ``target`` every ``refresh_seconds``.

    (:mod:`forecast.dashboard.deferred`.) No filter form: the view's values are not read yet.
    """
    href = escape(target, quote=True)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{int(refresh_seconds)}">'
        f"<title>{escape(title)} (being computed) · forecast</title>"
        '<link rel="stylesheet" href="/static/dashboard.css"></head>'
        f'<body><main data-preparing="{href}"><h1>{escape(title)}</h1>'
        '<p class="missing" role="status">The figures of this view are being computed: another as of '
        "reads the CRM again and runs the forecast for that time, and a first visit of a period may "
        "wait for the warm-up; on a large CRM that takes from seconds to minutes. This page keeps "
        "reloading itself and shows the view as soon as it is ready.</p>"
        f'<p><a href="{href}">Reload now</a> · <a href="/">the default view</a></p>'
        "</main></body></html>"
    )


def login_page(next_path: str, error: str = "") -> str:
    """The login form: the token, posted once; the answer sets a session cookie."""
    wrong = f'<p class="missing" role="alert">{escape(error)}</p>' if error else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<title>Log in · forecast</title><link rel="stylesheet" href="/static/dashboard.css"></head>'
        f'<body><main class="login"><h1>forecast dashboard</h1>{wrong}'
        '<form method="post" action="/login">'
        f'<input type="hidden" name="next" value="{escape(next_path, quote=True)}">'
        '<label>API token (FORECAST_API_TOKEN) <input type="password" name="token" '
        'autocomplete="current-password" required autofocus></label>'
        '<button type="submit">Log in</button></form></main></body></html>'
    )


# --- tables -----------------------------------------------------------------------------------------


def _cell(row: pd.Series, col: str, frame: pd.DataFrame) -> str:
    value = row[col]
    raw = f' data-col="{escape(col)}" data-value="{_raw(_py(value))}"'
    if col + "_lo" in frame.columns and col + "_hi" in frame.columns:
        lo, hi = row[col + "_lo"], row[col + "_hi"]
        n = row[col + "_n"] if col + "_n" in frame.columns else None
        is_rate = (
            not _absent(value) and -1e-9 <= float(value) <= 1 + 1e-9 and not col.startswith(("avg", "corr"))
        )
        if _absent(value):
            text = "— (n=0)" if n is not None and not _absent(n) and int(n) == 0 else "—"
        elif is_rate:
            text = f"{pct(value)} [{pct(lo)[:-1]}–{pct(hi)}]" if not _absent(lo) else pct(value)
        else:
            text = (
                f"{float(value):.1f} [{float(lo):.1f}–{float(hi):.1f}]" if not _absent(lo) else f"{value:.1f}"
            )
        title = f' title="n={count(n)}"' if n is not None and not _absent(n) else ""
        return f'<td class="num"{raw}{title}>{escape(text)}</td>'
    if isinstance(value, float | int) and not isinstance(value, bool):
        if col in _MONEY or any(
            w in col for w in ("value", "amount", "goal", "remaining", "pipeline", "velocity")
        ):
            text = money(value)
        elif col.startswith("p_") or col.endswith(("rate", "attainment", "share", "conversion")):
            text = pct(value, 1)
        else:
            text = count(value)
        return f'<td class="num"{raw}>{escape(text)}</td>'
    if isinstance(value, pd.Timestamp):
        return f"<td{raw}>{escape(value.strftime('%Y-%m-%d'))}</td>"
    return f"<td{raw}>{escape('' if _absent(value) else str(value))}</td>"


def _py(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


def shown_columns(frame: pd.DataFrame, labels: Sequence[str]) -> list[str]:
    """The metric columns of a tracking table: each rate once, its ``_n/_lo/_hi`` folded into its cell."""
    return [
        c
        for c in frame.columns
        if c not in labels and not any(c.endswith(s) and c[: -len(s)] in frame.columns for s in _COMPANIONS)
    ]


def table(
    frame: pd.DataFrame,
    labels: Sequence[str],
    columns: Sequence[str] | None = None,
    caption: str = "",
    row_key: str | Sequence[str] | None = None,
    limit: int = 200,
    name: str = "",
) -> str:
    """A tracking table: label columns, then metrics (rates with their 95% interval; n on hover).

    ``row_key`` names the column(s) whose values (joined by ``|``) make each row's ``data-row``;
    ``name`` is the table's ``data-table``.
    """
    if frame.empty:
        return missing(Missing(f"{caption or 'This table'}: nothing in this period for these filters."))
    labels = [c for c in labels if c in frame.columns]
    cols = [c for c in (columns or shown_columns(frame, labels)) if c in frame.columns]
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in [*labels, *cols])
    rows = []
    for _, r in frame.head(limit).iterrows():
        keys = [row_key] if isinstance(row_key, str) else list(row_key or [])
        key = f' data-row="{_raw("|".join(str(r[k]) for k in keys))}"' if keys else ""
        cls = ' class="total"' if any(str(r[c]) == ALL_LABEL for c in labels) else ""
        cells = "".join(f'<th scope="row">{escape(str(r[c]))}</th>' for c in labels[:1])
        cells += "".join(f"<td>{escape(str(r[c]))}</td>" for c in labels[1:])
        cells += "".join(_cell(r, c, frame) for c in cols)
        rows.append(f"<tr{key}{cls}>{cells}</tr>")
    more = (
        f"<p>… {len(frame) - limit} more rows: forecast metrics --format csv has them all.</p>"
        if len(frame) > limit
        else ""
    )
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    body = "".join(rows)
    named = f' data-table="{escape(name)}"' if name else ""
    html = f"<table{named}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{html}</div>{more}'


def notes(items: Sequence[str]) -> str:
    """Notes about the data (what is missing, what a filter cannot do)."""
    return "".join(f'<p class="note">note: {escape(n)}</p>' for n in items)


# --- pages ------------------------------------------------------------------------------------------


def overview_notes(filters: Filters) -> list[str]:
    """What the Overview's flags and top insights cannot follow (they are not split by group)."""
    return [
        *filters.unapplied((), "the flags (the whole team's)"),
        *filters.unapplied(("rep",), "the top insights (the whole team's comparisons)"),
    ]


def overview_body(o: Overview, changes: Comparison | None = None, extra: Sequence[str] = ()) -> str:
    """The Overview: this period against goal, the last period against the one before, and more.

    Then the forecast ahead, flags and the top insights; ``extra`` are notes of the page's own
    (:func:`overview_notes`).
    """
    parts = [notes([*o.notes, *extra])]
    compared = "" if changes is None else change_figures(changes)
    if isinstance(o.forecast, Missing):
        parts += [f"<section><h2>Revenue</h2>{missing(o.forecast)}</section>", compared]
    else:
        parts += [_this_period(o), _pacing(o), "</section>", compared, _forecast_ahead(o.forecast)]
    parts += [_flags(o), _top_insights(o)]
    return "".join(parts)


# --- the period against the one before --------------------------------------------------------------

MARKS = {"up": ("▲", "up"), "down": ("▼", "down"), "same": ("=", "no change")}
"""Each direction's mark and words: a shape and a sign, not a colour alone (colour-blind safe)."""
NO_DATA = "no data"
_LABELS = {m: label for m, label, _, _ in HEADLINE}


def _value(value: float | None, kind: str, absent: str = NO_DATA) -> str:
    """A compared value for people: ``absent`` when unknown ("no data" for the previous period's)."""
    if value is None:
        return absent
    return money(value) if kind == "money" else pct(value, 1) if kind == "rate" else count(value)


def change_text(c: Change) -> str:
    """A change in words and signs: ``▲ +2.1k (+25%)``, ``▼ −3.0 pp``, ``= 0``, or ``no data``."""
    delta = c.delta
    if delta is None or c.direction is None:
        return NO_DATA
    mark = MARKS[c.direction][0]
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    if c.kind == "rate":
        return f"{mark} {sign}{abs(100 * delta):.1f} pp"
    size = money(abs(delta)) if c.kind == "money" else count(abs(delta))
    relative = c.relative
    if c.prev == 0 and delta != 0:
        return f"{mark} {sign}{size} (from 0)"
    ratio = "" if relative is None else f" ({sign}{abs(100 * relative):.0f}%)"
    return f"{mark} {sign}{size}{ratio}"


def _change_attrs(metric: str, c: Change) -> str:
    """The exact values of a change: ``data-metric``, ``data-now``, ``data-prev``, ``data-change``."""
    return (
        f'data-metric="{escape(metric)}" data-now="{_raw(c.now)}" data-prev="{_raw(c.prev)}" '
        f'data-change="{_raw(c.delta)}"'
    )


def _change_span(c: Change, previous: str) -> str:
    direction = c.direction or "nodata"
    words = MARKS[direction][1] if direction in MARKS else "no data to compare with"
    title = f"{words} against {previous}: {_value(c.prev, c.kind)} then"
    return (
        f'<span class="change {direction}" title="{escape(title, quote=True)}">'
        f"{escape(change_text(c))}</span>"
    )


def change_figures(c: Comparison) -> str:
    """The Overview's headline figures of the last period, each with the previous period's and the change."""
    (key, changes), *_ = c.rows.items()
    who = "" if key[1] == ALL_LABEL else f" ({key[0]} {key[1]})"
    previous = c.previous.label
    parts = [
        f'<section data-compare="{escape(previous, quote=True)}"><h2>The period {escape(c.period.label)} '
        f"against {escape(previous)}{escape(who)}</h2>{notes(c.notes)}<dl class=figures>"
    ]
    for metric in c.metrics:
        change = changes[metric]
        kind = change.kind
        parts.append(
            f'<div class="figure" {_change_attrs(metric, change)}><dt>{escape(_LABELS[metric])}</dt>'
            f"<dd>{escape(_value(change.now, kind, '—'))}</dd>{_change_span(change, previous)}"
            f'<span class="note">{escape(previous)}: {escape(_value(change.prev, kind))}</span></div>'
        )
    commands = " and ".join(f"<code>{escape(c.command(key[0], r))}</code>" for r in c.reports)
    parts.append(
        f'</dl><p class="note">The previous period is {escape(previous)} (the period of the same kind '
        f"just before; for a range, the range of the same length just before): {commands}</p></section>"
    )
    return "".join(parts)


def change_table(c: Comparison) -> str:
    """Per rep (and the total row): each headline figure now, the previous period's and the change."""
    previous = c.previous.label
    head = "".join(f'<th scope="col">{escape(_LABELS[m])}</th>' for m in c.metrics)
    rows = []
    for (by, value), changes in c.rows.items():
        total = value == ALL_LABEL or by != "rep"
        name = f"{value} ({by} total)" if total and by != "rep" else value
        cells = "".join(
            f'<td class="num" {_change_attrs(m, ch)}>{escape(_value(ch.now, ch.kind, "—"))} '
            f"{_change_span(ch, previous)}"
            f'<span class="was">{escape(previous)}: {escape(_value(ch.prev, ch.kind))}</span></td>'
            for m, ch in changes.items()
        )
        cls = ' class="total"' if total else ""
        rows.append(
            f'<tr data-compare-row="{_raw(value)}"{cls}><th scope="row">{escape(name)}</th>{cells}</tr>'
        )
    by = next(iter(c.rows))[0] if c.rows else "rep"
    caption = (
        f"{c.period.label} against {previous}: forecast metrics --report performance (new leads: "
        f"--report process) for both (previous: --period {c.previous.spec})"
    )
    return (
        f'<section data-compare="{escape(previous, quote=True)}"><h2>Against the previous period '
        f"({escape(previous)})</h2>{notes(c.notes)}"
        f'<div class="scroll"><table data-table="changes"><caption>{escape(caption)}</caption>'
        f'<thead><tr><th scope="col">{escape(by)}</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody>'
        "</table></div></section>"
    )


def _this_period(o: Overview) -> str:
    """The current period's headline figures (opens the section the pacing charts close)."""
    f = o.figures
    who = f" ({o.group})" if o.group else ""
    parts = [f"<section><h2>This period: {escape(o.period)}{escape(who)}</h2><dl class=figures>"]
    parts.append(figure("won_to_date", "Won so far", f.get("won_to_date"), money(f.get("won_to_date"))))
    parts.append(figure("goal", "Goal", f.get("goal"), money(f.get("goal"))))
    if "pace_to_date" in f:
        parts.append(
            figure(
                "pace_to_date",
                "Pace (won / goal due by now)",
                f.get("pace_to_date"),
                pct(f.get("pace_to_date")),
                f"goal due by now {money(f.get('goal_to_date'))}",
            )
        )
    parts.append(figure("p50", "Forecast P50", f.get("p50"), money(f.get("p50"))))
    parts.append(
        figure(
            "p10_p90",
            "P10–P90",
            f"{f.get('p10')}..{f.get('p90')}",
            f"{money(f.get('p10'))}–{money(f.get('p90'))}",
        )
    )
    parts.append(figure("p_hit_quota", "P(hit quota)", f.get("p_hit_quota"), pct(f.get("p_hit_quota"))))
    parts.append(
        figure("gap_to_goal", "Gap to goal (expected)", f.get("gap_to_goal"), money(f.get("gap_to_goal")))
    )
    parts.append(figure("deals_needed", "Deals needed", f.get("deals_needed"), count(f.get("deals_needed"))))
    parts.append("</dl>")
    return "".join(parts)


def _pacing(o: Overview) -> str:
    """Cumulative won against the goal and won per day, or why there is nothing to draw yet."""
    if isinstance(o.pacing, Missing):
        return missing(o.pacing)
    if not o.pacing:
        return missing(Missing(f"{o.period} has no day before the as of yet: no pacing to draw."))
    days = [str(r["day"])[5:10] for r in o.pacing]
    cumulative = charts.line_chart(
        days,
        [
            ("cumulative won", [r.get("cumulative_won") for r in o.pacing]),
            ("cumulative goal", [r.get("cumulative_goal") for r in o.pacing]),
        ],
        title=f"{o.period}: cumulative won against the goal, by day",
    )
    daily = charts.bar_chart(
        days,
        [r.get("won_value") for r in o.pacing],
        title=f"{o.period}: won per day",
        colour=charts.PALETTE["green"],
    )
    return f'<div class="charts">{cumulative}{daily}</div>'


def _forecast_ahead(rows: list[dict[str, Any]]) -> str:
    """The fan chart of the periods ahead and their table."""
    fan = charts.fan_chart(
        [str(r["period"]) for r in rows],
        [r.get("p10") for r in rows],
        [r.get("p50") for r in rows],
        [r.get("p90") for r in rows],
        [r.get("quota") for r in rows],
        title="Revenue per period: P10–P90 band, P50 and quota",
    )
    frame = pd.DataFrame(rows)
    cols = ["won_to_date", "p10", "p50", "p90", "quota", "p_hit_quota", "gap_to_goal", "deals_needed"]
    listed = table(frame, ["period"], [c for c in cols if c in frame], "forecast revenue", row_key="period")
    return f"<section><h2>The forecast ahead</h2>{fan}{listed}</section>"


def _flags(o: Overview) -> str:
    """Deals at risk, leads going cold and the most urgent flags."""
    if isinstance(o.flags, Missing):
        return f"<section><h2>Flags</h2>{missing(o.flags)}</section>"
    deals = o.flags["entities"].get("deal", {})
    leads = o.flags["entities"].get("lead", {})
    cold = (leads.get("by_flag") or {}).get("going_cold", 0)
    parts = [
        "<section><h2>Flags</h2><dl class=figures>",
        figure("deals_at_risk", "Deals at risk", deals.get("at_risk"), count(deals.get("at_risk"))),
        figure("leads_going_cold", "Leads going cold", cold, count(cold)) if o.has_leads else "",
        figure("open_deals", "Open deals", deals.get("open"), count(deals.get("open"))),
        "</dl>",
    ]
    top = pd.DataFrame(o.flags["top"][:10])
    if not top.empty:
        parts.append(
            table(
                top,
                ["entity", "id"],
                ["flag", "severity", "evidence", "suggested_action"],
                "most urgent flags (forecast flags)",
            )
        )
    return "".join(parts) + "</section>"


def _top_insights(o: Overview) -> str:
    """The first insights, with a link to all of them."""
    listed = (
        insight_list(o.insights)
        if o.insights
        else missing(Missing("No insight passed the evidence bar for this period."))
    )
    return f'<section><h2>Top insights</h2>{listed}<p><a href="/insights">every insight</a></p></section>'


def insights_body(doc: dict[str, Any], filters: Filters) -> str:
    """The Insights page: every insight of ``forecast insights`` (a rep filter keeps that rep's)."""
    items = [i for i in doc["insights"] if about(i, filters)]
    head = (
        f"<p>{doc['raised']} raised from {doc['tested']} comparisons (false-discovery rate "
        f"{doc['evidence_bar']['fdr']:.0%}, at least {doc['evidence_bar']['min_trials']} trials), "
        "ranked by expected revenue impact (forecast insights).</p>"
    )
    listed = insight_list(items) if items else missing(Missing("No insight passed the evidence bar."))
    unapplied = filters.unapplied(("rep",), "the insights (the whole team's comparisons)")
    return head + notes([*doc["notes"], *unapplied]) + listed


def insight_list(items: Sequence[dict[str, Any]]) -> str:
    """Insights ranked by expected revenue impact, each with its test and evidence."""
    out = ['<ol class="insights">']
    for i in items:
        impact = i.get("expected_revenue_impact")
        stats = "" if i.get("p_value") is None else f"; p={i['p_value']:.4f}, q={(i.get('q_value') or 0):.4f}"
        evidence = "".join(
            f"<dt>{escape(str(k))}</dt><dd>{escape(_evidence(v))}</dd>"
            for k, v in (i.get("evidence") or {}).items()
        )
        out.append(
            f'<li data-rule="{_raw(i.get("rule"))}"><p><strong>{escape(str(i.get("decision")))}</strong> '
            f'<span class="impact" data-value="{_raw(impact)}">expected revenue impact '
            f"{money(impact)}</span></p>"
            f"<p>{escape(str(i.get('message')))}</p>"
            f'<p class="note">{escape(str(i.get("audience")))} · {escape(str(i.get("subject")))} · '
            f"{escape(str(i.get('test')))}{escape(stats)}; "
            f"adjusted for {escape(str(i.get('adjusted_for')))}</p>"
            f'<details><summary>evidence</summary><dl class="evidence">{evidence}</dl></details></li>'
        )
    out.append("</ol>")
    return "".join(out)


def _evidence(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


REP_COLUMNS = [
    "name",
    "calls",
    "emails_sent",
    "reply_rate",
    "meetings_completed",
    "meeting_held_rate",
    "new_opportunities",
    "won",
    "lost",
    "win_rate",
    "won_value",
    "selling_hours",
]
GOAL_COLUMNS = [
    "name",
    "goal",
    "won_value",
    "attainment",
    "remaining",
    "deals_needed",
    "days_left",
    "needed_per_day",
]


def reps_body(r: dict[str, Any], changes: Comparison | None = None) -> str:
    """Per-rep performance with Wilson intervals, against the previous period, and goals.

    ``changes`` are the headline figures against the previous period; the goals show attainment
    and what is still needed.
    """
    perf: pd.DataFrame = r["performance"]
    parts = [notes(r["notes"])]
    parts.append("<section><h2>Performance</h2>")
    total: pd.DataFrame = r["total"]
    label = next((c for c in ("rep", "team", "region") if c in total.columns), None)
    if label is not None and label != "rep":  # a team's or region's total row: its name in the rep column
        total = total.assign(rep=total[label], name=f"{label} total")
    both = pd.concat([perf, total], ignore_index=True)
    parts.append(
        table(both, ["rep"], REP_COLUMNS, "forecast metrics --report performance --by rep", row_key="rep")
    )
    if not perf.empty and "win_rate" in perf:
        parts.append(
            charts.bar_chart(
                perf["rep"].astype(str).tolist(),
                perf["win_rate"].tolist(),
                perf["win_rate_lo"].tolist(),
                perf["win_rate_hi"].tolist(),
                title="Win rate per rep with its 95% Wilson interval",
                fmt=lambda v: f"{100 * v:.0f}%",
                ceiling=1.0,
            )
        )
    parts.append("</section>")
    if changes is not None:
        parts.append(change_table(changes))
    parts.append("<section><h2>Goals and pace</h2>")
    goals: pd.DataFrame = r["goals"]
    if goals.empty or goals["goal"].isna().all():
        parts.append(
            missing(
                Missing("No quotas for these reps in this period: attainment and pace need a quotas table.")
            )
        )
    parts.append(
        table(goals, ["rep"], GOAL_COLUMNS, "forecast metrics --report goals --by rep", row_key="rep")
    )
    parts.append("</section>")
    return "".join(parts)


def pipeline_body(p: dict[str, Any]) -> str:
    """The funnel by grouping, the stages, loss reasons and the monthly trend."""
    parts = [notes(p["notes"])]
    parts.append(f"<section><h2>Funnel by {escape(p['by'])}</h2>")
    parts.append(
        table(
            p["funnel"],
            [p["by"], "name"],
            None,
            f"forecast metrics --report funnel --by {p['by']}",
            row_key=p["by"],
        )
    )
    monthly: pd.DataFrame = p["monthly"]
    if not monthly.empty and "won_value" in monthly and "month" in monthly:
        parts.append(
            charts.bar_chart(
                monthly["month"].astype(str).tolist(),
                monthly["won_value"].tolist(),
                title="Won value per month",
                colour=charts.PALETTE["green"],
            )
        )
    parts.append("</section><section><h2>Stages</h2>")
    parts.append(table(p["stages"], ["stage"], None, "forecast metrics --report process (stages)"))
    parts.append("</section><section><h2>Loss reasons</h2>")
    parts.append(
        table(p["loss_reasons"], ["loss_reason"], None, "forecast metrics --report funnel (loss_reasons)")
    )
    parts.append("</section>")
    return "".join(parts)


def models_body(models: Sequence[dict[str, Any]]) -> str:
    """Champions, versions, training window, test metrics against baselines, last monitoring verdict."""
    parts = []
    for m in models:
        name = m["name"]
        parts.append(f'<section data-model="{escape(name)}"><h2>{escape(name)}</h2>')
        if "missing" in m:
            parts.append(missing(Missing(m["missing"])))
            parts.append("</section>")
            continue
        champ, chall = m["champion"], m.get("challenger")
        window = m.get("window") or {}
        parts.append("<dl class=figures>")
        parts.append(figure(f"{name}_champion", "Champion version", champ["version"], str(champ["version"])))
        chall_text = "—" if chall is None else str(chall["version"])
        parts.append(
            figure(
                f"{name}_challenger",
                "Challenger version",
                None if chall is None else chall["version"],
                chall_text,
            )
        )
        parts.append(figure(f"{name}_kind", "Kind", m.get("model_kind"), str(m.get("model_kind") or "—")))
        span = f"{window.get('from') or '?'} to {window.get('to') or '?'}"
        parts.append(
            figure(f"{name}_window", "Training window", span, span, f"{window.get('rows') or '?'} rows")
        )
        verdict = m.get("monitoring")
        text = (
            "never monitored"
            if verdict is None
            else f"{verdict['verdict']} (v{verdict['version']}, {verdict['at']})"
        )
        parts.append(
            figure(
                f"{name}_monitoring",
                "Last monitoring verdict",
                None if verdict is None else verdict["verdict"],
                text,
            )
        )
        parts.append("</dl>")
        test, baselines = m.get("test") or {}, m.get("baselines") or {}
        shown = [k for k in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "c_index", "ibs") if k in test]
        if shown:
            head = "".join(f'<th scope="col">{escape(b)}</th>' for b in baselines)
            rows = []
            for k in shown:
                cells = "".join(f'<td class="num">{_metric(baselines[b].get(k))}</td>' for b in baselines)
                rows.append(
                    f'<tr><th scope="row">{escape(k)}</th>'
                    f'<td class="num" data-col="{escape(k)}" data-value="{_raw(test[k])}">'
                    f"{_metric(test[k])}</td>{cells}</tr>"
                )
            parts.append(
                '<div class="scroll"><table><caption>test slice: the model against its baselines</caption>'
                f'<thead><tr><th scope="col">metric</th><th scope="col">model</th>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table></div>"
            )
        if verdict is not None and verdict.get("reasons"):
            parts.append(f'<p class="note">{escape(verdict["reasons"])}</p>')
        parts.append("</section>")
    return "".join(parts)


def _metric(value: Any) -> str:
    return "—" if _absent(value) else f"{float(value):.4f}"


# --- prospects --------------------------------------------------------------------------------------


def listing_query(filters: Filters, listing: Listing, **changes: Any) -> str:
    """The query string of the filters with the listing's sort and page (``changes`` override them)."""
    sort = changes.get("sort", listing.sort)
    page = changes.get("page", listing.page)
    extra = [("sort", sort)] if sort else []
    extra += [("page", str(page))] if page and page != 1 else []
    base = filters.query()
    if not extra:
        return base
    tail = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in extra)
    return f"{base}&{tail}" if base else f"?{tail}"


def _sort_link(col: str, filters: Filters, listing: Listing) -> str:
    """A column header that sorts by it (ascending first, then descending)."""
    target = f"-{col}" if listing.sort == col else col
    mark = ""
    if listing.column == col:
        mark = " ▼" if listing.descending else " ▲"
    href = escape("/prospects" + listing_query(filters, listing, sort=target, page=1), quote=True)
    sort = "descending" if listing.column == col and listing.descending else "ascending"
    aria = f' aria-sort="{sort}"' if listing.column == col else ""
    return f'<th scope="col"{aria}><a href="{href}">{escape(col)}{mark}</a></th>'


def prospects_body(p: dict[str, Any], filters: Filters, listing: Listing) -> str:
    """The lead list: one row per open lead and deal, sortable, paginated, with a CSV export."""
    rows: pd.DataFrame = listing.apply(p["rows"])
    total = len(rows)
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = min(listing.page, pages)
    shown = rows.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    period = p["period"]
    leads = int((rows["kind"] == "lead").sum()) if total else 0
    parts = [notes(p["notes"])]
    parts.append("<section><dl class=figures>")
    parts.append(figure("prospects", "Open prospects", total, count(total), f"at the end of {period.label}"))
    if p.get("has_leads", True):
        parts.append(figure("open_leads", "Open leads", leads, count(leads)))
    parts.append(figure("open_deals", "Open deals", total - leads, count(total - leads)))
    parts.append("</dl>")
    unscored = int(rows["score"].isna().sum()) if total else 0
    if unscored:
        parts.append(missing(Missing(f"{NO_SCORE} ({unscored} of {total} prospects have no score).")))
    csv_href = escape("/prospects.csv" + listing_query(filters, listing, page=1), quote=True)
    parts.append(
        f'<p>Page <strong data-figure="page" data-value="{page}">{page}</strong> of {pages} '
        f"({PAGE_SIZE} rows a page) · forecast metrics --report prospects · "
        f'<a href="{csv_href}" download>export CSV (every page)</a></p>'
    )
    if shown.empty:
        parts.append(missing(Missing("No open lead or deal for these filters at the end of the period.")))
    else:
        cols = [c for c in PROSPECT_COLUMNS if c in rows.columns]
        head = _sort_link("prospect_id", filters, listing) + "".join(
            _sort_link(c, filters, listing) for c in cols
        )
        body = []
        for _, r in shown.iterrows():
            cells = f'<th scope="row">{escape(str(r["prospect_id"]))}</th>'
            for c in cols:
                if c == "score" and _absent(r[c]):
                    cells += (
                        f'<td data-col="score" data-value="" title="{escape(NO_SCORE)}">no score yet</td>'
                    )
                else:
                    cells += _cell(r, c, shown)
            body.append(f'<tr data-row="{_raw(r["prospect_id"])}">{cells}</tr>')
        parts.append(
            '<div class="scroll"><table data-table="prospects">'
            f"<caption>open leads and deals at the end of {escape(period.label)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        )
    if pages > 1:
        links = []
        if page > 1:
            prev = escape("/prospects" + listing_query(filters, listing, page=page - 1), quote=True)
            links.append(f'<a href="{prev}" rel="prev">previous</a>')
        if page < pages:
            nxt = escape("/prospects" + listing_query(filters, listing, page=page + 1), quote=True)
            links.append(f'<a href="{nxt}" rel="next">next</a>')
        parts.append(f'<nav class="pager" aria-label="pages of prospects">{" · ".join(links)}</nav>')
    parts.append("</section>")
    return "".join(parts)


# --- activity effectiveness and process -------------------------------------------------------------


def _report_table(frame: pd.DataFrame, keys: Sequence[str], command: str, name: str) -> str:
    """A report's table named ``name``, each row keyed by its ``keys`` (joined by ``|``)."""
    return table(frame, keys, None, command, row_key=keys if len(keys) > 1 else keys[0], name=name)


def _rate_bars(labels: Sequence[str], frame: pd.DataFrame, col: str, title: str) -> str:
    """Bars of a rate with its 95% interval as whiskers."""
    lo, hi = frame[col + "_lo"].tolist(), frame[col + "_hi"].tolist()
    return charts.bar_chart(
        labels, frame[col].tolist(), lo, hi, title=title, fmt=lambda v: f"{100 * v:.0f}%", ceiling=1.0
    )


def activity_body(a: dict[str, Any], filters: Filters) -> str:
    """Activity effectiveness (with inbound against outbound) and the process: intake, stages, bottlenecks."""
    scope = filters.scope
    eff_by, proc_by = a["effectiveness_by"], a["process_by"]
    eff: pd.DataFrame = a["effectiveness"]
    parts = [notes(a["notes"])]
    parts.append(f"<section><h2>Activity effectiveness by {escape(eff_by)}</h2>")
    command = "forecast metrics --report"
    parts.append(_report_table(eff, [eff_by], f"{command} effectiveness --by {eff_by}", "effectiveness"))
    drawn = eff[eff[eff_by].astype(str) != ALL_LABEL] if not eff.empty else eff
    if not drawn.empty and "reply_rate" in drawn:
        title = f"Reply rate per {eff_by} with its 95% Wilson interval"
        parts.append(_rate_bars(drawn[eff_by].astype(str).tolist(), drawn, "reply_rate", title))
    parts.append(
        '<p class="note">The correlations are over rep-weeks (the period or the 26 weeks ending with it): '
        "they describe co-movement, not the effect of one more call (docs/tracking.md, 5).</p>"
    )
    parts.append("</section><section><h2>Inbound against outbound</h2>")
    parts.append(
        _report_table(a["channels"], ["channel"], f"{command} effectiveness --by channel", "channels")
    )
    parts.append(f"</section><section><h2>Prospects in and qualified, by {escape(proc_by)}</h2>")
    parts.append(_report_table(a["process"], [proc_by], f"{command} process --by {proc_by}", "process"))
    parts.append("</section><section><h2>Stages: conversion, time in stage, where deals get stuck</h2>")
    stages: pd.DataFrame = a["stages"]
    who = scope[1] if scope else ALL_LABEL
    whole = stages[stages[proc_by].astype(str) == who] if not stages.empty else stages
    if not whole.empty and "stage_conversion" in whole:
        labels = whole["stage"].astype(str).tolist()
        parts.append('<div class="charts">')
        parts.append(_rate_bars(labels, whole, "stage_conversion", f"Stage conversion ({who}), 95% interval"))
        parts.append(
            charts.bar_chart(
                labels,
                whole["days_median"].tolist(),
                title=f"Median days in stage ({who})",
                fmt=lambda v: f"{v:.0f} d",
                colour=charts.PALETTE["green"],
            )
        )
        parts.append("</div>")
    parts.append(
        _report_table(stages, [proc_by, "stage"], f"{command} process --by {proc_by} (stages)", "stages")
    )
    parts.append("</section>")
    return "".join(parts)
