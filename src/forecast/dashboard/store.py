"""The dashboard's computed pages kept on disk, so that a restart does not compute them again.

A page's figures take minutes to compute on a large CRM (the Overview runs the whole ``forecast
revenue``; at a million leads the warm-up of the default views takes about 12 minutes). The reader
(:class:`~forecast.dashboard.data.Reader`) keeps each page's result in memory; this store also
writes it to a file, so that the next dashboard process over the same warehouse, champions, code
and configuration answers from the file instead of computing again.

- **What identifies a result:** a *fingerprint* of everything its figures depend on
  (:func:`fingerprint`): the warehouse file (its resolved path, size and modification time), the
  registry's champion versions and the models named by role, the settings, the configuration
  folder's files, the package's own files and the versions of the libraries that compute the
  figures; then the page and its filters. A result is read back only under the same fingerprint,
  so an ingest, a promotion, a new release or an edited ``flags.yaml`` computes afresh.
- **One folder per warehouse, one per fingerprint within it:** writing a fingerprint's first result
  removes the warehouse's other fingerprints (their results are never asked again).
- **Files are written whole or not at all** (a temporary file renamed into place), readable by their
  owner only (the folder ``0700``, the files ``0600``): a result is unpickled, so the folder must
  be the dashboard's own. A file that cannot be read back (truncated, another format) is removed
  and the page computed again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forecast.config import Settings

log = logging.getLogger(__name__)

FORMAT = 1
"""The files' layout: a change makes every older file unreadable (a miss, then removed)."""
LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "duckdb", "scipy", "mlflow")
"""The libraries whose version can change a figure (a model's predictions, a quantile)."""


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _files(root: Path) -> list[bytes]:
    """Each file under ``root`` (its relative path, then its bytes), caches and bytecode left out."""
    if not root.is_dir():
        return []
    out: list[bytes] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        out += [str(path.relative_to(root)).encode(), path.read_bytes()]
    return out


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The package's own files and the versions of :data:`LIBRARIES` (once per process)."""
    package = Path(str(resources.files("forecast")))
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name}={metadata.version(name)}".encode())
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=-".encode())
    return _digest([f"format {FORMAT}".encode(), *versions, *_files(package)])


def fingerprint(
    warehouse: Path,
    champions: Iterable[tuple[str, str | None]],
    refs: Mapping[str, Any],
    settings_json: str,
    config_dir: Path | None,
) -> str:
    """What a page's figures depend on, as one hex digest (see the module).

    Args:
        warehouse: The warehouse file (its resolved path, size and modification time are read).
        champions: Each registered model's champion version.
        refs: The models named by role (``--models``).
        settings_json: The settings, serialised.
        config_dir: The configuration folder (every file's bytes); ``None`` or absent: none.

    Raises:
        OSError: The warehouse cannot be read.
    """
    stat = warehouse.stat()
    return _digest(
        [
            str(warehouse.resolve()).encode(),
            f"{stat.st_size}:{stat.st_mtime_ns}".encode(),
            repr(tuple(champions)).encode(),
            repr(sorted((str(k), repr(v)) for k, v in refs.items())).encode(),
            settings_json.encode(),
            code_digest().encode(),
            *(_files(config_dir) if config_dir is not None else []),
        ]
    )


class PageStore:
    """Results kept on disk under ``root``, one folder per warehouse (see the module).

    Args:
        root: The store's folder (created ``0700`` at the first write).
        warehouse: The warehouse whose results these are (names its folder).
    """

    def __init__(self, root: Path, warehouse: Path) -> None:
        self.root = Path(root)
        self.folder = self.root / hashlib.sha256(str(Path(warehouse).resolve()).encode()).hexdigest()[:16]
        self._pruned: str | None = None

    def _path(self, fingerprint: str, key: tuple[Any, ...]) -> Path:
        name = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
        return self.folder / fingerprint[:32] / f"{name}.pickle"

    def get(self, fingerprint: str, key: tuple[Any, ...]) -> tuple[bool, Any]:
        """``(True, value)`` when ``key``'s result under ``fingerprint`` is held, else ``(False, None)``."""
        path = self._path(fingerprint, key)
        try:
            with path.open("rb") as handle:
                kept_format, kept_key, value = pickle.load(handle)
        except FileNotFoundError:
            return False, None
        except Exception:  # truncated, another format, a class gone: compute again
            log.warning("the dashboard's kept result %s cannot be read: removed", path, exc_info=True)
            path.unlink(missing_ok=True)
            return False, None
        if kept_format != FORMAT or kept_key != repr(key):
            return False, None
        return True, value

    def put(self, fingerprint: str, key: tuple[Any, ...], value: Any) -> bool:
        """Write ``key``'s result under ``fingerprint``, atomically (``False``: not written, logged)."""
        path = self._path(fingerprint, key)
        try:
            self._prune(fingerprint)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pickle")
            try:
                with os.fdopen(fd, "wb") as handle:  # mkstemp's file is the owner's alone (0600)
                    pickle.dump((FORMAT, repr(key), value), handle, protocol=pickle.HIGHEST_PROTOCOL)
                Path(tmp).replace(path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except Exception:  # a full disk or a value that does not pickle: the page is still answered
            log.warning("the dashboard's result could not be kept in %s", path.parent, exc_info=True)
            return False
        return True

    def _prune(self, fingerprint: str) -> None:
        """Remove the warehouse's other fingerprints' results (once per fingerprint and process)."""
        if self._pruned == fingerprint:
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder.mkdir(mode=0o700, exist_ok=True)
        for old in self.folder.iterdir():
            if old.is_dir() and old.name != fingerprint[:32]:
                shutil.rmtree(old, ignore_errors=True)
        self._pruned = fingerprint


def default_store(settings: Settings) -> PageStore:
    """The store of ``settings``' warehouse under ``<data_dir>/dashboard-cache``."""
    return PageStore(Path(settings.data_dir) / "dashboard-cache", settings.warehouse)
