"""The dashboard's reader: what a source lacks is left out with a sentence; its cache across states."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from forecast.config import load_settings
from forecast.dashboard.data import Filters, Reader, _without_activities
from forecast.tracking.periods import parse_period


def test_a_source_without_activities_loses_the_activity_figures_not_the_others() -> None:
    frame = pd.DataFrame(
        {
            "rep": ["r1"],
            "calls": [0],
            "reply_rate": [float("nan")],
            "reply_rate_n": [0],
            "reply_rate_lo": [float("nan")],
            "selling_hours": [0.0],
            "won": [3],
            "win_rate": [0.5],
            "new_opportunities": [4],
        }
    )
    assert list(_without_activities(frame).columns) == ["rep", "won", "win_rate", "new_opportunities"]


def test_a_by_product_of_a_state_gone_by_is_not_kept(tmp_path: Path) -> None:
    """A forecast's by-products (shock spreads, scored open deals) started before an ingest are dropped."""
    import os

    from forecast.config import Settings
    from forecast.dashboard.data import Reader

    warehouse = tmp_path / "w.duckdb"
    warehouse.write_bytes(b"")
    reader = Reader(Settings(warehouse=warehouse, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'm.db'}"))
    before = reader.state()
    reader._keep(("open deals", None, ()), "kept", before)
    assert reader._peek(("open deals", None, ())) == "kept"
    os.utime(warehouse, ns=(before[0] + 10**9, before[0] + 10**9))  # an ingest lands meanwhile
    reader._keep(("shock", None, ()), "stale", before)
    assert reader._peek(("shock", None, ())) is None  # not kept for the new state
    assert reader._peek(("shock", None, ()), before) is None
    reader._keep(("shock", None, ()), "fresh", reader.state())
    assert reader._peek(("shock", None, ())) == "fresh"


@pytest.mark.parametrize(
    ("spellings", "shared"),
    [
        ((None, "", "month", " Month ", "MONTH"), True),  # the default's period: the last complete month
        (("week", "Week", " week "), True),
        (("quarter", "QUARTER"), True),
        (("day", " Day"), True),
        ((None, "week"), False),
        (("2024-11-01..2024-11-30", None), False),  # a range is another spec, even of the same days
        (("   ", None), False),  # not a period (refused when computed), never the default's page
    ],
)
def test_the_page_key_spells_a_period_once(spellings: tuple[str | None, ...], shared: bool) -> None:
    keys = {Filters(period=spec).key() for spec in spellings}
    assert (len(keys) == 1) is shared
    if shared:  # sharing a page is right only where the period computed is the same
        as_of = pd.Timestamp("2024-12-16")
        assert len({parse_period(spec, as_of) for spec in spellings}) == 1


def test_a_month_period_is_answered_by_the_default_views_page(tmp_path: Path) -> None:
    (tmp_path / "wh.duckdb").write_bytes(b"only its size and time are read here")
    settings = load_settings(warehouse=tmp_path / "wh.duckdb", data_dir=tmp_path, config_dir=tmp_path)
    reader = Reader(settings)
    first = reader.page("overview", Filters(), lambda: {"won": 1.0})
    calls: list[int] = []
    again = reader.page("overview", Filters(period=" Month"), lambda: calls.append(1) or {"won": 2.0})
    assert again is first and calls == []
    week = reader.page("overview", Filters(period="week"), lambda: {"won": 3.0})
    assert week == {"won": 3.0}


def test_only_the_overview_is_keyed_by_the_forecasts_horizon() -> None:
    for horizon in ("week", "quarter"):
        other = Filters(horizon=horizon, team="East")
        assert Reader.page_key("overview", other) != Reader.page_key("overview", Filters(team="East"))
        for page in ("overview changes", "reps", "reps changes", "pipeline", "prospects", "activity"):
            assert Reader.page_key(page, other) == Reader.page_key(page, Filters(team="East")), page
