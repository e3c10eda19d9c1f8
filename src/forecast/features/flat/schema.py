"""The feature table's contract: reserved column names, suffixes of derived columns and column roles.

Shared by every step of the flat-export path (:mod:`forecast.features.tabular` re-exports it).
"""

from __future__ import annotations

from typing import Literal

from forecast.categories import OTHER

ENTITY_ID = "entity_id"
"""Name of the id column in the feature table (as in the warehouse snapshots)."""
AS_OF = "as_of"
LABEL = "label_target"
ROW_ID = "row_id"
"""Name given to the 1-based row number when the export has no id column."""
MISSING_KIND_SUFFIX = "__missing_kind"
DAYS_BEFORE_SUFFIX = "__days_before_as_of"
OTHER_LEVEL = OTHER
"""Pooled level of rare values (owned by :mod:`forecast.categories`)."""
PRESENT = "present"
Role = Literal["id", "target", "time", "numeric", "categorical", "boolean", "datetime", "text", "constant"]
FEATURE_ROLES: frozenset[str] = frozenset({"numeric", "categorical", "boolean", "datetime"})


def source_of(feature: str) -> str:
    """The input column a feature column was made from (its name without a derived-column suffix)."""
    for suffix in (MISSING_KIND_SUFFIX, DAYS_BEFORE_SUFFIX):
        if feature.endswith(suffix):
            return feature[: -len(suffix)]
    return feature
