"""Opportunities: products and amounts, win probability, stage progression, slips and closing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data.simulation import config as vocab
from forecast.data.simulation.config import Clock, SimulationConfig, choice_from_probs, sigmoid
from forecast.data.simulation.leads import Leads
from forecast.data.simulation.people import Accounts, Reps

_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(24)
QUARTER_PUSH_WINDOW = 21.0
QUARTER_PUSH_PROB = 0.45


@dataclass
class Deals:
    """Per-opportunity arrays, ordered by creation time.

    ``entered`` has one column per open stage plus a last column for the closing time; unreached
    stages are ``nan``. ``amounts`` and ``ecd`` (expected close day) hold the values set at each change.
    Times are float days since start and may lie after the end (the future the CRM has not seen).
    """

    lead: np.ndarray
    created: np.ndarray
    product: np.ndarray
    quality: np.ndarray
    log_attention: np.ndarray
    true_p: np.ndarray
    observable_p: np.ndarray
    wins: np.ndarray
    entered: np.ndarray
    amounts: np.ndarray
    ecd: np.ndarray
    closed: np.ndarray
    loss_reason: np.ndarray
    activity_end: np.ndarray
    calibrated: dict[str, float] | None = None


def calibrated_shift(logit: np.ndarray, target: float) -> float:
    """The constant that, added to every logit, makes the mean probability equal ``target``.

    Args:
        logit: Win logits of the simulated deals (hidden terms included).
        target: Wanted mean probability, strictly between 0 and 1.

    Returns:
        The shift (0 when there are no deals); found by bisection, deterministic.
    """
    if len(logit) == 0:
        return 0.0
    lo, hi = -20.0, 20.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if float(np.mean(sigmoid(logit + mid))) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _quarter_end_days(clock: Clock, days: np.ndarray) -> np.ndarray:
    """Days since start of the end (exclusive midnight) of the calendar quarter containing ``days``."""
    months = clock.to_date(days).astype("datetime64[M]").astype(np.int64)
    q_end = ((months // 3 + 1) * 3).astype("datetime64[M]").astype("datetime64[ns]")
    return (q_end - clock.start.to_datetime64()) / np.timedelta64(1, "D")


def win_observable_p(
    lead_mu: np.ndarray, win_mu: np.ndarray, config: SimulationConfig, chunk: int = 50_000
) -> np.ndarray:
    """``E[p_win | observed fields, converted]`` with the hidden factors integrated out.

    The hidden lead term ``hL`` (quality and attention) and deal term ``hW`` are jointly normal; the
    deal exists only if the lead converted, so the expectation weights by ``sigmoid(lead_mu + hL)``.
    Computed by 2-D Gauss-Hermite quadrature.
    """
    c = config.coefficients
    s = c.attention_sigma
    var_l = c.convert_quality**2 + (c.convert_attention * s) ** 2
    var_w = c.win_quality**2 + (c.win_attention * s) ** 2
    cov = (
        c.convert_quality * c.win_quality * c.deal_lead_quality_corr
        + 0.5 * c.convert_attention * c.win_attention * s**2
    )
    chol = np.linalg.cholesky(np.array([[var_l, cov], [cov, var_w]]))
    z1, z2 = np.meshgrid(np.sqrt(2.0) * _GH_NODES, np.sqrt(2.0) * _GH_NODES, indexing="ij")
    w = np.outer(_GH_WEIGHTS, _GH_WEIGHTS).ravel() / np.pi
    h_l = chol[0, 0] * z1.ravel()
    h_w = chol[1, 0] * z1.ravel() + chol[1, 1] * z2.ravel()
    out = np.empty(len(lead_mu))
    for lo in range(0, len(lead_mu), chunk):
        pl = sigmoid(lead_mu[lo : lo + chunk, None] + h_l[None, :])
        pw = sigmoid(win_mu[lo : lo + chunk, None] + h_w[None, :])
        out[lo : lo + chunk] = ((pl * pw) @ w) / (pl @ w)
    return out


def _durations(
    config: SimulationConfig,
    size: np.ndarray,
    product: np.ndarray,
    quality: np.ndarray,
    log_att: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Days per open stage (matrix) and the per-deal multiplier of the planned durations."""
    medians = config.stage_medians()
    mult = np.array(vocab.SIZE_DURATION_MULT)[size] * np.array(vocab.PRODUCT_DURATION_MULT)[product]
    speed = np.exp(-0.15 * quality - 0.3 * log_att)
    noise = np.exp(rng.normal(0.0, 0.6, (len(size), len(medians))))
    return medians[None, :] * (mult * speed)[:, None] * noise, mult


def _progress(
    config: SimulationConfig,
    clock: Clock,
    created: np.ndarray,
    wins: np.ndarray,
    durations: np.ndarray,
    quality: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage entry times (open stages + closing column) and the index of the last open stage reached."""
    n, k = durations.shape
    hazard = 0.72 ** np.arange(k)
    lost_at = choice_from_probs(rng, np.tile(hazard, (n, 1)))
    # Weaker deals tend to drop out earlier.
    lost_at = np.clip(lost_at - (quality < -1.0) * (rng.random(n) < 0.5), 0, k - 1)
    last = np.where(wins, k - 1, lost_at)
    cum = created[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(durations, axis=1)], axis=1)
    reached = np.arange(k + 1)[None, :] <= last[:, None]
    entered = np.where(reached, cum, np.nan)
    partial = durations[np.arange(n), last] * rng.uniform(0.3, 1.2, n)
    close = np.where(wins, cum[np.arange(n), k], entered[np.arange(n), last] + partial)
    q_end = _quarter_end_days(clock, close)
    window = QUARTER_PUSH_WINDOW if config.quarter_push_days is None else config.quarter_push_days
    push = wins & (q_end - close < window) & (rng.random(n) < QUARTER_PUSH_PROB)
    close = np.where(push, np.maximum(close, q_end - rng.uniform(0.05, 1.5, n)), close)
    entered[:, k] = close
    return entered, last


def _amount_path(base: np.ndarray, n_cols: int, rng: np.random.Generator) -> np.ndarray:
    """Amount at each change: occasional discounts (more in late stages) and rare upsells."""
    n = len(base)
    late = np.arange(n_cols)[None, :] >= n_cols - 3
    cut = rng.random((n, n_cols)) < np.where(late, 0.22, 0.08)
    up = ~cut & (rng.random((n, n_cols)) < 0.03)
    factor = np.where(cut, rng.uniform(0.7, 0.95, (n, n_cols)), 1.0) * np.where(
        up, rng.uniform(1.1, 1.4, (n, n_cols)), 1.0
    )
    factor[:, 0] = 1.0
    return np.round(base[:, None] * np.cumprod(factor, axis=1), -2)


def _close_date_path(
    config: SimulationConfig,
    entered: np.ndarray,
    mult: np.ndarray,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> np.ndarray:
    """Expected close day set at each change: optimistic plans that slip later when deals run late."""
    n, cols = entered.shape
    medians = config.stage_medians() * scale
    remaining = np.concatenate([np.cumsum(medians[::-1])[::-1], [0.0]])
    plan = entered + remaining[None, :] * mult[:, None] * np.exp(rng.normal(-0.25, 0.3, (n, cols)))
    stale = rng.random((n, cols)) < 0.3
    ecd = np.empty_like(entered)
    ecd[:, 0] = np.floor(plan[:, 0]) + 1.0
    for j in range(1, cols):
        pushed = np.maximum(ecd[:, j - 1], np.floor(plan[:, j]) + 1.0)
        ecd[:, j] = np.where(stale[:, j] & (ecd[:, j - 1] > entered[:, j]), ecd[:, j - 1], pushed)
    return ecd


def _loss_reasons(
    n_open: int, last: np.ndarray, wins: np.ndarray, log_att: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    late = last >= n_open // 2
    probs = np.where(
        late[:, None], np.array(vocab.LOSS_REASON_LATE)[None, :], np.array(vocab.LOSS_REASON_EARLY)[None, :]
    )
    reason = choice_from_probs(rng, probs)
    silent = (log_att < -0.4) & (rng.random(len(last)) < 0.5)
    reason = np.where(silent, vocab.LOSS_REASONS.index("went_silent"), reason)
    return np.where(wins, -1, reason)


def simulate_deals(
    config: SimulationConfig, clock: Clock, leads: Leads, reps: Reps, rng: np.random.Generator
) -> Deals:
    """Simulate the opportunities of the leads converted before the end.

    Args:
        config: The simulation configuration.
        clock: Time conversions.
        leads: The simulated leads.
        reps: The simulated reps.
        rng: Random generator of this stage.

    Returns:
        Per-opportunity arrays, including the future after the end (for the ground truth).
    """
    coef = config.coefficients
    lead = np.flatnonzero(leads.converted <= clock.horizon)
    lead = lead[np.argsort(leads.converted[lead], kind="stable")]
    n = len(lead)
    created = leads.converted[lead]
    size = leads.size[lead]
    product = choice_from_probs(rng, np.array(vocab.PRODUCT_BY_SIZE)[size])
    base = np.array(vocab.PRODUCT_PRICE)[product] * np.array(vocab.SIZE_AMOUNT_MULT)[size]
    base = np.maximum(np.round(base * np.exp(rng.normal(0.0, 0.35, n)), -2), 500.0)
    rho = coef.deal_lead_quality_corr
    quality = rho * leads.quality[lead] + np.sqrt(1.0 - rho**2) * rng.standard_normal(n)
    log_att = 0.5 * leads.log_attention[lead] + np.sqrt(0.75) * rng.normal(0.0, coef.attention_sigma, n)
    win_mu = (
        coef.win_intercept
        + config.win_shift
        + np.array(vocab.PRODUCT_WIN_EFFECT)[product]
        + np.array(vocab.SIZE_WIN_EFFECT)[size]
        + np.array([vocab.SOURCE_WIN_EFFECT[s] for s in vocab.SOURCES])[leads.source[lead]]
        + coef.win_skill * np.log(reps.skill[leads.rep[lead]])
    )
    calibrated: dict[str, float] = {}
    if config.win_drift:
        win_mu = win_mu + config.win_drift * (created - 0.5 * clock.horizon) / 365.25
    if config.win_rate is not None:
        hidden = coef.win_quality * quality + coef.win_attention * log_att
        shift = calibrated_shift(win_mu + hidden, config.win_rate)
        win_mu = win_mu + shift
        calibrated["win_shift_calibrated"] = round(shift, 6)
    true_p = sigmoid(win_mu + coef.win_quality * quality + coef.win_attention * log_att)
    observable_p = win_observable_p(leads.observable_logit[lead], win_mu, config)
    wins = rng.random(n) < true_p
    durations, mult = _durations(config, size, product, quality, log_att, rng)
    scale = 1.0
    if config.cycle_days is not None and wins.any():
        scale = config.cycle_days / float(np.median(durations[wins].sum(axis=1)))
        durations = durations * scale
        calibrated["cycle_scale"] = round(scale, 6)
    entered, last = _progress(config, clock, created, wins, durations, quality, rng)
    amounts = _amount_path(base, entered.shape[1], rng)
    ecd = _close_date_path(config, entered, mult, rng, scale)
    closed = entered[:, -1]
    ecd[:, -1] = np.floor(closed)
    reason = _loss_reasons(durations.shape[1], last, wins, log_att, rng)
    gap = np.exp(rng.normal(np.log(10.0), 0.6, n)) * np.where(
        reason == vocab.LOSS_REASONS.index("went_silent"), 2.0, 1.0
    )
    activity_end = np.where(wins, closed, np.maximum(created, closed - gap))
    return Deals(
        lead=lead,
        created=created,
        product=product,
        quality=quality,
        log_attention=log_att,
        true_p=true_p,
        observable_p=observable_p,
        wins=wins,
        entered=entered,
        amounts=amounts,
        ecd=ecd,
        closed=closed,
        loss_reason=reason,
        activity_end=activity_end,
        calibrated=calibrated or None,
    )


def deal_tables(
    deals: Deals,
    clock: Clock,
    config: SimulationConfig,
    leads: Leads,
    reps: Reps,
    accounts: Accounts,
    lead_ids: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Build ``opportunities`` and ``stage_history`` as seen at the end.

    Returns:
        The two tables and the opportunity ids.
    """
    n, cols = deals.entered.shape
    horizon = clock.horizon
    ids = np.array([f"O{i + 1:07d}" for i in range(n)], dtype=object)
    open_names = config.pipeline.open_stages
    won_name, lost_name = config.pipeline.won_stages[0], config.pipeline.lost_stages[0]
    stage_names = np.array([*open_names, won_name, lost_name], dtype=object)
    stage_code = np.tile(np.arange(cols), (n, 1))
    stage_code[:, -1] = np.where(deals.wins, cols - 1, cols)
    seen = ~np.isnan(deals.entered) & (deals.entered <= horizon)
    row, col = np.nonzero(seen)
    history = pd.DataFrame(
        {
            "opportunity_id": ids[row],
            "stage": stage_names[stage_code[row, col]],
            "entered_at": clock.to_datetime(deals.entered[row, col]),
            "amount": deals.amounts[row, col],
            "expected_close_date": clock.to_date(deals.ecd[row, col]),
        }
    )
    last_col = cols - 1 - np.argmax(seen[:, ::-1], axis=1)
    idx = np.arange(n)
    is_closed = deals.closed <= horizon
    outcome = np.where(is_closed, np.where(deals.wins, "won", "lost"), "open").astype(object)
    reasons = np.array([*vocab.LOSS_REASONS, None], dtype=object)[deals.loss_reason]
    opps = pd.DataFrame(
        {
            "opportunity_id": ids,
            "account_id": accounts.ids[leads.account[deals.lead]],
            "lead_id": lead_ids[deals.lead],
            "rep_id": reps.ids[leads.rep[deals.lead]],
            "product": np.array(vocab.PRODUCTS, dtype=object)[deals.product],
            "created_at": clock.to_datetime(deals.created),
            "amount": deals.amounts[idx, last_col],
            "stage": stage_names[stage_code[idx, last_col]],
            "expected_close_date": clock.to_date(deals.ecd[idx, last_col]),
            "closed_at": clock.to_datetime(np.where(is_closed, deals.closed, np.nan)),
            "outcome": outcome,
            "loss_reason": np.where(is_closed & ~deals.wins, reasons, None),
        }
    )
    return opps, history, ids


def truth_opportunities_frame(deals: Deals, clock: Clock, ids: np.ndarray) -> pd.DataFrame:
    """Ground truth per opportunity (never ingested): hidden quality, win probabilities, eventual result."""
    return pd.DataFrame(
        {
            "opportunity_id": ids,
            "quality": deals.quality,
            "attention": np.exp(deals.log_attention),
            "true_p_win": deals.true_p,
            "p_win_observable": deals.observable_p,
            "eventual_outcome": np.where(deals.wins, "won", "lost").astype(object),
            "eventual_closed_at": clock.to_datetime(deals.closed),
        }
    )
