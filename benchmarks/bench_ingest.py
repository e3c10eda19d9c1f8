"""Ingest throughput and peak memory: simulate a CRM once, then time `forecast ingest` on it.

Usage: uv run python benchmarks/bench_ingest.py [--leads N] [--format parquet|csv] [--workdir DIR]
       [--copies K] [--features]

The simulation is written first (not timed here; see bench_simulate.py). The ingest runs in a
child process so that its peak RSS is its own. ``--copies K`` ingests K copies of the simulated
CRM with disjoint ids (every key and reference suffixed ``-cI``, made by DuckDB in bounded memory):
the simulator holds a whole CRM in memory and cannot write 5M leads on this machine, the ingest
must. ``--features`` then builds the lead feature table of the ingested warehouse at its last
as-of date in another child process (time and peak RSS).
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

_FEATURES = """
import json, resource, sys, time
from forecast.features.build import build_feature_table
from forecast.features.source import warehouse_source
with warehouse_source(sys.argv[1]) as src:
    end = src.data_end().normalize()
    t0 = time.perf_counter()
    ft = build_feature_table(src, "lead", [end])
    seconds = time.perf_counter() - t0
print(json.dumps({"rows": len(ft.frame), "features": len(ft.features), "seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

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
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--features", action="store_true")
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
    if args.copies > 1:
        crm = _copies(crm, args.copies, args.format)
    warehouse = work / f"wh_{args.leads}x{args.copies}_{args.format}.duckdb"
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
    leads = args.leads * args.copies
    print(f"ingest {args.format}, {leads:,} leads: {rows:,} rows in {seconds:.1f} s ")
    print(f"  throughput {rows / seconds:,.0f} rows/s, peak RSS {peak_mib:,.0f} MiB")
    for name, t in report["tables"].items():
        print(f"  {name:18s} read {t['read']:>10,}  valid {t['valid']:>10,}  rejected {t['rejected']:>6,}")
    if args.features:
        out = subprocess.run(
            [sys.executable, "-c", _FEATURES, str(warehouse)], check=True, capture_output=True, text=True
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"lead features at the last as-of date: {r['rows']:,} snapshots x {r['features']} features "
            f"in {r['seconds']:.1f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB"
        )


def _copies(crm: Path, copies: int, file_format: str) -> Path:
    """Write ``copies`` copies of the canonical CRM at ``crm`` with disjoint ids; return the folder."""
    import duckdb

    from forecast.data.schema import TABLES

    out = crm.with_name(f"{crm.name}_x{copies}")
    if out.exists():
        return out
    out.mkdir()
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    for table, spec in TABLES.items():
        source = crm / f"{table}.{file_format}"
        if not source.exists():
            continue
        ids = {fk.column for fk in spec.foreign_keys}
        if len(spec.key) == 1:
            ids.add(spec.key[0])
        if table == "quotas":
            ids.add("owner_id")
        reader = (
            f"read_parquet('{source}')"
            if file_format == "parquet"
            else f"read_csv('{source}', all_varchar=true)"
        )
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {reader}").fetchall()]
        replaced = ", ".join(f'("{c}" || \'-c\' || c.i) AS "{c}"' for c in ids if c in names)
        select = f"SELECT * EXCLUDE (i) REPLACE ({replaced}) FROM {reader}, range({copies}) c(i)"
        options = "FORMAT parquet" if file_format == "parquet" else "FORMAT csv, HEADER true"
        con.execute(f"COPY ({select}) TO '{out / source.name}' ({options})")
    con.close()
    return out


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
