"""Build a revenue forecast from canonical tables and two fitted models (orchestration, no I/O).

``tables`` are cut at ``as_of`` first (:func:`forecast.data.as_of.crm_as_of`), so the same code
serves today's forecast and a backtest's past one: nothing after ``as_of`` can leak in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.data.as_of import crm_as_of
from forecast.data.pipeline import Pipeline as SalesPipeline
from forecast.features.build import build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source
from forecast.revenue.forecast import ALL, Period, RevenueForecast, forecast_revenue
from forecast.revenue.new_deals import fit_new_deal_model


@dataclass
class DealModels:
    """The two fitted models a forecast needs.

    Attributes:
        win: Pipeline returning P(won within ``horizon_days``) from deal snapshot features.
        close: Pipeline whose last step has ``survival()`` (the time-to-close model).
        edges: The close model's survival edges (days).
        horizon_days: The win model's horizon.
        versions: Names and versions, for the output.
    """

    win: Pipeline
    close: Pipeline
    edges: list[float]
    horizon_days: float
    versions: dict[str, str]


@dataclass
class NewDealSettings:
    """Settings of the not-yet-created deals model (see :mod:`forecast.revenue.new_deals`)."""

    include: bool = True
    window_days: float = 180
    mature_days: float = 180
    cohort_days: float = 365


def deal_group(tables: Mapping[str, pd.DataFrame], by: str | None) -> pd.Series:
    """Group of every deal (by its rep's id, team or region), indexed by opportunity_id."""
    opps = tables["opportunities"]
    if by is None:
        return pd.Series(ALL, index=opps["opportunity_id"].to_numpy(), dtype=object)
    if by == "rep":
        values = opps["rep_id"]
    else:
        reps = tables["reps"].set_index("rep_id")[by]
        values = opps["rep_id"].map(reps)
    labels = values.astype(object).where(values.notna(), "(none)").astype(str)
    return pd.Series(labels.to_numpy(), index=opps["opportunity_id"].to_numpy())


def won_between(
    deals: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, groups: Sequence[str]
) -> np.ndarray:
    """Won amount per group with ``closed_at`` in ``[start, end)``."""
    closed = pd.to_datetime(deals["closed_at"])
    won = deals[(deals["outcome"] == "won") & (closed >= start) & (closed < end)]
    sums = pd.to_numeric(won["amount"], errors="coerce").fillna(0).groupby(won["group"]).sum()
    return np.array([float(sums.get(g, 0.0)) for g in groups])


def open_deal_scores(
    tables: Mapping[str, pd.DataFrame], pipeline: SalesPipeline, as_of: pd.Timestamp, models: DealModels
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Snapshot features of the deals open at ``as_of``, their p_win and win-timing curves.

    The timing curve is the close model's cumulative incidence of *winning* when it models wins
    and losses apart (wins take longer than losses), else its P(closed by t).
    """
    h = int(models.horizon_days)
    with frames_source(tables, pipeline) as src:
        frame = build_feature_table(src, "opportunity", [as_of], LabelConfig(h, h), data_end=as_of).frame
    if frame.empty:
        return frame, np.zeros(0), np.zeros((0, len(models.edges)))
    p_win = models.win.predict_proba(frame)[:, 1]
    prep, hazard = Pipeline(models.close.steps[:-1]), models.close.steps[-1][1]
    x = prep.transform(frame)
    wins = hazard.win_incidence(x) if hasattr(hazard, "win_incidence") else None
    closed_by = wins if wins is not None else 1.0 - hazard.survival(x)
    return frame, p_win, closed_by


def revenue_forecast(
    tables: Mapping[str, pd.DataFrame],
    pipeline: SalesPipeline,
    as_of: pd.Timestamp,
    models: DealModels,
    periods: Sequence[Period],
    *,
    by: str | None = None,
    quotas: Any = None,
    new_deals: NewDealSettings | None = None,
    n_sims: int = 10_000,
    seed: int = 0,
) -> tuple[RevenueForecast, pd.DataFrame]:
    """Forecast each period's revenue (per group) as of ``as_of``.

    Args:
        tables: Canonical frames (cut at ``as_of`` here).
        pipeline: The sales pipeline.
        as_of: Forecast time.
        models: The fitted win and close-date models.
        periods: The periods.
        by: ``rep``, ``team``, ``region`` or ``None`` (the whole team).
        quotas: Callable ``(group, start, end) -> goal`` (nan without one), or ``None``.
        new_deals: Settings of the future-deals model (``None``: defaults).
        n_sims: Monte Carlo simulations.
        seed: Random seed.

    Returns:
        The forecast and the scored open deals (id, group, amount, p_win, expected close).
    """
    settings = new_deals or NewDealSettings()
    past = crm_as_of(tables, as_of, pipeline)
    groups_of = deal_group(past, by)
    deals = past["opportunities"].assign(group=past["opportunities"]["opportunity_id"].map(groups_of))
    frame, p_win, closed_by = open_deal_scores(past, pipeline, as_of, models)
    open_deals = frame[["opportunity_id", "amount"]].assign(
        group=frame["opportunity_id"].map(groups_of).fillna("(none)").to_numpy()
    )
    groups = sorted(set(deals["group"]) | set(open_deals["group"])) if by is not None else [ALL]
    won = np.stack([won_between(deals, p.start, min(p.end, as_of), groups) for p in periods])
    model = (
        fit_new_deal_model(
            deals,
            as_of,
            groups,
            window_days=settings.window_days,
            mature_days=settings.mature_days,
            cohort_days=settings.cohort_days,
        )
        if settings.include
        else None
    )
    goal = None
    avg = None
    if quotas is not None:
        names = [*groups, ALL] if by is not None else [ALL, ALL]
        goal = np.array([[quotas(g, p.start, p.end) for g in names] for p in periods], dtype=float)
        recent = deals[
            (deals["outcome"] == "won")
            & (pd.to_datetime(deals["closed_at"]) >= as_of - pd.Timedelta(days=365))
        ]
        amounts = pd.to_numeric(recent["amount"], errors="coerce")
        overall = float(amounts.mean()) if amounts.notna().any() else math.nan
        per = amounts.groupby(recent["group"]).mean()
        avg = np.array([float(per.get(g, overall)) for g in groups] + [overall])
    result = forecast_revenue(
        deals=open_deals,
        p_win=p_win,
        closed_by=closed_by,
        edges=models.edges,
        horizon_days=models.horizon_days,
        new_deals=model,
        as_of=as_of,
        periods=periods,
        groups=groups,
        won_to_date=won,
        quotas=goal,
        avg_won_amount=avg,
        n_sims=n_sims,
        seed=seed,
    )
    if by is None:
        result.table = result.table[result.table["group"] == ALL].iloc[::2].reset_index(drop=True)
        result.sims = result.sims[:, :, -1:]
    scored = open_deals.assign(p_win=np.round(p_win, 6))
    return result, scored
