"""Latency of the by-id routes (``GET /win_probability/{id}``, ...) under concurrent clients.

Usage:
    uv run --frozen python benchmarks/bench_by_id.py [--requests 2000] [--concurrency 8]
        [--workers 2] [--ids 200] [--json OUT]

Needs a warehouse and the champions of ``forecast run`` (``FORECAST_*`` settings as for the CLI:
the default simulated CRM of 20,000 leads). Two parts:

1. **What a read costs** (in this process, no server): opening the warehouse read-only, building
   the feature table of the open deals and of the open leads at the default as-of (what a state of
   :mod:`forecast.serving.records` holds, and how long a refresh holds the read lock), reading the
   flags' histories, the per-request work on a state (one row's ``score_frame``), and the
   refresher's warm-up (every answer of the default tables at once, :func:`forecast.serving.by_id.warm`).
   These are the figures the design chose by (docs/serving.md, "Scores by record id").
2. **The routes over HTTP**: ``forecast serve --warehouse`` (``--workers``) on a free loopback port;
   after a warm-up that reads every state and flags every table, ``--concurrency`` clients (one
   thread each, one keep-alive connection each, in a separate process from the server) ask each
   route for up to ``--ids`` open records once each (``first``: each answered from the warm-up
   where it has run, else scored), then send
   ``--requests`` requests for records drawn from them (``again``: a worker that scored a record
   keeps its answer until the warehouse or the model changes). Latency is measured by the client
   (send to last byte). Printed as a Markdown table: requests/s, p50, p90, p99, max and non-200
   answers per route and pass.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from forecast.config import load_settings
from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.warehouse import connect_duckdb, read_pipeline
from forecast.features.build import ID_COLUMN, build_feature_table
from forecast.features.source import FeatureSource
from forecast.flags.history import load_history
from forecast.flags.job import load_flags_config
from forecast.registry import load_model
from forecast.scoring.frame import score_frame
from forecast.serving.by_id import close_answers, score_answers

ROUTES = {
    "/win_probability/{id}": ("opportunity", "/win_probability/{}"),
    "/time_to_close/{id}": ("opportunity", "/time_to_close/{}"),
    "/lead_score/{id}": ("lead", "/lead_score/{}"),
    "/flags/deal/{id}": ("opportunity", "/flags/deal/{}"),
    "/flags/lead/{id}": ("lead", "/flags/lead/{}"),
}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def read_costs(warehouse: Path) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Time the reads of a state; return the figures and the open ids of each entity."""
    out: dict[str, Any] = {}
    ids: dict[str, list[str]] = {}
    start = time.perf_counter()
    con = connect_duckdb(str(warehouse), read_only=True, lock_wait=0)
    out["open read-only connection (ms)"] = _ms(time.perf_counter() - start)
    try:
        src = FeatureSource(con, read_pipeline(con) or DEFAULT_PIPELINE)
        when = src.default_as_of()
        frames = {}
        for entity in ("opportunity", "lead"):
            start = time.perf_counter()
            frame = build_feature_table(src, entity, [when]).frame
            out[f"feature table, {entity} (ms)"] = _ms(time.perf_counter() - start)
            out[f"open {entity} records"] = len(frame)
            frames[entity] = frame
            ids[entity] = [str(i) for i in frame[ID_COLUMN[entity]]]
        config = load_flags_config()
        for entity in ("opportunity", "lead"):
            start = time.perf_counter()
            load_history(src, entity, config)
            out[f"flags history, {entity} (ms)"] = _ms(time.perf_counter() - start)
    finally:
        con.close()
    settings = load_settings()
    for name, entity in (("deal_win", "opportunity"), ("lead_scoring", "lead")):
        model = load_model(name, settings)
        frame = frames[entity]
        row = frame.iloc[:1]
        score_frame(model, row, row[ID_COLUMN[entity]])
        samples = []
        for i in range(0, min(len(frame), 200)):
            row = frame.iloc[i : i + 1]
            begin = time.perf_counter()
            score_frame(model, row, row[ID_COLUMN[entity]])
            samples.append(time.perf_counter() - begin)
        out[f"score_frame of one {entity} row, median (ms)"] = _ms(float(np.median(samples)))
    # what the refresher's warm-up computes after each import: every answer of the default tables
    for name, entity, answers in (
        ("deal_win", "opportunity", score_answers),
        ("time_to_close", "opportunity", None),
        ("lead_scoring", "lead", score_answers),
    ):
        model = load_model(name, settings)
        begin = time.perf_counter()
        if answers is None:
            close_answers(model, frames[entity])
        else:
            answers(model, frames[entity], entity)  # type: ignore[operator]
        out[f"warm-up: every {name} answer of the table (ms)"] = _ms(time.perf_counter() - begin)
    return out, ids


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``forecast serve --warehouse`` on a free port, ready (its own process group)."""
    port = _free_port()
    cmd = [sys.executable, "-m", "forecast.cli", "serve", "--warehouse", "--port", str(port)]
    cmd += ["--workers", str(workers), "--reload-seconds", "0"]
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "true"}
    handle = log.open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server stopped: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not become ready")


def load(base: str, paths: list[str], concurrency: int, headers: dict[str, str]) -> dict[str, Any]:
    """``len(paths)`` GETs from ``concurrency`` threads; latency percentiles and the failures."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    queue = iter(paths)

    def client() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            while True:
                with lock:
                    path = next(queue, None)
                if path is None:
                    return
                begin = time.perf_counter()
                answer = http.get(path)
                took = time.perf_counter() - begin
                with lock:
                    latencies.append(took)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {path}")

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(ms),
        "rps": round(len(ms) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
        "non_200": len(failures),
        "failures": failures[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="Requests per route, second pass.")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ids", type=int, default=400, help="Open records of each entity to ask for.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    settings = load_settings()
    costs, open_ids = read_costs(settings.warehouse)
    print("| read | figure |\n|---|---|")
    for key, value in costs.items():
        print(f"| {key} | {value:,} |")
    rng = random.Random(7)
    pools = {e: rng.sample(ids, min(args.ids, len(ids))) for e, ids in open_ids.items()}
    token = settings.api_token.get_secret_value().strip() if settings.api_token else None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_by_id-{os.getpid()}.log"
    proc, base = start_server(args.workers, log)
    results: dict[str, Any] = {}
    try:
        # warm-up: every worker reads its state (an unknown id is a 404 after the read) and flags
        # its tables; no record is scored, so the first pass below scores each record once
        for _name, (entity, pattern) in ROUTES.items():
            if "/flags/" in pattern:
                load(base, [pattern.format(i) for i in pools[entity][:40]], args.concurrency, headers)
            else:
                load(base, [pattern.format("WARM-UP") for _ in range(40)], args.concurrency, headers)
        for name, (entity, pattern) in ROUTES.items():
            load1 = os.getloadavg()[0]
            first = load(base, [pattern.format(i) for i in pools[entity]], args.concurrency, headers)
            results[f"{name} first"] = {**first, "load_1m_before": round(load1, 2)}
            load1 = os.getloadavg()[0]
            paths = [pattern.format(rng.choice(pools[entity])) for _ in range(args.requests)]
            again = load(base, paths, args.concurrency, headers)
            results[f"{name} again"] = {**again, "load_1m_before": round(load1, 2)}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    print(
        f"\nconcurrency {args.concurrency}, {args.workers} workers; "
        "'first': each record once (from the warm-up where it ran, else scored), "
    )
    print(f"'again': {args.requests} requests for records asked before (a worker that scored one keeps it)\n")
    print("| route | pass | requests | requests/s | p50 ms | p90 ms | p99 ms | max ms | non-200 | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        route, kind = name.rsplit(" ", 1)
        print(
            f"| `GET {route}` | {kind} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p90_ms']} "
            f"| {r['p99_ms']} | {r['max_ms']} | {r['non_200']} | {r['load_1m_before']} |"
        )
    if args.json is not None:
        payload = {"machine": platform.platform(), "cpus": os.cpu_count(), "reads": costs, "routes": results}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
