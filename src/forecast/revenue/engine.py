"""Build a revenue forecast from canonical tables and two fitted models (orchestration, no I/O).

``tables`` are cut at ``as_of`` first (:func:`forecast.data.as_of.crm_as_of`), so the same code
serves today's forecast and a backtest's past one: nothing after ``as_of`` can leak in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from forecast.data.as_of import crm_as_of
from forecast.data.pipeline import SalesPipeline
from forecast.features.build import build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import frames_source
from forecast.features.splits import summary_test_cut
from forecast.models.survival import survival_at
from forecast.models.win_horizon import read_days, read_proba
from forecast.revenue.calendar import CalendarProfile, CalendarSettings, fit_calendar
from forecast.revenue.forecast import ALL, RevenueForecast, close_shares, forecast_revenue
from forecast.revenue.new_deals import fit_new_deal_model
from forecast.revenue.shock import (
    NO_SHOCK,
    CommonShock,
    ShockPrior,
    bias_estimate,
    log_ratio,
    logit_shift,
    shock_scale,
)
from forecast.tracking.periods import Period


@dataclass
class HeldOutModels:
    """Evaluation models of a forecast's two models: the same procedure, fitted before a cut.

    The served models are fitted on all labelled history, so their errors on past cuts are
    in-sample and understate the model error the band must carry; these are not.

    Attributes:
        win: The win model's evaluation pipeline.
        close: The close model's evaluation pipeline.
        unseen_from: The first as_of neither was fitted or calibrated on (the later of their test
            cuts); ``None`` when a split was not in time (every cut may have been seen).
    """

    win: Pipeline
    close: Pipeline
    unseen_from: pd.Timestamp | None


def unseen_from(*splits: Mapping[str, Any] | None) -> pd.Timestamp | None:
    """The first as_of none of the evaluation models behind ``splits`` saw (the latest test cut).

    Args:
        splits: Split summaries of training runs (``method`` and, for time splits, ``cuts``).

    Returns:
        The latest test cut, or ``None`` when a split is unknown or not in time.
    """
    cuts = [summary_test_cut(split) for split in splits]
    if not cuts or any(c is None for c in cuts):
        return None
    return max(c for c in cuts if c is not None)


@dataclass
class DealModels:
    """The two fitted models a forecast needs.

    Attributes:
        win: Pipeline returning P(won within ``horizon_days``) from deal snapshot features
            (:func:`~forecast.models.win_horizon.read_proba`).
        close: Pipeline whose last step has ``survival()`` (the time-to-close model).
        edges: The close model's survival edges (days).
        horizon_days: The days the win model's ``p_win`` is read at (its label horizon, or further
            where half the history caps the label; never a tail carried on past the data:
            :func:`~forecast.models.win_horizon.read_days`).
        versions: Names and versions, for the output.
        held_out: Their evaluation models, which score the past cuts of the shock evidence
            (``None``: the served models score them, in-sample).
        label_days: The win model's label horizon (``None``: ``horizon_days``); the evaluation
            models of ``held_out`` reach that far.
    """

    win: Pipeline
    close: Pipeline
    edges: list[float]
    horizon_days: float
    versions: dict[str, str]
    held_out: HeldOutModels | None = None
    label_days: float | None = None


@dataclass
class NewDealSettings:
    """Settings of the not-yet-created deals model (see :mod:`forecast.revenue.new_deals`)."""

    include: bool = True
    window_days: float = 180
    mature_days: float = 180
    cohort_days: float = 365


@dataclass
class ShockSettings:
    """How the common shocks' spreads are estimated (see :mod:`forecast.revenue.shock`).

    Attributes:
        include: Draw common shocks (``False``: deals independent given their probabilities).
        window_days: Length of each evidence window (the realised wins of ``[c, c + window)``).
        cuts: Number of past cuts ``c = as_of - k * window`` (k = 1..cuts) scored for evidence.
        min_deals: A cut whose cohort has fewer open deals is skipped.
        win_prior: Prior of the logit win shift: sigma 0.3 (a win rate of 25% moving to about
            20-31% at one sigma) worth two cuts, so that a forecast without history still
            carries some model error and a dozen cuts of evidence outweigh it.
        volume_prior: Prior of the log multiplier of new deals (sigma 0.15, worth two cuts).
        recentre: Also move the centre of the win shocks by the model's steady bias on the cuts
            (their precision-weighted mean shift, shrunk towards 0 by a normal prior of sd
            ``bias_prior_sd``).
        bias_prior_sd: Prior sd of that bias (logit scale).
        win_level: Where the open deals' win probability comes from: ``deal_win`` (the deal-win
            model's P(won within H)), ``hazard`` (the time-to-close model's cumulative incidence
            of a win within H), ``blend`` (their mean), or ``auto``: the one whose expected won
            amount was closest to the realised one over the cuts (:func:`choose_win_level`).
        level_min_cuts: ``auto`` keeps ``deal_win`` with fewer judged cuts than this.
        weigh_wins_by: What the cuts' win evidence matches: ``count`` (the number of wins) or
            ``amount`` (the won amount: each deal weighted by its amount, so that the shift
            measures the error of the revenue, which large deals carry).
    """

    include: bool = True
    window_days: float = 30
    cuts: int = 12
    min_deals: int = 20
    win_prior: ShockPrior = field(default_factory=lambda: ShockPrior(0.3, 2.0))
    volume_prior: ShockPrior = field(default_factory=lambda: ShockPrior(0.15, 2.0))
    recentre: bool = False
    bias_prior_sd: float = 0.5
    win_level: str = "deal_win"  # auto lost to a fixed level on the matrix (docs/revenue.md)
    level_min_cuts: int = 3
    weigh_wins_by: str = "count"

    def __post_init__(self) -> None:
        """Refuse an unknown setting when the settings are made, not when a forecast uses them."""
        if self.win_level != "auto" and self.win_level not in WIN_LEVELS:
            raise ValueError(f"win_level must be auto or one of {', '.join(WIN_LEVELS)}: {self.win_level!r}")
        if self.weigh_wins_by not in ("count", "amount"):
            raise ValueError(f"weigh_wins_by must be count or amount: {self.weigh_wins_by!r}")


WIN_LEVELS = ("deal_win", "blend", "hazard")
"""The win levels an open deal's probability can come from (``auto`` chooses among them, in this
order on ties)."""


def hazard_win_within(closed_by: np.ndarray, models: DealModels) -> np.ndarray | None:
    """The close model's P(won within the win model's horizon) per deal.

    ``None`` when the close model does not tell wins from losses (its curve is then P(closed), not
    a win probability).
    """
    hazard = models.close.steps[-1][1]
    if not (hasattr(hazard, "win_incidence") and getattr(hazard, "competing_", False)):
        return None
    if closed_by.shape[0] == 0:
        return np.zeros(0)
    return np.clip(survival_at(closed_by, models.edges, models.horizon_days), 0.0, 1.0)


def win_levels(p_win: np.ndarray, closed_by: np.ndarray, models: DealModels) -> dict[str, np.ndarray]:
    """Every win level available for these deals.

    ``deal_win`` always; ``blend`` and ``hazard`` with a competing-risks close model.
    """
    levels = {"deal_win": p_win}
    within = hazard_win_within(closed_by, models)
    if within is not None:
        levels["blend"] = 0.5 * (p_win + within)
        levels["hazard"] = within
    return levels


def choose_win_level(
    expected: Mapping[str, Sequence[float]], observed: Sequence[float], min_cuts: int
) -> tuple[str, dict[str, float]]:
    """The level whose expected won amount was closest to the realised one over the cuts.

    Args:
        expected: Per level, the expected won amount of each judged cut.
        observed: The realised won amount of each judged cut (same order).
        min_cuts: Fewer judged cuts (or nothing won in them): ``deal_win``.

    Returns:
        The level, and each level's WAPE over the cuts (sum of absolute errors over the sum won).
    """
    won = float(np.sum(observed))
    if len(observed) < min_cuts or won <= 0:
        return "deal_win", {}
    errors = {
        level: float(np.abs(np.asarray(values) - np.asarray(observed)).sum() / won)
        for level, values in expected.items()
    }
    best = min((level for level in WIN_LEVELS if level in errors), key=lambda level: errors[level])
    return best, errors


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
    closed = deals["closed_at"]
    if not pd.api.types.is_datetime64_any_dtype(closed):  # (pandas samples even parsed dates: 50 ms)
        closed = pd.to_datetime(closed)
    won = deals[(deals["outcome"] == "won") & (closed >= start) & (closed < end)]
    sums = pd.to_numeric(won["amount"], errors="coerce").fillna(0).groupby(won["group"]).sum()
    return sums.reindex(pd.Index(list(groups), dtype=object), fill_value=0.0).to_numpy(dtype=float)


def goal_table(quotas: Any, names: Sequence[str], periods: Sequence[Period]) -> np.ndarray:
    """The goal of each period (rows) and group (columns) from a quota lookup.

    ``quotas(group, start, end)`` per cell, or its ``table(names, bounds)`` where it has one (all at
    once: the same numbers).
    """
    bounds = [(p.start, p.end) for p in periods]
    table = getattr(quotas, "table", None)
    if callable(table):
        out = np.asarray(table(names, bounds), dtype=float)
        if out.shape != (len(periods), len(names)):
            raise ValueError(
                f"a quota table of shape {out.shape} for {len(periods)} periods and {len(names)} groups"
            )
        return out
    return np.array([[quotas(g, start, end) for g in names] for start, end in bounds], dtype=float)


@dataclass(frozen=True)
class OpenDeals:
    """A forecast's open deals scored at its as-of, with the deals and reps as they stood then.

    None of it depends on the grouping, the horizon or the simulations: a caller forecasting the
    same CRM, as-of and models by team, then by rep, passes it back
    (:func:`forecast_with_open_deals`) instead of cutting the CRM and scoring every deal again. It
    holds the cut's deals and reps only (what a forecast reads besides the scores), not its
    activities: the shocks' evidence needs the whole cut and cuts it again when not given.
    """

    as_of: pd.Timestamp
    versions: tuple[tuple[str, str], ...]
    """The models' versions (name, version) the deals were scored with."""
    past: Mapping[str, pd.DataFrame]
    """The ``opportunities`` and ``reps`` of :func:`~forecast.data.as_of.crm_as_of` at ``as_of``."""
    frame: pd.DataFrame
    p_win: np.ndarray
    closed_by: np.ndarray

    def fits(self, as_of: pd.Timestamp, models: DealModels) -> bool:
        """Whether these are the deals of ``as_of`` scored by ``models``."""
        return self.as_of == as_of and self.versions == _versions(models)


_KEPT = ("opportunities", "reps")
"""The tables of the cut a forecast reads besides the scores (:func:`deal_group`, the won deals)."""


def _versions(models: DealModels) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in models.versions.items()))


def open_deals_at(
    past: Mapping[str, pd.DataFrame], pipeline: SalesPipeline, as_of: pd.Timestamp, models: DealModels
) -> OpenDeals:
    """The open deals of ``past`` (the CRM cut at ``as_of``) scored by ``models`` (:class:`OpenDeals`).

    The scores are read-only: a caller that keeps them for another forecast gets them unchanged.
    """
    frame, p_win, closed_by = open_deal_scores(past, pipeline, as_of, models)
    p_win.setflags(write=False)
    closed_by.setflags(write=False)
    kept = {name: past[name] for name in _KEPT if name in past}
    return OpenDeals(as_of, _versions(models), kept, frame, p_win, closed_by)


def open_deal_scores(
    tables: Mapping[str, pd.DataFrame], pipeline: SalesPipeline, as_of: pd.Timestamp, models: DealModels
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Snapshot features of the deals open at ``as_of``, their p_win and win-timing curves.

    The timing curve is the close model's cumulative incidence of *winning* when it models wins
    and losses apart (wins take longer than losses), else its P(closed by t).
    """
    return score_deals(tables, pipeline, [as_of], models, as_of)


def score_deals(
    tables: Mapping[str, pd.DataFrame],
    pipeline: SalesPipeline,
    dates: Sequence[pd.Timestamp],
    models: DealModels,
    data_end: pd.Timestamp,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Snapshot features of the deals open at each of ``dates`` (column ``as_of``), p_win and curves."""
    h = int(models.horizon_days)
    with frames_source(tables, pipeline) as src:
        frame = build_feature_table(
            src, "opportunity", list(dates), LabelConfig.both(h), data_end=data_end
        ).frame
    if frame.empty:
        return frame, np.zeros(0), np.zeros((0, len(models.edges)))
    p_win = read_proba(models.win, frame)
    prep, hazard = Pipeline(models.close.steps[:-1]), models.close.steps[-1][1]
    x = prep.transform(frame)
    wins = hazard.win_incidence(x) if hasattr(hazard, "win_incidence") else None
    closed_by = wins if wins is not None else 1.0 - hazard.survival(x)
    return frame, p_win, closed_by


def estimate_shock(
    past: Mapping[str, pd.DataFrame],
    pipeline: SalesPipeline,
    as_of: pd.Timestamp,
    models: DealModels,
    settings: ShockSettings,
    new_deal_window_days: float = 180,
    calendar: CalendarProfile | None = None,
) -> CommonShock:
    """Spreads of the common shocks from the models' own errors on the recent past.

    At each cut ``c = as_of - k * window`` (k = 1..cuts), the deals open at ``c`` are scored with
    ``models`` (features as known at ``c``) and the logit shift that makes their expected wins in
    ``[c, c + window)`` equal the realised ones is solved for; the new deals created in the
    window are compared with the creation rate of the ``new_deal_window_days`` before ``c``.
    Cuts before the CRM's first recorded close or within a window of its first deal are skipped;
    with fewer cuts the prior weighs more.
    Everything used is known at ``as_of`` (``past`` is the CRM as it stood then).

    The served models were fitted on all labelled history, these cuts' snapshots included, so
    their errors there are in-sample and would understate the band. Where ``models.held_out``
    is set, its evaluation models score the cuts instead, and only cuts at or after its
    ``unseen_from`` count (fewer cuts: the prior weighs more, the tails are heavier).

    Args:
        past: The CRM as it stood at ``as_of`` (:func:`forecast.data.as_of.crm_as_of`).
        pipeline: The sales pipeline.
        as_of: The forecast time.
        models: The models the forecast uses.
        settings: Cuts, window, priors.
        new_deal_window_days: Look-back of the creation rate (as in the new-deal model).
        calendar: The month-of-quarter profile of wins the forecast's timing follows (the cuts'
            expected wins follow it too, so that the bunching it explains is not counted as error).

    Returns:
        The spreads of the win and volume shocks, with the per-cut evidence.
    """
    if not settings.include:  # a level asked for still applies; auto has no evidence: deal_win
        return NO_SHOCK if settings.win_level == "auto" else replace(NO_SHOCK, win_level=settings.win_level)
    window = pd.Timedelta(days=settings.window_days)
    opps = past["opportunities"]
    created = pd.to_datetime(opps["created_at"])
    first = created.min() if len(opps) else as_of
    cuts = _evidence_cuts(opps, first, as_of, window, settings.cuts)
    scorer, win_cuts = _cut_scorer(models, cuts)
    evidence: list[dict[str, float]] = []
    wins = _Shifts()
    volume = _Shifts()
    if cuts:
        if win_cuts:
            frame, p_win, closed_by = score_deals(past, pipeline, win_cuts, scorer, as_of)
        else:
            frame, p_win, closed_by = pd.DataFrame(), np.zeros(0), np.zeros((0, len(models.edges)))
        won = opps[opps["outcome"] == "won"]
        won_closed = pd.to_datetime(won["closed_at"])
        at = pd.to_datetime(frame["as_of"]).to_numpy() if len(frame) else np.array([], dtype="datetime64[ns]")
        levels = win_levels(p_win, closed_by, models)
        amount = (
            pd.to_numeric(frame["amount"], errors="coerce").fillna(0.0).to_numpy()
            if len(frame)
            else np.zeros(0)
        )
        judged: list[tuple[pd.Timestamp, np.ndarray, np.ndarray, np.ndarray]] = []
        for c in cuts:
            mine = np.flatnonzero(at == np.datetime64(c))
            if len(mine) >= settings.min_deals:
                ids = set(won.loc[(won_closed >= c) & (won_closed < c + window), "opportunity_id"])
                share = close_shares(
                    closed_by[mine],
                    models.edges,
                    c,
                    [Period(c, c + window, "range", "w")],
                    models.horizon_days,
                    calendar,
                )[:, 0]
                judged.append((c, mine, frame["opportunity_id"].iloc[mine].isin(ids).to_numpy(), share))
        level, level_errors = _level_of(settings, levels, amount, judged)
        chosen = levels[level]
        outcomes = {c: (mine, hit) for c, mine, hit, _ in judged}
        for c in cuts:
            row: dict[str, float] = {"cut": float(c.value // 10**9)}
            row.update(
                _volume_evidence(created, first, c, settings.window_days, new_deal_window_days, volume)
            )
            if c in outcomes:
                mine, hit = outcomes[c]
                row.update(
                    _win_evidence(
                        chosen[mine],
                        closed_by[mine],
                        hit,
                        c,
                        window,
                        models,
                        wins,
                        amount[mine] if settings.weigh_wins_by == "amount" else None,
                        calendar,
                    )
                )
            evidence.append(row)
    else:
        level, level_errors = _level_of(settings, {"deal_win": np.zeros(0)}, np.zeros(0), [])
    win = shock_scale(wins.shifts, wins.variances, settings.win_prior)
    centre = (
        bias_estimate(wins.shifts, wins.variances, win.sigma, settings.bias_prior_sd)
        if settings.recentre
        else 0.0
    )
    return CommonShock(
        win,
        shock_scale(volume.shifts, volume.variances, settings.volume_prior),
        evidence,
        centre,
        win_level=level,
        level_errors=level_errors,
    )


def _level_of(
    settings: ShockSettings,
    levels: Mapping[str, np.ndarray],
    amount: np.ndarray,
    judged: Sequence[tuple[pd.Timestamp, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[str, dict[str, float]]:
    """The win level of the settings: the one asked for (if the models give it) or the cuts' choice.

    ``judged``: per cut with enough deals, its deals' rows, whether each won in the window, and the
    share of each deal's win timing that falls in the window.
    """
    if settings.win_level != "auto":  # a known level: ShockSettings checks it
        return (settings.win_level if settings.win_level in levels else "deal_win"), {}
    expected = {
        name: [float((share * p[mine] * amount[mine]).sum()) for _, mine, _, share in judged]
        for name, p in levels.items()
    }
    observed = [float(amount[mine][hit].sum()) for _, mine, hit, _ in judged]
    return choose_win_level(expected, observed, settings.level_min_cuts)


@dataclass
class _Shifts:
    """The per-cut shifts of one shock and their sampling variances."""

    shifts: list[float] = field(default_factory=list)
    variances: list[float] = field(default_factory=list)

    def add(self, shift: float, variance: float) -> None:
        self.shifts.append(shift)
        self.variances.append(variance)


def _evidence_cuts(
    opps: pd.DataFrame, first: pd.Timestamp, as_of: pd.Timestamp, window: pd.Timedelta, n: int
) -> list[pd.Timestamp]:
    """The cuts ``as_of - k * window`` (k = 1..n) that can give evidence.

    Only where the CRM already records closes (an export may start with open deals whose earlier
    closes were never loaded) and after a window of deal creation.
    """
    first_close = pd.to_datetime(opps["closed_at"]).min() if opps["closed_at"].notna().any() else as_of
    cuts = [as_of - k * window for k in range(1, n + 1)]
    return [c for c in cuts if c - first >= window and c >= first_close]


def _cut_scorer(models: DealModels, cuts: list[pd.Timestamp]) -> tuple[DealModels, list[pd.Timestamp]]:
    """The models that score the cuts, and the cuts they may judge (the held-out models' unseen ones)."""
    if models.held_out is None:
        return models, cuts
    held = models.held_out
    label = models.label_days if models.label_days is not None else models.horizon_days
    # the evaluation win model is judged at its label's horizon: it reaches no further
    scorer = replace(
        models, win=held.win, close=held.close, held_out=None, horizon_days=read_days(held.win, label)
    )
    if held.unseen_from is None:
        return scorer, cuts
    return scorer, [c for c in cuts if c >= held.unseen_from]  # the volume shock keeps every cut


def _volume_evidence(
    created: pd.Series,
    first: pd.Timestamp,
    c: pd.Timestamp,
    window_days: float,
    new_deal_window_days: float,
    volume: _Shifts,
) -> dict[str, float]:
    """New deals created in ``[c, c + window)`` against the creation rate before ``c``."""
    window = pd.Timedelta(days=window_days)
    lookback = min(pd.Timedelta(days=new_deal_window_days), c - first)
    rate = float(((created >= c - lookback) & (created < c)).sum()) / (lookback / pd.Timedelta(days=1))
    expected_new = rate * window_days
    observed_new = float(((created >= c) & (created < c + window)).sum())
    v, v_se2 = log_ratio(observed_new, expected_new)
    volume.add(v, v_se2)
    return {"new_expected": expected_new, "new_observed": observed_new, "volume_shift": v}


def _win_evidence(
    p_win: np.ndarray,
    closed_by: np.ndarray,
    hit: np.ndarray,
    c: pd.Timestamp,
    window: pd.Timedelta,
    models: DealModels,
    wins: _Shifts,
    amount: np.ndarray | None = None,
    calendar: CalendarProfile | None = None,
) -> dict[str, float]:
    """The logit shift that makes the deals open at ``c`` win as they did in the window.

    ``hit``: whether each deal was won in the window. With ``amount`` the shift matches the won
    amount (each deal weighted by its amount), else the number of wins. ``calendar``: the
    month-of-quarter profile the expected wins' timing follows.
    """
    share = close_shares(
        closed_by, models.edges, c, [Period(c, c + window, "range", "w")], models.horizon_days, calendar
    )[:, 0]
    observed = float(hit.sum())
    d, se2 = logit_shift(p_win, share, observed if amount is None else float(amount[hit].sum()), amount)
    wins.add(d, se2)
    return {
        "deals": float(len(p_win)),
        "wins_expected": float((share * p_win).sum()),
        "wins_observed": observed,
        "win_shift": d,
        "win_shift_se": float(np.sqrt(se2)),
    }


def forecast_with_open_deals(
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
    shock: ShockSettings | CommonShock | None = None,
    deals_at_as_of: OpenDeals | None = None,
    calendar: CalendarSettings | CalendarProfile | None = None,
) -> tuple[RevenueForecast, pd.DataFrame, OpenDeals]:
    """Forecast each period's revenue (per group) as of ``as_of``.

    Args:
        tables: Canonical frames (cut at ``as_of`` here).
        pipeline: The sales pipeline.
        as_of: Forecast time.
        models: The fitted win and close-date models.
        periods: The periods.
        by: ``rep``, ``team``, ``region`` or ``None`` (the whole team).
        quotas: Callable ``(group, start, end) -> goal`` (nan without one), or ``None``; one with a
            ``table(names, bounds)`` method gives every group's goals at once (:func:`goal_table`).
        new_deals: Settings of the future-deals model (``None``: defaults).
        n_sims: Monte Carlo simulations.
        seed: Random seed.
        shock: How to estimate the common shocks (``None``: defaults), or their spreads.
        deals_at_as_of: The open deals scored by ``models`` at ``as_of`` by an earlier forecast of the
            same tables (the third item it returned; ``None``, or another as-of or models: computed
            here).
        calendar: How to measure the CRM's month-of-quarter profile of wins at ``as_of`` (``None``:
            defaults), or the profile itself (:mod:`forecast.revenue.calendar`).

    Returns:
        The forecast, the scored open deals (id, group, amount, p_win, expected close), and the
        :class:`OpenDeals` it used (to pass back for another grouping of the same tables).
    """
    settings = new_deals or NewDealSettings()
    known, whole = deals_at_as_of, None
    if known is None or not known.fits(as_of, models):
        whole = crm_as_of(tables, as_of, pipeline)
        known = open_deals_at(whole, pipeline, as_of, models)
    past, frame, p_win, closed_by = known.past, known.frame, known.p_win, known.closed_by
    groups_of = deal_group(past, by)
    opps = past["opportunities"]
    deals = opps.assign(  # the dates parsed once (each use below parses them: the same values)
        group=opps["opportunity_id"].map(groups_of),
        created_at=pd.to_datetime(opps["created_at"]),
        closed_at=pd.to_datetime(opps["closed_at"]),
    )
    open_deals = frame[["opportunity_id", "amount"]].assign(
        group=frame["opportunity_id"].map(groups_of).fillna("(none)").to_numpy()
    )
    groups = sorted(set(deals["group"]) | set(open_deals["group"])) if by is not None else [ALL]
    won = np.stack([won_between(deals, p.start, min(p.end, as_of), groups) for p in periods])
    profile = (
        calendar
        if isinstance(calendar, CalendarProfile)
        else fit_calendar(
            deals.loc[deals["outcome"] == "won", "closed_at"],
            deals["closed_at"].min(),
            as_of,
            calendar or CalendarSettings(),
        )
    )
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
        goal = goal_table(quotas, names, periods)
        recent = deals[
            (deals["outcome"] == "won")
            & (deals["closed_at"] >= as_of - pd.Timedelta(days=365))  # parsed above
        ]
        amounts = pd.to_numeric(recent["amount"], errors="coerce")
        overall = float(amounts.mean()) if amounts.notna().any() else math.nan
        per = amounts.groupby(recent["group"]).mean()
        avg = np.append(
            per.reindex(pd.Index(groups, dtype=object), fill_value=overall).to_numpy(dtype=float), overall
        )
    spreads = (
        shock
        if isinstance(shock, CommonShock)
        else estimate_shock(
            whole if whole is not None else crm_as_of(tables, as_of, pipeline),
            pipeline,
            as_of,
            models,
            shock or ShockSettings(),
            settings.window_days,
            profile,
        )
    )
    p_win = win_levels(p_win, closed_by, models).get(spreads.win_level, p_win)
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
        shock=spreads,
        calendar=profile,
    )
    if by is None:
        result.table = result.table[result.table["group"] == ALL].iloc[::2].reset_index(drop=True)
        result.sims = result.sims[:, :, -1:]
    scored = open_deals.assign(p_win=np.round(p_win, 6))
    return result, scored, known
