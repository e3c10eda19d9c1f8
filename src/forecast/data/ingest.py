"""Import a CRM export into the warehouse: read with an adapter, validate, write atomically."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd

from forecast.data.chunked import TableChunks, open_chunks, read_columns
from forecast.data.pipeline import DEFAULT_PIPELINE, SalesPipeline
from forecast.data.pipeline_learn import follows, learn_pipeline, needs_learning, stage_values
from forecast.data.reject_guard import ExcessiveRule, excessive_from_counts, excessive_rejects
from forecast.data.schema import TABLES
from forecast.data.sources import canonical, maven, salesforce, salesforce_stream
from forecast.data.sources.base import SourceBatch
from forecast.data.staged import StreamOptions, reject_examples, rejects_summary, stage_files, staging
from forecast.data.validate import TableCounts, ValidatedBatch, validate_batch
from forecast.data.warehouse import DuckDBView, Warehouse, write_batch
from forecast.timeutil import resolve_as_of, utc_now

SourceFormat = Literal["canonical", "maven", "salesforce"]
PipelineSource = Literal["given", "stored", "default", "learnt", "adapter"]


@dataclass
class IngestReport:
    """What an import did.

    Attributes:
        source_format: Adapter used.
        source_path: Path imported.
        warehouse: Warehouse file written to, or validated against in a dry run (``None`` for a
            dry run without an existing warehouse).
        as_of: Time validation treated as "now" (naive UTC).
        ingest_id: Id of the ``ingest_log`` row (``None`` for a dry run).
        tables: Per table: read, valid, rejected, files and (when written) inserted, updated, unchanged.
        rejects_by_rule: Rejected records per (table, rule).
        sample_rejects: Up to 20 reject records, for the summary.
        notes: The adapter's notes on what the source lacks.
        excessive_rejects: Rules that rejected more than the allowed share of a table, each with
            its count, examples, fix and (for a loss the adapter declares) why it is expected.
        refused: Whether an excessive rule not declared by the adapter refused the import (then
            nothing was written).
        pipeline: The pipeline the stages were checked against (:meth:`SalesPipeline.to_dict`).
        pipeline_source: Where it came from: ``given`` (``--pipeline`` or the settings), ``stored``
            (the warehouse's, from an earlier import), ``default``, ``learnt`` (from this import's
            deals, :mod:`forecast.data.pipeline_learn`) or ``adapter`` (a non-canonical source's own).
    """

    source_format: str
    source_path: str
    warehouse: str | None
    as_of: str
    ingest_id: str | None
    tables: dict[str, dict[str, Any]]
    rejects_by_rule: list[dict[str, Any]]
    sample_rejects: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    excessive_rejects: list[dict[str, Any]] = field(default_factory=list)
    refused: bool = False
    pipeline: dict[str, Any] = field(default_factory=dict)
    pipeline_source: str = "default"

    @property
    def balanced(self) -> bool:
        """Whether valid + rejected = read holds for every table."""
        return all(t["valid"] + t["rejected"] == t["read"] for t in self.tables.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "source_format": self.source_format,
            "source_path": self.source_path,
            "warehouse": self.warehouse,
            "as_of": self.as_of,
            "ingest_id": self.ingest_id,
            "tables": self.tables,
            "rejects_by_rule": self.rejects_by_rule,
            "sample_rejects": self.sample_rejects,
            "notes": self.notes,
            "excessive_rejects": self.excessive_rejects,
            "refused": self.refused,
            "balanced": self.balanced,
            "pipeline": self.pipeline,
            "pipeline_source": self.pipeline_source,
        }


class RejectsRefusedError(ValueError):
    """An import lost more than the allowed share of a table to one rule; nothing was written.

    Attributes:
        report: The import's report (``refused`` set, ``excessive_rejects`` listing the rules).
    """

    def __init__(self, report: IngestReport, message: str) -> None:
        super().__init__(message)
        self.report = report


def read_source(
    path: Path,
    source_format: SourceFormat,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    pipeline: SalesPipeline | None = None,
    as_of: pd.Timestamp | None = None,
) -> SourceBatch:
    """Read ``path`` with the adapter for ``source_format``.

    ``as_of`` separates a Salesforce export's past events from planned ones (default: now).

    Raises:
        SourceError: If the input cannot be read (the message names the file and problem).
        ValueError: For an unknown format.
    """
    if source_format == "canonical":
        return canonical.load(path, encoding=encoding, delimiter=delimiter, pipeline=pipeline)
    if source_format == "maven":
        return maven.load(path, encoding=encoding, delimiter=delimiter)
    if source_format == "salesforce":
        return salesforce.load(path, encoding=encoding, delimiter=delimiter, as_of=as_of)
    raise ValueError(f"unknown source format {source_format!r}; use canonical, maven or salesforce")


def ingest(
    path: Path,
    source_format: SourceFormat,
    warehouse: Warehouse | None,
    *,
    dry_run: bool = False,
    as_of: pd.Timestamp | None = None,
    encoding: str = "utf-8",
    delimiter: str = ",",
    pipeline: SalesPipeline | None = None,
    progress: Callable[[str], None] | None = None,
    max_reject_share: float = 1.0,
    options: StreamOptions | None = None,
) -> IngestReport:
    """Read, validate and (unless a dry run) write one import.

    Nothing is written if the input cannot be read or the write fails: the warehouse stays as it was.

    Args:
        path: File or directory to import.
        source_format: Adapter to use.
        warehouse: Target warehouse; ``None`` validates only (a dry run).
        dry_run: Validate only. If ``warehouse`` exists it is opened read-only and the import is
            judged exactly as ``ingest`` would judge it (foreign keys may point to stored rows;
            canonical imports without ``pipeline`` use the stored one); nothing is written.
        as_of: Latest allowed timestamp (default: now).
        encoding: CSV text encoding.
        delimiter: CSV delimiter.
        pipeline: SalesPipeline for canonical imports. Default: the warehouse's stored one when it holds
            deals (or the import's stages are all its own); else the default pipeline when the
            import's stages follow it (:func:`~forecast.data.pipeline_learn.follows`); else one
            learnt from the import's deals (:func:`~forecast.data.pipeline_learn.learn_pipeline`),
            which the write stores for later imports and commands.
        progress: Called with a short step description as the import proceeds.
        max_reject_share: Refuse the import (write nothing) when one rule rejects more than this
            share of a table's rows and the adapter does not declare that loss as known
            (:mod:`forecast.data.reject_guard`); a dry run reports ``refused`` instead.
        options: When a canonical import or a Salesforce export streams in bounded memory
            (:mod:`forecast.data.staged`) and in what chunks (default: from the settings).

    Returns:
        The report; ``report.balanced`` always holds.

    Raises:
        RejectsRefusedError: Too many rows of a table broke one rule (not in a dry run).
        PipelineLearnError: No pipeline was given or stored, the stages are not the default ones
            and the data does not tell which stage is won (or lost).
    """
    started = utc_now()
    as_of = resolve_as_of(as_of, lambda: started)
    say = progress or (lambda _msg: None)
    if dry_run and warehouse is not None and not warehouse.path.exists():
        warehouse = None  # nothing stored yet: the import is judged on its own
    stored: tuple[SalesPipeline | None, bool] = (None, False)
    if pipeline is None and source_format == "canonical" and warehouse is not None:
        stored = warehouse.stored_pipeline()
    streamed = options or StreamOptions.from_settings()
    if (source_format == "canonical" and streamed.applies(path)) or (
        source_format == "salesforce" and salesforce_stream.applies(path, streamed.min_bytes)
    ):
        return _ingest_streamed(
            path,
            source_format,
            warehouse,
            dry_run=dry_run,
            as_of=as_of,
            started=started,
            encoding=encoding,
            delimiter=delimiter,
            pipeline=pipeline,
            stored=stored,
            say=say,
            max_reject_share=max_reject_share,
            options=streamed,
        )
    say("reading")
    batch = read_source(
        path, source_format, encoding=encoding, delimiter=delimiter, pipeline=pipeline, as_of=as_of
    )
    origin, resolved = _resolve_pipeline(
        batch.source_format, lambda table, _columns: _frame(batch, table), pipeline, *stored, path
    )
    if resolved is not None:
        batch.pipeline = resolved
    ingest_id: str | None = None
    upserts: dict[str, Any] = {}
    if warehouse is None:
        validated = validate_batch(batch, as_of=as_of, progress=lambda t: say(f"validating {t}"))
    elif dry_run:
        with warehouse.connect(read_only=True) as con:
            validated = validate_batch(
                batch, as_of=as_of, warehouse=DuckDBView(con), progress=lambda t: say(f"validating {t}")
            )
    else:
        with warehouse.connect() as con:
            validated = validate_batch(
                batch, as_of=as_of, warehouse=DuckDBView(con), progress=lambda t: say(f"validating {t}")
            )
            outcome = _outcome(validated, batch, max_reject_share)
            checked = _report(outcome, batch.source_format, path, warehouse, as_of, None, {}, origin)
            if checked.refused:
                raise RejectsRefusedError(checked, refusal_message(checked))
            say("writing")
            ingest_id, upserts = write_batch(
                con,
                validated,
                source_format=source_format,
                source_path=str(path),
                as_of=as_of,
                started_at=started,
            )
    outcome = _outcome(validated, batch, max_reject_share)
    return _report(outcome, batch.source_format, path, warehouse, as_of, ingest_id, upserts, origin)


def _ingest_streamed(
    path: Path,
    source_format: SourceFormat,
    warehouse: Warehouse | None,
    *,
    dry_run: bool,
    as_of: pd.Timestamp,
    started: pd.Timestamp,
    encoding: str,
    delimiter: str,
    pipeline: SalesPipeline | None,
    stored: tuple[SalesPipeline | None, bool],
    say: Callable[[str], None],
    max_reject_share: float,
    options: StreamOptions,
) -> IngestReport:
    """:func:`ingest` of a canonical import or a Salesforce export in bounded memory.

    Validation streams through :mod:`forecast.data.staged`; a Salesforce export is mapped chunk by
    chunk on the way (:mod:`forecast.data.sources.salesforce_stream`).
    """
    say("reading")
    own_pipeline = DEFAULT_PIPELINE
    opened: list[tuple[str, TableChunks]]
    if source_format == "salesforce":
        export = salesforce_stream.open_export(
            path, chunk_rows=options.chunk_rows, encoding=encoding, delimiter=delimiter, as_of=as_of
        )
        opened, notes, own_pipeline = export.files, export.notes, export.pipeline
    else:
        files, notes = canonical.table_files(path)
        opened = [
            (
                table,
                open_chunks(
                    file,
                    chunk_rows=options.chunk_rows,
                    required_columns=TABLES[table].required_columns,
                    encoding=encoding,
                    delimiter=delimiter,
                ),
            )
            for table, file in files
        ]
    chunks_of = dict(opened)

    def frame_of(table: str, columns: tuple[str, ...]) -> pd.DataFrame | None:
        found = chunks_of.get(table)
        return None if found is None else read_columns(found, columns, categorical=columns == ("stage",))

    origin, resolved = _resolve_pipeline(source_format, frame_of, pipeline, *stored, path)
    chosen = resolved or own_pipeline
    connection = closing(duckdb.connect()) if warehouse is None else warehouse.connect(read_only=dry_run)
    folder = None if warehouse is None else warehouse.path.parent
    with connection as con, staging(con, folder, options) as catalog:
        own = None if warehouse is None else _catalog(con)
        staged = stage_files(
            con,
            catalog,
            opened,
            pipeline=chosen,
            as_of=as_of,
            notes=notes,
            warehouse_catalog=own,
            progress=lambda t: say(f"validating {t}"),
        )
        by_rule, sample, groups = rejects_summary(con, staged)
        read = {t: c.read for t, c in staged.counts.items()}
        excessive = excessive_from_counts(
            groups, read, max_reject_share, {}, lambda t, r, c: reject_examples(con, staged, t, r, c)
        )
        outcome = _Outcome(staged.counts, staged.notes, chosen, by_rule, sample, excessive, max_reject_share)
        report = _report(outcome, source_format, path, warehouse, as_of, None, {}, origin)
        if dry_run or warehouse is None:
            return report
        if report.refused:
            raise RejectsRefusedError(report, refusal_message(report))
        say("writing")
        ingest_id, upserts = write_batch(
            con, staged, source_format=source_format, source_path=str(path), as_of=as_of, started_at=started
        )
    return _report(outcome, source_format, path, warehouse, as_of, ingest_id, upserts, origin)


def _catalog(con: duckdb.DuckDBPyConnection) -> str:
    """The name of the connection's own database (the warehouse's catalog)."""
    row = con.execute("SELECT current_database()").fetchone()
    assert row is not None
    return str(row[0])


_PIPELINE_COLUMNS = ("opportunity_id", "stage", "outcome", "entered_at")
"""The columns a pipeline is resolved or learnt from (:mod:`forecast.data.pipeline_learn`)."""


def _resolve_pipeline(
    source_format: str,
    frame_of: Callable[[str, tuple[str, ...]], pd.DataFrame | None],
    given: SalesPipeline | None,
    stored: SalesPipeline | None,
    stored_has_deals: bool,
    path: Path,
) -> tuple[PipelineSource, SalesPipeline | None]:
    """The pipeline of a canonical import and where it came from (``None``: the adapter's own).

    Args:
        source_format: The adapter.
        frame_of: The import's raw rows of a table with (at least) the columns asked for, those
            it has (``None`` when the import has no such table). Only ``stage`` is asked for
            unless a pipeline must be learnt.
        given: The pipeline given (``--pipeline`` or the settings).
        stored: The warehouse's pipeline.
        stored_has_deals: Whether the warehouse holds deals.
        path: The import (named in a learning error).

    Raises:
        PipelineLearnError: The pipeline must be learnt and the data does not tell won from lost.
    """
    if source_format != "canonical":
        return "adapter", None
    if given is not None:
        return "given", given
    values = stage_values([frame_of("opportunities", ("stage",)), frame_of("stage_history", ("stage",))])
    if stored is not None and (stored_has_deals or follows(values, stored, share=1.0)):
        return "stored", stored
    if not needs_learning(values, DEFAULT_PIPELINE):
        return "default", DEFAULT_PIPELINE
    opportunities = frame_of("opportunities", _PIPELINE_COLUMNS)
    history = frame_of("stage_history", _PIPELINE_COLUMNS)
    return "learnt", learn_pipeline(opportunities, history, source=str(path))


def _frame(batch: SourceBatch, table: str) -> pd.DataFrame | None:
    """The batch's raw rows of one table (``None`` when the import has none)."""
    frames = [t.frame for t in batch.tables if t.table == table]
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def refusal_message(report: IngestReport) -> str:
    """Why an import was refused: each undeclared excessive rule with its count, examples and fix."""
    rules = [r for r in report.excessive_rejects if r.get("expected") is None]
    lines = [str(r["message"]) for r in rules]
    return (
        f"{report.source_path}: refused, nothing was written: one rule rejected too many rows "
        f"(FORECAST_MAX_REJECT_SHARE / --max-reject-share allows {rules[0]['allowed']:.0%} of a table)\n"
        + "\n".join(f"  - {line}" for line in lines)
    )


@dataclass
class _Outcome:
    """What validation found, from a :class:`ValidatedBatch` or a streamed import's staged rejects."""

    counts: dict[str, TableCounts]
    notes: list[str]
    pipeline: SalesPipeline
    by_rule: list[dict[str, Any]]
    sample: list[dict[str, Any]]
    excessive: list[ExcessiveRule]
    max_reject_share: float


def _outcome(validated: ValidatedBatch, batch: SourceBatch, max_reject_share: float) -> _Outcome:
    rej = validated.rejects
    by_rule: list[dict[Any, Any]] = []
    if not rej.empty:
        grouped = rej.groupby(["table", "rule", "column"], sort=True).size().reset_index(name="records")
        by_rule = grouped.sort_values("records", ascending=False, kind="stable").to_dict("records")
    sample = rej.head(20).astype(object).where(rej.head(20).notna(), None).to_dict("records")
    excessive = excessive_rejects(
        rej, {t: c.read for t, c in validated.counts.items()}, max_reject_share, batch.expected_rejects
    )
    return _Outcome(
        validated.counts,
        validated.notes,
        batch.pipeline,
        [{str(k): _plain(v) for k, v in r.items()} for r in by_rule],
        [{str(k): _plain(v) for k, v in r.items()} for r in sample],
        excessive,
        max_reject_share,
    )


def _report(
    outcome: _Outcome,
    source_format: str,
    path: Path,
    warehouse: Warehouse | None,
    as_of: pd.Timestamp,
    ingest_id: str | None,
    upserts: dict[str, Any],
    pipeline_source: str = "default",
) -> IngestReport:
    tables: dict[str, dict[str, Any]] = {}
    for table, counts in outcome.counts.items():
        entry = counts.as_dict()
        if table in upserts:
            entry.update(vars(upserts[table]))
        tables[table] = entry
    report = IngestReport(
        source_format=source_format,
        source_path=str(path),
        warehouse=None if warehouse is None else str(warehouse.path),
        as_of=as_of.isoformat(),
        ingest_id=ingest_id,
        tables=tables,
        rejects_by_rule=outcome.by_rule,
        sample_rejects=outcome.sample,
        notes=outcome.notes,
        pipeline=outcome.pipeline.to_dict(),
        pipeline_source=pipeline_source,
    )
    report.excessive_rejects = [
        {**e.as_dict(), "message": e.message(), "allowed": outcome.max_reject_share}
        for e in outcome.excessive
    ]
    report.refused = any(e.expected is None for e in outcome.excessive)
    if not report.balanced:  # pragma: no cover - an invariant, not an input condition
        raise AssertionError(f"row accounting broken: {tables}")
    return report


def _plain(value: Any) -> Any:
    """Make numpy scalars JSON-serialisable."""
    return value.item() if hasattr(value, "item") else value
