"""Our own quality and calibration figures (Evidently has no Brier score, ECE or reliability table).

Thin over :mod:`forecast.evaluate`, so monitoring measures exactly what training reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from forecast.evaluate import classification_metrics, decile_table, reliability_table


@dataclass
class Quality:
    """Quality of probabilities on rows whose outcome is known.

    Attributes:
        metrics: ROC-AUC, PR-AUC, Brier, log loss, ECE, base rate, n, positives, and ``mean_p``.
        deciles: Reliability by decile of score: mean predicted against observed rate per tenth.
        reliability: Reliability by equal-width score bin (the bins of the ECE).
    """

    metrics: dict[str, float]
    deciles: pd.DataFrame
    reliability: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (NaN as ``None``)."""
        return {
            "metrics": {k: (None if not np.isfinite(v) else round(v, 6)) for k, v in self.metrics.items()},
            "deciles": self.deciles.round(6).to_dict("records"),
            "reliability": self.reliability.round(6).to_dict("records"),
        }


def quality(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> Quality:
    """Discrimination and calibration of ``p`` against the outcomes ``y``."""
    metrics = classification_metrics(y, p)
    metrics["mean_p"] = float(np.mean(p))
    return Quality(metrics, decile_table(y, p), reliability_table(y, p, n_bins))


def judgeable(y: np.ndarray, min_rows: int, min_positives: int) -> str | None:
    """Why quality cannot be judged on these outcomes, or ``None`` when it can."""
    n, positives = len(y), int(np.sum(y))
    if n < min_rows:
        return f"only {n} rows have outcomes (at least {min_rows} needed)"
    if min(positives, n - positives) < min_positives:
        return (
            f"only {min(positives, n - positives)} rows of the rarer outcome "
            f"(at least {min_positives} needed)"
        )
    return None
