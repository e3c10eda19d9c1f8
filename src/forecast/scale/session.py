"""The Spark session of a scoring job: joined when ``spark-submit`` made one, else started.

A job under ``spark-submit`` (YARN, Kubernetes, Databricks) gets its master and resources from the
submit command, and :func:`spark_session` joins that session; ``--master`` (e.g. ``local[2]``)
starts one here, which needs a Java runtime (17 or later) on this machine.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from forecast.errors import InputError

ARROW_BATCH_ROWS = 20_000
"""Rows per Arrow batch handed to the scoring function (the local scorer's chunk size)."""

JOB_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.maxRecordsPerBatch": str(ARROW_BATCH_ROWS),
    # pandas and pyarrow write nanosecond timestamps, which Spark reads only as numbers (the job
    # turns ``as_of`` back into a timestamp)
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}
"""Session options the job sets, whoever started the session."""


def java_missing() -> str | None:
    """Why a local Spark cannot start here (``None``: a Java runtime is on PATH or in ``JAVA_HOME``)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):  # noqa: PTH110, PTH118
        return None
    if shutil.which("java"):
        return None
    return (
        "Spark needs a Java runtime (17 or later) and none is on PATH or in JAVA_HOME: install one "
        "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless) or score with --engine local"
    )


def spark_session(master: str | None, app_name: str = "forecast-score") -> Any:
    """The active Spark session, or a new one on ``master`` (``None``: whatever ``spark-submit`` set).

    Raises:
        InputError: pyspark is not installed, or no Java runtime to start a local Spark with.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise InputError(
            "--engine spark needs pyspark: install the project with its spark extra "
            "(pip install 'forecast[spark]') or score with --engine local"
        ) from exc
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    under_submit = "PYSPARK_GATEWAY_PORT" in os.environ  # spark-submit started the JVM already
    if active is None and not under_submit and (why := java_missing()) is not None:
        raise InputError(why)
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master).config("spark.ui.enabled", "false")
    if (master or "local").startswith("local") and not os.environ.get("PYSPARK_PYTHON"):
        # local workers run this interpreter (the one that has forecast), not python3 on PATH; the
        # context reads the variable when it starts
        os.environ["PYSPARK_PYTHON"] = sys.executable
    for key, value in JOB_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in JOB_CONF.items():  # what the job computes does not depend on who made the session
        session.conf.set(key, value)
    return session
