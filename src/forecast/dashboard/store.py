"""The dashboard's computed pages kept on disk, so that a restart does not compute them again.

A page's figures take minutes to compute on a large CRM (the Overview runs the whole ``forecast
revenue``; at a million leads the warm-up of the default views takes about 12 minutes). The reader
(:class:`~forecast.dashboard.data.Reader`) keeps each page's result in memory; this store also
writes it to a file, so that the next dashboard process over the same warehouse, champions, code
and configuration answers from the file instead of computing again.

- **What identifies a result:** a *fingerprint* of everything its figures depend on
  (:func:`fingerprint`): the warehouse file and its write-ahead log (resolved path, size and
  modification time), the registry's champion versions and the versions the models named by role
  resolve to (each with its run), the settings that say where data, models and configuration are,
  the configuration folder's files, the package's own files and the versions of the libraries that
  compute the figures; then the page and its filters. A result is read back only under the same
  fingerprint, so an ingest, a promotion, a new release or an edited ``flags.yaml`` computes afresh.
- **One folder per warehouse and models named by role, one per fingerprint within it:** writing a
  fingerprint's first result removes that folder's other fingerprints not written in the last
  :data:`PRUNE_AFTER_SECONDS` (their results are never asked again; a second worker still on the
  previous fingerprint keeps its folder meanwhile), and beyond ``max_bytes`` the least recently
  written results go first.
- **A batch's prepare holds ``prepare.lock``** in a warehouse's folder (:meth:`PageStore.preparing`);
  a server's warm-up waits while it is held (:meth:`PageStore.prepare_running`). A batch that
  writes the warehouse before its prepare (an ingest, a score write-back) can ask the same from
  its start with a **hold** (:meth:`PageStore.hold`, ``forecast dashboard --hold``): a file
  ``hold-until`` with a deadline, which the prepare's end removes (:meth:`PageStore.held_until`).
- **Files are written whole or not at all** (a temporary file renamed into place). A result is
  unpickled, so only files the dashboard's own user wrote are read: every folder must be a real
  folder (no symbolic link) owned by that user with no access for others (a folder of the user's
  with looser modes is tightened to ``0700``; one of another user turns the store off, logged),
  and each file is opened without following links and read only if that user owns it with mode
  ``0600``. A file that cannot be read back (truncated, another format) is removed and its page
  computed again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from forecast.models.names import DEAL_WIN, TIME_TO_CLOSE

if TYPE_CHECKING:
    from forecast.config import Settings

log = logging.getLogger(__name__)

FORMAT = 1
"""The files' layout: a change makes every older file unreadable (a miss, then removed)."""
LIBRARIES = ("numpy", "pandas", "scikit-learn", "lightgbm", "duckdb", "scipy", "mlflow")
"""The libraries whose version can change a figure (a model's predictions, a quantile)."""
SETTINGS = (
    "warehouse",
    "mlflow_tracking_uri",
    "mlflow_artifacts",
    "models_dir",
    "config_dir",
    "project_root",
)
"""The settings a page's figures depend on (where the data, the models and the configuration are);
the others (a log level, the service's reload signal, its limits) do not change a figure."""
PRUNE_AFTER_SECONDS = 600.0
"""A folder of another fingerprint not written for this long is removed at a new fingerprint's first write."""
PREPARE_LOCK = "prepare.lock"
"""The file a batch's prepare holds locked in a warehouse's folder (:meth:`PageStore.preparing`)."""
HOLD_FILE = "hold-until"
"""The file in a warehouse's folder that holds a batch's window open (:meth:`PageStore.hold`)."""
MAX_HOLD_SECONDS = 24 * 3600.0
"""The longest hold a batch can ask for: a batch that dies leaves the warm-ups waiting no longer."""
MAX_BYTES = 4 * 2**30
"""The store's default size limit for one warehouse (the least recently written results go first)."""


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


def package_digest(package: Path, versions: Iterable[str]) -> str:
    """A digest of ``package``'s files (bytecode left out) and of the library ``versions`` given."""
    return _digest([f"format {FORMAT}".encode(), *(v.encode() for v in versions), *_files(package)])


@lru_cache(maxsize=1)
def code_digest() -> str:
    """This package's :func:`package_digest` with the versions of :data:`LIBRARIES` (once per process)."""
    versions = []
    for name in LIBRARIES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=-")
    return package_digest(Path(str(resources.files("forecast"))), versions)


def settings_text(settings: Settings) -> str:
    """The :data:`SETTINGS` a page's figures depend on, paths resolved, as text."""
    values = []
    for name in SETTINGS:
        value = getattr(settings, name, None)
        values.append(f"{name}={Path(value).resolve() if isinstance(value, Path) else value}")
    return "\n".join(values)


def fingerprint(
    warehouse: Path,
    champions: Iterable[tuple[str, str | None]],
    refs: Mapping[str, Any],
    settings_text: str,
    config_dir: Path | None,
) -> str:
    """What a page's figures depend on, as one hex digest (see the module).

    Args:
        warehouse: The warehouse file (its resolved path, size and modification time are read, and
            its write-ahead log's where one is left).
        champions: Each model's version, as the registry resolves them at the look
            (``forecast.dashboard.warm.champions``: the champions and the models named by role).
        refs: The models named by role (``--models``).
        settings_text: The settings that matter (:func:`settings_text`).
        config_dir: The configuration folder (every file's bytes); ``None`` or absent: none.

    Raises:
        OSError: The warehouse cannot be read.
    """
    stats = [warehouse.stat()]
    wal = warehouse.with_name(warehouse.name + ".wal")
    if wal.is_file():
        stats.append(wal.stat())
    return _digest(
        [
            str(warehouse.resolve()).encode(),
            *(f"{st.st_size}:{st.st_mtime_ns}".encode() for st in stats),
            repr(tuple(champions)).encode(),
            repr(sorted((str(k), str(v)) for k, v in refs.items())).encode(),
            settings_text.encode(),
            code_digest().encode(),
            *(_files(config_dir) if config_dir is not None else []),
        ]
    )


_WARNED: set[Path] = set()


def _private_dir(path: Path, make: bool) -> bool:
    """Whether ``path`` is a real folder of this user with no access for others.

    With ``make``, a missing folder is created ``0700``, and a folder of this user with looser modes
    is tightened. Another user's folder, or a link, is refused (``False``, logged).
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        if not make:
            return False
        path.mkdir(mode=0o700, exist_ok=True)  # another worker may make it meanwhile
        info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        if path not in _WARNED:  # once a folder, not at every look
            _WARNED.add(path)
            log.warning(
                "the dashboard's page store %s is not a folder of this user: pages are not kept", path
            )
        return False
    if stat.S_IMODE(info.st_mode) & 0o077:
        if not make:
            return False
        path.chmod(0o700)
    return True


def _write_private(path: Path, suffix: str, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` whole or not at all, the owner's alone (``0600``), through ``write``.

    A temporary file beside it (``.tmp-*``, never read as a result) renamed into place; not
    :func:`forecast.io.atomic_write`, which gives the file the umask's mode.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as handle:  # mkstemp's file is the owner's alone (0600)
            write(handle)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mtime(path: Path, default: float) -> float:
    """``path``'s modification time (``default``: removed meanwhile by another worker)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return default


class PageStore:
    """Results kept on disk under ``root``, one folder per warehouse and models named by role.

    Args:
        root: The store's folder (created ``0700`` at the first write).
        warehouse: The warehouse whose results these are (names its folder).
        scope: What else names the folder (the models named by role: the HTTP service and
            ``forecast dashboard --models`` over one warehouse keep their pages apart).
        max_bytes: Beyond this, the least recently written results of the folder are removed.
    """

    def __init__(self, root: Path, warehouse: Path, scope: str = "", max_bytes: int = MAX_BYTES) -> None:
        self.root = Path(root)
        name = hashlib.sha256(f"{Path(warehouse).resolve()}\n{scope}".encode()).hexdigest()[:16]
        self.folder = self.root / name
        batch = hashlib.sha256(f"{Path(warehouse).resolve()}\n(a batch's window)".encode()).hexdigest()[:16]
        self.hold_folder = self.root / batch
        """The folder of the warehouse's hold, whatever models a dashboard names: a batch's writes
        make every dashboard's pages over it stale (:meth:`hold`)."""
        self.max_bytes = max_bytes
        self._pruned: str | None = None

    def _path(self, fingerprint: str, key: tuple[Any, ...]) -> Path:
        name = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
        return self.folder / fingerprint[:32] / f"{name}.pickle"

    def _folders_ok(self, path: Path, make: bool) -> bool:
        return all(_private_dir(d, make) for d in (self.root, self.folder, path.parent))

    def get(self, fingerprint: str, key: tuple[Any, ...]) -> tuple[bool, Any]:
        """``(True, value)`` when ``key``'s result under ``fingerprint`` is held, else ``(False, None)``."""
        path = self._path(fingerprint, key)
        try:
            if not self._folders_ok(path, make=False):
                return False, None
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # absent, a link, unreadable: not held
            return False, None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
                log.warning("the dashboard's kept result %s is not this user's alone: not read", path)
                return False, None
            try:
                kept_format, kept_key, value = pickle.load(handle)
            except Exception:  # truncated, another format, a class gone: compute again
                log.warning("the dashboard's kept result %s cannot be read: removed", path, exc_info=True)
                self._remove(path)
                return False, None
        if kept_format != FORMAT or kept_key != repr(key):
            return False, None
        return True, value

    @contextlib.contextmanager
    def preparing(self) -> Iterator[None]:
        """Hold this folder's prepare lock while the block runs (``forecast dashboard --prepare``).

        A dashboard's warm-up over the same folder waits while it is held (:meth:`prepare_running`)
        and then reads the batch's pages back instead of computing them too. Two prepares take
        turns. Where the folder cannot be made the user's own, the block runs without the lock.
        """
        lock = self.folder / PREPARE_LOCK
        handle = None
        # the hold of this prepare's batch, if it asked for one: read before waiting for the lock,
        # so that a hold written meanwhile (the next batch's) is not taken for it
        batch = self._hold_identity()
        try:
            if self._made():
                handle = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:
            log.warning("the dashboard's prepare lock %s could not be taken", lock, exc_info=True)
        try:
            yield
        finally:
            try:
                # the batch's window ends with its prepare, whatever the outcome; a hold written
                # meanwhile (another file: the next batch's) is that batch's to end
                if batch is not None and self._hold_identity() == batch:
                    self._remove(self.hold_folder / HOLD_FILE)
            finally:
                if handle is not None:
                    os.close(handle)  # releases the lock

    def _made(self) -> bool:
        """Make the store's folder and this warehouse's, the user's alone (``False``: not the user's).

        Raises:
            OSError: A folder could not be made.
        """
        self.root.parent.mkdir(parents=True, exist_ok=True)  # the data folder (not the store's own)
        return all(_private_dir(d, make=True) for d in (self.root, self.folder))

    def _hold_identity(self) -> tuple[int, int] | None:
        """The hold file's inode and modification time (``None``: no hold file)."""
        try:
            info = (self.hold_folder / HOLD_FILE).lstat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns

    def hold(self, seconds: float) -> float | None:
        """Ask the warm-ups over this warehouse to wait ``seconds`` for a batch (0: end the wait now).

        Every dashboard over the warehouse waits, whatever models it names (:attr:`hold_folder`):
        the batch's writes make all their pages stale.

        A batch's window runs from its first write to the warehouse to its prepare: a dashboard that
        warmed the first write's state would compute minutes of pages (at a million leads, a CRM
        read of gigabytes) that the batch's next write makes stale, beside the batch. The hold is a
        file with its deadline (written whole, the owner's alone); the end of a prepare that
        started under it removes it (:meth:`preparing`; a hold written during the prepare is the
        next batch's and stays), and a batch that dies before then holds no longer than
        ``seconds`` (at most :data:`MAX_HOLD_SECONDS`). Requests are never held: a page asked for
        is computed.

        Returns:
            The deadline (seconds since the epoch), or ``None`` when the hold was removed or could
            not be written (logged; the warm-ups then do not wait).

        Raises:
            ValueError: ``seconds`` is negative, not a number or beyond :data:`MAX_HOLD_SECONDS`.
        """
        if not 0.0 <= seconds <= MAX_HOLD_SECONDS:  # (NaN fails too)
            raise ValueError(f"a hold lasts 0 to {MAX_HOLD_SECONDS:.0f} seconds: {seconds!r}")
        path = self.hold_folder / HOLD_FILE
        if seconds == 0.0:
            try:
                info = self.hold_folder.lstat()
                # the user's own folder, even with modes a later write tightens: a hold left there
                # would hold again then (a missing folder holds nothing)
                if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
                    self._remove(path)
            except FileNotFoundError:
                pass
            except OSError:  # a store root that is a file, or another user's folder
                log.warning("the dashboard's hold %s could not be removed", path, exc_info=True)
            return None
        until = time.time() + seconds
        try:
            if not self._made() or not _private_dir(self.hold_folder, make=True):
                return None
            _write_private(path, ".hold", lambda handle: handle.write(f"{until:.3f}\n".encode()))
        except OSError:
            log.warning("the dashboard's hold %s could not be written", path, exc_info=True)
            return None
        return until

    def held_until(self) -> float | None:
        """The deadline of a batch's hold on this warehouse, or ``None`` (none, expired or not the owner's).

        A look that never waits: the file is opened without following links and read only if it
        is a small regular file of this user with mode ``0600`` in a folder of this user's alone
        (the store's rule); what cannot be read as a deadline holds nothing.
        """
        try:
            if not _private_dir(self.root, make=False) or not _private_dir(self.hold_folder, make=False):
                return None
            handle = os.open(self.hold_folder / HOLD_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            info = os.fstat(handle)
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.geteuid()
                or stat.S_IMODE(info.st_mode) & 0o077
                or info.st_size > 64
            ):
                return None
            until = float(os.read(handle, 64).decode("ascii").strip())
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        finally:
            os.close(handle)
        now = time.time()
        # a deadline beyond the longest hold was not written by :meth:`hold` (a clock set back: ignored)
        return until if now < until <= now + MAX_HOLD_SECONDS + 60.0 else None

    def prepare_running(self) -> bool:
        """Whether a prepare holds this folder's lock (another process's, or another open file's).

        A look that never waits: the file is opened without blocking and must be a regular file.
        """
        try:
            handle = os.open(self.folder / PREPARE_LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # no lock file: no prepare ever ran here
            return False
        try:
            if not stat.S_ISREG(os.fstat(handle).st_mode):
                return False
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(handle)
        return False

    def holds(self, fingerprint: str, key: tuple[Any, ...]) -> bool:
        """Whether a file for ``key`` under ``fingerprint`` is there to read (not read: a cheap look)."""
        path = self._path(fingerprint, key)
        try:
            return self._folders_ok(path, make=False) and stat.S_ISREG(path.lstat().st_mode)
        except OSError:
            return False

    def put(self, fingerprint: str, key: tuple[Any, ...], value: Any) -> bool:
        """Write ``key``'s result under ``fingerprint``, atomically (``False``: not written, logged)."""
        path = self._path(fingerprint, key)
        try:
            if not self._made():
                return False
            self._prune(fingerprint)
            if not _private_dir(path.parent, make=True):
                return False
            kept = (FORMAT, repr(key), value)
            _write_private(path, ".pickle", lambda handle: pickle.dump(kept, handle, pickle.HIGHEST_PROTOCOL))
        except Exception:  # a full disk or a value that does not pickle: the page is still answered
            log.warning("the dashboard's result could not be kept in %s", path.parent, exc_info=True)
            return False
        try:
            self._cap()
        except OSError:  # the cap is kept at the next write
            log.warning("the dashboard's page store %s could not be trimmed", self.folder, exc_info=True)
        return True

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError:  # a read-only disk: the file stays, and is not read (another key or format)
            log.warning("the dashboard's kept result %s could not be removed", path, exc_info=True)

    def _prune(self, fingerprint: str) -> None:
        """Remove the folder's other fingerprints not written lately (once per fingerprint and process)."""
        if self._pruned == fingerprint:
            return
        now = time.time()
        for old in self.folder.iterdir():
            if not old.is_dir() or old.is_symlink() or old.name == fingerprint[:32]:
                continue
            if now - _mtime(old, now) >= PRUNE_AFTER_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
            else:  # another worker may still write there: only its unfinished files go
                for tmp in old.glob(".tmp-*"):
                    if now - _mtime(tmp, now) >= PRUNE_AFTER_SECONDS:
                        self._remove(tmp)
        self._pruned = fingerprint

    def _cap(self) -> None:
        """Remove the least recently written results while the folder holds more than ``max_bytes``."""
        files = []
        for p in self.folder.glob("*/*.pickle"):
            if p.name.startswith(".tmp-"):
                continue
            try:
                files.append((p.stat(), p))
            except FileNotFoundError:  # another worker removed it meanwhile
                continue
        total = sum(info.st_size for info, _ in files)
        for info, path in sorted(files, key=lambda item: item[0].st_mtime_ns):
            if total <= self.max_bytes:
                break
            self._remove(path)
            total -= info.st_size


MODEL_ROLES: dict[str, tuple[str, str]] = {role: (role, "--models") for role in (DEAL_WIN, TIME_TO_CLOSE)}
"""The models the pages read by role, each with its default name and the option that names it: what
``forecast dashboard``, its ``--prepare`` and ``forecast run`` resolve alike, so that they share one
store folder (:func:`default_store`'s scope)."""


def default_store(settings: Settings, refs: Mapping[str, Any] | None = None) -> PageStore:
    """The store of ``settings``' warehouse and ``refs`` under ``<data_dir>/dashboard-cache``.

    The package's digest is taken now, at the dashboard's creation, not at its first write.
    """
    code_digest()
    # a model named explicitly may be one trained on another warehouse, which the default refuses
    scope = repr(
        sorted((str(k), str(v), bool(getattr(v, "explicit", False))) for k, v in (refs or {}).items())
    )
    return PageStore(Path(settings.data_dir) / "dashboard-cache", settings.warehouse, scope)
