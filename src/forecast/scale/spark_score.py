"""``spark-submit`` entry point: ``forecast score leads|deals --engine spark`` under a cluster's Spark.

Run as a module or as this file; its arguments are those of ``forecast score leads`` or
``forecast score deals`` (``--engine spark`` is implied, the master and resources are
``spark-submit``'s), e.g. ``spark-submit --master yarn src/forecast/scale/spark_score.py leads
--input hdfs:///lake/lead_features --output hdfs:///lake/lead_scores.parquet``.

The driver reaches the MLflow registry (``FORECAST_MLFLOW_TRACKING_URI``) to load the champions;
the executors need the ``forecast`` package and its dependencies, not MLflow access (docs/scale.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``forecast score <leads|deals> --engine spark <argv…>`` (exits with the CLI's code)."""
    from forecast.cli import app

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("leads", "deals"):
        print("usage: spark_score.py leads|deals --input PATH --output PATH [options]", file=sys.stderr)
        raise SystemExit(2)
    app(["score", args[0], "--engine", "spark", *args[1:]], prog_name="forecast")


if __name__ == "__main__":
    main()
