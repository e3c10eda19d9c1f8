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


def rep_cadence(gaps: pd.DataFrame, bands: int, min_gaps: int) -> pd.Series:
    """Cadence band of each rep from its median gap (reps with fewer than ``min_gaps`` left out)."""
    per_rep = gaps.groupby("rep_id")["gap_days"].agg(["median", "size"])
    per_rep = per_rep[per_rep["size"] >= min_gaps]
    if per_rep.empty:
        return pd.Series(dtype=object)
    names = BAND_NAMES[bands]
    if len(per_rep) < bands:
        return pd.Series(names[len(names) // 2], index=per_rep.index, dtype=object)
    ranks = per_rep["median"].rank(method="first") - 1
    codes = np.floor(ranks.to_numpy() * bands / len(per_rep)).astype(int)
    return pd.Series(np.array(names, dtype=object)[codes], index=per_rep.index, dtype=object)


def fit_silence(gaps: pd.DataFrame, as_of: pd.Timestamp, config: GoingCold, with_stage: bool) -> SilenceModel:
    """Fit the expected gaps on the gaps that ended before ``as_of``.

    Args:
        gaps: ``rep_id``, ``segment``, ``stage``, ``ended_at``, ``gap_days``
            (:attr:`forecast.flags.history.History.gaps`).
        as_of: Only gaps ended before it (and within ``config.history_days``) are used.
        config: Quantile, window, shrinkage and cadence settings.
        with_stage: Group by stage too (deals).
    """
    window = gaps[
        (gaps["ended_at"] < as_of) & (gaps["ended_at"] >= as_of - pd.Timedelta(days=config.history_days))
    ].copy()
    band = rep_cadence(window, config.cadence_bands, config.min_rep_gaps)
    window["cadence"] = window["rep_id"].map(band)
    levels = _levels(with_stage)
    tables: list[pd.DataFrame] = []
    q, k = config.quantile, config.shrinkage
    for i, keys in enumerate(levels):
        if not keys:
            n = len(window)
            g = window["gap_days"]
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
        sub = window.dropna(subset=list(keys))
        grouped = sub.groupby(list(keys), observed=True)["gap_days"]
        table = pd.DataFrame({"n": grouped.size(), "q50": grouped.median(), "q_hi": grouped.quantile(q)})
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
        mine = gaps[gaps["ended_at"] < as_of].groupby("entity_id")["gap_days"]
        own = pd.DataFrame({"n": mine.size(), "q50": mine.median(), "q_hi": mine.quantile(q)})
    dormant = float(window["gap_days"].quantile(config.dormant_quantile)) if len(window) else float("nan")
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
