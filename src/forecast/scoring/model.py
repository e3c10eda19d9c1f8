"""What scoring reads of a loaded model: name, version, pipeline and typed metadata.

:class:`forecast.registry.LoadedModel` is one (scoring never imports the registry, which is MLflow's
edge); a test or a benchmark may pass any object with these attributes.
"""

from __future__ import annotations

from typing import Protocol

from sklearn.pipeline import Pipeline

from forecast.models.metadata import ModelMetadata


class ScoringModel(Protocol):
    """A fitted pipeline with its name, version and metadata (as :class:`~forecast.registry.LoadedModel`)."""

    @property
    def name(self) -> str:
        """The registered model's name."""

    @property
    def version(self) -> str:
        """Its version in the registry."""

    @property
    def pipeline(self) -> Pipeline:
        """The fitted sklearn pipeline (raw feature columns in, probabilities out)."""

    @property
    def meta(self) -> ModelMetadata:
        """What the model says about itself (features, bands, descriptions, ...)."""
