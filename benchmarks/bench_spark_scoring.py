"""Spark local[2] against the in-process scorer: N leads (default 100k) from Parquet, with reasons.

Uses the ``lead_scoring`` champion of the registry the ``FORECAST_*`` settings point at, and the
feature rows of the warehouse's open leads (``forecast features --entity lead``), resampled to N
rows with unique ids and written, ``--chunk-rows`` rows at a time (so that 10M rows fit), as one
Parquet file (the in-process scorer's input) and as a folder of ``--parts`` part files (Spark's).
Each engine runs in its own child process through the CLI (``forecast score leads``): ``local``
reads the file in batches of ``--batch-rows`` (the default path for Parquet), ``whole`` reads it
whole (``--batch-rows 0``, the path before batches; at 10M rows it does not fit 24 GiB), ``spark``
runs ``--engine spark``. A sampler reads /proc every 0.2 s for the peak RSS of the whole process
tree and of its largest process (the JVM, a Python worker). Also prints the size of the broadcast
models and the time to unpickle them (what each task would pay without a broadcast).

Run: ``uv run python benchmarks/bench_spark_scoring.py --rows 100000 [--rows 1000000]
[--engine local --engine whole]``; results go to ``benchmarks/RESULTS.md`` by hand, with the load
average printed.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def _tree_rss(root: int) -> tuple[int, int]:
    """Total and largest RSS (bytes) of ``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parent, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
        rss[int(entry.name)] = pages * os.sysconf("SC_PAGE_SIZE")
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += children.get(pid, [])
    sizes = [rss.get(p, 0) for p in seen]
    return sum(sizes), max(sizes, default=0)


def _run(args: list[str]) -> tuple[float, float, float]:
    """Seconds, peak tree RSS and peak single-process RSS (MiB) of ``forecast <args>``."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "forecast.cli", *args], stdout=subprocess.DEVNULL)
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            total, largest = _tree_rss(proc.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    code = proc.wait()
    seconds = time.perf_counter() - start
    thread.join()
    if code != 0:
        raise SystemExit(f"forecast {' '.join(args)} exited {code}")
    return seconds, peak[0] / 2**20, peak[1] / 2**20


def _write_inputs(
    base: pd.DataFrame, n: int, single: Path | None, folder: Path, parts: int, chunk: int
) -> None:
    """``n`` rows resampled from ``base`` (seeded, unique ids) into ``single`` and ``parts`` files of
    ``folder``, ``chunk`` rows at a time: memory stays that of one chunk whatever ``n``."""
    rng = np.random.default_rng(0)
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    writer = None
    schema = None
    for i in range(parts):
        part_writer = None
        for start in range(int(bounds[i]), int(bounds[i + 1]), chunk):
            stop = min(start + chunk, int(bounds[i + 1]))
            rows = base.iloc[rng.integers(0, len(base), stop - start)].reset_index(drop=True)
            rows["lead_id"] = np.char.add("L", np.arange(start, stop).astype(str))
            table = pa.Table.from_pandas(rows, preserve_index=False)
            schema = schema or table.schema
            table = table.cast(schema)
            if single is not None:
                writer = writer or pq.ParquetWriter(single, schema)
                writer.write_table(table)
            part_writer = part_writer or pq.ParquetWriter(folder / f"part-{i:04d}.parquet", schema)
            part_writer.write_table(table)
        if part_writer is not None:
            part_writer.close()
    if writer is not None:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable; default 100000)")
    parser.add_argument("--parts", type=int, default=8, help="part files of Spark's input")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--engine",
        action="append",
        choices=["local", "whole", "spark"],
        help="engines to run (repeatable; default local and spark): local reads Parquet in batches, "
        "whole reads it whole (at 10M rows it does not fit this machine), spark on Spark",
    )
    parser.add_argument("--batch-rows", type=int, default=100_000, help="rows per batch of local")
    parser.add_argument("--chunk-rows", type=int, default=500_000, help="rows per write of the inputs")
    parser.add_argument("--features", type=Path, help="a lead snapshot Parquet (default: built now)")
    args = parser.parse_args()
    from forecast.config import load_settings
    from forecast.registry import load_model
    from forecast.scale.rows import ScoringModels

    model = load_model("lead_scoring", load_settings())
    blob = pickle.dumps(ScoringModels(model))
    start = time.perf_counter()
    pickle.loads(blob)
    print(
        f"lead_scoring v{model.version}: broadcast {len(blob) / 2**20:.1f} MiB, unpickled in "
        f"{(time.perf_counter() - start) * 1000:.0f} ms; {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        root = Path(tmp)
        source = args.features
        if source is None:
            from forecast.features.source import warehouse_source

            with warehouse_source(str(load_settings().warehouse)) as src:
                end = src.data_end().normalize()
            source = root / "snap.parquet"
            subprocess.run(
                [
                    *[sys.executable, "-m", "forecast.cli", "features", "--entity", "lead"],
                    *["--as-of", end.date().isoformat(), "--out", str(source)],
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        base = pd.read_parquet(source)
        print("| engine | rows | seconds | rows/s | peak RSS, all processes (MiB) | largest process (MiB) |")
        print("|---|---|---|---|---|---|")
        for n in args.rows or [100_000]:
            engines = args.engine or ["local", "spark"]
            single = root / f"in_{n}.parquet"
            folder = root / f"in_{n}"
            folder.mkdir()
            in_process = {"local", "whole"} & set(engines)
            _write_inputs(base, n, single if in_process else None, folder, args.parts, args.chunk_rows)
            runs = {
                "local": (f"in-process, batches of {args.batch_rows:,} (`--engine local`)", [
                    "--input", str(single), "--output", str(root / "l.parquet"),
                    "--batch-rows", str(args.batch_rows),
                ]),
                "whole": ("in-process, whole file (`--batch-rows 0`)", [
                    "--input", str(single), "--output", str(root / "w.parquet"), "--batch-rows", "0",
                ]),
                "spark": (f"Spark {args.master} (`--engine spark`)", [
                    "--engine", "spark", "--master", args.master,
                    "--input", str(folder), "--output", str(root / f"s_{n}.parquet"),
                ]),
            }  # fmt: skip
            for label, options in (runs[e] for e in engines):
                seconds, total, largest = _run(["score", "leads", *options])
                cells = [label, f"{n:,}", f"{seconds:,.1f}", f"{n / seconds:,.0f}", f"{total:,.0f}"]
                print(f"| {' | '.join(cells)} | {largest:,.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end (a shared machine)")


if __name__ == "__main__":
    main()
