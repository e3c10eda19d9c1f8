"""Server time of the dashboard's pages (issue 18: at most 300 ms a page on the default CRM).

Usage: ``uv run --frozen python benchmarks/bench_dashboard.py [--repeat 5] [--team NAME]
[--warehouse PATH] [--models role=REF,...] [--filters]`` with the ``FORECAST_*`` settings of a
warehouse and its champions (``forecast run``: the default simulated CRM of 20,000 leads).
``--warehouse`` measures another warehouse (a 1M-lead one, say) and ``--models`` names the models by
role as ``forecast dashboard --models`` does (the champions of another warehouse, used with a
warning: ``deal_win=deal_win@champion,time_to_close=time_to_close@champion``). ``--filters`` also
asks each page once cold with a rep, a region and a source filter (one of each, the first in the
warehouse) after the team one; ``--periods a,b`` also with each of those periods (``?period=``, a
period the warm-up does not compute: ``2025-06-01..2025-06-30``, ``week``). Each page is asked
in-process through Starlette's test client (no socket, so the time is the server's: reading,
computing, rendering). Two scenarios, each in a fresh
process (so each pays the imports and model loads a started dashboard pays):

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


def _filters(team: str | None, more: bool, periods: str | None = None) -> dict[str, str]:
    """The filters asked cold, by name, each as its query: the team one, and with ``more`` a rep, a
    region and a source; then each of ``periods`` (comma-separated ``--period`` values)."""
    import duckdb

    with duckdb.connect(str(load_settings().warehouse), read_only=True) as con:
        first = con.execute("SELECT min(team), min(region), min(rep_id) FROM reps").fetchone() or (None,) * 3
        source = (con.execute("SELECT min(source) FROM leads").fetchone() or (None,))[0]
    out = {"team": team or first[0]}
    if more:
        out |= {"rep": first[2], "region": first[1], "source": source}
    asked = {k: f"{k}={v}" for k, v in out.items() if v is not None}
    return asked | {
        f"period {p.strip()}": f"period={p.strip()}" for p in (periods or "").split(",") if p.strip()
    }


def _refs(models: str | None) -> dict[str, Any] | None:
    """``--models`` as ``forecast dashboard`` parses it (``None``: the champions)."""
    if not models:
        return None
    from forecast.binding import parse_models
    from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE

    return dict(parse_models(models, (DEAL_WIN, TIME_TO_CLOSE)))


def _pages(only: str | None) -> tuple[str, ...]:
    """The pages to ask: ``--pages`` (comma-separated paths) or all of them."""
    if not only:
        return PAGES
    chosen = tuple(p.strip() for p in only.split(",") if p.strip())
    unknown = [p for p in chosen if p not in PAGES]
    if unknown:
        raise SystemExit(f"--pages: unknown {', '.join(unknown)}; use some of {', '.join(PAGES)}")
    return chosen


def _without_overview(pages: tuple[str, ...]) -> None:
    """Leave the Overview out of the warm-up too when it is not asked (``--pages`` without ``/``)."""
    if "/" in pages:
        return
    from forecast.dashboard import warm

    defaults, filtered = warm.default_pages, warm.filtered_pages
    warm.default_pages = lambda reader: [(n, c) for n, c in defaults(reader) if n != "overview"]  # type: ignore[assignment]
    warm.filtered_pages = lambda reader: [  # type: ignore[assignment]
        (n, c) for n, c in filtered(reader) if not n.startswith("overview")
    ]


def cold(repeat: int, filters: dict[str, str], models: str | None, pages: tuple[str, ...]) -> dict[str, Any]:
    """Every page cold without a warm-up, warm, and cold with each filter."""
    app = create_app(load_settings(), warm_every=None, refs=_refs(models))
    client = TestClient(app)  # no lifespan: no warm-up
    out: dict[str, Any] = {}
    for page in pages:
        first, status = _ms(client, page)
        warm = statistics.median(_ms(client, page)[0] for _ in range(repeat))
        sep = "&" if "?" in page else "?"
        row = {"cold": first, "warm": warm, "status": str(status)}
        for key, query in filters.items():
            row[key], f_status = _ms(client, f"{page}{sep}{query}")
            row["status"] += f" / {f_status}"
        out[page] = row
        print(json.dumps({page: row}), file=sys.stderr, flush=True)  # progress
    return out


def warmup(filters: dict[str, str], models: str | None, pages: tuple[str, ...]) -> dict[str, Any]:
    """The seconds from the app's start to the end of its warm-up, then each page's first visit.

    The filtered pages' first visits (each filter of ``filters``) come after the default ones.
    """
    _without_overview(pages)
    app = create_app(load_settings(), warm_every=0, refs=_refs(models))
    started = time.perf_counter()
    with TestClient(app) as client:  # the lifespan starts the warm-up
        done = app.state.warmer.wait(timeout=3600)
        seconds = time.perf_counter() - started
        reader = app.state.reader
        before = reader.computed + getattr(reader, "assembled", 0)  # figures and pages (older code: one)
        firsts = {page: _ms(client, page) for page in pages}
        computed = reader.computed + getattr(reader, "assembled", 0) - before
        filtered: dict[str, dict[str, float]] = {}
        for page in pages:
            sep = "&" if "?" in page else "?"
            filtered[page] = {k: _ms(client, f"{page}{sep}{q}")[0] for k, q in filters.items()}
        computed_filtered = reader.computed + getattr(reader, "assembled", 0) - before - computed
    return {
        "done": done,
        "seconds": seconds,
        "warmer_seconds": app.state.warmer.seconds,
        "default_seconds": getattr(app.state.warmer, "default_seconds", None),  # (older code: none)
        "pages": {
            p: {"first": ms, "status": status, "filtered": filtered[p]} for p, (ms, status) in firsts.items()
        },
        "computed_on_first_visits": computed,
        "computed_on_filtered_first_visits": computed_filtered,
    }


def _scenario(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--scenario", name, "--repeat", str(args.repeat)]
    for option in ("team", "models", "pages", "periods"):
        if getattr(args, option):
            command += [f"--{option}", getattr(args, option)]
    if args.filters:
        command.append("--filters")
    env = dict(os.environ)
    if args.warehouse:
        env["FORECAST_WAREHOUSE"] = args.warehouse
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Run both scenarios in fresh processes and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--team", default=None, help="the team filter (default: the first team)")
    parser.add_argument("--warehouse", default=None, help="the warehouse (default: FORECAST_WAREHOUSE's)")
    parser.add_argument("--models", default=None, help="models by role, as forecast dashboard --models")
    parser.add_argument("--filters", action="store_true", help="also a rep, a region and a source filter")
    parser.add_argument("--pages", default=None, help="the pages to ask, comma-separated (default: all)")
    parser.add_argument(
        "--periods", default=None, help="also each page cold with each of these periods (comma-separated)"
    )
    parser.add_argument(
        "--only", choices=("cold", "warmup"), default=None, help="run one of the two scenarios only"
    )
    parser.add_argument("--scenario", choices=("cold", "warmup"), help="run one scenario, print JSON")
    args = parser.parse_args()
    if args.scenario == "cold":
        print(
            json.dumps(
                cold(
                    args.repeat,
                    _filters(args.team, args.filters, args.periods),
                    args.models,
                    _pages(args.pages),
                )
            )
        )
        return
    if args.scenario == "warmup":
        filters = _filters(args.team, args.filters, args.periods)
        print(json.dumps(warmup(filters, args.models, _pages(args.pages))))
        return
    load = os.getloadavg()[0]
    pages = _pages(args.pages)
    empty: dict[str, Any] = {p: {"cold": float("nan"), "warm": float("nan"), "status": "-"} for p in pages}
    c = _scenario("cold", args) if args.only != "warmup" else empty
    nothing = {"first": float("nan"), "status": "-"}
    w = (
        _scenario("warmup", args)
        if args.only != "cold"
        else {"done": None, "seconds": float("nan"), "warmer_seconds": None, "computed_on_first_visits": None}
        | {"pages": dict.fromkeys(pages, nothing)}
    )
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} cores, load {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(
        f"warm-up: done {w['seconds']:.1f} s after the start (the warm-up itself "
        f"{w['warmer_seconds'] or float('nan'):.1f} s, of which the default views "
        f"{w.get('default_seconds') or float('nan'):.1f} s, then one filter of each kind; complete: "
        f"{w['done']}); results the first visits then computed: {w['computed_on_first_visits']}, "
        f"the filtered first visits: {w.get('computed_on_filtered_first_visits')}"
    )
    keys = [k for k in c[pages[0]] if k not in ("cold", "warm", "status")]
    print(
        "| page | cold ms, no warm-up | first visit ms, after the warm-up | warm ms (median) | "
        + "".join(f"cold ms, {k} filter | " for k in keys)
        + "status |"
    )
    print("|---|---:|---:|---:|" + "---:|" * len(keys) + "---|")
    for page in pages:
        row, first = c[page], w["pages"][page]
        print(
            f"| `{page}` | {row['cold']:,.0f} | {first['first']:,.1f} | {row['warm']:,.1f} | "
            + "".join(f"{row[k]:,.0f} | " for k in keys)
            + f"{row['status']} / {first['status']} |"
        )
    filtered_keys = list(w["pages"][pages[0]].get("filtered", {}))
    if filtered_keys:
        print()
        print(
            "| page | " + "".join(f"first visit ms after the warm-up, {k} filter | " for k in filtered_keys)
        )
        print("|---|" + "---:|" * len(filtered_keys))
        for page in pages:
            got = w["pages"][page]["filtered"]
            print(f"| `{page}` | " + "".join(f"{got[k]:,.1f} | " for k in filtered_keys))


if __name__ == "__main__":
    main()
