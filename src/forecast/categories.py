"""The one pooled level shared by every step that handles categorical values.

Rare and unseen values of a categorical column are pooled into :data:`OTHER`. Two steps may pool:
the flat-export preparer (:mod:`forecast.features.tabular`, levels under max(5, 1% of rows)) and the
pipeline's :class:`~forecast.models.pipeline.CategoryEncoder` (levels under ``min_count`` rows of the
training slice). The encoder owns the categories a model sees: :data:`OTHER` is a reserved level it
always appends exactly once, and values already pooled upstream simply land in it. Nothing else may
add :data:`OTHER` to a category list.
"""

from __future__ import annotations

OTHER = "__other__"
"""The pooled level of rare and unseen categorical values."""
