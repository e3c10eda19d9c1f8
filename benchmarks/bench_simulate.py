"""Benchmark the CRM simulator: simulate + write, rows/s per table and peak RSS.

Usage:
    uv run python benchmarks/bench_simulate.py                    # default size (20k leads)
    uv run python benchmarks/bench_simulate.py --leads 1000000 --format parquet
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from forecast.data.simulate import SimulationConfig, simulate_crm


def _peak_rss_gib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024**3 if sys.platform == "darwin" else 1024**2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--out", type=Path, default=None, help="output dir (default: a temp dir)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    sim = simulate_crm(SimulationConfig(n_leads=args.leads, seed=args.seed))
    t_sim = time.perf_counter() - t0
    rss_sim = _peak_rss_gib()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        t1 = time.perf_counter()
        paths = sim.write(out, args.format)
        t_write = time.perf_counter() - t1
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
    total = t_sim + t_write
    print(f"leads={args.leads:,} seed={args.seed} format={args.format}")
    print(f"simulate {t_sim:.1f} s, write {t_write:.1f} s, total {total:.1f} s, files {size_mb:.1f} MB")
    print(f"peak RSS after simulate {rss_sim:.2f} GiB, after write {_peak_rss_gib():.2f} GiB")
    print(f"{'table':<22}{'rows':>14}{'rows/s (simulate+write)':>26}")
    all_rows = 0
    for name, frame in [*sim.tables.items(), *sim.truth.items()]:
        all_rows += len(frame)
        print(f"{name:<22}{len(frame):>14,}{len(frame) / total:>26,.0f}")
    print(f"{'all tables':<22}{all_rows:>14,}{all_rows / total:>26,.0f}")


if __name__ == "__main__":
    main()
