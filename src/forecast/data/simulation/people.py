"""Reps (with hidden skill and activity style) and accounts (firmographics)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data.simulation import config as vocab
from forecast.data.simulation.config import Clock, SimulationConfig

TEAM_SIZE = 6
LEAVER_SHARE = 0.08
NEW_HIRE_SHARE = 0.2


@dataclass
class Reps:
    """Hidden and observable rep attributes (arrays indexed by rep number).

    Attributes:
        ids: ``R001``... identifiers.
        region: Region index into :data:`config.REGIONS`.
        team: Team name per rep.
        skill: Hidden skill multiplier (lognormal around 1).
        volume: Hidden activity-volume multiplier.
        call_share: Share of calls among a rep's outbound touches (calls-heavy vs email-heavy style).
        hired_at: Hire time in days since start (negative: before the period).
        left_at: Leaving time in days (``inf`` while still employed).
        frame: The canonical ``reps`` table.
    """

    ids: np.ndarray
    region: np.ndarray
    team: np.ndarray
    skill: np.ndarray
    volume: np.ndarray
    call_share: np.ndarray
    hired_at: np.ndarray
    left_at: np.ndarray
    frame: pd.DataFrame


def _names(rng: np.random.Generator, n: int) -> np.ndarray:
    first = rng.integers(0, len(vocab.FIRST_NAMES), n)
    last = rng.integers(0, len(vocab.LAST_NAMES), n)
    return np.array(
        [f"{vocab.FIRST_NAMES[f]} {vocab.LAST_NAMES[s]}" for f, s in zip(first, last, strict=True)]
    )


def _regions_for(n: int) -> np.ndarray:
    """Spread ``n`` reps over regions in proportion to lead volume (each region at least one)."""
    weight = np.zeros(len(vocab.REGIONS))
    np.add.at(weight, np.array(vocab.COUNTRY_REGION), np.array(vocab.COUNTRY_MIX))
    counts = np.maximum(1, np.floor(weight / weight.sum() * n)).astype(int)
    while counts.sum() < n:
        counts[np.argmax(weight / weight.sum() * n - counts)] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    return np.repeat(np.arange(len(vocab.REGIONS)), counts)


def _default_tenure(horizon: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hire and leaving days: 20% hired during the period, ~8% leave after at least 240 days."""
    new_hire = rng.random(n) < NEW_HIRE_SHARE
    hired_at = np.where(new_hire, rng.uniform(0.0, 0.75 * horizon, n), -rng.uniform(60.0, 1500.0, n))
    leaver = (rng.random(n) < LEAVER_SHARE) & (hired_at + 240.0 < horizon - 30.0)
    left_lo = np.maximum(hired_at + 240.0, 0.4 * horizon)
    left_at = np.where(
        leaver, rng.uniform(0.0, 1.0, n) * np.maximum(horizon - 30.0 - left_lo, 0.0) + left_lo, np.inf
    )
    return hired_at, left_at


def _turnover_tenure(
    horizon: float, n: int, share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Hire and leaving days with turnover: ``share`` of reps join during the period, as many leave.

    Joiners start between 5% and 85% of the period; leavers (reps employed from the start) leave
    between 10% and 90% of it, whatever their tenure, so turnover shows even in a short history.
    """
    new_hire = rng.random(n) < share
    hired_at = np.where(new_hire, rng.uniform(0.05, 0.85, n) * horizon, -rng.uniform(60.0, 1500.0, n))
    leave_prob = min(1.0, share / max(1.0 - share, 1e-9))
    leaver = ~new_hire & (rng.random(n) < leave_prob)
    left_at = np.where(leaver, rng.uniform(0.1, 0.9, n) * horizon, np.inf)
    return hired_at, left_at


def simulate_reps(config: SimulationConfig, clock: Clock, rng: np.random.Generator) -> Reps:
    """Simulate reps in teams of about six per region, each team with a manager.

    Args:
        config: The simulation configuration.
        clock: Time conversions.
        rng: Random generator of this stage.

    Returns:
        Hidden attributes and the canonical ``reps`` table.
    """
    n = config.reps_count
    region = _regions_for(n)
    team = np.empty(n, dtype=object)
    team_of_rep = np.zeros(n, dtype=np.int64)
    n_teams_total = 0
    for r, code in enumerate(vocab.REGIONS):
        idx = np.flatnonzero(region == r)
        n_teams = max(1, round(len(idx) / TEAM_SIZE))
        team_no = np.arange(len(idx)) * n_teams // max(len(idx), 1)
        team[idx] = np.array([f"{code}-{t + 1}" for t in team_no], dtype=object)
        team_of_rep[idx] = n_teams_total + team_no
        n_teams_total += n_teams
    manager = _names(rng, n_teams_total).astype(object)[team_of_rep]
    skill = np.exp(rng.normal(0.0, config.coefficients.skill_sigma, n))
    volume = np.exp(rng.normal(0.0, 0.3, n))
    calls_heavy = rng.random(n) < 0.5
    call_share = np.where(calls_heavy, rng.beta(12, 8, n), rng.beta(5, 15, n))
    if config.rep_turnover is None:
        hired_at, left_at = _default_tenure(clock.horizon, n, rng)
    else:
        hired_at, left_at = _turnover_tenure(clock.horizon, n, config.rep_turnover, rng)
    ids = np.array([f"R{i + 1:03d}" for i in range(n)], dtype=object)
    frame = pd.DataFrame(
        {
            "rep_id": ids,
            "name": _names(rng, n).astype(object),
            "team": team,
            "manager": manager,
            "region": np.array(vocab.REGIONS, dtype=object)[region],
            "hired_at": clock.to_date(hired_at),
            "active": pd.array(~np.isfinite(left_at), dtype="boolean"),
        }
    )
    return Reps(ids, region, team, skill, volume, call_share, hired_at, left_at, frame)


@dataclass
class Accounts:
    """Account attributes (arrays indexed by account number) and the canonical table.

    Attributes:
        ids: ``A000001``... identifiers.
        size: Company-size bucket index into :data:`config.COMPANY_SIZES`.
        industry: Industry index.
        country: Country index.
        weight: Relative chance of the account being the company of a new lead.
        frame: The canonical ``accounts`` table (``created_at`` filled in later).
    """

    ids: np.ndarray
    size: np.ndarray
    industry: np.ndarray
    country: np.ndarray
    weight: np.ndarray
    frame: pd.DataFrame


def simulate_accounts(n_leads: int, rng: np.random.Generator) -> Accounts:
    """Simulate companies with industry, head count, revenue and country.

    Args:
        n_leads: Number of leads (about 0.7 accounts per lead; larger companies get more leads).
        rng: Random generator of this stage.

    Returns:
        The accounts; ``frame.created_at`` is set by :func:`set_account_created`.
    """
    n = max(1, int(np.ceil(n_leads * 0.7)))
    size = rng.choice(len(vocab.COMPANY_SIZES), n, p=np.array(vocab.SIZE_MIX))
    lo = np.array([b[0] for b in vocab.SIZE_BOUNDS], dtype=float)[size]
    hi = np.array([b[1] for b in vocab.SIZE_BOUNDS], dtype=float)[size]
    employees = np.floor(np.exp(rng.uniform(np.log(lo), np.log(hi + 1.0)))).astype(np.int64)
    employees = np.clip(employees, lo.astype(np.int64), hi.astype(np.int64))
    industry = rng.choice(len(vocab.INDUSTRIES), n, p=np.array(vocab.INDUSTRY_MIX))
    country = rng.choice(len(vocab.COUNTRIES), n, p=np.array(vocab.COUNTRY_MIX))
    per_employee = np.array(vocab.REVENUE_PER_EMPLOYEE, dtype=float)[industry]
    revenue = np.round(employees * per_employee * np.exp(rng.normal(0.0, 0.4, n)), -3)
    weight = rng.pareto(2.5, n) + 1.0 + 0.3 * size
    words = rng.integers(0, len(vocab.COMPANY_WORDS), (n, 2))
    suffix = rng.integers(0, len(vocab.COMPANY_SUFFIXES), n)
    names = [
        f"{vocab.COMPANY_WORDS[a]}{vocab.COMPANY_WORDS[b].lower()} {vocab.COMPANY_SUFFIXES[s]} {i + 1}"
        for i, (a, b, s) in enumerate(zip(words[:, 0], words[:, 1], suffix, strict=True))
    ]
    ids = np.array([f"A{i + 1:06d}" for i in range(n)], dtype=object)
    frame = pd.DataFrame(
        {
            "account_id": ids,
            "name": np.array(names, dtype=object),
            "industry": np.array(vocab.INDUSTRIES, dtype=object)[industry],
            "employees": pd.array(employees, dtype="Int64"),
            "annual_revenue": revenue.astype(float),
            "country": np.array(vocab.COUNTRIES, dtype=object)[country],
        }
    )
    return Accounts(ids, size, industry, country, weight, frame)


def set_account_created(
    accounts: Accounts,
    clock: Clock,
    lead_account: np.ndarray,
    lead_created: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Set ``accounts.created_at``: before the account's first lead, or random for accounts without leads."""
    n = len(accounts.ids)
    first = np.full(n, np.inf)
    np.minimum.at(first, lead_account, lead_created)
    lead_less = ~np.isfinite(first)
    created = np.where(
        lead_less,
        rng.uniform(-365.0, clock.horizon, n),
        first - rng.exponential(30.0, n) * (rng.random(n) < 0.6),
    )
    accounts.frame["created_at"] = clock.to_datetime(np.minimum(created, first))
