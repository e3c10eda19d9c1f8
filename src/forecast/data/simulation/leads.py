"""Leads: creation times, firmographics, source quality, hidden quality and the status lifecycle."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data.simulation import config as vocab
from forecast.data.simulation.config import Clock, SimulationConfig, sigmoid
from forecast.data.simulation.people import Accounts, Reps

_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(40)
NOTICE_DAYS = 120.0
"""Reps stop receiving new leads this many days before they leave."""


@dataclass
class Leads:
    """Per-lead arrays (indexed by lead number, ordered by creation time).

    Times are float days since the start; ``nan`` means "never" (or "not before the end").
    """

    created: np.ndarray
    source: np.ndarray
    inbound: np.ndarray
    rep: np.ndarray
    account: np.ndarray
    title: np.ndarray
    size: np.ndarray
    industry: np.ndarray
    country: np.ndarray
    quality: np.ndarray
    log_attention: np.ndarray
    observable_logit: np.ndarray
    true_p: np.ndarray
    observable_p: np.ndarray
    converts: np.ndarray
    first_touch: np.ndarray
    qualified: np.ndarray
    converted: np.ndarray
    disqualified: np.ndarray
    neglected: np.ndarray
    work_end: np.ndarray


def expected_sigmoid(mu: np.ndarray, sd: float) -> np.ndarray:
    """``E[sigmoid(mu + sd * Z)]`` for standard normal ``Z`` by 40-point Gauss-Hermite quadrature."""
    x = np.asarray(mu, dtype=float)[:, None] + np.sqrt(2.0) * sd * _GH_NODES[None, :]
    return (sigmoid(x) @ _GH_WEIGHTS) / np.sqrt(np.pi)


def _creation_days(config: SimulationConfig, clock: Clock, rng: np.random.Generator) -> np.ndarray:
    n_days = int(clock.horizon)
    day = np.arange(n_days, dtype=float)
    month = clock.month_index(day)
    weekday = (clock.start.dayofweek + np.arange(n_days)) % 7
    weights = (
        np.array(vocab.MONTH_SEASONALITY)[month]
        * np.array(vocab.WEEKDAY_WEIGHT)[weekday]
        * (1.0 + 0.3 * day / max(n_days, 1))
    )
    picked = rng.choice(n_days, size=config.n_leads, p=weights / weights.sum()).astype(float)
    hour = np.clip(rng.normal(12.5, 2.8, config.n_leads), 0.0, 23.99)
    return np.sort(picked + hour / 24.0, kind="stable")


def _assign_reps(reps: Reps, region: np.ndarray, created: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pick a rep of the lead's region who is employed and not about to leave (global fallback)."""
    n = len(created)
    rep = np.full(n, -1, dtype=np.int64)
    by_region = [np.flatnonzero(reps.region == r) for r in range(len(vocab.REGIONS))]
    for _ in range(12):
        todo = np.flatnonzero(rep < 0)
        if not len(todo):
            break
        cand = np.empty(len(todo), dtype=np.int64)
        for r, pool in enumerate(by_region):
            sel = region[todo] == r
            cand[sel] = pool[rng.integers(0, len(pool), int(sel.sum()))]
        ok = (reps.hired_at[cand] <= created[todo]) & (created[todo] < reps.left_at[cand] - NOTICE_DAYS)
        rep[todo[ok]] = cand[ok]
    todo = np.flatnonzero(rep < 0)
    if len(todo):
        # Fallback: the rep of any region with the longest tenure at that time.
        eligible = (reps.hired_at[None, :] <= created[todo, None]) & (
            created[todo, None] < reps.left_at[None, :] - NOTICE_DAYS
        )
        score = np.where(eligible, -reps.hired_at[None, :], -np.inf)
        rep[todo] = np.argmax(score, axis=1)
    return rep


def simulate_leads(
    config: SimulationConfig, clock: Clock, reps: Reps, accounts: Accounts, rng: np.random.Generator
) -> Leads:
    """Simulate leads, their hidden conversion probability and their status lifecycle.

    Args:
        config: The simulation configuration.
        clock: Time conversions.
        reps: The simulated reps.
        accounts: The simulated accounts.
        rng: Random generator of this stage.

    Returns:
        Per-lead arrays; the table is built by :func:`leads_frame` once opportunities exist.
    """
    n = config.n_leads
    coef = config.coefficients
    created = _creation_days(config, clock, rng)
    source = rng.choice(len(vocab.SOURCES), n, p=config.source_shares())
    inbound = source < len(vocab.INBOUND_SOURCES)
    account = rng.choice(len(accounts.ids), n, p=accounts.weight / accounts.weight.sum())
    size, industry, country = accounts.size[account], accounts.industry[account], accounts.country[account]
    title = rng.choice(len(vocab.TITLES), n, p=np.array(vocab.TITLE_MIX))
    rep = _assign_reps(reps, np.array(vocab.COUNTRY_REGION)[country], created, rng)

    quality = rng.standard_normal(n)
    log_attention = rng.normal(0.0, coef.attention_sigma, n)
    observable_logit = (
        coef.convert_intercept
        + config.conversion_shift
        + np.array([vocab.SOURCE_CONVERT_EFFECT[s] for s in vocab.SOURCES])[source]
        + np.array(vocab.SIZE_CONVERT_EFFECT)[size]
        + np.array(vocab.INDUSTRY_CONVERT_EFFECT)[industry]
        + np.array(vocab.TITLE_CONVERT_EFFECT)[title]
        + coef.convert_skill * np.log(reps.skill[rep])
    )
    hidden = coef.convert_quality * quality + coef.convert_attention * log_attention
    true_p = sigmoid(observable_logit + hidden)
    hidden_sd = float(np.hypot(coef.convert_quality, coef.convert_attention * coef.attention_sigma))
    observable_p = expected_sigmoid(observable_logit, hidden_sd)
    converts = rng.random(n) < true_p

    volume = reps.volume[rep]
    first_touch = created + np.where(inbound, rng.exponential(0.4, n), rng.exponential(0.05, n)) / volume
    delay = np.exp(rng.normal(np.log(np.where(inbound, 12.0, 20.0)) - 0.2 * quality, 0.7))
    converted = np.where(converts, first_touch + delay, np.nan)
    neglected = ~converts & (rng.random(n) < 0.15)
    dq_delay = np.where(
        neglected, np.exp(rng.normal(np.log(90.0), 0.5, n)), np.exp(rng.normal(np.log(30.0), 0.6, n))
    )
    never_closed = neglected & (rng.random(n) < 0.4)
    disqualified = np.where(converts | never_closed, np.nan, first_touch + dq_delay)
    first_touch = np.where(neglected, np.nan, first_touch)
    qualifies = converts | (~neglected & (rng.random(n) < 0.25))
    stop = np.where(converts, converted, disqualified)
    qualified = np.where(qualifies, first_touch + (stop - first_touch) * rng.uniform(0.5, 0.9, n), np.nan)
    work_end = np.fmin(np.fmin(stop, clock.horizon), first_touch + 75.0)
    return Leads(
        created=created,
        source=source,
        inbound=inbound,
        rep=rep,
        account=account,
        title=title,
        size=size,
        industry=industry,
        country=country,
        quality=quality,
        log_attention=log_attention,
        observable_logit=observable_logit,
        true_p=true_p,
        observable_p=observable_p,
        converts=converts,
        first_touch=first_touch,
        qualified=qualified,
        converted=converted,
        disqualified=disqualified,
        neglected=neglected,
        work_end=work_end,
    )


def lead_status(leads: Leads, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Status at the end and the time it was set (``nan`` for leads still ``new``)."""
    events = np.stack([leads.first_touch, leads.qualified, leads.disqualified, leads.converted], axis=1)
    events = np.where(events <= horizon, events, np.nan)
    seen = ~np.isnan(events)
    last = np.where(seen.any(axis=1), np.nanargmax(np.where(seen, events, -np.inf), axis=1) + 1, 0)
    names = np.array(["new", "working", "qualified", "disqualified", "converted"], dtype=object)
    changed = np.where(last > 0, np.nanmax(np.where(seen, events, -np.inf), axis=1), np.nan)
    return names[last], changed


def leads_frame(
    leads: Leads, clock: Clock, reps: Reps, accounts: Accounts, opportunity_ids: np.ndarray
) -> pd.DataFrame:
    """Build the canonical ``leads`` table.

    Args:
        leads: Per-lead arrays.
        clock: Time conversions.
        reps: The simulated reps.
        accounts: The simulated accounts.
        opportunity_ids: Opportunity id per lead (``None`` when not converted by the end).

    Returns:
        The ``leads`` table, one row per lead in id order.
    """
    n = len(leads.created)
    status, changed = lead_status(leads, clock.horizon)
    converted = np.where(leads.converted <= clock.horizon, leads.converted, np.nan)
    return pd.DataFrame(
        {
            "lead_id": np.array([f"L{i + 1:07d}" for i in range(n)], dtype=object),
            "created_at": clock.to_datetime(leads.created),
            "source": np.array(vocab.SOURCES, dtype=object)[leads.source],
            "channel": np.where(leads.inbound, "inbound", "outbound").astype(object),
            "rep_id": reps.ids[leads.rep],
            "account_id": accounts.ids[leads.account],
            "title": np.array(vocab.TITLES, dtype=object)[leads.title],
            "industry": np.array(vocab.INDUSTRIES, dtype=object)[leads.industry],
            "company_size": np.array(vocab.COMPANY_SIZES, dtype=object)[leads.size],
            "country": np.array(vocab.COUNTRIES, dtype=object)[leads.country],
            "status": status,
            "status_changed_at": clock.to_datetime(changed),
            "converted_at": clock.to_datetime(converted),
            "opportunity_id": opportunity_ids,
        }
    )


def truth_leads_frame(leads: Leads, lead_ids: np.ndarray) -> pd.DataFrame:
    """Ground truth per lead (never ingested): hidden quality and conversion probabilities."""
    return pd.DataFrame(
        {
            "lead_id": lead_ids,
            "quality": leads.quality,
            "attention": np.exp(leads.log_attention),
            "true_p_convert": leads.true_p,
            "p_convert_observable": leads.observable_p,
            "converts_eventually": leads.converts,
            "neglected": leads.neglected,
        }
    )
