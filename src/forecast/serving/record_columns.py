"""A request's records as numpy columns: what ``serving.scoring.records_frame`` holds, without the frame.

A request scores a few records; building, indexing and slicing a DataFrame of them cost more than
the model (about 0.5 ms of a 2 ms request). :class:`RecordColumns` keeps the same values in two
blocks (numbers and booleans as float64, categories as text objects) and gives what the scorers
read: a column's values (``frame[name].to_numpy()``), its wording kind, the encoded float matrix a
fitted pipeline's array path takes (:meth:`forecast.models.pipeline.CategoryEncoder.encode` of the
frame, value for value) and the unseen-category warnings. Tests compare each with the frame's.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from forecast.features.build import ID_COLUMN, Entity, feature_catalogue
from forecast.models.pipeline import CategoryEncoder, _category_codes
from forecast.models.unseen import category_encoder, unseen_warning
from forecast.timeutil import to_utc_naive


def moment(value: datetime | None, default: pd.Timestamp) -> pd.Timestamp:
    """A request's moment as a zone-less UTC timestamp (``default`` when not sent)."""
    if value is None:
        return default
    return to_utc_naive(value)


@cache
def catalogue_kinds(entity: Entity) -> tuple[list[str], list[str]]:
    """Numeric (and boolean) feature names, and categorical ones, of ``entity``'s catalogue."""
    catalogue = feature_catalogue(entity)
    return (
        [f.name for f in catalogue if f.kind != "categorical"],
        [f.name for f in catalogue if f.kind == "categorical"],
    )


@cache
def _positions(entity: Entity) -> dict[str, tuple[bool, int]]:
    """Per catalogue feature: whether it is text, and its column in its block."""
    numeric, categorical = catalogue_kinds(entity)
    out = {name: (False, i) for i, name in enumerate(numeric)}
    out.update({name: (True, i) for i, name in enumerate(categorical)})
    return out


class RecordColumns:
    """The records of one request as columns (see the module docstring).

    Args:
        records: The validated records (pydantic models of the entity's record model).
        entity: ``lead`` or ``opportunity``.
        now: The moment of a record that sends no ``as_of``.
    """

    def __init__(self, records: Sequence[BaseModel], entity: Entity, now: pd.Timestamp) -> None:
        self.entity: Entity = entity
        self.id_column = ID_COLUMN[entity]
        numeric, categorical = catalogue_kinds(entity)
        rows = [r.__dict__ for r in records]
        n = len(rows)
        self.ids = [row[self.id_column] for row in rows]
        self.moments = [moment(row.get("as_of"), now) for row in rows]
        # as records_frame builds its two blocks: booleans become 1.0 / 0.0, missing values nan / None
        self.numbers = np.array([[row.get(c) for c in numeric] for row in rows], dtype=np.float64).reshape(
            n, len(numeric)
        )
        self.texts = np.array([[row.get(c) for c in categorical] for row in rows], dtype=object).reshape(
            n, len(categorical)
        )
        self._where = _positions(entity)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def names(self) -> list[str]:
        """Every column of the records' frame: the id, ``as_of``, then the catalogue's features."""
        numeric, categorical = catalogue_kinds(self.entity)
        return [self.id_column, "as_of", *numeric, *categorical]

    def has_features(self, columns: Sequence[str]) -> bool:
        """Whether every one of ``columns`` is a catalogue feature (not the id, ``as_of`` or unknown)."""
        return all(c in self._where for c in columns)

    def values(self, name: str) -> np.ndarray:
        """A feature's values, as ``frame[name].to_numpy()`` (float64, or text objects)."""
        text, i = self._where[name]
        return self.texts[:, i] if text else self.numbers[:, i]

    def kind(self, name: str) -> str | None:
        """A feature's kind for the wording as read from the frame's dtype (``categorical`` for text)."""
        return "categorical" if self._where[name][0] else None

    def as_of_ns(self) -> np.ndarray:
        """The records' moments as ``datetime64[ns]`` (the frame's ``as_of`` column)."""
        return np.array([m.value for m in self.moments], dtype=np.int64).view("datetime64[ns]")

    def encode(self, encoder: CategoryEncoder, columns: Sequence[str]) -> np.ndarray:
        """``encoder.encode(frame, columns)`` of the records' frame (all ``columns`` catalogue features).

        Codes of a column the encoder maps come from the same lookup on the same values (the
        frame's objects: text, or the numbers as Python floats); other numbers are the float64
        values (gathered at once); a text column the encoder does not map is parsed as
        ``pd.to_numeric`` parses it.
        """
        plan = _plan(encoder, self.entity, tuple(columns))
        maps = encoder._code_maps()
        out = np.empty((len(self), len(columns)), dtype=np.float64)
        out[:, plan.plain_out] = self.numbers[:, plan.plain_in]
        for j, name, text, i in plan.mapped:
            column = self.texts[:, i] if text else self.numbers[:, i].astype(object)
            out[:, j] = _category_codes(column, maps[name])
        for j, i in plan.parsed:
            out[:, j] = (
                pd.to_numeric(pd.Series(self.texts[:, i]), errors="coerce").astype("float64").to_numpy()
            )
        return out

    def unseen_warnings(self, pipeline: Any, columns: Sequence[str]) -> list[list[str]]:
        """:func:`forecast.models.unseen.unseen_warnings` of the frame's ``columns``, per record."""
        out: list[list[str]] = [[] for _ in range(len(self))]
        encoder = category_encoder(pipeline)
        if encoder is None or not len(self):
            return out
        present = set(columns)
        for column, mapping in encoder._code_maps().items():
            if column not in present:
                continue
            for row, value in enumerate(self.values(column)):
                if not _missing(value) and (value if isinstance(value, str) else str(value)) not in mapping:
                    out[row].append(unseen_warning(column, str(value)))
        return out


@dataclass(frozen=True)
class _Plan:
    """Where each encoded column comes from (see :meth:`RecordColumns.encode`)."""

    plain_out: np.ndarray
    """Encoded columns that are the numbers block's values, and (``plain_in``) their block columns."""
    plain_in: np.ndarray
    mapped: list[tuple[int, str, bool, int]]
    """Encoded column, name, whether text, block column: codes looked up in the encoder's map."""
    parsed: list[tuple[int, int]]
    """Encoded column, text block column: text the encoder does not map, parsed as numbers."""


_PLANS: weakref.WeakKeyDictionary[CategoryEncoder, dict[tuple[Any, ...], _Plan]] = weakref.WeakKeyDictionary()


def _plan(encoder: CategoryEncoder, entity: Entity, columns: tuple[str, ...]) -> _Plan:
    """The encoding plan of ``columns`` of ``entity``'s records for a fitted encoder (made once)."""
    plans = _PLANS.setdefault(encoder, {})
    key = (entity, columns, id(encoder.__dict__.get("levels_")))
    plan = plans.get(key)
    if plan is None:
        maps, where = encoder._code_maps(), _positions(entity)
        plain = [(j, where[c][1]) for j, c in enumerate(columns) if c not in maps and not where[c][0]]
        plan = _Plan(
            np.array([j for j, _ in plain], dtype=np.intp),
            np.array([i for _, i in plain], dtype=np.intp),
            [(j, c, *where[c]) for j, c in enumerate(columns) if c in maps],
            [(j, where[c][1]) for j, c in enumerate(columns) if c not in maps and where[c][0]],
        )
        plans[key] = plan
    return plan


def _missing(value: object) -> bool:
    """What ``Series.notna`` calls missing, for one value."""
    try:
        return bool(pd.isna(value))  # type: ignore[call-overload]
    except (TypeError, ValueError):  # list-like values are not missing
        return False
