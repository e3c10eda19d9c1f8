"""Batch scoring: score every open lead of the warehouse, or every row of a file, with reasons.

Every input row ends up in the output (scores, band, reasons, model name and version) or in the
rejects file written next to it (``<output>.rejects.csv``, with the row and the reason). Files are
written atomically. Scoring is point in time: the warehouse is scored as of ``--as-of`` (default:
the midnight after the data's last day, :func:`forecast.timeutil.as_of_after`; never the wall clock).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.binding import CurrentWarehouse, ModelRef, resolve
from forecast.config import Settings
from forecast.data.readers import read_table_file
from forecast.data.warehouse import Warehouse
from forecast.errors import InputError, truncate
from forecast.features.build import build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import warehouse_source
from forecast.features.tabular import score_input_errors, values_as_written
from forecast.io import write_frame
from forecast.models import fastpath
from forecast.models.explain import contributions, reason_codes, reasons_from_contributions
from forecast.models.pipeline import CalibratedLGBMClassifier
from forecast.models.unseen import unseen_warnings
from forecast.name_rules import check_name
from forecast.registry import CHAMPION, LoadedModel
from forecast.timeutil import resolve_as_of

CHUNK = 20_000
MAX_DAYS = 36_525
"""Largest day count taken as a date offset (a century)."""
REJECT_COLUMNS = ["source_row", "id", "column", "rule", "value", "message"]


class ScoringError(InputError):
    """The input cannot be scored at all (wrong shape for the model, no warehouse, …)."""


@dataclass
class Scored:
    """Scores of the scoreable rows and the rejects of the others."""

    scores: pd.DataFrame
    rejects: pd.DataFrame
    rows_in: int
    features: pd.DataFrame | None = None
    """The model input of the scored rows, aligned with ``scores`` (for a second model)."""


def band_of(p: np.ndarray, bands: dict[str, float]) -> np.ndarray:
    """Band A-D of each probability (A is the highest; D below the C cut-off)."""
    return np.select([p >= bands["A"], p >= bands["B"], p >= bands["C"]], ["A", "B", "C"], "D")


def score_frame(
    model: LoadedModel,
    features: pd.DataFrame,
    ids: pd.Series,
    *,
    reasons_on: pd.DataFrame | None = None,
    reason_pipeline: Pipeline | None = None,
    reason_text: pd.DataFrame | None = None,
    progress: Callable[[str, float | None], None] | None = None,
    reasons: bool = True,
) -> pd.DataFrame:
    """Probability, score, band and reasons of each row (in chunks, with progress).

    Args:
        model: The loaded model (pipeline and metadata).
        features: What the pipeline takes.
        ids: The entity id of each row.
        reasons_on: The frame reasons read values from (default: ``features``).
        reason_pipeline: The pipeline reasons decompose (default: the model's).
        progress: Called with a description and the fraction done.
        reasons: Whether to add the reasons (TreeSHAP is most of the cost of scoring).
        reason_text: The values the reasons quote, aligned with ``reasons_on`` (default: its own
            values); a flat export's raw text, so that reasons read ``Yes``, not ``1``.
    """
    meta = model.meta
    score_name = meta.score_name
    descriptions = dict(meta.descriptions)
    kinds = dict.fromkeys(meta.categorical, "categorical")
    parts = []
    n = len(features)
    fast = None
    if reasons_on is None and reason_pipeline is None:
        fast = fastpath.coded(model.pipeline)
        fast = fast if fast is not None and isinstance(fast.model, CalibratedLGBMClassifier) else None
    for start in range(0, max(n, 1), CHUNK):
        chunk = features.iloc[start : start + CHUNK]
        if chunk.empty:
            break
        why: pd.DataFrame | None = None
        if not reasons:
            p = (
                fast.predict_proba(fast.encode(chunk))
                if fast is not None
                else fastpath.predict_proba(model.pipeline, chunk)
            )[:, 1]
        elif fast is not None:  # one encoding for the probabilities and the reasons
            p, why = fast_proba_and_reasons(fast, chunk, descriptions, kinds)
        else:
            p = fastpath.predict_proba(model.pipeline, chunk)[:, 1]
            on = (reasons_on if reasons_on is not None else features).iloc[start : start + CHUNK]
            if reason_text is None:
                why = reason_codes(reason_pipeline or model.pipeline, on, descriptions, top_k=3, kinds=kinds)
            else:
                why = reasons_from_contributions(
                    contributions(reason_pipeline or model.pipeline, on),
                    reason_text.iloc[start : start + CHUNK],
                    descriptions,
                    top_k=3,
                    kinds=kinds | dict.fromkeys(reason_text.columns, "categorical"),
                )
        parts.append(
            {
                "id": ids.iloc[start : start + CHUNK].to_numpy(),
                score_name: np.round(p, 6),
                "score": np.rint(p * 100).astype(int),
                "band": band_of(p, meta.bands),
                **({} if why is None else {column: why[column].to_numpy() for column in why.columns}),
            }
        )
        if progress is not None:
            progress("scoring", min(1.0, (start + len(chunk)) / n))
    if not parts:
        out = pd.DataFrame(columns=["id", score_name, "score", "band"])
        out["model_name"] = model.name
        out["model_version"] = model.version
        out["scored_at"] = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
        return out
    # one frame built at once: inserting columns one by one cost more than scoring one row
    columns: dict[str, Any] = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    columns["model_name"] = model.name
    columns["model_version"] = model.version
    columns["scored_at"] = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    return pd.DataFrame(columns, index=features.index[: sum(len(part["id"]) for part in parts)])


def fast_proba_and_reasons(
    fast: fastpath.CodedPipeline, chunk: pd.DataFrame, descriptions: dict[str, str], kinds: dict[str, str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """``predict_proba`` and ``reason_codes`` of a chunk from one encoded matrix (the same numbers).

    ``chunk`` may hold more columns than the model's (only its own are encoded and explained).
    """
    codes = fast.encode(chunk)
    p = fast.predict_proba(codes)[:, 1]
    contrib = pd.DataFrame(fast.contributions(codes)[:, :-1], index=chunk.index, columns=fast.columns)
    return p, reasons_from_contributions(contrib, chunk, descriptions, top_k=3, kinds=kinds)


def _dates_after(as_of: pd.Series, offsets: dict[str, np.ndarray]) -> dict[str, pd.Series]:
    """``(as_of + offset days).dt.normalize()`` per named offset, in one vectorised pass."""
    n = len(as_of)
    if not offsets or not n:
        return {name: (as_of + pd.to_timedelta(d, unit="D")).dt.normalize() for name, d in offsets.items()}
    stacked = as_of.iloc[np.tile(np.arange(n), len(offsets))].reset_index(drop=True)
    days = np.concatenate([np.asarray(d, dtype=float) for d in offsets.values()])
    dates = (stacked + pd.to_timedelta(days, unit="D")).dt.normalize()
    return {name: dates.iloc[i * n : (i + 1) * n].reset_index(drop=True) for i, name in enumerate(offsets)}


def close_date_columns(model: LoadedModel, features: pd.DataFrame) -> pd.DataFrame:
    """Close-date distribution of each deal from a time-to-close model.

    Columns: ``p_close_<d>d`` for each reported horizon, ``close_date_p10`` / ``p50`` / ``p90``
    (dates by which the deal has closed with that probability; empty beyond the modelled
    horizon), ``expected_close_date`` (the rep's, when known) and ``slip_risk`` = P(the deal
    closes after the rep's expected close date; 1 when that date has already passed).

    Args:
        model: The loaded time-to-close model (pipeline ending in a hazard model).
        features: The model's input columns plus ``as_of``.
    """
    from forecast.models.survival import survival_at, survival_quantile

    survival_cfg = dict(model.meta.survival or {})
    edges = model.meta.survival_edges
    report = [float(x) for x in survival_cfg.get("report_days") or [30, 60, 90]]
    if not edges:
        raise ScoringError(f"model {model.name} v{model.version} is not a time-to-close model")
    surv = fastpath.survival(model.pipeline, features) if len(features) else np.empty((0, len(edges)))
    as_of = pd.to_datetime(features["as_of"]).reset_index(drop=True)
    columns: dict[str, Any] = {}
    for days in report:
        columns[f"p_close_{int(days)}d"] = np.round(1.0 - survival_at(surv, edges, days), 6)
    offsets = {f"close_date_p{int(q * 100)}": survival_quantile(surv, edges, q) for q in (0.1, 0.5, 0.9)}
    to_ecd = None
    if "days_to_expected_close" in features:
        to_ecd = pd.to_numeric(features["days_to_expected_close"], errors="coerce").to_numpy(dtype=float)
        # beyond a century the value is a data error, and no date can hold it: unknown
        to_ecd = np.where(np.abs(to_ecd) > MAX_DAYS, np.nan, to_ecd)
        offsets["expected_close_date"] = to_ecd
    columns.update(_dates_after(as_of, offsets))
    if to_ecd is not None:
        slip = np.where(to_ecd < 0, 1.0, survival_at(surv, edges, np.nan_to_num(to_ecd, nan=0.0)))
        columns["slip_risk"] = np.round(np.where(np.isnan(to_ecd), np.nan, slip), 6)
    out = pd.DataFrame(columns, index=range(len(features)))
    out["close_model_version"] = model.version
    return out.set_index(features.index)


def warnings_column(pipeline: Any, features: pd.DataFrame) -> np.ndarray:
    """Per row, the categorical values ``pipeline`` never saw in training, as one text (``""`` when none).

    Each value is one warning (:func:`forecast.models.unseen.unseen_warning`), joined by ``"; "``.
    """
    texts = ["; ".join(row) for row in unseen_warnings(pipeline, features)]
    return np.asarray(texts, dtype=object)


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "source_row" else object) for c in REJECT_COLUMNS}
    )


def score_warehouse(
    model: LoadedModel,
    settings: Settings,
    as_of: pd.Timestamp | None,
    progress: Any = None,
    reasons: bool = True,
) -> tuple[Scored, pd.Timestamp, str]:
    """Score the entities alive in the warehouse at ``as_of`` (default: midnight after the data's last day)."""
    entity = str(model.meta.entity)
    if not model.meta.is_warehouse or entity not in ("lead", "opportunity"):
        raise ScoringError(
            f"model {model.name} v{model.version} was trained on a flat export; score files in that shape with --input"
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
    return Scored(scores, _empty_rejects(), len(frame), frame), when, table.id_column


def score_export_rows(
    model: LoadedModel, raw: pd.DataFrame, *, progress: Any = None, reasons: bool = True
) -> tuple[Scored, str, pd.DataFrame]:
    """Score rows in the shape of a flat export with a model trained on one (``score_file``, the API).

    Rows the preparation refuses (:func:`forecast.features.tabular.score_input_errors`) are rejects;
    the others are scored, with reasons quoting their values as written.

    Returns:
        The scores and rejects, the id column, and the scored rows as given.

    Raises:
        KeyError: The rows lack a column the model needs (the message names it).
    """
    meta = model.meta
    spec = dict(meta.flat_spec or {})
    problems = score_input_errors(raw, spec)
    id_col = meta.id_column or "row_id"
    ids = raw[id_col] if id_col in raw else pd.Series(np.arange(1, len(raw) + 1), index=raw.index)
    bad_rows = set(problems["row"].astype(int)) if len(problems) else set()
    keep = ~np.isin(np.arange(1, len(raw) + 1), sorted(bad_rows))
    good = raw.loc[keep]
    prepared = model.pipeline.named_steps["prepare"].transform(good)
    inner = Pipeline(model.pipeline.steps[1:])
    scores = score_frame(
        model,
        good,
        ids.loc[keep],
        reasons_on=prepared,
        reason_pipeline=inner,
        reason_text=values_as_written(good, prepared, spec),
        progress=progress,
        reasons=reasons,
    )
    scores.insert(0, "source_row", np.flatnonzero(keep) + 1)
    scores["warnings"] = warnings_column(inner, prepared)
    # without an id column the id is the row number: source_row says it once
    scores = scores.rename(columns={"id": id_col}) if id_col in raw else scores.drop(columns="id")
    rejects = problems.rename(columns={"row": "source_row"})
    rejects.insert(1, "id", [None if r - 1 >= len(ids) else ids.iloc[r - 1] for r in rejects["source_row"]])
    out = Scored(scores, rejects[REJECT_COLUMNS] if len(rejects) else _empty_rejects(), len(raw))
    return out, id_col, good


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
    id_col = "lead_id" if entity == "lead" else "opportunity_id"
    features = list(meta.features)
    missing = [c for c in [id_col, *features] if c not in frame.columns]
    if missing:
        raise ScoringError(
            f"{path}: lacks column(s) the model needs: {missing[:8]}{' …' if len(missing) > 8 else ''} "
            f"(write the file with `forecast features --entity {entity}` or score --from-warehouse)"
        )
    keys = [id_col, "as_of"] if "as_of" in frame.columns else [id_col]
    missing_id = frame[id_col].isna()
    duplicate = frame.duplicated(subset=keys, keep="first") & ~missing_id
    typed_all, bad_numbers = _typed_features(frame, features, set(meta.categorical))
    parts = [
        _rejects_for(frame, missing_id, id_col, "missing_id", "the id is empty"),
        _rejects_for(
            frame, duplicate, id_col, "duplicate_id", "the same id (and as_of) appeared earlier in the file"
        ),
    ]
    for col, mask in bad_numbers.items():
        parts.append(_rejects_for(frame, mask, col, "not_a_number", f"{col}: not a number", id_column=id_col))
    rejects = (
        pd.concat(parts, ignore_index=True).sort_values("source_row", kind="stable").reset_index(drop=True)
    )
    bad_any = np.zeros(len(frame), dtype=bool)
    for mask in bad_numbers.values():
        bad_any |= mask.to_numpy()
    ok = ~(missing_id | duplicate) & ~bad_any
    good = frame.loc[ok]
    typed = typed_all.loc[ok]
    scores = score_frame(model, typed, good[id_col], progress=progress, reasons=reasons)
    scores.insert(0, "source_row", np.flatnonzero(ok.to_numpy()) + 1)
    scores["warnings"] = warnings_column(model.pipeline, typed)
    if "as_of" in good:
        scores.insert(2, "as_of", good["as_of"].to_numpy())
    if "as_of" in good:
        typed = typed.assign(as_of=pd.to_datetime(good["as_of"], errors="coerce").to_numpy())
    return Scored(scores.rename(columns={"id": id_col}), rejects, len(frame), typed), id_col


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
) -> dict[str, Any]:
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
    the suggested action (:func:`forecast.flags.jobs.flag_columns`).

    Returns:
        The summary: rows in, scored, rejected, as_of, model version, bands, files, notes,
        ``warnings`` (models used from another warehouse) and ``rows_with_warnings``: rows with a
        categorical value the model never saw (named in the output's ``warnings`` column).
    """
    ref = _ref(model_name, alias, version)
    close_ref = None if close_model is None else _ref(close_model, CHAMPION, None, "--close-model")
    if write_to_warehouse and input_path is not None:
        raise ScoringError("--write-back stores warehouse scores: use it with --from-warehouse")
    current = CurrentWarehouse.of(settings.warehouse) if input_path is None else None
    model, warnings = resolve(ref, settings, current)
    when: pd.Timestamp | None = None
    if input_path is None:
        scored, when, _ = score_warehouse(model, settings, as_of, progress, reasons=reasons)
    else:
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
        closing, close_warnings = resolve(close_ref, settings, current)
        warnings += close_warnings
        needed = [c for c in closing.meta.features if c not in scored.features.columns]
        if needed or "as_of" not in scored.features.columns:
            raise ScoringError(
                f"{closing.name} needs column(s) {(needed or ['as_of'])[:8]} that the input lacks"
            )
        extra = close_date_columns(closing, scored.features)
        scored.scores = pd.concat(
            [scored.scores.reset_index(drop=True), extra.reset_index(drop=True)], axis=1
        )
        notes.append(f"close dates from {closing.name} v{closing.version}")
    if with_flags and scored.features is not None and input_path is None and when is not None:
        from forecast.flags.jobs import flag_columns

        entity = model.meta.entity
        flagged, flag_notes, flag_warnings = flag_columns(
            settings,
            scored.features,
            entity,  # type: ignore[arg-type]
            when,
            churn_model=churn_model,
            current=current,
        )
        warnings += flag_warnings
        flagged = flagged.drop(columns=[c for c in flagged.columns if c in scored.scores.columns])
        scored.scores = pd.concat(
            [scored.scores.reset_index(drop=True), flagged.reset_index(drop=True)], axis=1
        )
        notes += flag_notes
    elif with_flags and input_path is not None:
        notes.append("flags need the warehouse's history: score --from-warehouse to get them")
    _write(scored.scores, output)
    rj = rejects_path(output)
    write_frame(scored.rejects, rj, "csv")
    stored = 0
    if write_to_warehouse:
        table = "lead_scores" if model.meta.entity == "lead" else f"{model.meta.entity}_scores"
        stored = write_back(scored.scores, table, settings)
    score_name = model.meta.score_name
    bands = scored.scores["band"].value_counts().reindex(["A", "B", "C", "D"], fill_value=0)
    return {
        "ok": True,
        "model_name": model.name,
        "model_version": model.version,
        "as_of": None if when is None else when.isoformat(),
        "rows_in": scored.rows_in,
        "scored": len(scored.scores),
        "rejected": int(scored.rejects["source_row"].nunique()),
        "output": str(output),
        "rejects": str(rj),
        "written_to_warehouse": stored,
        "bands": {k: int(v) for k, v in bands.items()},
        "rows_with_warnings": int((scored.scores["warnings"] != "").sum()),
        "notes": notes,
        "warnings": warnings,
        f"mean_{score_name}": None
        if scored.scores.empty
        else round(float(scored.scores[score_name].mean()), 4),
    }
