"""The feature catalogue: every feature's name, family and meaning in a sales manager's words.

Reason codes (why a score is high or low) and ``docs/features.md`` are built from these texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FeatureKind = Literal["numeric", "categorical", "boolean"]


@dataclass(frozen=True)
class Feature:
    """One feature.

    Attributes:
        name: Column name in the feature table.
        family: Feature family (``activity``, ``engagement``, ``stage``, ``rep``, ``account``, ``profile``).
        description: What it measures, in plain words ("calls in the last 7 days").
        kind: How models treat it.
    """

    name: str
    family: str
    description: str
    kind: FeatureKind = "numeric"


def catalogue_frame(features: list[Feature]) -> list[dict[str, str]]:
    """The catalogue as records (for JSON and documentation)."""
    return [
        {"name": f.name, "family": f.family, "kind": f.kind, "description": f.description} for f in features
    ]
