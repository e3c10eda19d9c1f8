"""A realistic CRM simulator with ground truth (pure: no CLI, no I/O except :meth:`Simulation.write`).

The simulator produces every canonical table (docs/data-model.md) plus hidden ground truth, so models and
metrics can be checked against known answers. See ``docs/simulator.md`` for the generating model
and the plausibility ranges the tests assert.

Example:
    >>> from forecast.data.simulate import SimulationConfig, simulate_crm
    >>> sim = simulate_crm(SimulationConfig(n_leads=2_000, seed=1))
    >>> sorted(sim.tables)[:3]
    ['accounts', 'activities', 'engagement_events']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from forecast.data.simulation.activity import simulate_activities
from forecast.data.simulation.config import (
    Clock,
    Coefficients,
    SimulationConfig,
    generating_params,
    to_jsonable,
)
from forecast.data.simulation.deals import deal_tables, simulate_deals, truth_opportunities_frame
from forecast.data.simulation.engagement import simulate_engagement
from forecast.data.simulation.leads import leads_frame, simulate_leads, truth_leads_frame
from forecast.data.simulation.output import Simulation, canonical_frame
from forecast.data.simulation.people import Reps, set_account_created, simulate_accounts, simulate_reps
from forecast.data.simulation.quotas import simulate_quotas

__all__ = ["Coefficients", "Simulation", "SimulationConfig", "simulate_crm"]

_STREAMS = ("reps", "accounts", "leads", "deals", "activities", "engagement")


def _rep_params(reps: Reps, clock: Clock) -> dict[str, dict[str, object]]:
    left = clock.to_date(np.where(np.isfinite(reps.left_at), reps.left_at, np.nan))
    return {
        str(rid): {
            "skill": round(float(reps.skill[i]), 6),
            "volume": round(float(reps.volume[i]), 6),
            "call_share": round(float(reps.call_share[i]), 6),
            "left_at": None if pd.isna(left[i]) else str(pd.Timestamp(left[i]).date()),
        }
        for i, rid in enumerate(reps.ids)
    }


def _opportunity_ids_per_lead(n_leads: int, deal_lead: np.ndarray, deal_ids: np.ndarray) -> np.ndarray:
    out = np.full(n_leads, None, dtype=object)
    out[deal_lead] = deal_ids
    return out


def simulate_crm(
    config: SimulationConfig, progress: Callable[[str, float], None] | None = None
) -> Simulation:
    """Simulate a CRM history with hidden ground truth.

    Args:
        config: What to simulate; the same config always gives the same result.
        progress: Optional callback ``(step, fraction_done)`` called after each step.

    Returns:
        The canonical tables, the truth tables, the generating parameters and the end time.
    """
    report = progress or (lambda _step, _frac: None)
    seeds = np.random.SeedSequence(config.seed).spawn(len(_STREAMS))
    rngs = {name: np.random.Generator(np.random.PCG64(s)) for name, s in zip(_STREAMS, seeds, strict=True)}
    clock = Clock.from_config(config)

    reps = simulate_reps(config, clock, rngs["reps"])
    accounts = simulate_accounts(config.n_leads, rngs["accounts"])
    report("reps_accounts", 0.1)
    leads = simulate_leads(config, clock, reps, accounts, rngs["leads"])
    set_account_created(accounts, clock, leads.account, leads.created, rngs["accounts"])
    lead_ids = np.array([f"L{i + 1:07d}" for i in range(config.n_leads)], dtype=object)
    report("leads", 0.25)
    deals = simulate_deals(config, clock, leads, reps, rngs["deals"])
    opps, history, deal_ids = deal_tables(deals, clock, config, leads, reps, accounts, lead_ids)
    leads_table = leads_frame(
        leads, clock, reps, accounts, _opportunity_ids_per_lead(config.n_leads, deals.lead, deal_ids)
    )
    report("opportunities", 0.45)
    activities = simulate_activities(
        config, clock, leads, deals, reps, lead_ids, deal_ids, rngs["activities"]
    )
    report("activities", 0.8)
    engagement = simulate_engagement(clock, leads, accounts, lead_ids, rngs["engagement"])
    won_total = float(opps.loc[opps["outcome"] == "won", "amount"].sum())
    quotas = simulate_quotas(clock, reps, won_total)
    report("engagement_quotas", 0.95)

    raw = {
        "reps": reps.frame,
        "accounts": accounts.frame,
        "leads": leads_table,
        "opportunities": opps,
        "stage_history": history,
        "activities": activities,
        "engagement_events": engagement,
        "quotas": quotas,
    }
    tables = {name: canonical_frame(name, frame) for name, frame in raw.items()}
    truth = {
        "truth_leads": truth_leads_frame(leads, lead_ids),
        "truth_opportunities": truth_opportunities_frame(deals, clock, deal_ids),
    }
    params = generating_params(config)
    params["reps"] = _rep_params(reps, clock)
    if deals.calibrated:
        params["config"].update(deals.calibrated)
    params["end"] = clock.end.isoformat()
    report("done", 1.0)
    return Simulation(tables=tables, truth=truth, params=to_jsonable(params), end=clock.end)
