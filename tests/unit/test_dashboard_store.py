"""The dashboard's pages kept on disk between runs (``forecast.dashboard.store``)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from forecast.dashboard.data import Missing, Overview, _shows_missing
from forecast.dashboard.store import FORMAT, PageStore, code_digest, fingerprint

KEY = ("page", "overview", None, None, "month", None, None, None, None)


def _warehouse(tmp_path: Path, name: str = "wh.duckdb") -> Path:
    path = tmp_path / name
    path.write_bytes(b"not read, only its size and time")
    return path


def _value() -> dict[str, object]:
    return {"rows": pd.DataFrame({"rep": ["R1", "R2"], "won": [1.5, 2.25]}), "as_of": "2024-06-01"}


def test_a_kept_result_reads_back_equal_and_is_the_owners_alone(tmp_path: Path) -> None:
    store = PageStore(tmp_path / "keep", _warehouse(tmp_path))
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
    assert store.get("e" * 64, KEY) == (False, None)  # another fingerprint: not held


def test_a_new_fingerprint_removes_the_warehouses_older_results_only(tmp_path: Path) -> None:
    root = tmp_path / "keep"
    store = PageStore(root, _warehouse(tmp_path))
    other = PageStore(root, _warehouse(tmp_path, "other.duckdb"))
    assert store.folder != other.folder
    store.put("a" * 64, KEY, 1)
    other.put("a" * 64, KEY, 2)
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
            "settings_json": '{"log_level": "INFO"}',
            "config_dir": config,
        }
        args.update(changes)
        return fingerprint(**args)  # type: ignore[arg-type]

    first = fp()
    assert fp() == first and len(first) == 64
    assert code_digest() == code_digest()
    assert fp(champions=(("deal_win", "4"), ("time_to_close", "2"))) != first  # a promotion
    assert fp(refs={"deal_win": "deal_win_maven:1"}) != first  # --models
    assert fp(settings_json='{"log_level": "DEBUG"}') != first
    (config / "flags.yaml").write_text("silence_days: 21\n")  # an edited configuration
    edited = fp()
    assert edited != first
    stamp = warehouse.stat().st_mtime_ns + 1_000_000_000
    os.utime(warehouse, ns=(stamp, stamp))  # an ingest
    assert fp() not in (first, edited)
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
