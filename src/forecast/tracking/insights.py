"""Insights: turn the metrics into the decisions of docs/tracking.md, for the manager and for each rep.

Every rule tests one difference (a rep against the other reps on the same mix, a period against the
periods before). A candidate becomes an insight only when

- the sample is large enough (``min_trials`` trials in each side, ``min_expected`` expected events),
- the difference is large enough to matter (``min_effect``: at least 20% relative by default), and
- it survives Benjamini–Hochberg control of the false-discovery rate (``fdr``) across *every*
  candidate tested for the period, so that looking at many reps and metrics does not manufacture
  findings.

Insights are ranked by expected revenue impact (documented per rule in ``docs/tracking.md``) and carry
their evidence: counts, rates with 95% intervals, what the comparison was adjusted for, the test and
its p-value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecast.tracking.activity_index import done_within
from forecast.tracking.adjust import STRATA, cold_call_units, compare, reply_units, win_units
from forecast.tracking.common import by_key, code_rows, memo, rows_of_columns, truth
from forecast.tracking.data import TrackingData, days
from forecast.tracking.funnel import open_at, stage_win_rates
from forecast.tracking.goals import goals
from forecast.tracking.periods import Period
from forecast.tracking.process import stays
from forecast.tracking.stats import (
    NAN,
    benjamini_hochberg,
    mean_skipna,
    median_skipna,
    rate_ratio_test,
    safe_div,
    two_proportion_test,
    welch_test,
    wilson,
)

REFERENCE_DAYS = 365
NEGLECT_DAYS = 14
HISTORY_PERIODS = 3


@dataclass
class InsightConfig:
    """Evidence bar of the insight rules.

    Attributes:
        fdr: False-discovery rate for Benjamini–Hochberg across all candidates.
        min_trials: Minimum trials (leads, emails, deals) on each side of a comparison.
        min_expected: Minimum expected events (successes) for a shortfall to be tested.
        min_effect: Minimum relative difference (0.2 = a rate 20% below or above the reference).
        quota_miss: Attainment below which a goal counts as missed.
    """

    fdr: float = 0.05
    min_trials: int = 20
    min_expected: float = 5.0
    min_effect: float = 0.2
    quota_miss: float = 0.9


@dataclass
class Insight:
    """One decision with its evidence.

    Attributes:
        rule: The rule that raised it (``prospecting``, ``email_replies``, …).
        audience: ``manager`` or ``rep``.
        subject: Who or what it is about (a rep id, a stage, ``team``).
        decision: What to do, in a sentence.
        message: The finding with its numbers.
        expected_revenue_impact: Revenue at stake (see the rule), ``nan`` when unknown.
        p_value: The test's two-sided p-value (``nan`` for exact totals such as quota).
        test: The test used.
        adjusted_for: The mix the comparison was adjusted for (``nothing`` if raw).
        evidence: The numbers behind it.
    """

    rule: str
    audience: str
    subject: str
    decision: str
    message: str
    expected_revenue_impact: float
    p_value: float
    test: str
    adjusted_for: str = "nothing"
    evidence: dict[str, Any] = field(default_factory=dict)
    q_value: float = NAN

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (nan as ``None``)."""
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return value


@dataclass
class InsightReport:
    """The insights of one period: raised ones ranked, and how many candidates were tested."""

    period: Period
    as_of: pd.Timestamp
    insights: list[Insight]
    tested: int
    config: InsightConfig
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return {
            "period": self.period.as_dict(),
            "as_of": self.as_of.isoformat(),
            "tested": self.tested,
            "raised": len(self.insights),
            "evidence_bar": asdict(self.config),
            "insights": [i.as_dict() for i in self.insights],
            "notes": self.notes,
        }

    def frame(self) -> pd.DataFrame:
        """The insights as a frame (one row each, evidence as a dict column)."""
        return pd.DataFrame([asdict(i) for i in self.insights])


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def _ci(lo: float, hi: float) -> str:
    return "n/a" if lo != lo else f"{100 * lo:.1f}–{100 * hi:.1f}%"


def _money(x: float) -> str:
    return "n/a" if x != x else f"{x:,.0f}"


@dataclass(frozen=True)
class Aggregated:
    """What the rules would derive from the whole CRM, aggregated by DuckDB where ``data`` is a part of it.

    Given by :func:`forecast.tracking.sql_insights.read_part` (``None`` where the rules derive it
    from the data, as from the CRM read whole).

    Attributes:
        goals: The period's goals by rep (``goals(data, period, "rep")``).
        stays: The stays in a stage the rules read (at least those :func:`stays_read` names), in the
            order and with the columns of :func:`~forecast.tracking.process.stays`.
        stage_win_rates: :func:`~forecast.tracking.funnel.stage_win_rates` at the period's cut-off.
    """

    goals: pd.DataFrame | None = None
    stays: pd.DataFrame | None = None
    stage_win_rates: dict[str, float] | None = None


@dataclass
class _Context:
    data: TrackingData
    period: Period
    cfg: InsightConfig
    cutoff: pd.Timestamp
    win_rate: float
    avg_won: float
    names: dict[str, str]
    given: Aggregated = field(default_factory=Aggregated)
    """What DuckDB aggregated of the CRM (where :attr:`data` is a part of it)."""
    _weights: dict[str, float] | None = None

    def weights(self) -> dict[str, float]:
        """:func:`~forecast.tracking.funnel.stage_win_rates` at the cut-off (once; three rules read it)."""
        if self._weights is None:
            given = self.given.stage_win_rates
            self._weights = stage_win_rates(self.data, self.cutoff) if given is None else dict(given)
        return self._weights

    def who(self, rep: str) -> str:
        name = self.names.get(rep, "")
        # a CRM whose rep ids are the names (Maven) would read "rep Moses Frase (Moses Frase)"
        shown = name and name != "(none)" and name.strip().casefold() != rep.strip().casefold()
        return f"rep {rep}" + (f" ({name})" if shown else "")


def _context(
    data: TrackingData, period: Period, cfg: InsightConfig, given: Aggregated | None = None
) -> _Context:
    cutoff = min(period.end, data.as_of)
    opps = data.opportunities
    closed = opps[
        (opps["closed_at"] < cutoff) & (opps["closed_at"] >= cutoff - pd.Timedelta(days=REFERENCE_DAYS))
    ]
    if closed.empty:
        closed = opps[opps["closed_at"] < cutoff]
    won = closed[closed["outcome"] == "won"]
    return _Context(
        data=data,
        period=period,
        cfg=cfg,
        cutoff=cutoff,
        win_rate=safe_div(len(won), len(closed)),
        avg_won=float(won["amount"].mean()) if won["amount"].notna().any() else NAN,
        names=dict(zip(data.reps["rep_id"], data.reps["name"], strict=False)),
        given=given or Aggregated(),
    )


def stays_read(period: Period, as_of: pd.Timestamp) -> dict[str, pd.Timestamp]:
    """Which stays in a stage the rules of ``period`` read: the bounds of :attr:`Aggregated.stays`.

    A stay is read where it began in the period (``start`` to ``end``), ended from the start of the
    :data:`HISTORY_PERIODS` periods before it (``before``) to the period's end, or was under way at
    the ``cutoff`` (began before it, not ended before it). The others change no insight. (A stay
    that began in the period may end before it: a deal's close can be dated before its last stage
    change.)
    """
    return {
        "start": period.start,
        "end": period.end,
        "before": min(p.start for p in [period, *_history(period, HISTORY_PERIODS)]),
        "cutoff": min(period.end, as_of),
    }


@dataclass(frozen=True)
class _Pending:
    """An insight not written yet: its p-value, and how to write it if it is raised.

    A period at 1M leads tests some 16,000 comparisons and raises a hundred: the shortfall rules
    write the message and evidence of those alone (:func:`insights`), the same insight either way.
    """

    p_value: float
    write: Callable[[], Insight]


Candidate = tuple[Insight | _Pending, bool]
"""An insight (or one to write) and whether it passed the size and effect bars (the FDR step comes after)."""


def _shortfall_candidates(
    ctx: _Context,
    units: pd.DataFrame,
    metric: str,
    build: Callable[[Mapping[str, Any], np.ndarray], Insight],
    strata: tuple[str, ...] | None = None,
) -> list[Candidate]:
    """Reps whose rate falls short of the others' on the same mix.

    ``build`` gets a row of :func:`~forecast.tracking.adjust.compare` (its values as Python
    scalars, as ``iterrows`` gives them) and the row positions of the rep's trials in ``units``;
    it is called for the raised insights only, and its insight's p-value must be the row's.
    """
    if units.empty or units["rep"].nunique() < 2:
        return []
    table = compare(units, "rep", STRATA.get(metric, ()) if strata is None else strata, metric)
    rows_of = units.groupby("rep", sort=False).indices  # each rep's trials, in their order
    out: list[Candidate] = []
    records: list[dict[str, Any]] = table.to_dict("records")  # type: ignore[assignment]  # str columns
    for row in records:
        if row["rep"] == "(none)":
            continue
        eligible = (
            row["n"] >= ctx.cfg.min_trials
            and row["others_n"] >= ctx.cfg.min_trials
            and row["expected"] >= ctx.cfg.min_expected
        )
        worse = row["ratio"] == row["ratio"] and row["ratio"] <= 1 - ctx.cfg.min_effect
        mine = np.asarray(rows_of.get(row["rep"], _NO_ROWS))
        pending = _Pending(float(row["p_value"]), functools.partial(build, row, mine))
        out.append((pending, bool(eligible and worse)))
    return out


_NO_ROWS = np.zeros(0, dtype=np.intp)


def _rate_evidence(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in (
            "n",
            "observed",
            "rate",
            "rate_lo",
            "rate_hi",
            "others_n",
            "others_rate",
            "others_rate_lo",
            "others_rate_hi",
            "expected",
            "expected_rate",
            "ratio",
            "ratio_lo",
            "ratio_hi",
            "p_value_raw",
        )
    }


def _prospecting(ctx: _Context) -> list[Candidate]:
    units = cold_call_units(ctx.data, ctx.period, "rep")
    value = ctx.win_rate * ctx.avg_won
    calls_of = units["calls"].to_numpy()

    def build(row: Mapping[str, Any], mine: np.ndarray) -> Insight:
        calls = int(calls_of[mine].sum())
        rep = str(row["rep"])
        return Insight(
            rule="prospecting",
            audience="rep",
            subject=rep,
            decision=f"coach {rep} on prospecting or give {rep} a better list",
            message=(
                f"{ctx.who(rep)}: {calls} cold calls to {int(row['n'])} leads in {ctx.period.label}, "
                f"{int(row['observed'])} became opportunities ({_pct(row['rate'])}, 95% CI "
                f"{_ci(row['rate_lo'], row['rate_hi'])}) against the other reps' {_pct(row['others_rate'])}; "
                f"expected {_pct(row['expected_rate'])} on the same mix ({row['adjusted_for']})"
            ),
            expected_revenue_impact=(row["expected"] - row["observed"]) * value,
            p_value=float(row["p_value"]),
            test="observed vs expected conversions (indirect standardisation, normal approximation)",
            adjusted_for=str(row["adjusted_for"]),
            evidence={"cold_calls": calls, **_rate_evidence(row), "value_per_opportunity": value},
        )

    return _shortfall_candidates(ctx, units, "cold_call_conversion", build)


def _email(ctx: _Context) -> list[Candidate]:
    units = reply_units(ctx.data, ctx.period, "rep")
    leads = by_key(ctx.data.leads, "lead_id", "converted_at")["converted_at"]
    replied = units[(units["success"] == 1) & units["lead_id"].notna()]
    first = replied.groupby("lead_id")["occurred_at"].min()
    conv = wilson(int((leads.reindex(first.index) > first).sum()), len(first)).rate
    value = conv * ctx.win_rate * ctx.avg_won

    def build(row: Mapping[str, Any], mine: np.ndarray) -> Insight:
        rep = str(row["rep"])
        return Insight(
            rule="email_replies",
            audience="rep",
            subject=rep,
            decision=f"rewrite {rep}'s emails (subject, offer, targeting)",
            message=(
                f"{ctx.who(rep)}: {int(row['n'])} emails in {ctx.period.label}, "
                f"{int(row['observed'])} replies ({_pct(row['rate'])}, "
                f"95% CI {_ci(row['rate_lo'], row['rate_hi'])}) against the other reps' "
                f"{_pct(row['others_rate'])}; expected {_pct(row['expected_rate'])} "
                f"on the same mix ({row['adjusted_for']})"
            ),
            expected_revenue_impact=(row["expected"] - row["observed"]) * value if value == value else NAN,
            p_value=float(row["p_value"]),
            test="observed vs expected replies (indirect standardisation, normal approximation)",
            adjusted_for=str(row["adjusted_for"]),
            evidence={**_rate_evidence(row), "value_per_reply": value, "lead_conversion_after_reply": conv},
        )

    return _shortfall_candidates(ctx, units, "reply_rate", build)


def _win_rate(ctx: _Context) -> list[Candidate]:
    units = win_units(ctx.data, ctx.period)
    opps = ctx.data.opportunities
    created = opps[ctx.period.contains(opps["created_at"])]
    value_created = pd.to_numeric(created["amount"], errors="coerce").fillna(0).groupby(created["rep"]).sum()
    median_value = (
        float(value_created.reindex(ctx.data.reps["rep_id"], fill_value=0).median())
        if len(ctx.data.reps)
        else 0.0
    )

    def build(row: Mapping[str, Any], mine: np.ndarray) -> Insight:
        rep = str(row["rep"])
        created_value = float(value_created.get(rep, 0.0))
        high_value = created_value > median_value
        decision = (
            f"{rep} creates much value but wins too little of it: focus on the right deals and on closing"
            if high_value
            else f"review {rep}'s deal qualification and closing"
        )
        return Insight(
            rule="win_rate",
            audience="rep",
            subject=rep,
            decision=decision,
            message=(
                f"{ctx.who(rep)}: {int(row['observed'])} won of {int(row['n'])} deals closed in "
                f"{ctx.period.label} ({_pct(row['rate'])}, "
                f"95% CI {_ci(row['rate_lo'], row['rate_hi'])}) against the other reps' "
                f"{_pct(row['others_rate'])}; expected {_pct(row['expected_rate'])} "
                f"on the same mix ({row['adjusted_for']}); "
                f"value created {_money(created_value)} (median rep {_money(median_value)})"
            ),
            expected_revenue_impact=(row["expected"] - row["observed"]) * ctx.avg_won,
            p_value=float(row["p_value"]),
            test="observed vs expected wins (indirect standardisation, normal approximation)",
            adjusted_for=str(row["adjusted_for"]),
            evidence={
                **_rate_evidence(row),
                "value_created": created_value,
                "median_value_created": median_value,
            },
        )

    return _shortfall_candidates(ctx, units, "win_rate", build)


def _selling_time(ctx: _Context) -> list[Candidate]:
    acts = done_within(ctx.data.activities, ctx.period.start, ctx.period.end, ("rep", "duration_seconds"))
    hours = acts.groupby("rep")["duration_seconds"].sum() / 3600
    opps = ctx.data.opportunities
    won = opps[(opps["outcome"] == "won") & ctx.period.contains(opps["closed_at"])].groupby("rep").size()
    hours = hours[hours > 0]
    if len(hours) < 2:
        return []
    median = float(hours.median())
    all_h = hours.sum()
    all_k = won.reindex(hours.index, fill_value=0).sum()
    out: list[Candidate] = []
    for rep, h in hours.items():
        k = int(won.get(rep, 0))
        others_h = float(all_h - h)
        others_k = int(all_k - k)
        rate_others = safe_div(others_k, others_h)
        expected = h * rate_others
        p = rate_ratio_test(k, h, others_k, others_h)
        ratio = safe_div(k, expected)
        insight = Insight(
            rule="selling_time",
            audience="rep",
            subject=str(rep),
            decision=f"reallocate {rep}'s selling time to what works (fewer, better-qualified touches)",
            message=(
                f"{ctx.who(str(rep))}: {h:.0f} h of calls and meetings in {ctx.period.label} "
                f"(median rep {median:.0f} h) for {k} won deals; "
                f"at the other reps' {_per(rate_others)} won deals per 100 h, {expected:.1f} were expected"
            ),
            expected_revenue_impact=(expected - k) * ctx.avg_won,
            p_value=p,
            test="rate ratio of won deals per selling hour (conditional binomial, normal approximation)",
            evidence={
                "selling_hours": h,
                "won": k,
                "others_hours": others_h,
                "others_won": others_k,
                "expected_won": expected,
                "ratio": ratio,
            },
        )
        ok = (
            h >= median
            and expected >= ctx.cfg.min_expected
            and ratio == ratio
            and ratio <= 1 - ctx.cfg.min_effect
        )
        out.append((insight, bool(ok)))
    return out


def _per(rate: float) -> str:
    return "n/a" if rate != rate else f"{100 * rate:.2f}"


def _history(period: Period, n: int) -> list[Period]:
    out, p = [], period
    for _ in range(n):
        p = p.previous()
        out.append(p)
    return out


def _losses(ctx: _Context) -> list[Candidate]:
    opps = ctx.data.opportunities
    now = opps[ctx.period.contains(opps["closed_at"])]
    before_periods = _history(ctx.period, HISTORY_PERIODS)
    before = opps[np.logical_or.reduce([p.contains(opps["closed_at"]) for p in before_periods])]
    k_now, n_now = int((now["outcome"] == "lost").sum()), len(now)
    k_before, n_before = int((before["outcome"] == "lost").sum()), len(before)
    share_now, share_before = safe_div(k_now, n_now), safe_div(k_before, n_before)
    if share_before != share_before or share_now != share_now:
        return []
    reasons_now = (
        now.loc[now["outcome"] == "lost", "loss_reason"].fillna("(not recorded)").value_counts(normalize=True)
    )
    reasons_before = (
        before.loc[before["outcome"] == "lost", "loss_reason"]
        .fillna("(not recorded)")
        .value_counts(normalize=True)
    )
    change = reasons_now.sub(reasons_before, fill_value=0).sort_values(ascending=False)
    top = [str(r) for r in change.index[:2] if change[r] > 0]
    excess = k_now - share_before * n_now
    avg_lost = float(now.loc[now["outcome"] == "lost", "amount"].mean()) if k_now else NAN
    reasons_txt = ", ".join(
        f"{r} {_pct(float(reasons_before.get(r, 0.0)))} → {_pct(float(reasons_now.get(r, 0.0)))}" for r in top
    )
    insight = Insight(
        rule="losses_rising",
        audience="manager",
        subject="team",
        decision="analyse the loss reasons" + (f" (rising: {', '.join(top)})" if top else ""),
        message=(
            f"{k_now} of {n_now} deals closed in {ctx.period.label} were lost ({_pct(share_now)}) against "
            f"{_pct(share_before)} of {n_before} in the {HISTORY_PERIODS} periods before"
            + (f"; share of losses by reason: {reasons_txt}" if reasons_txt else "")
        ),
        expected_revenue_impact=excess * avg_lost * ctx.win_rate,
        p_value=two_proportion_test(k_now, n_now, k_before, n_before),
        test="two-proportion z-test, this period against the previous three",
        evidence={
            "lost": k_now,
            "closed": n_now,
            "lost_before": k_before,
            "closed_before": n_before,
            "excess_losses": excess,
            "avg_lost_amount": avg_lost,
        },
    )
    ok = (
        n_now >= ctx.cfg.min_trials
        and n_before >= ctx.cfg.min_trials
        and share_now >= share_before * (1 + ctx.cfg.min_effect)
    )
    return [(insight, bool(ok))]


def _growth(ctx: _Context) -> list[Candidate]:
    opps = ctx.data.opportunities
    won = opps[opps["outcome"] == "won"]
    prev = ctx.period.previous()
    now_w, prev_w = won[ctx.period.contains(won["closed_at"])], won[prev.contains(won["closed_at"])]
    k, k_prev = len(now_w), len(prev_w)
    v = float(now_w["amount"].sum())
    v_prev = float(prev_w["amount"].sum())
    growth = safe_div(v - v_prev, v_prev)
    up = v >= v_prev
    insight = Insight(
        rule="growth",
        audience="manager",
        subject="team",
        decision=(
            "bookings are growing: keep what works (find which sources and reps drive it)"
            if up
            else "bookings are falling: rethink the plan (pipeline coverage, sources, win rate)"
        ),
        message=(
            f"won {k} deals worth {_money(v)} in {ctx.period.label} "
            f"against {k_prev} worth {_money(v_prev)} in {prev.label} ({'+' if up else ''}{_pct(growth)})"
        ),
        expected_revenue_impact=abs(v - v_prev),
        p_value=rate_ratio_test(k, ctx.period.days, k_prev, prev.days),
        test="rate ratio of won deals per day, this period against the previous (conditional binomial)",
        evidence={"won": k, "won_prev": k_prev, "won_value": v, "won_value_prev": v_prev, "growth": growth},
    )
    big = growth == growth and abs(growth) >= ctx.cfg.min_effect and k + k_prev >= ctx.cfg.min_trials
    return [(insight, bool(big))]


def _capacity(ctx: _Context) -> list[Candidate]:
    opps = ctx.data.opportunities
    open_now = open_at(opps, ctx.cutoff)
    if open_now.empty:
        return []
    since = ctx.cutoff - pd.Timedelta(days=NEGLECT_DAYS)
    recent = done_within(ctx.data.activities, since, ctx.cutoff, ("opportunity_id",))
    touched = set(recent["opportunity_id"].dropna())
    open_now = open_now.assign(neglected=~open_now["opportunity_id"].isin(touched))
    weights = ctx.weights()
    open_now = open_now.assign(
        value=pd.to_numeric(open_now["amount"], errors="coerce").fillna(0)
        * open_now["stage"].map(weights).astype(float).fillna(0)
    )
    counts = open_now.groupby("rep").size().reindex(ctx.data.reps["rep_id"], fill_value=0)
    median = float(counts.median()) if len(counts) else 0.0
    neglected = open_now["neglected"].to_numpy(dtype=bool)
    value = open_now["value"].to_numpy()
    all_k, all_n = int(neglected.sum()), len(open_now)  # a rep's others: every deal not theirs
    out: list[Candidate] = []
    for rep, rows in _by_rep(open_now["rep"]):
        k, n = int(neglected[rows].sum()), len(rows)
        ko, no = all_k - k, all_n - n
        share, share_o = safe_div(k, n), safe_div(ko, no)
        excess = k - share_o * n if share_o == share_o else NAN
        mean_value = mean_skipna(value[rows])
        insight = Insight(
            rule="capacity",
            audience="manager",
            subject=str(rep),
            decision=f"check {rep}'s capacity: prioritise or reassign open deals",
            message=(
                f"{ctx.who(str(rep))} holds {n} open opportunities (median rep {median:.0f}); "
                f"{k} ({_pct(share)}) had no activity in the last {NEGLECT_DAYS} days "
                f"against {_pct(share_o)} of the other reps' deals"
            ),
            expected_revenue_impact=excess * mean_value if n and excess == excess else NAN,
            p_value=two_proportion_test(k, n, ko, no),
            test="two-proportion z-test of deals without recent activity, rep against the others",
            evidence={
                "open": n,
                "median_open": median,
                "neglected": k,
                "neglected_share": share,
                "others_open": no,
                "others_neglected_share": share_o,
            },
        )
        ok = (
            n >= max(ctx.cfg.min_trials, 1.5 * median)
            and no >= ctx.cfg.min_trials
            and share_o == share_o
            and share >= min(1.0, share_o * (1 + ctx.cfg.min_effect))
            and share > share_o
        )
        out.append((insight, bool(ok)))
    return out


def _stages(ctx: _Context) -> list[Candidate]:
    if not ctx.data.has_stage_history:
        return []
    s = stays(ctx.data) if ctx.given.stays is None else ctx.given.stays
    if s.empty:
        return []
    weights = ctx.weights()
    order = ctx.data.pipeline.open_stages
    out: list[Candidate] = []
    # the columns the rules read, each taken at the rows read (not every column of a million stays)
    ended = truth(ctx.period.contains(s["entered_at"]) & s["result"].isin(["advanced", "lost"]))
    entered = rows_of_columns(s, np.flatnonzero(ended), ("stage", "rep", "product", "result"))
    entered["success"] = (entered["result"] == "advanced").astype(int)
    entered_in = entered.groupby("stage", sort=False).indices  # each stage's rows, in their order
    stays_in = memo(s, "rows by stage", lambda: s.groupby("stage", sort=False).indices)
    timed = ("entered_at", "left_at", "days", "opportunity_id")
    for i, stage in enumerate(order):
        units = entered.iloc[entered_in.get(stage, _NO_ROWS)]
        nxt = order[i + 1] if i + 1 < len(order) else None
        p_after = weights.get(nxt, 1.0) if nxt else 1.0

        def build(
            row: Mapping[str, Any], mine: np.ndarray, stage: str = stage, p_after: float = p_after
        ) -> Insight:
            rep = str(row["rep"])
            return Insight(
                rule="stage_conversion",
                audience="rep",
                subject=rep,
                decision=f"work with {rep} on the {stage} stage",
                message=(
                    f"{ctx.who(rep)}: {int(row['observed'])} of {int(row['n'])} deals "
                    f"that entered {stage} in {ctx.period.label} moved on ({_pct(row['rate'])}, "
                    f"95% CI {_ci(row['rate_lo'], row['rate_hi'])}) "
                    f"against the other reps' {_pct(row['others_rate'])}; "
                    f"expected {_pct(row['expected_rate'])} "
                    f"for the same products"
                ),
                expected_revenue_impact=(row["expected"] - row["observed"]) * p_after * ctx.avg_won,
                p_value=float(row["p_value"]),
                test="observed vs expected stage advances (indirect standardisation, normal approximation)",
                adjusted_for=str(row["adjusted_for"]),
                evidence={"stage": stage, **_rate_evidence(row), "p_win_after_stage": p_after},
            )

        out.extend(_shortfall_candidates(ctx, units, f"stage_conversion:{stage}", build, ("product",)))
        stage_stays = rows_of_columns(s, np.asarray(stays_in.get(stage, _NO_ROWS)), timed)
        out.extend(_slow_stage(ctx, stage_stays, stage, weights.get(stage, NAN)))
    return out


def _slow_stage(ctx: _Context, s: pd.DataFrame, stage: str, p_win: float) -> list[Candidate]:
    """A stage that takes longer this period than in the previous ones (``s``: its stays, ended or not)."""
    st = s[s["days"].notna()]
    now = st[ctx.period.contains(st["left_at"])]["days"]
    before_periods = _history(ctx.period, HISTORY_PERIODS)
    before = st[np.logical_or.reduce([p.contains(st["left_at"]) for p in before_periods])]["days"]
    if len(now) < 2 or len(before) < 2:
        return []
    med_now, med_before = float(now.median()), float(before.median())
    p = welch_test(np.log1p(now), np.log1p(before))
    cutoff_open = s[(s["entered_at"] < ctx.cutoff) & ~(s["left_at"] < ctx.cutoff)]
    amounts = by_key(ctx.data.opportunities, "opportunity_id", "amount")["amount"]
    value = float(
        pd.to_numeric(amounts.reindex(cutoff_open["opportunity_id"]), errors="coerce").fillna(0).sum()
    )
    extra = med_now - med_before
    impact = value * (p_win if p_win == p_win else 0.0) * min(1.0, max(extra, 0.0) / ctx.period.days)
    insight = Insight(
        rule="slow_stage",
        audience="manager",
        subject=stage,
        decision=f"find the bottleneck in {stage} (remove steps, unblock approvals)",
        message=(
            f"deals left {stage} after a median {med_now:.1f} days in {ctx.period.label} "
            f"({len(now)} deals) against "
            f"{med_before:.1f} days in the {HISTORY_PERIODS} periods before ({len(before)} deals); "
            f"{len(cutoff_open)} deals worth {_money(value)} sit there now"
        ),
        expected_revenue_impact=impact,
        p_value=p,
        test="Welch test on log days in stage, this period against the previous three (normal approximation)",
        evidence={
            "stage": stage,
            "median_days": med_now,
            "median_days_before": med_before,
            "n": len(now),
            "n_before": len(before),
            "open_in_stage": len(cutoff_open),
            "open_value": value,
        },
    )
    ok = (
        len(now) >= ctx.cfg.min_trials
        and len(before) >= ctx.cfg.min_trials
        and med_now >= med_before * (1 + ctx.cfg.min_effect)
    )
    return [(insight, bool(ok))]


def _long_cycles(ctx: _Context) -> list[Candidate]:
    opps = ctx.data.opportunities
    won = opps[(opps["outcome"] == "won") & ctx.period.contains(opps["closed_at"])]
    won = won.assign(days=days(won["closed_at"] - won["created_at"]))
    if won["rep"].nunique() < 2:
        return []
    open_now = open_at(opps, ctx.cutoff)
    weights = ctx.weights()
    open_value = (
        (
            pd.to_numeric(open_now["amount"], errors="coerce").fillna(0)
            * open_now["stage"].map(weights).astype(float).fillna(0)
        )
        .groupby(open_now["rep"])
        .sum()
    )
    out: list[Candidate] = []
    cycle = won["days"].to_numpy()
    for rep, rows in _by_rep(won["rep"]):
        others = np.delete(cycle, rows)  # every deal not theirs, in their order
        mine = cycle[rows]
        med, med_o = median_skipna(mine), median_skipna(others) if len(others) else NAN
        p = welch_test(np.log1p(mine), np.log1p(others))
        slip = 1 - safe_div(med_o, med) if med > 0 else NAN
        insight = Insight(
            rule="long_cycle",
            audience="rep",
            subject=str(rep),
            decision=f"shorten {rep}'s sales cycle: remove steps, get to the decision maker earlier",
            message=(
                f"{ctx.who(str(rep))}: deals won in {ctx.period.label} "
                f"took a median {med:.0f} days ({len(mine)} deals) "
                f"against {med_o:.0f} days for the other reps ({len(others)} deals)"
            ),
            expected_revenue_impact=float(open_value.get(rep, 0.0)) * slip if slip == slip else NAN,
            p_value=p,
            test="Welch test on log cycle days, rep against the others (normal approximation)",
            evidence={
                "median_days": med,
                "others_median_days": med_o,
                "n": len(mine),
                "others_n": len(others),
            },
        )
        ok = (
            len(mine) >= ctx.cfg.min_expected
            and len(others) >= ctx.cfg.min_trials
            and med_o == med_o
            and med >= med_o * (1 + ctx.cfg.min_effect)
        )
        out.append((insight, bool(ok)))
    return out


def _by_rep(reps: pd.Series) -> list[tuple[Any, np.ndarray]]:
    """Each rep and the positions of their rows (ascending), in the order of ``groupby("rep")``.

    A rule asks thousands of reps for their rows and everyone else's; ``groupby`` sorts the reps
    and leaves out a missing one, and so does this.
    """
    codes, uniques = pd.factorize(reps, sort=True)
    return list(zip(uniques, code_rows(codes, len(uniques)), strict=True))


def _quota(ctx: _Context) -> list[Insight]:
    table = goals(ctx.data, ctx.period, "rep") if ctx.given.goals is None else ctx.given.goals
    reps = table[(table["rep"] != "(all)") & (table["goal"] > 0)]
    if reps.empty:
        return []
    missed = reps[reps["attainment"] < ctx.cfg.quota_miss].sort_values("remaining", ascending=False)
    hit = reps[reps["attainment"] >= 1]
    if missed.empty:
        return []
    gap = float(missed["remaining"].sum())
    names = ", ".join(f"{r} {_pct(a)}" for r, a in zip(missed["rep"], missed["attainment"], strict=True))
    return [
        Insight(
            rule="quota",
            audience="manager",
            subject="team",
            decision="review the plans of the reps below goal (pipeline coverage, help on late deals)",
            message=(
                f"{len(hit)} of {len(reps)} reps reached their {ctx.period.label} goal; below "
                f"{_pct(ctx.cfg.quota_miss)} of goal: {names}"
            ),
            expected_revenue_impact=gap,
            p_value=NAN,
            test="none: exact totals, not a sample",
            evidence={
                "reps_with_goal": len(reps),
                "reps_at_goal": len(hit),
                "missed": dict(zip(missed["rep"], missed["remaining"], strict=True)),
            },
        )
    ]


RULES: dict[str, Callable[[_Context], list[Candidate]]] = {
    "prospecting": _prospecting,
    "email_replies": _email,
    "win_rate": _win_rate,
    "selling_time": _selling_time,
    "losses_rising": _losses,
    "capacity": _capacity,
    "stages": _stages,
    "long_cycle": _long_cycles,
    "growth": _growth,
}
"""The statistical rules (quota attainment is added as an exact total)."""


def insights(
    data: TrackingData,
    period: Period,
    config: InsightConfig | None = None,
    *,
    given: Aggregated | None = None,
) -> InsightReport:
    """Raise the decisions the period's data supports, ranked by expected revenue impact.

    Args:
        data: The tracking data.
        period: The period judged.
        config: The evidence bar (defaults: FDR 5%, 20 trials, 5 expected events, 20% effect).
        given: What DuckDB aggregated of the CRM, where ``data`` holds only the part of it the
            rules read (:func:`forecast.tracking.sql_insights.read_part`); ``None``: derived
            from ``data``.

    Returns:
        The ranked insights, the number of candidates tested and notes.
    """
    cfg = config or InsightConfig()
    ctx = _context(data, period, cfg, given)
    candidates: list[Candidate] = []
    for rule in RULES.values():
        candidates.extend(rule(ctx))
    tested = [c for c in candidates if c[0].p_value == c[0].p_value]
    rejected = benjamini_hochberg([c[0].p_value for c in tested], cfg.fdr)
    ranked_p = _bh_q_values([c[0].p_value for c in tested])
    raised = []
    for (candidate, passes), significant, q in zip(tested, rejected, ranked_p, strict=True):
        if passes and significant:
            insight = candidate.write() if isinstance(candidate, _Pending) else candidate
            insight.q_value = q
            raised.append(insight)
    raised.extend(_quota(ctx))
    raised.sort(
        key=lambda i: (
            -i.expected_revenue_impact if i.expected_revenue_impact == i.expected_revenue_impact else math.inf
        )
    )
    notes = list(data.notes)
    if not raised:
        notes.append(f"no difference met the evidence bar among {len(tested)} comparisons")
    if not (ctx.win_rate == ctx.win_rate and ctx.avg_won == ctx.avg_won):
        notes.append("no won deals in the reference year: revenue impact is unknown")
    return InsightReport(
        period=period, as_of=data.as_of, insights=raised, tested=len(tested), config=cfg, notes=notes
    )


def _bh_q_values(p_values: list[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (q-values), in the input order."""
    m = len(p_values)
    if m == 0:
        return []
    order = np.argsort(p_values)
    q = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        q[i] = running
    return [float(v) for v in q]
