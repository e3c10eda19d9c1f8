"""Flags of one snapshot: config thresholds -> which entity carries which flag, with its evidence.

Pure: a snapshot feature frame (``forecast.features.build``) plus the signals learned from history
(:mod:`forecast.flags.history`, :mod:`forecast.flags.silence`) in, one row per (entity, flag)
out. A flag whose inputs the source does not record (no activities, no stage history, no expected
close dates — the Maven sample) is not evaluated; :func:`skipped_flags` says which and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.flags.actions import action_for
from forecast.flags.config import FlagsConfig

FLAG_ORDER = [
    "churn_risk",
    "going_cold",
    "ghosted",
    "no_activity",
    "close_overdue",
    "stalled_in_stage",
    "close_date_pushed",
    "amount_decreased",
    "no_next_step",
    "dormant",
]
"""Every flag; ties of severity are broken in this order when choosing an entity's top flag."""
DEAL_ONLY = {"close_overdue", "stalled_in_stage", "close_date_pushed", "amount_decreased"}
FLAG_COLUMNS = [
    "row",
    "flag",
    "severity",
    "value",
    "threshold",
    "evidence",
    "suggested_action",
    "decision",
]


@dataclass(frozen=True)
class Availability:
    """What the source records (a flag needing something absent is skipped, not guessed)."""

    activities: bool = True
    stage_history: bool = True
    close_dates: bool = True


def skipped_flags(entity: str, config: FlagsConfig, available: Availability) -> dict[str, str]:
    """Enabled flags that cannot be evaluated on this source, with the reason."""
    out: dict[str, str] = {}
    needs_activity = ["going_cold", "dormant", "ghosted", "no_activity", "no_next_step"]
    for flag in needs_activity:
        if not available.activities and _enabled(flag, config):
            out[flag] = "the source records no activities"
    if entity == "opportunity":
        for flag in ("stalled_in_stage", "close_date_pushed", "amount_decreased"):
            if not available.stage_history and _enabled(flag, config):
                out[flag] = "the source records no stage history"
        if not available.close_dates and _enabled("close_overdue", config):
            out["close_overdue"] = "the source records no expected close dates"
    return out


def _enabled(flag: str, config: FlagsConfig) -> bool:
    if flag in ("going_cold", "dormant"):
        return config.going_cold.enabled
    if flag == "churn_risk":
        return config.churn_risk.enabled
    return bool(getattr(config.rules, flag).enabled)


def _days(x: float) -> str:
    if not np.isfinite(float(x)):
        return "an unknown number of days"
    n = round(float(x))
    return "1 day" if n == 1 else f"{n} days"


def _times(n: float) -> str:
    k = round(float(n))
    return "1 time" if k == 1 else f"{k} times"


def _num(values: pd.Series | np.ndarray) -> np.ndarray:
    return pd.to_numeric(pd.Series(np.asarray(values, dtype=object)), errors="coerce").to_numpy(dtype=float)


@dataclass(frozen=True, eq=False)
class RuleContext:
    """What every rule reads: one snapshot, its signals and the arrays several rules share.

    Attributes:
        frame: Snapshot features (see :func:`evaluate_flags`).
        signals: Signals aligned with ``frame``.
        entity: ``lead`` or ``opportunity``.
        config: Thresholds and severities.
        noun: ``deals`` or ``leads``, for the evidence.
        silence: Days since the last touch (of a record never touched: its age).
        booked: Whether a next step is booked.
        cold: Silent past the learned cadence with nothing booked (all false if ``going_cold`` is off).
        dormant: Cold and silent past the dormant gap; such records get no other silence flag.
        dormant_days: The dormant gap of each row (``nan`` where unknown).
    """

    frame: pd.DataFrame
    signals: pd.DataFrame
    entity: str
    config: FlagsConfig
    noun: str
    silence: np.ndarray
    booked: np.ndarray
    cold: np.ndarray
    dormant: np.ndarray
    dormant_days: np.ndarray

    @property
    def n(self) -> int:
        """Number of rows of the snapshot."""
        return len(self.frame)


@dataclass(frozen=True, eq=False)
class Raised:
    """What one rule found: which rows, the measured value, the threshold and the evidence in words.

    Attributes:
        mask: Rows that carry the flag.
        value: The measured number of every row.
        threshold: The threshold, one per row or one for all.
        words: The evidence of each flagged row, in row order.
    """

    mask: np.ndarray
    value: np.ndarray
    threshold: np.ndarray | float
    words: list[str]


Rule = Callable[[RuleContext], Raised | None]
"""A rule: the context in, what it raised out (``None`` when its input is absent)."""


def _churn_risk(ctx: RuleContext) -> Raised | None:
    """The churn model's probability at or above the entity's threshold."""
    signals, n = ctx.signals, ctx.n
    if "p_churn" not in signals:
        return None
    p = _num(signals["p_churn"])
    cut = ctx.config.churn_threshold(ctx.entity)
    mask = np.nan_to_num(p, nan=-1.0) >= cut
    what = "lost or go silent" if ctx.entity == "opportunity" else "disqualified or go silent"
    reasons = signals["churn_reason"] if "churn_reason" in signals else pd.Series([None] * n)
    words = [
        f"p_churn {p[i]:.2f}: about {p[i]:.0%} of such {ctx.noun} are {what} within "
        f"{ctx.config.horizon_days} days"
        + (f"; main reason: {reasons.iloc[i]}" if isinstance(reasons.iloc[i], str) else "")
        for i in np.flatnonzero(mask)
    ]
    return Raised(mask, p, cut, words)


def _going_cold(ctx: RuleContext) -> Raised:
    """Silent past the learned cadence of similar records, nothing booked, not yet dormant."""
    signals, silence = ctx.signals, ctx.silence
    q_hi = _num(signals["gap_q_hi"])
    mask = ctx.cold & ~ctx.dormant
    q50, gap_n = _num(signals["gap_q50"]), _num(signals["gap_n"])
    pct = round(ctx.config.going_cold.quantile * 100)
    words = []
    for i in np.flatnonzero(mask):
        similar = _similar(ctx.noun, signals.iloc[i], ctx.frame.iloc[i])
        words.append(
            f"no contact for {_days(silence[i])} and no next step booked; {similar} are usually "
            f"touched every {_days(max(q50[i], 1.0))} ({pct}th pct {_days(max(q_hi[i], 1.0))}, "
            f"from {int(gap_n[i]):,} gaps)"
        )
    return Raised(mask, silence, q_hi, words)


def _dormant(ctx: RuleContext) -> Raised:
    """Cold and silent past the dormant gap of all records: a clean-up hint, not an alert."""
    cfg, silence, dormant_days = ctx.config.going_cold, ctx.silence, ctx.dormant_days
    dq = round(cfg.dormant_quantile * 100)
    words = [
        f"no contact for {_days(silence[i])}: {dq}% of the gaps between touches of all {ctx.noun} in "
        f"the last {_days(cfg.history_days)} were shorter than {_days(dormant_days[i])}; "
        "dormant rather than going cold"
        for i in np.flatnonzero(ctx.dormant)
    ]
    return Raised(ctx.dormant, silence, dormant_days, words)


def _ghosted(ctx: RuleContext) -> Raised:
    """At least ``outbound_touches`` outbound touches since the last answer."""
    k = ctx.config.rules.ghosted.outbound_touches
    count = _num(ctx.signals["outbound_since_answer"])
    since = _num(ctx.signals["days_since_answer"])
    mask = count >= k
    words = [
        f"{int(count[i])} outbound touches without an answer"
        + (
            f" since the last one {_days(since[i])} ago"
            if not np.isnan(since[i])
            else " since the record was created"
        )
        + f" (rule: {k})"
        for i in np.flatnonzero(mask)
    ]
    return Raised(mask, count, float(k), words)


def _no_activity(ctx: RuleContext) -> Raised:
    """No contact for at least ``days`` (dormant records excepted)."""
    days, silence = ctx.config.rules.no_activity.days, ctx.silence
    mask = (silence >= days) & ~ctx.dormant
    words = [f"no contact for {_days(silence[i])} (rule: {_days(days)})" for i in np.flatnonzero(mask)]
    return Raised(mask, silence, days, words)  # "days since" of a record never touched equals its age


def _close_overdue(ctx: RuleContext) -> Raised:
    """The expected close date passed more than ``grace_days`` ago."""
    to_close = _num(ctx.frame["days_to_expected_close"])
    grace = ctx.config.rules.close_overdue.grace_days
    mask = np.nan_to_num(to_close, nan=np.inf) < -grace
    as_of = pd.to_datetime(ctx.frame["as_of"])
    words = [
        f"expected close date passed {_days(-to_close[i])} ago "
        f"({(as_of.iloc[i] + pd.Timedelta(days=float(to_close[i]))).date().isoformat()}) and the deal is "
        "still open"
        for i in np.flatnonzero(mask)
    ]
    return Raised(mask, -to_close, grace, words)


def _stalled_in_stage(ctx: RuleContext) -> Raised:
    """Longer in the current stage than the learned limit of that stage."""
    in_stage = _num(ctx.frame["days_in_stage"])
    limit = _num(ctx.signals["stage_limit_days"])
    spells = _num(ctx.signals["stage_spells"])
    mask = ~np.isnan(limit) & (np.nan_to_num(in_stage, nan=-1.0) > limit)
    pct = round(ctx.config.rules.stalled_in_stage.quantile * 100)
    words = [
        f"{_days(in_stage[i])} in {ctx.frame['stage'].iloc[i]}; {pct}% of deals leave it within "
        f"{_days(limit[i])} (from {int(spells[i]):,} past stays)"
        for i in np.flatnonzero(mask)
    ]
    return Raised(mask, in_stage, limit, words)


def _close_date_pushed(ctx: RuleContext) -> Raised:
    """The expected close date pushed later at least ``pushes`` times."""
    pushes = _num(ctx.frame["n_close_date_pushes"])
    k = ctx.config.rules.close_date_pushed.pushes
    mask = np.nan_to_num(pushes) >= k
    words = [f"expected close date pushed later {_times(pushes[i])}" for i in np.flatnonzero(mask)]
    return Raised(mask, pushes, float(k), words)


def _amount_decreased(ctx: RuleContext) -> Raised:
    """The amount cut at least ``decreases`` times."""
    cuts = _num(ctx.frame["n_amount_decreases"])
    ratio = _num(ctx.frame["amount_change_ratio"])
    amount = _num(ctx.frame["amount"])
    k = ctx.config.rules.amount_decreased.decreases
    mask = np.nan_to_num(cuts) >= k
    words = [
        f"amount cut {_times(cuts[i])}"
        + (f", now {ratio[i]:.0%} of its first value" if not np.isnan(ratio[i]) else "")
        + (f" ({amount[i]:,.0f})" if not np.isnan(amount[i]) else "")
        for i in np.flatnonzero(mask)
    ]
    return Raised(mask, cuts, float(k), words)


def _no_next_step(ctx: RuleContext) -> Raised:
    """No next step booked (dormant records excepted)."""
    mask = ~ctx.booked & ~ctx.dormant
    words = [f"no next step booked; last contact {_days(ctx.silence[i])} ago" for i in np.flatnonzero(mask)]
    return Raised(mask, ctx.silence, np.nan, words)


RULES: dict[str, Rule] = {
    "churn_risk": _churn_risk,
    "going_cold": _going_cold,
    "ghosted": _ghosted,
    "no_activity": _no_activity,
    "close_overdue": _close_overdue,
    "stalled_in_stage": _stalled_in_stage,
    "close_date_pushed": _close_date_pushed,
    "amount_decreased": _amount_decreased,
    "no_next_step": _no_next_step,
    "dormant": _dormant,
}
"""Every rule, in :data:`FLAG_ORDER`. ``dormant`` is evaluated exactly when ``going_cold`` is (same
switch, same inputs); its mask is computed once in :func:`_context` because it also silences
``no_activity`` and ``no_next_step``."""


def evaluate_flags(
    frame: pd.DataFrame,
    signals: pd.DataFrame,
    entity: str,
    config: FlagsConfig,
    available: Availability = Availability(),
) -> pd.DataFrame:
    """Every flag of every entity of one snapshot.

    Args:
        frame: Snapshot features (``act_days_since_last_touch``, ``act_next_action_scheduled``,
            and for deals ``stage``, ``days_in_stage``, ``days_to_expected_close``,
            ``n_close_date_pushes``, ``n_amount_decreases``, ``amount``, ``amount_change_ratio``).
        signals: Aligned with ``frame``: ``outbound_since_answer``, ``days_since_answer``,
            ``stage_limit_days``, ``stage_spells``, ``gap_q50``, ``gap_q_hi``, ``gap_n``, ``group``,
            ``cadence``, ``segment``; optionally ``gap_dormant``, ``p_churn`` and ``churn_reason``.
        entity: ``lead`` or ``opportunity``.
        config: Thresholds and severities.
        available: What the source records.

    Returns:
        One row per flag raised: ``row`` (position in ``frame``), ``flag``, ``severity``,
        ``value`` (the measured number), ``threshold``, ``evidence`` (in words),
        ``suggested_action`` and ``decision`` (the brief's decision it applies).
    """
    skipped = skipped_flags(entity, config, available)
    active = [f for f in FLAG_ORDER if _evaluated(f, entity, config, skipped, len(frame))]
    ctx = _context(frame, signals, entity, config, going_cold="going_cold" in active)
    parts = []
    for flag in active:
        raised = RULES[flag](ctx)
        if raised is not None and raised.mask.any():
            parts.append(_flag_rows(flag, raised, ctx))
    return _ordered(parts)


def _evaluated(flag: str, entity: str, config: FlagsConfig, skipped: dict[str, str], n: int) -> bool:
    """Whether ``flag`` is evaluated: enabled, meant for the entity, its inputs recorded, rows present."""
    if flag in DEAL_ONLY and entity != "opportunity":
        return False
    return _enabled(flag, config) and flag not in skipped and n > 0


def _context(
    frame: pd.DataFrame, signals: pd.DataFrame, entity: str, config: FlagsConfig, *, going_cold: bool
) -> RuleContext:
    """The shared arrays of one snapshot; the cold and dormant masks only when ``going_cold`` runs."""
    n = len(frame)
    silence = _num(frame["act_days_since_last_touch"]) if n else np.array([])
    booked = (
        frame["act_next_action_scheduled"].fillna(False).astype(bool).to_numpy() if n else np.array([], bool)
    )
    cold = np.zeros(n, dtype=bool)
    dormant = np.zeros(n, dtype=bool)
    dormant_days = np.full(n, np.nan)
    if going_cold:
        q_hi = _num(signals["gap_q_hi"])
        cold = ~np.isnan(q_hi) & (silence > q_hi) & ~booked
        if "gap_dormant" in signals:
            dormant_days = _num(signals["gap_dormant"])
        dormant = cold & (silence > np.nan_to_num(dormant_days, nan=np.inf))
    noun = "deals" if entity == "opportunity" else "leads"
    return RuleContext(frame, signals, entity, config, noun, silence, booked, cold, dormant, dormant_days)


def _flag_rows(flag: str, raised: Raised, ctx: RuleContext) -> pd.DataFrame:
    """The output rows of one flag: position, severity, rounded value and threshold, evidence, action."""
    rows = np.flatnonzero(raised.mask)
    thr = np.broadcast_to(np.asarray(raised.threshold, dtype=float), (ctx.n,))[rows]
    action = action_for(flag)
    return pd.DataFrame(
        {
            "row": rows,
            "flag": flag,
            "severity": ctx.config.severity_of(flag),
            "value": np.round(raised.value[rows].astype(float), 4),
            "threshold": np.round(thr, 4),
            "evidence": raised.words,
            "suggested_action": action.text,
            "decision": action.decision,
        }
    )


def _ordered(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """All raised flags by row, then in :data:`FLAG_ORDER` (an empty frame of the columns if none)."""
    if not parts:
        return pd.DataFrame(
            {c: pd.Series(dtype=float if c in ("value", "threshold") else object) for c in FLAG_COLUMNS}
        ).astype({"row": "int64"})
    out = pd.concat(parts, ignore_index=True)
    order = {f: i for i, f in enumerate(FLAG_ORDER)}
    out["_o"] = out["flag"].map(order)
    return out.sort_values(["row", "_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _similar(noun: str, signal: pd.Series, row: pd.Series) -> str:
    """'similar deals in negotiation (Enterprise, fast-cadence rep)' for the group that was used."""
    group = str(signal.get("group", "all"))
    text = f"similar {noun}"
    if "stage" in group and isinstance(row.get("stage"), str):
        text += f" in {row['stage']}"
    details = []
    if "segment" in group and isinstance(signal.get("segment"), str):
        details.append(str(signal["segment"]))
    if "cadence" in group and isinstance(signal.get("cadence"), str):
        details.append(f"{signal['cadence']}-cadence rep")
    if details:
        text += f" ({', '.join(details)})"
    if group.endswith("+own"):
        text = f"this {noun[:-1]}'s own pace and {text}"
    if group in ("all", "none"):
        text = f"{noun.capitalize()} overall"
        text = text[0].lower() + text[1:]
    return text


def summarise(flags: pd.DataFrame, n_rows: int, config: FlagsConfig) -> pd.DataFrame:
    """One summary row per entity position of the snapshot.

    Columns: ``flags`` (names joined by ``;``), ``n_flags``, ``top_flag`` (most severe, ties in
    :data:`FLAG_ORDER`), its ``severity``, ``evidence`` and ``suggested_action``, and ``at_risk``
    (carries a flag of an alert severity).
    """
    from forecast.flags.config import SEVERITY_RANK

    out = pd.DataFrame(index=pd.RangeIndex(n_rows))
    out["flags"] = ""
    out["n_flags"] = 0
    for col in ("top_flag", "severity", "evidence", "suggested_action"):
        out[col] = None
    out["at_risk"] = False
    if flags.empty:
        return out
    f = flags.copy()
    f["_rank"] = -f["severity"].map(SEVERITY_RANK)
    f["_o"] = f["flag"].map({x: i for i, x in enumerate(FLAG_ORDER)})
    top = f.sort_values(["row", "_rank", "_o"], kind="stable").drop_duplicates("row").set_index("row")
    names = f.groupby("row")["flag"].agg(";".join)
    alert = f[f["severity"].isin(config.alert_severities)].groupby("row").size()
    out.loc[names.index, "flags"] = names
    out.loc[names.index, "n_flags"] = f.groupby("row").size()
    for col, src in (("top_flag", "flag"), ("severity", "severity"), ("evidence", "evidence")):
        out.loc[top.index, col] = top[src]
    out.loc[top.index, "suggested_action"] = top["suggested_action"]
    out.loc[alert.index, "at_risk"] = True
    return out
