"""Evidently at the edge: the drift and data-summary report, and the classification-quality report.

Evidently is imported inside the functions (it takes seconds to import). Both frames must be typed
first (:func:`forecast.monitoring.frames.typed_features`): numbers as floats, categories as text.
Evidently 0.7's ``Report.run`` is called with keywords (``current_data=…, reference_data=…``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecast.monitoring.policy import DriftPolicy

PREDICTION = "prediction"
"""Column of the predicted probability in the frames given to Evidently."""
TARGET = "target"
"""Column of the 0/1 outcome in the frames given to the classification report."""


@dataclass
class DriftResult:
    """What the drift report found.

    Attributes:
        scores: Drift score of every feature (Evidently's method per kind).
        drifted: Score of each drifted feature, worst first.
        methods: The method Evidently used per feature.
        prediction_drift: Drift score of the predicted probability.
        prediction_drifted: Whether Evidently calls that drift.
        html: The Evidently report (drift and data summary) as a standalone HTML page.
        evidently: The report's metrics and tests as JSON-ready data.
    """

    scores: dict[str, float]
    drifted: dict[str, float]
    methods: dict[str, str]
    prediction_drift: float | None
    prediction_drifted: bool
    html: str
    evidently: dict[str, Any] = field(repr=False)


def _jsonable(data: Any) -> Any:
    """Evidently's dict holds numpy numbers and enums: round-trip it through JSON."""
    return json.loads(json.dumps(data, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)))


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    features: list[str],
    categorical: list[str],
    policy: DriftPolicy,
    summary: bool = True,
) -> DriftResult:
    """Run Evidently's data drift (features and prediction) and data summary on two frames.

    Args:
        reference: Typed features and :data:`PREDICTION` of the reference rows.
        current: The same for the current rows.
        features: Feature columns to check.
        categorical: Which of them are categorical.
        policy: Drift methods and thresholds.
        summary: Also add Evidently's data summary (column statistics) to the HTML.

    Returns:
        Scores, the drifted features and the report.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    numeric = [f for f in features if f not in categorical]
    definition = DataDefinition(
        numerical_columns=[*numeric, PREDICTION],
        categorical_columns=[f for f in features if f in categorical],
    )
    metrics: list[Any] = [
        DataDriftPreset(
            columns=features,
            num_method=policy.num_method,
            num_threshold=policy.num_threshold,
            cat_method=policy.cat_method,
            cat_threshold=policy.cat_threshold,
        ),
        ValueDrift(column=PREDICTION, method=policy.prediction_method),
    ]
    if summary:
        # With include_tests=False Evidently 0.7.23 fails to render categorical columns (KeyError);
        # its tests (derived from the reference, e.g. row count within 10%) are shown, not used.
        metrics.append(DataSummaryPreset(columns=features))
    columns = [*features, PREDICTION]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's divide-by-zero on empty bins, pandas' future warnings
        snapshot = Report(metrics, include_tests=True).run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        html = snapshot.get_html_str(as_iframe=False)
        raw = snapshot.dict()
    data = _jsonable(raw)
    scores: dict[str, float] = {}
    methods: dict[str, str] = {}
    for metric in data["metrics"]:
        config = metric.get("config") or {}
        if config.get("type", "").endswith("ValueDrift"):
            value = metric.get("value")
            scores[str(config["column"])] = float(value) if value is not None else float("nan")
            methods[str(config["column"])] = str(config.get("method"))
    failed = set()
    for test in data["tests"]:
        params = (test.get("metric_config") or {}).get("params") or {}
        if str(params.get("type", "")).endswith("ValueDrift") and str(test.get("status")).endswith("FAIL"):
            failed.add(str(params.get("column")))
    drifted = {f: scores[f] for f in features if f in failed and f in scores}
    drifted = dict(sorted(drifted.items(), key=lambda kv: -_finite(kv[1])))
    prediction = scores.pop(PREDICTION, None)
    methods.pop(PREDICTION, None)
    return DriftResult(
        scores={f: scores[f] for f in features if f in scores},
        drifted=drifted,
        methods=methods,
        prediction_drift=prediction,
        prediction_drifted=PREDICTION in failed,
        html=html,
        evidently=data,
    )


def _finite(value: float) -> float:
    return value if np.isfinite(value) else 1e9


def classification_report(reference: pd.DataFrame, current: pd.DataFrame) -> tuple[str, dict[str, Any]]:
    """Evidently's classification quality on the rows whose outcome is known.

    Args:
        reference: :data:`TARGET` (0/1) and :data:`PREDICTION` (probability) of the reference rows.
        current: The same for the current rows.

    Returns:
        The HTML page and the metrics as JSON-ready data.
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    definition = DataDefinition(
        classification=[BinaryClassification(target=TARGET, prediction_probas=PREDICTION)],
        numerical_columns=[PREDICTION],
        categorical_columns=[TARGET],
    )
    columns = [TARGET, PREDICTION]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([ClassificationPreset()]).run(
            current_data=Dataset.from_pandas(current[columns], data_definition=definition),
            reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        html = snapshot.get_html_str(as_iframe=False)
        raw = snapshot.dict()
    return html, _jsonable(raw)
