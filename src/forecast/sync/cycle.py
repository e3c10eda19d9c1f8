"""One sync cycle: ingest the new exports, rescore, write the changed scores as import files, log.

The steps are the existing jobs: :func:`forecast.data.ingest.ingest` per export,
:func:`forecast.batch.score_job` per entity (with ``--write-back``, as ``forecast score leads|deals
--from-warehouse --write-back`` runs it) and :func:`forecast.crm_export.job.export_scores` (which
writes only the records whose exported cells changed). Each step commits on its own, atomically;
the cycle's own state (which exports are done, the ``sync_cycles`` row) is committed last
(:func:`forecast.sync.state.commit_cycle`). A cycle stopped anywhere before that commit is redone
whole by the next one: its exports are found again, re-ingested (no row changes twice), rescored,
and only the records not yet exported are exported.

The cycle does not loop, sleep or handle signals (:mod:`forecast.sync.runner` does): it calls
``checkpoint(step)`` between steps, which may raise (e.g. :class:`SyncStopped`) to stop it there.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import duckdb

from forecast.config import Settings
from forecast.crm_export.formats import TARGETS
from forecast.data.ingest import IngestReport, RejectsRefusedError, SourceFormat, ingest
from forecast.data.pipeline import SalesPipeline
from forecast.data.pipeline_learn import PipelineLearnError
from forecast.data.sources.base import SourceError
from forecast.data.warehouse import PipelineConflictError, Warehouse, WarehouseBusyError
from forecast.errors import InputError, cli_message
from forecast.logging import get_logger
from forecast.models.names import DEAL_WIN, LEAD_SCORING, TIME_TO_CLOSE
from forecast.sync.exports import Export, find_exports
from forecast.sync.report import CycleReport, ExportOutcome
from forecast.sync.state import commit_cycle, done_hashes
from forecast.timeutil import utc_now

log = get_logger("sync")

Checkpoint = Callable[[str], None]
"""Called with the next step's name (``ingest``, ``score``, ``export``, ``commit``) before it runs."""

FORMATS: tuple[SourceFormat, ...] = ("canonical", "maven", "salesforce")


class SyncStopped(Exception):  # noqa: N818  (a request, not an error)
    """A stop was asked for between two steps of a cycle; nothing of the cycle was committed."""


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """What a sync reads and writes.

    Attributes:
        source: The folder the CRM's exports are dropped in (:mod:`forecast.sync.exports`).
        source_format: The ingest format of the exports.
        target: The import format the scores are written in (``None``: scores are only stored).
        output_dir: Where the import files go (required with ``target``).
        mapping: A mapping file overriding the target's column names (``forecast export scores``'s).
    """

    source: Path
    source_format: str
    target: str | None = None
    output_dir: Path | None = None
    mapping: Path | None = None

    def check(self) -> None:
        """Raise :class:`InputError` naming the parameter when the configuration cannot work."""
        if self.source_format not in FORMATS:
            raise InputError(
                f"{self.source_format!r} must be one of {', '.join(FORMATS)}", parameter="format"
            )
        if self.target is not None and self.target not in TARGETS:
            raise InputError(f"{self.target!r} must be one of {', '.join(TARGETS)}", parameter="to")
        if (self.target is None) != (self.output_dir is None):
            raise InputError(
                "goes with --to: give both --to FORMAT and --output-dir DIR, or neither",
                parameter="output_dir",
            )
        if not self.source.is_dir():
            raise InputError(f"{self.source}: not a folder", parameter="source")
        if self.output_dir is not None and self.output_dir.resolve().is_relative_to(self.source.resolve()):
            raise InputError(
                f"{self.output_dir} is inside --source {self.source}: the written files would be read "
                "back as exports; give a folder outside it",
                parameter="output_dir",
            )


def _no_checkpoint(_step: str) -> None:
    return None


def run_cycle(settings: Settings, config: SyncConfig, checkpoint: Checkpoint | None = None) -> CycleReport:
    """Run one cycle and commit its state at the end.

    Args:
        settings: The warehouse, MLflow store and outputs folder.
        config: The sync folder, formats and output folder.
        checkpoint: Called before each step; whatever it raises stops the cycle uncommitted.

    Returns:
        The cycle's report (also stored in ``sync_cycles``).

    Raises:
        InputError: A bad configuration, or the warehouse is busy (:class:`WarehouseBusyError`).
        SyncStopped: Raised by ``checkpoint``; nothing of the cycle was committed.
    """
    config.check()
    check = checkpoint or _no_checkpoint
    clock = time.monotonic()
    report = CycleReport(
        cycle_id=uuid.uuid4().hex[:12],
        started_at=utc_now(),
        source=str(config.source),
        source_format=config.source_format,
        target=config.target,
    )
    warehouse = Warehouse(settings.warehouse)
    found = find_exports(config.source, config.source_format)
    report.notes += found.notes
    done = done_hashes(warehouse)
    new: list[Export] = []
    for export in found.exports:
        if export.sha256 not in done and all(e.sha256 != export.sha256 for e in new):
            new.append(export)
    report.files_seen = len(found.exports)
    report.files_skipped = len(found.exports) - len(new)
    pipeline = SalesPipeline.from_yaml(settings.pipeline_file) if settings.pipeline_file else None
    for export in new:
        check("ingest")
        report.outcomes.append(_ingest(export, config, warehouse, pipeline, settings.max_reject_share))
    if report.files_ingested:
        _rescore(settings, report, check)
        if config.target is not None and report.rows_scored:
            check("export")
            _export(settings, config, report)
    check("commit")
    report.finished_at = utc_now()
    report.seconds = time.monotonic() - clock
    commit_cycle(warehouse, report)
    return report


def _ingest(
    export: Export,
    config: SyncConfig,
    warehouse: Warehouse,
    pipeline: SalesPipeline | None,
    max_reject_share: float,
) -> ExportOutcome:
    """Ingest one export; a bad one is rejected with the reason (nothing of it is written)."""
    try:
        result = ingest(
            export.path,
            cast(SourceFormat, config.source_format),  # checked by SyncConfig.check
            warehouse,
            pipeline=pipeline,
            max_reject_share=max_reject_share,
        )
    except WarehouseBusyError:
        raise  # not the export's fault: the cycle stops uncommitted and the next one retries
    except RejectsRefusedError as exc:
        return _rejected(export, f"{exc}\n  first rejected row: {_first_reject(exc.report)}")
    except (SourceError, PipelineConflictError, PipelineLearnError, InputError) as exc:
        return _rejected(export, cli_message(exc))
    except ValueError as exc:
        return _rejected(export, f"{export.path}: cannot import ({exc})")
    except duckdb.Error as exc:
        return _rejected(export, f"{export.path}: the warehouse refused the import ({exc})")
    written = sum(t.get("inserted", 0) + t.get("updated", 0) for t in result.tables.values())
    rejected = sum(int(t["rejected"]) for t in result.tables.values())
    if rejected:
        log.warning(
            "sync: %s: %d rows rejected (kept in the warehouse table rejects), first: %s",
            export.path,
            rejected,
            _first_reject(result),
        )
    return ExportOutcome(export, "ingested", result.ingest_id, int(written), rejected)


def _rejected(export: Export, reason: str) -> ExportOutcome:
    log.warning("sync: rejected %s: %s", export.path, reason)
    return ExportOutcome(export, "rejected", reason=reason)


def _first_reject(report: IngestReport) -> str:
    """The first rejected row of an import: its file, row, column, rule and message."""
    if not report.sample_rejects:
        return "(none)"
    r: dict[str, Any] = report.sample_rejects[0]
    return (
        f"{r.get('source_file')} row {r.get('source_row')}, column {r.get('column')!r}: "
        f"rule {r.get('rule')} ({r.get('message')})"
    )


def _rescore(settings: Settings, report: CycleReport, check: Checkpoint) -> None:
    """Score the open leads and deals with their champions and store the scores (write-back)."""
    from mlflow.exceptions import MlflowException

    from forecast.batch import score_job
    from forecast.registry import CHAMPION, client

    store = client(settings)  # one client for the look-ups

    def has_champion(name: str) -> bool:
        try:
            store.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:
            return False
        return True

    plan: list[tuple[str, str, str | None]] = []
    for entity, model in (("lead", LEAD_SCORING), ("deal", DEAL_WIN)):
        if has_champion(model):
            plan.append((entity, model, None))
        else:
            report.notes.append(f"{model} has no champion: {entity}s are not scored")
    if plan and plan[-1][0] == "deal" and has_champion(TIME_TO_CLOSE):
        plan[-1] = ("deal", DEAL_WIN, TIME_TO_CLOSE)
    if not plan:
        report.errors.append(
            f"nothing to score with: neither {LEAD_SCORING} nor {DEAL_WIN} has a champion "
            "(train and promote them first: forecast run, or forecast train)"
        )
    for entity, model, close in plan:
        check("score")
        try:
            summary = score_job(
                settings,
                model_name=model,
                output=settings.outputs_dir / "sync" / f"{entity}_scores.parquet",
                write_to_warehouse=True,
                close_model=close,
                with_flags=True,
            )
        except WarehouseBusyError:
            raise
        except Exception as exc:  # the loop goes on; the next cycle redoes this one
            log.debug("sync: scoring failed", exc_info=exc)
            report.errors.append(f"scoring {entity}s: {cli_message(exc)}")
            continue
        report.rows_scored[entity] = summary.scored


def _export(settings: Settings, config: SyncConfig, report: CycleReport) -> None:
    """Write the changed scores as ``config.target``'s import files; a file with no row is not kept."""
    from forecast.crm_export.job import export_scores

    assert config.target is not None and config.output_dir is not None
    stem = f"scores_{report.started_at:%Y%m%dT%H%M%S}_{report.cycle_id}.csv"
    try:
        summary = export_scores(
            settings, target=config.target, output=config.output_dir / stem, mapping=config.mapping
        )
    except WarehouseBusyError:
        raise
    except Exception as exc:
        log.debug("sync: export failed", exc_info=exc)
        report.errors.append(f"export: {cli_message(exc)}")
        return
    report.notes += summary.notes
    for file in summary.files:
        if file.rows == 0:
            file.path.unlink(missing_ok=True)
        else:
            report.export_files.append(str(file.path))
        report.rows_exported += file.rows
