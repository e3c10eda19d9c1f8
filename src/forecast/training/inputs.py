"""What a model is trained on (:class:`ModelInput`).

Built by :mod:`forecast.training.datasets`, used by :mod:`forecast.training.binary` and
:mod:`forecast.training.survival`; a module of its own so that the datasets and the training
functions do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class ModelInput:
    """What a model is trained on.

    Attributes:
        frame: The feature table (id, optional time column, features, labels).
        id_column: Entity id column.
        label: The 0/1 label column.
        features: Feature columns, in order.
        categorical: Which of them are categorical.
        time_column: Column of as_of dates (``None`` or all-missing: no time split).
        censored: Optional column flagging rows whose label is unknown yet.
        descriptions: Plain-words meaning of each feature (for reasons and the card).
        source: ``warehouse`` (CRM snapshots) or ``flat_export`` (bring your own file).
        period_features: Features that describe when a row was recorded (a flat export's month or
            monthly rate, :mod:`forecast.features.period_columns`): with a time-ordered split the
            trees never see them, a linear prior carries them.
    """

    frame: pd.DataFrame
    id_column: str
    label: str
    features: list[str]
    categorical: list[str]
    time_column: str | None = "as_of"
    censored: str | None = None
    descriptions: dict[str, str] = field(default_factory=dict)
    period_features: list[str] = field(default_factory=list)
    source: str = "warehouse"
