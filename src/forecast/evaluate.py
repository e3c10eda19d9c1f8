"""Evaluation of probability scores: discrimination, calibration, lift and per-segment checks.

Every function is pure: array-likes in, numbers or frames out. Labels may be 0/1 integers, bools or
pandas nullable types (``Int64``, ``boolean``); scores are probabilities in ``[0, 1]``. Inputs are
aligned by position, never by pandas index. Only :func:`reliability_plot` touches matplotlib, and it
draws on a private Agg canvas so that importing this module has no side effects.

Calibration binning is shared: a score ``p`` falls into equal-width bin
``min(floor(p * n_bins), n_bins - 1)`` of ``[0, 1]`` (so ``p = 1.0`` sits in the last bin), and
:func:`expected_calibration_error` equals ``sum(n / N * |gap|)`` over the rows of
:func:`reliability_table`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

EPS = 1e-15
"""Clipping bound for probabilities in the log loss."""

MISSING_SEGMENT = "(missing)"
OTHER_SEGMENT = "(other)"

METRIC_COLUMNS = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", "base_rate", "n", "n_positive"]
"""The keys of :func:`classification_metrics`, in report order."""


# --------------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------------


def _to_float_array(values: Any, name: str) -> np.ndarray:
    """Convert a 1-D array-like (numpy, list, pandas incl. nullable types) to float64; NA -> NaN."""
    if np.ndim(values) != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {np.shape(values)}")
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    try:
        return series.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be numeric (0/1, bool or probabilities): {err}") from err


def binary_labels(y_true: Any) -> np.ndarray:
    """Validate binary labels and return them as an ``int64`` array of 0/1.

    Args:
        y_true: 1-D array-like of 0/1 or bools; pandas nullable dtypes are accepted.

    Returns:
        The labels as ``int64`` zeros and ones.

    Raises:
        ValueError: if the input is empty, has missing values or values other than 0/1.
    """
    y = _to_float_array(y_true, "y_true")
    if y.size == 0:
        raise ValueError("y_true is empty")
    if np.isnan(y).any():
        raise ValueError(f"y_true has {int(np.isnan(y).sum())} missing value(s); labels must be 0/1")
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        examples = ", ".join(str(v) for v in np.unique(y[bad])[:5])
        raise ValueError(f"y_true must contain only 0/1 (or bools); found {examples}")
    return y.astype(np.int64)


def _validate(y_true: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y, p)`` as int 0/1 and float arrays of equal length with ``p`` in ``[0, 1]``."""
    y = binary_labels(y_true)
    scores = _to_float_array(p, "p")
    if scores.size != y.size:
        raise ValueError(f"y_true and p must have the same length, got {y.size} and {scores.size}")
    if not np.isfinite(scores).all():
        raise ValueError(f"p has {int((~np.isfinite(scores)).sum())} missing or infinite value(s)")
    if scores.min() < 0.0 or scores.max() > 1.0:
        raise ValueError(
            f"p must be probabilities in [0, 1]; found range [{scores.min():.6g}, {scores.max():.6g}]"
        )
    return y, scores


def _check_bins(n_bins: int, name: str = "n_bins") -> None:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"{name} must be a positive integer, got {n_bins!r}")


# --------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bin of each score on ``[0, 1]``; ``p = 1`` goes to the last bin."""
    return np.minimum(np.floor(p * n_bins).astype(np.int64), n_bins - 1)


def _reliability(y: np.ndarray, p: np.ndarray, n_bins: int) -> pd.DataFrame:
    """Reliability table of already validated arrays."""
    bins = _bin_index(p, n_bins)
    frame = pd.DataFrame({"bin": bins, "p": p, "y": y})
    grouped = frame.groupby("bin", sort=True).agg(n=("y", "size"), mean_p=("p", "mean"), rate=("y", "mean"))
    table = grouped.reset_index()
    table.insert(1, "p_low", table["bin"] / n_bins)
    table.insert(2, "p_high", (table["bin"] + 1) / n_bins)
    table["n"] = table["n"].astype(np.int64)
    table["gap"] = table["rate"] - table["mean_p"]
    return table[["bin", "p_low", "p_high", "n", "mean_p", "rate", "gap"]]


def _ece(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    table = _reliability(y, p, n_bins)
    return float((table["n"] / len(y) * table["gap"].abs()).sum())


def expected_calibration_error(y_true: Any, p: Any, n_bins: int = 10) -> float:
    """Expected calibration error with equal-width bins on ``[0, 1]``.

    ``ECE = sum over non-empty bins of (n_bin / n) * |mean(p_bin) - mean(y_bin)|``.

    Args:
        y_true: Binary labels.
        p: Predicted probabilities of the positive class.
        n_bins: Number of equal-width bins.

    Returns:
        The ECE, in probability points (0.05 = scores off by 5 points on average).
    """
    _check_bins(n_bins)
    y, scores = _validate(y_true, p)
    return _ece(y, scores, n_bins)


def ece_noise_floor(
    p: Any, groups: Any = None, n_bins: int = 10, n_draws: int = 200, seed: int = 0
) -> tuple[float, float]:
    """The ECE a perfectly calibrated model would score on these predictions, by chance alone.

    Labels are drawn from the predictions themselves (``y ~ Bernoulli(p)``: consistency resampling)
    and the ECE of each draw is computed; on a few hundred outcomes it is far from zero. Rows that
    share a group (the weekly snapshots of one deal share its one outcome) share one uniform draw, so
    the floor reflects the number of outcomes, not of rows.

    Args:
        p: Predicted probabilities.
        groups: Optional group key per row (e.g. the deal id); rows of a group share one draw.
        n_bins: Equal-width bins, as :func:`expected_calibration_error`.
        n_draws: Label draws.
        seed: Seed of the draws.

    Returns:
        The mean and the 90th percentile of the ECE over the draws.
    """
    _check_bins(n_bins)
    scores = np.asarray(p, dtype=float).ravel()
    if scores.size == 0:
        raise ValueError("no predictions")
    _validate(np.zeros(scores.size, dtype=int), scores)
    codes = (
        np.arange(scores.size)
        if groups is None
        else pd.factorize(pd.Series(np.asarray(groups)).astype(str))[0]
    )
    bins = _bin_index(scores, n_bins)
    mean_p = np.bincount(bins, weights=scores, minlength=n_bins)
    rng = np.random.default_rng(seed)
    n_groups = int(codes.max()) + 1
    eces = np.empty(n_draws)
    for k in range(n_draws):
        y = (rng.random(n_groups)[codes] < scores).astype(float)
        gap = np.abs(np.bincount(bins, weights=y, minlength=n_bins) - mean_p)
        eces[k] = gap.sum() / scores.size
    return float(eces.mean()), float(np.quantile(eces, 0.9))


def _weighted_auc(y: np.ndarray, ranks: np.ndarray, n_ranks: int, w: np.ndarray) -> float:
    """ROC-AUC of scores given as dense ranks (ties share a rank), with row weights."""
    pos = np.bincount(ranks, weights=w * y, minlength=n_ranks)
    neg = np.bincount(ranks, weights=w * (1 - y), minlength=n_ranks)
    below = np.cumsum(neg) - neg
    denom = pos.sum() * neg.sum()
    return float(np.sum(pos * (below + 0.5 * neg)) / denom) if denom > 0 else float("nan")


def paired_auc_gaps(
    y_true: Any,
    p_model: Any,
    baselines: Mapping[str, Any],
    groups: Any,
    n_boot: int = 200,
    seed: int = 0,
    weight: Any = None,
) -> dict[str, dict[str, float]]:
    """The model's ROC-AUC minus each baseline's, with the standard error of that difference.

    ``weight`` (optional, per row) weighs every AUC, in the full sample and in each draw.

    The error comes from a bootstrap over whole entities (``groups``: a deal's weekly snapshots
    share one outcome, so resampling rows would understate it), with the model and the baselines
    scored on the same draws: it is the error of the paired difference, as
    :func:`forecast.training.binary.paired_brier_gap` is for the Brier score. Each draw is a vector of
    entity multiplicities used as row weights, so a draw costs one pass over the rows.

    Returns:
        Per baseline, ``auc_gap`` (model minus baseline, on all rows) and ``auc_gap_se``.
    """
    y = binary_labels(y_true).astype(float)
    codes = pd.factorize(pd.Series(np.asarray(groups)))[0]
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    scores = {"__model__": np.asarray(p_model, dtype=float)} | {
        k: np.asarray(v, dtype=float) for k, v in baselines.items()
    }
    dense = {}
    for k, v in scores.items():
        uniq, inv = np.unique(v, return_inverse=True)
        dense[k] = (inv, len(uniq))
    base = np.ones(len(y)) if weight is None else np.asarray(weight, dtype=float)
    full = {k: _weighted_auc(y, inv, n, base) for k, (inv, n) in dense.items()}
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in scores}
    for _ in range(n_boot if n_groups > 1 else 0):
        w = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes] * base
        for k, (inv, n) in dense.items():
            draws[k].append(_weighted_auc(y, inv, n, w))
    model = np.asarray(draws["__model__"])
    out = {}
    for k in baselines:
        d = model - np.asarray(draws[k])
        d = d[np.isfinite(d)]
        out[k] = {
            "auc_gap": full["__model__"] - full[k],
            "auc_gap_se": float(np.std(d, ddof=1)) if len(d) > 1 else float("nan"),
        }
    return out


def baselines_not_beaten(
    model: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]], max_auc_drop: float = 0.0
) -> list[str]:
    """Baselines the model loses to on ROC-AUC or Brier on its test slice (the promotion gate's rule).

    A loss is an ROC-AUC lower by more than ``max_auc_drop`` (the gate's allowance against a
    champion) and by more than two standard errors of the paired AUC difference (``auc_gap_se``,
    a bootstrap over whole entities of the test slice; against the base rate, whose AUC is 0.5, this
    is the "ranks better than chance" rule, read against its noise), or a Brier score higher than
    the baseline's by more than two standard errors of their paired difference (``brier_gap_se``):
    a tie within noise, e.g. with the logistic regression on a small CRM whose outcome is near
    linear in its features, is not a loss. Without the paired error a strictly lower Brier score is
    needed. A baseline or model without an ROC-AUC or a Brier score is not judged; a figure that is
    there but not finite (NaN) counts as a loss, as it always did at the gate.

    Args:
        model: The model's test metrics (``roc_auc``, ``brier``).
        baselines: Per baseline, its test metrics (``roc_auc``, ``brier``) and the paired errors
            (``brier_gap_se``, ``auc_gap_se``) where known.
        max_auc_drop: The ROC-AUC drop allowed at least.

    Returns:
        One line per baseline lost to, in the baselines' name order.
    """
    auc, brier = model.get("roc_auc"), model.get("brier")
    out = []
    for b in sorted(baselines):
        figures = baselines[b]
        b_auc, b_brier = figures.get("roc_auc"), figures.get("brier")
        if auc is None or brier is None or b_auc is None or b_brier is None:
            continue
        m, base = (float(auc), float(brier)), (float(b_auc), float(b_brier))  # NaN compares False: a loss
        se = _finite(figures.get("brier_gap_se"))
        brier_ok = m[1] < base[1] or (se is not None and m[1] - base[1] <= 2 * se)
        if not (m[0] >= base[0] - auc_allowance(figures, max_auc_drop) and brier_ok):
            out.append(f"{b} (ROC-AUC {base[0]:.4f} vs {m[0]:.4f}, Brier {base[1]:.5f} vs {m[1]:.5f})")
    return out


def auc_allowance(figures: Mapping[str, Any], max_auc_drop: float = 0.0) -> float:
    """The ROC-AUC gap the gate reads as noise: ``max_auc_drop``, or two paired errors if larger.

    Args:
        figures: A baseline's test figures, with ``auc_gap_se`` where known.
        max_auc_drop: The ROC-AUC drop allowed at least.
    """
    se = _finite(figures.get("auc_gap_se"))
    return max(max_auc_drop, 2 * se) if se is not None else max_auc_drop


def _finite(value: Any) -> float | None:
    """``value`` as a float, or ``None`` where it is missing or not finite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def reliability_table(y_true: Any, p: Any, n_bins: int = 10) -> pd.DataFrame:
    """Observed positive rate against mean score per equal-width score bin.

    Args:
        y_true: Binary labels.
        p: Predicted probabilities.
        n_bins: Number of equal-width bins on ``[0, 1]``.

    Returns:
        One row per non-empty bin: ``bin`` (0-based index, ``p_low = bin / n_bins``), ``p_low``,
        ``p_high``, ``n``, ``mean_p``, ``rate`` (observed) and ``gap = rate - mean_p`` (positive means
        the model under-predicts).
    """
    _check_bins(n_bins)
    y, scores = _validate(y_true, p)
    return _reliability(y, scores, n_bins)


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Metrics of already validated arrays."""
    two_classes = 0 < y.sum() < y.size
    clipped = np.clip(p, EPS, 1.0 - EPS)
    log_loss = -np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
    return {
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if two_classes else math.nan,
        "brier": float(np.mean((p - y) ** 2)),
        "log_loss": float(log_loss),
        "ece": _ece(y, p, 10),
        "base_rate": float(y.mean()),
        "n": float(y.size),
        "n_positive": float(y.sum()),
    }


def _weighted_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """:func:`_metrics` with each row counting ``w`` times (``n``: the rows; ``n_positive``: their count)."""
    two_classes = 0 < y.sum() < y.size
    clipped = np.clip(p, EPS, 1.0 - EPS)
    loss = -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
    bins = _bin_index(p, 10)
    total = w.sum()
    ece = 0.0
    for b in np.unique(bins):
        inside = bins == b
        weight = w[inside].sum()
        if weight > 0:
            gap = np.average(p[inside], weights=w[inside]) - np.average(y[inside], weights=w[inside])
            ece += weight / total * abs(gap)
    return {
        "roc_auc": float(roc_auc_score(y, p, sample_weight=w)) if two_classes else math.nan,
        "pr_auc": float(average_precision_score(y, p, sample_weight=w)) if two_classes else math.nan,
        "brier": float(np.average((p - y) ** 2, weights=w)),
        "log_loss": float(np.average(loss, weights=w)),
        "ece": float(ece),
        "base_rate": float(np.average(y, weights=w)),
        "n": float(y.size),
        "n_positive": float(y.sum()),
    }


def classification_metrics(y_true: Any, p: Any, weight: Any = None) -> dict[str, float]:
    """Discrimination and calibration metrics of probability scores.

    Args:
        y_true: Binary labels.
        p: Predicted probabilities of the positive class.
        weight: Optional weight of each row (e.g. inverse-probability-of-censoring weights): every
            metric but the counts is then a weighted one.

    Returns:
        ``roc_auc``, ``pr_auc`` (average precision), ``brier``, ``log_loss`` (``p`` clipped to
        ``[1e-15, 1 - 1e-15]``), ``ece`` (10 bins), ``base_rate``, ``n`` and ``n_positive``.
        ``roc_auc`` and ``pr_auc`` are NaN when ``y_true`` holds a single class.
    """
    y, scores = _validate(y_true, p)
    if weight is None:
        return _metrics(y, scores)
    w = _to_float_array(weight, "weight")
    if w.size != y.size or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weight must hold {y.size} finite, non-negative values with a positive sum")
    return _weighted_metrics(y, scores, w)


def compare_models(results: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Side-by-side table of model metrics, best (lowest) Brier score first.

    Args:
        results: Model name -> metrics, e.g. from :func:`classification_metrics`.

    Returns:
        One row per model: ``model``, the :data:`METRIC_COLUMNS` (NaN where a model lacks one),
        then any extra metric keys in first-seen order; sorted by ``brier`` (stable, NaN last).
    """
    extra: list[str] = []
    for metrics in results.values():
        extra += [k for k in metrics if k not in METRIC_COLUMNS and k not in extra and k != "model"]
    columns = ["model", *METRIC_COLUMNS, *extra]
    rows = [{"model": name, **dict(metrics)} for name, metrics in results.items()]
    table = pd.DataFrame(rows, columns=columns)
    table = table.sort_values("brier", kind="stable", na_position="last")
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Ranking: deciles and lift
# --------------------------------------------------------------------------------------------------


def decile_table(y_true: Any, p: Any, n_groups: int = 10) -> pd.DataFrame:
    """Lift table: rows ranked by score and cut into groups of (almost) equal size.

    Rows are sorted by descending score with a stable sort, so ties keep their input order and the
    table is deterministic. Group sizes differ by at most one (earlier groups take the extra rows);
    with fewer rows than ``n_groups`` there is one group per row.

    Args:
        y_true: Binary labels.
        p: Predicted probabilities.
        n_groups: Number of groups (10 = deciles).

    Returns:
        One row per group: ``decile`` (1 = highest scores), ``n``, ``p_min``, ``p_max``, ``mean_p``,
        ``positives``, ``rate``, ``lift`` (rate / overall rate; NaN without positives) and
        ``cumulative_capture`` (share of all positives found in groups 1..k; NaN without positives).
    """
    _check_bins(n_groups, "n_groups")
    y, scores = _validate(y_true, p)
    order = np.argsort(-scores, kind="stable")
    groups = np.empty(y.size, dtype=np.int64)
    for number, chunk in enumerate(np.array_split(order, min(n_groups, y.size)), start=1):
        groups[chunk] = number
    frame = pd.DataFrame({"decile": groups, "p": scores, "y": y})
    table = (
        frame.groupby("decile", sort=True)
        .agg(
            n=("y", "size"),
            p_min=("p", "min"),
            p_max=("p", "max"),
            mean_p=("p", "mean"),
            positives=("y", "sum"),
        )
        .reset_index()
    )
    table["rate"] = table["positives"] / table["n"]
    total_positives = int(y.sum())
    overall = total_positives / y.size
    table["lift"] = table["rate"] / overall if total_positives else math.nan
    table["cumulative_capture"] = (
        table["positives"].cumsum() / total_positives if total_positives else math.nan
    )
    return table


# --------------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------------


def _segment_labels(segments: pd.Series, n: int, min_rows: int) -> np.ndarray:
    """Segment value of each row as a string, with missing -> "(missing)" and small -> "(other)"."""
    if len(segments) != n:
        raise ValueError(f"segments must have the same length as y_true, got {len(segments)} and {n}")
    values = pd.Series(segments).astype(object).reset_index(drop=True)
    labels = values.where(values.notna(), MISSING_SEGMENT).astype(str)
    counts = labels.value_counts()
    small = counts.index[counts < min_rows]
    return labels.where(~labels.isin(small), OTHER_SEGMENT).to_numpy()


def segment_calibration(y_true: Any, p: Any, segments: pd.Series, min_rows: int = 30) -> pd.DataFrame:
    """Calibration and discrimination per segment (e.g. lead source, country, owner team).

    Segment values are compared as strings; missing values form ``"(missing)"``. Segments with fewer
    than ``min_rows`` rows are pooled into ``"(other)"`` (which is kept even if it stays small).

    Args:
        y_true: Binary labels.
        p: Predicted probabilities.
        segments: Segment value of each row, aligned by position.
        min_rows: Minimum rows for a segment to be reported on its own.

    Returns:
        One row per segment: ``segment``, ``n``, ``positives``, ``mean_p``, ``rate``,
        ``gap = rate - mean_p``, ``ece`` (10 bins), ``brier`` and ``roc_auc`` (NaN when the segment
        has a single class); sorted by ``n`` descending, then by segment name.
    """
    y, scores = _validate(y_true, p)
    labels = _segment_labels(segments, y.size, min_rows)
    rows = []
    for segment in pd.unique(labels):
        mask = labels == segment
        metrics = _metrics(y[mask], scores[mask])
        rows.append(
            {
                "segment": segment,
                "n": int(mask.sum()),
                "positives": int(y[mask].sum()),
                "mean_p": float(scores[mask].mean()),
                "rate": metrics["base_rate"],
                "gap": metrics["base_rate"] - float(scores[mask].mean()),
                "ece": metrics["ece"],
                "brier": metrics["brier"],
                "roc_auc": metrics["roc_auc"],
            }
        )
    table = pd.DataFrame(rows)
    table = table.sort_values(["n", "segment"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------------


def reliability_plot(curves: Mapping[str, pd.DataFrame], path: Path, title: str) -> Path:
    """Draw a reliability diagram (observed rate against mean score) and save it as a PNG.

    The figure is drawn on its own Agg canvas (no pyplot, no global backend switch), so it is safe
    in servers, threads and headless CI.

    Args:
        curves: Curve name (e.g. ``"model"``, ``"base rate"``) -> a :func:`reliability_table` frame.
            Marker area grows with the bin's row count.
        path: Output PNG path; parent folders are created.
        title: Figure title.

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6.0, 6.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    largest = max((float(c["n"].max()) for c in curves.values() if len(c)), default=1.0)
    for name, table in curves.items():
        if not len(table):
            continue
        (line,) = axes.plot(table["mean_p"], table["rate"], linewidth=1.5, label=name)
        sizes = 15 + 185 * table["n"].to_numpy(dtype=float) / largest
        axes.scatter(table["mean_p"], table["rate"], s=sizes, color=line.get_color(), alpha=0.7)
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed rate")
    axes.set_title(title)
    axes.set_aspect("equal")
    axes.grid(True, alpha=0.3)
    axes.legend(loc="upper left")
    figure.savefig(path, format="png", bbox_inches="tight")
    return path
