"""The reports split their frames by group once (a large CRM has thousands of reps): same figures.

Every report is computed twice on a simulated CRM: with every frame split (``_SPLIT_FROM`` 0), and
with each group's rows compared one group at a time as before; the tables must be equal to the last
digit. The quota rows of a group must be the rows the
old filter kept, in the same order.
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.tracking import common
from forecast.tracking import data as tracking_data
from forecast.tracking.activity_index import activity_index, built_activity_index
from forecast.tracking.api import REPORTS, report
from forecast.tracking.data import ALL_LABEL, TrackingData, prepare
from forecast.tracking.goals import _quota_intervals, daily, quota_rows
from forecast.tracking.insights import insights
from forecast.tracking.periods import Period, parse_period


@pytest.fixture(scope="module")
def data() -> TrackingData:
    crm = simulate_crm(SimulationConfig(n_leads=2000, seed=5, months=12))
    return prepare(crm.tables, DEFAULT_PIPELINE)


def _old_quota_rows(data: TrackingData, by: str, group: str) -> pd.DataFrame:
    q = _quota_intervals(data.quotas)
    if by == "rep":
        return q[(q["owner_type"] == "rep") & (q["owner_id"] == group)]
    if by == "team":
        team_rows = q[(q["owner_type"] == "team") & (q["owner_id"] == group)]
        if not team_rows.empty:
            return team_rows
    members = set(data.reps.loc[data.reps[by] == group, "rep_id"])
    return q[(q["owner_type"] == "rep") & q["owner_id"].isin(members)]


@pytest.mark.parametrize(
    ("name", "by"),
    [(name, by) for name in REPORTS for by in ("rep", "team", "channel")],
)
def test_reports_equal_with_and_without_the_split(
    data: TrackingData, name: str, by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    period = parse_period("quarter", data.as_of)
    monkeypatch.setattr(common, "_SPLIT_FROM", 0)
    try:
        split = report(data, name, period, by)
    except common.GroupingError:
        pytest.skip(f"{name} is not grouped by {by}")
    monkeypatch.setattr(common, "_SPLIT_FROM", 10**12)  # every group compared one at a time
    whole = report(data, name, period, by)
    assert split.keys() == whole.keys()
    for key in split:
        pd.testing.assert_frame_equal(split[key], whole[key], check_exact=True)


def test_insights_equal_with_and_without_the_split(
    data: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    period = parse_period("month", data.as_of)
    monkeypatch.setattr(common, "_SPLIT_FROM", 0)
    split = insights(data, period).as_dict()
    monkeypatch.setattr(common, "_SPLIT_FROM", 10**12)
    assert split == insights(data, period).as_dict()


@pytest.mark.parametrize("by", ["rep", "team", "manager", "region"])
def test_quota_rows_are_the_old_filters_rows(data: TrackingData, by: str) -> None:
    groups = [*sorted(set(data.reps["rep_id" if by == "rep" else by])), "nobody", ALL_LABEL]
    for group in groups:
        new = quota_rows(data, by, group)
        old = quota_rows(data, by, group) if group == ALL_LABEL else _old_quota_rows(data, by, group)
        pd.testing.assert_frame_equal(new, old, check_exact=True)


def test_prepare_equals_the_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    """The activities' and leads' keys by lookups (one row per key) equal the old left merges."""
    crm = simulate_crm(SimulationConfig(n_leads=2000, seed=5, months=12))
    fast = prepare(crm.tables, DEFAULT_PIPELINE)
    monkeypatch.setattr(tracking_data, "_left_join", lambda *args: None)  # every join a merge
    merged = prepare(crm.tables, DEFAULT_PIPELINE)
    for name in ("reps", "leads", "opportunities", "stage_history", "activities", "engagement"):
        pd.testing.assert_frame_equal(getattr(fast, name), getattr(merged, name), check_exact=True)
    assert fast.activities["cold"].any() and (fast.activities["source"] != "(none)").any()


@pytest.mark.parametrize("by", ["rep", "team", "region"])
def test_daily_of_one_group_is_its_rows_of_the_whole_table(data: TrackingData, by: str) -> None:
    period = parse_period("month", data.as_of)
    whole = daily(data, period, by)
    for group in [*sorted(whole[by].unique())[:3], ALL_LABEL, "nobody"]:
        expected = whole[whole[by] == group].reset_index(drop=True)
        got = daily(data, period, by, only=group)
        if expected.empty:
            assert got.empty
        else:
            pd.testing.assert_frame_equal(got, expected, check_exact=True)


def _rows_rep_weeks_keeps(
    acts: pd.DataFrame, by: str, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """The activities ``rep_weeks`` counts, in every column, found by its own pandas filters."""
    a = acts[(acts["occurred_at"] >= start) & (acts["occurred_at"] < end) & acts["done"]]
    return a[a["direction"] == "outbound"]


@pytest.mark.parametrize("by", ["team", "rep", "channel", "source", "region"])
def test_effectiveness_from_the_window_equals_it_from_every_activity(
    data: TrackingData, by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report from the coded activities equals it from the period's and window's rows in pandas.

    The pandas path reads the window's rows found by ``rep_weeks``' own filters, in every column.
    """
    eff = importlib.import_module("forecast.tracking.effectiveness")  # the package shadows it: a function

    assert activity_index(data.activities) is not None  # the report reads the coded activities
    for name in ("month", "quarter"):
        period = parse_period(name, data.as_of)
        narrow = eff.effectiveness(data, period, by)
        with monkeypatch.context() as m:  # every column, the rows found by rep_weeks' own filters
            m.setattr(eff, "activity_index", lambda acts: None)  # the rows taken, counted in pandas
            m.setattr(eff, "_columns", lambda frame, by, needed: list(frame.columns))
            m.setattr(eff, "_week_rows", _rows_rep_weeks_keeps)
            m.setattr(eff, "memo", lambda frame, name, compute: compute())  # (all) counted again too
            whole = eff.effectiveness(data, period, by)
        assert narrow["corr_new_opportunities_calls_n"].max() > 10  # the rep-weeks mean something
        pd.testing.assert_frame_equal(narrow, whole, check_exact=True)


def test_prospects_from_the_columns_read_equal_them_from_every_column(
    data: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    pro = importlib.import_module("forecast.tracking.prospects")
    period = parse_period("month", data.as_of)
    narrow = pro.prospects(data, period, "rep")
    monkeypatch.setattr(pro, "_ACTIVITY_COLUMNS", tuple(data.activities.columns))
    whole = pro.prospects(data, period, "rep")
    assert narrow["last_contact"].notna().sum() > 100 and narrow["next_action"].notna().any()
    pd.testing.assert_frame_equal(narrow, whole, check_exact=True)


def test_goal_between_in_numpy_equals_it_in_pandas_to_the_bit(
    data: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    goals = importlib.import_module("forecast.tracking.goals")
    _goal_between_frame, goal_between = goals._goal_between_frame, goals.goal_between
    fallbacks: list[object] = []
    monkeypatch.setattr(goals, "_goal_between_frame", lambda *a: fallbacks.append(a))

    starts = [
        data.as_of - pd.Timedelta(days=d, hours=h, microseconds=u)
        for d in (0, 1, 3, 17, 45, 200, 400)
        for h, u in ((0, 0), (13, 0), (7, 123456))
    ]
    lengths = [pd.Timedelta(hours=5), pd.Timedelta(days=1), pd.Timedelta(days=30), pd.Timedelta(days=365)]
    groups = [("rep", r) for r in sorted(data.reps["rep_id"])[:8]] + [("team", ALL_LABEL)]
    seen = 0
    every = [quota_rows(data, by, group) for by, group in groups]
    mixed = [r.assign(start=r["start"].astype("datetime64[us]")) for r in every]  # as a warehouse's read
    for rows in every + mixed:
        for start in starts:
            for length in lengths:
                fast, slow = (
                    goal_between(rows, start, start + length),
                    _goal_between_frame(rows, start, start + length),
                )
                assert (fast == slow) or (fast != fast and slow != slow), (start, length, fast, slow)
                seen += fast == fast
    assert seen > 100  # goals that overlap were compared
    assert not fallbacks  # in numpy, every one


@pytest.mark.parametrize("by", ["channel", "team"])
def test_process_from_the_columns_read_equals_it_from_every_column(
    data: TrackingData, by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = importlib.import_module("forecast.tracking.process")
    period = parse_period("quarter", data.as_of)
    narrow = proc.process(data, period, by)
    monkeypatch.setattr(proc, "_CONTACT_COLUMNS", tuple(data.activities.columns))
    whole = proc.process(data, period, by)
    assert narrow["open_leads_silent"].notna().any()
    pd.testing.assert_frame_equal(narrow, whole, check_exact=True)


@pytest.mark.parametrize("by", ["rep", "team", "source"])
def test_the_funnel_from_the_columns_read_equals_it_from_every_column(
    data: TrackingData, by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fun = importlib.import_module("forecast.tracking.funnel")  # the package shadows it: a function
    period = parse_period("quarter", data.as_of)
    narrow = fun.funnel(data, period, by)
    monkeypatch.setattr(fun, "narrow", lambda frame, *columns: frame)
    whole = fun.funnel(data, period, by)
    assert narrow["won"].iloc[-1] > 10 and narrow["weighted_pipeline"].iloc[-1] > 0
    pd.testing.assert_frame_equal(narrow, whole, check_exact=True)


def test_stage_win_rates_from_the_coded_history_equal_the_sets(
    data: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    funnel = importlib.import_module("forecast.tracking.funnel")
    cuts = [data.as_of - pd.Timedelta(days=d) for d in (0, 30, 95, 250, 5000)]
    coded = [funnel.stage_win_rates(data, cut) for cut in cuts]
    monkeypatch.setattr(funnel, "_stage_deals", lambda data: None)  # the sets of deal ids
    assert coded == [funnel.stage_win_rates(data, cut) for cut in cuts]
    assert len({round(r, 6) for r in coded[0].values()}) > 2  # rates of their own, not the overall one
    assert len(set(coded[-1].values())) == 1  # nothing closed yet: every stage the overall (nan)
    repeated = data.opportunities.iloc[[0, *range(len(data.opportunities))]]
    assert funnel._distinct_stage_deals(data.stage_history, repeated) is None  # ids not a key: the sets


def test_insights_from_the_coded_activities_equal_them_from_the_frame(data: TrackingData) -> None:
    crm = TrackingData(**{**data.__dict__, "activities": data.activities.copy()})  # no index built yet
    periods = [parse_period(p, crm.as_of) for p in ("month", "quarter", "week")]
    assert built_activity_index(crm.activities) is None
    from_frame = [insights(crm, p).as_dict() for p in periods]
    assert built_activity_index(crm.activities) is None  # the insights alone do not build it
    assert activity_index(crm.activities) is not None
    assert built_activity_index(crm.activities) is not None
    assert from_frame == [insights(crm, p).as_dict() for p in periods]
    assert sum(r["tested"] for r in from_frame) > 100


def _reference_process(data: TrackingData, period: Period, by: str) -> pd.DataFrame:
    """The process report as it was computed: each group's leads filtered out of the frames."""
    proc = importlib.import_module("forecast.tracking.process")
    leads = data.leads
    cutoff = min(period.end, data.as_of)
    created = leads[period.contains(leads["created_at"])]
    qualified = leads[
        period.contains(leads["converted_at"])
        | ((leads["status"] == "qualified") & period.contains(leads["status_changed_at"]))
    ]
    open_leads = leads[
        (leads["created_at"] < cutoff)
        & leads["status"].isin(["new", "working", "qualified"])
        & leads["converted_at"].isna()
    ]
    contacts = data.activities.loc[
        data.activities["done"] & (data.activities["occurred_at"] < cutoff), ["lead_id", "occurred_at"]
    ]
    last_contact = contacts.groupby("lead_id")["occurred_at"].max()
    last = pd.to_datetime(open_leads["lead_id"].map(last_contact)).fillna(open_leads["created_at"])
    open_leads = open_leads.assign(silent=tracking_data.days(cutoff - last) > proc.NO_CONTACT_DAYS)
    months = period.days / proc.DAYS_PER_MONTH

    def of(frame: pd.DataFrame, group: str) -> pd.DataFrame:
        return frame if group == ALL_LABEL else frame[frame[by].astype(str) == group]

    def compute(group: str) -> common.Row:
        row: common.Row = {}
        c = of(created, group)
        row["prospects"] = len(c)
        row["inbound_prospects"] = int((c["channel"] == "inbound").sum())
        row["outbound_prospects"] = int((c["channel"] == "outbound").sum())
        q = of(qualified, group)
        row["qualified"] = len(q)
        row["qualified_per_month"] = len(q) / months if months > 0 else float("nan")
        common.add_rate(row, "lead_conversion", int(c["converted_at"].notna().sum()), len(c))
        o = of(open_leads, group)
        row["open_leads"] = len(o)
        common.add_rate(row, "open_leads_silent", int(o["silent"].sum()), len(o))
        return row

    return common.per_group(data, by, [created, qualified], compute)


@pytest.mark.parametrize("by", ["rep", "team", "channel", "source", "region"])
def test_the_process_report_equals_each_groups_filtered_leads(data: TrackingData, by: str) -> None:
    proc = importlib.import_module("forecast.tracking.process")
    for spec in ("month", "quarter", "week"):
        period = parse_period(spec, data.as_of)
        got = proc.process(data, period, by)
        assert got["prospects"].iloc[-1] > 0 and got["open_leads_silent"].notna().any()
        pd.testing.assert_frame_equal(got, _reference_process(data, period, by), check_exact=True)


@pytest.mark.parametrize("name", ["process", "prospects", "performance", "insights"])
def test_a_crm_without_activities_gets_its_reports(data: TrackingData, name: str) -> None:
    """No activity at all (a source of leads and deals only): the reports still answer, none contacted."""
    crm = TrackingData(**{**data.__dict__, "activities": data.activities.iloc[0:0].copy()})
    period = parse_period("month", crm.as_of)
    if name == "insights":
        assert insights(crm, period).as_dict()["tested"] >= 0
        return
    table = report(crm, name, period, "rep")[name]
    assert len(table) > 1
    if name == "process":  # each open lead's last contact its creation
        assert table["open_leads"].iloc[-1] > 0 and table["open_leads_silent"].iloc[-1] > 0
        pd.testing.assert_frame_equal(table, _reference_process(crm, period, "rep"), check_exact=True)
    if name == "prospects":
        assert table["last_contact"].isna().all()


def test_rows_of_columns_equal_the_frames_rows(data: TrackingData) -> None:
    acts = data.activities.copy()
    acts["email_opened"] = acts["email_opened"].astype("boolean")  # an extension column
    acts["type"] = acts["type"].astype("category")
    acts.index = acts.index * 3 + 7  # labels kept
    rows = np.flatnonzero(np.random.default_rng(0).random(len(acts)) < 0.3)
    columns = ["occurred_at", "rep", "type", "email_opened", "duration_seconds", "done", "not_a_column"]
    taken = common.rows_of_columns(acts, rows, columns)
    pd.testing.assert_frame_equal(taken, acts.iloc[rows][[c for c in acts.columns if c in columns]])
    assert common.rows_of_columns(acts, rows[:0], columns).empty


def test_rows_of_columns_of_a_frame_with_a_repeated_name_take_its_rows() -> None:
    frame = pd.DataFrame([[1, 2, 3], [4, 5, 6], [7, 8, 9]], columns=["a", "b", "a"])
    rows = np.array([2, 0])
    pd.testing.assert_frame_equal(common.rows_of_columns(frame, rows, ["a"]), frame.iloc[rows][["a"]])


@pytest.mark.parametrize("spec", ["month", "quarter", "2024-01-01..2024-12-31"])
@pytest.mark.parametrize("name", ["performance", "process"])
def test_a_brief_table_is_the_whole_tables_columns_less_the_costly_ones(
    data: TrackingData, name: str, spec: str
) -> None:
    from forecast.dashboard.compare import HEADLINE
    from forecast.tracking.performance import BRIEF_LEFT_OUT

    period = parse_period(spec, data.as_of)
    activity_index(data.activities)  # the coded path as the dashboard reads it
    for by in ("rep", "team"):
        whole = report(data, name, period, by, extras=False)[name]
        brief = report(data, name, period, by, extras=False, brief=True)[name]
        left_out = BRIEF_LEFT_OUT if name == "performance" else ("open_leads", "open_leads_silent")
        kept = [c for c in whole.columns if not any(c == o or c.startswith(f"{o}_") for o in left_out)]
        assert list(brief.columns) == kept
        pd.testing.assert_frame_equal(brief, whole[kept], check_exact=True)
        assert {m for m, _, _, source in HEADLINE if source == name} <= set(brief.columns)
