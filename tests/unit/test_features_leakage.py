"""Property-based leakage tests of the feature layer (docs/features.md: point in time).

For simulated CRMs and random as_of dates:

- rewriting or deleting everything that happens at or after a cut (events, later entities, the
  final state of deals and leads still open at the cut) leaves every feature row at or before the
  cut unchanged, including the rep's and the account's track record;
- rewriting the past (activities, prospect behaviour, stage-history details, static profile
  fields) without changing which entities are alive leaves every label unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.schema import ACTIVITY_OUTCOMES, ACTIVITY_TYPES, DIRECTIONS, ENGAGEMENT_TYPES
from forecast.data.simulate import Simulation, SimulationConfig, simulate_crm
from forecast.data.simulation.output import canonical_frame
from forecast.features.build import ID_COLUMN, Entity, build_feature_table
from forecast.features.source import frames_source

Tables = dict[str, pd.DataFrame]

ENTITIES: tuple[Entity, ...] = ("lead", "opportunity")
ALL_STAGES = [s.name for s in DEFAULT_PIPELINE.stages]
OPEN_STAGES = [s.name for s in DEFAULT_PIPELINE.stages if not s.is_closed]
LOSS_REASONS = ["price", "competitor", "timing", "no_decision", "no_budget"]
PROPERTY_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # each example builds four feature tables (~1 s): shrinking a failure would take minutes, and
    # the unshrunk example (warehouse, dates, cut) is printed and replays deterministically
    phases=[Phase.explicit, Phase.generate],
)
EVENT_TIMES = [
    ("leads", "created_at"),
    ("leads", "converted_at"),
    ("leads", "status_changed_at"),
    ("opportunities", "created_at"),
    ("opportunities", "closed_at"),
    ("stage_history", "entered_at"),
    ("activities", "occurred_at"),
    ("activities", "scheduled_for"),
    ("engagement_events", "occurred_at"),
]
"""Columns whose values are drawn as as_of, so that events fall exactly on the boundary."""
_COUNT_NAMES = {
    "act_touches_total",
    "eng_events_total",
    "rep_deals_closed_prior",
    "rep_open_deals",
    "acct_prior_deals",
    "acct_prior_won",
    "acct_prior_lost",
}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _simulation(n_leads: int, seed: int, months: int) -> Simulation:
    """A simulated CRM (cached: hypothesis replays the same sizes; callers never mutate it)."""
    return simulate_crm(SimulationConfig(n_leads=n_leads, seed=seed, months=months))


def _copy(tables: Tables) -> Tables:
    """A deep copy of the canonical tables."""
    return {name: frame.copy() for name, frame in tables.items()}


def _retype(tables: Tables, rng: np.random.Generator) -> Tables:
    """Re-apply the canonical column order and dtypes after edits, and shuffle the rows.

    Shuffling also checks that no feature depends on the order rows arrive in.
    """
    return {
        name: canonical_frame(name, frame.sample(frac=1.0, random_state=rng))
        for name, frame in tables.items()
    }


def _later(cut: pd.Timestamp, rng: np.random.Generator, n: int, max_days: float = 150.0) -> np.ndarray:
    """``n`` times at or after ``cut`` (one in ten exactly at ``cut``), to the second."""
    days = rng.uniform(0.0, max_days, n)
    days[rng.random(n) < 0.1] = 0.0
    times = cut + pd.to_timedelta(np.round(days * 86400.0), unit="s")
    return np.asarray(times, dtype="datetime64[ns]")


def _pick(rng: np.random.Generator, values: Sequence[str], n: int) -> np.ndarray:
    """``n`` random choices from ``values`` as an object array."""
    return np.asarray(rng.choice(np.asarray(values, dtype=object), n), dtype=object)


def _lead_alive(leads: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """Leads open at ``at``: created before it and neither converted nor disqualified before it."""
    converted_before = leads["converted_at"].notna() & (leads["converted_at"] < at)
    disqualified_before = (
        (leads["status"] == "disqualified")
        & leads["status_changed_at"].notna()
        & (leads["status_changed_at"] < at)
    )
    undated_conversion = (leads["status"] == "converted") & leads["converted_at"].isna()
    return (leads["created_at"] < at) & ~converted_before & ~disqualified_before & ~undated_conversion


def _deal_alive(opps: pd.DataFrame, at: pd.Timestamp) -> pd.Series:
    """Deals open at ``at``: created before it and not closed before it."""
    return (opps["created_at"] < at) & (opps["closed_at"].isna() | (opps["closed_at"] >= at))


def future_altered(tables: Tables, cut: pd.Timestamp, seed: int) -> Tables:
    """Delete or rewrite everything that happens at or after ``cut``; keep everything before it.

    Events at or after the cut are deleted or rewritten (still at or after it); entities created at
    or after it disappear (links to them from earlier rows are cut); the final state of deals and
    leads still open at the cut is redrawn as a different future. Reps and accounts are static.
    """
    rng = np.random.default_rng(seed)
    t = _copy(tables)

    # opportunities: later ones vanish, open ones get another future
    opps = t["opportunities"]
    gone_opps = set(opps.loc[opps["created_at"] >= cut, "opportunity_id"])
    alive = _deal_alive(opps, cut)
    n = int(alive.sum())
    fate = _pick(rng, ["won", "lost", "open"], n)
    closed_at = _later(cut, rng, n)
    closed_at[fate == "open"] = np.datetime64("NaT")
    stage = np.where(
        fate == "won", "closed_won", np.where(fate == "lost", "closed_lost", _pick(rng, OPEN_STAGES, n))
    )
    opps.loc[alive, "outcome"] = fate
    opps.loc[alive, "stage"] = stage
    opps.loc[alive, "closed_at"] = closed_at
    opps.loc[alive, "amount"] = opps.loc[alive, "amount"] * rng.uniform(0.2, 5.0, n)
    opps.loc[alive, "expected_close_date"] = pd.DatetimeIndex(_later(cut, rng, n)).normalize()
    reason = _pick(rng, LOSS_REASONS, n)
    reason[fate != "lost"] = None
    opps.loc[alive, "loss_reason"] = reason
    t["opportunities"] = opps[~opps["opportunity_id"].isin(gone_opps)]

    # leads: later ones vanish, open ones get another future
    leads = t["leads"]
    gone_leads = set(leads.loc[leads["created_at"] >= cut, "lead_id"])
    alive = _lead_alive(leads, cut)
    n = int(alive.sum())
    fate = _pick(rng, ["converted", "disqualified", "working", "new"], n)
    when = _later(cut, rng, n)
    converted_at = when.copy()
    converted_at[fate != "converted"] = np.datetime64("NaT")
    changed_at = when.copy()
    changed_at[fate == "new"] = np.datetime64("NaT")
    leads.loc[alive, "status"] = fate
    leads.loc[alive, "converted_at"] = converted_at
    leads.loc[alive, "status_changed_at"] = changed_at
    keep_link = leads["opportunity_id"].notna() & ~leads["opportunity_id"].isin(gone_opps)
    leads.loc[alive & ~keep_link, "opportunity_id"] = None
    t["leads"] = leads[~leads["lead_id"].isin(gone_leads)]

    # stage history: later rows deleted or rewritten (stage, amount, expected close, time)
    hist = t["stage_history"]
    late = hist["entered_at"] >= cut
    hist = hist[~late | (rng.random(len(hist)) < 0.6)]
    hist = hist[~hist["opportunity_id"].isin(gone_opps) | (hist["entered_at"] < cut)].copy()
    late = hist["entered_at"] >= cut
    n = int(late.sum())
    hist.loc[late, "stage"] = _pick(rng, ALL_STAGES, n)
    hist.loc[late, "amount"] = hist.loc[late, "amount"] * rng.uniform(0.2, 5.0, n)
    hist.loc[late, "expected_close_date"] = pd.DatetimeIndex(_later(cut, rng, n)).normalize()
    hist.loc[late, "entered_at"] = hist.loc[late, "entered_at"] + pd.to_timedelta(
        np.round(rng.uniform(0, 5, n) * 86400), unit="s"
    )
    t["stage_history"] = hist

    # activities: later ones deleted or rewritten; earlier links to vanished entities cut
    acts = t["activities"]
    late = acts["occurred_at"] >= cut
    to_gone = acts["lead_id"].isin(gone_leads) | acts["opportunity_id"].isin(gone_opps)
    acts = acts[~late | ((rng.random(len(acts)) < 0.5) & ~to_gone)].copy()
    acts.loc[acts["lead_id"].isin(gone_leads), "lead_id"] = None
    acts.loc[acts["opportunity_id"].isin(gone_opps), "opportunity_id"] = None
    late = acts["occurred_at"] >= cut
    n = int(late.sum())
    acts.loc[late, "type"] = _pick(rng, ACTIVITY_TYPES, n)
    acts.loc[late, "outcome"] = _pick(rng, ACTIVITY_OUTCOMES, n)
    acts.loc[late, "direction"] = _pick(rng, DIRECTIONS, n)
    acts.loc[late, "duration_seconds"] = rng.uniform(0, 3600, n).round()
    acts.loc[late, "scheduled_for"] = _later(cut, rng, n)
    acts.loc[late, "occurred_at"] = acts.loc[late, "occurred_at"] + pd.to_timedelta(
        np.round(rng.uniform(0, 3, n) * 86400), unit="s"
    )
    t["activities"] = acts

    # prospect behaviour: same treatment
    events = t["engagement_events"]
    late = events["occurred_at"] >= cut
    to_gone = events["lead_id"].isin(gone_leads)
    events = events[~late | ((rng.random(len(events)) < 0.5) & ~to_gone)].copy()
    events.loc[events["lead_id"].isin(gone_leads), "lead_id"] = None
    late = events["occurred_at"] >= cut
    n = int(late.sum())
    events.loc[late, "type"] = _pick(rng, ENGAGEMENT_TYPES, n)
    events.loc[late, "value"] = rng.uniform(0, 600, n).round()
    events.loc[late, "account_id"] = _pick(rng, list(t["accounts"]["account_id"]), n)
    t["engagement_events"] = events
    return _retype(t, rng)


def past_altered(tables: Tables, cut: pd.Timestamp, seed: int) -> Tables:
    """Rewrite the past before ``cut`` without changing which leads and deals exist or are open when.

    Deletes and rewrites earlier activities and prospect events, rewrites earlier stage-history
    rows (stage, amount, expected close), and redraws static profile fields of leads, deals, reps
    and accounts. Lifecycle fields (created, converted, closed, outcome, status) stay untouched.
    """
    rng = np.random.default_rng(seed)
    t = _copy(tables)

    acts = t["activities"]
    early = acts["occurred_at"] < cut
    acts = acts[~early | (rng.random(len(acts)) < 0.7)].copy()
    early = (acts["occurred_at"] < cut) & (rng.random(len(acts)) < 0.5)
    n = int(early.sum())
    acts.loc[early, "type"] = _pick(rng, ACTIVITY_TYPES, n)
    acts.loc[early, "outcome"] = _pick(rng, ACTIVITY_OUTCOMES, n)
    acts.loc[early, "direction"] = _pick(rng, DIRECTIONS, n)
    t["activities"] = acts

    events = t["engagement_events"]
    early = events["occurred_at"] < cut
    events = events[~early | (rng.random(len(events)) < 0.7)].copy()
    early = events["occurred_at"] < cut
    n = int(early.sum())
    events.loc[early, "type"] = _pick(rng, ENGAGEMENT_TYPES, n)
    events.loc[early, "value"] = rng.uniform(0, 600, n).round()
    t["engagement_events"] = events

    hist = t["stage_history"].copy()
    early = hist["entered_at"] < cut
    n = int(early.sum())
    hist.loc[early, "stage"] = _pick(rng, OPEN_STAGES, n)
    hist.loc[early, "amount"] = hist.loc[early, "amount"] * rng.uniform(0.2, 5.0, n)
    hist.loc[early, "expected_close_date"] = hist.loc[early, "expected_close_date"] + pd.to_timedelta(
        rng.integers(-30, 60, n), unit="D"
    )
    t["stage_history"] = hist

    leads = t["leads"]
    n = len(leads)
    leads["source"] = _pick(rng, ["web_form", "referral", "cold_call", "event", "partner"], n)
    leads["channel"] = _pick(rng, ["inbound", "outbound"], n)
    leads["title"] = _pick(rng, ["CEO", "VP Sales", "Analyst", "IT Manager"], n)
    leads["industry"] = _pick(rng, ["software", "retail", "energy"], n)
    t["opportunities"]["product"] = _pick(rng, ["Basic", "Pro"], len(t["opportunities"]))
    t["reps"]["team"] = _pick(rng, ["X", "Y"], len(t["reps"]))
    t["reps"]["region"] = _pick(rng, ["EU", "US"], len(t["reps"]))
    accounts = t["accounts"]
    accounts["employees"] = rng.integers(1, 10_000, len(accounts))
    accounts["industry"] = _pick(rng, ["software", "retail", "energy"], len(accounts))
    return _retype(t, rng)


def build(
    tables: Tables, entity: Entity, dates: Sequence[pd.Timestamp], data_end: pd.Timestamp
) -> pd.DataFrame:
    """The snapshot feature table of ``entity`` at ``dates`` over ``tables``."""
    with frames_source(tables) as src:
        return build_feature_table(src, entity, list(dates), data_end=data_end).frame


def _rows(frame: pd.DataFrame, entity: Entity, keep: pd.Series, columns: list[str]) -> pd.DataFrame:
    """The chosen rows and columns, sorted by entity id and as_of."""
    id_col = ID_COLUMN[entity]
    return frame.loc[keep, columns].sort_values([id_col, "as_of"]).reset_index(drop=True)


def _is_count(name: str) -> bool:
    """Whether a numeric feature is a count (compared exactly)."""
    windowed = re.search(r"_\d+d$", name) is not None and "minutes" not in name
    return windowed or name.startswith("n_") or name in _COUNT_NAMES


def assert_same_features(expected: pd.DataFrame, actual: pd.DataFrame) -> None:
    """Counts, categories and flags equal exactly; other numbers to a relative 1e-9."""
    exact = [c for c in expected.columns if _is_count(c) or expected[c].dtype != "float64"]
    pd.testing.assert_frame_equal(expected[exact], actual[exact], check_exact=True)
    pd.testing.assert_frame_equal(expected, actual, check_exact=False, rtol=1e-9, atol=1e-12)


@st.composite
def as_of_dates(draw: st.DrawFn, sim: Simulation) -> list[pd.Timestamp]:
    """One to three as_of dates inside the simulated period.

    Each is a midnight, an arbitrary second, or exactly the time of an event in the data (so the
    strict ``before as_of`` boundary is exercised).
    """
    start = pd.Timestamp(sim.tables["leads"]["created_at"].min()).normalize() + pd.Timedelta(days=20)
    end = pd.Timestamp(sim.end)
    span_days = int((end - start) / pd.Timedelta(days=1))
    dates = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["midnight", "second", "event"]))
        if kind == "midnight":
            dates.append(start + pd.Timedelta(days=draw(st.integers(0, span_days - 1))))
        elif kind == "second":
            dates.append(start + pd.Timedelta(seconds=draw(st.integers(0, span_days * 86400 - 1))))
        else:
            table, column = draw(st.sampled_from(EVENT_TIMES))
            times = sim.tables[table][column]
            times = times[(times >= start) & (times < end)].sort_values().reset_index(drop=True)
            if times.empty:
                dates.append(start)
            else:
                dates.append(pd.Timestamp(times[draw(st.integers(0, len(times) - 1))]))
    return sorted(set(dates))


warehouses = st.tuples(st.integers(300, 600), st.integers(0, 10_000), st.integers(6, 9))


# ----------------------------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(warehouse=warehouses, alter_seed=st.integers(0, 2**32 - 1), data=st.data())
def test_features_ignore_everything_at_or_after_as_of(
    warehouse: tuple[int, int, int], alter_seed: int, data: st.DataObject
) -> None:
    sim = _simulation(*warehouse)
    dates = data.draw(as_of_dates(sim), label="dates")
    cut = data.draw(st.sampled_from(dates), label="cut")
    altered = future_altered(sim.tables, cut, alter_seed)
    if (sim.tables["activities"]["occurred_at"] >= cut).any():  # the future really changed
        by_id = altered["activities"].sort_values("activity_id").reset_index(drop=True)
        assert not by_id.equals(sim.tables["activities"].sort_values("activity_id").reset_index(drop=True))
    compared = 0
    for entity in ENTITIES:
        original = build(sim.tables, entity, dates, sim.end)
        rewritten = build(altered, entity, dates, sim.end)
        columns = [c for c in original.columns if not c.startswith("label_")]
        before = _rows(original, entity, original["as_of"] <= cut, columns)
        after = _rows(rewritten, entity, rewritten["as_of"] <= cut, columns)
        note(f"{entity}: {len(before)} rows at or before the cut {cut}")
        assert_same_features(before, after)
        compared += len(before)
    assert compared > 0


@PROPERTY_SETTINGS
@given(warehouse=warehouses, alter_seed=st.integers(0, 2**32 - 1), data=st.data())
def test_labels_ignore_everything_before_as_of(
    warehouse: tuple[int, int, int], alter_seed: int, data: st.DataObject
) -> None:
    sim = _simulation(*warehouse)
    dates = data.draw(as_of_dates(sim), label="dates")
    cut = data.draw(st.sampled_from(dates), label="cut")
    altered = past_altered(sim.tables, cut, alter_seed)
    for entity in ENTITIES:
        original = build(sim.tables, entity, dates, sim.end)
        rewritten = build(altered, entity, dates, sim.end)
        columns = [ID_COLUMN[entity], "as_of", *(c for c in original.columns if c.startswith("label_"))]
        before = _rows(original, entity, original["as_of"] >= cut, columns)
        after = _rows(rewritten, entity, rewritten["as_of"] >= cut, columns)
        pd.testing.assert_frame_equal(before, after, check_exact=True)


# ----------------------------------------------------------------------------------------------
# the comparison has teeth, and the as_of boundary is strict
# ----------------------------------------------------------------------------------------------


def _busy_deal(sim: Simulation, as_of: pd.Timestamp) -> tuple[str, int]:
    """A deal open at ``as_of`` and the index of one of its touches after ``as_of``."""
    opps, acts = sim.tables["opportunities"], sim.tables["activities"]
    open_ids = set(opps.loc[_deal_alive(opps, as_of), "opportunity_id"])
    later = acts[
        acts["opportunity_id"].isin(open_ids)
        & (acts["occurred_at"] > as_of)
        & (acts["outcome"] != "scheduled")
    ]
    assert not later.empty, "the fixture simulation should have an open deal with later activity"
    return str(later.iloc[0]["opportunity_id"]), int(later.index[0])


def _same_features(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Whether :func:`assert_same_features` passes."""
    try:
        assert_same_features(a, b)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize(("shift", "changes"), [(pd.Timedelta(0), False), (pd.Timedelta(seconds=-1), True)])
def test_an_activity_counts_only_when_strictly_before_as_of(shift: pd.Timedelta, changes: bool) -> None:
    sim = _simulation(400, 7, 7)
    as_of = pd.Timestamp(sim.end) - pd.Timedelta(days=60)
    deal, row = _busy_deal(sim, as_of)
    moved = _copy(sim.tables)
    moved["activities"].loc[row, "occurred_at"] = as_of + shift
    original = build(sim.tables, "opportunity", [as_of], sim.end)
    rewritten = build(moved, "opportunity", [as_of], sim.end)
    features = [c for c in original.columns if not c.startswith("label_")]
    assert _same_features(original[features], rewritten[features]) is not changes
    touches = (
        rewritten.set_index("opportunity_id")["act_touches_total"]
        - original.set_index("opportunity_id")["act_touches_total"]
    )
    assert touches.to_dict()[deal] == (1.0 if changes else 0.0)


def test_deal_size_ignores_the_final_amount_when_history_starts_late() -> None:
    sim = _simulation(400, 7, 7)
    as_of = pd.Timestamp(sim.end) - pd.Timedelta(days=60)
    late_history = _copy(sim.tables)
    hist = late_history["stage_history"]
    late_history["stage_history"] = hist[hist["entered_at"] >= as_of]  # history tracked from as_of on
    original = build(late_history, "opportunity", [as_of], sim.end)
    rewritten = build(future_altered(late_history, as_of, 1), "opportunity", [as_of], sim.end)
    columns = [c for c in original.columns if not c.startswith("label_")]
    assert len(original) > 0
    assert_same_features(
        _rows(original, "opportunity", original["as_of"] <= as_of, columns),
        _rows(rewritten, "opportunity", rewritten["as_of"] <= as_of, columns),
    )
