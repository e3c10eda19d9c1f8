"""The training job behind ``forecast train`` and the MLflow project: data -> model -> MLflow.

The job reads its inputs, calls the pure training code and writes through the edges (MLflow, files,
the warehouse). The CLI only parses options and renders the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.config import Settings
from forecast.data.warehouse import warehouse_id
from forecast.errors import InputError
from forecast.features.flat.export import FlatExport
from forecast.features.splits import summary_test_cut
from forecast.models.config import TrainingConfig
from forecast.models.metadata import ModelMetadata
from forecast.name_rules import check_name
from forecast.registry import LoggedModel, PromotionDecision, log_trained_model, promote
from forecast.training.binary import TrainResult, train_binary
from forecast.training.card import model_card
from forecast.training.datasets import RAW_ROW, export_input, warehouse_input
from forecast.training.inputs import ModelInput
from forecast.training.survival import DURATION, train_time_to_close, within_label

Progress = Callable[[str], None]

TARGET_WORDS = {
    "label_converted": "the lead converts to an opportunity within {h} days",
    "label_won": "the deal is eventually won",
    "label_won_within_h": "the deal is won within {h} days",
    "label_lost_within_h": "the deal is lost within {h} days",
    "label_disqualified_within_h": "the lead is disqualified within {h} days",
    "label_churn": "the {e} is {lost} or goes silent (no touch at all) within {h} days",
    "label_days_to_close": "when the deal closes (won or lost): "
    "P(closes within {p} days) and its close-date distribution",
}
SCORE_NAMES = {"lead": "p_convert", "opportunity": "p_win"}
WAREHOUSE_TAG = "forecast.warehouse_id"
"""Run and model-version tag: the identity of the warehouse a model was trained on (``flat_export``
for a flat export). The scorers read the same identity from the model's metadata."""
REFERENCE_MAX_ROWS = 60_000
"""At most this many snapshot rows are logged as the monitoring reference (a seeded sample)."""


def score_name(config: TrainingConfig) -> str:
    """The probability column of a model's scores."""
    return config.score_name or SCORE_NAMES.get(config.entity, "p")


def monitoring_reference(
    frame: pd.DataFrame, splits: dict[str, Any], seed: int, max_rows: int = REFERENCE_MAX_ROWS
) -> pd.DataFrame | None:
    """The snapshot rows a model is monitored against: every row from its test cut on.

    The test slice holds only the entities first seen after the cut (young records), so it does
    not look like the population scored later; all snapshots from the cut on do (old and new
    entities, labelled or not yet). No row from the cut on trained the model. ``None`` without
    a time split.
    """
    cut = summary_test_cut(splits)
    if cut is None or "as_of" not in frame.columns:
        return None
    rows = frame[pd.to_datetime(frame["as_of"]) >= cut]
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed)
    return rows.sort_values("as_of", kind="stable").reset_index(drop=True)


def _metadata(
    config: TrainingConfig, data: ModelInput, result: TrainResult, source: str, extra: dict[str, Any]
) -> dict[str, Any]:
    """The model's metadata as MLflow stores it (:class:`~forecast.models.metadata.ModelMetadata`)."""
    return ModelMetadata(
        model_name=config.model_name,
        experiment=config.experiment,
        entity=config.entity if source == "warehouse" else "flat_export",
        source=source,
        label=data.label,
        score_name=score_name(config),
        features=data.features,
        categorical=data.categorical,
        descriptions=data.descriptions,
        bands=config.bands,
        horizon_days=config.snapshots.horizon_days,
        survival=config.survival.model_dump() if config.label == DURATION else None,
        model_kind=result.model_kind,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        data_sha256=result.data["sha256"],
        **extra,
    ).to_dict()


@dataclass(frozen=True, slots=True)
class TrainingSummary:
    """What :func:`train_model_job` did: where the model was logged, its evaluation, the promotion."""

    model_name: str
    version: str
    run_id: str
    experiment: str
    tracking_uri: str
    warnings: list[str]
    evaluation: dict[str, Any]
    """The trained model's metrics and facts as JSON-ready data (``TrainResult.summary()``:
    ``model_kind``, ``notes``, ``metrics``, ``baselines``, ``splits``, ...)."""
    horizon_days: int | None = None
    """The label horizon read from the CRM's cycle (a warehouse model; ``None``: a flat export)."""
    promotion: PromotionDecision | None = None
    """The promotion gate's decision, when it was applied."""

    @property
    def model_kind(self) -> str:
        """The kind of model trained."""
        return str(self.evaluation["model_kind"])

    @property
    def notes(self) -> list[str]:
        """Notes on the training (small data, a family's fallback, ...)."""
        return list(self.evaluation["notes"])

    @property
    def metrics(self) -> dict[str, Any]:
        """The model's metrics on the test slice."""
        return dict(self.evaluation["metrics"])

    @property
    def baselines(self) -> dict[str, dict[str, Any]]:
        """Each baseline's metrics on the test slice."""
        return dict(self.evaluation["baselines"])

    @property
    def splits(self) -> dict[str, Any]:
        """How the rows were split (method, gap, rows per part)."""
        return dict(self.evaluation.get("splits") or {})

    def to_dict(self) -> dict[str, Any]:
        """The summary as ``--json`` prints it."""
        out: dict[str, Any] = {
            "ok": True,
            "model_name": self.model_name,
            "version": self.version,
            "run_id": self.run_id,
            "experiment": self.experiment,
            "tracking_uri": self.tracking_uri,
            "warnings": self.warnings,
            **self.evaluation,
        }
        if self.horizon_days is not None:
            out["horizon_days"] = self.horizon_days
        if self.promotion is not None:
            out["promotion"] = self.promotion.as_dict()
        return out


@dataclass
class _Input:
    """What a model is trained on, and the words and metadata that describe its source."""

    data: ModelInput
    config: TrainingConfig
    source: str
    """``warehouse`` or ``flat_export``."""
    source_words: str
    target_words: str
    extra: dict[str, Any]
    """Metadata of the source (the warehouse's identity, or the export's preparation)."""
    warnings: list[str] = field(default_factory=list)
    export: FlatExport | None = None
    raw: pd.DataFrame | None = None
    """A flat export's rows as read."""


def train_model_job(
    settings: Settings,
    config: TrainingConfig,
    *,
    table: Path | None = None,
    target: str | None = None,
    id_column: str | None = None,
    time_column: str | None = None,
    keep_columns: Sequence[str] = (),
    drop_columns: Sequence[str] = (),
    encoding: str = "utf-8",
    delimiter: str = ",",
    promote_after: bool = False,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
) -> TrainingSummary:
    """Train a binary model on the warehouse snapshots (or a flat export), log it, maybe promote it.

    ``tags`` are added to the training run (``forecast retrain`` marks its runs).

    Returns:
        The summary (:class:`TrainingSummary`): metrics of the model and the baselines, where it was
        logged, the promotion decision, and notes.
    """
    check_name(config.model_name)
    check_name(config.experiment, "experiment")
    say = progress or (lambda _m: None)
    if table is not None:
        if not target:
            raise InputError("is required to train on a table: name its outcome column", parameter="target")
        say("reading the export")
        found = _export_input(
            config,
            table,
            target=target,
            id_column=id_column,
            time_column=time_column,
            keep_columns=keep_columns,
            drop_columns=drop_columns,
            encoding=encoding,
            delimiter=delimiter,
        )
    else:
        found = _warehouse_input(settings, config, say)
    say("training")
    result = _fit(found, flat=table is not None)
    logged = _log(settings, found, result, tags, say)
    config = found.config
    promotion = None
    if promote_after:
        say("promotion gate")
        promotion = promote(config.model_name, settings, max_auc_drop=config.promotion.max_auc_drop)
    return TrainingSummary(
        model_name=config.model_name,
        version=logged.version,
        run_id=logged.run_id,
        experiment=logged.experiment,
        tracking_uri=settings.mlflow_tracking_uri,
        warnings=found.warnings,
        evaluation=result.summary(),
        horizon_days=config.snapshots.horizon_days if found.source == "warehouse" else None,
        promotion=promotion,
    )


def _export_input(config: TrainingConfig, table: Path, *, target: str, **options: Any) -> _Input:
    """The model input of a flat export (``options``: :func:`export_input`'s)."""
    data, export, raw = export_input(table, target=target, **options)
    if config.split.gap_days is None:  # a flat export's target is an outcome, not a horizon
        config = config.model_copy(update={"split": config.split.model_copy(update={"gap_days": 0.0})})
    return _Input(
        data=data,
        config=config,
        source="flat_export",
        source_words=f"flat export {table.name} "
        f"(target column {export.target_column!r}, positive = {export.positive_label!r})",
        target_words=f"{export.target_column} is {export.positive_label!r}",
        extra={
            "flat_spec": export.preparer_spec(),
            "id_column": export.id_column,
            "target_column": export.target_column,
        },
        warnings=list(export.warnings),
        export=export,
        raw=raw,
    )


def _warehouse_input(settings: Settings, config: TrainingConfig, say: Progress) -> _Input:
    """The model input of the warehouse's snapshots (the config's horizon read from the CRM's cycle)."""
    extra = {
        "warehouse_id": warehouse_id(settings.warehouse),
        "warehouse": str(settings.warehouse.resolve()),
    }
    say("building snapshots")
    data, _table, config = warehouse_input(settings.warehouse, config, progress=say)
    target_words = TARGET_WORDS.get(config.label, config.label).format(
        h=config.snapshots.horizon_days,
        p=int(config.survival.proba_days),
        e="deal" if config.entity == "opportunity" else "lead",
        lost="lost" if config.entity == "opportunity" else "disqualified",
    )
    return _Input(
        data=data,
        config=config,
        source="warehouse",
        source_words=f"warehouse {settings.warehouse}, "
        f"{config.entity} snapshots every {config.snapshots.every}",
        target_words=target_words,
        extra=extra,
    )


def _fit(found: _Input, *, flat: bool) -> TrainResult:
    """Train the model of ``found.config`` (pure): a time-to-close model or a binary one."""
    data, config = found.data, found.config
    if config.label == DURATION:
        if flat:
            raise InputError("time-to-close trains on the warehouse's deal snapshots, not on --table")
        result = train_time_to_close(data, config)
        data.label = within_label(config.survival.proba_days)
        return result
    return train_binary(data, config)


def _log(
    settings: Settings, found: _Input, result: TrainResult, tags: dict[str, str] | None, say: Progress
) -> LoggedModel:
    """Log the trained model, its card and (a warehouse model) its monitoring reference to MLflow.

    A flat export's logged model takes the export's raw columns: its first step re-applies the
    preparation, and its test slice is logged as raw rows.
    """
    data, config, source = found.data, found.config, found.source
    input_columns = data.features
    logged_pipeline: Pipeline | None = None
    test_slice = result.test_frame
    if found.export is not None and found.raw is not None:
        export, raw = found.export, found.raw
        logged_pipeline = Pipeline([("prepare", export.preparer()), *result.pipeline.steps])
        if result.eval_pipeline is not None:
            result.eval_pipeline = Pipeline([("prepare", export.preparer()), *result.eval_pipeline.steps])
        input_columns = [c for c in raw.columns if c != export.target_column]
        test_slice = raw.iloc[result.test_frame[RAW_ROW].to_numpy()].reset_index(drop=True)
        test_slice[data.label] = result.test_frame[data.label].to_numpy()
    card = model_card(
        config.model_name,
        None,
        result,
        config,
        target_words=found.target_words,
        source_words=found.source_words,
        score_name=score_name(config),
    )
    reference = (
        monitoring_reference(data.frame, result.splits, config.seed) if source == "warehouse" else None
    )
    say("logging to MLflow")
    if logged_pipeline is not None:
        result.pipeline = logged_pipeline
        result.test_frame = test_slice
    return log_trained_model(
        result,
        settings=settings,
        model_name=config.model_name,
        experiment=config.experiment,
        params={**config.model_dump(by_alias=True), **result.params},
        card=card,
        metadata=_metadata(config, data, result, source, found.extra),
        input_columns=input_columns,
        tags={"source": source, WAREHOUSE_TAG: found.extra.get("warehouse_id") or source, **(tags or {})},
        reference=reference,
    )
