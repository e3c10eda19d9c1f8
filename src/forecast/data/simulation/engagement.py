"""Prospect web behaviour: visits, page views, pricing views, downloads, clicks, social actions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.schema import ENGAGEMENT_TYPES
from forecast.data.simulation.config import Clock, choice_from_probs
from forecast.data.simulation.leads import Leads
from forecast.data.simulation.people import Accounts

_BASE_MIX = np.array([0.3, 0.3, 0.07, 0.04, 0.1, 0.12, 0.07])
"""Event-type shares of background behaviour, in :data:`ENGAGEMENT_TYPES` order."""
_RAMP_MIX = np.array([0.22, 0.26, 0.25, 0.08, 0.07, 0.1, 0.02])
"""Event-type shares of the burst of activity before a lead converts (more pricing views)."""
_SECONDS = np.array([110.0, 45.0, 70.0, np.nan, np.nan, np.nan, np.nan])
"""Median seconds on site per event type (others have value 1: one form, download, click, action)."""


def simulate_engagement(
    clock: Clock, leads: Leads, accounts: Accounts, lead_ids: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Simulate the canonical ``engagement_events`` table.

    Every lead shows background behaviour that decays after creation (more for inbound and high
    quality leads); leads that will convert ramp up in the weeks before converting.

    Args:
        clock: Time conversions.
        leads: The simulated leads.
        accounts: The simulated accounts.
        lead_ids: Lead id per lead number.
        rng: Random generator of this stage.

    Returns:
        One row per event ordered by time, ids ``EV00000001``...
    """
    n = len(leads.created)
    base_rate = 2.2 * np.exp(0.55 * leads.quality) * np.where(leads.inbound, 1.4, 0.5)
    n_base = rng.poisson(base_rate)
    own_b = np.repeat(np.arange(n), n_base)
    t_b = leads.created[own_b] + rng.exponential(18.0, len(own_b))
    ramp = leads.converts
    n_ramp = np.where(ramp, rng.poisson(3.5 * np.exp(0.3 * leads.quality)), 0)
    own_r = np.repeat(np.arange(n), n_ramp)
    conv = leads.converted[own_r]
    t_r = conv - rng.exponential(6.0, len(own_r))
    # Ramp-up events fall in the days before conversion; those that would precede the lead are
    # dropped, not moved to its creation (which would plant future knowledge at creation time).
    after = t_r > leads.created[own_r]
    own_r, t_r = own_r[after], t_r[after]
    owner = np.concatenate([own_b, own_r])
    t = np.concatenate([t_b, t_r])
    mix = np.concatenate([np.tile(_BASE_MIX, (len(own_b), 1)), np.tile(_RAMP_MIX, (len(own_r), 1))])
    kind = choice_from_probs(rng, mix)
    keep = t <= clock.horizon
    owner, t, kind = owner[keep], t[keep], kind[keep]
    order = np.argsort(t, kind="stable")
    owner, t, kind = owner[order], t[order], kind[order]
    seconds = _SECONDS[kind] * np.exp(rng.normal(0.0, 0.7, len(t)))
    value = np.where(np.isnan(seconds), 1.0, np.round(seconds))
    m = len(t)
    return pd.DataFrame(
        {
            "event_id": np.array([f"EV{i + 1:08d}" for i in range(m)], dtype=object),
            "occurred_at": clock.to_datetime(t),
            "lead_id": lead_ids[owner],
            "account_id": accounts.ids[leads.account[owner]],
            "type": np.array(ENGAGEMENT_TYPES, dtype=object)[kind],
            "value": value.astype(float),
        }
    )
