from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.evaluate import (
    METRIC_COLUMNS,
    classification_metrics,
    compare_models,
    decile_table,
    ece_noise_floor,
    expected_calibration_error,
    reliability_plot,
    reliability_table,
    segment_calibration,
)


@pytest.fixture(scope="module")
def calibrated() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)
    return y, p


# ---------------------------------------------------------------- ECE


def test_ece_of_calibrated_scores_is_small(calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = calibrated
    assert expected_calibration_error(y, p) < 0.01


def test_ece_of_shifted_scores_is_the_shift(calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = calibrated
    keep = p <= 0.9  # p + 0.1 stays a probability
    ece = expected_calibration_error(y[keep], p[keep] + 0.1)
    assert ece == pytest.approx(0.1, abs=0.01)


def test_ece_hand_example() -> None:
    # bin 1 ([0.1, 0.2)): p 0.1, 0.1 -> mean 0.1, y 0, 1 -> rate 0.5, gap 0.4, weight 2/4
    # bin 8 ([0.8, 0.9)): p 0.8 -> rate 1, gap 0.2, weight 1/4
    # bin 9 ([0.9, 1.0]): p 1.0 (last bin includes 1) -> rate 1, gap 0, weight 1/4
    y = [0, 1, 1, 1]
    p = [0.1, 0.1, 0.8, 1.0]
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.4 + 0.25 * 0.2 + 0.0)


def test_ece_equals_weighted_gaps_of_reliability_table(calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = calibrated
    table = reliability_table(y[:5000], p[:5000] ** 2, n_bins=7)
    weighted = float((table["n"] / 5000 * table["gap"].abs()).sum())
    assert expected_calibration_error(y[:5000], p[:5000] ** 2, n_bins=7) == pytest.approx(weighted)


# ---------------------------------------------------------------- reliability


def test_reliability_table_bins() -> None:
    y = [0, 1, 1, 0, 1]
    p = [0.05, 0.05, 0.55, 0.55, 0.95]
    table = reliability_table(y, p, n_bins=10)
    assert list(table.columns) == ["bin", "p_low", "p_high", "n", "mean_p", "rate", "gap"]
    assert table["bin"].tolist() == [0, 5, 9]  # empty bins omitted
    assert table["p_low"].tolist() == pytest.approx([0.0, 0.5, 0.9])
    assert table["p_high"].tolist() == pytest.approx([0.1, 0.6, 1.0])
    assert table["n"].tolist() == [2, 2, 1]
    assert table["rate"].tolist() == pytest.approx([0.5, 0.5, 1.0])
    assert table["gap"].tolist() == pytest.approx([0.45, -0.05, 0.05])


def test_reliability_plot_writes_png(tmp_path, calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = calibrated
    curves = {
        "model": reliability_table(y[:2000], p[:2000]),
        "base rate": reliability_table(y[:2000], np.full(2000, y[:2000].mean())),
    }
    out = reliability_plot(curves, tmp_path / "plots" / "reliability.png", "Lead score calibration")
    assert out == tmp_path / "plots" / "reliability.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matplotlib_is_imported_only_inside_the_plot_function() -> None:
    import forecast.evaluate as ev

    tree = ast.parse(Path(ev.__file__).read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    names = [alias.name for node in top_level for alias in node.names]
    names += [node.module or "" for node in top_level if isinstance(node, ast.ImportFrom)]
    assert not any(name.startswith("matplotlib") for name in names)


# ---------------------------------------------------------------- metrics


def test_classification_metrics_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(y, p)
    assert list(m) == METRIC_COLUMNS
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    expected_ll = -np.mean([np.log(0.9), np.log(0.6), np.log(0.35), np.log(0.8)])
    assert m["log_loss"] == pytest.approx(expected_ll)
    assert m["base_rate"] == 0.5
    assert m["n"] == 4
    assert m["n_positive"] == 2


def test_single_class_gives_nan_auc_not_an_exception() -> None:
    m = classification_metrics([0, 0, 0], [0.0, 0.2, 0.1])
    assert math.isnan(m["roc_auc"])
    assert math.isnan(m["pr_auc"])
    assert m["brier"] == pytest.approx((0.04 + 0.01) / 3)
    assert np.isfinite(m["log_loss"])  # p = 0 is clipped


def test_log_loss_is_finite_for_confident_mistakes() -> None:
    m = classification_metrics([1, 0], [0.0, 1.0])
    assert m["log_loss"] == pytest.approx(-np.log(1e-15), rel=1e-4)


def test_accepts_bool_and_nullable_labels() -> None:
    p = [0.2, 0.7, 0.6]
    reference = classification_metrics([0, 1, 1], p)
    assert classification_metrics(np.array([False, True, True]), p) == reference
    assert classification_metrics(pd.Series([False, True, True], dtype="boolean"), p) == reference
    assert (
        classification_metrics(pd.array([0, 1, 1], dtype="Int64"), pd.Series(p, dtype="Float64")) == reference
    )


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([0, 1], [0.5], "same length"),
        ([0, 1], [0.5, 1.2], r"\[0, 1\]"),
        ([0, 1], [-0.1, 0.5], r"\[0, 1\]"),
        ([0, 1], [np.nan, 0.5], "missing"),
        ([0, 2], [0.5, 0.5], "0/1"),
        (pd.Series([0, None], dtype="Int64"), [0.5, 0.5], "missing"),
        (["a", "b"], [0.5, 0.5], "numeric"),
        ([], [], "empty"),
        (np.zeros((2, 2)), [0.5, 0.5], "one-dimensional"),
    ],
)
def test_bad_inputs_raise_value_error(y: object, p: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        classification_metrics(y, p)


def test_bad_bins_raise() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error([0, 1], [0.1, 0.9], n_bins=0)


def test_compare_models_sorted_by_brier() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    results = {
        "base_rate": classification_metrics(y, np.full(500, y.mean())),
        "model": classification_metrics(y, p),
        "broken": {"brier": math.nan},
    }
    table = compare_models(results)
    assert table["model"].tolist() == ["model", "base_rate", "broken"]
    assert list(table.columns) == ["model", *METRIC_COLUMNS]


# ---------------------------------------------------------------- deciles


def test_decile_table_sums_and_lift() -> None:
    rng = np.random.default_rng(7)
    p = rng.uniform(size=1003)
    y = (rng.uniform(size=1003) < p).astype(int)
    table = decile_table(y, p)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["n"].sum() == 1003
    assert set(table["n"]) == {100, 101}
    assert table["positives"].sum() == y.sum()
    assert table["cumulative_capture"].iloc[-1] == pytest.approx(1.0)
    assert table["cumulative_capture"].is_monotonic_increasing
    assert table["lift"].iloc[0] > 1.5
    assert table["p_min"].iloc[0] >= table["p_max"].iloc[1]  # decile 1 = highest scores
    assert (table["lift"] * y.mean()).tolist() == pytest.approx(table["rate"].tolist())


def test_decile_table_ties_are_stable() -> None:
    y = [1, 0, 0, 1]
    p = [0.5, 0.5, 0.5, 0.5]
    table = decile_table(y, p, n_groups=2)
    # stable sort keeps input order among ties: group 1 = rows 0, 1; group 2 = rows 2, 3
    assert table["positives"].tolist() == [1, 1]
    assert decile_table(y, p, n_groups=2).equals(table)


def test_decile_table_with_fewer_rows_than_groups() -> None:
    table = decile_table([1, 0, 1], [0.9, 0.1, 0.5])
    assert table["decile"].tolist() == [1, 2, 3]
    assert table["n"].tolist() == [1, 1, 1]
    assert table["mean_p"].tolist() == [0.9, 0.5, 0.1]
    assert table["cumulative_capture"].tolist() == pytest.approx([0.5, 1.0, 1.0])


# ---------------------------------------------------------------- segments


def test_segment_calibration_pools_small_segments() -> None:
    rng = np.random.default_rng(3)
    segments = pd.Series(["web"] * 60 + ["event"] * 40 + ["fax"] * 5 + ["radio"] * 10 + [None] * 35)
    p = rng.uniform(size=len(segments))
    y = (rng.uniform(size=len(segments)) < p).astype(int)
    table = segment_calibration(y, p, segments, min_rows=30)
    assert table["segment"].tolist() == ["web", "event", "(missing)", "(other)"]
    assert table["n"].tolist() == [60, 40, 35, 15]
    other = table.set_index("segment").loc["(other)"]
    assert other["positives"] == y[100:115].sum()
    assert other["mean_p"] == pytest.approx(p[100:115].mean())
    assert other["gap"] == pytest.approx(other["rate"] - other["mean_p"])
    assert list(table.columns) == [
        "segment", "n", "positives", "mean_p", "rate", "gap", "ece", "brier", "roc_auc",
    ]  # fmt: skip


def test_segment_calibration_single_class_segment_has_nan_auc() -> None:
    segments = pd.Series(["a"] * 4 + ["b"] * 4, index=range(10, 18))  # index is ignored
    y = [1, 1, 1, 1, 0, 1, 0, 1]
    p = [0.9, 0.8, 0.7, 0.6, 0.1, 0.9, 0.2, 0.8]
    table = segment_calibration(y, p, segments, min_rows=1).set_index("segment")
    assert math.isnan(table.loc["a", "roc_auc"])
    assert table.loc["b", "roc_auc"] == pytest.approx(1.0)


def test_segment_calibration_length_mismatch() -> None:
    with pytest.raises(ValueError, match="same length"):
        segment_calibration([0, 1], [0.1, 0.2], pd.Series(["a"]))


def test_ece_noise_floor_matches_the_ece_of_calibrated_labels() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 400)
    mean, q90 = ece_noise_floor(p, n_draws=400, seed=1)
    draws = [expected_calibration_error((rng.uniform(size=p.size) < p).astype(int), p) for _ in range(400)]
    assert mean == pytest.approx(float(np.mean(draws)), rel=0.1)
    assert mean < q90 < 2.5 * mean
    # on 400 outcomes a calibrated model is off by several points; on 40 000 by a fraction of one
    assert mean > 0.02
    assert ece_noise_floor(rng.uniform(0.05, 0.95, 40_000), n_draws=50)[0] < 0.01


def test_ece_noise_floor_counts_outcomes_not_rows() -> None:
    p = np.repeat(np.random.default_rng(4).uniform(0.1, 0.9, 100), 10)
    rows_alone = ece_noise_floor(p, n_draws=300)[0]
    per_deal = ece_noise_floor(p, groups=np.repeat(np.arange(100), 10), n_draws=300)[0]
    assert per_deal > 2 * rows_alone


def test_ece_noise_floor_refuses_what_is_not_a_probability() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        ece_noise_floor(np.array([0.2, 1.5]))
    with pytest.raises(ValueError, match="no predictions"):
        ece_noise_floor(np.array([]))
