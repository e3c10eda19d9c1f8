"""Monitoring and retraining jobs: data -> Evidently + our calibration -> verdict -> files and MLflow.

The reference is what the champion logged at training time (``evaluation/reference.parquet``:
every snapshot from its test cut on, never trained on); a champion logged before that artifact
existed falls back to its test slice, and ``--reference FILE`` overrides both. The current data
is rebuilt point in time from the warehouse: the snapshots of the last ``current_days`` days for
drift, and the latest ``current_days`` of snapshots whose label horizon has passed for quality;
``--current FILE`` (a snapshot feature table) overrides it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from forecast.binding import MODELS_OPTION, ModelRef
from forecast.config import Settings
from forecast.data.readers import read_table_file
from forecast.io import write_text
from forecast.logging import get_logger
from forecast.models.config import TrainingConfig
from forecast.models.win_horizon import read_proba
from forecast.monitoring.calibration import Quality, judgeable, quality
from forecast.monitoring.drift import PREDICTION, TARGET, DriftResult, classification_report, drift_report
from forecast.monitoring.frames import (
    data_quality_failures,
    latest_rows,
    outcomes,
    sample_rows,
    typed_features,
)
from forecast.monitoring.policy import Figures, MonitoringPolicy, Verdict, decide
from forecast.registry import LoadedModel, evaluation_model
from forecast.timeutil import as_of_after

if TYPE_CHECKING:
    from forecast.training.job import TrainingSummary

Progress = Callable[[str], None]


class MonitoringError(ValueError):
    """The input cannot be monitored (no champion, no rows, missing columns, …): exit code 2."""


RETRAIN_EXIT = {"promoted": 0, "refused": 3}
"""Exit codes of ``forecast retrain`` (2 = bad input or too little data, 1 = unexpected)."""


@dataclass
class Side:
    """One side of the comparison: rows for drift, rows with outcomes, and where they came from."""

    drift: pd.DataFrame
    outcomes: pd.DataFrame
    source: str
    period: dict[str, str | None]


def _period(frame: pd.DataFrame) -> dict[str, str | None]:
    if "as_of" not in frame.columns or frame.empty:
        return {"from": None, "to": None}
    as_of = pd.to_datetime(frame["as_of"])
    return {"from": as_of.min().isoformat(), "to": as_of.max().isoformat()}


def _known(frame: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """The rows of ``frame`` whose outcome has arrived, with the outcome in :data:`TARGET`."""
    found = outcomes(frame, meta)
    if found is None:
        return frame.iloc[0:0].assign(**{TARGET: pd.Series(dtype=int)})
    y, known = found
    return frame.loc[known].assign(**{TARGET: y[known]})


def _read(path: Path, what: str) -> pd.DataFrame:
    frame = read_table_file(path)
    if frame.empty:
        raise MonitoringError(f"{path}: the {what} file has no rows")
    return frame


def reference_side(
    model: LoadedModel, settings: Settings, policy: MonitoringPolicy, path: Path | None
) -> tuple[Side, list[str]]:
    """The reference rows: ``path``, else the champion's logged reference, else its test slice."""
    from mlflow.exceptions import MlflowException

    from forecast.registry import REFERENCE, TEST_SLICE, downloaded_artifact

    notes: list[str] = []
    if path is not None:
        frame = _read(path, "reference")
        return Side(frame, _known(frame, model.metadata), str(path), _period(frame)), notes
    try:
        with downloaded_artifact(model.run_id, REFERENCE, settings) as p:
            frame = pd.read_parquet(p)
        source = f"{model.name} v{model.version}: {REFERENCE} (every snapshot from its test cut on)"
        drift = latest_rows(frame, policy.current_days)
    except (MlflowException, OSError):
        with downloaded_artifact(model.run_id, TEST_SLICE, settings) as p:
            frame = pd.read_parquet(p)
        source = f"{model.name} v{model.version}: {TEST_SLICE}"
        drift = frame
        notes.append(
            "the champion has no logged reference (trained before monitoring existed): its test slice is "
            "used, which holds only the entities first seen in the test period, so age-like features "
            "may drift; retrain to log a reference"
        )
    return Side(drift, _known(frame, model.metadata), source, _period(drift)), notes


def current_side(
    model: LoadedModel,
    settings: Settings,
    config: TrainingConfig,
    policy: MonitoringPolicy,
    path: Path | None,
    progress: Progress,
) -> Side:
    """The current rows: ``path``, else the warehouse's latest period rebuilt point in time."""
    if path is not None:
        frame = _read(path, "current")
        return Side(frame, _known(frame, model.metadata), str(path), _period(frame))
    if not model.meta.is_warehouse:
        raise MonitoringError(
            f"model {model.name} was trained on a flat export: give the current rows with --current FILE"
        )
    from forecast.features.snapshots import LabelConfig, parse_every
    from forecast.features.source import warehouse_source
    from forecast.training.datasets import snapshot_table

    horizon = model.meta.horizon_days
    days = policy.current_days
    with warehouse_source(settings.warehouse) as src:
        try:
            end = src.data_end()
        except ValueError as exc:
            raise MonitoringError(f"{settings.warehouse}: {exc}") from exc
        # the weekly grid ends at the CRM's as-of (midnight after the data's last day), the moment
        # `score` and `flags` use by default: a deal closed on the last day is not current
        as_of = as_of_after(end)
        every = parse_every(config.snapshots.every)
        steps = int(np.ceil(pd.Timedelta(days=horizon + days) / every))
        start = as_of - steps * every
        snapshots = config.snapshots.model_copy(
            update={"date_from": start.date().isoformat(), "date_to": as_of.isoformat()}
        )
        cfg = config.model_copy(update={"snapshots": snapshots})
        progress("building the current snapshots")
        table = snapshot_table(src, cfg, LabelConfig.both(horizon), data_end=end)
    frame = table.frame
    drift = latest_rows(frame, days, as_of)
    known = _known(frame, model.metadata)
    known = latest_rows(known, days)
    label = f"warehouse {settings.warehouse} (as of {as_of.isoformat()}, data end {end.isoformat()})"
    return Side(drift, known, label, _period(drift))


def _inputs(model: LoadedModel, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Typed features (for drift) and the champion's probability of each row."""
    meta = model.meta
    features = list(meta.features)
    categorical = list(meta.categorical)
    if meta.source == "flat_export":
        prepared = model.pipeline.named_steps["prepare"].transform(frame)
        typed = typed_features(prepared, features, categorical)
        p = model.pipeline.predict_proba(frame)[:, 1] if len(frame) else np.empty(0)
        return typed, p
    typed = typed_features(frame, features, categorical)
    # judged against a label within the horizon: a small-data stage model's tail carried past what
    # the data follow is left out (models.win_horizon.read_proba). What is left is read at the days
    # the data were read (snapshots.p_win_days where the history caps the label), as the blended
    # classifier's tail up to those days is kept: both a little past the label, as before the tail
    p = np.asarray(read_proba(model.pipeline, typed), dtype=float) if len(frame) else np.empty(0)
    return typed, p


def _importance(model: LoadedModel, settings: Settings) -> list[str]:
    """The champion's features, most important first (empty when its run logged none)."""
    from mlflow.exceptions import MlflowException

    from forecast.registry import downloaded_artifact

    try:
        with downloaded_artifact(model.run_id, "evaluation/feature_importance.csv", settings) as p:
            table = pd.read_csv(p)
    except (MlflowException, OSError):
        return []
    features = [str(f) for f in table.sort_values("importance", ascending=False)["feature"]]
    return [_raw_cell(f) for f in features]


def _raw_cell(text: str) -> str:
    """Undo the CSV formula neutralisation of a cell (``'=x`` back to ``=x``)."""
    from forecast.io import neutralise_cell

    return text[1:] if text.startswith("'") and neutralise_cell(text[1:]) == text else text


@dataclass(frozen=True, slots=True)
class SideSummary:
    """One side of a monitoring run as reported: where its rows came from, how many, which period."""

    source: str
    rows: int
    period: dict[str, str | None]

    def to_dict(self) -> dict[str, Any]:
        """``source``, ``rows``, ``from`` and ``to``."""
        return {"source": self.source, "rows": self.rows, **self.period}


@dataclass(frozen=True, slots=True)
class MonitorSummary:
    """What :func:`monitor_job` found: the verdict, what it rests on, the files written, the MLflow run."""

    model_name: str
    model_version: str
    verdict: Verdict
    warnings: list[str]
    reference: SideSummary
    current: SideSummary
    n_features: int
    drift: DriftResult
    quality: dict[str, Quality | None]
    """By side (``reference``, ``current``), the champion's quality (``None``: not judged)."""
    data_quality_failures: list[str]
    policy: MonitoringPolicy
    files: dict[str, Path] = field(default_factory=dict)
    """``report_html``, ``classification_html`` (when both sides have outcomes) and ``report_json``."""
    mlflow_run_id: str | None = None

    @property
    def exit_code(self) -> int:
        """``forecast monitor``'s exit code: the verdict's."""
        return self.verdict.exit_code

    @property
    def drift_share(self) -> float:
        """The share of the features that drifted."""
        return round(len(self.drift.drifted) / max(self.n_features, 1), 6)

    def quality_metrics(self, side: str) -> dict[str, Any] | None:
        """The metrics of ``side``'s quality as reported (rounded, NaN as ``None``), if it was judged."""
        q = self.quality.get(side)
        return None if q is None else q.as_dict()["metrics"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (``--json``, and ``report.json`` without Evidently's own figures)."""
        drift = self.drift
        out: dict[str, Any] = {
            "ok": True,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "verdict": self.verdict.verdict,
            "exit_code": self.verdict.exit_code,
            "reasons": self.verdict.reasons,
            "notes": self.verdict.notes,
            "warnings": self.warnings,
            "findings": [f.__dict__ for f in self.verdict.findings],
            "reference": self.reference.to_dict(),
            "current": self.current.to_dict(),
            "drift": {
                "share": self.drift_share,
                "drifted": {k: round(v, 6) for k, v in drift.drifted.items()},
                "prediction_drift": drift.prediction_drift,
                "prediction_drifted": drift.prediction_drifted,
                "methods": {
                    "numerical": self.policy.drift.num_method,
                    "categorical": self.policy.drift.cat_method,
                },
                "scores": {k: round(v, 6) for k, v in drift.scores.items()},
            },
            "quality": {k: (None if q is None else q.as_dict()) for k, q in self.quality.items()},
            "data_quality_failures": self.data_quality_failures,
            "policy": self.policy.model_dump(),
            "files": {k: str(v) for k, v in self.files.items()},
        }
        if self.mlflow_run_id is not None:
            out["mlflow_run_id"] = self.mlflow_run_id
        return out


def _header(model: LoadedModel, summary: MonitorSummary) -> str:
    """A verdict box placed above Evidently's report (our figures, which Evidently lacks)."""
    verdict = summary.verdict
    colour = {"ok": "#2e7d32", "warn": "#ef6c00", "retrain": "#c62828"}[verdict.verdict]
    items = (
        "".join(f"<li>{html.escape(r)}</li>" for r in verdict.reasons) or "<li>no criterion reached warn</li>"
    )
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in verdict.notes)
    rows = ""
    for side in ("reference", "current"):
        m = summary.quality_metrics(side)
        if m is not None:
            rows += (
                f"<tr><td>{side}</td><td>{int(m['n']):,}</td><td>{m['roc_auc']}</td><td>{m['brier']}</td>"
                f"<td>{m['ece']}</td><td>{m['mean_p']}</td><td>{m['base_rate']}</td></tr>"
            )
    table = (
        "<table border=1 cellpadding=4><tr><th></th><th>rows with outcomes</th><th>ROC-AUC</th><th>Brier</th>"
        f"<th>ECE</th><th>mean predicted</th><th>observed rate</th></tr>{rows}</table>"
        if rows
        else ""
    )
    return (
        f'<div style="font-family:sans-serif;margin:16px;padding:12px;border:3px solid {colour}">'
        f"<h2>{html.escape(model.name)} v{model.version}: verdict "
        f'<span style="color:{colour}">{verdict.verdict.upper()}</span></h2>'
        f"<ul>{items}</ul>{f'<p>Notes:</p><ul>{notes}</ul>' if notes else ''}{table}"
        f"<p>Reference: {html.escape(summary.reference.source)}; current: "
        f"{html.escape(summary.current.source)}. Calibration by decile is in report.json.</p></div>"
    )


def _with_header(page: str, header: str) -> str:
    at = page.find("<body")
    if at < 0:
        return header + page
    close = page.find(">", at) + 1
    return page[:close] + header + page[close:]


def _log_run(model: LoadedModel, settings: Settings, summary: MonitorSummary, folder: Path) -> str:
    import mlflow

    from forecast.registry import client, ensure_experiment

    verdict = summary.verdict
    client(settings)
    exp_id = ensure_experiment(model.meta.experiment or model.name, settings)
    metrics: dict[str, float] = {
        "rows_reference": summary.reference.rows,
        "rows_current": summary.current.rows,
        "features_drifted": len(summary.drift.drifted),
        "drift_share": summary.drift_share,
        "data_quality_failures": len(summary.data_quality_failures),
    }
    if summary.drift.prediction_drift is not None:
        metrics["prediction_drift"] = summary.drift.prediction_drift
    for side in ("reference", "current"):
        for key, value in (summary.quality_metrics(side) or {}).items():
            if value is not None:
                metrics[f"{side}_{key}"] = float(value)
    for finding in verdict.findings:
        if np.isfinite(finding.value):
            metrics[f"finding_{finding.criterion}"] = float(finding.value)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"monitoring-{model.name}-v{model.version}") as run:
        mlflow.set_tags(
            {
                "kind": "monitoring",
                "model_name": model.name,
                "model_version": model.version,
                "verdict": verdict.verdict,
                "reasons": "\n".join(verdict.reasons)[:5000],
                "reference": summary.reference.source[:500],
                "current": summary.current.source[:500],
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(float(v))})
        mlflow.log_artifacts(str(folder), "monitoring")
        return str(run.info.run_id)


def monitor_job(
    settings: Settings,
    config: TrainingConfig,
    policy: MonitoringPolicy,
    *,
    reference_path: Path | None = None,
    current_path: Path | None = None,
    progress: Progress | None = None,
    model_ref: ModelRef | None = None,
) -> MonitorSummary:
    """Compare the champion's reference with the current data and give the policy's verdict.

    ``model_ref`` names the version to monitor (default: the champion of ``config.model_name``). Against
    the warehouse (no ``current_path``), a default champion must have been trained on it
    (:func:`forecast.binding.check_binding`: else exit 2 with the fix); a named one is used with a
    warning.

    Writes ``report.html`` (Evidently's drift and data summary under our verdict),
    ``classification.html`` (Evidently's classification quality, when outcomes have arrived on
    both sides) and ``report.json`` (everything, including calibration by decile) atomically under
    ``<outputs_dir>/monitoring/<model>/<UTC time>/``, and logs a ``monitoring`` run to MLflow.

    Returns:
        The summary (:class:`MonitorSummary`), with the verdict, its reasons and exit code.

    Raises:
        MonitoringError: No champion, or unusable input (empty, missing feature columns, a
            flat-export model without ``--current``).
        ModelBindingError: The default champion was trained on another warehouse.
        FileNotFoundError: No warehouse, or a missing file.
    """
    say = progress or (lambda _m: None)
    model, warning = _load_model(settings, config, model_ref, current_path)
    say("reading the reference")
    ref, notes = reference_side(model, settings, policy, reference_path)
    cur = current_side(model, settings, config, policy, current_path, say)
    if cur.drift.empty:
        raise MonitoringError(f"no current rows to monitor ({cur.source})")
    if ref.drift.empty:
        raise MonitoringError(f"no reference rows ({ref.source})")
    say("scoring both sides with the champion")
    drift, failures, ref_summary, cur_summary = _drift(model, ref, cur, policy, say)
    say("quality and calibration")
    qualities, quality_note, frames = _qualities(model, settings, ref, cur, policy)
    verdict = _verdict(model, settings, drift, qualities, quality_note, failures, policy)
    verdict.notes = notes + verdict.notes
    summary = MonitorSummary(
        model_name=model.name,
        model_version=model.version,
        verdict=verdict,
        warnings=[] if warning is None else [warning],
        reference=ref_summary,
        current=cur_summary,
        n_features=len(model.meta.features),
        drift=drift,
        quality=qualities,
        data_quality_failures=failures,
        policy=policy,
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = settings.outputs_dir / "monitoring" / model.name / stamp
    summary = _write_reports(model, summary, frames, folder, say)
    say("logging to MLflow")
    return replace(summary, mlflow_run_id=_log_run(model, settings, summary, folder))


def _load_model(
    settings: Settings, config: TrainingConfig, model_ref: ModelRef | None, current_path: Path | None
) -> tuple[LoadedModel, str | None]:
    """The model monitored (default: the champion of ``config.model_name``) and its binding warning."""
    from forecast.binding import CurrentWarehouse, check_binding, load_ref

    model_ref = model_ref or ModelRef(config.model_name, config.model_name, option=MODELS_OPTION)
    try:
        model = load_ref(model_ref, settings)
    except LookupError as exc:
        raise MonitoringError(str(exc).strip("'\"")) from exc
    current = None if current_path is not None else CurrentWarehouse.of(settings.warehouse)
    warning = check_binding(model.meta, model.name, model.version, model_ref, current)
    if warning is not None:
        get_logger("monitoring").warning(warning)
    return model, warning


def _drift(
    model: LoadedModel, ref: Side, cur: Side, policy: MonitoringPolicy, say: Progress
) -> tuple[DriftResult, list[str], SideSummary, SideSummary]:
    """Evidently's drift report and our data-quality checks on a sample of each side's rows.

    Returns:
        The drift, the data-quality failures, and each side as reported.
    """
    features = list(model.meta.features)
    categorical = [c for c in model.meta.categorical if c in features]
    ref_rows = sample_rows(ref.drift, policy.max_rows, policy.seed)
    cur_rows = sample_rows(cur.drift, policy.max_rows, policy.seed)
    try:
        ref_x, ref_p = _inputs(model, ref_rows)
    except (ValueError, KeyError) as exc:
        raise MonitoringError(f"reference {ref.source}: {str(exc).strip(chr(39))}") from exc
    try:
        cur_x, cur_p = _inputs(model, cur_rows)
    except (ValueError, KeyError) as exc:
        raise MonitoringError(f"current {cur.source}: {str(exc).strip(chr(39))}") from exc
    say("Evidently: drift and data summary")
    drift = drift_report(
        ref_x.assign(**{PREDICTION: ref_p}),
        cur_x.assign(**{PREDICTION: cur_p}),
        features=features,
        categorical=categorical,
        policy=policy.drift,
    )
    failures = data_quality_failures(ref_x, cur_x, categorical, policy.data_quality)
    sides = [SideSummary(s.source, len(rows), s.period) for s, rows in ((ref, ref_rows), (cur, cur_rows))]
    return drift, failures, sides[0], sides[1]


def _qualities(
    model: LoadedModel, settings: Settings, ref: Side, cur: Side, policy: MonitoringPolicy
) -> tuple[dict[str, Quality | None], str | None, dict[str, pd.DataFrame]]:
    """The champion's quality on each side's rows with outcomes.

    Returns:
        The quality by side (``None``: not judged), why one was not judged, and the outcomes and
        probabilities of each side judged (for Evidently's classification report).
    """
    perf = policy.performance
    qualities: dict[str, Quality | None] = {"reference": None, "current": None}
    quality_note: str | None = None
    frames: dict[str, pd.DataFrame] = {}
    # Both sides are measured on the same number of rows: ECE grows as rows get fewer (emptier
    # bins are noisier), so a large reference against a small current period would fake a rise.
    n_outcomes = min(len(ref.outcomes), len(cur.outcomes)) or max(len(ref.outcomes), len(cur.outcomes))
    # The served model was fitted on every labelled row, the reference's included: its quality
    # there is judged by the version's evaluation model, which never saw a row after its test cut
    # (the reference starts at that cut). The current rows are new to both.
    judge = {
        "reference": replace(model, pipeline=evaluation_model(model.run_id, model.pipeline, settings)),
        "current": model,
    }
    for name, side in (("reference", ref), ("current", cur)):
        rows = sample_rows(side.outcomes, min(n_outcomes, 50_000), policy.seed)
        if rows.empty:
            quality_note = quality_note or f"no {name} rows have outcomes yet"
            continue
        _, p = _inputs(judge[name], rows)
        y = rows[TARGET].to_numpy(dtype=int)
        why = judgeable(y, perf.min_rows, perf.min_positives)
        if why is not None:
            quality_note = quality_note or f"quality not judged on the {name} rows: {why}"
            continue
        qualities[name] = quality(y, p, perf.n_bins)
        frames[name] = pd.DataFrame({TARGET: y, PREDICTION: p})
    return qualities, quality_note, frames


def _verdict(
    model: LoadedModel,
    settings: Settings,
    drift: DriftResult,
    qualities: dict[str, Quality | None],
    quality_note: str | None,
    failures: list[str],
    policy: MonitoringPolicy,
) -> Verdict:
    """The policy's verdict on what was measured."""
    features = list(model.meta.features)
    reference, current = qualities["reference"], qualities["current"]
    figures = Figures(
        n_features=len(features),
        drifted=drift.drifted,
        top_features=[f for f in _importance(model, settings) if f in features],
        prediction_drift=drift.prediction_drift,
        reference_quality=None if reference is None else reference.metrics,
        current_quality=None if current is None else current.metrics,
        quality_note=quality_note,
        data_quality_failures=failures,
    )
    return decide(figures, policy)


def _write_reports(
    model: LoadedModel, summary: MonitorSummary, frames: dict[str, pd.DataFrame], folder: Path, say: Progress
) -> MonitorSummary:
    """Write ``report.html``, ``classification.html`` (outcomes on both sides) and ``report.json``.

    Returns:
        ``summary`` with the files written.
    """
    policy = summary.policy
    files: dict[str, Path] = {"report_html": folder / "report.html"}
    write_text(files["report_html"], _with_header(summary.drift.html, _header(model, summary)))
    if len(frames) == 2:
        say("Evidently: classification quality")
        page, evidently_quality = classification_report(
            sample_rows(frames["reference"], policy.max_rows, policy.seed),
            sample_rows(frames["current"], policy.max_rows, policy.seed),
        )
        files["classification_html"] = folder / "classification.html"
        write_text(files["classification_html"], page)
    else:
        evidently_quality = None
    files["report_json"] = folder / "report.json"
    summary = replace(summary, files=files)
    evidently = {"drift": summary.drift.evidently, "classification": evidently_quality}
    document = {**summary.to_dict(), "evidently": evidently}
    write_text(files["report_json"], json.dumps(document, indent=2, default=str) + "\n")
    return summary


@dataclass(frozen=True, slots=True)
class RetrainSummary:
    """What :func:`retrain_job` did: the challenger trained and the gate's decision on it."""

    training: TrainingSummary
    promoted: bool
    reason: str
    exit_code: int
    """0 promoted, 3 refused by the gate (:data:`RETRAIN_EXIT`)."""

    def to_dict(self) -> dict[str, Any]:
        """The training summary plus ``promoted``, ``reason`` and ``exit_code``."""
        return {
            **self.training.to_dict(),
            "promoted": self.promoted,
            "reason": self.reason,
            "exit_code": self.exit_code,
        }


def retrain_job(
    settings: Settings, config: TrainingConfig, progress: Progress | None = None
) -> RetrainSummary:
    """Train a challenger on the warehouse as it is now, apply the promotion gate, log why.

    The training run is tagged ``trigger=retrain`` and, once the gate has decided,
    ``promoted`` and ``promotion_reason``; the gate's own ``promotion`` run holds both models'
    metrics.

    Returns:
        The training summary, ``promoted``, ``reason`` and ``exit_code`` (0 promoted, 3 refused by
        the gate).

    Raises:
        InsufficientDataError: Too little labelled data to train.
        FileNotFoundError: No warehouse.
    """
    from forecast.registry import client
    from forecast.training.job import train_model_job

    summary = train_model_job(
        settings, config, promote_after=True, progress=progress, tags={"trigger": "retrain"}
    )
    decision = summary.promotion
    assert decision is not None  # promote_after=True
    promoted = bool(decision.promoted)
    c = client(settings)
    c.set_tag(summary.run_id, "promoted", str(promoted))
    c.set_tag(summary.run_id, "promotion_reason", str(decision.reason)[:5000])
    return RetrainSummary(
        training=summary,
        promoted=promoted,
        reason=decision.reason,
        exit_code=RETRAIN_EXIT["promoted" if promoted else "refused"],
    )
