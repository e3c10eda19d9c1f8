"""The dashboard's reader on what a source lacks: figures left out with a sentence, never zeros."""

from __future__ import annotations

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
