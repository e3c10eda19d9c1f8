"""The model card: what a trained model is, how it was tested and what its scores mean, in words."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from forecast.models.config import TrainingConfig
from forecast.training.binary import TrainResult

_METRIC_WORDS = {
    "roc_auc": "ROC-AUC (ranking: 0.5 is chance, 1 is perfect)",
    "pr_auc": "PR-AUC (precision over recall)",
    "brier": "Brier score (mean squared error of the probability; lower is better)",
    "log_loss": "log-loss (lower is better)",
    "ece": "expected calibration error, 10 bins (gap between predicted and observed rates)",
    "base_rate": "observed positive rate in the test slice",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if pd.isna(value) else f"{value:.4f}"
    return str(value)


def _briers(scores: Any) -> str:
    if not scores:
        return "not compared"
    return ", ".join(f"{k} {v:.5f}" for k, v in scores.items())


def _table(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.to_dict("records"):
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def _fit_lines(fit: dict[str, Any]) -> list[str]:
    """Which rows evaluated the model and which fitted the served one."""
    if not fit:
        return []
    ev, final = fit.get("evaluation", {}), fit.get("final", {})
    return [
        f"- evaluation model: fitted on {ev.get('rows')} rows before the test cut "
        f"({ev.get('n_estimators', '-')} trees, calibration {ev.get('calibration')}); "
        "every test metric below is its",
        f"- served model: fitted on {final.get('rows')} of {fit.get('labelled_rows')} labelled rows "
        f"({100 * float(final.get('share_of_labelled', 0)):.1f}%, test slice included; "
        f"{final.get('n_estimators', '-')} trees, calibration {final.get('calibration')})",
        *_blend_lines(fit.get("win_blend")),
    ]


def _blend_lines(blend: dict[str, Any] | None) -> list[str]:
    """The win hazard the served probability is blended with, and each part on the test slice.

    Nothing where no blend was judged (p_win's reach past the label horizon is in the notes).
    """
    if not blend or "test" not in blend:
        return []
    ev, final, test = blend.get("evaluation", {}), blend.get("final", {}), blend.get("test", {})
    parts = "; ".join(
        f"{name} Brier {m.get('brier')}, ECE {m.get('ece')}, AUC {m.get('roc_auc')}"
        for name, m in test.items()
    )
    hazard = f"a competing-risks hazard's P(won within {blend.get('days'):g} days)"
    seen = "censored at the test cut" if ev.get("censored_at") else "outside the test deals"
    lines = [f"- on the test slice: {parts}"]
    if blend.get("note"):
        lines.append(f"- {blend['note']}")
    if not blend.get("served"):
        why = (
            f"the hazard could not be fitted on every snapshot ({final['error']})"
            if final.get("error")
            else "it scored a worse Brier score on the test slice"
        )
        head = (
            f"- p_win is the classifier's alone: its blend with {hazard} (weight {blend.get('weight'):g}, "
            f"the hazard fitted on {ev.get('rows')} snapshots {seen}) is not served: {why}"
        )
        return [head, *lines]
    served = f"{final['rows']} for the served model" if final.get("rows") else "the same for the served model"
    return [
        f"- p_win blends the classifier with {hazard} (weight {blend.get('weight'):g}); the hazard "
        f"learns from every snapshot, open ones included: {ev.get('rows')} snapshots {seen} for the "
        f"evaluation, {served}",
        *lines,
    ]


def model_card(
    name: str,
    version: str | None,
    result: TrainResult,
    config: TrainingConfig,
    *,
    target_words: str,
    source_words: str,
    score_name: str,
) -> str:
    """Render the card (Markdown).

    Args:
        name: Registered model name.
        version: Registered version (``None`` before registration).
        result: The training result.
        config: The training configuration.
        target_words: What a positive is ("the lead converts to an opportunity within 90 days").
        source_words: Where the data came from.
        score_name: The probability column (``p_convert``, ``p_win``).
    """
    bands = config.bands
    parts = [
        f"# Model card: {name}" + (f" v{version}" if version else ""),
        "",
        "## What it predicts",
        "",
        f"`{score_name}`: the calibrated probability that {target_words}. "
        f"`score` = round(100 × {score_name}): "
        "a probability in percent, not a rank or percentile (a score of 30 means about 30 in 100 such "
        f"cases turn positive). Bands: A ≥ {bands['A']:.0%}, B ≥ {bands['B']:.0%}, "
        f"C ≥ {bands['C']:.0%}, D below.",
        "",
        *_model_lines(result),
        *_data_lines(result, source_words),
        *_test_lines(result),
    ]
    for seg, table in result.segments.items():
        parts += [
            f"## Calibration by {seg}",
            "",
            _table(table[["segment", "n", "mean_p", "rate", "gap", "ece", "roc_auc"]]),
            "",
        ]
    parts += [
        "## Most important features (share of gain)",
        "",
        _table(result.importance.head(15)),
        "",
        "## Limits",
        "",
        "- Scores are calibrated on the validation period; recalibrate (retrain) when the mix of leads, "
        "the process or the market changes (see monitoring).",
        "- Reasons are the features that moved this score most (TreeSHAP contributions); they explain the "
        "model, not causes in the world.",
    ]
    return "\n".join(parts) + "\n"


def _model_lines(result: TrainResult) -> list[str]:
    """The card's "Model" section: the kind, its trees and calibration, the notes."""
    return [
        "## Model",
        "",
        f"- kind: {result.model_kind}"
        + (
            f"; LightGBM with early stopping ({result.calibration.get('best_iteration')} trees), "
            f"{result.calibration.get('method')} calibration, cross-fitted (out-of-fold predictions) "
            f"(cross-validated Brier: {_briers(result.calibration.get('cv_brier'))})"
            if result.calibration
            else ""
        ),
        *[f"- note: {n}" for n in result.notes],
        "",
    ]


def _data_lines(result: TrainResult, source_words: str) -> list[str]:
    """The card's "Data" section: source, rows, dates, hash, the split and the fits."""
    splits = result.splits.get("splits", {})
    split_lines = [
        f"- {k}: {v.get('rows')} rows"
        + (f", {v.get('entities')} entities, {v.get('from')} to {v.get('to')}" if "from" in v else "")
        for k, v in splits.items()
    ]
    return [
        "## Data",
        "",
        f"- source: {source_words}",
        f"- rows with a known label: {result.data['rows']}, positive rate {_fmt(result.data['label_rate'])}",
        f"- as_of range: {result.data['from']} to {result.data['to']}",
        f"- data hash (sha256): `{result.data['sha256']}`",
        f"- split: {result.splits.get('method')}"
        + (
            f", cuts {result.splits.get('cuts')}, "
            f"purge gap {result.splits.get('gap_days')} days before the test slice"
            if result.splits.get("method") == "time"
            else ""
        ),
        *split_lines,
        *_fit_lines(result.fit),
        "",
    ]


def _test_lines(result: TrainResult) -> list[str]:
    """The card's test-slice sections: the model against the baselines, and the lift by decile."""
    m = result.metrics
    keys = ("roc_auc", "pr_auc", "brier", "log_loss", "ece")
    rows = [{"model": "this model", **{k: m.get(k) for k in keys}}]
    rows += [{"model": bname, **{k: bm.get(k) for k in keys}} for bname, bm in result.baselines.items()]
    beats = [
        b
        for b, bm in result.baselines.items()
        if m.get("roc_auc", float("nan")) > bm.get("roc_auc", float("nan"))
        and m.get("brier", float("nan")) < bm.get("brier", float("nan"))
    ]
    return [
        "## Test-slice metrics against the baselines",
        "",
        _table(pd.DataFrame(rows)),
        "",
        f"Beats on both AUC and Brier: {', '.join(beats) if beats else 'none'}"
        + (f" (of {', '.join(result.baselines)})." if result.baselines else "."),
        "",
        *[f"- {k}: {w}" for k, w in _METRIC_WORDS.items()],
        "",
        "## Lift by score decile (test slice; decile 1 = highest scores)",
        "",
        _table(result.deciles[["decile", "n", "mean_p", "rate", "lift", "cumulative_capture"]])
        if len(result.deciles)
        else "Not measured: no test row has a known outcome yet (see the notes).",
        "",
    ]
