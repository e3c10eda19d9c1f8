"""The edges of the revenue forecast: read the warehouse and the registry, log backtests to MLflow.

``forecast revenue`` and ``forecast backtest revenue`` call these; the numbers come from the pure
modules (:mod:`forecast.revenue.forecast`, :mod:`forecast.revenue.backtest`).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forecast.config import Settings
from forecast.data.pipeline import SalesPipeline
from forecast.data.warehouse import Warehouse
from forecast.io import csv_text
from forecast.models.config import TrainingConfig
from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE
from forecast.models.win_horizon import read_days
from forecast.revenue.backtest import BacktestResult, backtest_revenue
from forecast.revenue.calendar import CalendarSettings
from forecast.revenue.engine import (
    DealModels,
    HeldOutModels,
    NewDealSettings,
    OpenDeals,
    ShockSettings,
    forecast_with_open_deals,
    unseen_from,
)
from forecast.revenue.forecast import ALL, period_grid
from forecast.timeutil import resolve_as_of
from forecast.tracking.periods import Period

if TYPE_CHECKING:
    from forecast.binding import ModelRef
    from forecast.registry import LoadedModel
    from forecast.revenue.shock import CommonShock
    from forecast.tracking.data import TrackingData

WIN_MODEL = DEAL_WIN
CLOSE_MODEL = TIME_TO_CLOSE


def read_crm(settings: Settings) -> tuple[dict[str, pd.DataFrame], SalesPipeline]:
    """The warehouse's canonical tables and pipeline (read-only).

    Raises:
        FileNotFoundError: No warehouse.
    """
    from forecast.tracking.data import read_frames

    with Warehouse(settings.warehouse).connect(read_only=True) as con:
        return read_frames(con)


def default_refs() -> dict[str, ModelRef]:
    """The forecast's two models by default: the deal_win and time_to_close champions."""
    from forecast.binding import ModelRef

    return {
        WIN_MODEL: ModelRef(WIN_MODEL, WIN_MODEL, option="--model"),
        CLOSE_MODEL: ModelRef(CLOSE_MODEL, CLOSE_MODEL, option="--close-model"),
    }


def champion_models(
    settings: Settings, refs: dict[str, ModelRef] | None = None
) -> tuple[DealModels, list[str]]:
    """The win and time-to-close models of the current warehouse, and the warnings.

    Args:
        settings: Where the warehouse and the registry are.
        refs: By role (``deal_win``, ``time_to_close``), the models named (default: the champions,
            which must have been trained on this warehouse: :func:`forecast.binding.check_binding`).

    Raises:
        LookupError: A model is missing (the message says what to run).
        ModelBindingError: A default champion was trained on another warehouse.
    """
    from forecast.binding import CurrentWarehouse, resolve

    chosen = {**default_refs(), **(refs or {})}
    current = CurrentWarehouse.of(settings.warehouse)
    win, win_warnings = resolve(chosen[WIN_MODEL], settings, current)
    close, close_warnings = resolve(chosen[CLOSE_MODEL], settings, current)
    return deal_models(win, close, held_out_models(win, close, settings)), win_warnings + close_warnings


def held_out_models(win: LoadedModel, close: LoadedModel, settings: Settings) -> HeldOutModels | None:
    """The evaluation models of two loaded versions and the first as_of neither saw.

    Returns:
        ``None`` when a run logged no evaluation model (the served ones then score the cuts).
    """
    from forecast.registry import evaluation_model, run_splits

    win_eval = evaluation_model(win.run_id, None, settings)
    close_eval = evaluation_model(close.run_id, None, settings)
    if win_eval is None or close_eval is None:
        return None
    unseen = unseen_from(run_splits(win.run_id, settings), run_splits(close.run_id, settings))
    return HeldOutModels(win_eval, close_eval, unseen)


def deal_models(win: LoadedModel, close: LoadedModel, held_out: HeldOutModels | None = None) -> DealModels:
    """The forecast's two models from a loaded win model and a loaded time-to-close model.

    Args:
        win: The win model.
        close: The time-to-close model.
        held_out: Their evaluation models, for the shock evidence (``None``: the served ones).

    Raises:
        LookupError: ``close`` is not a time-to-close model.
    """
    edges = close.meta.survival_edges
    if not edges:
        raise LookupError(f"{close.name} v{close.version} is not a time-to-close model")
    return DealModels(
        win.pipeline,
        close.pipeline,
        edges,
        read_days(win.pipeline, win.meta.horizon_days),
        {win.name: win.version, close.name: close.version},
        held_out,
        label_days=float(win.meta.horizon_days),
    )


def goals_view(
    frames: Mapping[str, pd.DataFrame], pipeline: SalesPipeline, as_of: pd.Timestamp
) -> TrackingData:
    """The CRM prepared at ``as_of`` for the goals and the pacing, without its events.

    Goals and pacing read the quotas, reps, leads and deals (:mod:`forecast.tracking.goals`); the
    activities and engagement events, most of a large CRM, would be cut and attributed for nothing
    (at a million leads, seconds of the forecast). They are left empty here: the same goals.
    """
    from forecast.tracking.data import SHARED_TABLES, prepare

    return prepare({k: v.iloc[:0] if k in SHARED_TABLES else v for k, v in frames.items()}, pipeline, as_of)


def _quota_lookup(
    frames: Mapping[str, pd.DataFrame],
    pipeline: SalesPipeline,
    as_of: pd.Timestamp,
    by: str | None,
    data: TrackingData | None = None,
) -> _Goals:
    return _Goals(data if data is not None else goals_view(frames, pipeline, as_of), by or "team")


class _Goals:
    """The goal of a group over a time range (``goals(group, start, end)``), and of many at once.

    Each is :func:`forecast.tracking.goals.goal_between` of the group's quota rows: :meth:`table`
    is :func:`forecast.tracking.goals.goal_table`: the same arithmetic for every group at once (the
    same numbers, to the last bit), falling back to ``goal_between`` where its arithmetic would differ.
    """

    def __init__(self, data: TrackingData, by: str) -> None:
        self.data = data
        self.by = by

    def __call__(self, group: str, start: pd.Timestamp, end: pd.Timestamp) -> float:
        """The goal of ``group`` over ``[start, end)`` (``nan`` without one)."""
        from forecast.tracking.goals import goal_between, quota_rows

        return goal_between(quota_rows(self.data, self.by, group), start, end)

    def table(self, names: Sequence[str], bounds: Sequence[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
        """The goals of each range (rows) and group (columns), shape (len(bounds), len(names))."""
        from forecast.tracking.goals import goal_table

        return goal_table(self.data, self.by, names, bounds).T


def pacing(
    frames: Mapping[str, pd.DataFrame],
    pipeline: SalesPipeline,
    as_of: pd.Timestamp,
    period: Period,
    data: TrackingData | None = None,
) -> pd.DataFrame:
    """Daily and cumulative bookings against the daily goal in ``period`` up to ``as_of`` (whole team).

    ``data`` is the CRM already prepared at ``as_of`` (:func:`forecast.tracking.data.prepare`), if any.
    """
    from forecast.tracking.data import ALL_LABEL
    from forecast.tracking.goals import daily

    data = data if data is not None else goals_view(frames, pipeline, as_of)
    table = daily(data, period, "team")
    return table[table["team"] == ALL_LABEL].drop(columns="team").reset_index(drop=True)


@dataclass(frozen=True, slots=True)
class Goals:
    """The current period against its goal (``None``: no quota, or nothing due yet)."""

    period: str
    goal: float | None
    monthly_goal: float | None
    weekly_goal: float | None
    daily_goal: float | None
    won_to_date: float | None
    goal_to_date: float | None
    pace_to_date: float | None
    projected: float | None
    projected_attainment: float | None
    p_hit_quota: float | None

    def to_dict(self) -> dict[str, Any]:
        """The goals by name (``None``: not finite), in field order."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RevenueForecast:
    """What :func:`revenue_job` forecast: each period against quota, the goals and the pacing."""

    as_of: pd.Timestamp
    by: str
    group: str | None
    simulations: int
    models: dict[str, str]
    """The model versions used, by name."""
    warnings: list[str]
    open_deals: int
    open_pipeline: float
    model_error: dict[str, Any]
    """The common shocks estimated from the models' own errors (``win_shock_sigma``, ...)."""
    forecast: list[dict[str, Any]]
    """One record per period (and group): P10/P50/P90, quota, P(hit), ..."""
    goals: Goals
    pacing: list[dict[str, Any]]
    """Daily and cumulative bookings against the daily goal in the current period."""
    output: Path | None = None
    """The file the forecast table was written to (``forecast revenue --output``)."""
    spreads: CommonShock | None = None
    """The common shocks' spreads estimated (not in the document: a caller may pass them back as
    ``revenue_job(shock=...)`` for the same warehouse, as-of, models and win level)."""
    scored: OpenDeals | None = None
    """The CRM at the as-of and its open deals scored (not in the document: a caller may pass them
    back as ``revenue_job(open_deals=...)`` for another grouping of the same warehouse)."""
    calendar: dict[str, Any] | None = None
    """The month-of-quarter profile of wins the timing followed (:mod:`forecast.revenue.calendar`)."""

    def to_dict(self) -> dict[str, Any]:
        """The forecast as ``--json`` prints it and the HTTP service returns it."""
        out: dict[str, Any] = {
            "ok": True,
            "as_of": self.as_of.isoformat(),
            "by": self.by,
            "group": self.group,
            "simulations": self.simulations,
            "models": self.models,
            "warnings": self.warnings,
            "open_deals": self.open_deals,
            "open_pipeline": self.open_pipeline,
            "model_error": self.model_error,
            "forecast": self.forecast,
            "goals": self.goals.to_dict(),
            "pacing": self.pacing,
        }
        if self.calendar is not None:
            out["calendar"] = self.calendar
        if self.output is not None:
            out["output"] = str(self.output)
        return out


def revenue_job(
    settings: Settings,
    *,
    as_of: pd.Timestamp | None,
    periods: int,
    by: str,
    group: str | None,
    n_sims: int,
    seed: int = 0,
    models: DealModels | None = None,
    refs: dict[str, ModelRef] | None = None,
    win_level: str = "deal_win",
    shock: CommonShock | None = None,
    crm: tuple[Mapping[str, pd.DataFrame], SalesPipeline] | None = None,
    data: TrackingData | None = None,
    open_deals: OpenDeals | None = None,
    calendar: CalendarSettings | None = None,
) -> RevenueForecast:
    """Forecast the next periods against quota.

    ``models`` are the two models to use (the HTTP service passes the ones it serves); without
    them, ``refs`` name them, by default the champions bound to this warehouse
    (:func:`champion_models`). ``win_level``: where the open deals' win probability comes from
    (:class:`~forecast.revenue.engine.ShockSettings`). ``shock`` are the common shocks' spreads of an
    earlier forecast of the same warehouse, as-of, models and ``win_level`` (its ``spreads``: they
    depend on nothing else), so that another grouping or horizon does not score the past cuts again
    (``None``: estimated here).

    ``crm`` are the warehouse's canonical frames and pipeline already in memory (``None``: read here),
    and ``data`` the CRM already prepared at the forecast's as-of
    (:func:`forecast.tracking.data.prepare`; ``None`` or another as-of: prepared here), so that a
    caller holding both (the dashboard) does not read and prepare a large CRM a second time. The
    frames need only hold what the forecast's cut at as-of keeps
    (:func:`forecast.tracking.data.crm_frames`): the numbers are the same. ``open_deals`` are the
    ``scored`` of an earlier forecast of the same frames (another grouping or horizon): used when
    their as-of and model versions are this forecast's, so the CRM is not cut and every open deal
    scored again. ``calendar``: how the month-of-quarter profile of wins is measured (``None``:
    defaults; :mod:`forecast.revenue.calendar`).
    """
    from forecast.tracking.data import default_as_of

    frames, pipeline = crm if crm is not None else read_crm(settings)
    when = resolve_as_of(as_of, lambda: default_as_of(frames))
    warnings: list[str] = []
    if models is None:
        models, warnings = champion_models(settings, refs)
    grid = period_grid(when, periods, by)
    if data is None or data.as_of != when:
        data = goals_view(frames, pipeline, when)  # once, for the quotas and the pacing
    quotas = _quota_lookup(frames, pipeline, when, group, data)
    result, scored, known = forecast_with_open_deals(
        frames,
        pipeline,
        when,
        models,
        grid,
        by=group,
        quotas=quotas,
        n_sims=n_sims,
        seed=seed,
        shock=shock if shock is not None else ShockSettings(win_level=win_level),
        deals_at_as_of=open_deals,
        calendar=calendar,
    )
    pace = pacing(frames, pipeline, when, grid[0], data)
    return RevenueForecast(
        as_of=when,
        by=by,
        group=group,
        simulations=n_sims,
        models=models.versions,
        warnings=warnings,
        open_deals=len(scored),
        open_pipeline=float(pd.to_numeric(scored["amount"], errors="coerce").fillna(0).sum()),
        model_error={
            **{k: (v if math.isfinite(v) else None) for k, v in result.shock.summary().items()},
            "win_level": result.shock.win_level,
            "win_level_errors": result.shock.level_errors,
        },
        forecast=_records(result.table),
        goals=_goals(result.table, pace, grid[0], quotas, when),
        pacing=_records(pace),
        spreads=result.shock,
        scored=known,
        calendar=result.calendar.to_dict(),
    )


def _goals(
    table: pd.DataFrame,
    pace: pd.DataFrame,
    current: Period,
    quotas: Callable[[str, pd.Timestamp, pd.Timestamp], float],
    when: pd.Timestamp,
) -> Goals:
    """The current period's whole-team row of ``table`` against its goal, weekly, daily and to date."""
    total = table[(table["group"] == ALL) & (table["period"] == current.label)].iloc[0]
    goal_to_date = float(pace["cumulative_goal"].iloc[-1]) if len(pace) else math.nan
    won = float(total["won_to_date"])
    quota = float(total["quota"])
    days = (current.end - current.start) / pd.Timedelta(days=1)
    figures = {
        "goal": quota,
        "monthly_goal": _goal_of_month(quotas, when),
        "weekly_goal": quota / days * 7 if quota == quota else math.nan,
        "daily_goal": quota / days if quota == quota else math.nan,
        "won_to_date": won,
        "goal_to_date": goal_to_date,
        "pace_to_date": won / goal_to_date if goal_to_date and goal_to_date == goal_to_date else math.nan,
        "projected": float(total["expected"]),
        "projected_attainment": float(total["projected_attainment"]),
        "p_hit_quota": float(total["p_hit_quota"]),
    }
    return Goals(
        current.label,
        **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in figures.items()},
    )


def _goal_of_month(quotas: Callable[[str, pd.Timestamp, pd.Timestamp], float], when: pd.Timestamp) -> float:
    start = when.normalize().replace(day=1)
    return quotas(ALL, start, start + pd.DateOffset(months=1))


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d")
    records = out.to_dict("records")
    return [
        {str(k): (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
        for r in records
    ]


BACKTEST_EXPERIMENT = "revenue_backtest"
"""The MLflow experiment of the revenue backtests."""


@dataclass(frozen=True, slots=True)
class RevenueBacktest:
    """What :func:`backtest_job` measured and where it was logged."""

    result: BacktestResult
    run_id: str
    experiment: str

    def periods(self) -> list[dict[str, Any]]:
        """One record per backtest period (``as_of`` as a date)."""
        table = self.result.table
        dated = table.assign(as_of=table["as_of"].dt.strftime("%Y-%m-%d"))
        return [{str(k): v for k, v in row.items()} for row in dated.to_dict("records")]

    def to_dict(self) -> dict[str, Any]:
        """The backtest as ``--json`` prints it."""
        return {
            "ok": True,
            "run_id": self.run_id,
            "experiment": self.experiment,
            "metrics": self.result.metrics,
            "periods": self.periods(),
        }


def backtest_job(
    settings: Settings,
    *,
    date_from: pd.Timestamp,
    date_to: pd.Timestamp,
    every: str,
    retrain_every: int,
    n_sims: int,
    win_config: TrainingConfig,
    by: str | None = None,
    close_config: TrainingConfig,
    shock: ShockSettings | None = None,
    progress: Callable[[str], None] | None = None,
    calendar: CalendarSettings | None = None,
) -> RevenueBacktest:
    """Backtest on the warehouse and log the run (metrics, table, band plot) to MLflow."""
    frames, pipeline = read_crm(settings)
    dates = [p.start for p in period_grid(date_from, _count(date_from, date_to, every), every)]
    dates = [d for d in dates if d <= date_to]
    if not dates:
        raise ValueError(f"no {every} starts between {date_from.date()} and {date_to.date()}")
    result = backtest_revenue(
        frames,
        pipeline,
        dates,
        lambda d: period_grid(d, 1, every)[0],
        win_config,
        close_config,
        retrain_every=retrain_every,
        by=by,
        new_deals=NewDealSettings(),
        shock=shock,
        n_sims=n_sims,
        progress=progress,
        calendar=calendar,
    )
    run_id = log_backtest(
        result,
        settings,
        every=every,
        retrain_every=retrain_every,
        by=by,
        model_error=shock.include if shock is not None else True,
        calendar=calendar.include if calendar is not None else True,
    )
    return RevenueBacktest(result, run_id, BACKTEST_EXPERIMENT)


def _count(start: pd.Timestamp, end: pd.Timestamp, every: str) -> int:
    days = (end - start) / pd.Timedelta(days=1)
    per = {"week": 7, "month": 28, "quarter": 89}[every]
    return max(int(days // per) + 2, 1)


def log_backtest(result: BacktestResult, settings: Settings, **params: Any) -> str:
    """Log a backtest as an MLflow run of the ``revenue_backtest`` experiment; the run's id."""
    import mlflow

    from forecast.registry import client, ensure_experiment

    client(settings)
    exp = ensure_experiment(BACKTEST_EXPERIMENT, settings)
    with mlflow.start_run(experiment_id=exp, run_name="revenue-backtest") as run:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        flat = {
            f"{m}_{k}": v for m, vals in result.metrics.items() for k, v in vals.items() if np.isfinite(v)
        }
        mlflow.log_metrics(flat)
        mlflow.log_text(csv_text(result.table), "backtest.csv")
        if len(result.groups):
            mlflow.log_text(csv_text(result.groups), "backtest_by_group.csv")
        with tempfile.TemporaryDirectory() as tmp:
            png = band_plot(result.table, Path(tmp) / "forecast_band.png")
            mlflow.log_artifact(str(png))
    return str(run.info.run_id)


def band_plot(table: pd.DataFrame, path: Path) -> Path:
    """The P10-P90 band and P50 of each backtest period against the actual and the baselines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(9.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    x = np.arange(len(table))
    ax.fill_between(x, table["p10"], table["p90"], alpha=0.25, label="P10-P90")
    ax.plot(x, table["p50"], label="P50")
    ax.plot(x, table["actual"], marker="o", color="black", label="actual")
    ax.plot(x, table["stage_weighted"], linestyle="--", label="stage-weighted")
    ax.plot(x, table["run_rate"], linestyle=":", label="run rate")
    ax.set_xticks(x, table["period"], rotation=45)
    ax.set_ylabel("revenue won")
    ax.set_title("Revenue forecast backtest")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    figure.savefig(path, format="png", bbox_inches="tight")
    return path
