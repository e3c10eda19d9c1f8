"""Ingest throughput and peak memory: simulate a CRM once, then time `forecast ingest` on it.

Usage: uv run python benchmarks/bench_ingest.py [--leads N] [--format parquet|csv] [--workdir DIR]

The simulation is written first (not timed here; see bench_simulate.py). The ingest runs in a
child process so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CHILD = """
import resource, sys
from forecast.cli import app
try:
    app(["--warehouse", sys.argv[1], "ingest", sys.argv[2], "--json"], standalone_mode=False)
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    crm = work / f"crm_{args.leads}_{args.format}"
    forecast = [sys.executable, "-m", "forecast.cli"]
    if not (crm / "simulation_params.json").exists():
        subprocess.run(
            [
                *forecast,
                "simulate",
                "--out",
                str(crm),
                "--leads",
                str(args.leads),
                "--format",
                args.format,
                "--json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    warehouse = work / f"wh_{args.leads}_{args.format}.duckdb"
    warehouse.unlink(missing_ok=True)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(warehouse), str(crm)],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    *_, last = out.stdout.strip().splitlines()
    peak_mib = float(last) / 1024
    report = json.loads("\n".join(out.stdout.strip().splitlines()[:-1]))
    rows = sum(t["read"] for t in report["tables"].values())
    print(f"machine: {platform.machine()}, {platform.python_version()}, cores: {_cores()}")
    print(f"ingest {args.format}, {args.leads:,} leads: {rows:,} rows in {seconds:.1f} s ")
    print(f"  throughput {rows / seconds:,.0f} rows/s, peak RSS {peak_mib:,.0f} MiB")
    for name, t in report["tables"].items():
        print(f"  {name:18s} read {t['read']:>10,}  valid {t['valid']:>10,}  rejected {t['rejected']:>6,}")


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
