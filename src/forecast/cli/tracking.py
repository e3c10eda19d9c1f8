"""Tracking commands: ``forecast metrics`` (the six kinds of tracking) and ``forecast insights``."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import duckdb
import pandas as pd
import typer
from rich.console import Console

from forecast.cli import main as cli_main
from forecast.cli.main import JsonOpt, app, context_settings, emit, fail, parse_as_of
from forecast.cli.render import EMPTY_CELLS, Column, WideOpt, compact, print_table, rate_with_interval
from forecast.errors import cli_message
from forecast.io import csv_text, write_text
from forecast.tracking import sql_reports
from forecast.tracking.common import GroupingError
from forecast.tracking.data import GROUPINGS, TrackingData
from forecast.tracking.periods import Period, PeriodError, parse_period

if TYPE_CHECKING:
    from forecast.tracking.sql_cut import SqlCut

T = TypeVar("T")

REPORT_NAMES = ("performance", "prospects", "goals", "funnel", "effectiveness", "process", "adjusted")
FORMATS = ("table", "json", "csv")
_COMPANIONS = ("_n", "_lo", "_hi", "_p_value")
_MONEY_WORDS = (
    "value",
    "amount",
    "goal",
    "remaining",
    "pipeline",
    "velocity",
    "deal_size",
    "won_ytd",
    "needed_per_day",
)
_SHARE_WORDS = ("growth", "attainment", "change")
_TABLE_ROWS = 40

PeriodOpt = Annotated[
    str | None,
    typer.Option(
        "--period",
        help="day, week, month, quarter (the last complete one) or YYYY-MM-DD..YYYY-MM-DD. "
        "Default: last complete month.",
    ),
]
AsOfOpt = Annotated[
    str | None,
    cli_main.as_of_option("Report as known at this time (default: midnight after the warehouse's last day)."),
]


def _open(
    ctx: typer.Context, as_of: str | None, period: str | None, as_json: bool
) -> tuple[TrackingData, Period]:
    from forecast.tracking.api import open_warehouse

    settings = context_settings(ctx)
    when = parse_as_of(as_of, as_json)
    with _reading(settings.warehouse, as_json):
        data = open_warehouse(settings.warehouse, when)
    try:
        return data, parse_period(period, data.as_of)
    except PeriodError as exc:
        fail(as_json, cli_message(exc))


def _report_in_sql(
    ctx: typer.Context, name: str, as_of: str | None, period: str | None, by: str, as_json: bool
) -> tuple[pd.Timestamp, list[str], Period, dict[str, pd.DataFrame]] | None:
    """Report ``name`` (:func:`~forecast.tracking.sql_reports.computes` it) aggregated in DuckDB, no read.

    ``(as of, notes, period, {name: table, extra: table, ...})``; ``None`` where the warehouse's
    tables are not those the SQL cut reads as the in-memory cut does
    (:func:`forecast.tracking.sql_cut.open_cut`): then the CRM is read. The same tables either way
    (``tests/unit/test_tracking_sql_reports.py``).
    """
    return _in_sql(ctx, as_of, period, as_json, lambda cut, per: sql_reports.report(cut, name, per, by))


def _in_sql(
    ctx: typer.Context,
    as_of: str | None,
    period: str | None,
    as_json: bool,
    compute: Callable[[SqlCut, Period], T | None],
) -> tuple[pd.Timestamp, list[str], Period, T] | None:
    """``compute`` of the warehouse cut in SQL at the as of and period: ``(as of, notes, period, result)``.

    ``None`` where the SQL cut does not apply (:func:`forecast.tracking.sql_cut.open_cut`), DuckDB
    cannot run a query, or ``compute`` gives ``None``: then the caller reads the CRM.
    """
    from forecast.data.warehouse import Warehouse
    from forecast.tracking.sql_cut import NotInSqlError, open_cut

    settings = context_settings(ctx)
    when = parse_as_of(as_of, as_json)
    with _reading(settings.warehouse, as_json), Warehouse(settings.warehouse).connect(read_only=True) as con:
        try:
            cut = open_cut(con, when)
            if cut is None:
                return None
            try:
                per = parse_period(period, cut.as_of)
                result = compute(cut, per)
            except (PeriodError, GroupingError) as exc:
                fail(as_json, cli_message(exc))
        except (
            duckdb.Error,
            NotInSqlError,
        ):  # a query the warehouse cannot run: the read, which says what is wrong
            return None
        return None if result is None else (cut.as_of, list(cut.notes), per, result)


@contextmanager
def _reading(warehouse: Path, as_json: bool) -> Iterator[None]:
    """Within it, a missing or unreadable warehouse exits with its message (code 2)."""
    try:
        yield
    except FileNotFoundError as exc:
        fail(as_json, cli_message(exc))
    except ValueError as exc:
        fail(as_json, f"{warehouse}: {exc}")
    except duckdb.Error as exc:
        fail(as_json, f"{warehouse}: cannot read the warehouse ({exc})")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON records: nan and NaT become null, timestamps ISO strings."""
    if frame.empty:
        return []
    loaded = json.loads(frame.to_json(orient="records", date_format="iso", default_handler=str))
    assert isinstance(loaded, list)
    return loaded


def _metric_names(frame: pd.DataFrame, group_cols: set[str]) -> list[str]:
    names = []
    for col in frame.columns:
        if col in group_cols:
            continue
        if any(col.endswith(s) and col[: -len(s)] in frame.columns for s in _COMPANIONS):
            continue
        names.append(col)
    return names


def _select(
    frame: pd.DataFrame, by: str, metrics: list[str] | None, as_json: bool, report: str
) -> pd.DataFrame:
    if not metrics:
        return frame
    group_cols = {by, "name", "stage", "metric"} & set(frame.columns)
    known = _metric_names(frame, group_cols)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        fail(
            as_json,
            f"--metrics: unknown for the {report} report: {', '.join(unknown)}; "
            f"choose from {', '.join(known)}",
        )
    keep = [c for c in frame.columns if c in group_cols]
    for m in metrics:
        keep += [m, *(m + s for s in _COMPANIONS if m + s in frame.columns)]
    return frame[keep]


@app.command()
def metrics(
    ctx: typer.Context,
    report: Annotated[
        str, typer.Option("--report", "-r", help=f"{', '.join(REPORT_NAMES)} or all.")
    ] = "performance",
    period: PeriodOpt = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help=f"Grouping: {', '.join(GROUPINGS)} (default depends on the report)."),
    ] = None,
    metric_list: Annotated[
        str | None, typer.Option("--metrics", help="Comma-separated metrics to show (default: all).")
    ] = None,
    as_of: AsOfOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    json_flag: Annotated[
        bool, typer.Option("--json", help="Print one JSON document on stdout (= --format json).")
    ] = False,
    wide: WideOpt = False,
) -> None:
    """Sales-tracking metrics for a period and grouping (rates with n and 95% Wilson intervals)."""
    from forecast.tracking.api import DEFAULT_BY, REPORTS
    from forecast.tracking.api import report as run_report

    if json_flag:
        if fmt not in ("table", "json"):
            fail(True, f"--json and --format {fmt} disagree: give one of them")
        fmt = "json"
    as_json = fmt == "json"
    if fmt not in FORMATS:
        fail(False, f"--format must be table, json or csv, not {fmt!r}")
    names = list(REPORT_NAMES) if report == "all" else [report]
    if any(n not in REPORTS for n in names):
        fail(as_json, f"--report {report!r}: use {', '.join(REPORT_NAMES)} or all")
    if by is not None and by not in GROUPINGS:
        fail(as_json, f"--by {by!r}: use one of {', '.join(GROUPINGS)}")
    chosen = [m.strip() for m in metric_list.split(",") if m.strip()] if metric_list else None
    if chosen is not None and len(names) > 1:
        fail(as_json, "--metrics needs a single --report")
    if fmt == "csv" and len(names) > 1 and output is None:
        fail(False, "--format csv with --report all writes one file per table: give --output FILE")
    alone = names[0] if len(names) == 1 and sql_reports.computes(names[0], extras=True) else None
    in_sql = (
        None if alone is None else _report_in_sql(ctx, alone, as_of, period, by or DEFAULT_BY[alone], as_json)
    )
    if in_sql is not None:
        cut_at, cut_notes, per, computed = in_sql
    else:
        data, per = _open(ctx, as_of, period, as_json)
        cut_at, cut_notes, computed = data.as_of, list(data.notes), {}
    tables: dict[str, dict[str, pd.DataFrame]] = {}
    for name in names:
        group = by or REPORTS[name].default_by
        try:
            out = computed if computed else run_report(data, name, per, group)
        except GroupingError as exc:
            if len(names) > 1 and by is not None:
                continue  # `all --by product`: skip the reports that cannot use it, say so below
            fail(as_json, cli_message(exc))
        out[name] = _select(out[name], group, chosen, as_json, name)
        tables[name] = out
    skipped = [n for n in names if n not in tables]
    notes = cut_notes + ([f"not computable by {by}: {', '.join(skipped)}"] if skipped else [])
    if not tables:
        fail(as_json, f"no report can be grouped by {by}")
    header = {"as_of": cut_at.isoformat(), "period": per.as_dict(), "by": by, "notes": notes}
    if fmt == "csv":
        _write_csv(tables, output)
        return
    if fmt == "json":
        payload = {
            "ok": True,
            **header,
            "reports": {
                name: {
                    "by": by or REPORTS[name].default_by,
                    "tables": {k: _records(v) for k, v in out.items()},
                }
                for name, out in tables.items()
            },
        }
        text = json.dumps(payload, default=str, indent=2) + "\n"
        if output is not None:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return

    def render(console: Console) -> None:
        console.print(
            f"[bold]Tracking metrics[/bold] for {per.label} "
            f"({per.start.date()} to {(per.end - pd.Timedelta(days=1)).date()}), as of {cut_at}"
        )
        for note in notes:
            console.print(f"[yellow]note:[/yellow] {note}")
        for name, out in tables.items():
            for table_name, frame in out.items():
                _render_frame(
                    console,
                    f"{name}: {table_name}" if table_name != name else name,
                    frame,
                    by or REPORTS[name].default_by,
                    wide,
                )

    if output is not None:
        with output.open("w", encoding="utf-8") as fh:
            render(Console(file=fh, width=200))  # a file: room for every column
    else:
        emit(False, {}, render)


def _write_csv(tables: dict[str, dict[str, pd.DataFrame]], output: Path | None) -> None:
    flat = {k: v for out in tables.values() for k, v in out.items()}
    if output is None:
        name, frame = next(iter(flat.items()))
        sys.stdout.write(csv_text(frame))
        return
    first = True
    for name, frame in flat.items():
        path = output if first else output.with_name(f"{output.stem}.{name}{output.suffix or '.csv'}")
        write_text(path, csv_text(frame))
        first = False


def _is_money(col: str) -> bool:
    return any(w in col for w in _MONEY_WORDS) and not col.endswith(("_n", "p_value"))


def _cell(row: pd.Series, col: str, frame: pd.DataFrame, wide: bool = False) -> str:
    """One metric's cell: rates as ``51% [41–61]``, their 95% interval (and ``n=`` with ``wide``).

    Money is compact (``1.2M``) unless ``wide``.
    """
    value = row[col]
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "—" if not (col + "_n" in frame.columns and row[col + "_n"] == 0) else "— (n=0)"
    if isinstance(value, pd.Timestamp):
        return (
            value.strftime("%Y-%m-%d %H:%M") if (value.hour or value.minute) else value.strftime("%Y-%m-%d")
        )
    if isinstance(value, float):
        has_ci = col + "_lo" in frame.columns and col + "_hi" in frame.columns
        is_rate = has_ci and (
            col.endswith(("rate", "conversion", "share")) or col.startswith("open_leads_silent")
        )
        n_col = row[col + "_n"] if wide and col + "_n" in frame.columns else None
        n = f" n={int(row[col + '_n'])}" if wide and col + "_n" in frame.columns else ""
        if is_rate:
            if wide:
                lo, hi = row[col + "_lo"], row[col + "_hi"]
                return f"{100 * value:.1f}% [{100 * lo:.1f}–{100 * hi:.1f}]{n}"
            return rate_with_interval(value, row[col + "_lo"], row[col + "_hi"], n_col)
        if has_ci:
            lo, hi = row[col + "_lo"], row[col + "_hi"]
            ci = "" if pd.isna(lo) else f" [{lo:.2f}–{hi:.2f}]" if wide else f" [{lo:.1f}–{hi:.1f}]"
            return f"{value:.2f}{ci}{n}" if wide else f"{value:.1f}{ci}"
        if col.endswith("rate") or col in ("ratio",) or any(w in col for w in _SHARE_WORDS):
            return f"{100 * value:.1f}%" if col != "ratio" else f"{value:.2f}"
        if "p_value" in col:
            return f"{value:.3f}"
        if _is_money(col):
            return f"{value:,.0f}" if wide else compact(value)
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}" if wide else compact(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _render_frame(console: Console, title: str, frame: pd.DataFrame, by: str, wide: bool = False) -> None:
    """One report table fitted to the console (see :func:`forecast.cli.render.print_table`).

    A ``name`` column equal to the grouping column is not repeated; all-zero and all-empty
    metrics are dropped; rates show their 95% Wilson interval (and ``n`` with ``--wide``). Few groups
    and many metrics print metrics as rows, in as many tables as the groups need to fit; otherwise
    the metrics that fit are shown and the others named (``--wide`` shows every one).
    """
    if frame.empty:
        console.print(f"[bold]{title}[/bold]: nothing to show")
        return
    labels = [
        c
        for c in (by, "name", "stage", "metric", "month", "day", "loss_reason", "prospect_id", "kind")
        if c in frame.columns
    ]
    if by != "name" and {by, "name"} <= set(labels):
        names = frame["name"].fillna("").astype(str)
        if ((names == frame[by].astype(str)) | (names == "")).all():  # "(all)" has no name
            labels.remove("name")
    shown_metrics = _metric_names(frame, set(labels) | {"name"})
    rows = frame.head(_TABLE_ROWS)
    if len(rows) <= 8 and len(shown_metrics) > 8:  # few groups, many metrics: metrics as rows
        columns = [Column("metric", "left", label=True)] + [
            Column(" ".join(str(r[c]) for c in labels if str(r[c]))) for _, r in rows.iterrows()
        ]
        cells = [[m, *(_cell(r, m, frame, wide) for _, r in rows.iterrows())] for m in shown_metrics]
        if not wide:
            cells = [c for c in cells if any(v not in EMPTY_CELLS for v in c[1:])]
        print_table(console, columns, cells, title, wide, split=True)
    else:
        columns = [Column(c, "left", label=True) for c in labels] + [
            Column(m, essential=False) for m in shown_metrics
        ]
        cells = [
            [*(str(r[c]) for c in labels), *(_cell(r, m, frame, wide) for m in shown_metrics)]
            for _, r in rows.iterrows()
        ]
        print_table(console, columns, cells, title, wide, hint="--wide or --metrics shows them")
    if len(frame) > _TABLE_ROWS:
        console.print(f"… {len(frame) - _TABLE_ROWS} more rows: use --format csv or json for all of them")


@app.command("insights")
def insights_cmd(
    ctx: typer.Context,
    period: PeriodOpt = None,
    as_of: AsOfOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decisions the period's metrics support, ranked by expected revenue impact, with their evidence."""
    from forecast.tracking import sql_insights
    from forecast.tracking.insights import insights

    in_sql = _in_sql(ctx, as_of, period, as_json, sql_insights.read_part)  # the part of the CRM they read
    if in_sql is not None:  # the rules after the warehouse's connection is closed
        *_, per, part = in_sql
        result = part.insights(per)
    else:
        data, per = _open(ctx, as_of, period, as_json)
        result = insights(data, per)
    payload = {"ok": True, **result.as_dict()}

    def render(console: Console) -> None:
        console.print(
            f"[bold]Insights for {per.label}[/bold] (as of {result.as_of}): {len(result.insights)} raised "
            f"from {result.tested} comparisons (false-discovery rate {result.config.fdr:.0%}, at least "
            f"{result.config.min_trials} trials and a {result.config.min_effect:.0%} difference)"
        )
        for note in result.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
        for audience in ("manager", "rep"):
            chosen = [i for i in result.insights if i.audience == audience]
            if not chosen:
                continue
            console.print(
                "\n[bold underline]"
                f"{'For the manager' if audience == 'manager' else 'For each rep'}[/bold underline]"
            )
            for k, i in enumerate(chosen, start=1):
                impact = (
                    "unknown"
                    if i.expected_revenue_impact != i.expected_revenue_impact
                    else f"{i.expected_revenue_impact:,.0f}"
                )
                console.print(f"{k}. [bold]{i.decision}[/bold]  (expected revenue impact {impact})")
                console.print(f"   {i.message}")
                stats = "" if i.p_value != i.p_value else f"; p={i.p_value:.4f}, q={i.q_value:.4f}"
                console.print(f"   [dim]{i.test}{stats}; adjusted for: {i.adjusted_for}[/dim]")

    emit(as_json, payload, render)
