"""The dashboard's restart: its warm-up with an empty page store, then again reading the pages back.

Usage: ``uv run --frozen python benchmarks/bench_dashboard_restart.py [--store DIR] [--warehouse PATH]
[--models role=REF,...] [--pages /,/reps,...]`` with the ``FORECAST_*`` settings of a warehouse and
its champions (as ``benchmarks/bench_dashboard.py``). Two runs, each in a fresh process (each pays
the imports and the model loads a started dashboard pays), over one store (``--store``, default a
new temporary folder, removed at the end unless given):

- ``first``: the store empty, as the first start over a warehouse (or after an ingest): the app
  started as ``forecast dashboard`` starts it, the seconds until its warm-up has computed every
  page's default view, then until the whole warm-up (one filter of each kind) is done, and each
  page's first visit after it;
- ``restart``: the same app started again over the same store: the first visit of each page while
  the warm-up runs (the visit reads the page back, or computes it), then the same seconds and
  first visits as ``first``, and how many pages the run read back, put together and computed.

With ``--prepared`` the first run is the batch's ``forecast dashboard --prepare`` instead (its own
process, no server; its seconds are the command's wall time), and ``restart`` is the dashboard
started after it. The store is ``<data dir>/dashboard-cache`` with the data dir set to ``--store``,
and the models are named as the CLI names them, so that both processes keep the same pages.

Prints a Markdown table, with the machine's load before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from bench_dashboard import PAGES, _ms
from forecast.binding import model_refs
from forecast.config import load_settings
from forecast.dashboard.app import create_app
from forecast.dashboard.data import Filters
from forecast.dashboard.store import MODEL_ROLES, default_store

with warnings.catch_warnings():  # starlette's TestClient warns that it still uses httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


DEFAULT_PAGES = (
    "overview",
    "overview changes",
    "reps",
    "reps changes",
    "pipeline",
    "prospects",
    "activity",
    "insights",
)
"""The pages the warm-up's default views hold (``forecast.dashboard.warm.default_pages``)."""


def _cli_refs(models: str | None) -> dict[str, Any]:
    """The models by role as ``forecast dashboard [--models]`` names them (the store's scope)."""
    return dict(model_refs(MODEL_ROLES, None, models))


def run(models: str | None, pages: tuple[str, ...], visit_first: bool) -> dict[str, Any]:
    """One start of the app over its store: warm-up seconds and first visits (see the module)."""
    settings = load_settings()  # FORECAST_DATA_DIR is the store's root (set by main)
    refs = _cli_refs(models)
    app = create_app(settings, warm_every=0, refs=refs, store=default_store(settings, refs))
    started = time.perf_counter()
    early: dict[str, float] = {}
    with TestClient(app) as client:  # the lifespan starts the warm-up
        warmer, reader = app.state.warmer, app.state.reader
        if visit_first:
            while reader.fingerprint() is None and time.perf_counter() - started < 60:
                time.sleep(0.05)  # the warm-up's first look notes the champions (a registry query)
            early = {page: _ms(client, page)[0] for page in pages}
        default = Filters()
        ready = {reader.page_key(name, default) for name in DEFAULT_PAGES}
        ready.add(("prospects.csv", *default.key()))
        while not ready <= set(reader.keys()) and warmer.running:
            time.sleep(0.05)  # every default view held (read back or computed)
        defaults = time.perf_counter() - started
        done = warmer.wait(timeout=3600)
        seconds = time.perf_counter() - started
        firsts = {page: _ms(client, page)[0] for page in pages}
    return {
        "done": done,
        "default_views_s": defaults,
        "seconds": seconds,
        "early": early,
        "firsts": firsts,
        "loaded": reader.loaded,
        "assembled": reader.assembled,
        "computed": reader.computed,
    }


def main() -> None:
    """Both runs in fresh processes, then one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--store",
        default=None,
        help="the data folder; the store is <store>/dashboard-cache (default: a new temporary one)",
    )
    parser.add_argument("--warehouse", default=None, help="the warehouse (default: FORECAST_WAREHOUSE's)")
    parser.add_argument("--models", default=None, help="models by role, as forecast dashboard --models")
    parser.add_argument("--pages", default=None, help="the pages to ask, comma-separated (default: all)")
    parser.add_argument("--run", choices=("first", "restart"), help="one run in this process, print JSON")
    parser.add_argument(
        "--prepared",
        action="store_true",
        help="the first run is the batch's `forecast dashboard --prepare`, not a dashboard's warm-up",
    )
    args = parser.parse_args()
    pages = tuple(args.pages.split(",")) if args.pages else PAGES
    if args.run:
        print(json.dumps(run(args.models, pages, args.run == "restart")))
        return
    store = Path(args.store) if args.store else Path(tempfile.mkdtemp(prefix="dashboard-store-"))
    env = dict(os.environ) | {"FORECAST_DATA_DIR": str(store)}
    env |= {"FORECAST_WAREHOUSE": args.warehouse} if args.warehouse else {}
    load = os.getloadavg()[0]
    results = {}
    if args.prepared:
        command = [sys.executable, "-m", "forecast.cli", "dashboard", "--prepare"]
        command += ["--models", args.models] if args.models else []
        started = time.perf_counter()
        done = subprocess.run(command, check=True, stderr=subprocess.PIPE, text=True, env=env)
        seconds = time.perf_counter() - started
        print(done.stderr.strip().splitlines()[-1], file=sys.stderr, flush=True)
        results["prepare"] = {"default_views_s": seconds, "seconds": seconds, "early": {}, "firsts": {}}
        results["prepare"] |= {"loaded": "-", "assembled": "-", "computed": "-"}
    for name in ("restart",) if args.prepared else ("first", "restart"):
        command = [sys.executable, __file__, "--run", name]
        command += ["--models", args.models] if args.models else []
        command += ["--pages", args.pages] if args.pages else []
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env)
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
    if not args.store:
        shutil.rmtree(store, ignore_errors=True)
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} cores, load {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print(f"store: {size / 2**20:,.1f} MiB")
    print(
        "| run | default views ready, s | warm-up done, s | pages read back / put together "
        "| figures computed |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['default_views_s']:,.1f} | {r['seconds']:,.1f} | "
            f"{r['loaded']} / {r['assembled']} | {r['computed']} |"
        )
    print()
    print(
        "| page | first run: first visit ms after the warm-up | restart: first visit ms during its warm-up | "
        "restart: after it |"
    )
    print("|---|---:|---:|---:|")
    for page in pages:
        f, r = results.get("first", results.get("prepare", {})), results["restart"]
        print(
            f"| `{page}` | {f['firsts'].get(page, float('nan')):,.1f} | "
            f"{r['early'].get(page, float('nan')):,.1f} | {r['firsts'][page]:,.1f} |"
        )


if __name__ == "__main__":
    main()
