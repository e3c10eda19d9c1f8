"""The driver's side of a Spark scoring job: read, number, de-duplicate, score, write, summarise.

The input is what the local scorer reads with ``--input`` (a snapshot feature table, as written by
``forecast features``) as Parquet: one file or a folder of part files (Hive-style partition folders
included), on any file system Spark reaches (``file:``, ``hdfs:``, ``s3a:``, ``abfss:``, ``dbfs:``).
Row ``n`` of the input is row ``n`` of its files taken in the order of their paths, each file in its
own order, so ``source_row`` is the local scorer's for one file, and the concatenation's for a
folder. The input is read by each pass (scores, then rejects): reading is cheap next to scoring.

The outputs are Parquet folders: the scores at ``--output`` and the rejects beside it
(``<stem>.rejects.parquet``, the local rejects' columns, values as text). Each is written to a
temporary folder and renamed into place, so a failed job leaves the previous output untouched.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.batch import ScoreSummary
from forecast.binding import ModelRef, resolve
from forecast.config import Settings
from forecast.errors import ScoringError
from forecast.features.build import ID_COLUMN
from forecast.registry import LoadedModel
from forecast.scale import rows as executor
from forecast.scale.rows import DUPLICATE, SOURCE_ROW, ScoringModels
from forecast.scale.session import spark_session


def rejects_location(output: str) -> str:
    """Where the rejects of the scores at ``output`` go: ``<stem>.rejects.parquet`` beside it."""
    head, _, name = output.rstrip("/").rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}/{stem}.rejects.parquet" if head else f"{stem}.rejects.parquet"


def spark_score_job(
    settings: Settings,
    *,
    model: ModelRef,
    input_path: str,
    output: str,
    master: str | None = None,
    close_model: ModelRef | None = None,
    reasons: bool = True,
    notes: Sequence[str] = (),
) -> ScoreSummary:
    """Score every row of a Parquet snapshot table on Spark, as :func:`forecast.batch.score_job` would.

    The models are resolved here (the driver reaches MLflow; the executors need not) and broadcast
    once; each executor scores its batches with :func:`forecast.scale.rows.score_rows`.

    Args:
        settings: Where the models are registered.
        model: The scoring model (``lead_scoring`` or ``deal_win``).
        input_path: The Parquet file or folder (a path or a URI).
        output: The scores' Parquet folder (a path or a URI ending in ``.parquet``).
        master: The Spark master to start a session on (``None``: join ``spark-submit``'s).
        close_model: For deals, the time-to-close model that adds the close dates.
        reasons: Whether to add the reasons.
        notes: Notes to pass on to the summary.

    Returns:
        The summary the local scorer returns, counted from the written outputs.

    Raises:
        ScoringError: A flat-export model, a path not ending in ``.parquet``, an input lacking a
            column a model needs.
    """
    if not output.rstrip("/").lower().endswith((".parquet", ".pq")):
        raise ScoringError(
            f"{output}: with --engine spark the output is a Parquet folder: end it in .parquet"
        )
    loaded, warnings = resolve(model, settings, None)
    if loaded.meta.source == "flat_export":
        raise ScoringError(
            f"model {loaded.name} v{loaded.version} was trained on a flat export: score its files "
            "with --engine local"
        )
    closing = None
    if close_model is not None:
        closing, close_warnings = resolve(close_model, settings, None)
        warnings += close_warnings
    spark = spark_session(master)
    id_col = ID_COLUMN["lead" if str(loaded.meta.entity) == "lead" else "opportunity"]
    raw = _read(spark, input_path)
    _check_columns(raw.columns, loaded, closing, id_col, input_path)
    numbered, rows_in = _numbered(spark, raw, id_col, list(loaded.meta.features))
    models = ScoringModels(loaded, closing)
    handle = spark.sparkContext.broadcast(models)
    scored_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0))
    schema, columns = _score_schema(numbered, models, reasons, scored_at)
    scores = numbered.mapInPandas(
        functools.partial(
            executor.score_batches, handle=handle, columns=columns, reasons=reasons, scored_at=scored_at
        ),
        schema,
    )
    rejects = numbered.mapInPandas(functools.partial(executor.reject_batches, handle=handle), _REJECTS)
    rejects_at = rejects_location(output)
    _write_atomically(spark, scores, output)
    _write_atomically(spark, rejects, rejects_at)
    handle.destroy()
    all_notes = list(notes)
    if closing is not None:
        all_notes.insert(0, f"close dates from {closing.name} v{closing.version}")
    return _summary(spark, loaded, rows_in, output, rejects_at, all_notes, warnings)


def _read(spark: Any, path: str) -> Any:
    """The input as a DataFrame, with each row's file and position in it."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F  # noqa: N812 (the usual name)
    from pyspark.sql import types as T  # noqa: N812

    try:
        frame = spark.read.parquet(path)
    except AnalysisException as exc:
        raise ScoringError(f"{path}: cannot read it as Parquet ({str(exc).splitlines()[0]})") from exc
    if "as_of" in frame.columns and isinstance(frame.schema["as_of"].dataType, T.LongType):
        # a nanosecond timestamp (pandas' and pyarrow's), read as a number (session.JOB_CONF)
        as_of = F.timestamp_micros(F.floor(F.col("as_of") / 1000)).cast("timestamp_ntz")
        frame = frame.withColumn("as_of", as_of)
    return frame.select(
        "*",
        F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.row_index").alias("_row_index"),
    )


def _check_columns(
    columns: Sequence[str], model: LoadedModel, closing: LoadedModel | None, id_col: str, path: str
) -> None:
    """The local scorer's checks: the model's columns are in the input, the close model's in the model's."""
    entity = str(model.meta.entity)
    missing = [c for c in [id_col, *model.meta.features] if c not in columns]
    if missing:
        raise ScoringError(
            f"{path}: lacks column(s) the model needs: {missing[:8]}{' …' if len(missing) > 8 else ''} "
            f"(write the file with `forecast features --entity {entity}` or score --from-warehouse)"
        )
    if closing is not None:
        needed = [c for c in closing.meta.features if c not in model.meta.features]
        if needed or "as_of" not in columns:
            raise ScoringError(
                f"{closing.name} needs column(s) {(needed or ['as_of'])[:8]} that the input lacks"
            )


def _numbered(spark: Any, raw: Any, id_col: str, features: list[str]) -> tuple[Any, int]:
    """The columns scoring reads, with ``_source_row`` and ``_duplicate``; the number of input rows.

    ``_source_row`` is 1-based over the files in path order; ``_duplicate`` marks a row whose id and
    ``as_of`` came at an earlier row (rows without an id never are). The repeated keys are found by
    an aggregate and joined back (broadcast when few), so the rows keep their input partitions.
    """
    from pyspark.sql import functions as F  # noqa: N812 (the usual name)
    from pyspark.sql import types as T  # noqa: N812

    counts = sorted((r["_file"], int(r["count"])) for r in raw.groupBy("_file").count().collect())
    starts = np.concatenate([[0], np.cumsum([n for _, n in counts])[:-1]]).astype(np.int64)
    offsets = spark.createDataFrame(
        [(name, int(start)) for (name, _), start in zip(counts, starts, strict=True)],
        "_file string, _offset long",
    )
    numbered = raw.join(F.broadcast(offsets), "_file").withColumn(
        SOURCE_ROW, F.col("_offset") + F.col("_row_index") + F.lit(1)
    )
    has_as_of = "as_of" in raw.columns
    keys = [id_col, "as_of"] if has_as_of else [id_col]
    present = F.col(id_col).isNotNull()
    if isinstance(raw.schema[id_col].dataType, T.FloatType | T.DoubleType):
        present = present & ~F.isnan(id_col)
    repeated = (
        numbered.where(present)
        .groupBy(*keys)
        .agg(F.min(SOURCE_ROW).alias("_first"), F.count(F.lit(1)).alias("_n"))
        .where(F.col("_n") > 1)
        .select(*[F.col(k).alias(f"_key_{k}") for k in keys], "_first")
    )
    if repeated.count() <= BROADCAST_KEYS:
        repeated = F.broadcast(repeated)
    on = [numbered[k].eqNullSafe(repeated[f"_key_{k}"]) for k in keys]
    wanted = [id_col, *(["as_of"] if has_as_of else []), *[c for c in features if c not in keys]]
    flagged = numbered.join(repeated, on, "left").withColumn(
        DUPLICATE, F.coalesce(F.col(SOURCE_ROW) > F.col("_first"), F.lit(False)) & present
    )
    return flagged.select(*wanted, SOURCE_ROW, DUPLICATE), int(sum(n for _, n in counts))


BROADCAST_KEYS = 1_000_000
"""Most repeated keys sent to every executor (beyond, the join shuffles)."""


_REJECTS = "source_row long, id string, column string, rule string, value string, message string"


def _score_schema(
    numbered: Any, models: ScoringModels, reasons: bool, scored_at: pd.Timestamp
) -> tuple[Any, list[str]]:
    """The output schema and columns: the driver scores a few rows of the input as an executor would.

    A probe whose rows all fail is scored again with its unparsable numbers blanked; a column empty
    in the probe (a reason no row has) is text.
    """
    import pyarrow as pa
    from pyspark.sql import functions as F  # noqa: N812 (the usual name)
    from pyspark.sql import types as T  # noqa: N812
    from pyspark.sql.pandas.types import from_arrow_type

    id_col = numbered.columns[0]
    probe = numbered.where(F.col(id_col).isNotNull()).limit(64).toPandas()
    probe[DUPLICATE] = False
    scores = executor.score_rows(probe, models, reasons=reasons, scored_at=scored_at)
    if scores.empty and not probe.empty:
        blank = probe.copy()
        categorical = set(models.model.meta.categorical)
        for col in models.model.meta.features:
            if col not in categorical and blank[col].dtype == object:
                blank[col] = np.nan
        scores = executor.score_rows(blank, models, reasons=reasons, scored_at=scored_at)
    fields = []
    for field in pa.Schema.from_pandas(scores, preserve_index=False):
        kind = T.StringType() if pa.types.is_null(field.type) else from_arrow_type(field.type, True)
        fields.append(T.StructField(field.name, kind, True))
    return T.StructType(fields), list(scores.columns)


def _write_atomically(spark: Any, frame: Any, target: str) -> None:
    """Write ``frame`` as Parquet to a temporary folder beside ``target``, then rename it into place.

    Uses the Hadoop file system of ``target`` (a rename is atomic on HDFS and local disks; object
    stores copy). Where the JVM is not reachable (Spark Connect) it writes in place.
    """
    jvm = getattr(spark, "_jvm", None)
    if jvm is None:
        frame.write.mode("overwrite").parquet(target)
        return
    hadoop = jvm.org.apache.hadoop.fs
    final = hadoop.Path(target.rstrip("/"))
    fs = final.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    temporary = hadoop.Path(final.getParent(), f".{final.getName()}.{uuid.uuid4().hex}.tmp")
    old = hadoop.Path(final.getParent(), f".{final.getName()}.{uuid.uuid4().hex}.old")
    try:
        frame.write.mode("overwrite").parquet(temporary.toString())
        had = fs.exists(final)
        if had and not fs.rename(final, old):
            raise OSError(f"{target}: could not move the previous output aside")
        if not fs.rename(temporary, final):
            raise OSError(f"{target}: could not rename the written output into place")
        if had:
            fs.delete(old, True)
    finally:
        if fs.exists(temporary):
            fs.delete(temporary, True)


def _summary(
    spark: Any,
    model: LoadedModel,
    rows_in: int,
    output: str,
    rejects_at: str,
    notes: list[str],
    warnings: list[str],
) -> ScoreSummary:
    """The local scorer's summary, counted from the written outputs (and the row accounting checked)."""
    from pyspark.sql import functions as F  # noqa: N812 (the usual name)

    score_name = model.meta.score_name
    scores = spark.read.parquet(output)
    totals = scores.agg(
        F.count(F.lit(1)).alias("n"),
        F.avg(score_name).alias("mean"),
        F.sum((F.col("warnings") != "").cast("long")).alias("warned"),
    ).first()
    bands = {r["band"]: int(r["count"]) for r in scores.groupBy("band").count().collect()}
    rejected = int(spark.read.parquet(rejects_at).agg(F.countDistinct("source_row")).first()[0])
    scored = int(totals["n"])
    if scored + rejected != rows_in:
        raise AssertionError(f"row accounting broken: {scored} + {rejected} != {rows_in}")
    return ScoreSummary(
        model_name=model.name,
        model_version=model.version,
        as_of=None,
        rows_in=rows_in,
        scored=scored,
        rejected=rejected,
        output=Path(output),
        rejects=Path(rejects_at),
        written_to_warehouse=0,
        bands={b: bands.get(b, 0) for b in ("A", "B", "C", "D")},
        rows_with_warnings=int(totals["warned"] or 0),
        notes=notes,
        warnings=warnings,
        score_name=score_name,
        mean_score=None if scored == 0 else round(float(totals["mean"]), 4),
    )
