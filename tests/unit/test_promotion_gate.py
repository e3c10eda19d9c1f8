"""The promotion gate's baseline rule: a loss is a loss, a tie within noise is not."""

from __future__ import annotations

import numpy as np

from forecast.registry import _baselines_not_beaten
from forecast.training.binary import paired_brier_gap


def _metrics(auc: float, brier: float, b_auc: float, b_brier: float, se: float | None) -> dict[str, float]:
    out = {
        "test_roc_auc": auc,
        "test_brier": brier,
        "baseline_logistic_roc_auc": b_auc,
        "baseline_logistic_brier": b_brier,
    }
    if se is not None:
        out["baseline_logistic_brier_gap_se"] = se
    return out


def test_a_brier_gap_within_two_paired_errors_is_a_tie() -> None:
    assert _baselines_not_beaten(_metrics(0.825, 0.0748, 0.820, 0.0744, se=0.0003), 0.005) == []
    assert _baselines_not_beaten(_metrics(0.825, 0.0760, 0.820, 0.0744, se=0.0003), 0.005)  # 5 errors


def test_an_auc_below_the_allowed_drop_is_a_loss_and_old_runs_need_a_lower_brier() -> None:
    assert _baselines_not_beaten(_metrics(0.803, 0.170, 0.810, 0.178, se=0.001), 0.005)
    assert _baselines_not_beaten(_metrics(0.830, 0.0748, 0.820, 0.0744, se=None), 0.005)
    assert _baselines_not_beaten(_metrics(0.830, 0.0740, 0.820, 0.0744, se=None), 0.005) == []


def test_paired_brier_gap_is_the_difference_of_the_scores() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.3).astype(int)
    a, b = np.clip(0.3 + 0.2 * (y - 0.3) + rng.normal(0, 0.05, 2000), 0, 1), np.full(2000, 0.3)
    gap = paired_brier_gap(y, a, b)
    assert abs(gap["brier_gap"] - (np.mean((a - y) ** 2) - np.mean((b - y) ** 2))) < 1e-12
    assert 0 < gap["brier_gap_se"] < abs(gap["brier_gap"])


def test_an_auc_gap_within_two_paired_errors_is_a_tie_beyond_them_a_loss() -> None:
    tie = {**_metrics(0.790, 0.170, 0.806, 0.171, se=0.001), "baseline_logistic_auc_gap_se": 0.009}
    assert _baselines_not_beaten(tie, 0.005) == []
    loss = {**_metrics(0.770, 0.170, 0.806, 0.171, se=0.001), "baseline_logistic_auc_gap_se": 0.009}
    assert _baselines_not_beaten(loss, 0.005)


def test_paired_auc_gaps_match_sklearn_and_grow_with_clustered_rows() -> None:
    from sklearn.metrics import roc_auc_score

    from forecast.evaluate import paired_auc_gaps

    rng = np.random.default_rng(1)
    n = 400
    y = (rng.random(n) < 0.4).astype(int)
    model = np.round(y * 0.3 + rng.random(n), 2)  # ties on purpose
    base = y * 0.1 + rng.random(n)
    ids = np.arange(n)
    gaps = paired_auc_gaps(y, model, {"b": base}, ids, n_boot=300, seed=0)["b"]
    assert abs(gaps["auc_gap"] - (roc_auc_score(y, model) - roc_auc_score(y, base))) < 1e-12
    # The same rows repeated ten times per entity (weekly snapshots of one deal) carry no more
    # information: a row bootstrap would shrink the error by about sqrt(10), the entity one must not.
    rep = np.repeat(np.arange(n), 10)
    clustered = paired_auc_gaps(y[rep], model[rep], {"b": base[rep]}, ids[rep], n_boot=300, seed=0)["b"]
    assert abs(clustered["auc_gap"] - gaps["auc_gap"]) < 1e-12
    assert 0.7 < clustered["auc_gap_se"] / gaps["auc_gap_se"] < 1.4
    rows = paired_auc_gaps(y[rep], model[rep], {"b": base[rep]}, np.arange(n * 10), n_boot=300, seed=0)["b"]
    assert rows["auc_gap_se"] < 0.5 * clustered["auc_gap_se"]
