"""``spark-submit`` entry point: score leads or deals on the cluster's Spark, as ``--engine spark``.

``python -m forecast.scale.spark_score leads|deals --input PATH --output PATH`` (or this file under
``spark-submit``, e.g. ``spark-submit --master yarn src/forecast/scale/spark_score.py leads
--input hdfs:///lake/lead_features --output hdfs:///lake/lead_scores.parquet``) runs
:func:`forecast.scale.job.spark_score_job` in the session ``spark-submit`` made (``--master``
starts one instead). Options: ``--model`` and, for deals, ``--close-model`` (``NAME``,
``NAME@alias`` or ``NAME:version``; default: the champions), ``--no-reasons``. The summary is
printed as JSON (the CLI's ``--json`` document); bad input exits 2 with the message.

The driver reaches the MLflow registry (``FORECAST_MLFLOW_TRACKING_URI``) to load the champions;
the executors need the ``forecast`` package and its dependencies, not MLflow access (docs/scale.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

ROLES = {"leads": ("lead_scoring", None), "deals": ("deal_win", "time_to_close")}


def main(argv: Sequence[str] | None = None) -> None:
    """Score ``leads`` or ``deals`` on Spark and print the summary (exit 2 on bad input)."""
    parser = argparse.ArgumentParser(prog="spark_score", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("what", choices=sorted(ROLES))
    parser.add_argument("--input", required=True, help="Parquet file or folder of snapshot features")
    parser.add_argument("--output", required=True, help="Parquet folder of the scores (ends in .parquet)")
    parser.add_argument("--model", help="NAME, NAME@alias or NAME:version (default: the champion)")
    parser.add_argument("--close-model", help="deals: the time-to-close model (default: its champion)")
    parser.add_argument("--master", help="start Spark on this master (default: spark-submit's session)")
    parser.add_argument("--no-reasons", action="store_true", help="leave the reasons out")
    args = parser.parse_args(argv)

    from forecast.binding import ModelRef, parse_ref
    from forecast.config import load_settings
    from forecast.errors import InputError, cli_message
    from forecast.scale.job import spark_score_job

    role, close_role = ROLES[args.what]
    try:
        model = parse_ref(args.model, role, "--model") if args.model else ModelRef(role, role)
        close = None
        if close_role is not None:
            close = (
                parse_ref(args.close_model, close_role, "--close-model")
                if args.close_model
                else ModelRef(close_role, close_role, option="--close-model")
            )
        summary = spark_score_job(
            load_settings(),
            model=model,
            input_path=args.input,
            output=args.output,
            master=args.master,
            close_model=close,
            reasons=not args.no_reasons,
        )
    except (InputError, LookupError) as exc:
        print(json.dumps({"ok": False, "error": cli_message(exc)}))
        raise SystemExit(2) from exc
    print(json.dumps(summary.to_dict()))


if __name__ == "__main__":
    main(sys.argv[1:])
