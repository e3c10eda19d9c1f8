"""The reader's use of its page store: what it writes, when, and what a later reader takes back."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from forecast.config import load_settings
from forecast.dashboard.data import Filters, Missing, Reader
from forecast.dashboard.store import PageStore

CHAMPIONS = (("deal_win", "3:run-a"), ("time_to_close", "2:run-b"))


def _reader(tmp_path: Path) -> Reader:
    warehouse = tmp_path / "wh.duckdb"
    if not warehouse.exists():
        warehouse.write_bytes(b"only its size and time are read here")
    (tmp_path / "config").mkdir(exist_ok=True)
    settings = load_settings(warehouse=warehouse, data_dir=tmp_path, config_dir=tmp_path / "config")
    return Reader(settings, store=PageStore(tmp_path / "keep", warehouse))


class Counted:
    """A page's computation that counts its calls."""

    def __init__(self, value: object) -> None:
        self.value, self.calls = value, 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value


def _files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "keep").rglob("*.pickle")) if (tmp_path / "keep").exists() else []


def test_a_noted_readers_page_is_written_and_a_later_reader_takes_it_back(tmp_path: Path) -> None:
    page = {"rows": pd.DataFrame({"rep": ["R1"], "won": [3.5]})}
    first = _reader(tmp_path)
    first.note_champions(CHAMPIONS)
    compute = Counted(page)
    first.page("reps", Filters(), compute)
    assert (compute.calls, first.assembled, first.loaded, len(_files(tmp_path))) == (1, 1, 0, 1)

    later = _reader(tmp_path)
    later.note_champions(CHAMPIONS)
    again = Counted("never used")
    got = later.page("reps", Filters(), again)
    assert again.calls == 0 and (later.assembled, later.loaded, later.computed) == (0, 1, 0)
    pd.testing.assert_frame_equal(got["rows"], page["rows"], check_exact=True)
    assert later.page("reps", Filters(), again) is got  # then held in memory
    assert later.loaded == 1

    other = _reader(tmp_path)
    other.note_champions((("deal_win", "4:run-c"), ("time_to_close", "2:run-b")))  # a promotion
    assert other.page("reps", Filters(), Counted("fresh")) == "fresh" and other.loaded == 0


def test_nothing_is_written_before_the_versions_are_known(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    reader.page("reps", Filters(), Counted("v"))
    assert _files(tmp_path) == [] and reader.fingerprint() is None


def test_the_first_look_after_a_visit_starts_a_new_state(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    reader.page("reps", Filters(), Counted("computed before the versions were known"))
    before = reader.state()
    assert not reader.note_champions(CHAMPIONS)  # not a change of champions ...
    assert reader.state() != before  # ... but what was held is not taken for these versions
    compute = Counted("again")
    assert reader.page("reps", Filters(), compute) == "again" and compute.calls == 1
    quiet = _reader(tmp_path)
    state = quiet.state()
    quiet.note_champions(CHAMPIONS)  # nothing held yet: the same state
    assert quiet.state() == state


def test_failures_missing_figures_and_other_kinds_are_not_written(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    reader.note_champions(CHAMPIONS)

    def fails() -> object:
        raise ValueError("the warehouse cannot be read")

    with pytest.raises(ValueError):
        reader.page("reps", Filters(), fails)
    reader.page("pipeline", Filters(), Counted({"stages": Missing("no champion")}))
    reader._cached(("report", None, "2024-05", "funnel", "team"), Counted("a report"))  # not a page
    reader._cached(("revenue", None, "month", None), Counted(Missing("No forecast yet")))
    assert _files(tmp_path) == []
    assert reader.page("reps", Filters(), Counted("then")) == "then"  # a failure is computed again
    assert len(_files(tmp_path)) == 1


def test_a_result_of_a_state_gone_by_is_not_written(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    reader.note_champions(CHAMPIONS)
    warehouse = reader.settings.warehouse

    def meanwhile_an_ingest() -> str:
        stamp = warehouse.stat().st_mtime_ns + 10**9
        os.utime(warehouse, ns=(stamp, stamp))
        return "figures of the old data"

    assert reader.page("reps", Filters(), meanwhile_an_ingest) == "figures of the old data"
    assert _files(tmp_path) == []


def test_a_promotion_not_yet_noted_keeps_nothing(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    reader.note_champions(CHAMPIONS)
    registry = {"now": CHAMPIONS}
    reader.check_champions(lambda: registry["now"])
    reader.page("reps", Filters(), Counted("v1"))
    assert len(_files(tmp_path)) == 1
    registry["now"] = (("deal_win", "4:run-c"), ("time_to_close", "2:run-b"))
    reader._registry_read = None  # (the registry is read at most once a second)
    reader.page("pipeline", Filters(), Counted("computed with the new champion"))
    assert len(_files(tmp_path)) == 1

    def unreachable() -> tuple[tuple[str, str | None], ...]:
        raise OSError("registry down")

    reader.check_champions(unreachable)
    reader._registry_read = None
    reader.page("activity", Filters(), Counted("cannot be checked"))
    assert len(_files(tmp_path)) == 1


def test_a_registry_reading_from_before_the_computation_is_not_trusted(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    reader.note_champions(CHAMPIONS)
    registry = {"now": CHAMPIONS, "reads": 0}

    def read() -> tuple[tuple[str, str | None], ...]:
        registry["reads"] += 1
        return registry["now"]  # type: ignore[return-value]

    reader.check_champions(read)
    reader.page("reps", Filters(), Counted("v1"))  # read once: the versions noted
    assert len(_files(tmp_path)) == 1 and registry["reads"] == 1

    def promoted_meanwhile() -> str:
        registry["now"] = (("deal_win", "4:run-c"), ("time_to_close", "2:run-b"))
        return "computed with the new champion"

    reader.page("pipeline", Filters(), promoted_meanwhile)  # within the second: read again all the same
    assert registry["reads"] == 2 and len(_files(tmp_path)) == 1
    store = reader.store
    assert store is not None and reader.kept(("page", "reps", *Filters().key()))
    assert not reader.kept(("page", "pipeline", *Filters().key()))
