"""Server time of the dashboard's pages (issue 18: at most 300 ms a page on the default CRM).

Usage: ``uv run --frozen python benchmarks/bench_dashboard.py [--repeat 5] [--team NAME]`` with the
``FORECAST_*`` settings of a warehouse and its champions (``forecast run``: the default simulated CRM
of 20,000 leads). Each page is asked in this process through Starlette's test client (no socket, so
the time is the server's: reading, computing, rendering): once cold (an empty cache, as after an
ingest), then ``--repeat`` times warm (the reader's cache, keyed by the warehouse's modification
time, the as-of and the filters), then once cold with a team filter. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from starlette.testclient import TestClient

from forecast.config import load_settings
from forecast.dashboard.app import create_app

PAGES = ("/", "/reps", "/pipeline", "/prospects", "/activity", "/insights", "/models", "/prospects.csv")


def _ms(client: TestClient, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    status = client.get(url).status_code
    return 1000 * (time.perf_counter() - started), status


def main() -> None:
    """Time every page cold, warm and cold with a team filter."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--team", default=None, help="the team filter (default: the first team)")
    args = parser.parse_args()
    settings = load_settings()
    client = TestClient(create_app(settings))
    team = args.team
    if team is None:
        import duckdb

        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            row = con.execute("SELECT min(team) FROM reps").fetchone()
        team = row[0] if row else None
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print("| page | cold ms | warm ms (median) | cold ms, team filter | status |")
    print("|---|---:|---:|---:|---|")
    for page in PAGES:
        cold, status = _ms(client, page)
        warm = statistics.median(_ms(client, page)[0] for _ in range(args.repeat))
        sep = "&" if "?" in page else "?"
        filtered, f_status = _ms(client, f"{page}{sep}team={team}") if team else (float("nan"), 0)
        print(f"| `{page}` | {cold:,.0f} | {warm:,.1f} | {filtered:,.0f} | {status} / {f_status} |")


if __name__ == "__main__":
    main()
