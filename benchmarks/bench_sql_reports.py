"""The tracking reports aggregated in DuckDB against the same reports on the CRM read into memory.

Usage: ``uv run --frozen python benchmarks/bench_sql_reports.py [--warehouse PATH] [--as-of DATE]
[--threads N]`` (default: ``FORECAST_WAREHOUSE``'s warehouse, as of midnight after its last event).

For each report :mod:`forecast.tracking.sql_reports` computes (performance by rep, effectiveness by
team and by channel, the process and its stage table by channel, the goals' main table by rep, the
funnel by team with its monthly and loss-reason tables, the Prospects list, and the insights from
the part of the CRM they read; the last complete month and the quarter):
the seconds DuckDB takes over the warehouse (no read), the seconds of the CRM read and cut at the
as of (:func:`forecast.tracking.read.load`, once) and of the in-memory report on it, and whether
the two tables are the same (groups and counts exactly, other numbers to 1e-12). Then the
dashboard's Activity, Reps, Pipeline, Prospects and Insights pages (this one of the last month and
of the last quarter) of that as of on a fresh reader (every page's filter choices, then the pages;
``cuts_read`` must stay 0). Prints one line per
measure.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from forecast.config import load_settings
from forecast.dashboard.compare import reps_changes
from forecast.dashboard.data import Filters, Reader
from forecast.tracking import api, sql_insights, sql_reports
from forecast.tracking.insights import insights
from forecast.tracking.periods import parse_period
from forecast.tracking.read import load
from forecast.tracking.sql_cut import open_cut

REPORTS = (
    ("performance", "rep"),
    ("effectiveness", "team"),
    ("effectiveness", "channel"),
    ("process", "channel"),
    ("goals", "rep"),
    ("funnel", "team"),
    ("prospects", "rep"),
)


def same(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    """Whether two report tables hold the same columns, rows and values (numbers to 1e-12)."""
    if list(left.columns) != list(right.columns) or len(left) != len(right):
        return False
    for col in left.columns:
        a, b = left[col], right[col]
        if a.dtype == object or b.dtype == object:
            if a.tolist() != b.tolist():
                return False
        elif a.dtype.kind == "M" or b.dtype.kind == "M":
            if not a.equals(b):
                return False
        elif not np.allclose(a.astype(float), b.astype(float), rtol=1e-12, atol=1e-12, equal_nan=True):
            return False
    return True


def main() -> None:
    """Time and compare the reports, then the Activity page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=None)
    parser.add_argument("--as-of", default=None)
    parser.add_argument("--threads", type=int, default=None, help="DuckDB threads (default: its own)")
    args = parser.parse_args()
    settings = load_settings()
    path = args.warehouse or settings.warehouse
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; warehouse {path}")
    con = duckdb.connect(str(path), read_only=True)
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    as_of = pd.Timestamp(args.as_of) if args.as_of else None
    started = time.perf_counter()
    cut = open_cut(con, as_of)
    print(f"SQL cut (its checks and reps): {time.perf_counter() - started:.3f} s")
    if cut is None:
        print("this warehouse takes the read: the SQL cut does not apply")
        return
    started = time.perf_counter()
    data = load(con, cut.as_of)
    print(f"CRM read and cut at {cut.as_of.date()}: {time.perf_counter() - started:.2f} s")
    for spec in (None, "quarter"):
        period = parse_period(spec, cut.as_of)
        for name, by in REPORTS:
            started = time.perf_counter()
            whole = sql_reports.computes(name, extras=True)  # else the main table alone
            in_sql = sql_reports.report(cut, name, period, by, extras=whole)
            sql_s = time.perf_counter() - started
            started = time.perf_counter()
            in_memory = api.report(data, name, period, by, extras=whole)
            memory_s = time.perf_counter() - started
            equal = in_sql.keys() == in_memory.keys() and all(same(in_sql[k], in_memory[k]) for k in in_sql)
            rows = sum(len(t) for t in in_sql.values())
            print(
                f"{period.label:>8} {name:>13} by {by:<8} SQL {sql_s:6.3f} s | read + memory "
                f"(read above) + {memory_s:6.3f} s | {rows} rows | same: {equal}"
            )
        started = time.perf_counter()
        part = sql_insights.insights(cut, period)
        part_s = time.perf_counter() - started
        started = time.perf_counter()
        whole = insights(data, period)
        whole_s = time.perf_counter() - started
        equal = part is not None and part.as_dict() == whole.as_dict()
        print(
            f"{period.label:>8} {'insights':>13}             part {part_s:6.3f} s | read + memory "
            f"(read above) + {whole_s:6.3f} s | {whole.tested} tested | same: {equal}"
        )
    con.close()
    del data
    day = cut.as_of.date().isoformat()
    reader = Reader(settings.model_copy(update={"warehouse": path}))
    started = time.perf_counter()
    known = reader.cut(Filters(as_of=day)).known
    choices_s = time.perf_counter() - started
    started = time.perf_counter()
    reader.activity(Filters(as_of=day))
    page_s = time.perf_counter() - started
    started = time.perf_counter()
    reader.activity(Filters(as_of=day, team=known["team"][0]))
    team_s = time.perf_counter() - started
    started = time.perf_counter()
    reps_changes(reader, Filters(as_of=day))  # the Reps page's figures and its comparison
    reps_s = time.perf_counter() - started
    started = time.perf_counter()
    reader.pipeline(Filters(as_of=day))
    pipeline_s = time.perf_counter() - started
    started = time.perf_counter()
    listed = len(reader.prospects(Filters(as_of=day))["rows"])
    prospects_s = time.perf_counter() - started
    started = time.perf_counter()
    reader.prospects(Filters(as_of=day, team=known["team"][0]))
    team_prospects_s = time.perf_counter() - started
    started = time.perf_counter()
    reader.insights(Filters(as_of=day))
    insights_s = time.perf_counter() - started
    started = time.perf_counter()
    reader.insights(Filters(as_of=day, period="quarter"))
    quarter_s = time.perf_counter() - started
    print(
        f"dashboard, as of {day}, fresh reader: filter choices {choices_s:.2f} s, Activity page "
        f"{page_s:.2f} s, a team's {team_s:.2f} s, Reps page with its comparison {reps_s:.2f} s, "
        f"Pipeline page {pipeline_s:.2f} s, Prospects page {prospects_s:.2f} s ({listed} rows), "
        f"a team's {team_prospects_s:.2f} s, Insights page {insights_s:.2f} s, of the quarter "
        f"{quarter_s:.2f} s; "
        f"CRM reads: {reader.cuts_read}"
    )


if __name__ == "__main__":
    main()
