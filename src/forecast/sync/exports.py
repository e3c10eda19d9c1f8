"""The exports waiting in a sync folder, each with the hash of its content.

An *export* is what one ``forecast ingest`` call imports:

- each subfolder of the sync folder (a drop such as ``2026-12-03/``), in name order, when it holds
  data files; its files are the ones directly inside it (the adapters read no deeper);
- for the ``canonical`` format, each ``<table>.csv|parquet`` file directly in the sync folder, in the
  tables' dependency order (so that a lead's account is imported before the lead); other data
  files there are ignored with a note (e.g. the simulator's ``truth_*.parquet``);
- for the other formats (whose adapters read a folder of several files), the sync folder itself
  when it holds data files directly.

An export's hash is the SHA-256 of its files' names and bytes: the same content is ingested once,
whatever the export is called, and a file rewritten with new rows is a new export. Hidden files
(``.name``) and files being written (``~name``, ``*.tmp``, ``*.part``) are not read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from forecast.data.readers import SUPPORTED_SUFFIXES
from forecast.data.schema import TABLE_ORDER
from forecast.errors import InputError

_CHUNK = 1 << 20
_IN_PROGRESS = (".tmp", ".part", ".partial", ".crdownload")


@dataclass(frozen=True, slots=True)
class Export:
    """One export found in the sync folder.

    Attributes:
        path: The file or folder ``forecast ingest`` reads.
        sha256: The hash of its files' names and content.
        files: Its data files, as paths relative to the sync folder.
    """

    path: Path
    sha256: str
    files: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Found:
    """What :func:`find_exports` found: the exports in ingest order, and notes on files ignored."""

    exports: list[Export]
    notes: list[str]


def _is_data_file(path: Path) -> bool:
    name = path.name
    if name.startswith((".", "~")) or name.lower().endswith(_IN_PROGRESS):
        return False
    return path.is_file() and path.suffix.lower() in SUPPORTED_SUFFIXES


def _data_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if _is_data_file(p)), key=lambda p: p.name)


def content_hash(files: list[Path], root: Path) -> str:
    """SHA-256 over each file's path relative to ``root`` and its bytes, in the order given."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode("utf-8") + b"\0")
        with file.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _export(path: Path, files: list[Path], root: Path) -> Export:
    return Export(path, content_hash(files, root), tuple(f.relative_to(root).as_posix() for f in files))


def find_exports(source: Path, source_format: str) -> Found:
    """The exports in ``source`` in the order they are to be ingested (see the module docstring).

    Args:
        source: The sync folder.
        source_format: The ingest format (``canonical``, ``maven``, ``salesforce``).

    Raises:
        InputError: ``source`` is not a folder.
    """
    if not source.is_dir():
        raise InputError(f"{source}: not a folder (give the folder the CRM exports are dropped in)")
    exports: list[Export] = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = _data_files(folder)
        if files:
            exports.append(_export(folder, files, source))
    top = _data_files(source)
    notes: list[str] = []
    if source_format == "canonical":
        rank = {table: i for i, table in enumerate(TABLE_ORDER)}
        tables = sorted((f for f in top if f.stem in rank), key=lambda f: (rank[f.stem], f.name))
        exports += [_export(f, [f], source) for f in tables]
        ignored = [f.name for f in top if f.stem not in rank]
        if ignored:
            notes.append(f"ignored files that are not canonical tables: {', '.join(ignored)}")
    elif top:
        exports.append(_export(source, top, source))
    return Found(exports, notes)
