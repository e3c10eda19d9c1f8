"""``forecast export scores``: the latest stored scores as the CRM's import files, changed records only.

Reads the warehouse tables ``forecast score leads|deals --write-back`` fills (``lead_scores``,
``opportunity_scores``): of each, the latest scoring (the greatest ``as_of``; per record its latest
``scored_at``). Writes one CSV per entity atomically and formula-safe (:func:`forecast.io.write_csv`),
then records each written record's exported cells in the warehouse table ``score_exports`` (one
transaction per file, after the file is in place), so that the next export to the same target writes
only the records whose cells changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from forecast.config import Settings
from forecast.crm_export.formats import (
    ENTITIES,
    FILE_SUFFIX,
    ID_COLUMN,
    SCORE_COMMAND,
    TABLE,
    TARGETS,
    Entity,
    Target,
    columns_for,
    export_rows,
    fingerprint,
    load_mapping,
)
from forecast.data.warehouse import Warehouse
from forecast.errors import InputError
from forecast.io import write_csv


@dataclass(frozen=True, slots=True)
class ExportedFile:
    """One file written: its entity, path, rows written, unchanged records skipped, records stored."""

    entity: Entity
    path: Path
    rows: int
    unchanged_skipped: int
    stored: int

    def to_dict(self) -> dict[str, Any]:
        """The file as ``--json`` lists it."""
        return {
            "entity": self.entity,
            "path": str(self.path),
            "rows": self.rows,
            "unchanged_skipped": self.unchanged_skipped,
            "stored_scores": self.stored,
        }


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What :func:`export_scores` did."""

    target: Target
    all_records: bool
    files: list[ExportedFile]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary as ``--json`` prints it."""
        return {
            "ok": True,
            "target": self.target,
            "all": self.all_records,
            "files": [f.to_dict() for f in self.files],
            "rows": sum(f.rows for f in self.files),
            "unchanged_skipped": sum(f.unchanged_skipped for f in self.files),
            "notes": self.notes,
        }


EXPORTS_TABLE = "score_exports"
"""What was exported last, per target, entity and record: the exported cells' fingerprint."""
_CREATE_EXPORTS = (
    f"CREATE TABLE IF NOT EXISTS {EXPORTS_TABLE} (target VARCHAR, entity VARCHAR, id VARCHAR, "
    "fingerprint VARCHAR, exported_at TIMESTAMP, file VARCHAR)"
)


def output_path(output: Path, target: Target, entity: Entity, several: bool) -> Path:
    """Where ``entity``'s file goes: ``output`` itself, or ``<stem>_<suffix>.csv`` for several entities."""
    if not several:
        return output
    return output.with_name(f"{output.stem}_{FILE_SUFFIX[target][entity]}{output.suffix}")


def export_scores(
    settings: Settings,
    *,
    target: str,
    output: Path,
    entity: str = "all",
    mapping: Path | None = None,
    all_records: bool = False,
) -> ExportSummary:
    """Write the latest stored scores of ``entity`` (lead, deal or all) as ``target``'s import files.

    Only records whose exported cells changed since the last export to ``target`` are written,
    unless ``all_records``. A file is always written (with only its header when nothing changed).

    Raises:
        InputError: A bad target, entity, output name or mapping file, or no scores stored.
        FileNotFoundError: No warehouse.
    """
    if target not in TARGETS:
        raise InputError(f"--to {target!r} must be one of {', '.join(TARGETS)}")
    if entity not in (*ENTITIES, "all"):
        raise InputError(f"--entity {entity!r} must be lead, deal or all")
    if output.suffix.lower() != ".csv":
        raise InputError(f"{output}: --output must end in .csv")
    tgt: Target = target
    chosen: list[Entity] = list(ENTITIES) if entity == "all" else [entity]  # type: ignore[list-item]
    overrides = load_mapping(mapping) if mapping is not None else None
    columns = {e: columns_for(tgt, e, overrides) for e in chosen}
    warehouse = Warehouse(settings.warehouse)
    with warehouse.connect(read_only=True) as con:
        stored = {e: _latest_scores(con, e) for e in chosen}
        previous = {e: _previous(con, tgt, e) for e in chosen}
    missing = [e for e in chosen if stored[e] is None]
    if len(missing) == len(chosen):
        raise InputError(
            "; ".join(f"no scores stored: run {SCORE_COMMAND[e]} --write-back first" for e in missing)
        )
    notes = [f"no {e} scores stored (run {SCORE_COMMAND[e]} --write-back): no {e} file" for e in missing]
    files: list[ExportedFile] = []
    for e in chosen:
        scores = stored[e]
        if scores is None:
            continue
        rows = export_rows(scores, e, tgt, columns[e])
        prints = [fingerprint(r, columns[e]) for r in rows.to_dict(orient="records")]
        ids = scores[ID_COLUMN[e]].astype(str).tolist()
        changed = [all_records or previous[e].get(i) != p for i, p in zip(ids, prints, strict=True)]
        path = output_path(output, tgt, e, len(chosen) > 1)
        write_csv(rows.loc[changed].reset_index(drop=True), path)
        written = [(i, p) for i, p, c in zip(ids, prints, changed, strict=True) if c]
        _record(warehouse, tgt, e, written, path)
        files.append(ExportedFile(e, path, len(written), len(ids) - len(written), len(ids)))
    return ExportSummary(tgt, all_records, files, notes)


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchone()
    return bool(found and found[0])


def _latest_scores(con: duckdb.DuckDBPyConnection, entity: Entity) -> pd.DataFrame | None:
    """The latest scoring of ``entity``: the greatest ``as_of``, one row per record (``None``: none)."""
    table, id_col = TABLE[entity], ID_COLUMN[entity]
    if not _table_exists(con, table):
        return None
    frame = con.execute(
        f'SELECT * FROM "{table}" WHERE as_of = (SELECT max(as_of) FROM "{table}") '
        f'QUALIFY row_number() OVER (PARTITION BY "{id_col}" ORDER BY scored_at DESC NULLS LAST) = 1 '
        f'ORDER BY "{id_col}"'
    ).df()
    return None if frame.empty else frame


def _previous(con: duckdb.DuckDBPyConnection, target: Target, entity: Entity) -> dict[str, str]:
    """The fingerprint last exported to ``target`` of each record of ``entity``."""
    if not _table_exists(con, EXPORTS_TABLE):
        return {}
    rows = con.execute(
        f"SELECT id, fingerprint FROM {EXPORTS_TABLE} WHERE target = ? AND entity = ?", [target, entity]
    ).fetchall()
    return {str(i): str(p) for i, p in rows}


def _record(
    warehouse: Warehouse, target: Target, entity: Entity, written: list[tuple[str, str]], path: Path
) -> None:
    """Store what was just written to ``path`` (one transaction), replacing the records' earlier exports."""
    if not written:
        return
    when = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    ids = [i for i, _ in written]
    rows = [(target, entity, i, p, when, str(path)) for i, p in written]
    with warehouse.connect() as con:
        con.begin()
        try:
            con.execute(_CREATE_EXPORTS)
            con.execute(
                f"DELETE FROM {EXPORTS_TABLE} WHERE target = ? AND entity = ? AND list_contains(?, id)",
                [target, entity, ids],
            )
            con.executemany(f"INSERT INTO {EXPORTS_TABLE} VALUES (?, ?, ?, ?, ?, ?)", rows)
            con.commit()
        except BaseException:
            con.rollback()
            raise
