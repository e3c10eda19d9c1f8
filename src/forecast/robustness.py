"""The robustness matrix: train through the project's own jobs on simulated worlds, judge on their future.

For each :class:`~forecast.data.simulation.worlds.World` the simulator runs for the world's history
plus ``future_months``. The CRM as it stood at the end of the history (the *cut*,
:func:`forecast.data.as_of.crm_as_of`) is ingested into a temporary DuckDB warehouse and the deal-win
and lead-scoring models are trained there by :func:`forecast.training.job.train_model_job`
(temporary local MLflow store), exactly as ``forecast train`` would. The logged models are then judged on the
``eval_months`` after the cut, which no step of training could see:

- deal win: weekly snapshots of the deals open in the window plus one snapshot at each new deal's
  creation, against the deal's eventual outcome (simulator ground truth; no censoring); baselines: the
  stage-only historical win rate of the CRM at the cut (the table a sales manager keeps) and the base
  rate; ECE overall and within each stage holding at least 100 deals; at creation, the AUC against
  the simulator's best achievable (``p_win_observable``);
- lead scoring: the same for leads, label ``label_converted`` (within the config's horizon, censored
  rows dropped); at creation against ``p_convert_observable``; plus the job's own gate (beats every
  baseline on its test split);
- revenue (optional): :func:`forecast.revenue.backtest.backtest_revenue` for each month of the window,
  models trained once at the cut; P10-P90 coverage and WAPE against the stage-weighted pipeline and
  the run rate.

A step that fails (e.g. ``train deal-win`` finding a one-class train split) is recorded as the result
of that step, with its message; the other steps still run.
"""

from __future__ import annotations

import json
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from forecast.config import Settings
from forecast.data.as_of import crm_as_of
from forecast.data.pipeline import SalesPipeline
from forecast.data.simulate import Simulation, simulate_crm
from forecast.data.simulation.worlds import World
from forecast.evaluate import baselines_not_beaten, ece_noise_floor, expected_calibration_error
from forecast.features.build import Entity, build_feature_table
from forecast.features.snapshots import AT_CREATION, LabelConfig
from forecast.features.source import frames_source
from forecast.models.config import TrainingConfig
from forecast.models.names import DEAL_WIN, LEAD_SCORING, TIME_TO_CLOSE

if TYPE_CHECKING:
    from forecast.revenue.engine import ShockSettings

AUC_MARGIN = 0.02
"""Deal win must beat the stage-only baseline's AUC by this much (where that baseline is informative)."""
STAGE_AUC_INFORMATIVE = 0.55
ECE_MAX = 0.03
STAGE_ECE_MAX = 0.05
STAGE_MIN_DEALS = 100
BEST_RATIO_MIN = 0.97


@dataclass(frozen=True)
class MatrixSettings:
    """How each world of the matrix is judged.

    Attributes:
        eval_months: Months after the cut the models are judged on.
        future_months: Months simulated after the cut (at least ``eval_months`` plus the lead label
            horizon, so that labels of the window are known).
        revenue: Also backtest the revenue forecast over the window (trains the win and close-date
            models once more; the slowest step).
        n_sims: Monte Carlo simulations of the revenue backtest.
        models: Which models to train and judge (``deal_win``, ``lead_scoring``; with
            ``time_to_close`` the win probability read from its competing risks, and its mean with
            the deal-win model's, are judged too: ``deal_eval["from_hazard"]``, ``["blend"]``).
    """

    eval_months: int = 3
    future_months: int = 6
    revenue: bool = True
    n_sims: int = 2_000
    models: tuple[str, ...] = (DEAL_WIN, LEAD_SCORING)


def _auc(y: np.ndarray, p: np.ndarray) -> float | None:
    if len(y) == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, p))


def _ece(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(expected_calibration_error(y, p)) if len(y) else None


def _brier(y: np.ndarray, p: np.ndarray) -> float | None:
    return float(np.mean((p - y) ** 2)) if len(y) else None


def _error(exc: BaseException) -> str:
    text = str(exc).strip().strip("'\"") or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}"


def cut_of(world: World) -> pd.Timestamp:
    """The end of the world's history: the moment the CRM is extracted and the models are trained."""
    return pd.Timestamp(world.start) + pd.DateOffset(months=world.months)


def _window_dates(cut: pd.Timestamp, months: int) -> list[pd.Timestamp]:
    end = cut + pd.DateOffset(months=months)
    return list(pd.date_range(cut, end, freq="7D", inclusive="left"))


def _future_rows(
    sim: Simulation,
    pipeline: SalesPipeline,
    entity: Entity,
    cut: pd.Timestamp,
    months: int,
    labels: LabelConfig,
) -> pd.DataFrame:
    """Weekly snapshots in the window after the cut plus creation snapshots there.

    Full CRM, point in time.
    """
    end = cut + pd.DateOffset(months=months)
    with frames_source(sim.tables, pipeline) as src:
        weekly = build_feature_table(src, entity, _window_dates(cut, months), labels, data_end=sim.end).frame
        born = build_feature_table(src, entity, AT_CREATION, labels, data_end=sim.end).frame
    born = born[(born["as_of"] >= cut) & (born["as_of"] < end)]
    weekly = weekly.assign(at_creation=False)
    born = born.assign(at_creation=True)
    return pd.concat([weekly, born], ignore_index=True)


def _write_crm(tables: Mapping[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _train(settings: Any, config: TrainingConfig) -> tuple[dict[str, Any], Any]:
    """Train through the job; return a small record and the logged pipeline (``None`` on failure)."""
    from forecast.models.win_horizon import p_win_days
    from forecast.registry import load_model
    from forecast.training.job import train_model_job

    started = time.perf_counter()
    try:
        summary = train_model_job(settings, config)
        model = load_model(config.model_name, settings, version=str(summary.version)).pipeline
    except Exception as exc:
        return {"ok": False, "error": _error(exc), "seconds": round(time.perf_counter() - started, 1)}, None
    metrics, baselines = summary.metrics, summary.baselines
    data, splits = summary.evaluation.get("data") or {}, summary.splits
    beats = bool(baselines) and all(
        (metrics.get("roc_auc") or 0.0) > (b.get("roc_auc") or 0.0)
        and (metrics.get("brier") or 1.0) < (b.get("brier") or 1.0)
        for b in baselines.values()
    )
    record = {
        "ok": True,
        "model_kind": summary.model_kind,
        "notes": summary.notes,
        "rows": data.get("rows"),
        "label_rate": data.get("label_rate"),
        "horizon_days": summary.horizon_days,
        "p_win_days": p_win_days(model, summary.horizon_days or 0) if summary.horizon_days else None,
        "win_blend_served": ((summary.evaluation.get("fit") or {}).get("win_blend") or {}).get("served"),
        "splits": splits,
        "internal": {
            "roc_auc": metrics.get("roc_auc"),
            "ece": metrics.get("ece"),
            "stage_roc_auc": (baselines.get("stage_win_rate") or {}).get("roc_auc"),
            "beats_every_baseline": beats,
            "promotion_losses": baselines_not_beaten(metrics, baselines, config.promotion.max_auc_drop),
        },
        "family": ((summary.evaluation.get("fit") or {}).get("family") or {}).get("chosen"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return record, model


def _predict(model: Any, rows: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(rows)[:, 1], dtype=float) if len(rows) else np.zeros(0)


def _stage_ece(
    y: np.ndarray, p: np.ndarray, stage: pd.Series, ids: pd.Series
) -> tuple[dict[str, float], dict[str, float]]:
    """ECE per stage holding ``STAGE_MIN_DEALS`` deals or more, and a calibrated model's ECE there.

    The second is the 90th percentile of :func:`ece_noise_floor` on the same rows (one draw per deal).
    """
    ece: dict[str, float] = {}
    noise: dict[str, float] = {}
    for name in sorted(stage.dropna().unique()):
        sel = (stage == name).to_numpy()
        if ids[sel].nunique() >= STAGE_MIN_DEALS:
            ece[str(name)] = round(float(expected_calibration_error(y[sel], p[sel])), 4)
            noise[str(name)] = round(ece_noise_floor(p[sel], groups=ids[sel].to_numpy())[1], 4)
    return ece, noise


def evaluate_deal_win(
    model: Any, rows: pd.DataFrame, truth: pd.DataFrame, past: Mapping[str, pd.DataFrame]
) -> dict[str, Any]:
    """Deal win on the future rows: model vs stage-only and base-rate baselines, calibration, at creation.

    Args:
        model: The logged pipeline (``predict_proba`` on snapshot rows); ``None`` when training failed.
        rows: Future deal snapshots (``at_creation`` marks the creation snapshots).
        truth: ``truth_opportunities`` of the simulation.
        past: The CRM at the cut (for the baselines a manager would have).

    Returns:
        Metrics (``None`` where undefined).
    """
    from forecast.revenue.backtest import stage_win_rates

    outcome = truth.set_index("opportunity_id")
    y = (outcome.loc[rows["opportunity_id"], "eventual_outcome"].to_numpy() == "won").astype(int)
    rates = stage_win_rates(past)
    stage_p = rows["stage"].map(rates).fillna(rates["__all__"]).to_numpy(dtype=float)
    base = float(rates["__all__"])
    out: dict[str, Any] = {
        "rows": len(rows),
        "deals": int(rows["opportunity_id"].nunique()),
        "win_rate": round(float(y.mean()), 4) if len(y) else None,
        "stage_auc": _auc(y, stage_p),
        "stage_only_ece": _ece(y, stage_p),
        "base_rate_past": round(base, 4),
        "base_brier": _brier(y, np.full(len(y), base)),
        "stage_brier": _brier(y, stage_p),
    }
    creation = rows["at_creation"].to_numpy(dtype=bool)
    best = outcome.loc[rows.loc[creation, "opportunity_id"], "p_win_observable"].to_numpy()
    out["creation_rows"] = int(creation.sum())
    out["best_auc_creation"] = _auc(y[creation], best)
    if model is None:
        return out
    p = _predict(model, rows)
    out.update(_judged(y, p, creation))
    out["mean_p"] = round(float(p.mean()), 4) if len(p) else None
    if len(p):
        floor, floor_q90 = ece_noise_floor(p, groups=rows["opportunity_id"].to_numpy())
        out["ece_noise"], out["ece_noise_q90"] = round(floor, 4), round(floor_q90, 4)
    per_stage, noise = _stage_ece(y, p, rows["stage"], rows["opportunity_id"])
    out["ece_by_stage"] = per_stage or None
    out["ece_noise_q90_by_stage"] = noise or None
    out["stage_ece_max"] = max(per_stage.values()) if per_stage else None
    return out


def evaluate_leads(
    model: Any, rows: pd.DataFrame, truth: pd.DataFrame, base_rate: float | None
) -> dict[str, Any]:
    """Lead scoring on the future rows: AUC, calibration, and at creation against the best achievable."""
    rows = rows[~rows["label_censored"].astype(bool)].reset_index(drop=True)
    y = rows["label_converted"].astype(int).to_numpy()
    creation = rows["at_creation"].to_numpy(dtype=bool)
    best = truth.set_index("lead_id").loc[rows.loc[creation, "lead_id"], "p_convert_observable"].to_numpy()
    out: dict[str, Any] = {
        "rows": len(rows),
        "convert_rate": round(float(y.mean()), 4) if len(y) else None,
        "creation_rows": int(creation.sum()),
        "best_auc_creation": _auc(y[creation], best),
    }
    if base_rate is not None:
        out["base_brier"] = _brier(y, np.full(len(y), base_rate))
    if model is None:
        return out
    p = _predict(model, rows)
    out.update(_judged(y, p, creation))
    out["ece_creation"] = _ece(y[creation], p[creation])
    return out


def _judged(y: np.ndarray, p: np.ndarray, creation: np.ndarray) -> dict[str, Any]:
    """AUC, ECE and Brier of ``p`` on all rows, and AUC on the creation snapshots."""
    return {
        "auc": _auc(y, p),
        "ece": _ece(y, p),
        "brier": _brier(y, p),
        "auc_creation": _auc(y[creation], p[creation]),
    }


def revenue_coverage(
    sim: Simulation,
    pipeline: SalesPipeline,
    cut: pd.Timestamp,
    months: int,
    win: TrainingConfig,
    close: TrainingConfig,
    n_sims: int,
    shock: ShockSettings | None = None,
) -> dict[str, Any]:
    """Backtest the revenue forecast for each month of the window, models trained once at the cut.

    ``shock``: the common shocks' and win level's settings (``None``: the defaults).
    """
    from forecast.revenue.backtest import backtest_revenue
    from forecast.revenue.engine import NewDealSettings
    from forecast.revenue.forecast import period_grid

    dates = [cut + pd.DateOffset(months=k) for k in range(months)]
    result = backtest_revenue(
        sim.tables,
        pipeline,
        dates,
        lambda d: period_grid(d, 1, "month")[0],
        win,
        close,
        retrain_every=months,
        new_deals=NewDealSettings(),
        n_sims=n_sims,
        shock=shock,
    )
    t = result.table
    inside = ((t["actual"] >= t["p10"]) & (t["actual"] <= t["p90"])).to_numpy()
    m = result.metrics
    return {
        "ok": True,
        "months": len(t),
        "inside_p10_p90": int(inside.sum()),
        "coverage": float(inside.mean()) if len(inside) else None,
        "wape": m["model"].get("wape"),
        "wape_stage_weighted": m["stage_weighted"].get("wape"),
        "wape_run_rate": m["run_rate"].get("wape"),
        "bias": m["model"].get("bias"),
        "win_levels": [str(v) for v in t["win_level"]] if "win_level" in t else [],
    }


def world_facts(sim: Simulation, cut: pd.Timestamp) -> dict[str, Any]:
    """What the simulated history looks like at the cut (for the report)."""
    truth = sim.truth["truth_opportunities"]
    opps = sim.tables["opportunities"]
    before = opps["created_at"] < cut
    won = truth[(truth["eventual_outcome"] == "won") & before.to_numpy()]
    created = opps.loc[won.index, "created_at"]
    cycle = (pd.to_datetime(won["eventual_closed_at"]) - created).dt.days
    reps = sim.params.get("reps", {})
    left = [r for r in reps.values() if r.get("left_at") and pd.Timestamp(r["left_at"]) < cut]
    return {
        "leads": int((sim.tables["leads"]["created_at"] < cut).sum()),
        "deals": int(before.sum()),
        "deals_closed": int((before & (opps["closed_at"] < cut)).sum()),
        "win_rate": round(float((truth.loc[before.to_numpy(), "eventual_outcome"] == "won").mean()), 4)
        if before.any()
        else None,
        "median_cycle_won": float(cycle.median()) if len(cycle) else None,
        "reps_left": len(left),
        "open_stages": len(sim.params["config"]["pipeline"]["stages"]) - 2,
    }


def gates(result: Mapping[str, Any]) -> dict[str, bool | None]:
    """The issue-15 gates of one world (``None`` where a gate does not apply or cannot be measured)."""
    lead = result.get(LEAD_SCORING, {})
    de, le = result.get("deal_eval", {}), result.get("lead_eval", {})
    trained = [result[m] for m in (DEAL_WIN, LEAD_SCORING) if m in result]
    out: dict[str, bool | None] = {
        # trained, and promotable: a model the gate refuses (it loses to a baseline) is never served
        "model_produced": all(
            bool(m.get("ok")) and not (m.get("internal") or {}).get("promotion_losses") for m in trained
        )
    }
    stage_auc = de.get("stage_auc")
    if de.get("auc") is None:
        out["deal_auc_vs_stage"] = False if stage_auc and stage_auc > STAGE_AUC_INFORMATIVE else None
    elif stage_auc is None or stage_auc <= STAGE_AUC_INFORMATIVE:
        out["deal_auc_vs_stage"] = None
    else:
        out["deal_auc_vs_stage"] = de["auc"] >= stage_auc + AUC_MARGIN
    out["deal_ece"] = None if de.get("ece") is None else de["ece"] <= ECE_MAX
    out["deal_stage_ece"] = None if de.get("stage_ece_max") is None else de["stage_ece_max"] <= STAGE_ECE_MAX
    if de.get("auc_creation") is not None and de.get("best_auc_creation"):
        out["deal_creation_ratio"] = de["auc_creation"] >= BEST_RATIO_MIN * de["best_auc_creation"]
    else:
        out["deal_creation_ratio"] = None
    if LEAD_SCORING not in result:
        return out
    internal = lead.get("internal", {})
    out["lead_beats_baselines"] = internal.get("beats_every_baseline") if lead.get("ok") else False
    out["lead_ece"] = None if le.get("ece") is None else le["ece"] <= ECE_MAX
    if le.get("auc_creation") is not None and le.get("best_auc_creation"):
        out["lead_creation_ratio"] = le["auc_creation"] >= BEST_RATIO_MIN * le["best_auc_creation"]
    else:
        out["lead_creation_ratio"] = None
    rev = result.get("revenue")
    if rev is not None:
        out["forecast_produced"] = bool(rev.get("ok"))
    return out


class WinFromHazard:
    """``p_win`` read from a time-to-close model: its cumulative incidence of winning at its last edge.

    The competing-risks hazard learns from every snapshot, censored ones included (issue 15 item 2:
    "derive the win probability from the same machinery if it does better, measured").
    """

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        """``(n, 2)`` probabilities of not winning / winning; raises without a win cause."""
        incidence = self.pipeline[-1].win_incidence(self.pipeline[:-1].transform(rows))
        if incidence is None:
            raise ValueError("the time-to-close model has no win cause (fitted without wins apart)")
        p = np.clip(np.asarray(incidence[:, -1], dtype=float), 0.0, 1.0)
        return np.column_stack([1.0 - p, p])


class MeanOf:
    """The mean of several models' probabilities (an equal-weight blend)."""

    def __init__(self, *models: Any) -> None:
        self.models = models

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        """``(n, 2)`` mean probabilities."""
        p = np.mean([m.predict_proba(rows)[:, 1] for m in self.models], axis=0)
        return np.column_stack([1.0 - p, p])


def work_settings(root: Path) -> Settings:
    """The settings of one world's run: its warehouse, MLflow store and outputs, all under ``root``."""
    return Settings(
        warehouse=root / "warehouse.duckdb",
        data_dir=root,
        mlflow_tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        mlflow_artifacts=root / "mlartifacts",
        models_dir=root / "models",
        outputs_dir=root / "outputs",
    )


JUDGED_KEYS = ("auc", "ece", "brier", "mean_p", "ece_noise_q90", "stage_ece_max", "auc_creation")
"""What is kept of the judgement of the win probabilities read from the time-to-close model."""


def _judge_deals(
    sim: Simulation,
    pipeline: SalesPipeline,
    cut: pd.Timestamp,
    settings: MatrixSettings,
    configs: Mapping[str, TrainingConfig],
    models: Mapping[str, Any],
    past: Mapping[str, pd.DataFrame],
) -> dict[str, Any]:
    try:
        win_h = int(configs[DEAL_WIN].snapshots.horizon_days)
        rows = _future_rows(sim, pipeline, "opportunity", cut, settings.eval_months, LabelConfig(90, win_h))
        truth = sim.truth["truth_opportunities"]
        out = evaluate_deal_win(models.get(DEAL_WIN), rows, truth, past)
        hazard, deal = models.get(TIME_TO_CLOSE), models.get(DEAL_WIN)
        if hazard is not None and getattr(hazard[-1], "competing_", False):
            try:
                variants: dict[str, Any] = {"from_hazard": WinFromHazard(hazard)}
                if deal is not None:
                    # the served p_win with the time-to-close model's incidence; where the served
                    # model is itself blended (models.win_blend), a quarter of it is its classifier
                    variants["blend"] = MeanOf(deal, WinFromHazard(hazard))
                for key, model in variants.items():
                    judged = evaluate_deal_win(model, rows, truth, past)
                    out[key] = {k: judged.get(k) for k in JUDGED_KEYS}
            except ValueError as exc:
                out["from_hazard"] = {"error": _error(exc)}
        return out
    except Exception as exc:
        return {"error": _error(exc), "trace": traceback.format_exc(limit=3)}


def _judge_leads(
    sim: Simulation,
    pipeline: SalesPipeline,
    cut: pd.Timestamp,
    settings: MatrixSettings,
    configs: Mapping[str, TrainingConfig],
    models: Mapping[str, Any],
    record: Mapping[str, Any],
) -> dict[str, Any]:
    try:
        lead_h = int(configs[LEAD_SCORING].snapshots.horizon_days)
        rows = _future_rows(sim, pipeline, "lead", cut, settings.eval_months, LabelConfig(lead_h, 90))
        base = record[LEAD_SCORING].get("label_rate")
        return evaluate_leads(models.get(LEAD_SCORING), rows, sim.truth["truth_leads"], base)
    except Exception as exc:
        return {"error": _error(exc), "trace": traceback.format_exc(limit=3)}


def run_world(
    world: World,
    configs: Mapping[str, TrainingConfig],
    settings: MatrixSettings,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Simulate one world, train at its cut through the jobs, and judge the models on its future.

    Args:
        world: The world (its ``months`` is the history the models get).
        configs: Training configs by stem: ``deal_win``, ``lead_scoring`` and, for the revenue
            backtest, ``time_to_close``.
        settings: Evaluation window and options.
        workdir: Folder for the warehouse and MLflow store (default: a temporary one, removed after).
        progress: Called with what is being done.

    Returns:
        A JSON-serialisable record: world, facts at the cut, training records, future metrics, gates.
    """
    from forecast.data.ingest import ingest
    from forecast.data.warehouse import Warehouse

    say = progress or (lambda _m: None)
    started = time.perf_counter()
    record: dict[str, Any] = {"world": world.model_dump(mode="json")}
    with tempfile.TemporaryDirectory(prefix="robustness-") as tmp:
        root = workdir or Path(tmp)
        say(f"{world.name}: simulating")
        sim = simulate_crm(world.to_config(extra_months=settings.future_months))
        pipeline = world.pipeline()
        cut = cut_of(world)
        record["cut"] = cut.isoformat()
        record["facts"] = world_facts(sim, cut)
        past = crm_as_of(sim.tables, cut, pipeline)
        say(f"{world.name}: ingesting the CRM at {cut.date()}")
        warehouse = Warehouse(root / "warehouse.duckdb")
        report = ingest(
            _write_crm(past, root / "crm"),
            "canonical",
            warehouse,
            pipeline=pipeline,
            as_of=cut + pd.Timedelta(days=400),  # planned actions may lie after the cut
        )
        record["ingest"] = {"rejected": int(sum(int(r.get("records", 0)) for r in report.rejects_by_rule))}
        app = work_settings(root)
        models: dict[str, Any] = {}
        for stem in settings.models:
            say(f"{world.name}: training {stem}")
            record[stem], models[stem] = _train(app, configs[stem])
        say(f"{world.name}: judging on the {settings.eval_months} months after the cut")
        if DEAL_WIN in settings.models:
            record["deal_eval"] = _judge_deals(sim, pipeline, cut, settings, configs, models, past)
        if LEAD_SCORING in settings.models:
            record["lead_eval"] = _judge_leads(sim, pipeline, cut, settings, configs, models, record)
        if settings.revenue:
            say(f"{world.name}: revenue backtest")
            try:
                record["revenue"] = revenue_coverage(
                    sim,
                    pipeline,
                    cut,
                    settings.eval_months,
                    configs[DEAL_WIN],
                    configs[TIME_TO_CLOSE],
                    settings.n_sims,
                )
            except Exception as exc:
                record["revenue"] = {"ok": False, "error": _error(exc)}
    record["gates"] = gates(record)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _short(text: Any, size: int = 110) -> str:
    text = str(text)
    return text if len(text) <= size else text[: size - 1] + "…"


def _mark(ok: bool | None) -> str:
    return "" if ok is None else (" ✓" if ok else " ✗")


def markdown_table(results: list[Mapping[str, Any]]) -> str:
    """One row per world: deal win against its baselines, calibration, leads, revenue coverage."""
    head = (
        "| world | history (mo) | deals at cut (closed) | judged rows (deals), won "
        "| deal win AUC | stage-only AUC | ECE "
        "| worst stage ECE | creation AUC / best | lead AUC | lead ECE | lead creation AUC / best "
        "| revenue P10–P90 hits | notes |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n"
    )
    lines = []
    for r in results:
        w, f, g = r["world"], r.get("facts", {}), r.get("gates", {})
        de, le = r.get("deal_eval", {}), r.get("lead_eval", {})
        dw, ls, rev = r.get(DEAL_WIN, {}), r.get(LEAD_SCORING, {}), r.get("revenue")
        notes = []
        if not dw.get("ok"):
            notes.append(f"deal win: {_short(dw.get('error', 'not run'))}")
        if LEAD_SCORING in r and not ls.get("ok"):
            notes.append(f"lead scoring: {_short(ls.get('error'))}")
        if rev is not None and not rev.get("ok"):
            same = rev.get("error") == dw.get("error")
            notes.append("revenue: same error" if same else f"revenue: {_short(rev.get('error'))}")
        for key in ("deal_eval", "lead_eval"):
            if r.get(key, {}).get("error"):
                notes.append(f"{key}: {_short(r[key]['error'])}")
        creation = (
            f"{_fmt(de.get('auc_creation'))} / {_fmt(de.get('best_auc_creation'))}"
            f"{_mark(g.get('deal_creation_ratio'))}"
        )
        lead_creation = (
            f"{_fmt(le.get('auc_creation'))} / {_fmt(le.get('best_auc_creation'))}"
            f"{_mark(g.get('lead_creation_ratio'))}"
        )
        revenue = "–" if rev is None or not rev.get("ok") else f"{rev['inside_p10_p90']}/{rev['months']}"
        lines.append(
            f"| {w['name']} | {w['months']} | {f.get('deals')} ({f.get('deals_closed')}) "
            f"| {de.get('rows', '–')} ({de.get('deals', '–')}), {_fmt(de.get('win_rate'), 2)} "
            f"| {_fmt(de.get('auc'))}{_mark(g.get('deal_auc_vs_stage'))} | {_fmt(de.get('stage_auc'))} "
            f"| {_fmt(de.get('ece'))}{_mark(g.get('deal_ece'))} "
            f"| {_fmt(de.get('stage_ece_max'))}{_mark(g.get('deal_stage_ece'))} "
            f"| {creation} | {_fmt(le.get('auc'))}{_mark(g.get('lead_beats_baselines'))} "
            f"| {_fmt(le.get('ece'))}{_mark(g.get('lead_ece'))} | {lead_creation} "
            f"| {revenue} | {'; '.join(notes).replace('|', '/')} |"
        )
    return head + "\n".join(lines) + "\n"


def write_results(results: list[Mapping[str, Any]], out: Path) -> tuple[Path, Path]:
    """Write ``<out>.json`` and ``<out>.md``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    js.write_text(json.dumps(list(results), indent=2, default=str) + "\n", encoding="utf-8")
    md.write_text(markdown_table(list(results)), encoding="utf-8")
    return js, md
