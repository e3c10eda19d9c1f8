"""The dashboard's reader: what a source lacks is left out with a sentence; its cache across states."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecast.dashboard.data import _without_activities


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
