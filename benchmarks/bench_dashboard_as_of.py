"""Views not computed ahead, as a browser gets them: each answer's server time, and the time to the page.

Usage: ``uv run --frozen python benchmarks/bench_dashboard_as_of.py [--as-of 2025-06-01,...]
[--periods 2025-06-01..2025-06-30,...] [--warm] [--warehouse PATH] [--models role=REF,...]
[--wait 0.1] [--pages /,/reps,...]`` with the ``FORECAST_*`` settings of a warehouse and its
champions (``forecast run``: the default simulated CRM).

The app is made as ``forecast dashboard`` makes it (``create_app(..., wait_seconds=--wait)``), and
asked through Starlette's test client (no socket: the time is the server's) within the app's
lifespan (another as of's pages are computed in its as-of process, :mod:`forecast.dashboard.worker`):
first, with ``--warm``, its whole warm-up (as after a start), then each page of each other as of,
then each page of each other period at the default as of. Each is asked as a browser asks it: while the
answer is ``202`` (the page being computed, :mod:`forecast.dashboard.deferred`) it is asked again
after the ``Refresh`` header's seconds. Prints, per page and view, the answers' count, the slowest
answer's server time, and the seconds from the first ask to the page; and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

from forecast.config import load_settings
from forecast.dashboard.app import create_app
from forecast.dashboard.deferred import WAIT_SECONDS

with warnings.catch_warnings():  # starlette's TestClient warns that it still uses httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

PAGES = ("/", "/reps", "/pipeline", "/prospects", "/activity", "/insights", "/models")


def _ask(
    client: TestClient, views: list[tuple[str, str, dict[str, str]]], pages: list[str]
) -> list[tuple[str, str, int, int, float, float, float]]:
    """Ask each page of each view as a browser does, until it is there; a row per page and view."""
    rows = []
    for kind, value, params in views:
        as_of = f"{kind} {value}"
        for page in pages:
            first = time.perf_counter()
            answers: list[float] = []
            while True:
                started = time.perf_counter()
                response = client.get(page, params=params)
                answers.append(1000 * (time.perf_counter() - started))
                if response.status_code != 202:
                    break
                time.sleep(float(response.headers.get("refresh", "2")))
            ready = time.perf_counter() - first
            rows.append((as_of, page, response.status_code, len(answers), max(answers), answers[-1], ready))
            print(as_of, page, response.status_code, [round(a) for a in answers], flush=True)
    return rows


def main() -> None:
    """Ask every page of each as of until it is there; print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--as-of", default="", help="other as-ofs to ask, comma-separated (YYYY-MM-DD)")
    parser.add_argument("--periods", default="", help="other periods to ask at the default as of")
    parser.add_argument("--warm", action="store_true", help="run the app's warm-up first")
    parser.add_argument("--warehouse", default=None, help="the warehouse (default: FORECAST_WAREHOUSE's)")
    parser.add_argument("--models", default=None, help="models by role, as forecast dashboard --models")
    parser.add_argument("--wait", type=float, default=WAIT_SECONDS, help="forecast dashboard --wait (s)")
    parser.add_argument("--pages", default=",".join(PAGES), help="the pages, comma-separated")
    args = parser.parse_args()
    if args.warehouse:
        os.environ["FORECAST_WAREHOUSE"] = args.warehouse
    refs = None
    if args.models:
        from forecast.binding import parse_models
        from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE

        refs = dict(parse_models(args.models, (DEAL_WIN, TIME_TO_CLOSE)))
    app = create_app(load_settings(), warm_every=0 if args.warm else None, refs=refs, wait_seconds=args.wait)
    load_before = os.getloadavg()[0]
    views = [("as of", a.strip(), {"as_of": a.strip()}) for a in args.as_of.split(",") if a.strip()]
    views += [("period", p.strip(), {"period": p.strip()}) for p in args.periods.split(",") if p.strip()]
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    with TestClient(app) as client:  # its lifespan: the warm-up (--warm) and the as-of process, stopped after
        if args.warm:
            started = time.perf_counter()
            assert app.state.warmer.wait(timeout=3600), "the warm-up did not end within an hour"
            print(f"warm-up done in {time.perf_counter() - started:.1f} s", flush=True)
        rows = _ask(client, views, pages)
    print(
        f"\n{platform.machine()}, {os.cpu_count()} cores, load {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after; --wait {args.wait}"
    )
    print("| view | page | status | answers | slowest answer ms | last answer ms | s to the page |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for as_of, page, status, n, slowest, last, ready in rows:
        print(f"| {as_of} | `{page}` | {status} | {n} | {slowest:,.0f} | {last:,.0f} | {ready:,.1f} |")


if __name__ == "__main__":
    main()
