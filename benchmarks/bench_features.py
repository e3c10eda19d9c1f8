"""Feature-building speed: snapshots over millions of activities, from a DuckDB warehouse.

Usage: uv run python benchmarks/bench_features.py [--leads 520000] [--snapshots 100000] [--workdir DIR]

Simulates a CRM (not timed), ingests it (not timed), then picks as_of dates until the lead spine
holds about ``--snapshots`` rows and times ``build_feature_table`` for leads and for deals in a
child process (peak RSS of that process alone).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, resource, sys, time
import duckdb, pandas as pd
from forecast.features.build import build_feature_table
from forecast.features.source import warehouse_source
wh, entity, target = sys.argv[1], sys.argv[2], int(sys.argv[3])
with warehouse_source(wh) as src:
    end = src.data_end()
    n_act = src.con.execute("SELECT count(*) FROM activities").fetchone()[0]
    table = "leads" if entity == "lead" else "opportunities"
    dates, rows, d = [], 0, end.normalize()
    while rows < target and d > end - pd.Timedelta(days=720):
        d -= pd.Timedelta(days=7)
        alive = src.con.execute(
            f"SELECT count(*) FROM {table} WHERE created_at < ? AND "
            + (
                "coalesce(converted_at, status_changed_at, ?) >= ?"
                if entity == "lead"
                else "coalesce(closed_at, ?) >= ?"
            ),
            [d.to_pydatetime(), d.to_pydatetime(), d.to_pydatetime()],
        ).fetchone()[0]
        dates.append(d)
        rows += alive
    t0 = time.perf_counter()
    ft = build_feature_table(src, entity, dates)
    seconds = time.perf_counter() - t0
print(json.dumps({"entity": entity, "rows": len(ft.frame), "dates": len(dates), "features": len(ft.features),
                  "activities": int(n_act), "seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=520_000)
    parser.add_argument("--snapshots", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_features_"))
    crm, wh = work / f"crm_{args.leads}", work / f"wh_{args.leads}.duckdb"
    cli = [sys.executable, "-m", "forecast.cli"]
    if not (crm / "simulation_params.json").exists():
        subprocess.run(
            [*cli, "simulate", "--out", str(crm), "--leads", str(args.leads), "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if not wh.exists():
        subprocess.run(
            [*cli, "--warehouse", str(wh), "ingest", str(crm), "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores")
    for entity in ("lead", "opportunity"):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(wh), entity, str(args.snapshots)],
            check=True,
            capture_output=True,
            text=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{entity:12s} {r['rows']:>8,} snapshots ({r['dates']} as_of dates, "
            f"{r['features']} features) over {r['activities']:,} activities: {r['seconds']:.1f} s, "
            f"{r['rows'] / r['seconds']:,.0f} snapshots/s, "
            f"peak RSS {r['peak_rss_mib']:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
