"""The weighted win label (training.ipcw): unbiased under administrative censoring, nothing after the end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forecast.evaluate import classification_metrics
from forecast.training import ipcw


def _population(n: int = 200_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Snapshots whose deals close after an exponential time, won more often the slower they are."""
    rng = np.random.default_rng(seed)
    slow = rng.random(n) < 0.4
    t = np.where(slow, rng.exponential(150.0, n), rng.exponential(15.0, n))
    won = np.where(slow, rng.random(n) < 0.8, rng.random(n) < 0.1)
    follow_up = rng.uniform(0.0, 250.0, n)  # the data's end comes at a time unrelated to the deal
    return t, won, follow_up, slow


def test_the_weighted_label_recovers_the_win_rate_within_the_horizon_from_more_rows() -> None:
    t, won, follow_up, _ = _population()
    tau = 200.0
    truth = float(np.mean(won & (t < tau)))
    closed_by_end = t <= follow_up
    days = np.where(closed_by_end, t, follow_up)
    label = ipcw.weighted_win_label(days, closed_by_end, won & closed_by_end, follow_up, tau, 0.05)
    known = label.known
    weighted = float(np.average(label.y[known], weights=label.weight[known]))
    naive = float(label.y[known].mean())  # the known rows lean towards quick outcomes (mostly losses)
    followed = follow_up >= tau  # dropping: only the snapshots followed for the whole horizon
    assert abs(weighted - truth) < 0.005
    assert naive < truth - 0.01
    assert known.sum() > 3 * followed.sum()


def test_a_snapshot_is_known_when_its_deal_closed_before_the_end_or_it_was_followed_for_the_horizon() -> None:
    days = np.array([5.0, 50.0, 30.0, 100.0, 100.0])
    observed = np.array([True, True, False, True, False])
    won = np.array([True, True, False, False, False])
    follow_up = np.array([10.0, 40.0, 30.0, 100.0, 100.0])
    label = ipcw.weighted_win_label(days, observed, won, follow_up, tau=60.0, min_survival=0.2)
    # 0: won on day 5, seen; 1: closes on day 50 but the data ends on day 40: unknown;
    # 2: open at the end after 30 days: unknown; 3 and 4: followed past the horizon, not won within it.
    assert label.known.tolist() == [True, False, False, True, True]
    assert label.y.tolist() == [1, 0, 0, 0, 0]
    # G(5) = 1 (every snapshot followed 5 days); G(60) = 2/5.
    assert label.weight[0] == pytest.approx(1.0)
    assert label.weight[3] == pytest.approx(2.5)
    assert ipcw.weighted_win_label(days, observed, won, follow_up, 60.0, min_survival=0.5).weight[3] == 2.0


def test_moving_the_end_back_forgets_what_happened_after_it() -> None:
    frame = pd.DataFrame(
        {
            ipcw.DAYS_TO_CLOSE: [10.0, 80.0, 200.0],
            ipcw.CLOSE_OBSERVED: [True, True, False],
            ipcw.WON: [True, True, pd.NA],
            ipcw.FOLLOW_UP: [200.0, 200.0, 200.0],
        }
    )
    now = ipcw.label_of(frame, tau=100.0, min_survival=0.2)
    earlier = ipcw.label_of(frame, tau=100.0, min_survival=0.2, shift_days=150.0)  # follow-up 50 days
    assert now.y.tolist() == [1, 1, 0] and now.known.all()
    assert earlier.known.tolist() == [True, False, False]  # the win on day 80 came after the earlier end


def test_weighted_metrics_equal_the_plain_ones_with_equal_weights_and_follow_the_weights() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    plain = classification_metrics(y, p)
    same = classification_metrics(y, p, weight=np.full(500, 2.0))
    for key in ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "base_rate"):
        assert same[key] == pytest.approx(plain[key], abs=1e-12)
    doubled = classification_metrics(np.r_[y, y[:100]], np.r_[p, p[:100]])
    weighted = classification_metrics(y, p, weight=np.r_[np.full(100, 2.0), np.ones(400)])
    for key in ("roc_auc", "brier", "log_loss", "ece", "base_rate"):
        assert weighted[key] == pytest.approx(doubled[key], abs=1e-9)
    with pytest.raises(ValueError, match="weight"):
        classification_metrics(y, p, weight=np.full(500, -1.0))


def test_the_evaluation_is_judged_on_complete_follow_up_and_fitted_on_labels_known_at_the_test_cut() -> None:
    from forecast.models.config import TrainingConfig
    from forecast.training.binary import _weighted_split
    from forecast.training.inputs import ModelInput

    end = pd.Timestamp("2025-06-30")
    weeks = pd.date_range("2024-01-01", "2025-06-29", freq="7D")
    rng = np.random.default_rng(0)
    rows = []
    for i, d in enumerate(weeks):
        for j in range(6):  # six deals seen once each week: some win, some lose, after 10-200 days
            days = float(rng.integers(10, 200))
            closes = d + pd.Timedelta(days=days)
            rows.append(
                {
                    "opportunity_id": f"d{i}-{j}",
                    "as_of": d,
                    ipcw.DAYS_TO_CLOSE: min(days, (end - d).days),
                    ipcw.CLOSE_OBSERVED: closes <= end,
                    ipcw.WON: bool(j % 2) if closes <= end else pd.NA,
                    ipcw.FOLLOW_UP: float((end - d).days),
                }
            )
    everything = pd.DataFrame(rows)
    h = 120
    won = everything[ipcw.WON].astype("boolean").fillna(False).astype(bool)
    everything["label_won_within_h"] = won & (everything[ipcw.DAYS_TO_CLOSE] < h)
    data = ModelInput(
        frame=everything, id_column="opportunity_id", label="label_won_within_h", features=[], categorical=[]
    )
    config = TrainingConfig(
        model_name="m",
        experiment="m",
        entity="opportunity",
        label="label_won_within_h",
        snapshots={"horizon_days": h, "censoring": "ipcw", "ipcw_min_survival": 0.1},
        split={"gap_days": 0},
    )
    label = ipcw.label_of(everything, h, 0.1)
    frame = everything.iloc[np.flatnonzero(label.known)].reset_index(drop=True)
    parts, summary, _, w_eval = _weighted_split(
        data, config, frame, label.y[label.known], label.weight[label.known]
    )
    fit_rows, test = parts
    cut = pd.Timestamp(summary["cuts"][1])
    assert (frame[ipcw.FOLLOW_UP].iloc[test] >= h).all()  # judged where followed for the whole horizon
    assert (w_eval[test] == 1.0).all()
    fit = frame.iloc[fit_rows]
    assert (fit["as_of"] < cut).all()
    # Nothing after the cut: a fitting row is known only if its deal closed before the cut or it was
    # followed for the horizon by then; its label is what the cut knew.
    closed_at = fit["as_of"] + pd.to_timedelta(fit[ipcw.DAYS_TO_CLOSE], unit="D")
    followed = (cut - fit["as_of"]).dt.days >= h
    assert ((closed_at <= cut) | followed).all()
    assert (fit["as_of"] + pd.Timedelta(days=h) > cut).any()  # more than the fully followed rows
    assert (w_eval[fit_rows] > 0).all()
