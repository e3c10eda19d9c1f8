"""The batch scoring job: score every open lead or deal of the warehouse, or every row of a file.

Every input row ends up in the output (scores, band, reasons, model name and version) or in the
rejects file written next to it (``<output>.rejects.csv``, with the row and the reason). Files are
written atomically. Scoring is point in time: the warehouse is scored as of ``--as-of`` (default:
the midnight after the data's last day, :func:`forecast.timeutil.as_of_after`; never the wall clock).

This module is the job's edges: which model (MLflow, :mod:`forecast.binding`), the warehouse's
feature table, a file's rows and their rejects, the outputs and the write-back. The scoring itself
is :mod:`forecast.scoring`'s, shared with the HTTP service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.batch_stream import DEFAULT_BATCH_ROWS, input_schema, parquet_files, stream_score
from forecast.binding import CurrentWarehouse, ModelRef, resolve
from forecast.config import Settings
from forecast.data.readers import ReadLimits, check_columns, read_table_file
from forecast.data.warehouse import Warehouse
from forecast.errors import ScoringError, truncate
from forecast.features.build import ID_COLUMN, build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import warehouse_source
from forecast.io import write_frame
from forecast.name_rules import check_name
from forecast.registry import CHAMPION, LoadedModel
from forecast.scoring.close_dates import close_date_columns
from forecast.scoring.export_rows import score_export_rows
from forecast.scoring.frame import score_frame
from forecast.scoring.scored import Scored, empty_rejects, warnings_column
from forecast.timeutil import resolve_as_of


def score_warehouse(
    model: LoadedModel,
    settings: Settings,
    as_of: pd.Timestamp | None,
    progress: Any = None,
    reasons: bool = True,
) -> tuple[Scored, pd.Timestamp, str]:
    """Score the entities alive in the warehouse at ``as_of`` (default: midnight after the last day)."""
    entity = str(model.meta.entity)
    if not model.meta.is_warehouse or entity not in ("lead", "opportunity"):
        raise ScoringError(
            f"model {model.name} v{model.version} was trained on a flat export; "
            "score files in that shape with --input"
        )
    horizon = model.meta.horizon_days
    with warehouse_source(settings.warehouse) as src:
        when = resolve_as_of(as_of, src.default_as_of)
        table = build_feature_table(src, entity, [when], LabelConfig.both(horizon))  # type: ignore[arg-type]
    frame = table.frame
    scores = score_frame(model, frame, frame[table.id_column], progress=progress, reasons=reasons)
    scores.insert(1, "as_of", frame["as_of"].to_numpy())
    scores["warnings"] = warnings_column(model.pipeline, frame)
    scores = scores.rename(columns={"id": table.id_column})
    return Scored(scores, empty_rejects(), len(frame), frame), when, table.id_column


def score_file(
    model: LoadedModel,
    path: Path,
    *,
    encoding: str,
    delimiter: str,
    progress: Any = None,
    reasons: bool = True,
    keep_columns: str | None = None,
) -> tuple[Scored, str]:
    """Score every row of a file in the shape the model was trained on.

    A flat export's output carries ``keep_columns`` of the input (``all`` or ``a,b``) after its row
    identifier; its reasons quote the file's own column labels and values as written.
    """
    meta = model.meta
    if meta.source == "flat_export":
        raw = read_table_file(path, encoding=encoding, delimiter=delimiter)
        try:
            scored, id_col, good = score_export_rows(model, raw, progress=progress, reasons=reasons)
        except KeyError as exc:
            raise ScoringError(f"{path}: {str(exc).strip(chr(39))}") from exc
        n_ids = 2 if id_col in raw else 1
        scored.scores = _with_input_columns(scored.scores, good, keep_columns, path, n_ids)
        return scored, id_col
    # a snapshot feature table (as written by `forecast features`)
    frame = read_table_file(path, encoding=encoding, delimiter=delimiter)
    entity = str(meta.entity)
    id_col = ID_COLUMN["lead" if entity == "lead" else "opportunity"]
    features = list(meta.features)
    missing = [c for c in [id_col, *features] if c not in frame.columns]
    if missing:
        raise ScoringError(
            f"{path}: lacks column(s) the model needs: {missing[:8]}{' …' if len(missing) > 8 else ''} "
            f"(write the file with `forecast features --entity {entity}` or score --from-warehouse)"
        )
    keys = [id_col, "as_of"] if "as_of" in frame.columns else [id_col]
    duplicate = frame.duplicated(subset=keys, keep="first") & ~frame[id_col].isna()
    scored = score_snapshot_rows(model, frame, duplicate.to_numpy(), progress=progress, reasons=reasons)
    return scored, id_col


def score_snapshot_rows(
    model: LoadedModel,
    frame: pd.DataFrame,
    duplicate: np.ndarray,
    *,
    source_rows: np.ndarray | None = None,
    progress: Any = None,
    reasons: bool = True,
) -> Scored:
    """Score the rows of a snapshot feature table, rejecting those without an id, repeated or unparsable.

    Every step is row by row but ``duplicate``, which the caller computes over the whole input (the
    local engine over the file, the Spark engine over the dataset): so a part of a table scores as
    the whole table would. The reject records of a row come in the order missing id, duplicate,
    then each unparsable feature in the model's order.

    Args:
        model: The loaded model (its features must be columns of ``frame``).
        frame: The rows (the id column, ``as_of`` when present, the model's features).
        duplicate: Per row, whether the same id (and ``as_of``) appeared earlier in the input.
        source_rows: Per row, its 1-based row number in the input (default: its position here + 1).
        progress: Called with a description and the fraction done.
        reasons: Whether to add the reasons.

    Returns:
        The scores (``source_row`` first), the rejects, ``len(frame)`` and the typed features.
    """
    id_col = ID_COLUMN["lead" if str(model.meta.entity) == "lead" else "opportunity"]
    rows = np.arange(1, len(frame) + 1) if source_rows is None else np.asarray(source_rows)
    rejects, ok, typed_all = snapshot_rejects(model, frame, duplicate, source_rows=rows)
    good = frame.loc[ok]
    typed = typed_all.loc[ok]
    scores = score_frame(model, typed, good[id_col], progress=progress, reasons=reasons)
    scores.insert(0, "source_row", rows[ok.to_numpy()])
    scores["warnings"] = warnings_column(model.pipeline, typed)
    if "as_of" in good:
        scores.insert(2, "as_of", good["as_of"].to_numpy())
    if "as_of" in good:
        typed = typed.assign(as_of=pd.to_datetime(good["as_of"], errors="coerce").to_numpy())
    return Scored(scores.rename(columns={"id": id_col}), rejects, len(frame), typed)


def snapshot_rejects(
    model: LoadedModel,
    frame: pd.DataFrame,
    duplicate: np.ndarray,
    *,
    source_rows: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """The reject records of snapshot rows, which rows can be scored, and the features typed.

    Arguments as :func:`score_snapshot_rows`.

    Returns:
        The rejects (``source_row`` from ``source_rows``), the mask of the scoreable rows (indexed
        like ``frame``) and the model's features of every row, numbers parsed.
    """
    meta = model.meta
    id_col = ID_COLUMN["lead" if str(meta.entity) == "lead" else "opportunity"]
    rows = np.arange(1, len(frame) + 1) if source_rows is None else np.asarray(source_rows)
    missing_id = frame[id_col].isna()
    duplicate_mask = pd.Series(np.asarray(duplicate, dtype=bool), index=frame.index)
    typed_all, bad_numbers = _typed_features(frame, list(meta.features), set(meta.categorical))
    parts = [
        _rejects_for(frame, missing_id, id_col, "missing_id", "the id is empty"),
        _rejects_for(
            frame,
            duplicate_mask,
            id_col,
            "duplicate_id",
            "the same id (and as_of) appeared earlier in the file",
        ),
    ]
    for col, mask in bad_numbers.items():
        parts.append(_rejects_for(frame, mask, col, "not_a_number", f"{col}: not a number", id_column=id_col))
    rejects = (
        pd.concat(parts, ignore_index=True).sort_values("source_row", kind="stable").reset_index(drop=True)
    )
    rejects["source_row"] = rows[rejects["source_row"].to_numpy(dtype=np.int64) - 1]
    bad_any = np.zeros(len(frame), dtype=bool)
    for mask in bad_numbers.values():
        bad_any |= mask.to_numpy()
    ok = ~(missing_id | duplicate_mask) & ~bad_any
    return rejects, ok, typed_all


def _with_input_columns(
    scores: pd.DataFrame, rows: pd.DataFrame, keep_columns: str | None, path: Path, n_ids: int
) -> pd.DataFrame:
    """``scores`` with input columns ``keep_columns`` (``all`` or ``a,b``) after its ``n_ids`` id columns.

    Raises:
        ScoringError: ``keep_columns`` names a column the input lacks.
    """
    if not keep_columns:
        return scores
    everything = keep_columns.strip().lower() == "all"
    wanted = list(rows.columns) if everything else [c.strip() for c in keep_columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in rows.columns]
    if unknown:
        raise ScoringError(
            f"{path}: --keep-columns names column(s) {unknown} the input lacks; its columns are "
            f"{list(rows.columns)}"
        )
    ids = list(scores.columns[:n_ids])
    wanted = [c for c in wanted if c not in ids]
    carried = rows[wanted].rename(columns=lambda c: f"input_{c}" if c in scores.columns else c)
    return pd.concat([scores[ids], carried.set_axis(scores.index), scores.iloc[:, n_ids:]], axis=1)


def _typed_features(
    frame: pd.DataFrame, features: list[str], categorical: set[str]
) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """CSV values arrive as text: numbers back to floats; values that do not parse are reported."""
    out = frame[features].copy()
    bad: dict[str, pd.Series] = {}
    for col in features:
        if col not in categorical and out[col].dtype == object:
            text = out[col].astype(object)
            lowered = text.where(text.isna(), text.astype(str).str.strip().str.lower())
            text = text.where(~lowered.isin(["true", "false"]), lowered.map({"true": 1.0, "false": 0.0}))
            parsed = pd.to_numeric(text, errors="coerce")
            failed = out[col].notna() & parsed.isna()
            if failed.any():
                bad[col] = failed
            out[col] = parsed
    return out, bad


def _rejects_for(
    frame: pd.DataFrame, mask: pd.Series, column: str, rule: str, message: str, id_column: str | None = None
) -> pd.DataFrame:
    rows = np.flatnonzero(mask.to_numpy())
    return pd.DataFrame(
        {
            "source_row": rows + 1,
            "id": frame[id_column or column].iloc[rows].to_numpy(),
            "column": column,
            "rule": rule,
            "value": [v if not isinstance(v, str) else truncate(v) for v in frame[column].iloc[rows]],
            "message": message,
        }
    )


def rejects_path(output: Path) -> Path:
    """Where the rejects of ``output`` go."""
    return output.with_name(f"{output.stem}.rejects.csv")


def _write(frame: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ScoringError(f"{path}: output must end in .csv or .parquet")
    write_frame(frame, path, "csv" if suffix == ".csv" else "parquet")


def write_back(scores: pd.DataFrame, table: str, settings: Settings) -> int:
    """Store scores in the warehouse (replacing earlier scores of the same model version and as_of).

    One transaction: the table is created (or given the columns a newer model adds), the earlier
    scores of the same model version and as_of are deleted, and the new ones inserted.
    """
    frame = scores.drop(columns=[c for c in ("source_row",) if c in scores.columns])
    name = _quote(table)
    with Warehouse(settings.warehouse).connect() as con:
        con.register("_scores", frame)
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM _scores WHERE FALSE")
            stored = {r[0].lower() for r in con.execute(f"DESCRIBE {name}").fetchall()}
            for col in frame.columns:
                if col.lower() not in stored:
                    con.execute(f"ALTER TABLE {name} ADD COLUMN {_quote(col)} VARCHAR")
            con.execute(
                f"DELETE FROM {name} WHERE (model_name, model_version, as_of) IN "
                "(SELECT DISTINCT model_name, model_version, as_of FROM _scores)"
            )
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM _scores")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("_scores")
    return len(frame)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _ref(model: str | ModelRef, alias: str, version: str | None, option: str = "--model") -> ModelRef:
    """``model`` as a reference: a plain name is explicit when an alias or version is asked for."""
    if isinstance(model, ModelRef):
        return model
    check_name(model, "model name")
    explicit = alias != CHAMPION or version is not None
    return ModelRef(model, model, alias, version, option, explicit)


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    """What :func:`score_job` did: rows in, scored and rejected, the files written, bands and notes."""

    model_name: str
    model_version: str
    as_of: pd.Timestamp | None
    """The moment the warehouse was scored at (``None``: a file was scored)."""
    rows_in: int
    scored: int
    rejected: int
    output: Path
    rejects: Path
    written_to_warehouse: int
    bands: dict[str, int]
    rows_with_warnings: int
    """Rows with a categorical value the model never saw (named in the output's ``warnings`` column)."""
    notes: list[str]
    warnings: list[str]
    """Models used from another warehouse."""
    score_name: str
    mean_score: float | None
    """The mean of the ``score_name`` column (``None`` when nothing was scored)."""

    def to_dict(self) -> dict[str, Any]:
        """The summary as ``--json`` prints it (``mean_<score_name>`` names the mean)."""
        return {
            "ok": True,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "as_of": None if self.as_of is None else self.as_of.isoformat(),
            "rows_in": self.rows_in,
            "scored": self.scored,
            "rejected": self.rejected,
            "output": str(self.output),
            "rejects": str(self.rejects),
            "written_to_warehouse": self.written_to_warehouse,
            "bands": self.bands,
            "rows_with_warnings": self.rows_with_warnings,
            "notes": self.notes,
            "warnings": self.warnings,
            f"mean_{self.score_name}": self.mean_score,
        }


def score_job(
    settings: Settings,
    *,
    model_name: str | ModelRef,
    output: Path,
    input_path: Path | None = None,
    as_of: pd.Timestamp | None = None,
    write_to_warehouse: bool = False,
    encoding: str = "utf-8",
    delimiter: str = ",",
    progress: Callable[[str, float | None], None] | None = None,
    close_model: str | ModelRef | None = None,
    churn_model: ModelRef | None = None,
    with_flags: bool = False,
    reasons: bool = True,
    alias: str = CHAMPION,
    version: str | None = None,
    keep_columns: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> ScoreSummary:
    """Score with ``models:/<model_name>@<alias>`` (or ``version``) and write output and rejects atomically.

    ``model_name`` is a name (its ``alias``, by default the champion, or ``version``) or a
    :class:`~forecast.binding.ModelRef`. Scoring the warehouse, a model not named explicitly must
    have been trained on it (:func:`forecast.binding.check_binding`: else exit 2 with the fix); a
    model named explicitly is used with a warning. A file is scored by any model (the file is the
    data). ``keep_columns`` (a file input of a flat export) carries input columns to the output:
    ``all`` or a comma-separated list.

    With ``close_model`` (deals), that time-to-close model adds each deal's close-date
    distribution and slip risk (:func:`close_date_columns`). With ``with_flags`` and warehouse
    scoring, the flags of the scored entities add ``p_churn`` (from ``churn_model``, by default
    the churn champion, when one exists), ``at_risk``, ``flags``, ``top_flag``, its evidence and
    the suggested action (:func:`forecast.flags.job.flag_columns`).

    A Parquet input (a file, or a folder of part files) of a snapshot model is read, scored and
    written ``batch_rows`` rows at a time (:func:`_score_parquet`: memory bounded by the batch, the
    same output); ``batch_rows=0`` reads it whole, as a CSV input and a flat export always are.

    Returns:
        The summary (:class:`ScoreSummary`): rows in, scored, rejected, as_of, model version, bands,
        files, notes, ``warnings`` (models used from another warehouse) and ``rows_with_warnings``.
    """
    ref = _ref(model_name, alias, version)
    close_ref = None if close_model is None else _ref(close_model, CHAMPION, None, "--close-model")
    if write_to_warehouse and input_path is not None:
        raise ScoringError("--write-back stores warehouse scores: use it with --from-warehouse")
    current = CurrentWarehouse.of(settings.warehouse) if input_path is None else None
    model, warnings = resolve(ref, settings, current)
    files = None
    if input_path is not None and batch_rows > 0 and model.meta.source != "flat_export":
        files = parquet_files(input_path)
        if files is not None and not _plain_names(input_path, files):
            files = None  # names with spaces around them: the whole-file read strips them
    if input_path is not None and files is not None:
        return _score_parquet(
            model,
            input_path,
            files,
            output,
            settings,
            warnings,
            close_ref=close_ref,
            with_flags=with_flags,
            reasons=reasons,
            batch_rows=batch_rows,
            progress=progress,
        )
    if input_path is None:
        scored, when, _ = score_warehouse(model, settings, as_of, progress, reasons=reasons)
    else:
        when = None
        scored, _ = score_file(
            model,
            input_path,
            encoding=encoding,
            delimiter=delimiter,
            progress=progress,
            reasons=reasons,
            keep_columns=keep_columns,
        )
    if len(scored.scores) + scored.rejects["source_row"].nunique() != scored.rows_in:
        raise AssertionError("row accounting broken")  # pragma: no cover - an invariant
    notes: list[str] = []
    if close_ref is not None and scored.features is not None:
        notes.append(_add_close_dates(scored, scored.features, close_ref, settings, current, warnings))
    if with_flags and scored.features is not None and input_path is None and when is not None:
        entity = str(model.meta.entity)
        notes += _add_flags(scored, scored.features, entity, when, settings, churn_model, current, warnings)
    elif with_flags and input_path is not None:
        notes.append("flags need the warehouse's history: score --from-warehouse to get them")
    rejects, stored = _write_outputs(scored, output, model, settings, write_to_warehouse)
    return _summary(model, scored, when, output, rejects, stored, notes, warnings)


def _plain_names(path: Path, files: list[Path]) -> bool:
    """Whether the Parquet input's column names need no stripping (as the whole-file read strips them).

    Raises:
        SourceError: Two names the same once stripped (the whole-file read refuses them too).
    """
    names = input_schema(files)[0].names
    return check_columns(path, pd.DataFrame(columns=names), []) == list(names)


def _score_parquet(
    model: LoadedModel,
    path: Path,
    files: list[Path],
    output: Path,
    settings: Settings,
    warnings: list[str],
    *,
    close_ref: ModelRef | None,
    with_flags: bool,
    reasons: bool,
    batch_rows: int,
    progress: Callable[[str, float | None], None] | None,
) -> ScoreSummary:
    """Score a Parquet snapshot table batch by batch (:func:`forecast.batch_stream.stream_score`).

    Each batch goes through :func:`score_snapshot_rows` (and the close dates), as the whole file
    would: the duplicate flags and row numbers are the whole input's, ``scored_at`` is one time for
    the job, and the summary is added up batch by batch.
    """
    meta = model.meta
    id_col = ID_COLUMN["lead" if str(meta.entity) == "lead" else "opportunity"]
    features = list(meta.features)
    schema, _ = input_schema(files)
    missing = [c for c in [id_col, *features] if c not in schema.names]
    if missing:
        raise ScoringError(
            f"{path}: lacks column(s) the model needs: {missing[:8]}{' …' if len(missing) > 8 else ''} "
            f"(write the file with `forecast features --entity {meta.entity}` or score --from-warehouse)"
        )
    has_as_of = "as_of" in schema.names
    notes: list[str] = []
    closing: LoadedModel | None = None
    if close_ref is not None:
        closing, close_warnings = resolve(close_ref, settings, None)
        warnings += close_warnings
        needed = [c for c in closing.meta.features if c not in features]
        if needed or not has_as_of:
            raise ScoringError(
                f"{closing.name} needs column(s) {(needed or ['as_of'])[:8]} that the input lacks"
            )
        notes.append(f"close dates from {closing.name} v{closing.version}")
    if with_flags:
        notes.append("flags need the warehouse's history: score --from-warehouse to get them")
    scored_at = pd.Timestamp(datetime.now(UTC).replace(tzinfo=None, microsecond=0))

    def score(
        frame: pd.DataFrame, duplicate: np.ndarray, rows: np.ndarray
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        scored = score_snapshot_rows(model, frame, duplicate, source_rows=rows, reasons=reasons)
        scores = scored.scores.reset_index(drop=True)
        if closing is not None and scored.features is not None:
            extra = close_date_columns(closing, scored.features).reset_index(drop=True)
            scores = pd.concat([scores, extra], axis=1)
        scores["scored_at"] = scored_at
        return scores, scored.rejects

    keys = [id_col, "as_of"] if has_as_of else [id_col]
    columns = [*keys, *[c for c in features if c not in keys]]
    rejects = rejects_path(output)
    totals = stream_score(
        files, columns, keys, score, output, rejects,
        score_name=meta.score_name, batch_rows=batch_rows, progress=progress,
        limits=ReadLimits.from_settings(settings),
    )  # fmt: skip
    if totals.scored + totals.rejected != totals.rows_in:
        raise AssertionError("row accounting broken")  # pragma: no cover - an invariant
    return ScoreSummary(
        model_name=model.name,
        model_version=model.version,
        as_of=None,
        rows_in=totals.rows_in,
        scored=totals.scored,
        rejected=totals.rejected,
        output=output,
        rejects=rejects,
        written_to_warehouse=0,
        bands=totals.bands,
        rows_with_warnings=totals.rows_with_warnings,
        notes=notes,
        warnings=warnings,
        score_name=meta.score_name,
        mean_score=totals.mean_score,
    )


def _add_close_dates(
    scored: Scored,
    features: pd.DataFrame,
    close_ref: ModelRef,
    settings: Settings,
    current: CurrentWarehouse | None,
    warnings: list[str],
) -> str:
    """Add the close-date columns of ``close_ref``'s model to ``scored.scores``; the note that says so.

    ``features`` are the scored rows' model input. The warnings of resolving the model are appended
    to ``warnings``.
    """
    closing, close_warnings = resolve(close_ref, settings, current)
    warnings += close_warnings
    needed = [c for c in closing.meta.features if c not in features.columns]
    if needed or "as_of" not in features.columns:
        raise ScoringError(f"{closing.name} needs column(s) {(needed or ['as_of'])[:8]} that the input lacks")
    extra = close_date_columns(closing, features)
    scored.scores = pd.concat([scored.scores.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)
    return f"close dates from {closing.name} v{closing.version}"


def _add_flags(
    scored: Scored,
    features: pd.DataFrame,
    entity: str,
    when: pd.Timestamp,
    settings: Settings,
    churn_model: ModelRef | None,
    current: CurrentWarehouse | None,
    warnings: list[str],
) -> list[str]:
    """Add the flag columns of the scored entities to ``scored.scores``; the flags' notes.

    ``features`` are the scored rows' snapshot features. The warnings of resolving the churn model are
    appended to ``warnings``.
    """
    from forecast.flags.job import flag_columns

    flagged, flag_notes, flag_warnings = flag_columns(
        settings,
        features,
        entity,  # type: ignore[arg-type]
        when,
        churn_model=churn_model,
        current=current,
    )
    warnings += flag_warnings
    flagged = flagged.drop(columns=[c for c in flagged.columns if c in scored.scores.columns])
    scored.scores = pd.concat([scored.scores.reset_index(drop=True), flagged.reset_index(drop=True)], axis=1)
    return flag_notes


def _write_outputs(
    scored: Scored, output: Path, model: LoadedModel, settings: Settings, write_to_warehouse: bool
) -> tuple[Path, int]:
    """Write the scores and the rejects atomically, and the scores to the warehouse when asked.

    Returns:
        The rejects file and the number of rows stored in the warehouse.
    """
    _write(scored.scores, output)
    rejects = rejects_path(output)
    write_frame(scored.rejects, rejects, "csv")
    stored = 0
    if write_to_warehouse:
        table = "lead_scores" if model.meta.entity == "lead" else f"{model.meta.entity}_scores"
        stored = write_back(scored.scores, table, settings)
    return rejects, stored


def _summary(
    model: LoadedModel,
    scored: Scored,
    when: pd.Timestamp | None,
    output: Path,
    rejects: Path,
    stored: int,
    notes: list[str],
    warnings: list[str],
) -> ScoreSummary:
    scores = scored.scores
    score_name = model.meta.score_name
    bands = scores["band"].value_counts().reindex(["A", "B", "C", "D"], fill_value=0)
    return ScoreSummary(
        model_name=model.name,
        model_version=model.version,
        as_of=when,
        rows_in=scored.rows_in,
        scored=len(scores),
        rejected=int(scored.rejects["source_row"].nunique()),
        output=output,
        rejects=rejects,
        written_to_warehouse=stored,
        bands={str(k): int(v) for k, v in bands.items()},
        rows_with_warnings=int((scores["warnings"] != "").sum()),
        notes=notes,
        warnings=warnings,
        score_name=score_name,
        mean_score=None if scores.empty else round(float(scores[score_name].mean()), 4),
    )
