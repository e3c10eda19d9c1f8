"""Assembly: one flat export (a data frame or a file) turned into a :class:`FlatExport` feature table."""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.data.readers import read_table_file
from forecast.errors import InputError, truncate
from forecast.features.flat.leakage import LeakageFlag, column_auc, detect_leakage
from forecast.features.flat.names import looks_like_id_name
from forecast.features.flat.parse import (
    guess_dayfirst,
    missing_kind,
    normalise_missing,
    parse_dates,
    parse_target,
)
from forecast.features.flat.preparer import FlatExportPreparer, feature_spec, preparation_spec
from forecast.features.flat.roles import ColumnRole, feature_values, infer_roles
from forecast.features.flat.schema import (
    AS_OF,
    DAYS_BEFORE_SUFFIX,
    ENTITY_ID,
    FEATURE_ROLES,
    LABEL,
    ROW_ID,
    source_of,
)
from forecast.features.period_columns import period_level_columns


@dataclass
class FlatExport:
    """A flat export turned into a feature table, with what was inferred, flagged and dropped.

    Attributes:
        table: ``entity_id``, ``as_of``, feature columns, ``label_target``.
        roles: One role per input column (plus ``row_id`` when it was created).
        leakage: Leakage flags (excluded unless kept).
        excluded: Input or feature columns not in the table (leakage, id-like, free text, constant,
            dates without a time column).
        kept_despite_flag: Flagged columns kept because they were named in ``keep_columns``.
        warnings: Plain-words warnings (one per excluded leakage column, duplicates, missing targets).
        id_column: Input column used as id (``row_id`` when created from the row number).
        target_column: Input target column.
        time_column: Input date column giving ``as_of``, if any.
        positive_label: The raw target value mapped to 1.
        duplicate_rows: Rows that exactly repeat an earlier row (ignoring the id column).
        column_auc: Single-column ROC-AUC (max of value and is-missing) of every candidate feature.
        preparation: How each feature column was made from the raw columns (levels, yes/no reading,
            date order), learnt on this export; read it through :meth:`preparer_spec`.
        period_columns: Feature columns that describe when a row was recorded rather than the row
            (a month, a monthly rate), with their evidence
            (:func:`~forecast.features.period_columns.period_level_columns`).
    """

    table: pd.DataFrame
    roles: list[ColumnRole]
    leakage: list[LeakageFlag]
    excluded: list[str]
    kept_despite_flag: list[str]
    warnings: list[str]
    id_column: str
    target_column: str
    time_column: str | None
    positive_label: str
    duplicate_rows: int = 0
    column_auc: dict[str, float] = field(default_factory=dict)
    preparation: dict[str, Any] = field(default_factory=dict, repr=False)
    period_columns: dict[str, float] = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        """Feature columns of :attr:`table` (everything but id, as_of and labels)."""
        return [c for c in self.table.columns if c not in (ENTITY_ID, AS_OF) and not c.startswith("label_")]

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary: rows, label rate, roles, leakage, exclusions and warnings."""
        labels = self.table[LABEL]
        labelled = int(labels.notna().sum())
        top = sorted(self.column_auc.items(), key=lambda kv: -kv[1])[:10]
        return {
            "rows": len(self.table),
            "rows_labelled": labelled,
            "rows_unlabelled": len(self.table) - labelled,
            "label_rate": round(float(labels.dropna().astype(float).mean()), 4) if labelled else None,
            "positive_label": self.positive_label,
            "id_column": self.id_column,
            "target_column": self.target_column,
            "time_column": self.time_column,
            "duplicate_rows": int(self.duplicate_rows),
            "feature_columns": self.feature_columns,
            "roles": [asdict(r) for r in self.roles],
            "leakage": [
                {
                    "column": f.column,
                    "reason": f.reason,
                    "confidence": f.confidence,
                    "evidence": {k: float(v) for k, v in f.evidence.items()},
                }
                for f in self.leakage
            ],
            "excluded": list(self.excluded),
            "kept_despite_flag": list(self.kept_despite_flag),
            "warnings": list(self.warnings),
            "strongest_columns": {k: round(float(v), 4) for k, v in top},
            "period_columns": dict(self.period_columns),
        }

    def preparer_spec(self) -> dict[str, Any]:
        """What :class:`FlatExportPreparer` needs to turn new raw rows into :attr:`feature_columns`.

        Returns:
            A JSON-serialisable dict (a copy): ``id_column`` (``None`` when the id is the row number),
            ``time_column``, ``time_dayfirst`` (how ``d/m/Y``-like dates read; ``None``: typed dates
            in training, text dates decide for themselves), ``inputs`` (the raw columns new rows must have),
            ``feature_columns`` and, per feature, its ``name``, ``source`` column, ``derived_from``
            (``value`` or ``missing_kind``), ``role`` and parsing info (``levels`` of a categorical,
            ``boolean_mode`` of a boolean, ``dayfirst`` of a date).

        Raises:
            ValueError: The export was not made by :func:`prepare_flat_export`.
        """
        if not self.preparation:
            raise ValueError("this FlatExport has no preparation spec (build it with prepare_flat_export)")
        return copy.deepcopy(self.preparation)

    def preparer(self) -> FlatExportPreparer:
        """A fitted :class:`FlatExportPreparer` that re-applies this export's preparation to new rows."""
        return FlatExportPreparer(self.preparer_spec())


def _require(frame: pd.DataFrame, column: str, what: str) -> None:
    if column not in frame.columns:
        raise InputError(f"{what} column {column!r} not found; available columns: {list(frame.columns)}")


def _infer_id_column(frame: pd.DataFrame, exclude: set[str]) -> str | None:
    for column in frame.columns:
        if column in exclude or not looks_like_id_name(column):
            continue
        values = frame[column]
        if values.notna().all() and values.is_unique:
            return str(column)
    return None


_MODEL_UNSAFE = re.compile(r'[",:\[\]{}\x00-\x1f\x7f]')
"""Characters LightGBM refuses in a feature name (JSON specials; a newline or NUL breaks its list)."""


def _safe_name(column: str) -> str:
    if column in (ENTITY_ID, AS_OF) or column.startswith("label_"):
        column = f"raw_{column}"
    return _MODEL_UNSAFE.sub("_", column)


def safe_feature_names(columns: Sequence[str]) -> dict[str, str]:
    """Model-safe, unique feature names for an export's columns.

    A header may hold any character; LightGBM refuses ``"``, ``,``, ``:``, ``[``, ``]``, ``{``, ``}``
    and control characters in a feature name, and the reserved names (``entity_id``, ``as_of``,
    ``label_*``) must stay free. Each such character becomes ``_``; a name that then collides with
    another gets ``_2``, ``_3``, ... in column order.

    Args:
        columns: Feature column names, in order.

    Returns:
        Column -> safe name, for every column (most map to themselves).
    """
    taken: set[str] = set()
    out: dict[str, str] = {}
    for column in columns:
        name = base = _safe_name(column)
        n = 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        out[column] = name
    return out


def prepare_flat_export(
    frame: pd.DataFrame,
    *,
    target: str,
    id_column: str | None = None,
    time_column: str | None = None,
    keep_columns: Sequence[str] = (),
) -> FlatExport:
    """Turn one flat export into a feature table (pure: no I/O).

    Args:
        frame: The export, one row per lead or deal (strings or native types).
        target: The outcome column.
        id_column: The id column; inferred when omitted (a unique column named like ``id``, ``*_id``,
            ``Record ID``), else ``row_id`` is created from the 1-based row number.
        time_column: A date column giving each row's ``as_of``; dates in other columns become "days
            before as_of" features. Without it ``as_of`` is NaT and other date columns are dropped.
        keep_columns: Flagged columns to keep anyway (each kept one gets a warning).

    Returns:
        The :class:`FlatExport`.

    Raises:
        ValueError: A named column is missing (the message lists the available ones), the target
            cannot be parsed, or the labelled rows do not contain both outcomes.
    """
    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    _require_columns(frame, {"target": target, "id": id_column, "time": time_column}, keep_columns)
    warnings: list[str] = []
    labels, positive_label = _labels(frame, target, warnings)
    if id_column is None:
        id_column = _infer_id_column(frame, {target, *([time_column] if time_column else [])})
    ids, duplicate_rows = _ids(frame, id_column, warnings)
    as_of = _as_of(frame, time_column, warnings)
    fixed = [c for c in (id_column, target, time_column) if c is not None]
    candidates = normalise_missing(frame.drop(columns=fixed))
    roles = _roles(pd.concat([frame[fixed], candidates], axis=1), id_column, target, time_column)
    feature_frame, specs, excluded = _feature_frame(frame, candidates, roles, as_of)
    scores = column_auc(feature_frame, labels)
    flags = detect_leakage(feature_frame, labels, roles, positive_label=positive_label, auc=scores)
    kept = _screen_leakage(flags, feature_frame, keep_columns, excluded, warnings)
    kept_features = [c for c in feature_frame.columns if c not in excluded]
    table, names, periods = _table(ids, as_of, feature_frame[kept_features], labels, time_column, warnings)
    preparation = preparation_spec(
        [specs[c] | {"name": names[c]} for c in kept_features],
        id_column=id_column,
        time_column=time_column,
        time_dayfirst=guess_dayfirst(frame[time_column]) if time_column is not None else None,
    )
    return FlatExport(
        table=table,
        roles=roles,
        leakage=flags,
        excluded=excluded,
        kept_despite_flag=kept,
        warnings=warnings,
        id_column=id_column or ROW_ID,
        target_column=target,
        time_column=time_column,
        positive_label=positive_label,
        duplicate_rows=duplicate_rows,
        column_auc={c: max(v) for c, v in scores.items()},
        preparation=preparation,
        period_columns=periods,
    )


def _require_columns(frame: pd.DataFrame, named: dict[str, str | None], keep_columns: Sequence[str]) -> None:
    """Raise when a column named by the caller is not in the export (the message lists those that are).

    Args:
        frame: The export.
        named: Each named column by what it is (``target``, ``id``, ``time``; ``None``: not named).
        keep_columns: Flagged columns to keep anyway.
    """
    for what, column in named.items():
        if column is not None:
            _require(frame, column, what)
    unknown = [c for c in keep_columns if c not in frame.columns]
    if unknown:
        raise InputError(f"keep column(s) {unknown} not found; available columns: {list(frame.columns)}")


def _labels(frame: pd.DataFrame, target: str, warnings: list[str]) -> tuple[pd.Series, str]:
    """The 0/1 labels (empty where unlabelled) and the raw value read as 1.

    Args:
        frame: The export.
        target: The outcome column.
        warnings: Appended to when some rows have no label.

    Raises:
        InputError: The labelled rows do not hold both outcomes.
    """
    labels, positive_label = parse_target(frame[target])
    labelled = labels.dropna()
    if labelled.nunique() < 2:
        raise InputError(
            f"target column {target!r} needs both outcomes among its labelled rows; "
            f"found {labelled.value_counts().to_dict()}"
        )
    unlabelled = int(labels.isna().sum())
    if unlabelled:
        warnings.append(
            f"{unlabelled} row(s) have no value in {target!r}; kept with an empty label (a set to score)"
        )
    return labels, positive_label


def _ids(frame: pd.DataFrame, id_column: str | None, warnings: list[str]) -> tuple[pd.Series, int]:
    """Each row's entity id (the 1-based row number without an id column) and the repeated rows.

    Args:
        frame: The export.
        id_column: The id column, or ``None``.
        warnings: Appended to for repeated ids and rows repeated but for the id.

    Returns:
        The ids (named :data:`ENTITY_ID`) and how many rows repeat an earlier one but for the id.
    """
    if id_column is None:
        ids = pd.Series(np.arange(1, len(frame) + 1), name=ENTITY_ID)
    else:
        ids = frame[id_column].rename(ENTITY_ID)
        if not ids.is_unique:
            warnings.append(f"id column {id_column!r} has {int(ids.duplicated().sum())} repeated value(s)")
    duplicate_rows = int(frame.drop(columns=[id_column] if id_column else []).duplicated().sum())
    if duplicate_rows:
        warnings.append(
            f"note: {duplicate_rows} row(s) have the same values as an earlier row in every column but "
            "the id; distinct leads often share every recorded value, so they are kept (remove them only "
            "if they are the same lead exported twice)"
        )
    return ids, duplicate_rows


def _as_of(frame: pd.DataFrame, time_column: str | None, warnings: list[str]) -> pd.Series:
    """Each row's ``as_of`` from the time column (NaT without one, or where it is not a date)."""
    if time_column is None:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns]").rename(AS_OF)
    as_of = parse_dates(frame[time_column].mask(missing_kind(frame[time_column]).notna()))
    bad = int((as_of.isna() & frame[time_column].notna()).sum())
    if bad:
        warnings.append(f"{bad} value(s) of time column {time_column!r} are not dates; their as_of is empty")
    return as_of.rename(AS_OF)


def _roles(
    columns: pd.DataFrame, id_column: str | None, target: str, time_column: str | None
) -> list[ColumnRole]:
    """Each column's role (:func:`~forecast.features.flat.roles.infer_roles`); ``row_id``'s first if made.

    Args:
        columns: The id, target and time columns, then the candidates (missing values normalised).
        id_column: The id column, or ``None`` (``row_id`` is created).
        target: The outcome column.
        time_column: The time column, if any.
    """
    roles = infer_roles(columns, id_column=id_column, target_column=target, time_column=time_column)
    if id_column is None:
        roles.insert(0, ColumnRole(ROW_ID, "id", 0.0, len(columns), "created from the 1-based row number"))
    return roles


def _feature_frame(
    frame: pd.DataFrame, candidates: pd.DataFrame, roles: list[ColumnRole], as_of: pd.Series
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]], list[str]]:
    """The candidate columns whose role makes a feature, as feature values.

    Args:
        frame: The export.
        candidates: Its columns other than id, target and time, missing values normalised.
        roles: Each column's role; a date column that cannot become a feature gets its note here.
        as_of: Each row's ``as_of`` (dates become days before it).

    Returns:
        The feature frame, each feature's preparation spec, and the columns excluded.
    """
    by_name = {r.name: r for r in roles}
    excluded: list[str] = []
    features: dict[str, pd.Series] = {}
    specs: dict[str, dict[str, Any]] = {}
    for column in candidates.columns:
        role = by_name[column]
        if role.role not in FEATURE_ROLES:
            excluded.append(column)
            continue
        values = feature_values(candidates[column], role.role, as_of)
        if values is None:
            excluded.append(column)
            roles[roles.index(role)] = ColumnRole(
                role.name, role.role, role.missing_share, role.n_unique,
                "dates without a time column cannot become features; excluded",
            )  # fmt: skip
            continue
        name = f"{column}{DAYS_BEFORE_SUFFIX}" if role.role == "datetime" else column
        features[name] = values
        specs[name] = feature_spec(column, candidates[column], role.role, from_raw=column in frame.columns)
    return pd.DataFrame(features, index=frame.index), specs, excluded


def _screen_leakage(
    flags: list[LeakageFlag],
    feature_frame: pd.DataFrame,
    keep_columns: Sequence[str],
    excluded: list[str],
    warnings: list[str],
) -> list[str]:
    """Exclude each flagged column unless the caller keeps it, with the columns derived from it.

    Args:
        flags: The leakage flags.
        feature_frame: Every feature column.
        keep_columns: Columns the caller keeps despite a flag.
        excluded: The excluded columns, appended to.
        warnings: A warning per flagged column, appended to.

    Returns:
        The flagged columns kept.
    """
    keep = set(keep_columns)
    kept: list[str] = []
    dropped_sources: set[str] = set()
    for flag in flags:
        source = source_of(flag.column)
        if flag.column in keep or source in keep:
            kept.append(flag.column)
            warnings.append(
                f"kept column {flag.column!r} despite a leakage flag because it was named in keep_columns: "
                f"{flag.reason}"
            )
        else:
            excluded.append(flag.column)
            if source == flag.column:
                dropped_sources.add(source)
            warnings.append(
                f"excluded column {flag.column!r} as likely leakage ({flag.confidence} confidence): "
                f"{flag.reason}. Pass --keep-column {source!r} to keep it"
            )
    for column in feature_frame.columns:
        source = source_of(column)
        if column not in excluded and column != source and source in dropped_sources and source not in keep:
            excluded.append(column)  # derived from an excluded column (missing kind, days before as_of)
    return kept


def _table(
    ids: pd.Series,
    as_of: pd.Series,
    features: pd.DataFrame,
    labels: pd.Series,
    time_column: str | None,
    warnings: list[str],
) -> tuple[pd.DataFrame, dict[str, str], dict[str, float]]:
    """The feature table with names LightGBM takes, and its period-level columns.

    Args:
        ids: Each row's entity id.
        as_of: Each row's ``as_of``.
        features: The kept feature columns.
        labels: The 0/1 labels.
        time_column: The time column, if any (period-level columns need one).
        warnings: Appended to for renamed and period-level columns.

    Returns:
        The table, each kept feature's name in it, and the period-level columns with their kappa.
    """
    kept_features = list(features.columns)
    table = pd.concat([ids.reset_index(drop=True), as_of, features, labels.rename(LABEL)], axis=1)
    names = safe_feature_names(kept_features)
    renamed = {c: n for c, n in names.items() if n not in (c, f"raw_{c}")}
    if renamed:
        warnings.append(
            'renamed column(s) for the model (LightGBM refuses " , : [ ] { } and control characters '
            "in names): " + ", ".join(f"{truncate(c)!r} -> {n!r}" for c, n in renamed.items())
        )
    table.columns = [ENTITY_ID, AS_OF, *[names[c] for c in kept_features], LABEL]
    periods = period_level_columns(
        table[[names[c] for c in kept_features]], table[AS_OF] if time_column is not None else None
    )
    if periods:
        warnings.append(
            "period-level column(s) "
            + ", ".join(f"{c!r} (kappa {k:.2f})" for c, k in periods.items())
            + ": they hold one value over long runs of rows in time order, so they describe when a row "
            "was recorded, not the row; with a time-ordered split they enter the model only through a "
            "linear term, and with a random split the test rows share their periods with the training "
            "rows, so the metrics may be optimistic for rows of periods to come"
        )
    return table, names, periods


def load_flat_export(
    path: Path,
    *,
    target: str,
    id_column: str | None = None,
    time_column: str | None = None,
    keep_columns: Sequence[str] = (),
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> FlatExport:
    """Read one CSV or Parquet export and turn it into a feature table.

    Args:
        path: The file (``.csv``, ``.parquet``).
        target: The outcome column.
        id_column: The id column (inferred when omitted).
        time_column: A date column giving ``as_of``.
        keep_columns: Flagged columns to keep anyway.
        encoding: Text encoding of a CSV file.
        delimiter: Field delimiter of a CSV file.

    Returns:
        The :class:`FlatExport` (see :func:`prepare_flat_export`).

    Raises:
        forecast.data.sources.base.SourceError: The file cannot be read (the message names it).
        ValueError: As :func:`prepare_flat_export`.
    """
    frame = read_table_file(Path(path), encoding=encoding, delimiter=delimiter)
    return prepare_flat_export(
        frame, target=target, id_column=id_column, time_column=time_column, keep_columns=keep_columns
    )
