"""What scoring returns: the scores of the scoreable rows, the rejects of the others, warnings.

Every input row ends up in the scores or in the rejects (one record per broken rule, columns
:data:`REJECT_COLUMNS`); the ``warnings`` column names the categorical values a model never saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast.models.unseen import unseen_warnings

REJECT_COLUMNS = ["source_row", "id", "column", "rule", "value", "message"]


@dataclass
class Scored:
    """Scores of the scoreable rows and the rejects of the others."""

    scores: pd.DataFrame
    rejects: pd.DataFrame
    rows_in: int
    features: pd.DataFrame | None = None
    """The model input of the scored rows, aligned with ``scores`` (for a second model)."""


def warnings_column(pipeline: Any, features: pd.DataFrame) -> np.ndarray:
    """Per row, the categorical values ``pipeline`` never saw in training, as one text (``""`` when none).

    Each value is one warning (:func:`forecast.models.unseen.unseen_warning`), joined by ``"; "``.
    """
    texts = ["; ".join(row) for row in unseen_warnings(pipeline, features)]
    return np.asarray(texts, dtype=object)


def empty_rejects() -> pd.DataFrame:
    """No rejects, with the columns (and the ``source_row`` type) of rejects."""
    return pd.DataFrame(
        {c: pd.Series(dtype="int64" if c == "source_row" else object) for c in REJECT_COLUMNS}
    )
