"""The main job (``forecast run``): the whole flow on the embedded default, a simulated CRM.

Simulate a CRM, ingest it, check its quality, train and promote lead scoring, score the open leads,
train and promote deal win and time to close, score the open deals, forecast the next three
months against quota and compute the dashboard's pages into its page store. It loads, calls the
other jobs and writes; the CLI only renders its :class:`MainJobResult`. A step that cannot run (no
deal champion after the promotion gate) is skipped with the reason, never faked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from forecast.config import Settings, config_file
from forecast.models.names import DEAL_WIN, LEAD_SCORING, TIME_TO_CLOSE

if TYPE_CHECKING:
    from forecast.batch import ScoreSummary
    from forecast.dashboard.warm import Prepared
    from forecast.data.ingest import IngestReport
    from forecast.data.simulate import SimulationConfig
    from forecast.revenue.job import RevenueForecast
    from forecast.training.job import TrainingSummary

Update = Callable[[str, float | None], None]
"""A step's progress: a description and the fraction done (``None``: unknown)."""
Steps = Callable[[str], AbstractContextManager[Update]]
"""Opens a step by its label and yields its progress callback (the CLI's progress bar)."""

SIMULATED_START = date(2024, 1, 1)
SIMULATED_MONTHS = 24
FORECAST_PERIODS = 3
FORECAST_SIMULATIONS = 10_000


@contextmanager
def _silent(_label: str) -> Iterator[Update]:
    yield lambda _description, _fraction: None


@dataclass(frozen=True, slots=True)
class MainJobResult:
    """What the main job did, step by step.

    Attributes:
        simulation: The simulated CRM: folder, seed, end, rows per table, files.
        ingest: The import's report.
        quality: The warehouse's data-quality summary.
        lead_model: The lead-scoring training run.
        lead_scores: The open leads scored.
        deal_models: The deal-win and time-to-close training runs, by model name.
        deal_scores: The open deals scored, or why they were not.
        revenue: The revenue forecast, or why there is none.
        dashboard: The dashboard's pages computed into its page store (``forecast dashboard
            --prepare``), so that the first ``forecast dashboard`` serves them at once; or why
            they were not (JSON ``{"failed": reason}``; the run's other outputs stand).
        outputs: Where each output went, and the commands to look at them.
    """

    simulation: dict[str, Any]
    ingest: IngestReport
    quality: dict[str, Any]
    lead_model: TrainingSummary
    lead_scores: ScoreSummary
    deal_models: dict[str, TrainingSummary]
    deal_scores: ScoreSummary | str
    revenue: RevenueForecast | str
    dashboard: Prepared | str
    outputs: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """The ``forecast run --json`` document."""
        return {
            "ok": True,
            "simulation": self.simulation,
            "ingest": {"ok": True, **self.ingest.as_dict()},
            "quality": self.quality,
            LEAD_SCORING: self.lead_model.to_dict(),
            "lead_scores": self.lead_scores.to_dict(),
            DEAL_WIN: self.deal_models[DEAL_WIN].to_dict(),
            TIME_TO_CLOSE: self.deal_models[TIME_TO_CLOSE].to_dict(),
            "deal_scores": _skipped_or(self.deal_scores),
            "revenue": _skipped_or(self.revenue),
            "dashboard": _skipped_or(self.dashboard, "failed"),
            "outputs": self.outputs,
        }


def _skipped_or(part: Any, why: str = "skipped") -> dict[str, Any]:
    """A step's JSON, or ``{why: reason}`` for a step that did not run (``skipped``) or failed."""
    return {why: part} if isinstance(part, str) else dict(part.to_dict())


def simulate_files(
    config: SimulationConfig, out: Path, file_format: Literal["parquet", "csv"], update: Update
) -> dict[str, Any]:
    """Simulate a CRM and write its files to ``out``; what ``forecast simulate --json`` prints."""
    from forecast.data.simulate import simulate_crm

    sim = simulate_crm(config, progress=update)
    update("writing files", None)
    files = sim.write(out, fmt=file_format)
    return {
        "ok": True,
        "out": str(out),
        "seed": config.seed,
        "end": sim.end.isoformat(),
        "rows": {name: len(frame) for name, frame in {**sim.tables, **sim.truth}.items()},
        "files": [str(f) for f in files],
    }


def main_job(
    settings: Settings,
    *,
    out: Path | None = None,
    leads: int = 20_000,
    seed: int = 42,
    steps: Steps = _silent,
) -> MainJobResult:
    """Run the whole flow on a simulated CRM.

    Args:
        settings: Where the warehouse, the registry and the outputs are.
        out: Folder of the simulated CRM (default: ``<data_dir>/crm``).
        leads: Simulated leads.
        seed: Seed of the simulation.
        steps: Opens each step's progress (the CLI passes its progress bar).

    Raises:
        forecast.data.ingest.RejectsRefusedError: The import was refused (the report says why).
        forecast.errors.InputError: A config or the warehouse cannot be used (e.g. another
            process holds it).
    """
    from forecast.data.simulate import SimulationConfig

    folder = out or settings.data_dir / "crm"
    config = SimulationConfig(n_leads=leads, seed=seed, start=SIMULATED_START, months=SIMULATED_MONTHS)
    with steps("simulate") as update:
        simulation = simulate_files(config, folder, "parquet", update)
    report, quality = _ingest(settings, folder, steps)
    lead_model, lead_scores = _leads(settings, steps)
    deal_models = {stem: _train(settings, stem, steps) for stem in (DEAL_WIN, TIME_TO_CLOSE)}
    deal_scores = _score_deals_if_possible(settings, steps)
    revenue = _revenue_if_possible(settings, steps)
    return MainJobResult(
        simulation=simulation,
        ingest=report,
        quality=quality,
        lead_model=lead_model,
        lead_scores=lead_scores,
        deal_models=deal_models,
        deal_scores=deal_scores,
        revenue=revenue,
        dashboard=_dashboard_pages(settings, steps),
        outputs=_outputs(settings, lead_model.model_name, lead_scores, deal_scores),
    )


def _ingest(settings: Settings, folder: Path, steps: Steps) -> tuple[IngestReport, dict[str, Any]]:
    """Import the simulated files and summarise the data's quality.

    The pipeline is ``FORECAST_PIPELINE_FILE``'s where set, else the one stored or learnt.
    """
    from forecast.data.ingest import ingest
    from forecast.data.pipeline import SalesPipeline
    from forecast.data.quality import quality_summary
    from forecast.data.warehouse import Warehouse

    pipeline = SalesPipeline.from_yaml(settings.pipeline_file) if settings.pipeline_file else None
    warehouse = Warehouse(settings.warehouse)
    with steps("ingest") as update:
        report = ingest(
            folder,
            "canonical",
            warehouse,
            dry_run=False,
            as_of=None,
            pipeline=pipeline,
            progress=lambda message: update(message, None),
            max_reject_share=settings.max_reject_share,
        )
    return report, quality_summary(warehouse)


def _train(settings: Settings, stem: str, steps: Steps) -> TrainingSummary:
    """Train the model of ``<config_dir>/<stem>.yaml`` and promote it if it passes the gate."""
    from forecast.models.config import TrainingConfig
    from forecast.training.job import train_model_job

    config = TrainingConfig.from_yaml(config_file(f"{stem}.yaml", settings))
    with steps(stem.replace("_", " ")) as update:
        return train_model_job(
            settings, config, promote_after=True, progress=lambda message: update(message, None)
        )


def _leads(settings: Settings, steps: Steps) -> tuple[TrainingSummary, ScoreSummary]:
    """Train lead scoring, then score the open leads into the outputs and the warehouse."""
    from forecast.batch import score_job

    trained = _train(settings, LEAD_SCORING, steps)
    with steps("lead scoring") as update:
        scored = score_job(
            settings,
            model_name=trained.model_name,
            output=settings.outputs_dir / "lead_scores.parquet",
            write_to_warehouse=True,
            progress=update,
        )
    return trained, scored


def _score_deals_if_possible(settings: Settings, steps: Steps) -> ScoreSummary | str:
    """Score the open pipeline with the deal champions, or say why it cannot be done (a text)."""
    from forecast.batch import score_job
    from forecast.registry import CHAMPION, version_by_alias

    if version_by_alias(DEAL_WIN, CHAMPION, settings) is None:
        return "deal_win has no champion (the trained model did not pass the promotion gate)"
    has_close = version_by_alias(TIME_TO_CLOSE, CHAMPION, settings) is not None
    with steps("deal scoring") as update:
        scored = score_job(
            settings,
            model_name=DEAL_WIN,
            output=settings.outputs_dir / "deal_scores.parquet",
            write_to_warehouse=True,
            progress=update,
            close_model=TIME_TO_CLOSE if has_close else None,
        )
    if not has_close:
        return replace(scored, notes=[*scored.notes, "time_to_close has no champion: no close dates"])
    return scored


def _revenue_if_possible(settings: Settings, steps: Steps) -> RevenueForecast | str:
    """The next three months' revenue against quota, or why it cannot be forecast (a text)."""
    from forecast.registry import CHAMPION, version_by_alias
    from forecast.revenue.job import revenue_job

    missing = [m for m in (DEAL_WIN, TIME_TO_CLOSE) if version_by_alias(m, CHAMPION, settings) is None]
    if missing:
        return f"no champion for {', '.join(missing)}"
    with steps("revenue forecast") as update:
        update("simulating", None)
        return revenue_job(
            settings,
            as_of=None,
            periods=FORECAST_PERIODS,
            by="month",
            group=None,
            n_sims=FORECAST_SIMULATIONS,
        )


def _dashboard_pages(settings: Settings, steps: Steps) -> Prepared | str:
    """The dashboard's pages into its page store, after the last write to the warehouse.

    What ``forecast dashboard --prepare`` does with its default models (no ``--models``): the
    first ``forecast dashboard`` then reads every warmed page back instead of computing it. A
    failure here is logged and said (a text), not raised: the run's outputs are written already.
    """
    import logging

    from forecast.binding import model_refs
    from forecast.dashboard.data import Reader
    from forecast.dashboard.store import MODEL_ROLES, default_store
    from forecast.dashboard.warm import prepare

    refs = model_refs(MODEL_ROLES)
    with steps("dashboard pages") as update:
        update("computing", None)
        try:
            return prepare(Reader(settings, refs=refs, store=default_store(settings, refs)))
        except Exception as exc:  # a page's error: the run's other outputs stand
            logging.getLogger(__name__).exception("computing the dashboard's pages failed")
            return f"the dashboard's pages were not computed ({type(exc).__name__}: {exc})"


def _outputs(
    settings: Settings, lead_model: str, lead_scores: ScoreSummary, deal_scores: ScoreSummary | str
) -> dict[str, str]:
    """Where the outputs went (``"None"``: not written), and the commands to look at them."""
    return {
        "warehouse": str(settings.warehouse),
        "lead_scores": str(lead_scores.output),
        "deal_scores": str(None if isinstance(deal_scores, str) else deal_scores.output),
        "model_card": str(settings.models_dir / lead_model / "model_card.md"),
        "deal_win_card": str(settings.models_dir / DEAL_WIN / "model_card.md"),
        "time_to_close_card": str(settings.models_dir / TIME_TO_CLOSE / "model_card.md"),
        "mlflow_ui": f"uv run mlflow ui --backend-store-uri {settings.mlflow_tracking_uri} --port 5000",
        "serve": "uv run forecast serve --warehouse   # the HTTP service, OpenAPI at http://127.0.0.1:3000/",
        "dashboard": "uv run forecast dashboard   # the manager's pages at http://127.0.0.1:8050/",
    }
