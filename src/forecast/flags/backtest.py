"""Backtest of the flags: were the flagged deals and leads the ones lost in the following H days?

For as_of dates every ``every`` (default 14 days) between ``--from`` and ``--to``, the open
entities are flagged exactly as ``forecast flags`` would have flagged them then (history cut at
as_of; p_churn from a churn model trained only on labels known at ``--from``). Against the actual
outcome in the H days after each as_of (lost / disqualified, or with ``target = churn`` also gone
silent), pooled over the dates:

- **flags**: the entities carrying a flag of an alert severity (``alert_severities``);
- **baseline**: the fixed rule "no activity for the longest time", taking at each date as many
  entities as the flags took (the top-k by days since the last touch: same flag rate);
- **p_churn**: the top-k by p_churn at the same rate;
- the fixed rule "no activity for ``baseline_days`` days" at its own rate, and every flag alone.

Dates whose horizon passes the data's end are left out (their outcome is not known yet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecast.evaluate import expected_calibration_error
from forecast.features.build import Entity, build_feature_table
from forecast.features.snapshots import LabelConfig
from forecast.features.source import FeatureSource
from forecast.flags.compute import ChurnScorer, churn_probability, flag_snapshot
from forecast.flags.config import FlagsConfig
from forecast.flags.history import History, load_history
from forecast.flags.rules import FLAG_ORDER

TARGETS: dict[str, dict[str, str]] = {
    "lost": {"opportunity": "label_lost_within_h", "lead": "label_disqualified_within_h"},
    "churn": {"opportunity": "label_churn", "lead": "label_churn"},
}
"""Label column of each backtest target per entity."""


def confusion_metrics(flagged: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Flag rate, precision, recall, F1 and lift (precision over the base rate) of a flag set."""
    flagged, y = np.asarray(flagged, dtype=bool), np.asarray(y, dtype=bool)
    n, k, pos = len(y), int(flagged.sum()), int(y.sum())
    tp = int((flagged & y).sum())
    precision = tp / k if k else float("nan")
    recall = tp / pos if pos else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if k and pos and (precision + recall) > 0 else 0.0
    base = pos / n if n else float("nan")
    return {
        "rows": n,
        "flagged": k,
        "flag_rate": k / n if n else float("nan"),
        "positives": pos,
        "base_rate": base,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "lift": precision / base if k and base else float("nan"),
    }


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` highest scores (ties by position: deterministic)."""
    mask = np.zeros(len(score), dtype=bool)
    if k > 0:
        order = np.argsort(-np.nan_to_num(np.asarray(score, dtype=float), nan=-np.inf), kind="stable")
        mask[order[:k]] = True
    return mask


@dataclass
class BacktestResult:
    """Backtest of one entity.

    Attributes:
        entity: ``lead`` or ``opportunity``.
        table: One row per method (flags, baseline, p_churn, the fixed rule) with its metrics.
        per_flag: One row per flag with its own metrics.
        rows: Per (entity, as_of): target, at_risk, baseline, p_churn, silence.
        p_churn_ece: ECE of p_churn against the churn label on the backtest rows.
        notes: What was left out and why.
    """

    entity: str
    table: pd.DataFrame
    per_flag: pd.DataFrame
    rows: pd.DataFrame
    p_churn_ece: float | None
    notes: list[str] = field(default_factory=list)
    dates: list[pd.Timestamp] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            out = frame.round(4).astype(object).where(frame.notna(), None)
            return [{str(k): v for k, v in r.items()} for r in out.to_dict("records")]

        return {
            "entity": self.entity,
            "as_of_dates": len(self.dates),
            "from": self.dates[0].isoformat() if self.dates else None,
            "to": self.dates[-1].isoformat() if self.dates else None,
            "methods": records(self.table),
            "per_flag": records(self.per_flag),
            "p_churn_ece": None if self.p_churn_ece is None else round(self.p_churn_ece, 4),
            "notes": self.notes,
        }


def backtest_dates(
    start: pd.Timestamp, end: pd.Timestamp, every: pd.Timedelta, horizon_days: int, data_end: pd.Timestamp
) -> tuple[list[pd.Timestamp], list[str]]:
    """The as_of dates whose outcome is known (as_of + H within the data), and a note on the others."""
    from forecast.features.snapshots import as_of_grid

    grid = as_of_grid(start, end, every)
    known = [d for d in grid if d + pd.Timedelta(days=horizon_days) <= data_end]
    notes = []
    if len(known) < len(grid):
        notes.append(
            f"{len(grid) - len(known)} as_of date(s) after "
            f"{(data_end - pd.Timedelta(days=horizon_days)).date()} "
            f"left out: their {horizon_days}-day outcome is not in the data yet"
        )
    if not known:
        raise ValueError(
            f"no as_of date between {start.date()} and {end.date()} has a known {horizon_days}-day outcome "
            f"(the data ends {data_end.date()})"
        )
    return known, notes


def run_backtest(
    src: FeatureSource,
    entity: Entity,
    dates: Sequence[pd.Timestamp],
    config: FlagsConfig,
    *,
    scorer: ChurnScorer | None = None,
    target: str | None = None,
    data_end: pd.Timestamp | None = None,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Flag the entities open at each date and compare with what happened in the next H days.

    Args:
        src: The CRM.
        entity: ``lead`` or ``opportunity``.
        dates: as_of dates whose outcome is known.
        config: Flags configuration (its ``horizon_days`` is H).
        scorer: The churn model (trained on data before the first date); none: no p_churn.
        target: ``lost`` or ``churn`` (default: the config's).
        data_end: The data's end (default: the latest event).
        progress: Called with what is being done.
    """
    say = progress or (lambda _m: None)
    h = config.horizon_days
    label = TARGETS[target or config.backtest.target][entity]
    say(f"{entity} snapshots")
    table = build_feature_table(src, entity, list(dates), LabelConfig.both(h), data_end=data_end)
    history = load_history(src, entity, config)
    parts: list[pd.DataFrame] = []
    flag_parts: list[pd.DataFrame] = []
    for as_of_key, snap in table.frame.groupby("as_of", sort=True):
        as_of = pd.Timestamp(str(as_of_key))
        say(f"{entity} flags at {as_of.date()}")
        part, flags = _flag_date(
            snap.reset_index(drop=True),
            as_of,
            history,
            config,
            scorer,
            table.id_column,
            label,
        )
        parts.append(part)
        flag_parts.append(flags)
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if rows.empty:
        raise ValueError(f"no {entity} was open at any backtest date")
    y = rows["y"].to_numpy(dtype=bool)
    flags_all = pd.concat(flag_parts, ignore_index=True) if flag_parts else pd.DataFrame()
    ece = None
    if scorer is not None:
        ece = expected_calibration_error(rows["y_churn"].to_numpy(dtype=int), rows["p_churn"].to_numpy())
    return BacktestResult(
        entity=entity,
        table=pd.DataFrame(
            [
                {"method": name, "what": what, **confusion_metrics(mask.to_numpy(dtype=bool), y)}
                for name, what, mask in _methods(rows, config, scorer is not None)
            ]
        ),
        per_flag=pd.DataFrame(_per_flag(flags_all, y, config)),
        rows=rows,
        p_churn_ece=ece,
        notes=[],
        dates=[pd.Timestamp(d) for d in sorted(rows["as_of"].unique())],
    )


def _flag_date(
    snap: pd.DataFrame,
    as_of: pd.Timestamp,
    history: History,
    config: FlagsConfig,
    scorer: ChurnScorer | None,
    id_column: str,
    label: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The flags at one date, beside the baselines' picks and the outcome, one row per open entity.

    Args:
        snap: The entities open at ``as_of`` (their feature snapshots and labels).
        as_of: The date.
        history: The touches, gaps and stage stays (:func:`~forecast.flags.history.load_history`).
        config: Flags configuration.
        scorer: The churn model, or ``None`` (no p_churn).
        id_column: The entity id column.
        label: The outcome column.

    Returns:
        The rows (id, as_of, outcomes, each method's pick) and the flags raised (row, flag, outcome).
    """
    p = reasons = None
    if scorer is not None:
        # Reasons are not needed to count hits (and TreeSHAP is the expensive part).
        p, reasons = churn_probability(scorer, snap, threshold=None, reasons=False)
    result = flag_snapshot(history, snap, as_of, config, p_churn=p, churn_reason=reasons)
    silence = pd.to_numeric(snap["act_days_since_last_touch"]).to_numpy(dtype=float)
    at_risk = result.summary["at_risk"].to_numpy(dtype=bool)
    k = int(at_risk.sum())
    part = pd.DataFrame(
        {
            "id": snap[id_column].to_numpy(),
            "as_of": as_of,
            "y": snap[label].astype(bool).to_numpy(),
            "y_churn": snap["label_churn"].astype(bool).to_numpy(),
            "at_risk": at_risk,
            "baseline": top_k(silence, k),
            "rule_fixed": silence >= config.backtest.baseline_days,
            "silence": silence,
            "p_churn": np.nan if p is None else p,
            "p_churn_top_k": top_k(p, k) if p is not None else False,
        }
    )
    flags = result.flags[["row", "flag"]].copy()
    flags["y"] = part["y"].to_numpy()[flags["row"].to_numpy()]
    flags["as_of"] = as_of
    return part, flags


def _methods(rows: pd.DataFrame, config: FlagsConfig, scored: bool) -> list[tuple[str, str, pd.Series]]:
    """The methods compared: the flags, the baselines at the flags' rate, p_churn's top, the fixed rule.

    Args:
        rows: The backtest's rows (:func:`_flag_date`).
        config: Flags configuration.
        scored: Whether a churn model scored the rows.

    Returns:
        Each method's name, what it is in words, and the rows it picks.
    """
    methods = [
        ("flags", "entities with a flag of severity " + "/".join(config.alert_severities), rows["at_risk"]),
        (
            "baseline_no_activity_top_k",
            "longest without activity, as many as the flags (fixed 'no activity' rule at the same rate)",
            rows["baseline"],
        ),
    ]
    if scored:
        methods.append(("p_churn_top_k", "highest p_churn, as many as the flags", rows["p_churn_top_k"]))
    methods.append(
        (
            f"rule_no_activity_{int(config.backtest.baseline_days)}d",
            f"no activity for {config.backtest.baseline_days:g} days or more (its own rate)",
            rows["rule_fixed"],
        )
    )
    return methods


def _per_flag(flags_all: pd.DataFrame, y: np.ndarray, config: FlagsConfig) -> list[dict[str, Any]]:
    """Rate, precision, recall, F1 and lift of each flag raised.

    Args:
        flags_all: Every flag raised (row, flag, outcome, as_of).
        y: The outcome of every backtest row.
        config: Flags configuration (each flag's severity).
    """
    n = len(y)
    per_flag = []
    for flag in FLAG_ORDER:
        sub = flags_all[flags_all["flag"] == flag] if not flags_all.empty else flags_all
        if sub.empty:
            continue
        k, tp = len(sub), int(sub["y"].sum())
        precision = tp / k
        recall = tp / max(int(y.sum()), 1)
        per_flag.append(
            {
                "flag": flag,
                "severity": config.severity_of(flag),
                "flag_rate": k / n,
                "precision": precision,
                "recall": recall,
                "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
                "lift": precision / float(y.mean()) if y.mean() else float("nan"),
            }
        )
    return per_flag


def train_scorer_before(
    src: FeatureSource,
    train_config: Any,
    cut: pd.Timestamp,
    horizon_days: int,
    progress: Callable[[str], None] | None = None,
) -> tuple[ChurnScorer, dict[str, Any]]:
    """Train the churn model with the shared machinery on what was known at ``cut`` only.

    Snapshots run up to ``cut`` and their labels are censored by date at ``cut`` (as_of + H after
    it: unknown), so no outcome after ``cut`` reaches the model.

    Args:
        src: The CRM.
        train_config: The churn model's :class:`~forecast.models.config.TrainingConfig`.
        cut: The backtest's first date.
        horizon_days: H (overrides the config's horizon so model and flags agree).
        progress: Called with what is being done.

    Returns:
        The scorer and the training summary (metrics, baselines).
    """
    from forecast.training.binary import train_binary
    from forecast.training.datasets import snapshot_table, table_input

    cfg = train_config.model_copy(deep=True)
    cfg.snapshots.horizon_days = horizon_days
    cfg.snapshots.date_to = cut.isoformat()
    if progress is not None:
        progress(f"training {cfg.model_name} on data before {cut.date()}")
    table = snapshot_table(src, cfg, LabelConfig.both(horizon_days), data_end=cut)
    data = table_input(table, cfg.label)
    result = train_binary(data, cfg)
    scorer = ChurnScorer(
        pipeline=result.pipeline,
        features=data.features,
        descriptions=data.descriptions,
        categorical=data.categorical,
        name=cfg.model_name,
        version=f"backtest (trained before {cut.date()})",
    )
    return scorer, result.summary()
