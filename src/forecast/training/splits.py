"""The evaluation's two parts: the rows an evaluation model is fitted on and the test slice.

:func:`evaluation_split` cuts them for every model (:mod:`forecast.training.binary`,
:mod:`forecast.training.survival`): by time where there are dates (whole entities per part, a purge
gap before the test slice, shortened on a short history), else stratified or by row order.
:func:`check_part_sizes` refuses parts too small to fit or judge a model on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from forecast.errors import InputError, InsufficientDataError
from forecast.features.splits import time_splits
from forecast.models.config import TrainingConfig
from forecast.training.inputs import ModelInput


def evaluation_split(
    data: ModelInput, frame: pd.DataFrame, config: TrainingConfig, enough_to_fit: bool = True
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Fitting and test positions, and how they were made.

    With dates: the test slice holds the entities first seen at or after the test cut
    (:func:`~forecast.features.splits.time_splits`), the fitting rows every row of the other
    entities dated before the cut minus the purge gap (default: the label horizon), so every
    fitting label was known at the cut. When that leaves a part empty or with one class although
    the labelled rows hold both (a short history: the gap swallows it), the gap is shortened step
    by step down to 0, then whole entities are split at random (stratified); the summary's
    ``note`` says which, and why the evaluation may be optimistic. With ``enough_to_fit`` the gap is
    also shortened while the fitting rows are fewer than the small-data sufficiency threshold
    (:func:`_too_few_to_fit`). Without dates: stratified or by row order, as configured
    (``split.method``: ``order``, ``random`` or ``stratified`` ignore dates).

    Args:
        data: The model input (label, id and time columns).
        frame: Its labelled rows.
        config: Training configuration (``split``, ``snapshots``, ``small_data``, ``seed``).
        enough_to_fit: Also shorten the gap while the fitting rows are too few to fit.

    Returns:
        The fitting and test positions in ``frame``, and the split's summary.

    Raises:
        InputError: ``split.method: time`` without dates, or labelled rows without a date.
    """
    s = config.split
    has_time = data.time_column is not None and frame[data.time_column].notna().any()
    if s.method == "time" and not has_time:
        raise InputError("--split time needs dates: name the date column with --time COLUMN")
    if s.method in ("order", "random", "stratified"):
        has_time = False
    if has_time and frame[str(data.time_column)].isna().any():
        n = int(frame[str(data.time_column)].isna().sum())
        raise InputError(
            f"{n} labelled rows have no date in the time column; "
            "fix or drop them, or train without a time column"
        )
    if has_time:
        return _time_split(data, frame, config, enough_to_fit)
    return _split_without_time(frame[data.label].astype(int).to_numpy(), config)


def _time_split(
    data: ModelInput, frame: pd.DataFrame, config: TrainingConfig, enough_to_fit: bool
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """:func:`evaluation_split` by time: the purge-gap ladder, then whole entities at random.

    Args:
        data: The model input (its time column is set and dates every row).
        frame: Its labelled rows.
        config: Training configuration.
        enough_to_fit: Also shorten the gap while the fitting rows are too few to fit.
    """
    s = config.split
    y = frame[data.label].astype(int).to_numpy()
    ids = frame[data.id_column].reset_index(drop=True)
    times = pd.to_datetime(frame[str(data.time_column)]).reset_index(drop=True)
    gap = s.gap_days if s.gap_days is not None else float(config.snapshots.horizon_days)
    tried: list[str] = []
    fallback: tuple[list[np.ndarray], dict[str, Any]] | None = None
    for g in _gap_ladder(gap):
        try:
            splits = time_splits(
                frame,
                data.id_column,
                time_column=str(data.time_column),
                valid_fraction=s.valid_fraction,
                test_fraction=s.test_fraction,
                gap_days=g,
            )
        except ValueError as exc:
            tried.append(f"gap {g:g} days: {exc}")
            continue
        test_ids = ids.iloc[splits.test].unique()
        cut = splits.cuts[1] - pd.Timedelta(days=g)
        parts = [np.flatnonzero(((times < cut) & ~ids.isin(test_ids)).to_numpy()), splits.test]
        lacking = one_class_part(parts, y)
        if lacking is not None:
            tried.append(f"gap {g:g} days: the {lacking} rows hold one class")
            continue
        summary = _time_summary(splits.cuts, g, gap, tried, len(frame), parts, ids, times)
        few = _too_few_to_fit(y[parts[0]], config) if enough_to_fit else None
        if few is not None and g > 0:
            tried.append(f"gap {g:g} days: {few}")
            fallback = fallback or (parts, summary)
            continue
        return parts, summary
    if fallback is not None:  # both classes at a longer gap, too few rows at every gap
        return fallback
    parts = _entity_split(ids, y, s.test_fraction, config.seed)
    return parts, {
        "method": "entity_random",
        "note": (
            "no time split leaves both classes in the fitting and the test rows ("
            + "; ".join(tried)
            + "), so whole entities were split at random, stratified: the test slice is not "
            "the future, and its metrics may be optimistic"
        ),
        "splits": {name: _range(ids, times, p) for name, p in zip(SPLITS, parts, strict=True)},
    }


def _time_summary(
    cuts: Sequence[pd.Timestamp],
    g: float,
    gap: float,
    tried: list[str],
    rows: int,
    parts: list[np.ndarray],
    ids: pd.Series,
    times: pd.Series,
) -> dict[str, Any]:
    """The summary of a time split at the purge gap ``g`` (a note when shorter than ``gap``).

    Args:
        cuts: The split's cuts (validation, test).
        g: The purge gap used, in days.
        gap: The purge gap configured, in days.
        tried: Why each longer gap failed.
        rows: How many labelled rows were split.
        parts: The fitting and the test positions.
        ids: Each row's entity.
        times: Each row's date.
    """
    summary: dict[str, Any] = {
        "method": "time",
        "cuts": [c.isoformat() for c in cuts],
        "gap_days": g,
        "dropped_rows": rows - len(parts[0]) - len(parts[1]),
        "splits": {name: _range(ids, times, p) for name, p in zip(SPLITS, parts, strict=True)},
    }
    if g < gap:
        summary["note"] = (
            f"the history is too short for a {gap:g}-day purge gap ({'; '.join(tried)}), so the "
            f"gap was shortened to {g:g} days: some test labels were decided in the same weeks "
            "as training labels, and the test metrics may be optimistic"
        )
    return summary


def _split_without_time(y: np.ndarray, config: TrainingConfig) -> tuple[list[np.ndarray], dict[str, Any]]:
    """:func:`evaluation_split` without dates: by row order, at random or stratified, as configured."""
    s = config.split
    n = len(y)
    positions = np.arange(n)
    method = s.method if s.method in ("order", "random", "stratified") else s.without_time
    if method == "order":
        n_test = int(n * s.test_fraction)
        parts = [positions[: n - n_test], positions[n - n_test :]]
    else:
        strata = y if method == "stratified" else None
        fit, test = train_test_split(
            positions, test_size=s.test_fraction, stratify=strata, random_state=config.seed
        )
        parts = [np.sort(fit), np.sort(test)]
    summary = {
        "method": "row_order" if method == "order" else method,
        "splits": {name: {"rows": len(p)} for name, p in zip(SPLITS, parts, strict=True)},
    }
    return parts, summary


SPLITS = ("train", "test")
"""The two parts of an evaluation: the rows the evaluation model is fitted on, and the test slice."""


def _range(ids: pd.Series, times: pd.Series, idx: np.ndarray) -> dict[str, Any]:
    return {
        "rows": len(idx),
        "entities": int(ids.iloc[idx].nunique()),
        "from": None if len(idx) == 0 else times.iloc[idx].min().isoformat(),
        "to": None if len(idx) == 0 else times.iloc[idx].max().isoformat(),
    }


def _gap_ladder(gap: float) -> list[float]:
    """The purge gaps tried in turn: the configured one, then shorter ones down to 0."""
    return sorted({gap, gap / 2, gap / 4, 0.0}, reverse=True) if gap > 0 else [0.0]


def one_class_part(parts: list[np.ndarray], y: np.ndarray) -> str | None:
    """The name of the first part holding fewer than two classes (``None``: all hold both).

    Args:
        parts: The fitting and the test positions.
        y: The 0/1 labels the positions index.

    Returns:
        ``"training"`` or ``"test"``, or ``None``.
    """
    for name, idx in zip(("training", "test"), parts, strict=True):
        if len(np.unique(y[idx])) < 2:
            return name
    return None


def check_part_sizes(parts: list[np.ndarray], y: np.ndarray, config: TrainingConfig) -> None:
    """Raise when a part of the evaluation is too small to fit or judge a model on.

    Both classes in a part are not enough: a model fitted on 2 rows, or judged on 50 rows holding 5
    positives, says nothing about the procedure that is served (a three-month CRM showed both).
    The parts must each hold the small-data absolute minimums; below them deal snapshots get the
    small-data stage model (:func:`~forecast.training.binary.train_binary`); other data is trained
    on what it has.

    Args:
        parts: The fitting and the test positions.
        y: The 0/1 labels the positions index.
        config: Training configuration (its ``small_data`` minimums).

    Raises:
        InsufficientDataError: A part below the minimums (the message names it).
    """
    sd = config.small_data
    for name, idx in zip(("fitting", "test"), parts, strict=True):
        n, positives = len(idx), int(y[idx].sum())
        if n < sd.absolute_min_rows or min(positives, n - positives) < sd.absolute_min_minority:
            raise InsufficientDataError(
                f"the evaluation's {name} rows are too few: {n} ({positives} positive, {n - positives} "
                f"negative) of {len(y)} labelled rows; at least {sd.absolute_min_rows} rows and "
                f"{sd.absolute_min_minority} of each class are needed in the fitting and the test rows "
                "to train and evaluate a model"
            )


def _too_few_to_fit(y_fit: np.ndarray, config: TrainingConfig) -> str | None:
    """Why the evaluation's fitting rows are too few to stand for the served model (``None``: enough).

    A purge gap as long as the label horizon can leave a handful of fitting rows on a short history
    (7 rows against 568 test rows were seen); the evaluation would then judge a model nothing like
    the one served, fitted on every labelled row. Enough: the small-data sufficiency threshold.
    """
    sd = config.small_data
    n, positives = len(y_fit), int(y_fit.sum())
    if n >= sd.min_rows and min(positives, n - positives) >= sd.min_minority:
        return None
    return (
        f"only {n} fitting rows ({positives} positive), fewer than the {sd.min_rows} rows and "
        f"{sd.min_minority} of each class a model needs"
    )


def _entity_split(ids: pd.Series, y: np.ndarray, test_fraction: float, seed: int) -> list[np.ndarray]:
    """Whole entities at random into fitting and test rows, stratified by "any positive row"."""
    per_entity = pd.Series(y).groupby(ids.to_numpy(), sort=True).max()
    label = per_entity.to_numpy()
    strat = label if np.bincount(label, minlength=2).min() >= 2 else None
    fit, test = train_test_split(
        per_entity.index.to_numpy(), test_size=test_fraction, stratify=strat, random_state=seed
    )
    return [np.flatnonzero(ids.isin(set(part)).to_numpy()) for part in (fit, test)]
