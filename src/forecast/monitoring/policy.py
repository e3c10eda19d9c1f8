"""The monitoring policy (``training/monitoring.yaml``) and the verdict it gives (pure, no I/O).

Each criterion compares one measured figure with two thresholds and yields a :class:`Finding` at
level ``ok``, ``warn`` or ``retrain``; the verdict is the worst level of all findings, and its
reasons are the findings above ``ok``, in words. A figure that could not be measured (no outcomes
have arrived yet, say) gives no finding, and a note says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from forecast.yaml_config import read_yaml_model

Level = Literal["ok", "warn", "retrain"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "retrain")
EXIT_CODES: dict[Level, int] = {"ok": 0, "warn": 10, "retrain": 11}
"""Exit code of ``forecast monitor`` per verdict (2 = bad input, 1 = unexpected failure)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Thresholds(_Strict):
    """A figure's two thresholds: at or above ``warn`` it warns, at or above ``retrain`` it retrains.

    ``None`` disables that level.
    """

    warn: float | None = None
    retrain: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warn is not None and self.retrain is not None and self.retrain < self.warn:
            raise ValueError(f"retrain threshold {self.retrain} is below warn threshold {self.warn}")
        return self

    def level(self, value: float) -> Level:
        """The level of ``value``."""
        if self.retrain is not None and value >= self.retrain:
            return "retrain"
        if self.warn is not None and value >= self.warn:
            return "warn"
        return "ok"


class DriftPolicy(_Strict):
    """Feature and prediction drift (Evidently, per column: drift score against a threshold).

    Attributes:
        num_method: Evidently drift method for numerical features.
        num_threshold: A numerical feature drifts when its score reaches this.
        cat_method: Evidently drift method for categorical features.
        cat_threshold: A categorical feature drifts when its score reaches this.
        share: Share of all features that drifted.
        top_k: How many of the champion's most important features ``top_features`` watches.
        top_features: Number of drifted features among the ``top_k`` most important.
        prediction_method: Evidently drift method for the predicted probability.
        prediction: Drift score of the predicted probability.
    """

    num_method: str = "wasserstein"
    num_threshold: float = Field(default=0.1, gt=0)
    cat_method: str = "jensenshannon"
    cat_threshold: float = Field(default=0.1, gt=0)
    share: Thresholds = Thresholds(warn=0.3, retrain=0.5)
    top_k: int = Field(default=5, ge=1)
    top_features: Thresholds = Thresholds(warn=1, retrain=3)
    prediction_method: str = "wasserstein"
    prediction: Thresholds = Thresholds(warn=0.1, retrain=0.25)


class PerformancePolicy(_Strict):
    """Quality on the rows whose outcome has arrived, against the champion's reference rows.

    Attributes:
        min_rows: Fewer labelled current rows than this: quality is not judged.
        min_positives: Fewer positives (or negatives) than this: quality is not judged.
        auc_drop: Reference ROC-AUC minus current ROC-AUC.
        ece_rise: Current ECE minus reference ECE (10 equal-width bins).
        n_bins: Bins of the reliability table.
    """

    min_rows: int = Field(default=300, ge=1)
    min_positives: int = Field(default=20, ge=1)
    auc_drop: Thresholds = Thresholds(warn=0.03, retrain=0.06)
    ece_rise: Thresholds = Thresholds(warn=0.02, retrain=0.03)
    n_bins: int = Field(default=10, ge=2)


class DataQualityPolicy(_Strict):
    """Data-quality checks of the current rows against the reference.

    Attributes:
        max_missing_increase: A feature fails when its missing share rises by more than this.
        max_new_category_share: A categorical feature fails when more than this share of current
            rows hold a value the reference never had.
        stuck_min_rows: A feature that varied in the reference but is constant in at least this
            many current rows fails (a broken feed).
        failures: Number of failed checks.
    """

    max_missing_increase: float = Field(default=0.1, ge=0, le=1)
    max_new_category_share: float = Field(default=0.05, ge=0, le=1)
    stuck_min_rows: int = Field(default=200, ge=1)
    failures: Thresholds = Thresholds(warn=1, retrain=None)


class MonitoringPolicy(_Strict):
    """Everything ``forecast monitor`` needs besides the data.

    Attributes:
        current_days: The current period: snapshots of the last this many days of the data.
        max_rows: Each side is sampled down to this many rows for the Evidently reports.
        seed: Seed of that sampling.
        drift: Drift criteria.
        performance: Quality criteria (where outcomes have arrived).
        data_quality: Data-quality criteria.
    """

    current_days: int = Field(default=28, ge=1)
    max_rows: int = Field(default=10_000, ge=100)
    seed: int = 0
    drift: DriftPolicy = DriftPolicy()
    performance: PerformancePolicy = PerformancePolicy()
    data_quality: DataQualityPolicy = DataQualityPolicy()

    @classmethod
    def from_yaml(cls, path: Path) -> MonitoringPolicy:
        """Read the policy.

        Raises:
            ValueError: With the file name and pydantic's field paths.
        """
        return read_yaml_model(cls, path, "monitoring policy")


@dataclass
class Figures:
    """What monitoring measured (``None``: not measured).

    Attributes:
        n_features: Features checked for drift.
        drifted: Drift score of each drifted feature (feature -> score), worst first.
        top_features: The champion's most important features (most important first).
        prediction_drift: Drift score of the predicted probability.
        reference_quality: ROC-AUC, ECE, … of the champion on the reference's labelled rows.
        current_quality: The same on the current rows whose outcome has arrived.
        quality_note: Why quality was not judged, if it was not.
        data_quality_failures: One message per failed data-quality check.
    """

    n_features: int
    drifted: dict[str, float] = field(default_factory=dict)
    top_features: list[str] = field(default_factory=list)
    prediction_drift: float | None = None
    reference_quality: dict[str, float] | None = None
    current_quality: dict[str, float] | None = None
    quality_note: str | None = None
    data_quality_failures: list[str] = field(default_factory=list)


@dataclass
class Finding:
    """One criterion's result."""

    criterion: str
    level: Level
    value: float
    message: str


@dataclass
class Verdict:
    """The one verdict of a monitoring run, with its reasons."""

    verdict: Level
    reasons: list[str]
    findings: list[Finding]
    notes: list[str]

    @property
    def exit_code(self) -> int:
        """``forecast monitor``'s exit code for this verdict."""
        return EXIT_CODES[self.verdict]

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return {**asdict(self), "exit_code": self.exit_code}


def _names(scores: dict[str, float], limit: int = 8) -> str:
    items = [f"{name} ({score:.2f})" for name, score in list(scores.items())[:limit]]
    more = len(scores) - limit
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def _worst(levels: list[Level]) -> Level:
    return max(levels, key=LEVELS.index, default="ok")


def decide(figures: Figures, policy: MonitoringPolicy) -> Verdict:
    """Apply the policy to the measured figures.

    Args:
        figures: What monitoring measured.
        policy: The thresholds.

    Returns:
        The verdict (the worst level of the findings), its reasons and every finding.
    """
    notes: list[str] = []
    findings = [
        *_drift_findings(figures, policy.drift, notes),
        *_quality_findings(figures, policy.performance, notes),
    ]
    failures = figures.data_quality_failures
    findings.append(
        Finding(
            "data_quality_failures",
            policy.data_quality.failures.level(len(failures)),
            float(len(failures)),
            f"{len(failures)} data-quality check(s) failed"
            + (": " + "; ".join(failures[:5]) if failures else ""),
        )
    )
    verdict = _worst([f.level for f in findings])
    order = sorted(findings, key=lambda f: -LEVELS.index(f.level))
    reasons = [f"{f.level}: {f.message}" for f in order if f.level != "ok"]
    return Verdict(verdict, reasons, findings, notes)


def _drift_findings(figures: Figures, drift: DriftPolicy, notes: list[str]) -> list[Finding]:
    """The share of drifted features, the drifted top features and the prediction's drift.

    Args:
        figures: What monitoring measured.
        drift: The policy's drift thresholds.
        notes: Appended to when the prediction's drift was not measured.
    """
    share = len(figures.drifted) / max(figures.n_features, 1)
    top = figures.top_features[: drift.top_k]
    top_drifted = {f: figures.drifted[f] for f in top if f in figures.drifted}
    findings = [
        Finding(
            "feature_drift_share",
            drift.share.level(share),
            share,
            f"{len(figures.drifted)} of {figures.n_features} features drifted ({share:.0%})"
            + (f": {_names(figures.drifted)}" if figures.drifted else ""),
        ),
        Finding(
            "top_feature_drift",
            drift.top_features.level(len(top_drifted)),
            float(len(top_drifted)),
            f"{len(top_drifted)} of the model's {len(top)} most important features drifted"
            + (f": {_names(top_drifted)}" if top_drifted else ""),
        ),
    ]
    if figures.prediction_drift is None:
        notes.append("prediction drift not measured")
        return findings
    findings.append(
        Finding(
            "prediction_drift",
            drift.prediction.level(figures.prediction_drift),
            figures.prediction_drift,
            f"the predicted probability drifted by {figures.prediction_drift:.3f} "
            f"({drift.prediction_method})",
        )
    )
    return findings


def _quality_findings(figures: Figures, perf: PerformancePolicy, notes: list[str]) -> list[Finding]:
    """The ROC-AUC drop and the ECE rise against the reference (none without outcomes on both).

    Args:
        figures: What monitoring measured.
        perf: The policy's performance thresholds.
        notes: Appended to when quality is not judged.
    """
    ref, cur = figures.reference_quality, figures.current_quality
    if ref is None or cur is None:
        notes.append(figures.quality_note or "quality not judged: no outcomes to compare")
        return []
    drop = ref["roc_auc"] - cur["roc_auc"]
    rise = cur["ece"] - ref["ece"]
    return [
        Finding(
            "auc_drop",
            perf.auc_drop.level(drop),
            drop,
            f"ROC-AUC {cur['roc_auc']:.3f} on {int(cur['n']):,} rows with outcomes, "
            f"{ref['roc_auc']:.3f} on the reference (drop {drop:+.3f})",
        ),
        Finding(
            "ece_rise",
            perf.ece_rise.level(rise),
            rise,
            f"ECE {cur['ece']:.3f} against {ref['ece']:.3f} on the reference (rise {rise:+.3f}); "
            f"mean predicted {cur['mean_p']:.3f}, observed rate {cur['base_rate']:.3f}",
        ),
    ]
