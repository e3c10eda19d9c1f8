"""The dashboard's pages kept on disk between runs (``forecast.dashboard.store``)."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
from pathlib import Path

import pandas as pd
import pytest

from forecast.config import load_settings
from forecast.dashboard.data import Missing, Overview, _shows_missing
from forecast.dashboard.store import (
    FORMAT,
    PRUNE_AFTER_SECONDS,
    PageStore,
    code_digest,
    fingerprint,
    package_digest,
    settings_text,
)

KEY = ("page", "overview", None, None, "month", None, None, None, None)


def _warehouse(tmp_path: Path, name: str = "wh.duckdb") -> Path:
    path = tmp_path / name
    path.write_bytes(b"not read, only its size and time")
    return path


def _value() -> dict[str, object]:
    return {"rows": pd.DataFrame({"rep": ["R1", "R2"], "won": [1.5, 2.25]}), "as_of": "2024-06-01"}


def test_a_kept_result_reads_back_equal_and_is_the_owners_alone(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "data" / "keep", _warehouse(tmp_path))  # no data folder yet
    assert store.get("f" * 64, KEY) == (False, None)
    assert store.put("f" * 64, KEY, _value())
    held, value = store.get("f" * 64, KEY)
    assert held
    pd.testing.assert_frame_equal(value["rows"], _value()["rows"], check_exact=True)
    assert value["as_of"] == "2024-06-01"
    files = list(store.folder.rglob("*.pickle"))
    assert len(files) == 1 and not list(store.folder.rglob(".tmp-*"))
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    for folder in (store.root, store.folder, files[0].parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert store.get("f" * 64, (*KEY[:-1], "APAC")) == (False, None)  # another filter: not held
    assert store.holds("f" * 64, KEY) and not store.holds("f" * 64, (*KEY[:-1], "APAC"))
    assert store.get("e" * 64, KEY) == (False, None)  # another fingerprint: not held


def test_a_new_fingerprint_removes_the_warehouses_older_results_only(tmp_path: Path) -> None:
    root = tmp_path / "keep"
    store = PageStore(root, _warehouse(tmp_path))
    other = PageStore(root, _warehouse(tmp_path, "other.duckdb"))
    assert store.folder != other.folder
    store.put("a" * 64, KEY, 1)
    other.put("a" * 64, KEY, 2)
    old = store.folder / ("a" * 32)
    stamp = old.stat().st_mtime - PRUNE_AFTER_SECONDS - 1
    os.utime(old, (stamp, stamp))  # not written lately
    store.put("b" * 64, KEY, 3)  # an ingest or a promotion: the old results are never asked again
    assert store.get("a" * 64, KEY) == (False, None)
    assert store.get("b" * 64, KEY) == (True, 3)
    assert other.get("a" * 64, KEY) == (True, 2)  # another warehouse's results stay
    assert sorted(p.name for p in store.folder.iterdir()) == ["b" * 32]


def test_an_unreadable_file_is_removed_and_computed_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = PageStore(tmp_path / "keep", _warehouse(tmp_path))
    store.put("f" * 64, KEY, _value())
    (path,) = store.folder.rglob("*.pickle")
    path.write_bytes(path.read_bytes()[:20])  # truncated (a crash while copying, a full disk)
    with caplog.at_level(logging.WARNING, logger="forecast.dashboard.store"):
        assert store.get("f" * 64, KEY) == (False, None)
    assert not path.exists()
    assert "cannot be read" in caplog.text


def test_a_file_of_another_key_or_format_is_not_taken(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "keep", _warehouse(tmp_path))
    store.put("f" * 64, KEY, "mine")
    (path,) = store.folder.rglob("*.pickle")
    import pickle

    path.write_bytes(pickle.dumps((FORMAT, repr(("page", "reps")), "another key's")))
    assert store.get("f" * 64, KEY) == (False, None)
    path.write_bytes(pickle.dumps((FORMAT + 1, repr(KEY), "another format's")))
    assert store.get("f" * 64, KEY) == (False, None)


def test_a_result_that_cannot_be_written_is_still_answered_and_leaves_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = PageStore(tmp_path / "keep", _warehouse(tmp_path))
    with caplog.at_level(logging.WARNING, logger="forecast.dashboard.store"):
        assert not store.put("f" * 64, KEY, lambda: 1)  # does not pickle
    assert not [p for p in store.folder.rglob("*") if p.is_file()]
    assert "could not be kept" in caplog.text


def test_the_fingerprint_follows_everything_the_figures_depend_on(tmp_path: Path) -> None:
    warehouse = _warehouse(tmp_path)
    config = tmp_path / "config"
    config.mkdir()
    (config / "flags.yaml").write_text("silence_days: 14\n")
    champions = (("deal_win", "3"), ("time_to_close", "2"))

    def fp(**changes: object) -> str:
        args: dict[str, object] = {
            "warehouse": warehouse,
            "champions": champions,
            "refs": {},
            "settings_text": "warehouse=/w\nconfig_dir=/c",
            "config_dir": config,
        }
        args.update(changes)
        return fingerprint(**args)  # type: ignore[arg-type]

    first = fp()
    assert fp() == first and len(first) == 64
    assert len(code_digest()) == 64
    assert fp(champions=(("deal_win", "4"), ("time_to_close", "2"))) != first  # a promotion
    assert fp(refs={"deal_win": "deal_win_maven:1"}) != first  # --models
    assert fp(settings_text="warehouse=/w\nconfig_dir=/d") != first
    (config / "flags.yaml").write_text("silence_days: 21\n")  # an edited configuration
    edited = fp()
    assert edited != first
    stamp = warehouse.stat().st_mtime_ns + 1_000_000_000
    os.utime(warehouse, ns=(stamp, stamp))  # an ingest
    ingested = fp()
    assert ingested not in (first, edited)
    warehouse.with_name(warehouse.name + ".wal").write_bytes(b"an ingest's log not checkpointed")
    assert fp() != ingested
    assert fp(warehouse=_warehouse(tmp_path, "copy.duckdb")) != fp()  # another file
    with pytest.raises(OSError):
        fp(warehouse=tmp_path / "none.duckdb")


def test_pages_whose_models_could_not_be_read_are_not_kept() -> None:
    missing = Missing("No forecast yet")
    page = Overview("2024-06-01", "2024-05", None, {}, [], [], {}, [])
    assert not _shows_missing(page)
    assert _shows_missing(Overview("2024-06-01", "2024-05", None, {}, missing, missing, {}, []))
    assert _shows_missing(Overview("2024-06-01", "2024-05", None, {}, [], [], missing, []))
    assert not _shows_missing(Overview("2024-06-01", "2024-05", "T1", {}, [], missing, {}, []))  # pacing
    assert _shows_missing({"rows": pd.DataFrame(), "forecast": missing})
    assert not _shows_missing({"rows": pd.DataFrame()})
    assert _shows_missing(missing)


def test_a_fingerprint_written_lately_stays_for_a_worker_still_on_it(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "keep", _warehouse(tmp_path))
    store.put("a" * 64, KEY, 1)
    PageStore(tmp_path / "keep", _warehouse(tmp_path)).put("b" * 64, KEY, 2)  # another process
    assert store.get("a" * 64, KEY) == (True, 1)
    assert PageStore(tmp_path / "keep", _warehouse(tmp_path), scope="deal_win=x").folder != store.folder


def test_files_and_folders_not_the_users_alone_are_not_read(tmp_path: Path) -> None:
    root = tmp_path / "keep"
    root.mkdir(mode=0o777)
    root.chmod(0o777)  # made by hand, open to others
    store = PageStore(root, _warehouse(tmp_path))
    assert store.put("f" * 64, KEY, "mine")
    assert stat.S_IMODE(root.stat().st_mode) == 0o700  # this user's folder: tightened
    (path,) = store.folder.rglob("*.pickle")
    path.chmod(0o644)  # anyone could have replaced it meanwhile
    assert store.get("f" * 64, KEY) == (False, None)
    path.chmod(0o600)
    assert store.get("f" * 64, KEY) == (True, "mine")
    path.parent.chmod(0o770)
    assert store.get("f" * 64, KEY) == (False, None)  # a reader does not tighten: it refuses
    path.parent.chmod(0o700)
    elsewhere = tmp_path / "planted"
    elsewhere.mkdir(mode=0o700)
    path.rename(elsewhere / path.name)
    path.symlink_to(elsewhere / path.name)  # a link where the file was
    assert store.get("f" * 64, KEY) == (False, None)
    assert not store.holds("f" * 64, KEY)
    path.unlink()
    folder = path.parent
    shutil.rmtree(folder)
    folder.symlink_to(elsewhere, target_is_directory=True)  # a link where the folder was
    assert store.get("f" * 64, KEY) == (False, None)
    assert not store.put("f" * 64, KEY, "again")


def test_an_unreadable_file_that_cannot_be_removed_is_a_miss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PageStore(tmp_path / "keep", _warehouse(tmp_path))
    store.put("f" * 64, KEY, "mine")
    (path,) = store.folder.rglob("*.pickle")
    path.write_bytes(b"not a pickle")

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError("read-only disk")

    monkeypatch.setattr(Path, "unlink", refuse)
    assert store.get("f" * 64, KEY) == (False, None)  # no error reaches the page


def test_beyond_its_size_the_least_recently_written_results_go(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "keep", _warehouse(tmp_path), max_bytes=3_000)
    for n in range(5):
        assert store.put("f" * 64, (*KEY[:-1], f"S{n}"), "x" * 1_000)
        newest = store._path("f" * 64, (*KEY[:-1], f"S{n}"))
        os.utime(newest, ns=(n * 10**9, n * 10**9))  # written in this order (a second apart)
    held = [n for n in range(5) if store.get("f" * 64, (*KEY[:-1], f"S{n}"))[0]]
    assert held == [3, 4]


def test_only_the_settings_that_change_a_figure_enter_the_fingerprint(tmp_path: Path) -> None:
    base = load_settings(warehouse=tmp_path / "wh.duckdb", data_dir=tmp_path)
    assert settings_text(base) == settings_text(base.model_copy(update={"log_level": "DEBUG"}))
    assert settings_text(base) == settings_text(base.model_copy(update={"reload_signal": tmp_path / "x"}))
    assert settings_text(base) != settings_text(base.model_copy(update={"models_dir": tmp_path / "m"}))
    assert str((tmp_path / "wh.duckdb").resolve()) in settings_text(base)


def test_the_code_digest_follows_the_packages_files_and_the_libraries(tmp_path: Path) -> None:
    package = tmp_path / "forecast"
    (package / "revenue").mkdir(parents=True)
    (package / "revenue" / "forecast.py").write_text("SIMULATIONS = 10_000\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"bytecode")
    versions = ["numpy=2.1.0", "lightgbm=4.5.0"]
    first = package_digest(package, versions)
    (package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"other bytecode")
    assert package_digest(package, versions) == first  # bytecode does not count
    assert package_digest(package, ["numpy=2.1.0", "lightgbm=4.6.0"]) != first  # an upgrade
    (package / "revenue" / "forecast.py").write_text("SIMULATIONS = 20_000\n")  # a new release
    assert package_digest(package, versions) != first


def test_a_hold_is_the_owners_file_with_its_deadline_and_ends_when_told_or_when_due(tmp_path: Path) -> None:
    """A batch's hold (``forecast dashboard --hold``): a deadline in a private file, read without waiting."""
    store = PageStore(tmp_path / "store", _warehouse(tmp_path))
    assert store.held_until() is None  # no batch ever held it
    until = store.hold(60.0)
    assert until is not None and store.held_until() == pytest.approx(until, abs=1e-3)
    path = store.hold_folder / "hold-until"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.hold_folder.stat().st_mode) == 0o700
    assert store.hold(0.0) is None and not path.exists() and store.held_until() is None
    assert store.hold(0.0) is None  # nothing to end: no error
    path.write_text(f"{until - 120:.3f}\n")  # a deadline past: holds nothing
    assert store.held_until() is None
    for text in ("soon\n", "", "1e400\n", f"{until + 10 * 86400:.3f}\n"):  # not a deadline a hold writes
        path.write_text(text)
        assert store.held_until() is None, text
    path.unlink()
    target = tmp_path / "elsewhere"
    target.write_text(f"{until:.3f}\n")
    path.symlink_to(target)  # a link is not followed
    assert store.held_until() is None
    for wrong in (-1.0, float("nan"), 2 * 86400.0):
        with pytest.raises(ValueError, match="a hold lasts"):
            store.hold(wrong)


def test_a_hold_not_the_users_alone_holds_nothing(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "store", _warehouse(tmp_path))
    assert store.hold(60.0) is not None
    path = store.hold_folder / "hold-until"
    path.chmod(0o644)  # readable by others: not a file the store wrote
    assert store.held_until() is None
    path.chmod(0o600)
    assert store.held_until() is not None
    store.hold_folder.chmod(0o755)  # a folder others can read
    assert store.held_until() is None
    assert store.hold(0.0) is None and not path.exists()  # ended all the same: a later write
    store.hold_folder.chmod(0o700)  # tightens the folder, and the hold would hold again
    assert store.hold(60.0) is not None
    if os.geteuid() == 0:  # another user's file (only root can give one away)
        os.chown(path, 12345, -1)
        assert store.held_until() is None


def test_a_hold_pauses_every_dashboard_over_the_warehouse_whatever_models_it_names(tmp_path: Path) -> None:
    """The batch's writes make every page over the warehouse stale, not only those of its models."""
    warehouse = _warehouse(tmp_path)
    batch = PageStore(tmp_path / "store", warehouse, "[]")  # `forecast dashboard --hold` without --models
    named = PageStore(tmp_path / "store", warehouse, "[('deal_win', 'deal_win@candidate', True)]")
    other = PageStore(tmp_path / "store", tmp_path / "other.duckdb", "[]")
    assert batch.folder != named.folder  # their pages apart ...
    assert batch.hold(600.0) is not None
    assert named.held_until() is not None and other.held_until() is None  # ... the hold shared
    with named.preparing():  # the batch's prepare, whichever models it names, ends its window
        pass
    assert batch.held_until() is None and named.held_until() is None


def test_a_prepare_ends_its_batchs_hold_whatever_its_outcome_and_not_the_next_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PageStore(tmp_path / "store", _warehouse(tmp_path))
    assert store.hold(600.0) is not None
    with pytest.raises(RuntimeError), store.preparing():
        assert store.held_until() is not None  # held while the prepare runs
        raise RuntimeError("a prepare that fails")
    assert store.held_until() is None
    with store.preparing():  # no hold when it started (forecast run, or a prepare by hand) ...
        assert store.hold(600.0) is not None  # ... and the next batch starts meanwhile
    assert store.held_until() is not None
    with store.preparing():
        assert store.hold(900.0) is not None  # a batch's hold written again: the next batch's
    assert store.held_until() is not None
    with store.preparing():
        pass
    assert store.held_until() is None

    # a prepare queued behind another (forecast run's, with no hold of its own) while a batch starts
    def queued_prepare() -> None:
        with store.preparing():
            pass

    looked = threading.Event()  # the queued prepare has looked for its batch's hold
    identity = store._hold_identity
    queued = threading.Thread(target=queued_prepare, daemon=True)

    def looking() -> tuple[int, int] | None:
        seen = identity()
        if threading.current_thread() is queued:  # once it has looked, not before
            looked.set()
        return seen

    monkeypatch.setattr(store, "_hold_identity", looking)
    with store.preparing():
        queued.start()
        assert looked.wait(10), "a queued prepare looks for its batch's hold before it waits for the lock"
        assert store.hold(600.0) is not None  # the next batch's hold, written meanwhile
    queued.join(10)
    assert not queued.is_alive() and store.held_until() is not None


def test_a_store_root_that_is_a_file_holds_nothing_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "store").write_text("not a folder")
    store = PageStore(tmp_path / "store", _warehouse(tmp_path))
    assert store.hold(60.0) is None and store.held_until() is None
    assert store.hold(0.0) is None  # no error either
