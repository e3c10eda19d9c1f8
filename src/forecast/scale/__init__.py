"""Scoring beyond one machine: the batch scorer on Apache Spark (``score --engine spark``).

:mod:`forecast.scale.session` starts (or joins) the Spark session, :mod:`forecast.scale.rows` is
what runs on the executors (the project's own row scoring over pandas batches),
:mod:`forecast.scale.job` is the driver's job (numbering and de-duplicating the rows, writing the
outputs, the summary) and :mod:`forecast.scale.spark_score` the ``spark-submit`` entry point.
pyspark is an optional dependency (the ``spark`` extra): nothing here imports it at import time.
"""
