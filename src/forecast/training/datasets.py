"""Turn the warehouse or a user's flat export into a model's training input."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.data.readers import read_table_file
from forecast.errors import InputError
from forecast.features.build import FeatureTable, build_feature_table
from forecast.features.horizon import cycle_horizon, follow_up_quantile, history_capped_horizon, tail_horizon
from forecast.features.record_start import outcome_record_start
from forecast.features.snapshots import AT_CREATION, CENSOR_FLAG, LabelConfig, as_of_grid, parse_every
from forecast.features.source import FeatureSource, warehouse_source
from forecast.features.tabular import AS_OF, ENTITY_ID, LABEL, FlatExport, prepare_flat_export
from forecast.models.config import TrainingConfig
from forecast.training.inputs import ModelInput

WON_WITHIN = "label_won_within_h"
"""The deal-win label whose p_win may reach past the label horizon (``snapshots.tail_follow_up``)."""

RAW_ROW = "__raw_row"
"""Column of a flat export's model input holding each row's position in the raw file."""


def snapshot_dates(src: FeatureSource, config: TrainingConfig) -> list[pd.Timestamp]:
    """The training as_of dates: the configured cadence between the configured or data bounds.

    With ``snapshots.truncated_history: read_from_first_close``, never before the first close of a
    history that holds no close before it (:func:`resolve_horizon`): a deal open before it is in
    the history only because it was still open then.
    """
    snap = config.snapshots
    table = "leads" if config.entity == "lead" else "opportunities"
    row = src.con.execute(f"SELECT min(created_at) FROM {table}").fetchone()
    if not row or row[0] is None:
        raise InputError(f"the warehouse has no {table}; nothing to train {config.model_name} on")
    start = (
        pd.Timestamp(snap.date_from)
        if snap.date_from
        else pd.Timestamp(row[0]).normalize() + pd.Timedelta(days=7)
    )
    since = snap.read_from()
    end = pd.Timestamp(snap.date_to) if snap.date_to else src.data_end()
    if since and pd.Timestamp(since) > end:
        raise InputError(
            f"the history holds no close before {since[:10]}, after its data end ({end.date()}), so "
            "nothing is left to read from its first close on; set snapshots.truncated_history: note",
            parameter="snapshots.truncated_history",
        )
    if since:
        start = max(start, pd.Timestamp(since))
    return as_of_grid(start, end, parse_every(snap.every))


def table_input(table: FeatureTable, label: str) -> ModelInput:
    """Model input from a snapshot feature table."""
    if label not in table.frame:
        raise InputError(f"label {label!r} is not a column of the {table.entity} snapshots ({table.labels})")
    return ModelInput(
        frame=table.frame,
        id_column=table.id_column,
        label=label,
        features=[f.name for f in table.features],
        categorical=[f.name for f in table.features if f.kind == "categorical"],
        time_column="as_of",
        censored=CENSOR_FLAG.get(label),
        descriptions={f.name: f.description for f in table.features},
    )


def resolve_horizon(
    src: FeatureSource, config: TrainingConfig, data_end: pd.Timestamp | None = None
) -> TrainingConfig:
    """The config with its label horizon read from the CRM's cycle, if it asks for that.

    With ``snapshots.horizon_quantile`` set on a deal model, the horizon becomes that quantile of
    the time from creation to close known at ``data_end`` (:func:`~forecast.features.horizon.cycle_horizon`),
    capped at the configured ``horizon_days`` and at half the history; with ``snapshots.censoring:
    ipcw``, at the follow-up that ``ipcw_min_survival`` of the snapshots reach instead (so that no
    weight is floored: ``training.ipcw``). Any other horizon is kept, unless the history is
    shorter than twice it: then it is half the history (so half the snapshots are labelled). The
    purge gap follows the horizon unless ``split.gap_days`` is set.

    A deal-win label capped by the history below the cycle's quantile also gets
    ``snapshots.p_win_days``, the days its p_win reaches (:func:`~forecast.features.horizon.tail_horizon`;
    ``snapshots.tail_follow_up``), and one that stops short of ``horizon_days`` gets
    ``snapshots.p_win_tail_days``, the days the small-data stage model carries its p_win on to
    (``snapshots.tail_extrapolate``).

    A deal history that holds no close before its first one although many were due
    (:func:`~forecast.features.record_start.outcome_record_start`) gets ``snapshots.first_close``
    (the training notes say so); with ``snapshots.truncated_history: read_from_first_close`` its
    snapshots, cycle, follow-up and length are read from that close on.
    """
    snap = config.snapshots
    update: dict[str, Any] = {}
    if config.entity == "opportunity" and snap.truncated_history != "off":
        record = outcome_record_start(src, data_end)  # read again at each data end (a backtest's cut)
        first = None if record is None else record.at.isoformat()
        if first != snap.first_close:
            update["first_close"] = first
            snap = snap.model_copy(update={"first_close": first})
    since = snap.read_from()
    start = pd.Timestamp(since) if since else None
    if snap.horizon_quantile is not None and config.entity == "opportunity":
        ipcw = snap.censoring == "ipcw"
        h = cycle_horizon(
            src,
            snap.horizon_quantile,
            cap_days=snap.horizon_days,
            data_end=data_end,
            of=snap.horizon_of,
            history_share=1.0 if ipcw else 0.5,
            start=start,
        )
        reach = follow_up_quantile(src, snap.ipcw_min_survival, data_end, start) if ipcw else None
        if reach is not None:
            # No snapshot's weight may need the floor: within the follow-up a share of them reach.
            h = min(h, max(7 * math.floor(reach / 7), 14))
        if not ipcw and snap.tail_follow_up is not None and config.label == WON_WITHIN:
            last_edge = float(config.survival.edges[-1])
            reach_days = tail_horizon(
                src,
                snap.horizon_quantile,
                h,
                min(float(snap.horizon_days), last_edge),
                snap.tail_follow_up,
                data_end=data_end,
                of=snap.horizon_of,
                eventual=snap.tail_to == "eventual",
                start=start,
            )
            if reach_days > h:
                update["p_win_days"] = reach_days
            # the small-data stage model's p_win is carried on to the eventual win (models.stage_incidence)
            target = int(min(float(snap.horizon_days), last_edge))
            if snap.tail_extrapolate and target > max(h, reach_days):
                update["p_win_tail_days"] = target
    else:
        table = "leads" if config.entity == "lead" else "opportunities"
        h = history_capped_horizon(src, table, snap.horizon_days, data_end=data_end, start=start)
    if h != snap.horizon_days:
        update["horizon_days"] = h
    if not update:
        return config
    return config.model_copy(update={"snapshots": snap.model_copy(update=update)})


def warehouse_input(
    warehouse: Path, config: TrainingConfig, progress: Callable[[str], None] | None = None
) -> tuple[ModelInput, FeatureTable, TrainingConfig]:
    """Build the configured snapshots from the warehouse and return the model input.

    Returns:
        The model input, its snapshot table and the config with its horizon resolved
        (:func:`resolve_horizon`).

    Raises:
        FileNotFoundError: No warehouse.
        ValueError: No entities, or an unknown label.
    """
    with warehouse_source(warehouse) as src:
        config = resolve_horizon(src, config)
        labels = LabelConfig.both(config.snapshots.horizon_days)
        table = snapshot_table(src, config, labels, progress=progress)
    return table_input(table, config.label), table, config


def snapshot_table(
    src: FeatureSource,
    config: TrainingConfig,
    labels: LabelConfig,
    *,
    data_end: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
) -> FeatureTable:
    """The training snapshots: every ``every`` days, plus one right after creation if configured.

    The creation snapshots teach the model what a brand-new record looks like (no activity yet),
    so that a lead scored the minute it arrives gets a calibrated probability.
    """
    end = data_end if data_end is not None else src.data_end()
    dates = snapshot_dates(src, config)
    table = build_feature_table(src, config.entity, dates, labels, data_end=end, progress=progress)
    if not config.snapshots.at_creation:
        return table
    born = build_feature_table(src, config.entity, AT_CREATION, labels, data_end=end).frame
    # Creation snapshots follow the same date bounds as the cadence (``from`` / ``to``), and none
    # before the record of closes starts (a deal created then is known only because it stayed open).
    first = min(dates) - parse_every(config.snapshots.every)
    since = config.snapshots.read_from()
    if since:
        first = max(first, pd.Timestamp(since))
    born = born[(born["as_of"] >= first) & (born["as_of"] <= max(dates))]
    frame = pd.concat([table.frame, born], ignore_index=True)
    table.frame = frame.sort_values(["as_of", table.id_column], kind="stable").reset_index(drop=True)
    return table


def export_input(
    path: Path,
    *,
    target: str,
    id_column: str | None = None,
    time_column: str | None = None,
    keep_columns: Sequence[str] = (),
    drop_columns: Sequence[str] = (),
    encoding: str = "utf-8",
    delimiter: str = ",",
) -> tuple[ModelInput, FlatExport, pd.DataFrame]:
    """Model input from a user's flat export (bring your own data), with the raw rows.

    The input frame carries :data:`RAW_ROW`, each row's position in the raw file, so that the
    held-out slice can be logged as raw rows (what the logged pipeline takes).
    """
    raw = read_table_file(path, required_columns=[target], encoding=encoding, delimiter=delimiter)
    unknown = [c for c in drop_columns if c not in raw.columns]
    if unknown:
        raise InputError(f"{path}: cannot drop unknown column(s) {unknown}; columns are {list(raw.columns)}")
    raw = raw.drop(columns=list(drop_columns))
    export = prepare_flat_export(
        raw, target=target, id_column=id_column, time_column=time_column, keep_columns=keep_columns
    )
    frame = export.table.assign(**{RAW_ROW: range(len(export.table))})
    features = export.feature_columns
    if not features:
        raise InputError(f"{path}: no column can be used as a feature ({_why_none(export)})")
    categorical = [c for c in features if frame[c].dtype == object]
    data = ModelInput(
        frame=frame,
        id_column=ENTITY_ID,
        label=LABEL,
        features=features,
        categorical=categorical,
        time_column=AS_OF if frame[AS_OF].notna().all() else None,
        descriptions={},
        period_features=[c for c in export.period_columns if c in features],
        source="flat_export",
    )
    return data, export, raw


def _why_none(export: FlatExport) -> str:
    """Why every column of an export was left out, per column, and what to do."""
    fixed = {export.id_column, export.target_column, export.time_column}
    left_out = [f"{r.name!r}: {r.note or r.role}" for r in export.roles if r.name not in fixed]
    leaks = [f.column for f in export.leakage if f.column not in export.kept_despite_flag]
    advice = (
        f"pass --keep-column for a flagged column you know is filled before the outcome ({leaks})"
        if leaks
        else "add columns known before the outcome (source, industry, size, activity counts…)"
    )
    return "; ".join([*left_out, advice]) if left_out else advice
