"""Learned silence: how long similar deals or leads usually go between touches.

From the gaps between consecutive touches that ended before as_of (within ``history_days``), the
median and the upper quantile (default 90th percentile) of the gap are estimated per group, from
coarse to fine: everyone, then the stage (deals), then stage and the rep's cadence band, then stage,
segment (product or lead source) and cadence. A small group's estimate is shrunk towards its
coarser group's with ``shrinkage`` pseudo-gaps, ``(n * q_group + k * q_parent) / (n + k)``, so a
group of five gaps does not set its own rule; an unseen group takes its parent's estimate.

The rep's cadence band comes from the rep's median gap over the same window, cut into
``cadence_bands`` bands across reps (``fast`` … ``slow``); reps with too few gaps have no band and
fall back to the coarser group. With ``own_cadence``, the entity's own past gaps are the finest
level, shrunk the same way towards its group (a deal touched daily that goes quiet for a week is
colder than one touched weekly). Going cold = the current silence exceeds the group's upper
quantile and no next step is booked. Dormant = the silence also exceeds ``dormant_quantile`` of
every gap in the window (all groups): past that, records are hardly ever touched again, and a
record untouched for two years is a clean-up, not a deal cooling down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.flags.config import GoingCold
from forecast.flags.history import codes_of, ns_of, times_ns

_NAT = np.iinfo(np.int64).min

BAND_NAMES = {
    1: ["usual"],
    2: ["fast", "slow"],
    3: ["fast", "usual", "slow"],
    4: ["very fast", "fast", "slow", "very slow"],
    5: ["very fast", "fast", "usual", "slow", "very slow"],
}


@dataclass
class SilenceModel:
    """Fitted expected gaps.

    Attributes:
        levels: Key columns of each level, coarse to fine (the first is ``()``: everyone).
        tables: Per level, ``n``, ``q50``, ``q_hi`` (shrunk) indexed by the level's keys.
        rep_band: Cadence band of each rep with enough gaps.
        quantile: The upper quantile.
        as_of: The fit's cut-off.
    """

    levels: list[tuple[str, ...]]
    tables: list[pd.DataFrame]
    rep_band: pd.Series
    quantile: float
    as_of: pd.Timestamp
    own: pd.DataFrame | None = None
    """Per entity: its own gaps' ``n``, ``q50`` and ``q_hi`` (raw, shrunk at lookup)."""
    shrinkage: float = 0.0
    dormant_days: float = float("nan")
    """``dormant_quantile`` of every gap in the window: longer silences are dormant."""


def _levels(with_stage: bool) -> list[tuple[str, ...]]:
    if with_stage:
        return [(), ("stage",), ("stage", "cadence"), ("stage", "segment", "cadence")]
    return [(), ("cadence",), ("segment", "cadence")]


def _group_stats(keys: np.ndarray, values: np.ndarray, q: float) -> tuple[np.ndarray, ...]:
    """Per group of ``keys`` (sorted by key, then value): the key, size, median and ``q`` quantile.

    The figures are pandas' grouped ``size``, ``median`` and ``quantile(q)`` to the bit: the size
    counts every row; the median is the middle value or the mean of the middle two, the quantile
    ``v[i] + (v[i + 1] - v[i]) * f`` at ``q * (n - 1) = i + f``, both over the non-missing values.
    """
    if not len(keys):
        empty = np.array([], dtype=float)
        return keys[:0], np.array([], dtype=np.int64), empty, empty
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    ends = np.append(starts[1:], len(keys))
    size = ends - starts
    valid = size - np.add.reduceat(np.isnan(values), starts)  # missing values sort last
    last = len(values) - 1
    low = np.minimum(starts + np.maximum(valid - 1, 0) // 2, last)
    high = np.minimum(starts + valid // 2, last)
    median = np.where(valid % 2 == 1, values[low], (values[low] + values[high]) / 2)
    at = q * np.maximum(valid - 1, 0).astype(float)
    step = at.astype(np.int64)
    frac = np.fmod(at, 1.0)
    below = values[np.minimum(starts + step, last)]
    above = values[np.minimum(starts + step + 1, last)]
    quantile = np.where(frac == 0.0, below, below + (above - below) * frac)
    none = valid == 0
    median[none] = np.nan
    quantile[none] = np.nan
    return keys[starts], size.astype(np.int64), median, quantile


def _by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with a key (codes >= 0) sorted by key, then value (``values`` ascending on entry).

    A stable sort by key keeps each group's values in order: a radix sort for 16-bit keys.
    """
    known = keys >= 0
    k, v = keys[known], values[known]
    if len(k) and int(k.max()) >= np.iinfo(np.int16).max:  # many groups: a merge sort
        order = np.argsort(k.astype(np.int64), kind="stable")
        return k[order].astype(np.int64), v[order]
    order = np.argsort(k.astype(np.int16), kind="stable")
    counts = np.bincount(k, minlength=1)
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts), v[order]


def _band_of(per_rep: pd.DataFrame, bands: int, min_gaps: int) -> pd.Series:
    """Cadence band of each rep from its ``median`` gap (reps with fewer than ``min_gaps`` left out)."""
    per_rep = per_rep[per_rep["size"] >= min_gaps]
    if per_rep.empty:
        return pd.Series(dtype=object)
    names = BAND_NAMES[bands]
    if len(per_rep) < bands:
        return pd.Series(names[len(names) // 2], index=per_rep.index, dtype=object)
    ranks = per_rep["median"].rank(method="first") - 1
    codes = np.floor(ranks.to_numpy() * bands / len(per_rep)).astype(int)
    return pd.Series(np.array(names, dtype=object)[codes], index=per_rep.index, dtype=object)


def _per_rep(reps: np.ndarray, labels: pd.Index, values: np.ndarray) -> pd.DataFrame:
    """Median and number of gaps of each rep (codes ``reps`` >= 0; ``values`` ascending), by rep id."""
    groups, size, median, _ = _group_stats(*_by_key(reps, values), 0.5)
    index = pd.Index(labels.to_numpy(dtype=object)[groups], dtype=object, name="rep_id")
    return pd.DataFrame({"median": median, "size": size}, index=index)


def rep_cadence(gaps: pd.DataFrame, bands: int, min_gaps: int) -> pd.Series:
    """Cadence band of each rep from its median gap (reps with fewer than ``min_gaps`` left out)."""
    reps, labels = codes_of(gaps["rep_id"])
    values = gaps["gap_days"].to_numpy(dtype=float)
    order = np.argsort(values)
    return _band_of(_per_rep(reps[order], labels, values[order]), bands, min_gaps)


def _presorted(keys: np.ndarray, values: np.ndarray) -> bool:
    """Whether the rows are sorted by key, then value."""
    if len(keys) < 2:
        return True
    step = np.diff(keys)
    return bool((step >= 0).all() and ((step > 0) | (values[1:] >= values[:-1])).all())


def _own(gaps: pd.DataFrame, ended: np.ndarray, values: np.ndarray, as_of_ns: int, q: float) -> pd.DataFrame:
    """Each entity's own gaps ended before as_of: ``n``, ``q50``, ``q_hi``, indexed by ``entity_id``."""
    entities, labels = codes_of(gaps["entity_id"])
    keep = (ended < as_of_ns) & (ended != _NAT) & (entities >= 0)
    if _presorted(entities, values):
        keys, vals = entities[keep], values[keep]
    else:
        order = np.lexsort((values, entities))
        order = order[keep[order]]
        keys, vals = entities[order], values[order]
    groups, size, median, quantile = _group_stats(keys, vals, q)
    index = pd.Index(labels.to_numpy(dtype=object)[groups], dtype=object, name="entity_id")
    return pd.DataFrame({"n": size, "q50": median, "q_hi": quantile}, index=index)


def _level_table(
    keys: tuple[str, ...], codes: dict[str, tuple[np.ndarray, pd.Index]], values: np.ndarray, q: float
) -> pd.DataFrame:
    """``n``, ``q50`` and ``q_hi`` per group of ``keys`` (rows missing a key left out), sorted by key.

    ``codes``: each key's codes aligned with ``values`` (ascending) and its labels in sorted order.
    """
    composite = np.zeros(len(values), dtype=np.int64)
    known = np.ones(len(values), dtype=bool)
    for k in keys:
        c, labels = codes[k]
        composite = composite * max(len(labels), 1) + c
        known &= c >= 0
    groups, size, median, quantile = _group_stats(*_by_key(np.where(known, composite, -1), values), q)
    columns = []
    for k in reversed(keys):
        labels = codes[k][1]
        columns.append(labels.to_numpy()[groups % max(len(labels), 1)])
        groups = groups // max(len(labels), 1)
    columns.reverse()
    if len(keys) == 1:
        index: pd.Index = pd.Index(columns[0], dtype=codes[keys[0]][1].dtype, name=keys[0])
    else:
        levels = [pd.Index(c, dtype=codes[k][1].dtype) for c, k in zip(columns, keys, strict=True)]
        index = pd.MultiIndex.from_arrays(levels, names=list(keys))
    return pd.DataFrame({"n": size, "q50": median, "q_hi": quantile}, index=index)


def fit_silence(gaps: pd.DataFrame, as_of: pd.Timestamp, config: GoingCold, with_stage: bool) -> SilenceModel:
    """Fit the expected gaps on the gaps that ended before ``as_of``.

    The groups are formed on integer codes of the text columns (categorical columns give theirs), in
    numpy; every figure equals pandas' grouped median and quantile of the same gaps.

    Args:
        gaps: ``entity_id``, ``rep_id``, ``segment``, ``stage``, ``ended_at``, ``gap_days``
            (:attr:`forecast.flags.history.History.gaps`; fastest sorted by entity and gap).
        as_of: Only gaps ended before it (and within ``config.history_days``) are used.
        config: Quantile, window, shrinkage and cadence settings.
        with_stage: Group by stage too (deals).
    """
    ended = times_ns(gaps["ended_at"])
    values = gaps["gap_days"].to_numpy(dtype=float)
    end = ns_of(as_of)
    start = ns_of(as_of - pd.Timedelta(days=config.history_days))
    window = np.flatnonzero((ended < end) & (ended >= start))  # NaT lies before any start
    window = window[np.argsort(values[window])]  # by gap (ties in any order: only the values count)
    wv = values[window]
    reps, rep_labels = codes_of(gaps["rep_id"])
    reps = reps[window]
    band = _band_of(_per_rep(reps, rep_labels, wv), config.cadence_bands, config.min_rep_gaps)
    # No band: the cadence column pandas would map is all missing, typed float (empty groups' index)
    cadence_labels = pd.Index(sorted(set(band.to_numpy())), dtype=object if len(band) else float)
    cadence_of = np.full(len(rep_labels) + 1, -1, dtype=np.int64)  # the last slot: reps without a code
    if len(band):
        cadence_of[rep_labels.get_indexer(band.index)] = cadence_labels.get_indexer(band.to_numpy())
    codes: dict[str, tuple[np.ndarray, pd.Index]] = {"cadence": (cadence_of[reps], cadence_labels)}
    for col in ("stage", "segment"):
        c, labels = codes_of(gaps[col])
        codes[col] = (c[window], labels)
    levels = _levels(with_stage)
    tables: list[pd.DataFrame] = []
    q, k = config.quantile, config.shrinkage
    for i, keys in enumerate(levels):
        if not keys:
            n = len(wv)
            g = pd.Series(wv)
            table = pd.DataFrame(
                {
                    "n": [n],
                    "q50": [float(g.median()) if n else np.nan],
                    "q_hi": [float(g.quantile(q)) if n else np.nan],
                },
                index=pd.Index(["all"], name="_all"),
            )
            tables.append(table)
            continue
        table = _level_table(keys, codes, wv, q)
        parent = _lookup(tables[i - 1], levels[i - 1], table.index.to_frame(index=False))
        w = table["n"].to_numpy(dtype=float)
        for col in ("q50", "q_hi"):
            p = parent[col].to_numpy(dtype=float)
            raw = table[col].to_numpy(dtype=float)
            table[col] = np.where(np.isnan(p), raw, (w * raw + k * p) / (w + k))
        tables.append(table)
    own = None
    if config.own_cadence:
        # The entity's own gaps since it was created (not only within the window).
        own = _own(gaps, ended, values, end, q)
    dormant = float(pd.Series(wv).quantile(config.dormant_quantile)) if len(wv) else float("nan")
    return SilenceModel(levels, tables, band, q, as_of, own, k, dormant)


def _lookup(table: pd.DataFrame, keys: tuple[str, ...], rows: pd.DataFrame) -> pd.DataFrame:
    """The level's estimate for each row (NaN where the group is unseen)."""
    if not keys:
        first = table.iloc[0]
        return pd.DataFrame(
            {"n": float(first["n"]), "q50": first["q50"], "q_hi": first["q_hi"]}, index=rows.index
        )
    key_rows = rows[list(keys)]
    idx = pd.Index(key_rows[keys[0]]) if len(keys) == 1 else pd.MultiIndex.from_frame(key_rows)
    got = table.reindex(idx)
    got.index = rows.index
    return got


def expected_silence(model: SilenceModel, rows: pd.DataFrame) -> pd.DataFrame:
    """The expected gap of each row from its finest known group.

    Args:
        model: The fitted model.
        rows: ``rep_id``, ``segment`` and (deals) ``stage`` per entity.

    Returns:
        ``gap_q50``, ``gap_q_hi``, ``gap_n`` (gaps behind the finest group used), ``cadence``,
        ``group`` (the level used, e.g. ``stage+segment+cadence``) and ``gap_dormant`` (the model's
        :attr:`SilenceModel.dormant_days`), aligned with ``rows``.
    """
    rows = rows.copy()
    rows["cadence"] = rows["rep_id"].map(model.rep_band)
    out = pd.DataFrame(index=rows.index)
    out["gap_q50"] = np.nan
    out["gap_q_hi"] = np.nan
    out["gap_n"] = 0.0
    out["group"] = "none"
    for keys, table in zip(model.levels, model.tables, strict=True):
        if any(k not in rows for k in keys):
            continue
        got = _lookup(table, keys, rows)
        known = got["q_hi"].notna().to_numpy()
        out.loc[known, "gap_q50"] = got.loc[known, "q50"].to_numpy()
        out.loc[known, "gap_q_hi"] = got.loc[known, "q_hi"].to_numpy()
        out.loc[known, "gap_n"] = got.loc[known, "n"].to_numpy(dtype=float)
        out.loc[known, "group"] = "+".join(keys) or "all"
    if model.own is not None and "entity_id" in rows:
        own = model.own.reindex(pd.Index(rows["entity_id"]))
        n = own["n"].fillna(0).to_numpy(dtype=float)
        k = model.shrinkage
        has = (n > 0) & out["gap_q_hi"].notna().to_numpy()
        for col, src in (("gap_q50", "q50"), ("gap_q_hi", "q_hi")):
            prior = out[col].to_numpy(dtype=float)
            mine = own[src].to_numpy(dtype=float)
            out[col] = np.where(has, (n * np.nan_to_num(mine) + k * prior) / (n + k), prior)
        out.loc[has, "gap_n"] = out.loc[has, "gap_n"].to_numpy() + n[has]
        out.loc[has, "group"] = out.loc[has, "group"] + "+own"
        out["own_gaps"] = n
    out["cadence"] = rows["cadence"]
    out["gap_dormant"] = model.dormant_days
    return out
