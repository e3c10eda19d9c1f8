"""Categorical values a fitted pipeline never saw in training, said out loud.

A :class:`~forecast.models.pipeline.CategoryEncoder` scores a value it never saw as a missing
level, silently: ``stage="bogus_stage"`` gets the same probability as no stage at all. The functions
here name those values so that the API and the batch jobs can warn about them (and the deal routes
refuse an unknown stage).

What the encoder saw is ``levels_`` (frequent values, plus the pooled
:data:`~forecast.categories.OTHER`) together with ``rare_`` (every other training value, pooled
into :data:`~forecast.categories.OTHER` when scored): together every non-missing training value,
for every model fitted so far, so no new fitted attribute is needed and old models answer too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forecast.categories import OTHER
from forecast.errors import truncate
from forecast.models.pipeline import CategoryEncoder

MAX_LISTED = 20
"""Most known values :func:`known_values_text` lists before ``…``."""


def category_encoder(pipeline_or_encoder: Any) -> CategoryEncoder | None:
    """The fitted category encoder of a pipeline (its first one), or the encoder itself.

    Args:
        pipeline_or_encoder: A fitted sklearn ``Pipeline``, or a :class:`CategoryEncoder`.

    Returns:
        The encoder, or ``None`` when the pipeline has no fitted one (nothing to compare with).
    """
    encoder: CategoryEncoder | None
    if isinstance(pipeline_or_encoder, CategoryEncoder):
        encoder = pipeline_or_encoder
    else:
        steps = getattr(pipeline_or_encoder, "steps", None) or []
        encoder = next((step for _, step in steps if isinstance(step, CategoryEncoder)), None)
    if encoder is None or not hasattr(encoder, "levels_"):
        return None
    return encoder


def seen_values(pipeline_or_encoder: Any, column: str) -> frozenset[str] | None:
    """Every value of ``column`` seen in training (pooled ones included), or ``None``.

    ``None`` means the model does not encode ``column`` as a category (nothing is unseen).
    """
    encoder = category_encoder(pipeline_or_encoder)
    if encoder is None or column not in encoder.levels_:
        return None
    return frozenset(encoder._code_maps()[column])


def known_values(pipeline_or_encoder: Any, column: str) -> list[str] | None:
    """The training values of ``column`` a client may send, sorted (the pooled level left out)."""
    seen = seen_values(pipeline_or_encoder, column)
    return None if seen is None else sorted(seen - {OTHER})


def known_values_text(values: list[str], limit: int = MAX_LISTED) -> str:
    """``'a', 'b', …`` with at most ``limit`` values (and how many more), each bounded."""
    shown = ", ".join(repr(truncate(v, 60)) for v in values[:limit])
    more = len(values) - limit
    return shown + (f", … ({more} more)" if more > 0 else "")


def unseen_values(pipeline_or_encoder: Any, frame: pd.DataFrame) -> list[list[tuple[str, str]]]:
    """Per row of ``frame``, the ``(column, value)`` pairs of categorical values never seen in training.

    Values are compared as the encoder looks them up (text as is, anything else as ``str``);
    missing values are not unseen. Columns the model does not encode, or ``frame`` lacks, are
    skipped.

    Args:
        pipeline_or_encoder: A fitted pipeline or :class:`CategoryEncoder`.
        frame: Raw rows, as the pipeline takes them.

    Returns:
        One list per row (empty when every value was seen), columns in the encoder's order.
    """
    out: list[list[tuple[str, str]]] = [[] for _ in range(len(frame))]
    encoder = category_encoder(pipeline_or_encoder)
    if encoder is None or not len(frame):
        return out
    maps = encoder._code_maps()
    for column, mapping in maps.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if isinstance(values, pd.DataFrame):  # duplicated labels: the first wins, as in encode
            values = values.iloc[:, 0]
        if len(frame) <= _FEW:  # value by value: the same test without a Series per step
            for row, value in enumerate(values.to_numpy()):
                if not _missing(value) and (value if isinstance(value, str) else str(value)) not in mapping:
                    out[row].append((column, str(value)))
            continue
        present = values.notna().to_numpy()
        if not present.any():
            continue
        text = values[present].astype(object).map(lambda v: v if isinstance(v, str) else str(v))
        unseen = ~text.isin(mapping.keys()).to_numpy()
        rows = np.flatnonzero(present)[unseen]
        for row, value in zip(rows, text.to_numpy()[unseen], strict=True):
            out[row].append((column, str(value)))
    return out


_FEW = 64
"""Frames of at most this many rows are checked value by value (an API request's records)."""


def _missing(value: object) -> bool:
    """What ``Series.notna`` calls missing, for one value."""
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):  # list-like values are not missing
        return False


def unseen_warning(column: str, value: str) -> str:
    """The warning of one unseen value (the value bounded, never echoed whole)."""
    return f"{column} {truncate(value, 60)!r} was never seen in training; scored as an unknown level"


def unseen_warnings(pipeline_or_encoder: Any, frame: pd.DataFrame) -> list[list[str]]:
    """:func:`unseen_values` as warning texts, per row."""
    return [[unseen_warning(c, v) for c, v in row] for row in unseen_values(pipeline_or_encoder, frame)]
