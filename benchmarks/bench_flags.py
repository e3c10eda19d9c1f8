"""Time of the flags step (``forecast flags``, the dashboard's flags) on a warehouse, in one process.

Usage:
    uv run --frozen python benchmarks/bench_flags.py [--warehouse PATH] [--parts] [--json OUT]
        [--output FLAGS.parquet]

Runs :func:`forecast.flags.job.flags_job` for deals and leads at the default as-of, as the
dashboard's Overview asks it, and prints the time of each phase the job reports (an entity's
snapshot features, then its flags: the history read, p_churn and the rules), the total and the
process's peak memory. With ``--parts`` it then times the history read
(:func:`~forecast.flags.history.load_history`), the silence fit
(:func:`~forecast.flags.silence.fit_silence`) and the whole snapshot
(:func:`~forecast.flags.compute.flag_snapshot`) of each entity on their own, in the same process.
Run it in a fresh process per measurement (the first read of the warehouse file pays the disk).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path
from typing import Any

import forecast
from forecast.config import load_settings
from forecast.features.build import Entity, build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import warehouse_source
from forecast.flags.compute import flag_snapshot
from forecast.flags.history import load_history
from forecast.flags.job import flags_job, load_flags_config
from forecast.flags.silence import fit_silence

ENTITIES: list[Entity] = ["opportunity", "lead"]


def _peak_gb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 2)


def job_phases(warehouse: Path | None, output: Path | None = None) -> dict[str, Any]:
    """The flags job's phases (seconds, from its progress messages), total and flag counts.

    ``output``: also write every flag there (``.parquet`` or ``.csv``), to compare two versions.
    """
    settings = load_settings(warehouse=warehouse)
    start = time.perf_counter()
    marks: list[tuple[str, float]] = [("churn models (registry)", start)]
    summary = flags_job(
        settings,
        as_of=None,
        entities=ENTITIES,
        config=load_flags_config(settings=settings),
        output=output,
        progress=lambda message: marks.append((message, time.perf_counter())),
    )
    end = time.perf_counter()
    phases = {
        name: round(at_next - at, 2)
        for (name, at), (_, at_next) in zip(marks, [*marks[1:], ("end", end)], strict=True)
    }
    return {
        "warehouse": str(settings.warehouse),
        "as_of": summary.as_of.isoformat(),
        "phases (s)": phases,
        "total (s)": round(end - start, 2),
        "flags": summary.rows,
        "by entity": {k: v.to_dict() for k, v in summary.entities.items()},
        "peak after the job (GB)": _peak_gb(),
    }


def parts(warehouse: Path | None) -> dict[str, float]:
    """Seconds of the history read, the silence fit and the whole snapshot of each entity."""
    settings = load_settings(warehouse=warehouse)
    config = load_flags_config(settings=settings)
    out: dict[str, float] = {}
    with warehouse_source(settings.warehouse) as src:
        when = src.default_as_of()
        for entity in ENTITIES:
            frame = build_feature_table(src, entity, [when], LabelConfig.both(config.horizon_days)).frame
            start = time.perf_counter()
            history = load_history(src, entity, config)
            out[f"{entity}: load_history"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            fit_silence(history.gaps, when, config.going_cold, with_stage=entity == "opportunity")
            out[f"{entity}: fit_silence"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
            flag_snapshot(history, frame, when, config)
            out[f"{entity}: flag_snapshot (fit included)"] = round(time.perf_counter() - start, 2)
    return out


def main() -> None:
    """Run the measurements and print them (and write them as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=None, help="default: FORECAST_WAREHOUSE")
    parser.add_argument("--parts", action="store_true", help="also time the history, fit and snapshot")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--output", type=Path, default=None, help="write every flag (.parquet or .csv)")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": platform.platform(),
        "code": str(Path(forecast.__file__).parent),
        **job_phases(args.warehouse, args.output),
    }
    if args.parts:
        result["parts (s)"] = parts(args.warehouse)
        result["peak after the parts (GB)"] = _peak_gb()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
