"""The metadata logged with every model (MLflow's ``MLmodel`` file): one typed description.

``training.job.train_model_job`` writes it through :meth:`ModelMetadata.to_dict`; the registry parses it
once when it loads a model (``LoadedModel.meta``), so scoring, serving, flags, monitoring and the
revenue forecast read attributes with one default each instead of ``dict.get`` with their own.
Unknown keys are kept (``extra="allow"``) and every field has a default, so models logged by
older or newer versions still load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from forecast.models.config import DEFAULT_BANDS, SnapshotSettings

HORIZON_FALLBACK_DAYS: int = SnapshotSettings.model_fields["horizon_days"].default
"""Label horizon of a model whose metadata lacks one. Every run since the first has written its
resolved horizon, so this only reads a registry entry made by hand; it is what a config without
``horizon_days`` would have written (90 days)."""


class ModelMetadata(BaseModel):
    """What a logged model says about itself.

    Attributes:
        model_name: Registered model name (``forecast.models.names``).
        experiment: MLflow experiment of its training run.
        entity: ``lead`` or ``opportunity`` (warehouse snapshots), ``flat_export`` otherwise.
        source: ``warehouse`` or ``flat_export`` (``None``: not recorded).
        label: The label column it learned (time to close: its "closes within d days" column).
        score_name: Name of its probability column (``p_convert``, ``p_win``, ...).
        features: Input feature columns, in order.
        categorical: The categorical ones among them.
        descriptions: Words for each feature (reason codes).
        bands: Lower probability bound of bands A, B and C (empty or missing: the defaults).
        horizon_days: Resolved label horizon in days (missing: :data:`HORIZON_FALLBACK_DAYS`).
        survival: Survival settings of a time-to-close model (edges, proba_days, ...), else ``None``.
        model_kind: ``lightgbm`` or the fallback that was served instead.
        trained_at: ISO time of training (UTC).
        data_sha256: Hash of the training rows.
        flat_spec: Preparation of a flat export (its ``FlatExportPreparer`` spec).
        id_column: Id column of a flat export.
        target_column: Target column of a flat export.
        warehouse_id: Identity of the warehouse it was trained on (``None``: a flat export, or a
            model logged before identities were recorded).
        warehouse: Path of that warehouse at training time (for messages only; the identity decides).
    """

    model_config = ConfigDict(extra="allow")

    model_name: str | None = None
    experiment: str | None = None
    entity: str | None = None
    source: str | None = None
    label: str = ""
    score_name: str = "p"
    features: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    descriptions: dict[str, str] = Field(default_factory=dict)
    bands: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_BANDS))
    horizon_days: int = HORIZON_FALLBACK_DAYS
    survival: dict[str, Any] | None = None
    model_kind: str | None = None
    trained_at: str | None = None
    data_sha256: str | None = None
    flat_spec: dict[str, Any] | None = None
    id_column: str | None = None
    target_column: str | None = None
    warehouse_id: str | None = None
    warehouse: str | None = None

    @field_validator("features", "categorical", "descriptions", "label", mode="before")
    @classmethod
    def _empty_when_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            return value
        return "" if info.field_name == "label" else ({} if info.field_name == "descriptions" else [])

    @field_validator("bands", mode="before")
    @classmethod
    def _default_bands(cls, value: Any) -> Any:
        return value or dict(DEFAULT_BANDS)

    @field_validator("horizon_days", mode="before")
    @classmethod
    def _default_horizon(cls, value: Any) -> Any:
        return HORIZON_FALLBACK_DAYS if value is None else int(value)  # as the readers did: whole days

    @field_validator("score_name", mode="before")
    @classmethod
    def _default_score_name(cls, value: Any) -> Any:
        return "p" if value is None else value

    @field_validator("survival", mode="before")
    @classmethod
    def _no_empty_survival(cls, value: Any) -> Any:
        return value or None

    @classmethod
    def from_dict(cls, metadata: Mapping[str, Any] | None) -> ModelMetadata:
        """Parse the metadata of a logged model (``None`` or ``{}``: every default)."""
        return cls.model_validate(dict(metadata or {}))

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict MLflow stores: the fields that were set, and any extra keys."""
        return self.model_dump(exclude_unset=True)

    @property
    def is_warehouse(self) -> bool:
        """Whether the model was trained on warehouse snapshots (not a flat export)."""
        return self.source == "warehouse"

    @property
    def survival_edges(self) -> list[float]:
        """The interval edges (days) of a time-to-close model; ``[]`` for any other model."""
        return [float(e) for e in (self.survival or {}).get("edges") or []]
