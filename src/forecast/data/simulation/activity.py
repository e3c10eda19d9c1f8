"""Rep activities: calls, emails, texts, meetings, demos and tasks, plus planned next actions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data.simulation.config import Clock, SimulationConfig, choice_from_probs, sigmoid
from forecast.data.simulation.deals import Deals
from forecast.data.simulation.leads import Leads, lead_status
from forecast.data.simulation.people import Reps

TYPES = np.array(["call", "email", "sms", "meeting", "demo", "task"], dtype=object)
CALL, EMAIL, SMS, MEETING, DEMO, TASK = range(6)
OUTCOMES = np.array(
    ["completed", "no_answer", "voicemail", "cancelled", "no_show", "declined", "scheduled"], dtype=object
)
COMPLETED, NO_ANSWER, VOICEMAIL, CANCELLED, NO_SHOW, DECLINED, SCHEDULED = range(7)
LEAD_TOUCH_RATE = 0.2
"""Touches per working day on a lead being worked (before rep volume and hidden attention)."""
DEAL_TOUCH_RATE = 0.42
"""Touches per day on an open deal (before rep volume and hidden attention)."""


@dataclass
class Rows:
    """Activity rows under construction (parallel arrays)."""

    time: np.ndarray
    rep: np.ndarray
    lead: np.ndarray
    deal: np.ndarray
    quality: np.ndarray
    post: np.ndarray
    inbound_lead: np.ndarray
    kind: np.ndarray
    inbound: np.ndarray
    outcome: np.ndarray
    """Fixed outcome code, or -1 to draw it from the type."""

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        """Concatenate row sets field by field."""
        return Rows(*(np.concatenate([getattr(p, f) for p in parts]) for f in Rows.__dataclass_fields__))

    def take(self, idx: np.ndarray) -> Rows:
        """Select rows."""
        return Rows(*(getattr(self, f)[idx] for f in Rows.__dataclass_fields__))


def _spread(
    counts: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Entity index and uniform time in ``[lo, hi]`` for ``counts`` rows per entity."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, lo[owner] + rng.random(len(owner)) * (hi - lo)[owner]


def _business_hours(
    clock: Clock, t: np.ndarray, lo: np.ndarray, hi: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Move times to weekday office hours where that keeps them inside ``[lo, hi]``."""
    day = np.floor(t)
    weekday = (clock.start.dayofweek + day.astype(np.int64)) % 7
    day = day + np.where((weekday >= 5) & (rng.random(len(t)) < 0.85), 7 - weekday, 0)
    snapped = day + rng.uniform(8.0, 18.5, len(t)) / 24.0
    return np.where((snapped >= lo) & (snapped <= hi), snapped, t)


def _touches(
    config: SimulationConfig, clock: Clock, leads: Leads, deals: Deals, reps: Reps, rng: np.random.Generator
) -> Rows:
    """Generic touches on leads being worked and on open deals."""
    scale = config.activity_scale
    worked = ~np.isnan(leads.first_touch) & (leads.first_touch <= clock.horizon)
    lo_l = np.where(worked, leads.first_touch, 0.0)
    hi_l = np.where(worked, np.maximum(leads.work_end, lo_l), 0.0)
    rate_l = LEAD_TOUCH_RATE * scale * reps.volume[leads.rep] * np.exp(leads.log_attention)
    n_l = np.where(worked, rng.poisson(rate_l * (hi_l - lo_l)) + 1, 0)
    own_l, t_l = _spread(n_l, lo_l, hi_l, rng)
    t_l[np.r_[0, np.cumsum(n_l)[:-1]][n_l > 0]] = lo_l[n_l > 0]  # first touch at first_touch
    t_l = _business_hours(clock, t_l, lo_l[own_l], hi_l[own_l], rng)

    rep_d = leads.rep[deals.lead]
    lo_d = deals.created
    hi_d = np.minimum(np.maximum(deals.activity_end, lo_d), clock.horizon)
    rate_d = DEAL_TOUCH_RATE * scale * reps.volume[rep_d] * np.exp(deals.log_attention)
    n_d = rng.poisson(rate_d * (hi_d - lo_d))
    own_d, t_d = _spread(n_d, lo_d, hi_d, rng)
    t_d = _business_hours(clock, t_d, lo_d[own_d], hi_d[own_d], rng)

    n1, n2 = len(own_l), len(own_d)
    return Rows(
        time=np.concatenate([t_l, t_d]),
        rep=np.concatenate([leads.rep[own_l], rep_d[own_d]]),
        lead=np.concatenate([own_l, np.full(n2, -1)]),
        deal=np.concatenate([np.full(n1, -1), own_d]),
        quality=np.concatenate([leads.quality[own_l], deals.quality[own_d]]),
        post=np.concatenate([np.zeros(n1, bool), np.ones(n2, bool)]),
        inbound_lead=np.concatenate([leads.inbound[own_l], leads.inbound[deals.lead[own_d]]]),
        kind=np.zeros(n1 + n2, np.int64),
        inbound=np.zeros(n1 + n2, bool),
        outcome=np.full(n1 + n2, -1, np.int64),
    )


def _assign_types(rows: Rows, reps: Reps, rng: np.random.Generator) -> None:
    """Direction and type: inbound replies from engaged prospects; outbound mix by rep style."""
    n = len(rows.time)
    rows.inbound = rng.random(n) < sigmoid(-2.2 + 0.7 * rows.quality + 0.5 * rows.post)
    call = reps.call_share[rows.rep]
    meet = np.where(rows.post, 0.12, 0.02)
    demo = np.where(rows.post, 0.03, 0.0)
    rest = 1.0 - 0.05 - 0.08 - meet - demo
    probs = np.stack([call * rest, (1 - call) * rest, np.full(n, 0.05), meet, demo, np.full(n, 0.08)], axis=1)
    kind = choice_from_probs(rng, probs)
    inbound_kind = np.where(rng.random(n) < 0.65, EMAIL, CALL)
    rows.kind = np.where(rows.inbound, inbound_kind, kind)


def _stage_meetings(
    config: SimulationConfig, clock: Clock, leads: Leads, deals: Deals, rng: np.random.Generator
) -> Rows:
    """One meeting (or demo) completed just before a deal enters each stage after the first."""
    entered = deals.entered[:, :-1]
    prev = deals.entered[:, :-2]
    ok = ~np.isnan(entered[:, 1:]) & (entered[:, 1:] <= clock.horizon)
    deal, col = np.nonzero(ok)
    col = col + 1
    t = entered[deal, col] - rng.uniform(0.0, 1.0, len(deal)) * np.minimum(
        1.0, entered[deal, col] - prev[deal, col - 1]
    )
    names = config.pipeline.open_stages
    is_demo = np.array(["demo" in s for s in names])[col]
    n = len(deal)
    return Rows(
        time=t,
        rep=leads.rep[deals.lead[deal]],
        lead=np.full(n, -1),
        deal=deal,
        quality=deals.quality[deal],
        post=np.ones(n, bool),
        inbound_lead=leads.inbound[deals.lead[deal]],
        kind=np.where(is_demo, DEMO, MEETING),
        inbound=np.zeros(n, bool),
        outcome=np.full(n, COMPLETED),
    )


def _next_actions(clock: Clock, leads: Leads, deals: Deals, rng: np.random.Generator) -> Rows:
    """Planned next actions logged near the end for a share of open deals and worked leads."""
    h = clock.horizon
    open_deal = np.flatnonzero((deals.closed > h) & (rng.random(len(deals.closed)) < 0.65))
    status, _ = lead_status(leads, h)
    open_lead = np.flatnonzero(np.isin(status, ["working", "qualified"]) & (rng.random(len(status)) < 0.4))
    start = np.concatenate([leads.first_touch[open_lead], deals.created[open_deal]])
    t = np.maximum(start, h - rng.uniform(0.0, 4.0, len(start)))
    n1, n2 = len(open_lead), len(open_deal)
    kind = np.array([TASK, CALL, MEETING])[rng.choice(3, n1 + n2, p=[0.45, 0.35, 0.2])]
    return Rows(
        time=np.minimum(t, h),
        rep=np.concatenate([leads.rep[open_lead], leads.rep[deals.lead[open_deal]]]),
        lead=np.concatenate([open_lead, np.full(n2, -1)]),
        deal=np.concatenate([np.full(n1, -1), open_deal]),
        quality=np.concatenate([leads.quality[open_lead], deals.quality[open_deal]]),
        post=np.concatenate([np.zeros(n1, bool), np.ones(n2, bool)]),
        inbound_lead=np.concatenate([leads.inbound[open_lead], leads.inbound[deals.lead[open_deal]]]),
        kind=kind,
        inbound=np.zeros(n1 + n2, bool),
        outcome=np.full(n1 + n2, SCHEDULED),
    )


def _outcomes(rows: Rows, reps: Reps, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Outcome, duration and email flags per row (rows already typed)."""
    n = len(rows.time)
    q, post, skill = rows.quality, rows.post.astype(float), np.log(reps.skill[rows.rep])
    u = rng.random(n)
    answered = u < sigmoid(-0.7 + 0.4 * q + 0.9 * post + 0.5 * skill)
    call_out = np.where(answered, COMPLETED, np.where(rng.random(n) < 0.55, VOICEMAIL, NO_ANSWER))
    meet_ok = u < sigmoid(0.8 + 0.5 * q + 0.3 * skill)
    meet_out = np.array([CANCELLED, NO_SHOW, DECLINED])[rng.choice(3, n, p=[0.4, 0.35, 0.25])]
    demo_out = np.where(
        u < sigmoid(2.2 + 0.5 * q), COMPLETED, np.where(rng.random(n) < 0.5, NO_SHOW, CANCELLED)
    )
    generic = np.select(
        [rows.kind == CALL, rows.kind == MEETING, rows.kind == DEMO],
        [np.where(rows.inbound, COMPLETED, call_out), np.where(meet_ok, COMPLETED, meet_out), demo_out],
        COMPLETED,
    )
    outcome = np.where(rows.outcome >= 0, rows.outcome, generic)
    done = outcome == COMPLETED
    base = np.select(
        [rows.kind == CALL, rows.kind == MEETING, rows.kind == DEMO],
        [np.where(rows.inbound, 360.0, 240.0 * (1 + 0.6 * post)), 1800.0 + 900.0 * post, 2700.0],
        np.nan,
    )
    duration = np.round(base * np.exp(rng.normal(0.0, 0.5, n)) * np.where(done, 1.0, np.nan))
    short = (rows.kind == CALL) & np.isin(outcome, [VOICEMAIL, NO_ANSWER])
    duration = np.where(
        short,
        np.round(np.where(outcome == VOICEMAIL, rng.uniform(20, 60, n), rng.uniform(8, 30, n))),
        duration,
    )
    email_out = (rows.kind == EMAIL) & ~rows.inbound & (outcome == COMPLETED)
    inbound_lead = rows.inbound_lead.astype(float)
    opened = rng.random(n) < sigmoid(-0.4 + 0.5 * q + 0.6 * post + 0.3 * inbound_lead + 0.3 * skill)
    replied = opened & (
        rng.random(n) < sigmoid(-1.5 + 0.6 * q + 1.5 * skill + 0.7 * post + 0.4 * inbound_lead)
    )
    return {
        "outcome": outcome,
        "duration": duration,
        "email_out": email_out,
        "opened": opened,
        "replied": replied,
    }


def _lookup(ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``ids[idx]`` with ``None`` where ``idx`` is -1."""
    out = np.full(len(idx), None, dtype=object)
    has = idx >= 0
    out[has] = ids[idx[has]]
    return out


def _scheduled_for(rows: Rows, outcome: np.ndarray, horizon: float, rng: np.random.Generator) -> np.ndarray:
    n = len(rows.time)
    planned = np.isin(rows.kind, [CALL, EMAIL, MEETING]) & ~rows.inbound & (rng.random(n) < 0.2)
    planned |= rows.kind == TASK
    when = rows.time + np.exp(rng.normal(np.log(3.0), 0.6, n))
    when = np.where(outcome == SCHEDULED, horizon + rng.uniform(0.5, 14.0, n), when)
    return np.where(planned | (outcome == SCHEDULED), when, np.nan)


def simulate_activities(
    config: SimulationConfig,
    clock: Clock,
    leads: Leads,
    deals: Deals,
    reps: Reps,
    lead_ids: np.ndarray,
    deal_ids: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Simulate the canonical ``activities`` table.

    Touch volume scales with the rep's activity volume and the hidden attention of the lead or deal;
    lost deals go quiet some days before they are marked lost; departed reps log nothing after leaving.

    Args:
        config: The simulation configuration.
        clock: Time conversions.
        leads: The simulated leads.
        deals: The simulated opportunities.
        reps: The simulated reps.
        lead_ids: Lead id per lead number.
        deal_ids: Opportunity id per deal number.
        rng: Random generator of this stage.

    Returns:
        One row per activity, ordered by time, ids ``ACT00000001``...
    """
    touches = _touches(config, clock, leads, deals, reps, rng)
    _assign_types(touches, reps, rng)
    rows = Rows.concat(
        [touches, _stage_meetings(config, clock, leads, deals, rng), _next_actions(clock, leads, deals, rng)]
    )
    rows = rows.take(np.flatnonzero(rows.time <= np.minimum(reps.left_at[rows.rep], clock.horizon)))
    rows = rows.take(np.argsort(rows.time, kind="stable"))
    res = _outcomes(rows, reps, rng)
    outcome = res["outcome"]
    is_email = (rows.kind == EMAIL) & ~rows.inbound
    n = len(rows.time)
    return pd.DataFrame(
        {
            "activity_id": np.array([f"ACT{i + 1:08d}" for i in range(n)], dtype=object),
            "occurred_at": clock.to_datetime(rows.time),
            "type": TYPES[rows.kind],
            "direction": np.where(rows.inbound, "inbound", "outbound").astype(object),
            "rep_id": reps.ids[rows.rep],
            "lead_id": _lookup(lead_ids, rows.lead),
            "opportunity_id": _lookup(deal_ids, rows.deal),
            "duration_seconds": res["duration"].astype(float),
            "outcome": OUTCOMES[outcome],
            "email_opened": pd.arrays.BooleanArray(res["opened"] & is_email, ~is_email),
            "email_replied": pd.arrays.BooleanArray(res["replied"] & is_email, ~is_email),
            "scheduled_for": clock.to_datetime(_scheduled_for(rows, outcome, clock.horizon, rng)),
        }
    )
