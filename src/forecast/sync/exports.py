"""The exports waiting in a sync folder, each with the hash of its content.

An *export* is what one ``forecast ingest`` call imports, a folder:

- each subfolder of the sync folder (a drop such as ``2026-12-03/``), in name order;
- then the sync folder itself (where a CRM rewrites the same files at each export).

A folder is an export when it holds data files directly (the adapters read no deeper). An export's
files are its data files; for the ``canonical`` format only the ``<table>.csv|parquet`` files (the
others, e.g. the simulator's ``truth_*.parquet``, are ignored by the import and noted here). The
tables of one folder are imported together because they refer to each other both ways (a lead
names its opportunity, an opportunity its lead): one file alone could not be checked.

An export's hash is the SHA-256 of its files' names and bytes: the same content is ingested once,
whatever the folder is called, and a folder whose files the CRM rewrote (new or changed rows) is a
new export. Hidden files (``.name``) and files being written (``~name``, ``*.tmp``, ``*.part``)
are not read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from forecast.data.readers import SUPPORTED_SUFFIXES
from forecast.data.schema import TABLES
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
    folders = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
    exports: list[Export] = []
    notes: list[str] = []
    for folder in [*folders, source]:
        files = _data_files(folder)
        if source_format == "canonical":
            ignored = [f.relative_to(source).as_posix() for f in files if f.stem not in TABLES]
            if ignored:
                notes.append(f"ignored files that are not canonical tables: {', '.join(ignored)}")
            files = [f for f in files if f.stem in TABLES]
        if files:
            exports.append(_export(folder, files, source))
    return Found(exports, notes)
