"""The revenue engine's per-group work by group codes gives the numbers of the per-group loops, bit for bit.

The references below are the engine's functions as they were before the work was grouped by codes
(a comparison of the group column per group, a float32 matrix product of the booked deals and a
dense amount-per-group matrix, a quantile per period and group): the new code must give the same
arrays and tables exactly, with many groups, with and without common shocks, and where a float32
sum rounds (the product then sums the block itself).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecast.data.as_of import crm_as_of
from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.revenue import forecast as forecast_module
from forecast.revenue.engine import won_between
from forecast.revenue.forecast import ALL, forecast_revenue, period_grid
from forecast.revenue.job import _quota_lookup
from forecast.revenue.montecarlo import (
    _exact_limit,
    _WeightedPicks,
    booking_probabilities,
    simulate_open_deals,
)
from forecast.revenue.new_deals import NewDealModel, fit_new_deal_model
from forecast.revenue.shock import NO_SHOCK, CommonShock, ShockScale
from forecast.tracking.periods import Period

T = pd.Timestamp


# --- the references: the functions as they were -------------------------------------------------


def old_simulate_open_deals(
    q: np.ndarray,
    amounts: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    n_sims: int,
    rng: np.random.Generator,
    chunk: int = 500,
    *,
    p_win: np.ndarray | None = None,
    shift: np.ndarray | None = None,
) -> np.ndarray:
    n, k = q.shape
    out = np.zeros((n_sims, k, n_groups), dtype=np.float64)
    if n == 0 or n_sims == 0:
        return out
    weights = np.zeros((n, n_groups), dtype=np.float32)
    weights[np.arange(n), groups] = np.nan_to_num(amounts.astype(np.float32))
    cum = np.cumsum(q, axis=1).astype(np.float32)
    p32 = np.clip(p_win if p_win is not None else np.zeros(n), 0.0, 1.0).astype(np.float32)
    p_loss = (1.0 - p32) if shift is not None and p_win is not None else None
    for lo in range(0, n_sims, chunk):
        hi = min(lo + chunk, n_sims)
        u = rng.random((hi - lo, n), dtype=np.float32)
        if p_loss is not None and shift is not None:
            loss_scale = np.exp(-shift[lo:hi]).astype(np.float32)
            u *= p32[None, :] + p_loss[None, :] * loss_scale[:, None]
        below = np.zeros_like(u, dtype=bool)
        for j in range(k):
            upto = u < cum[:, j]
            out[lo:hi, j, :] = (upto & ~below).astype(np.float32) @ weights
            below = upto
    return out


def old_fit_new_deal_model(
    deals: pd.DataFrame,
    as_of: pd.Timestamp,
    groups: list[str],
    *,
    window_days: float = 180,
    mature_days: float = 180,
    cohort_days: float = 365,
    shrink: float = 20.0,
) -> NewDealModel:
    created = pd.to_datetime(deals["created_at"])
    closed = pd.to_datetime(deals["closed_at"])
    recent = deals[(created >= as_of - pd.Timedelta(days=window_days)) & (created < as_of)]
    span = min(window_days, max((as_of - created.min()) / pd.Timedelta(days=1), 1.0)) if len(deals) else 1.0
    counts = recent["group"].value_counts()
    rate = np.array([counts.get(g, 0) / span for g in groups], dtype=float)
    c_hi = as_of - pd.Timedelta(days=mature_days)
    cohort = deals[(created >= c_hi - pd.Timedelta(days=cohort_days)) & (created < c_hi)]
    won_cohort = (cohort["outcome"] == "won") & (pd.to_datetime(cohort["closed_at"]) < as_of)
    overall = float(won_cohort.mean()) if len(cohort) else float((deals["outcome"] == "won").mean() or 0.0)
    win = np.array(
        [
            (won_cohort[cohort["group"] == g].sum() + shrink * overall)
            / ((cohort["group"] == g).sum() + shrink)
            for g in groups
        ],
        dtype=float,
    )
    won = deals[
        (deals["outcome"] == "won") & (closed < as_of) & (closed >= as_of - pd.Timedelta(days=cohort_days))
    ]
    cycle = (
        (pd.to_datetime(won["closed_at"]) - pd.to_datetime(won["created_at"])) / pd.Timedelta(days=1)
    ).to_numpy(dtype=float)
    amounts = pd.to_numeric(won["amount"], errors="coerce")
    known = amounts.notna().to_numpy()
    pool_all, cycles_all = amounts.to_numpy(dtype=float)[known], cycle[known]
    pools, cycles = [], []
    for g in groups:
        mine = (won["group"] == g).to_numpy() & known
        own = int(mine.sum()) >= 20
        pools.append(amounts.to_numpy(dtype=float)[mine] if own else pool_all)
        cycles.append(cycle[mine] if own else cycles_all)
    return NewDealModel(list(groups), rate, win, pools, cycles)


def old_won_between(
    deals: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, groups: list[str]
) -> np.ndarray:
    closed = pd.to_datetime(deals["closed_at"])
    won = deals[(deals["outcome"] == "won") & (closed >= start) & (closed < end)]
    sums = pd.to_numeric(won["amount"], errors="coerce").fillna(0).groupby(won["group"]).sum()
    return np.array([float(sums.get(g, 0.0)) for g in groups])


def old_period_row(
    p: Period,
    name: str,
    ki: int,
    gi: int,
    t: np.ndarray,
    parts: Any,
    quotas: np.ndarray | None,
    avg_won_amount: np.ndarray | None,
) -> dict[str, Any]:
    p10, p50, p90 = np.quantile(t, [0.1, 0.5, 0.9])
    quota = float(quotas[ki, gi]) if quotas is not None else math.nan
    expected = float(t.mean())
    won = parts.won[ki, gi]
    remaining = max(quota - won, 0.0) if quota == quota else math.nan
    avg = float(avg_won_amount[gi]) if avg_won_amount is not None else math.nan
    pipeline = parts.pipeline[gi]
    return {
        "period": p.label,
        "start": p.start,
        "end": p.end,
        "group": name,
        "won_to_date": float(won),
        "expected": expected,
        "p10": float(p10),
        "p50": float(p50),
        "p90": float(p90),
        "from_open_deals": float(parts.from_open[ki, gi]),
        "from_new_deals": float(parts.from_new[ki, gi]),
        "quota": quota,
        "p_hit_quota": float((t >= quota).mean()) if quota == quota and quota > 0 else math.nan,
        "gap_to_goal": quota - expected if quota == quota else math.nan,
        "open_pipeline": float(pipeline),
        "pipeline_coverage": float(pipeline / remaining) if remaining and remaining > 0 else math.nan,
        "deals_needed": float(math.ceil(remaining / avg - 1e-9))
        if remaining == remaining and avg == avg and avg > 0
        else math.nan,
        "projected_attainment": expected / quota if quota == quota and quota > 0 else math.nan,
    }


def old_simulate_new_deals(
    mu: np.ndarray,
    amount_pools: list[np.ndarray],
    n_sims: int,
    rng: np.random.Generator,
    factor: np.ndarray | None = None,
    weights: list[np.ndarray] | None = None,
) -> np.ndarray:
    """``montecarlo.simulate_new_deals`` as it was: a group, then a period, at a time.

    (The amounts drawn with their cycles' weights, as the engine does since: the loop is the reference.)
    """
    k, g = mu.shape
    out = np.zeros((n_sims, k, g))
    for gi in range(g):
        pool = amount_pools[gi]
        if len(pool) == 0:
            continue
        for ki in range(k):
            if mu[ki, gi] <= 0:
                continue
            lam = mu[ki, gi] if factor is None else mu[ki, gi] * factor[:, gi]
            counts = rng.poisson(lam, n_sims)
            total = int(counts.sum())
            if total == 0:
                continue
            if weights is None:
                draws = pool[rng.integers(0, len(pool), total)]
            else:  # the engine's picker: the law of the picks is tested in test_revenue.py
                draws = pool[_WeightedPicks(weights)(gi, ki, total, rng)]
            sims = np.repeat(np.arange(n_sims), counts)
            out[:, ki, gi] = np.bincount(sims, weights=draws, minlength=n_sims)
    return out


def old_simulate_new(
    new_deals: NewDealModel,
    as_of: pd.Timestamp,
    periods: list[Period],
    win_shift: np.ndarray,
    volume: np.ndarray,
    n_sims: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """``forecast._simulate_new`` as it was: the shock factor as a simulations × groups matrix."""
    from forecast.revenue.shock import shifted

    weights = new_deals.pair_weights(as_of, [(p.start, p.end) for p in periods])
    mu = new_deals.expected_wins(as_of, [(p.start, p.end) for p in periods], weights)
    w = np.clip(new_deals.win_rate, 0.0, 1.0)[None, :]
    factor = shifted(w, win_shift[:, None]) / np.maximum(w, 1e-12) * np.exp(volume)[:, None]
    return old_simulate_new_deals(mu, new_deals.amount_pools, n_sims, rng, factor, weights)


def old_forecast_revenue(**kw: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """The forecast table and simulations as :func:`forecast_revenue` made them with the references above."""
    rng = np.random.default_rng(kw["seed"])
    shock = kw["shock"] or NO_SHOCK
    n_sims, groups, periods = kw["n_sims"], kw["groups"], kw["periods"]
    noise = shock.win.draw(n_sims, rng)
    win_shift = np.clip(shock.centre + noise, -4.0, 4.0)
    volume = np.clip(shock.volume.draw(n_sims, rng), -2.0, 2.0)
    g = len(groups)
    deals = kw["deals"]
    index = {name: i for i, name in enumerate(groups)}
    group_idx = deals["group"].map(index).to_numpy(dtype=int)
    amounts = pd.to_numeric(deals["amount"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    shares = forecast_module.close_shares(
        kw["closed_by"], kw["edges"], kw["as_of"], periods, kw["horizon_days"]
    )
    q = booking_probabilities(kw["p_win"], shares)
    sims = old_simulate_open_deals(
        q, amounts, group_idx, g, n_sims, rng, p_win=kw["p_win"], shift=win_shift if win_shift.any() else None
    )
    from_open = sims.mean(axis=0)
    # the new deals' shift leaves out the centre (the deal models' bias)
    new = old_simulate_new(
        kw["new_deals"], kw["as_of"], periods, np.clip(noise, -4.0, 4.0), volume, n_sims, rng
    )
    from_new = new.mean(axis=0)
    sims = sims + new
    sims = np.concatenate([sims, sims.sum(axis=2, keepdims=True)], axis=2)
    pipeline = np.bincount(group_idx, weights=amounts, minlength=g)
    with_all = forecast_module._with_all
    parts = forecast_module._Parts(
        won=with_all(kw["won_to_date"]),
        from_open=with_all(from_open),
        from_new=with_all(from_new),
        pipeline=np.append(pipeline, pipeline.sum()),
    )
    totals = parts.won[None, :, :] + sims
    rows = [
        old_period_row(p, name, ki, gi, totals[:, ki, gi], parts, kw["quotas"], kw["avg_won_amount"])
        for ki, p in enumerate(periods)
        for gi, name in enumerate([*groups, ALL])
    ]
    return pd.DataFrame(rows), sims


# --- the cases ---------------------------------------------------------------------------------


def _open_deals(
    n: int, n_groups: int, k: int, seed: int, amounts: np.ndarray | None = None
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    p_win = rng.uniform(0.0, 1.0, n)
    share = rng.dirichlet(np.ones(k + 1), n)[:, :k]  # some of each deal's timing beyond the periods
    return {
        "q": booking_probabilities(p_win, share),
        "amounts": amounts if amounts is not None else np.round(rng.lognormal(10, 1, n), -2),
        "groups": rng.integers(0, n_groups, n),
        "n_groups": n_groups,
        "p_win": p_win,
    }


@pytest.mark.parametrize("n_groups", [1, 7, 300])
@pytest.mark.parametrize("shocked", [False, True])
@pytest.mark.parametrize("by_codes_from", [0, 16])
def test_open_deals_by_codes_equal_the_matrix_product(
    n_groups: int, shocked: bool, by_codes_from: int
) -> None:
    case = _open_deals(3000, n_groups, 3, seed=n_groups)
    n_sims = 1234  # blocks of 500 and a short last one
    shift = np.random.default_rng(5).normal(0, 0.4, n_sims) if shocked else None
    kw = {"p_win": case["p_win"], "shift": shift, "by_codes_from": by_codes_from}
    args = (case["q"], case["amounts"], case["groups"], case["n_groups"], n_sims)
    new = simulate_open_deals(*args, np.random.default_rng(11), **kw)
    old = old_simulate_open_deals(*args, np.random.default_rng(11), p_win=case["p_win"], shift=shift)
    assert new.shape == (n_sims, 3, n_groups)
    assert np.array_equal(new, old)
    assert new.sum() > 0  # deals were booked


@pytest.mark.parametrize("amounts", ["hundreds", "large"])
def test_open_deals_by_codes_in_small_pieces_equal_the_matrix_product(
    amounts: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With many open deals the codes are summed a few simulations at a time (bounded memory): the
    same arrays, also where a piece's sums could round (then the whole block is the product's)."""
    from forecast.revenue import montecarlo

    case = _open_deals(3000, 300 if amounts == "hundreds" else 20, 3, seed=9)
    if amounts == "large":
        case["amounts"] = np.round(np.random.default_rng(4).lognormal(14, 1.2, 3000), -2)
    args = (case["q"], case["amounts"], case["groups"], case["n_groups"], 1234)
    old = old_simulate_open_deals(*args, np.random.default_rng(11), p_win=case["p_win"])
    monkeypatch.setattr(montecarlo, "CODES_ENTRIES", 3000 * 7)  # 7 simulations a piece: 500 = 71 × 7 + 3
    pieces: list[bool] = []
    codes_rows = montecarlo._GroupSums._codes_rows

    def counted(self: Any, u: np.ndarray) -> np.ndarray | None:
        out = codes_rows(self, u)
        pieces.append(out is None)
        return out

    monkeypatch.setattr(montecarlo._GroupSums, "_codes_rows", counted)
    new = simulate_open_deals(*args, np.random.default_rng(11), p_win=case["p_win"], by_codes_from=0)
    assert np.array_equal(new, old)
    assert new.sum() > 0
    if amounts == "hundreds":
        assert len(pieces) > 3 * 10 and not any(pieces)  # many pieces a block, every one exact
    else:
        assert any(pieces)  # a piece that could round sends its whole block to the product


@pytest.mark.parametrize(
    "amounts",
    [
        "cents",  # 1234.56 is no whole multiple of a power of two near 1: every block by the product
        "large",  # whole hundreds but sums past 2**26: some blocks round in float32
        "negative",  # a credit note among the deals
        "missing",
    ],
)
def test_open_deals_where_float32_sums_round_are_the_products(amounts: str) -> None:
    rng = np.random.default_rng(3)
    n = 2000
    values = {
        "cents": np.round(rng.lognormal(8, 1, n), 2),
        "large": np.round(rng.lognormal(14, 1.2, n), -2),
        "negative": np.round(rng.lognormal(10, 1, n), -2) * np.where(rng.random(n) < 0.05, -1, 1),
        "missing": np.where(rng.random(n) < 0.1, np.nan, np.round(rng.lognormal(10, 1, n), -2)),
    }[amounts]
    case = _open_deals(n, 3, 2, seed=4, amounts=values)
    args = (case["q"], case["amounts"], case["groups"], case["n_groups"], 1100)
    new = simulate_open_deals(*args, np.random.default_rng(8), chunk=200, by_codes_from=0)
    old = old_simulate_open_deals(*args, np.random.default_rng(8), chunk=200)
    assert np.array_equal(new, old)
    if amounts == "large":  # the case does reach sums that float32 may round
        assert new.max() > _exact_limit(values.astype(np.float32))


def test_the_exact_limit_is_the_amounts_finest_power_of_two() -> None:
    assert _exact_limit(np.array([100.0, 300.0], dtype=np.float32)) == 2.0**26  # multiples of 4
    assert _exact_limit(np.array([100.0, 2.0], dtype=np.float32)) == 2.0**25
    assert _exact_limit(np.array([0.5, 1.0], dtype=np.float32)) == 2.0**23
    assert _exact_limit(np.zeros(3, dtype=np.float32)) == math.inf
    assert _exact_limit(np.array([np.inf], dtype=np.float32)) == 0.0


def test_amounts_with_cents_go_to_the_product_without_a_bincount_first() -> None:
    from forecast.revenue.montecarlo import _GroupSums

    cum = np.cumsum(np.full((4, 2), 0.2, dtype=np.float32), axis=1)
    groups = np.array([0, 1, 2, 0])
    cents = np.array([1234.56, 99.99, 20.0, 5.0], dtype=np.float32)
    hundreds = np.array([123400.0, 9900.0, 2000.0, 500.0], dtype=np.float32)
    assert not _GroupSums(cents, groups, 3, cum).codes_useful  # one amount alone reaches the bound
    assert _GroupSums(hundreds, groups, 3, cum).codes_useful
    u = np.zeros((2, 4), dtype=np.float32)  # every deal books in the first period
    assert _GroupSums(cents, groups, 3, cum).by_codes(u) is None
    assert np.array_equal(_GroupSums(hundreds, groups, 3, cum).by_codes(u)[0, 0], [123900.0, 9900.0, 2000.0])


@pytest.fixture(scope="module")
def crm() -> dict[str, pd.DataFrame]:
    sim = simulate_crm(SimulationConfig(n_leads=3000, seed=3, months=18))
    return crm_as_of(sim.tables, T("2025-01-01"), DEFAULT_PIPELINE)


def _deals_by(crm: dict[str, pd.DataFrame], by: str) -> pd.DataFrame:
    opps = crm["opportunities"]
    if by == "rep":
        group = opps["rep_id"].astype(str)
    else:
        rng = np.random.default_rng(2)  # a large group and many small ones, some without a deal in the cohort
        codes = np.where(rng.random(len(opps)) < 0.4, 0, rng.integers(1, 120, len(opps)))
        group = pd.Series(codes, index=opps.index).map(lambda i: f"g{i:03d}")
    return opps.assign(group=group.to_numpy())


@pytest.mark.parametrize("by", ["rep", "many"])
def test_new_deal_model_by_codes_equals_the_per_group_loop(crm: dict[str, pd.DataFrame], by: str) -> None:
    deals = _deals_by(crm, by)
    as_of = T("2025-01-01")
    groups = sorted(set(deals["group"]) | {"nobody"})  # a group without deals
    new = fit_new_deal_model(deals, as_of, groups)
    old = old_fit_new_deal_model(deals, as_of, groups)
    assert new.groups == old.groups
    for name in ("rate_per_day", "win_rate"):
        assert np.array_equal(getattr(new, name), getattr(old, name)), name
    assert len(new.amount_pools) == len(old.amount_pools) == len(new.cycle_pools)
    pairs = zip(new.amount_pools + new.cycle_pools, old.amount_pools + old.cycle_pools, strict=True)
    for mine, theirs in pairs:
        assert np.array_equal(mine, theirs)
    assert len({len(p) for p in new.amount_pools}) > 1  # own pools and the overall one both occur
    periods = period_grid(as_of, 3, "month")
    for p in periods:
        assert np.array_equal(
            won_between(deals, p.start - pd.DateOffset(months=3), p.end, groups),
            old_won_between(deals, p.start - pd.DateOffset(months=3), p.end, groups),
        )


@pytest.mark.parametrize("by", ["rep", "many"])
@pytest.mark.parametrize("shocked", ["none", "shocked", "recentred"])
def test_forecast_table_equals_the_per_group_rows(
    crm: dict[str, pd.DataFrame], by: str, shocked: str
) -> None:
    deals = _deals_by(crm, by)
    as_of = T("2025-01-01")
    open_deals = deals[deals["outcome"] == "open"][["opportunity_id", "amount", "group"]]
    groups = sorted(set(deals["group"]))
    n = len(open_deals)
    rng = np.random.default_rng(7)
    edges = [0.0, 30.0, 60.0, 90.0, 180.0]
    closed_by = np.sort(rng.uniform(0, 1, (n, len(edges))), axis=1)
    closed_by[:, 0] = 0.0
    periods = period_grid(as_of, 3, "month")
    g = len(groups)
    quotas = np.round(rng.lognormal(11, 1, (3, g + 1)), -2)
    quotas[:, ::5] = np.nan  # some groups without a quota
    quotas[0, 1] = 0.0
    shock = (
        CommonShock(
            ShockScale(0.4, 20.0, 10), ShockScale(0.2, 20.0, 10), centre=-0.6 * (shocked == "recentred")
        )
        if shocked != "none"
        else None
    )
    kw: dict[str, Any] = {
        "deals": open_deals,
        "p_win": rng.uniform(0, 1, n),
        "closed_by": closed_by,
        "edges": edges,
        "horizon_days": 180.0,
        "new_deals": fit_new_deal_model(deals, as_of, groups),
        "as_of": as_of,
        "periods": periods,
        "groups": groups,
        "won_to_date": np.stack([won_between(deals, p.start, min(p.end, as_of), groups) for p in periods]),
        "quotas": quotas,
        "avg_won_amount": np.append(rng.lognormal(10, 1, g), 20_000.0),
        "n_sims": 1500,
        "seed": 4,
        "shock": shock,
    }
    result = forecast_revenue(**kw)
    new = result.table
    old, old_sims = old_forecast_revenue(**kw)
    assert np.array_equal(result.sims, old_sims)
    assert len(new) == 3 * (g + 1) and g > 5
    assert new["p_hit_quota"].notna().any() and new["p_hit_quota"].isna().any()
    pd.testing.assert_frame_equal(new, old, check_exact=True)


@pytest.mark.parametrize("by", ["rep", "team", "region"])
@pytest.mark.parametrize("horizon", ["week", "month", "quarter"])
def test_every_groups_goals_at_once_equal_each_goal(by: str, horizon: str) -> None:
    sim = simulate_crm(SimulationConfig(n_leads=1500, seed=5, months=14))
    as_of = T("2024-11-13 15:00")  # inside a period: the first starts before it
    goals = _quota_lookup(sim.tables, DEFAULT_PIPELINE, as_of, by)
    reps = sim.tables["reps"]
    names = [*sorted(reps["rep_id" if by == "rep" else by].astype(str).unique()), "nobody", ALL]
    periods = period_grid(as_of, 4, horizon)
    bounds = [(p.start, p.end) for p in periods] + [(periods[0].end, periods[0].start)]  # and an empty one
    table = goals.table(names, bounds)
    each = np.array([[goals(name, start, end) for name in names] for start, end in bounds])
    assert np.array_equal(table, each, equal_nan=True)
    assert np.isfinite(table[0]).sum() >= 2 and np.isnan(table[-1]).all()


def test_a_quota_table_of_the_wrong_shape_is_refused_not_reshaped() -> None:
    from forecast.revenue.engine import goal_table

    class Transposed:
        def __call__(self, group: str, start: pd.Timestamp, end: pd.Timestamp) -> float:
            return 1.0

        def table(self, names: list[str], bounds: list[tuple[pd.Timestamp, pd.Timestamp]]) -> np.ndarray:
            return np.ones((len(names), len(bounds)))  # groups × periods: the wrong way round

    periods = period_grid(T("2025-01-01"), 3, "month")
    with pytest.raises(ValueError, match="quota table of shape"):
        goal_table(Transposed(), ["a", "b"], periods)
    lookup = Transposed()
    lookup.table = lambda names, bounds: np.arange(len(bounds) * len(names), dtype=float).reshape(  # type: ignore[method-assign]
        len(bounds), len(names)
    )
    assert goal_table(lookup, ["a", "b"], periods).tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
