"""Flag jobs: the orchestration behind ``forecast flags``, ``forecast backtest flags`` and scores.

The flag columns of ``forecast score`` come from here too. The warehouse and MLflow stay at these
edges; the domain code (rules, silence, backtest) is pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.binding import CurrentWarehouse, ModelRef, resolve
from forecast.config import Settings, config_file
from forecast.features.build import Entity, build_feature_table
from forecast.features.snapshots import LabelConfig, parse_every
from forecast.features.source import FeatureSource, warehouse_source
from forecast.flags.backtest import BacktestResult, backtest_dates, run_backtest, train_scorer_before
from forecast.flags.compute import ID_COLUMN, ChurnScorer, availability, churn_probability, flag_snapshot
from forecast.flags.config import SEVERITY_RANK, FlagsConfig
from forecast.flags.history import load_history
from forecast.flags.rules import FLAG_ORDER, skipped_flags
from forecast.models.names import CHURN_RISK, CHURN_RISK_LEADS
from forecast.timeutil import resolve_as_of

Progress = Callable[[str], None]
ENTITY_WORD = {"opportunity": "deal", "lead": "lead"}
OUTPUT_COLUMNS = [
    "entity",
    "id",
    "as_of",
    "flag",
    "severity",
    "evidence",
    "suggested_action",
    "decision",
    "value",
    "threshold",
    "p_churn",
]


def load_flags_config(path: Path | None = None, settings: Settings | None = None) -> FlagsConfig:
    """The flags configuration: ``path``, else ``<config_dir>/flags.yaml``, else built-in defaults.

    Args:
        path: An explicit file (``--config``).
        settings: Settings whose ``config_dir`` holds ``flags.yaml`` (default: the environment's).
    """
    path = path or config_file("flags.yaml", settings)
    return FlagsConfig.from_yaml(path) if path.is_file() else FlagsConfig()


CHURN_ROLES: dict[Entity, str] = {"opportunity": CHURN_RISK, "lead": CHURN_RISK_LEADS}
"""The ``--models`` role of each entity's churn model."""


def churn_ref(entity: Entity, config: FlagsConfig, ref: ModelRef | None = None) -> ModelRef:
    """``ref``, else the default churn model of ``entity`` (``training/flags.yaml``'s champion)."""
    if ref is not None:
        return ref
    name = config.churn_risk.deal_model if entity == "opportunity" else config.churn_risk.lead_model
    return ModelRef(CHURN_ROLES[entity], name, option="--churn-model")


def champion_scorer(
    entity: Entity,
    settings: Settings,
    config: FlagsConfig,
    ref: ModelRef | None = None,
    current: CurrentWarehouse | None = None,
) -> tuple[ChurnScorer | None, str, list[str]]:
    """The churn model of ``entity`` as a scorer, or ``None`` with the reason; and the warnings.

    Args:
        entity: ``lead`` or ``opportunity``.
        settings: Where the registry is.
        config: Flags configuration (the default model names).
        ref: The model to use (default: the champion of the configured churn model).
        current: The warehouse flagged (its models must be bound to it unless named explicitly).

    Raises:
        ModelBindingError: The default champion was trained on another warehouse.
        LookupError: An explicitly named model does not exist.
    """
    ref = churn_ref(entity, config, ref)
    try:
        model, warnings = resolve(ref, settings, current)
    except LookupError:
        if ref.explicit:
            raise
        return None, f"no {ref.name} champion: p_churn and the churn_risk flag are left out", []
    meta = model.meta
    if meta.entity != entity or not meta.is_warehouse:
        return (
            None,
            f"{ref.name} v{model.version} is not a warehouse {entity} model: p_churn left out",
            warnings,
        )
    scorer = ChurnScorer(
        pipeline=model.pipeline,
        features=list(meta.features),
        descriptions=dict(meta.descriptions),
        categorical=list(meta.categorical),
        name=model.name,
        version=model.version,
    )
    return scorer, f"p_churn from {model.name} v{model.version}", warnings


def _flags_of(
    src: FeatureSource,
    entity: Entity,
    frame: pd.DataFrame,
    as_of: pd.Timestamp,
    config: FlagsConfig,
    scorer: ChurnScorer | None,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray | None, dict[str, str]]:
    history = load_history(src, entity, config)
    p = reasons = None
    if scorer is not None and len(frame):
        p, reasons = churn_probability(scorer, frame, threshold=config.churn_threshold(entity))
    result = flag_snapshot(history, frame, as_of, config, p_churn=p, churn_reason=reasons)
    return result.flags, result.summary, p, skipped_flags(entity, config, availability(history))


@dataclass(frozen=True, slots=True)
class EntityFlags:
    """The flags of one entity's open records (deals or leads)."""

    open: int
    at_risk: int
    flagged: int
    """Open records with any flag."""
    by_flag: dict[str, int]
    skipped_flags: dict[str, str]
    """Flags not evaluated, with why (the CRM lacks what they need)."""
    churn_model: str
    """Which churn model gave ``p_churn``, or why there is none."""
    mean_p_churn: float | None

    def to_dict(self) -> dict[str, Any]:
        """The counts by name, in field order."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FlagsSummary:
    """What :func:`flags_job` found: per entity the counts, the most urgent flags, the output file."""

    as_of: pd.Timestamp
    warnings: list[str]
    horizon_days: int
    entities: dict[str, EntityFlags]
    """By entity word (``deal``, ``lead``)."""
    rows: int
    """Flags in all (one row per entity and flag)."""
    output: Path | None
    top: list[dict[str, Any]]
    """The most urgent flags, one record each."""

    def to_dict(self) -> dict[str, Any]:
        """The summary as ``--json`` prints it."""
        return {
            "ok": True,
            "as_of": self.as_of.isoformat(),
            "warnings": self.warnings,
            "horizon_days": self.horizon_days,
            "entities": {k: v.to_dict() for k, v in self.entities.items()},
            "rows": self.rows,
            "output": None if self.output is None else str(self.output),
            "top": self.top,
        }


def flags_job(
    settings: Settings,
    *,
    as_of: pd.Timestamp | None,
    entities: list[Entity],
    config: FlagsConfig,
    output: Path | None = None,
    limit: int = 20,
    progress: Progress | None = None,
    churn_models: dict[Entity, ModelRef] | None = None,
) -> FlagsSummary:
    """Flag the deals and leads open at ``as_of`` (default: midnight after the data's last day).

    ``churn_models`` name the churn model of an entity (default: its champion, which must have been
    trained on this warehouse: :func:`forecast.binding.check_binding`).

    Returns:
        Per entity: open count, at-risk count, counts per flag, skipped flags and notes; the most
        urgent ``limit`` flags; the output file (one row per entity and flag) when given.
    """
    say = progress or (lambda _m: None)
    rows: list[pd.DataFrame] = []
    per_entity: dict[str, EntityFlags] = {}
    current = CurrentWarehouse.of(settings.warehouse)
    named = churn_models or {}
    scorers = {e: champion_scorer(e, settings, config, named.get(e), current) for e in entities}
    with warehouse_source(settings.warehouse) as src:
        when = resolve_as_of(as_of, src.default_as_of)
        for entity in entities:
            scorer, note, _warned = scorers[entity]
            out, per_entity[ENTITY_WORD[entity]] = _flag_entity(src, entity, when, config, scorer, note, say)
            rows.append(out)
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=OUTPUT_COLUMNS)
    if output is not None:
        _write(table, output)
    urgent = table.assign(
        _s=-table["severity"].map(SEVERITY_RANK),
        _p=-table["p_churn"].fillna(0.0),
        _v=-table["value"].fillna(0),
    ).sort_values(["_s", "_p", "_v"], kind="stable")
    return FlagsSummary(
        as_of=when,
        warnings=[w for e in entities for w in scorers[e][2]],
        horizon_days=config.horizon_days,
        entities=per_entity,
        rows=len(table),
        output=output,
        top=_records(urgent.drop(columns=["_s", "_p", "_v"]).head(limit)),
    )


def _flag_entity(
    src: FeatureSource,
    entity: Entity,
    when: pd.Timestamp,
    config: FlagsConfig,
    scorer: ChurnScorer | None,
    note: str,
    say: Progress,
) -> tuple[pd.DataFrame, EntityFlags]:
    """The flags of ``entity``'s records open at ``when``: one row per record and flag, and the counts."""
    say(f"{ENTITY_WORD[entity]} snapshots")
    frame = build_feature_table(src, entity, [when], LabelConfig.both(config.horizon_days)).frame
    say(f"{ENTITY_WORD[entity]} flags")
    flags, summary, p, skipped = _flags_of(src, entity, frame, when, config, scorer)
    ids = frame[ID_COLUMN[entity]].to_numpy()
    out = flags.assign(
        entity=ENTITY_WORD[entity],
        id=ids[flags["row"].to_numpy()] if len(flags) else [],
        as_of=when,
        p_churn=np.round(p[flags["row"].to_numpy()], 6) if p is not None and len(flags) else np.nan,
    )
    counts = EntityFlags(
        open=len(frame),
        at_risk=int(summary["at_risk"].sum()),
        flagged=int((summary["n_flags"] > 0).sum()),
        by_flag={f: int((flags["flag"] == f).sum()) for f in FLAG_ORDER if (flags["flag"] == f).any()},
        skipped_flags=skipped,
        churn_model=note,
        mean_p_churn=None if p is None or not len(p) else round(float(np.mean(p)), 4),
    )
    return out[OUTPUT_COLUMNS], counts


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.astype(object).where(frame.notna(), None)
    return [
        {str(k): (v.isoformat() if isinstance(v, pd.Timestamp) else v) for k, v in r.items()}
        for r in out.to_dict("records")
    ]


def _write(frame: pd.DataFrame, path: Path) -> None:
    from forecast.io import write_frame

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ValueError(f"{path}: output must end in .csv or .parquet")
    write_frame(frame, path, "csv" if suffix == ".csv" else "parquet")


def flag_columns(
    settings: Settings,
    features: pd.DataFrame,
    entity: Entity,
    as_of: pd.Timestamp,
    config: FlagsConfig | None = None,
    churn_model: ModelRef | None = None,
    current: CurrentWarehouse | None = None,
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Flag columns for scored rows (``forecast score deals|leads`` from the warehouse).

    Args:
        settings: Where the warehouse and the registry are.
        features: The scored rows' snapshot features (one as_of).
        entity: ``lead`` or ``opportunity``.
        as_of: Their as_of.
        config: Flags configuration (default: ``<config_dir>/flags.yaml``).
        churn_model: The churn model (default: the entity's churn champion, see :func:`champion_scorer`).
        current: The scored warehouse (default: ``settings.warehouse``).

    Returns:
        Columns aligned with ``features`` — ``p_churn`` (when a churn model is found),
        ``at_risk``, ``flags``, ``n_flags``, ``top_flag``, ``flag_severity``, ``flag_evidence``,
        ``suggested_action`` —, notes and warnings (a churn model named from another warehouse).
    """
    config = config or load_flags_config(settings=settings)
    current = current or CurrentWarehouse.of(settings.warehouse)
    scorer, note, warnings = champion_scorer(entity, settings, config, churn_model, current)
    with warehouse_source(settings.warehouse) as src:
        _flags, summary, p, _skipped = _flags_of(
            src, entity, features.reset_index(drop=True), as_of, config, scorer
        )
    out = pd.DataFrame(index=range(len(features)))
    if p is not None:
        out["p_churn"] = np.round(p, 6)
        out["churn_model_version"] = scorer.version if scorer is not None else None
    out["at_risk"] = summary["at_risk"].to_numpy()
    out["flags"] = summary["flags"].to_numpy()
    out["n_flags"] = summary["n_flags"].to_numpy()
    out["top_flag"] = summary["top_flag"].to_numpy()
    out["flag_severity"] = summary["severity"].to_numpy()
    out["flag_evidence"] = summary["evidence"].to_numpy()
    out["suggested_action"] = summary["suggested_action"].to_numpy()
    return out.set_index(features.index), [note], warnings


@dataclass(frozen=True, slots=True)
class FlagsBacktest:
    """What :func:`backtest_job` measured: each entity's backtest, its churn model's training, the run."""

    date_from: pd.Timestamp
    date_to: pd.Timestamp
    horizon_days: int
    target: str
    alert_severities: list[str]
    results: list[BacktestResult]
    churn_training: dict[str, Any]
    """By entity word: the kind, metrics, splits and notes of the churn model trained before the start."""
    run_id: str | None = None
    """The MLflow run (``None``: not logged)."""

    def to_dict(self) -> dict[str, Any]:
        """The figures as ``--json`` prints them (and the run's ``backtest.json``, without ``run_id``)."""
        out: dict[str, Any] = {
            "ok": True,
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "horizon_days": self.horizon_days,
            "target": self.target,
            "alert_severities": self.alert_severities,
            "results": {ENTITY_WORD[r.entity]: r.as_dict() for r in self.results},
            "churn_training": self.churn_training,
        }
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out


def backtest_job(
    settings: Settings,
    *,
    date_from: pd.Timestamp,
    date_to: pd.Timestamp,
    entities: list[Entity],
    config: FlagsConfig,
    target: str | None = None,
    log_to_mlflow: bool = True,
    progress: Progress | None = None,
) -> FlagsBacktest:
    """Backtest the flags between two dates, log the run to MLflow and return the figures."""
    from forecast.models.config import TrainingConfig

    say = progress or (lambda _m: None)
    h = config.horizon_days
    results: list[BacktestResult] = []
    training: dict[str, Any] = {}
    with warehouse_source(settings.warehouse) as src:
        end = src.data_end()
        dates, notes = backtest_dates(date_from, date_to, parse_every(config.backtest.every), h, end)
        for entity in entities:
            name = config.backtest.deal_config if entity == "opportunity" else config.backtest.lead_config
            train_cfg = TrainingConfig.from_yaml(config_file(name, settings))
            scorer: ChurnScorer | None = None
            entity_notes: list[str] = []
            try:
                scorer, summary = train_scorer_before(src, train_cfg, dates[0], h, progress=say)
                training[ENTITY_WORD[entity]] = {
                    k: summary[k] for k in ("model_kind", "metrics", "splits", "notes") if k in summary
                }
            except ValueError as exc:  # too little labelled data before --from
                entity_notes.append(f"no p_churn: {exc}")
            result = run_backtest(
                src, entity, dates, config, scorer=scorer, target=target, data_end=end, progress=say
            )
            result.notes = notes + entity_notes + result.notes
            results.append(result)
    payload = FlagsBacktest(
        date_from=date_from,
        date_to=date_to,
        horizon_days=h,
        target=target or config.backtest.target,
        alert_severities=list(config.alert_severities),
        results=results,
        churn_training=training,
    )
    if log_to_mlflow:
        payload = replace(payload, run_id=_log_backtest(settings, payload.to_dict(), config))
    return payload


def _log_backtest(settings: Settings, payload: dict[str, Any], config: FlagsConfig) -> str:
    import json
    import tempfile

    import mlflow

    from forecast.registry import client, ensure_experiment

    client(settings)
    experiment = ensure_experiment("flags_backtest", settings)
    with mlflow.start_run(
        experiment_id=experiment, run_name=f"flags {payload['from'][:10]}..{payload['to'][:10]}"
    ) as run:
        mlflow.log_params(
            {
                "from": payload["from"],
                "to": payload["to"],
                "horizon_days": payload["horizon_days"],
                "target": payload["target"],
                "alert_severities": ",".join(config.alert_severities),
                "churn_threshold": config.churn_risk.threshold,
                "churn_lead_threshold": config.churn_risk.lead_threshold,
                "baseline_days": config.backtest.baseline_days,
            }
        )
        for word, result in payload["results"].items():
            for method in result["methods"]:
                for metric in ("flag_rate", "precision", "recall", "f1", "lift"):
                    value = method.get(metric)
                    if value is not None:
                        mlflow.log_metric(f"{word}_{method['method']}_{metric}", float(value))
            if result.get("p_churn_ece") is not None:
                mlflow.log_metric(f"{word}_p_churn_ece", float(result["p_churn_ece"]))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "backtest.json"
            path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
            mlflow.log_artifact(str(path))
            cfg = Path(tmp) / "flags.json"
            cfg.write_text(config.model_dump_json(indent=2), encoding="utf-8")
            mlflow.log_artifact(str(cfg))
        return str(run.info.run_id)
