"""Quality gate of the calendar profile: a CRM whose wins bunch at the quarter's end (fixed seed).

The ``quarter-end`` world holds 45% of the wins due in a quarter's last 75 days to its last day and
a half, as many real teams do (Maven's third months win 1.8 times its first). A close timing flat
in the calendar cannot follow that; the measured month-of-quarter profile can. Measured figures
are in docs/models.md ("Wins that bunch at the quarter's end").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.data.as_of import crm_as_of
from forecast.data.simulate import simulate_crm
from forecast.data.simulation.worlds import load_world
from forecast.models.config import TrainingConfig
from forecast.revenue.backtest import actual_revenue, run_rate, stage_weighted, train_deal_models
from forecast.revenue.calendar import CalendarSettings
from forecast.revenue.engine import forecast_with_open_deals
from forecast.revenue.forecast import ALL, period_grid
from forecast.robustness import cut_of
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # one training of the two deal models, then twelve forecasts

WIN = TrainingConfig.from_yaml(REPO / "training" / "deal_win.yaml")
CLOSE = TrainingConfig.from_yaml(REPO / "training" / "time_to_close.yaml")
MONTHS = 6


@pytest.fixture(scope="module")
def months() -> pd.DataFrame:
    """Six months after a year of history, forecast with the profile and flat, by the same models."""
    world = load_world("quarter-end").model_copy(update={"seed": 1, "leads_per_month": 1000, "n_leads": None})
    sim = simulate_crm(world.to_config(extra_months=MONTHS + 1))
    pipeline = world.pipeline()
    cut = cut_of(world)
    models = train_deal_models(sim.tables, pipeline, cut, WIN, CLOSE)
    rows = []
    for i in range(MONTHS):
        as_of = cut + pd.DateOffset(months=i)
        period = period_grid(as_of, 1, "month")[0]
        row = {"period": period.label, "actual": actual_revenue(sim.tables, period, None)[ALL]}
        for name, include in (("calendar", True), ("flat", False)):
            result, _, _ = forecast_with_open_deals(
                sim.tables,
                pipeline,
                as_of,
                models,
                [period],
                n_sims=2000,
                seed=i,
                calendar=CalendarSettings(include=include),
            )
            total = result.table.iloc[0]
            row |= {f"{name}_p10": total["p10"], f"{name}_p50": total["p50"], f"{name}_p90": total["p90"]}
            row[f"{name}_applied"] = result.calendar.applied
        past = crm_as_of(sim.tables, as_of, pipeline)
        row |= {
            "run_rate": run_rate(past, as_of, period),
            "stage_weighted": stage_weighted(past, as_of, period),
        }
        rows.append(row)
    table = pd.DataFrame(rows)
    print(table.round(0).to_string())
    return table


def _wape(t: pd.DataFrame, col: str) -> float:
    return float(np.abs(t[col] - t["actual"]).sum() / t["actual"].sum())


def test_the_profile_is_found_and_applied(months: pd.DataFrame) -> None:
    assert months["calendar_applied"].all() and not months["flat_applied"].any()


def test_the_profile_beats_both_baselines_by_a_fifth_and_the_flat_timing(months: pd.DataFrame) -> None:
    """Issue 15's WAPE gate in a world the flat timing fails (measured: 0.195 with the profile,
    0.391 flat, 0.362 the better baseline)."""
    model, flat = _wape(months, "calendar_p50"), _wape(months, "flat_p50")
    better = min(_wape(months, "run_rate"), _wape(months, "stage_weighted"))
    print(model, flat, better)
    assert model <= 0.8 * better
    assert model <= 0.65 * flat


def test_the_band_holds_at_least_what_the_flat_timing_holds(months: pd.DataFrame) -> None:
    """Measured: 3 of 6 months inside P10-P90 with the profile (the three misses above P90, by 0.3%
    to 6%), 3 of 6 flat (misses on both sides, by up to 61%); over two seeds and six months
    retrained every three (benchmarks), 9 of 12 against 4 of 12."""
    inside = (
        (months["calendar_p10"] <= months["actual"]) & (months["actual"] <= months["calendar_p90"])
    ).sum()
    flat = ((months["flat_p10"] <= months["actual"]) & (months["actual"] <= months["flat_p90"])).sum()
    print(inside, flat)
    assert inside >= 3 and inside >= flat
