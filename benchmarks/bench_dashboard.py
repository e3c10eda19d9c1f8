"""Server time of the dashboard's pages (issue 18: at most 300 ms a page on the default CRM).

Usage: ``uv run --frozen python benchmarks/bench_dashboard.py [--repeat 5] [--team NAME]`` with the
``FORECAST_*`` settings of a warehouse and its champions (``forecast run``: the default simulated CRM
of 20,000 leads). Each page is asked in-process through Starlette's test client (no socket, so the
time is the server's: reading, computing, rendering). Two scenarios, each in a fresh process (so
each pays the imports and model loads a started dashboard pays):

- ``cold``: no warm-up (``create_app(..., warm_every=None)``): each page once cold (an empty cache,
  as on the first visit after a start or an ingest before the warm-up existed), then ``--repeat``
  times warm (the reader's cache), then once cold with a team filter;
- ``warmup``: the app started as ``forecast dashboard`` starts it (its lifespan runs the warm-up):
  the seconds from the start until the warm-up has computed every page's default view, then each
  page's first visit, and how many results those first visits still computed (0: all found).

Prints a Markdown table of both, with the machine's load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any

from forecast.config import load_settings
from forecast.dashboard.app import create_app

with warnings.catch_warnings():  # starlette's TestClient warns that it still uses httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

PAGES = ("/", "/reps", "/pipeline", "/prospects", "/activity", "/insights", "/models", "/prospects.csv")


def _ms(client: TestClient, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    status = client.get(url).status_code
    return 1000 * (time.perf_counter() - started), status


def _team(team: str | None) -> str | None:
    if team is not None:
        return team
    import duckdb

    with duckdb.connect(str(load_settings().warehouse), read_only=True) as con:
        row = con.execute("SELECT min(team) FROM reps").fetchone()
    return row[0] if row else None


def cold(repeat: int, team: str | None) -> dict[str, Any]:
    """Every page cold without a warm-up, warm, and cold with a team filter."""
    client = TestClient(create_app(load_settings(), warm_every=None))  # no lifespan: no warm-up
    out: dict[str, Any] = {}
    for page in PAGES:
        first, status = _ms(client, page)
        warm = statistics.median(_ms(client, page)[0] for _ in range(repeat))
        sep = "&" if "?" in page else "?"
        filtered, f_status = _ms(client, f"{page}{sep}team={team}") if team else (float("nan"), 0)
        out[page] = {"cold": first, "warm": warm, "team": filtered, "status": f"{status} / {f_status}"}
    return out


def warmup() -> dict[str, Any]:
    """The seconds from the app's start to the end of its warm-up, then each page's first visit."""
    app = create_app(load_settings(), warm_every=0)
    started = time.perf_counter()
    with TestClient(app) as client:  # the lifespan starts the warm-up
        done = app.state.warmer.wait(timeout=600)
        seconds = time.perf_counter() - started
        before = app.state.reader.computed
        pages = {page: _ms(client, page) for page in PAGES}
        computed = app.state.reader.computed - before
    return {
        "done": done,
        "seconds": seconds,
        "warmer_seconds": app.state.warmer.seconds,
        "pages": {p: {"first": ms, "status": status} for p, (ms, status) in pages.items()},
        "computed_on_first_visits": computed,
    }


def _scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--scenario", name, "--repeat", str(args.repeat)]
    if args.team:
        command += ["--team", args.team]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run both scenarios in fresh processes and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--team", default=None, help="the team filter (default: the first team)")
    parser.add_argument("--scenario", choices=("cold", "warmup"), help="run one scenario, print JSON")
    args = parser.parse_args()
    if args.scenario == "cold":
        print(json.dumps(cold(args.repeat, _team(args.team))))
        return
    if args.scenario == "warmup":
        print(json.dumps(warmup()))
        return
    load = os.getloadavg()[0]
    c = _scenario("cold", args)
    w = _scenario("warmup", args)
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} cores, load {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(
        f"warm-up: every default view computed {w['seconds']:.1f} s after the start "
        f"(the warm-up itself {w['warmer_seconds'] or float('nan'):.1f} s; complete: {w['done']}); "
        f"results the first visits then computed: {w['computed_on_first_visits']}"
    )
    print(
        "| page | cold ms, no warm-up | first visit ms, after the warm-up | warm ms (median) "
        "| cold ms, team filter | status |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for page in PAGES:
        row, first = c[page], w["pages"][page]
        print(
            f"| `{page}` | {row['cold']:,.0f} | {first['first']:,.1f} | {row['warm']:,.1f} "
            f"| {row['team']:,.0f} | {row['status']} / {first['status']} |"
        )


if __name__ == "__main__":
    main()
