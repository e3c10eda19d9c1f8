"""What a sync cycle did: per export (ingested, or rejected with the reason) and for the whole cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from forecast.sync.exports import Export

Status = Literal["ingested", "rejected"]


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    """One export the cycle tried to ingest.

    Attributes:
        export: The export.
        status: ``ingested``, or ``rejected`` (nothing of it was written; the reason says why).
        ingest_id: The ``ingest_log`` row of the import (``None`` when rejected).
        rows_written: Rows inserted or updated (unchanged rows not counted).
        rows_rejected: Rows the import sent to ``rejects`` (each with file, row, column and rule).
        reason: Why the export was rejected (file, row, column and rule where known).
    """

    export: Export
    status: Status
    ingest_id: str | None = None
    rows_written: int = 0
    rows_rejected: int = 0
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The outcome as ``--json`` lists it."""
        return {
            "path": str(self.export.path),
            "sha256": self.export.sha256,
            "status": self.status,
            "ingest_id": self.ingest_id,
            "rows_written": self.rows_written,
            "rows_rejected": self.rows_rejected,
            "reason": self.reason,
        }


@dataclass(slots=True)
class CycleReport:
    """One sync cycle, as logged in the warehouse table ``sync_cycles`` and on stderr.

    Attributes:
        cycle_id: A short unique id (also in the names of the files the cycle wrote).
        started_at: When the cycle started (naive UTC).
        source: The sync folder.
        source_format: The ingest format.
        target: The export format (``None``: no files are written).
        files_seen: Exports found in the folder.
        files_skipped: Exports whose content an earlier cycle ingested or rejected.
        outcomes: The exports this cycle tried, in order.
        rows_scored: Rows scored per entity (``lead``, ``deal``); empty when nothing was ingested.
        rows_exported: Records written to the export files (changed ones only).
        export_files: The files written (a file with no changed record is not kept).
        seconds: The cycle's duration.
        errors: What went wrong beyond a rejected export (scoring, export); the ingested exports
            of a cycle with errors are not recorded as done, so the next cycle redoes them.
        notes: Facts worth knowing (files ignored, models missing).
        finished_at: When the cycle ended (naive UTC).
    """

    cycle_id: str
    started_at: pd.Timestamp
    source: str
    source_format: str
    target: str | None
    files_seen: int = 0
    files_skipped: int = 0
    outcomes: list[ExportOutcome] = field(default_factory=list)
    rows_scored: dict[str, int] = field(default_factory=dict)
    rows_exported: int = 0
    export_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished_at: pd.Timestamp | None = None

    @property
    def files_ingested(self) -> int:
        """Exports ingested by this cycle."""
        return sum(o.status == "ingested" for o in self.outcomes)

    @property
    def files_rejected(self) -> int:
        """Exports rejected by this cycle."""
        return sum(o.status == "rejected" for o in self.outcomes)

    @property
    def total_scored(self) -> int:
        """Rows scored over the entities."""
        return sum(self.rows_scored.values())

    def to_dict(self) -> dict[str, Any]:
        """The cycle as ``--json`` prints it."""
        return {
            "cycle_id": self.cycle_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "seconds": round(self.seconds, 3),
            "source": self.source,
            "source_format": self.source_format,
            "target": self.target,
            "files_seen": self.files_seen,
            "files_ingested": self.files_ingested,
            "files_skipped": self.files_skipped,
            "files_rejected": self.files_rejected,
            "rows_scored": self.rows_scored,
            "rows_exported": self.rows_exported,
            "export_files": self.export_files,
            "exports": [o.to_dict() for o in self.outcomes],
            "errors": self.errors,
            "notes": self.notes,
        }

    def log_line(self) -> str:
        """The one line the runner logs per cycle."""
        scored = ", ".join(f"{n:,} {e}s" for e, n in self.rows_scored.items()) or "0"
        line = (
            f"sync cycle {self.cycle_id}: {self.files_seen} files seen, {self.files_ingested} ingested, "
            f"{self.files_skipped} skipped, {self.files_rejected} rejected; scored {scored}; "
            f"exported {self.rows_exported:,} rows; {self.seconds:.1f} s; {len(self.errors)} errors"
        )
        return line
