"""How long DuckDB takes for a page's activity aggregates straight over the warehouse (a timing probe).

Usage: ``uv run --frozen python benchmarks/bench_sql_aggregates.py [--warehouse PATH] [--threads 1]
[--as-of 2025-06-01]`` (default: ``FORECAST_WAREHOUSE``'s warehouse, as of midnight after its last
activity).

The dashboard's reports aggregate in numpy over the CRM's activities read into memory once per data
state (docs/architecture.md, "Tracking"); at a million leads that read takes 28-46 s, which is why
a new state's pages are prepared by the batch. Issue 18 item 7 asks for the aggregation in DuckDB.
This probe times what such queries cost over the warehouse itself (the first run on a fresh
connection, the file in the system's cache, and the best of ``--runs``), for the
aggregates the Reps, Activity and Prospects pages need: the period's counts per rep, per team
(a join to the reps) and per source (a join to the leads), the rep-weeks of the 26 weeks the
effectiveness report correlates, and each lead's last contact before the as of. The queries follow
the reports' rules only roughly (no point-in-time rep team, no source through a deal's lead, no
cold flag): they measure the cost of the scans and joins, not the figures. Prints one line per query.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import duckdb
import pandas as pd

DONE = "coalesce(outcome, 'completed') <> 'scheduled'"


def queries(start: str, end: str, weeks_from: str, as_of: str) -> dict[str, str]:
    """The probe's queries: the period ``[start, end)``, the rep-weeks from ``weeks_from``, the as of."""
    period = f"occurred_at >= TIMESTAMP '{start}' AND occurred_at < TIMESTAMP '{end}'"
    return {
        "per rep: the period's calls, emails, replies, meetings, seconds": f"""
            SELECT rep_id,
                   count(*) FILTER (WHERE type = 'call' AND {DONE}) AS calls,
                   count(*) FILTER (WHERE type = 'email' AND direction = 'outbound' AND {DONE}) AS emails,
                   count(*) FILTER (WHERE type = 'email' AND email_replied) AS replies,
                   count(*) FILTER (WHERE type = 'meeting' AND outcome = 'completed') AS meetings,
                   sum(duration_seconds) FILTER (WHERE {DONE}) AS seconds
            FROM activities WHERE {period} GROUP BY rep_id""",
        "per team (a join to the reps)": f"""
            SELECT r.team, count(*) AS n, sum(a.duration_seconds) AS seconds
            FROM activities a LEFT JOIN reps r USING (rep_id)
            WHERE a.{period} AND {DONE} GROUP BY r.team""",
        "per source (a join to the leads)": f"""
            SELECT l.source, count(*) AS n
            FROM activities a LEFT JOIN leads l USING (lead_id)
            WHERE a.{period} GROUP BY l.source""",
        "rep-weeks of the 26 weeks to the period's end": f"""
            SELECT rep_id, date_trunc('week', occurred_at) AS week,
                   count(*) FILTER (WHERE type = 'call') AS calls,
                   count(*) FILTER (WHERE type = 'email') AS emails, count(*) AS n
            FROM activities
            WHERE occurred_at >= TIMESTAMP '{weeks_from}' AND occurred_at < TIMESTAMP '{end}'
              AND direction = 'outbound' AND {DONE}
            GROUP BY ALL""",
        "each lead's last contact before the as of": f"""
            SELECT lead_id, max(occurred_at) AS last_contact
            FROM activities
            WHERE occurred_at < TIMESTAMP '{as_of}' AND {DONE} AND lead_id IS NOT NULL
            GROUP BY lead_id""",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--warehouse", type=Path, default=Path(os.environ.get("FORECAST_WAREHOUSE", "data/warehouse.duckdb"))
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--as-of", default=None, help="Default: midnight after the last activity.")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with duckdb.connect(str(args.warehouse), read_only=True) as look:
        rows, last = look.execute("SELECT count(*), max(occurred_at) FROM activities").fetchone() or (0, None)
    con = duckdb.connect(str(args.warehouse), read_only=True)  # "first": its first query on this connection
    con.execute(f"SET threads = {args.threads}")
    as_of = pd.Timestamp(args.as_of) if args.as_of else pd.Timestamp(last).normalize() + pd.Timedelta(days=1)
    end = as_of.replace(day=1)  # the last complete month before the as of
    start = end - pd.DateOffset(months=1)
    weeks_from = end - pd.Timedelta(weeks=26)
    print(
        f"{args.warehouse}: {rows:,} activities; as of {as_of.date()}, period {start.date()}..{end.date()}; "
        f"{args.threads} DuckDB thread(s); {platform.machine()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}"
    )
    for name, sql in queries(str(start), str(end), str(weeks_from), str(as_of)).items():
        times, n = [], 0
        for _ in range(args.runs):
            started = time.perf_counter()
            n = len(con.execute(sql).fetchall())
            times.append(time.perf_counter() - started)
        runs = ", ".join(f"{t * 1000:.0f}" for t in times)
        print(f"{name}: {n:,} rows; first {times[0] * 1000:.0f} ms, best {min(times) * 1000:.0f} ms ({runs})")


if __name__ == "__main__":
    main()
