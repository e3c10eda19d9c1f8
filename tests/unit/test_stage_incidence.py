"""The small-data deal model: stage win incidence, split by deal size, carried past the follow-up."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from forecast.features.horizon import levelled_off_at
from forecast.models.stage_incidence import StageWinIncidence, extrapolated_incidence, win_incidence
from forecast.models.survival import StageKaplanMeier
from forecast.models.win_horizon import p_win_days, read_days, read_proba
from forecast.registry import LoadedModel
from forecast.serving.scoring import win_and_timing


def _deals(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Two stages; large deals win later than the horizon far more often than small ones."""
    rng = np.random.default_rng(seed)
    stage = rng.choice(["early", "late"], n)
    amount = rng.lognormal(9.5, 1.0, n)
    large = amount > np.quantile(amount, 2 / 3)
    p_win = np.where(stage == "late", 0.6, 0.3)
    won = rng.random(n) < p_win
    days = np.where(
        won, np.where(large, rng.uniform(60, 200, n), rng.uniform(5, 50, n)), rng.uniform(5, 80, n)
    )
    censor = rng.uniform(20, 300, n)
    causes = np.where(days <= censor, np.where(won, 1, 2), 0)
    durations = np.minimum(days, censor)
    amount[:5] = np.nan  # deals without an amount
    return pd.DataFrame({"stage": stage, "amount": amount}), durations, causes


def test_size_bands_lower_the_large_deals_and_keep_the_stage_rate_without_amount() -> None:
    x, d, c = _deals(4000, 0)
    plain = StageWinIncidence(horizon_days=55.0, alpha=30.0).fit(x[["stage"]], durations=d, causes=c)
    sized = StageWinIncidence(horizon_days=55.0, alpha=30.0, amount_column="amount").fit(
        x, durations=d, causes=c
    )
    assert len(sized.edges_) == 2 and set(sized.rates_) == {"early", "late"}
    assert sized.rates_ == plain.rates_  # the stage estimates are the same; the cells refine them
    big = pd.DataFrame({"stage": ["late", "late", "late", "unknown"], "amount": [1e6, 100.0, np.nan, 1e6]})
    p = sized.predict_proba(big)[:, 1]
    assert p[0] < plain.rates_["late"] / 2 < p[1]  # large deals win within 55 days far less often
    assert p[2] == pytest.approx(plain.rates_["late"])  # no amount: the stage's estimate
    assert p[3] == pytest.approx(sized.band_rates_[2])  # unseen stage: its size band over all stages
    # the reasons: stage shift, size shift and bias add up to the log-odds
    contrib = sized.contributions(big)
    assert contrib.shape == (4, 3)
    np.testing.assert_allclose(contrib.sum(axis=1), np.log(p / (1 - p)), atol=1e-12)
    assert contrib[2, 1] == 0.0 and contrib[0, 1] < 0 < contrib[1, 1]


def test_without_an_amount_column_or_with_too_few_amounts_the_model_is_by_stage() -> None:
    x, d, c = _deals(4000, 1)
    alone = StageWinIncidence(horizon_days=55.0, amount_column="amount").fit(
        x[["stage"]], durations=d, causes=c
    )
    assert len(alone.edges_) == 0 and alone.contributions(x[["stage"]]).shape == (4000, 2)
    few = x.assign(amount=np.where(np.arange(len(x)) < 50, x["amount"], np.nan))
    sparse = StageWinIncidence(horizon_days=55.0, alpha=30.0, amount_column="amount").fit(
        few, durations=d, causes=c
    )
    assert len(sparse.edges_) == 0  # 50 sized deals < 3 bands x 30 pseudo-deals
    np.testing.assert_allclose(sparse.predict_proba(few)[:, 1], alone.predict_proba(x[["stage"]])[:, 1])


def _constant_hazards(
    n: int, h_won: float, h_lost: float, follow: float, seed: int
) -> tuple[np.ndarray, ...]:
    """Competing exponential closes, each deal followed ``follow`` days at most."""
    rng = np.random.default_rng(seed)
    t = rng.exponential(1.0 / (h_won + h_lost), n)
    won = rng.random(n) < h_won / (h_won + h_lost)
    causes = np.where(t <= follow, np.where(won, 1, 2), 0)
    return np.minimum(t, follow), causes


@pytest.mark.parametrize(("h_won", "h_lost"), [(0.004, 0.012), (0.01, 0.005)])
def test_the_tail_past_the_follow_up_recovers_constant_hazards(h_won: float, h_lost: float) -> None:
    """Deals followed 56 days, closing at constant hazards: the incidence by 365 days is recovered.

    Read at 56 days the incidence holds well under half the eventual wins (``h_won / h``); carried
    on with the last window's hazards it lands within sampling error of the true
    ``h_won / h * (1 - exp(-h * 365))``.
    """
    d, c = _constant_hazards(20_000, h_won, h_lost, 56.0, seed=3)
    h = h_won + h_lost
    read, n = win_incidence(d, c, 56.0)
    tail, _ = win_incidence(d, c, 56.0, tail_days=365.0)
    assert n == len(d)
    assert read == pytest.approx(h_won / h * (1 - np.exp(-h * 56.0)), abs=0.01)
    assert tail == pytest.approx(h_won / h * (1 - np.exp(-h * 365.0)), abs=0.02)
    assert tail - read > 0.1
    # nothing past the read days, or no close in the last window: the incidence as read
    assert win_incidence(d, c, 56.0, tail_days=56.0)[0] == read
    assert extrapolated_incidence(np.array([5.0, 60.0]), np.array([2, 0]), 56.0, 365.0, 0.0) == 0.0


def test_a_tail_model_serves_the_carried_on_p_win_and_reads_the_data_for_the_revenue() -> None:
    x, d, c = _deals(4000, 2)
    read = StageWinIncidence(horizon_days=56.0, amount_column="amount").fit(x, durations=d, causes=c)
    tail = StageWinIncidence(horizon_days=56.0, amount_column="amount", tail_days=365.0).fit(
        x, durations=d, causes=c
    )
    assert (tail.p_win_days_, tail.read_days_) == (365.0, 56.0)
    assert (read.p_win_days_, read.read_days_) == (56.0, 56.0) and not read.tail_share_
    np.testing.assert_allclose(tail.read_proba(x), read.predict_proba(x)[:, 1])
    np.testing.assert_allclose(read.read_proba(x), read.predict_proba(x)[:, 1])
    assert (tail.predict_proba(x)[:, 1] >= read.predict_proba(x)[:, 1] - 1e-12).all()
    # the reasons add up to the served (carried-on) p_win's log-odds
    p = tail.predict_proba(x)[:, 1]
    np.testing.assert_allclose(tail.contributions(x).sum(axis=1), np.log(p / (1 - p)), atol=1e-9)
    # these large deals win only after 60 days: read at 56 days they hold next to no win, and the
    # stage's share of the part not yet won brings them towards their eventual rate (0.3 or 0.6)
    large = x["amount"].to_numpy() > np.nanquantile(x["amount"], 2 / 3)
    small = ~large & x["amount"].notna().to_numpy()
    gain = tail.predict_proba(x)[:, 1] - read.predict_proba(x)[:, 1]
    assert gain[large].mean() > gain[small].mean() > 0.02
    truth = np.where(x["stage"] == "late", 0.6, 0.3)
    served, as_read = tail.predict_proba(x)[:, 1], read.predict_proba(x)[:, 1]
    assert np.abs(served - truth)[large].mean() < 0.6 * np.abs(as_read - truth)[large].mean()
    # within a stage the order is kept, and nothing is carried past 1
    for stage in ("early", "late"):
        sel = (x["stage"] == stage).to_numpy()
        order = np.argsort(as_read[sel], kind="stable")
        assert (np.diff(served[sel][order]) >= -1e-12).all()
    assert served.max() < 1.0
    # a pipeline's revenue reading (models.win_horizon) goes through the tail model's read_proba
    pipeline = Pipeline([("identity", FunctionTransformer()), ("model", tail)])
    np.testing.assert_allclose(read_proba(pipeline, x), read.predict_proba(x)[:, 1])
    assert read_days(pipeline, 49.0) == 56.0 and p_win_days(pipeline, 49.0) == 365.0
    assert read_days(Pipeline([("model", read)]), 49.0) == 56.0


def test_stages_that_are_not_text_and_models_pickled_before_the_tail() -> None:
    """Integer stages are keyed as text like the rates; a model pickled without ``tail_days`` still clones."""
    x, d, c = _deals(2000, 4)
    coded = x.assign(stage=(x["stage"] == "late").astype(int))
    model = StageWinIncidence(horizon_days=56.0, tail_days=365.0).fit(coded[["stage"]], durations=d, causes=c)
    p = model.predict_proba(coded[["stage"]])[:, 1]
    assert np.isfinite(p).all() and set(model.tail_share_) == {"0", "1"}
    assert p[coded["stage"].to_numpy() == 1].mean() > model.read_proba(coded[["stage"]]).mean()
    old = StageWinIncidence(horizon_days=56.0).fit(x[["stage"]], durations=d, causes=c)
    del old.__dict__["tail_days"], old.__dict__["tail_share_"], old.__dict__["read_days_"]
    restored = pickle.loads(pickle.dumps(old))
    assert clone(restored).get_params()["tail_days"] is None
    np.testing.assert_allclose(restored.predict_proba(x[["stage"]])[:, 1], restored.read_proba(x[["stage"]]))
    assert read_days(restored, 56.0) == 56.0


def test_no_win_is_carried_past_the_longest_close_where_the_closes_have_levelled_off() -> None:
    """Deals left open for months after every close of their kind (the Maven sample) win nothing later.

    Closes come within 60 days; a fifth of the deals never close. Followed 56 days, nothing shows
    the closes stop, so the last window's hazards are carried on. Followed 300 days, hundreds of
    open deals sit far past the longest close: the incidence is the one the data show by then.
    """
    rng = np.random.default_rng(11)
    n = 6000
    never = rng.random(n) < 0.2
    close = rng.uniform(1, 60, n)
    won = rng.random(n) < 0.6
    x = pd.DataFrame({"stage": ["s"] * n})
    for follow, levelled in ((56.0, False), (300.0, True)):
        seen = rng.uniform(0.3, 1.0, n) * follow
        shut = ~never & (close <= seen)
        d = np.where(shut, close, seen)
        c = np.where(shut, np.where(won, 1, 2), 0)
        model = StageWinIncidence(horizon_days=40.0, alpha=0.0, tail_days=365.0)
        model.fit(x, durations=d, causes=c, deals=np.arange(n))
        read_last, _ = win_incidence(d, c, float(d[c > 0].max()))
        far = float(model.carried(model.rates_["s"], "s"))
        if levelled:
            assert model.levelled_at_ == pytest.approx(float(d[c > 0].max()))
            assert far == pytest.approx(read_last)
            assert far == pytest.approx(0.8 * 0.6, abs=0.03)  # the never-closed fifth wins nothing
        else:
            assert model.levelled_at_ is None
            assert far > read_last + 0.02  # carried on past what the data show
        # without the deals nothing is checked: the tail is carried on
        unchecked = StageWinIncidence(horizon_days=40.0, alpha=0.0, tail_days=365.0)
        unchecked.fit(x, durations=d, causes=c)
        assert unchecked.levelled_at_ is None


def test_levelled_off_counts_deals_not_their_weekly_snapshots() -> None:
    """Four stale deals seen in 40 weekly snapshots each are four deals, not 160 (20 are needed)."""
    d = np.concatenate([np.linspace(1, 60, 200), np.full(160, 200.0)])
    observed = np.concatenate([np.ones(200, dtype=bool), np.zeros(160, dtype=bool)])
    few = np.concatenate([np.arange(200), np.repeat([1000, 1001, 1002, 1003], 40)])
    many = np.concatenate([np.arange(200), np.arange(1000, 1160)])
    assert levelled_off_at(d, observed, few) is None
    assert levelled_off_at(d, observed, many) == pytest.approx(60.0)


def test_a_crm_without_stages_gets_the_tail_of_all_its_deals() -> None:
    """Deals whose stage is never known (the Maven sample has no stage history) are carried on too.

    The model then has no stage of its own, only all deals' estimate; before the fix its tail was
    dropped whenever no stage had one, so p_win stopped at the days the data follow.
    """
    d, c = _constant_hazards(8000, 0.004, 0.012, 56.0, seed=5)
    x = pd.DataFrame({"stage": [None] * len(d)})
    model = StageWinIncidence(horizon_days=56.0, tail_days=365.0).fit(x, durations=d, causes=c)
    assert not model.rates_ and not model.tail_share_ and model.tail_share_all_ > 0.1
    served, as_read = model.predict_proba(x)[:, 1], model.read_proba(x)
    truth = 0.25 * (1 - np.exp(-0.016 * 365.0))  # h_won / h of those closing within 365 days
    assert served.mean() == pytest.approx(truth, abs=0.02)
    assert served.mean() - as_read.mean() > 0.1
    unseen = pd.DataFrame({"stage": ["never seen"]})
    assert model.predict_proba(unseen)[0, 1] == pytest.approx(served[0])


def test_the_http_forecast_spreads_the_incidence_read_like_the_batch_forecast() -> None:
    """``/forecast_deals`` (``serving.scoring.win_and_timing``) reads a tail model as ``forecast revenue``."""
    x, d, c = _deals(3000, 5)
    win = Pipeline(
        [
            ("identity", FunctionTransformer()),
            ("model", StageWinIncidence(horizon_days=56.0, tail_days=365.0)),
        ]
    )
    win[:-1].fit(x[["stage"]])
    win[-1].fit(x[["stage"]], durations=d, causes=c)
    edges = [0.0, 7.0, 30.0, 60.0, 90.0]
    close = Pipeline([("identity", FunctionTransformer()), ("model", StageKaplanMeier(edges=edges))])
    close[-1].fit(x[["stage"]], durations=d, events=c > 0, causes=c)
    loaded_win = LoadedModel("deal_win", "1", None, win, {"features": ["stage"]}, "run")
    loaded_close = LoadedModel(
        "time_to_close", "1", None, close, {"features": ["stage"], "survival": {"edges": edges}}, "run"
    )
    p_win, closed_by, got_edges = win_and_timing(loaded_win, loaded_close, x[["stage"]])
    np.testing.assert_allclose(p_win, win[-1].read_proba(x[["stage"]]))
    assert (win.predict_proba(x[["stage"]])[:, 1] > p_win + 0.01).all()  # the served p_win carries the tail
    assert got_edges == edges and closed_by.shape == (len(x), len(edges))


def test_a_cell_won_mostly_by_the_read_day_stays_below_one_and_the_bias_is_the_carried_on_rate() -> None:
    """Small deals win by day 20 (read 0.84), large ones from day 30: the stage's share keeps both below 1.

    Scaled by the stage's ratio instead, the small deals' cell (0.84 x 1.57) would pass 1.
    """
    rng = np.random.default_rng(6)
    n = 3000
    amount = rng.lognormal(9.5, 1.0, n)
    large = amount > np.quantile(amount, 0.5)
    won = rng.random(n) < 0.85
    days = np.where(
        won, np.where(large, rng.uniform(30, 300, n), rng.uniform(2, 20, n)), rng.uniform(2, 20, n)
    )
    censor = rng.uniform(40, 300, n)
    causes = np.where(days <= censor, np.where(won, 1, 2), 0)
    x = pd.DataFrame({"stage": "only", "amount": amount})
    model = StageWinIncidence(horizon_days=56.0, amount_column="amount", amount_bins=2, tail_days=365.0)
    model.fit(x, durations=np.minimum(days, censor), causes=causes)
    read, served = model.read_proba(x), model.predict_proba(x)[:, 1]
    assert read[~large].mean() > 0.75 and served.max() < 1.0 - 1e-3
    far = model.overall_ + (1 - model.overall_) * model.tail_share_all_
    assert far / model.overall_ * read[~large].max() > 1.2  # the stage's ratio would carry them past 1
    np.testing.assert_allclose(model.contributions(x)[:, -1], np.log(far / (1 - far)))


def test_read_proba_through_pipelines_of_one_step_and_with_passthrough() -> None:
    x, d, c = _deals(1000, 7)
    model = StageWinIncidence(horizon_days=56.0, tail_days=365.0).fit(x[["stage"]], durations=d, causes=c)
    for pipeline in (Pipeline([("model", model)]), Pipeline([("keep", "passthrough"), ("model", model)])):
        np.testing.assert_allclose(read_proba(pipeline, x[["stage"]]), model.read_proba(x[["stage"]]))


def test_the_card_s_importance_weighs_the_served_shifts_the_reasons_give() -> None:
    """``training.binary._stage_importance`` of a tail model: the mean |shift| of the reasons, per input."""
    from forecast.training.binary import _stage_importance

    x, d, c = _deals(4000, 8)
    x = x.assign(amount=x["amount"].fillna(x["amount"].median()))
    model = StageWinIncidence(horizon_days=56.0, amount_column="amount", tail_days=365.0)
    model.fit(x, durations=d, causes=c)
    contrib = pd.DataFrame(model.contributions(x)[:, :2], columns=["stage", "amount"])
    cell = x["stage"] + ":" + pd.Series(model._bands(x["amount"].to_numpy()), index=x.index).astype(str)
    stage_shift = contrib["stage"].abs().groupby(x["stage"]).first().mean()
    size_shift = contrib["amount"].abs().groupby(cell).first().mean()
    got = _stage_importance(Pipeline([("model", model)])).set_index("feature")["importance"]
    assert got["stage"] == pytest.approx(stage_shift / (stage_shift + size_shift))
    assert got["amount"] == pytest.approx(size_shift / (stage_shift + size_shift))
