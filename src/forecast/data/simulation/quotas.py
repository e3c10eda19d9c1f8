"""Monthly revenue goals per rep, rolled up to teams and the company."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.simulation.config import Clock
from forecast.data.simulation.people import Reps

MONTHS_AHEAD = 3
"""Planned goals extend this many months past the end."""
STRETCH = 1.15
"""Goals are set this much above the average bookings per rep-month."""
ANNUAL_GROWTH = 0.15


def simulate_quotas(clock: Clock, reps: Reps, won_amount_total: float) -> pd.DataFrame:
    """Simulate the canonical ``quotas`` table.

    Each employed rep gets a monthly goal: the average booked revenue per rep-month times a stretch
    factor, growing over time, ramped up over a new hire's first three months. Team and company rows
    are the sums.

    Args:
        clock: Time conversions.
        reps: The simulated reps.
        won_amount_total: Revenue won during the period (sets the scale of goals).

    Returns:
        Rows ordered by period, owner type (rep, team, company) and owner id; ``period_end`` is the
        last day of the month.
    """
    n_months = round(clock.horizon / 30.44) + MONTHS_AHEAD
    starts = pd.date_range(clock.start, periods=n_months + 1, freq="MS")
    start_days = ((starts - clock.start) / pd.Timedelta(days=1)).to_numpy(dtype=float)
    lo, hi = start_days[:-1], start_days[1:]
    employed = (reps.hired_at[None, :] < hi[:, None]) & (reps.left_at[None, :] > lo[:, None])
    tenure = np.floor((lo[:, None] - reps.hired_at[None, :]) / 30.44)
    ramp = np.clip((tenure + 1.0) / 4.0, 0.25, 1.0)
    in_period = lo < clock.horizon
    rep_months = float((employed[in_period] * ramp[in_period]).sum())
    base = STRETCH * won_amount_total / max(rep_months, 1.0)
    growth = 1.0 + ANNUAL_GROWTH * (lo - lo.mean()) / 365.25
    amount = np.round(base * growth[:, None] * ramp, -2) * employed
    month, rep = np.nonzero(employed)
    period_start = starts[:-1].to_numpy()
    period_end = (starts[1:] - pd.Timedelta(days=1)).to_numpy()
    rep_rows = pd.DataFrame(
        {
            "owner_type": "rep",
            "owner_id": reps.ids[rep],
            "period_start": period_start[month],
            "period_end": period_end[month],
            "amount": amount[month, rep],
            "team": reps.team[rep],
        }
    )
    keys = ["period_start", "period_end"]
    team_rows = rep_rows.groupby([*keys, "team"], sort=True)["amount"].sum().reset_index()
    team_rows = team_rows.rename(columns={"team": "owner_id"}).assign(owner_type="team")
    company = rep_rows.groupby(keys, sort=True)["amount"].sum().reset_index()
    company = company.assign(owner_type="company", owner_id="company")
    cols = ["owner_type", "owner_id", "period_start", "period_end", "amount"]
    out = pd.concat([rep_rows[cols], team_rows[cols], company[cols]], ignore_index=True)
    type_rank = out["owner_type"].map({"rep": 0, "team": 1, "company": 2})
    out = out.assign(_r=type_rank).sort_values(["period_start", "_r", "owner_id"], kind="stable")
    out = out.drop(columns="_r").reset_index(drop=True)
    out["owner_type"] = out["owner_type"].astype(object)
    out["owner_id"] = out["owner_id"].astype(object)
    out["amount"] = out["amount"].astype(float)
    return out
