"""The filtered Overview's revenue forecast alone: ``revenue_job(group=...)`` by team, rep and region.

Usage: ``FORECAST_WAREHOUSE=... FORECAST_MLFLOW_TRACKING_URI=... python benchmarks/bench_revenue_group.py
[--models role=REF,...] [--repeat 1] [--dump PATH] [--profile]``.

In one process, the dashboard's reader (:class:`forecast.dashboard.data.Reader`) asks the forecast as
the Overview does: first without a filter (it reads the CRM, scores the open deals and estimates the
common shocks, which it keeps), then with a team, a rep and a region filter (the first of each in the
warehouse), each a cold forecast of its whole grouping that reuses what the first kept. Prints one
JSON line: the milliseconds of each (``--repeat`` times, the reader's cache cleared of the grouped
forecasts between them), wall clock (``ms``) and the process's CPU (``cpu_ms``: less sensitive to
other jobs on a shared machine), and the machine's load. ``--dump`` writes each forecast's records (the
figures the page shows, every group's rows) to a JSON file, so that two codes' figures can be compared
(``--compare A B``: exit 1 unless equal, float for float). ``--profile`` runs each filter kind's last
forecast under ``cProfile`` and prints its top functions to standard error.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from forecast.config import load_settings


def _refs(models: str | None) -> dict[str, Any] | None:
    """``--models`` as ``forecast dashboard`` parses it (``None``: the champions)."""
    if not models:
        return None
    from forecast.binding import parse_models
    from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE

    return dict(parse_models(models, (DEAL_WIN, TIME_TO_CLOSE)))


def _firsts() -> dict[str, str]:
    """The first team, rep and region of the warehouse's reps."""
    import duckdb

    with duckdb.connect(str(load_settings().warehouse), read_only=True) as con:
        row = con.execute("SELECT min(team), min(rep_id), min(region) FROM reps").fetchone()
    assert row is not None
    return {"team": str(row[0]), "rep": str(row[1]), "region": str(row[2])}


def run(models: str | None, repeat: int, dump: str | None, profile: bool = False) -> dict[str, Any]:
    """Time the reader's forecast unfiltered, then per filter kind; the figures with ``dump``.

    With ``profile``, each filter kind's last forecast runs under ``cProfile`` (its top functions by
    cumulative time go to standard error; the time printed is then the profiler's).
    """
    from forecast.dashboard.data import Filters, Missing, Reader

    reader = Reader(load_settings(), refs=_refs(models))
    out: dict[str, Any] = {"load_before": os.getloadavg()[0], "ms": {}, "cpu_ms": {}}
    started, cpu = time.perf_counter(), time.process_time()
    first = reader.revenue(Filters())
    out["ms"]["none"] = [1000 * (time.perf_counter() - started)]
    out["cpu_ms"]["none"] = [1000 * (time.process_time() - cpu)]
    if isinstance(first, Missing):
        raise SystemExit(f"no forecast: {first}")
    documents = {"none": first["forecast"]}
    for kind, value in _firsts().items():
        times, cpus = [], []
        for _ in range(repeat):
            with reader._lock:  # a cold forecast of the grouping each time
                for key in [k for k in reader._cache if len(k) > 1 and k[1] == "revenue" and k[-1] == kind]:
                    del reader._cache[key]
            profiler = cProfile.Profile() if profile and len(times) == repeat - 1 else None
            started, cpu = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            doc = reader.revenue(Filters(**{kind: value}))
            times.append(1000 * (time.perf_counter() - started))
            cpus.append(1000 * (time.process_time() - cpu))
            if profiler is not None:
                profiler.disable()
                print(f"--- profile by {kind}", file=sys.stderr)
                pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(25)
        if isinstance(doc, Missing):
            raise SystemExit(f"no forecast by {kind}: {doc}")
        out["ms"][kind] = times
        out["cpu_ms"][kind] = cpus
        documents[kind] = doc["forecast"]
    out["load_after"] = os.getloadavg()[0]
    if dump:
        Path(dump).write_text(json.dumps(documents), encoding="utf-8")
    return out


def compare(a: str, b: str) -> int:
    """Exit status 0 when the two dumps hold the same records, float for float."""
    left = json.loads(Path(a).read_text(encoding="utf-8"))
    right = json.loads(Path(b).read_text(encoding="utf-8"))
    bad = 0
    for kind in left:
        rows_a, rows_b = left[kind], right.get(kind, [])
        if len(rows_a) != len(rows_b):
            print(f"{kind}: {len(rows_a)} rows against {len(rows_b)}")
            bad += 1
            continue
        worst = 0.0
        for ra, rb in zip(rows_a, rows_b, strict=True):
            for key in ra:
                va, vb = ra[key], rb.get(key)
                if va != vb:
                    bad += 1
                    if isinstance(va, float) and isinstance(vb, float):
                        worst = max(worst, abs(va - vb) / max(abs(va), abs(vb), 1e-300))
                    elif bad < 10:
                        print(f"{kind}: {ra.get('group')} {ra.get('period')} {key}: {va!r} != {vb!r}")
        print(f"{kind}: {len(rows_a)} rows, largest relative difference {worst:.3g}")
    print("equal" if bad == 0 else f"{bad} values differ")
    return 0 if bad == 0 else 1


def main() -> None:
    """Run once in this process and print the JSON line (or compare two dumps)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default=None, help="models by role, as forecast dashboard --models")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--dump", default=None, help="write the forecasts' records to this JSON file")
    parser.add_argument("--compare", nargs=2, default=None, help="compare two dumps")
    parser.add_argument("--profile", action="store_true", help="profile each kind's last forecast")
    args = parser.parse_args()
    if args.compare:
        sys.exit(compare(*args.compare))
    result = run(args.models, args.repeat, args.dump, args.profile)
    result["median_ms"] = {k: sorted(v)[len(v) // 2] for k, v in result["ms"].items() if not math.isnan(v[0])}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
