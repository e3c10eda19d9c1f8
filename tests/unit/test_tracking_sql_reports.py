"""The reports as DuckDB aggregates equal the reports on the CRM read into memory.

A simulated CRM is ingested, then given in SQL the quirks real exports have: activities of no rep,
of a rep not in the reps table, on a lead or deal the CRM does not hold, on a deal and another
lead; a missing type, direction, outcome, duration or email flag; empty and missing sources; a rep
listed twice, a rep whose id is ``(none)``; two stage changes at one time, a last one without an
amount, a close not recorded in the history, a stage repeated, deals with no stage change (open at
a past as of in their closed stage, or in none). Each report of :mod:`forecast.tracking.sql_reports`
over :func:`forecast.tracking.sql_cut.open_cut` must give the in-memory report of
:func:`forecast.tracking.read.load`'s data: the same rows, groups, names and counts, and the same
sums, means, medians, quantiles and correlations up to the order of addition.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecast.data.ingest import ingest
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.data.warehouse import Warehouse
from forecast.tracking import (
    sql_effectiveness,
    sql_goals,
    sql_insights,
    sql_performance,
    sql_process,
    sql_prospects,
    sql_reports,
)
from forecast.tracking.adjust import adjusted
from forecast.tracking.api import report
from forecast.tracking.data import ALL_LABEL, NONE_LABEL, TrackingData
from forecast.tracking.data import GROUPINGS as FUNNEL_GROUPINGS
from forecast.tracking.effectiveness import GROUPINGS as EFFECTIVENESS_GROUPINGS
from forecast.tracking.effectiveness import effectiveness
from forecast.tracking.goals import GROUPINGS as GOAL_GROUPINGS
from forecast.tracking.goals import goals
from forecast.tracking.insights import RULES, Insight, InsightConfig, _context, insights
from forecast.tracking.performance import GROUPINGS, performance
from forecast.tracking.periods import Period, parse_period
from forecast.tracking.process import GROUPINGS as PROCESS_GROUPINGS
from forecast.tracking.process import STAGE_GROUPINGS, process, stage_table
from forecast.tracking.prospects import GROUPINGS as PROSPECT_GROUPINGS
from forecast.tracking.prospects import prospects
from forecast.tracking.read import load
from forecast.tracking.sql_cut import NotInSqlError, SqlCut, open_cut
from tests.conftest import shared_dataset

PAST = pd.Timestamp("2024-05-20T09:30")
ADJUSTED_GROUPINGS = ("rep", "team", "manager", "region", "source", "channel")
PERIODS = (None, "quarter", "week", "2023-01-01..2031-01-01")
QUIRKS = (
    "UPDATE activities SET rep_id = NULL WHERE hash(activity_id) % 41 = 0",
    "UPDATE activities SET rep_id = 'R-gone' WHERE hash(activity_id) % 43 = 0",
    "UPDATE activities SET lead_id = 'L-unknown' WHERE hash(activity_id) % 47 = 0 AND lead_id IS NOT NULL",
    "UPDATE activities SET opportunity_id = 'O-unknown' WHERE hash(activity_id) % 53 = 0"
    " AND opportunity_id IS NOT NULL",
    "UPDATE activities SET direction = NULL WHERE hash(activity_id) % 7 = 1",
    "UPDATE activities SET type = NULL WHERE hash(activity_id) % 61 = 2",
    "UPDATE activities SET type = 'sms' WHERE hash(activity_id) % 29 = 3",
    "UPDATE activities SET outcome = NULL WHERE hash(activity_id) % 11 = 4",
    "UPDATE activities SET duration_seconds = NULL WHERE hash(activity_id) % 13 = 5",
    "UPDATE activities SET email_opened = NULL WHERE hash(activity_id) % 5 = 2",
    "UPDATE activities SET email_replied = NULL WHERE hash(activity_id) % 6 = 2",
    "UPDATE leads SET source = '' WHERE hash(lead_id) % 17 = 0",
    "UPDATE leads SET channel = NULL WHERE hash(lead_id) % 19 = 0",
    "UPDATE reps SET team = NULL WHERE rep_id = (SELECT min(rep_id) FROM reps)",
    "INSERT INTO reps SELECT '(none)', 'Nobody', 'Unassigned', manager, region, hired_at, active"
    " FROM reps LIMIT 1",  # a rep whose id is the label of no rep: rows without a rep take its keys
    "INSERT INTO reps SELECT rep_id, 'A second row', 'other team', manager, region, hired_at, active"
    " FROM reps WHERE rep_id = (SELECT max(rep_id) FROM reps)",
    "UPDATE activities SET lead_id = (SELECT min(lead_id) FROM leads) WHERE hash(activity_id) % 37 = 6"
    " AND opportunity_id IS NOT NULL",
    "INSERT INTO stage_history SELECT opportunity_id, stage, entered_at, amount * 2, expected_close_date"
    " FROM stage_history WHERE hash(opportunity_id) % 5 = 1",
    "UPDATE stage_history SET amount = NULL WHERE hash(opportunity_id) % 9 = 0",
    "DELETE FROM stage_history WHERE stage IN ('closed_won', 'closed_lost') AND hash(opportunity_id) % 4 = 0",
    "UPDATE stage_history SET stage = 'demo' WHERE stage = 'proposal' AND hash(opportunity_id) % 8 = 1",
    # deals with no stage change: at a past as of, one closed later is open in its closed stage
    "DELETE FROM stage_history WHERE hash(opportunity_id) % 11 = 5",
    "UPDATE opportunities SET stage = NULL WHERE hash(opportunity_id) % 22 = 5",
    "UPDATE opportunities SET amount = NULL WHERE hash(opportunity_id) % 23 = 0",
    "UPDATE opportunities SET amount = NULL WHERE hash(opportunity_id) % 7 = 3",  # no amount known at all
    "UPDATE stage_history SET amount = NULL WHERE hash(opportunity_id) % 7 = 3",
    "UPDATE opportunities SET rep_id = NULL WHERE hash(opportunity_id) % 31 = 0",
    # the Prospects list: planned activities at one time, engagement without a lead or a type,
    # written scores at one time, later, missing, and after every as of
    "UPDATE activities SET scheduled_for = date_trunc('day', scheduled_for) WHERE hash(activity_id) % 2 = 0",
    "UPDATE activities SET type = NULL WHERE scheduled_for IS NOT NULL AND hash(activity_id) % 9 = 0",
    "INSERT INTO activities SELECT * REPLACE (activity_id || '-again' AS activity_id,"
    " CASE WHEN type = 'meeting' THEN 'call' ELSE 'meeting' END AS type)"
    " FROM activities WHERE scheduled_for IS NOT NULL AND hash(activity_id) % 3 = 0",  # a second plan then
    "UPDATE engagement_events SET occurred_at = date_trunc('day', occurred_at) WHERE hash(event_id) % 3 = 0",
    # deals last touched on the first day of the insights' window (the past as of's last week: the
    # 14 days before its cut-off, 2024-05-20)
    "UPDATE activities SET occurred_at = TIMESTAMP '2024-05-06 12:00' WHERE opportunity_id IS NOT NULL"
    " AND occurred_at >= '2024-05-06' AND occurred_at < '2024-05-20' AND hash(activity_id) % 3 = 0",
    # leads out of their ids' order in the table (the list's ties keep the table's order)
    "CREATE TEMP TABLE moved AS SELECT * FROM leads WHERE hash(lead_id) % 10 = 0;"
    " DELETE FROM leads WHERE hash(lead_id) % 10 = 0; INSERT INTO leads SELECT * FROM moved",
    "UPDATE engagement_events SET lead_id = NULL WHERE hash(event_id) % 23 = 0",
    "UPDATE engagement_events SET type = NULL WHERE hash(event_id) % 29 = 1",
    "CREATE TABLE lead_scores AS SELECT lead_id, (hash(lead_id) % 100)::DOUBLE AS score, 'C' AS band,"
    " TIMESTAMP '2024-03-01' AS as_of FROM leads WHERE hash(lead_id) % 3 > 0",
    "INSERT INTO lead_scores SELECT lead_id, score + 1, 'B', as_of FROM lead_scores"
    " WHERE hash(lead_id) % 2 = 0",
    "INSERT INTO lead_scores SELECT lead_id, score + 2, 'A', TIMESTAMP '2024-05-01' FROM lead_scores"
    " WHERE hash(lead_id) % 5 = 0",
    "INSERT INTO lead_scores SELECT lead_id, NULL, NULL, TIMESTAMP '2024-08-01' FROM lead_scores"
    " WHERE hash(lead_id) % 7 = 0",
    "INSERT INTO lead_scores SELECT lead_id, 0, 'D', TIMESTAMP '2031-01-01' FROM lead_scores",
    # closes dated before a later stage change (back-dated): a stay that begins in a period and ends,
    # at the close, months before it; in the past as of's last week and the last weeks of the data
    "INSERT INTO stage_history SELECT opportunity_id, 'qualification', TIMESTAMP '2024-05-14 10:00',"
    " amount, expected_close_date FROM opportunities WHERE outcome IN ('won', 'lost')"
    " AND closed_at < TIMESTAMP '2024-03-15' AND hash(opportunity_id) % 3 = 0",
    "INSERT INTO stage_history SELECT opportunity_id, 'qualification', last.at - INTERVAL (d) DAY,"
    " amount, expected_close_date FROM opportunities, (SELECT max(entered_at) AS at FROM stage_history) last,"
    " (VALUES (3), (9)) days(d) WHERE outcome IN ('won', 'lost') AND closed_at < last.at - INTERVAL 120 DAY"
    " AND hash(opportunity_id) % 3 = 1",
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sql-performance")
    crm = simulate_crm(SimulationConfig(n_leads=1500, seed=9, months=10))
    crm.write(root / "crm")
    path = root / "crm.duckdb"
    ingest(root / "crm", "canonical", Warehouse(path), as_of=pd.Timestamp("2030-01-01"))
    with duckdb.connect(str(path)) as con:
        for sql in QUIRKS:
            con.execute(sql)
    return path


@contextmanager
def _cut_and_read(path: Path, as_of: pd.Timestamp | None = None) -> Iterator[tuple[SqlCut, TrackingData]]:
    """The warehouse at ``path`` cut in SQL and read into memory at ``as_of`` (its connection open)."""
    with Warehouse(path).connect(read_only=True) as con:
        cut = open_cut(con, as_of)
        assert cut is not None
        yield cut, load(con, as_of)


def _same(sql: pd.DataFrame, memory: pd.DataFrame, by: str) -> None:
    assert list(sql.columns) == list(memory.columns)
    if memory.empty and memory.columns.empty:  # a table the source cannot fill (no stage history)
        assert sql.empty
        return
    assert sql[by].tolist() == memory[by].tolist()
    for col in sql.columns:
        left, right = sql[col], memory[col]
        if left.dtype == object or right.dtype == object or pd.api.types.is_integer_dtype(right):
            assert left.tolist() == right.tolist(), col
        else:
            np.testing.assert_allclose(
                left.astype(float), right.astype(float), rtol=1e-12, atol=1e-12, err_msg=col
            )


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_sql_performance_report_equals_the_report_in_memory(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    with _cut_and_read(warehouse, as_of) as (cut, data):
        assert cut.as_of == data.as_of and cut.notes == data.notes
        compared = 0
        for spec in PERIODS:
            period = parse_period(spec, cut.as_of)
            for by in GROUPINGS:
                for brief in (False, True):
                    sql = sql_performance.performance(cut, period, by, brief=brief)
                    memory = performance(data, period, by, brief=brief)
                    _same(sql, memory, by)
                    compared += 1
            only = sorted(data.reps["rep_id"])[:3]
            narrowed = sql_performance.performance(cut, period, "rep", only=only)
            _same(narrowed, performance(data, period, "rep", only=only), "rep")
        whole = sql_performance.performance(cut, parse_period(PERIODS[-1], cut.as_of), "source")
    assert compared == len(PERIODS) * len(GROUPINGS) * 2
    acts = data.activities  # the quirks are there to be counted
    assert (acts["rep"] == NONE_LABEL).any() and (acts["rep"] == "R-gone").any() and acts["cold"].any()
    total = whole[whole["source"] == ALL_LABEL].iloc[0]
    assert (
        NONE_LABEL in set(whole["source"]) and total["cold_call_opportunities"] > 0 and total["sms_sent"] > 0
    )


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_sql_effectiveness_report_equals_the_report_in_memory(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    with _cut_and_read(warehouse, as_of) as (cut, data):
        correlated = 0
        for spec in PERIODS:
            period = parse_period(spec, cut.as_of)
            for by in EFFECTIVENESS_GROUPINGS:
                sql = sql_effectiveness.effectiveness(cut, period, by)
                _same(sql, effectiveness(data, period, by), by)
                correlated += int(sql["corr_new_opportunities_calls"].notna().sum())
            only = sorted(data.reps["team"])[:1]
            _same(
                sql_effectiveness.effectiveness(cut, period, "team", only=only),
                effectiveness(data, period, "team", only=only),
                "team",
            )
    assert correlated > 20  # correlations over rep-weeks are compared, not only missing ones


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_sql_process_and_stage_tables_equal_the_tables_in_memory(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    with _cut_and_read(warehouse, as_of) as (cut, data):
        for spec in PERIODS:
            period = parse_period(spec, cut.as_of)
            for by in PROCESS_GROUPINGS:
                for brief in (False, True):
                    sql = sql_process.process(cut, period, by, brief=brief)
                    _same(sql, process(data, period, by, brief=brief), by)
            for by in STAGE_GROUPINGS:
                _same(sql_process.stage_table(cut, period, by), stage_table(data, period, by), by)
            for by in GOAL_GROUPINGS:
                _same(sql_goals.goals(cut, period, by), goals(data, period, by), by)
            for name, table in sql_reports.report(cut, "funnel", period, "rep").items():
                _same(table, report(data, "funnel", period, "rep")[name], table.columns[0])
            only = sorted(data.reps["region"])[:1]
            _same(
                sql_process.process(cut, period, "region", only=only),
                process(data, period, "region", only=only),
                "region",
            )
            _same(
                sql_process.stage_table(cut, period, "region", only=only),
                stage_table(data, period, "region", only=only),
                "region",
            )
        whole = parse_period(PERIODS[-1], cut.as_of)
        table, stages = (
            sql_process.process(cut, whole, "channel"),
            sql_process.stage_table(cut, whole, "product"),
        )
    total = table[table["channel"] == ALL_LABEL].iloc[0]
    assert (
        total["qualified"] > 0
        and total["open_leads_silent"] > 0
        and total["open_leads"] > total["open_leads_silent"]
    )
    every = stages[stages["product"] == ALL_LABEL]
    assert every["advanced"].sum() > 0 and every["lost"].sum() > 0 and every["stuck"].sum() > 0
    assert every["still_open"].sum() > 0 and every["days_median"].notna().all()


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_sql_goals_table_equals_the_table_in_memory(warehouse: Path, as_of: pd.Timestamp | None) -> None:
    with _cut_and_read(warehouse, as_of) as (cut, data):
        for spec in (*PERIODS, "2024-02-10..2024-04-20"):
            period = parse_period(spec, cut.as_of)
            for by in GOAL_GROUPINGS:
                _same(sql_goals.goals(cut, period, by), goals(data, period, by), by)
        table = sql_goals.goals(cut, parse_period("quarter", cut.as_of), "team")
    total = table.iloc[-1]
    assert total["goal"] > 0 and total["won_deals"] > 0 and total["ref_avg_won_amount"] > 0
    assert table["deals_needed"].notna().sum() >= 4 and table["ytd_goal"].notna().sum() >= 4


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_sql_funnel_tables_equal_the_tables_in_memory(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    with _cut_and_read(warehouse, as_of) as (cut, data):
        for spec in PERIODS:
            period = parse_period(spec, cut.as_of)
            for by in FUNNEL_GROUPINGS:
                sql, memory = (
                    sql_reports.report(cut, "funnel", period, by),
                    report(data, "funnel", period, by),
                )
                assert sql.keys() == memory.keys() == {"funnel", "monthly", "loss_reasons"}
                for name, table in sql.items():
                    _same(table, memory[name], by if name == "funnel" else table.columns[0])
            only = sorted(data.reps["team"])[:1]
            narrowed = sql_reports.report(cut, "funnel", period, "team", only=only)["funnel"]
            _same(narrowed, report(data, "funnel", period, "team", only=only)["funnel"], "team")
        whole = sql_reports.report(cut, "funnel", parse_period("quarter", cut.as_of), "product")
    total = whole["funnel"].iloc[-1]
    assert total["open_opportunities"] > 0 and total["weighted_pipeline"] > 0 and total["won"] > 0
    assert len(whole["monthly"]) == 12 and len(whole["loss_reasons"]) > 1


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_sql_prospects_list_equals_the_list_in_memory(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    with _cut_and_read(warehouse, as_of) as (cut, data):
        for spec in PERIODS:
            period = parse_period(spec, cut.as_of)
            for by in PROSPECT_GROUPINGS:
                sql = sql_reports.report(cut, "prospects", period, by)
                assert sql.keys() == {"prospects"}
                pd.testing.assert_frame_equal(sql["prospects"], prospects(data, period, by))
        listed = sql_prospects.prospects(cut, parse_period(None, cut.as_of), "rep")
    # each lookup is compared with values, not only where both are missing
    assert set(listed["kind"]) == {"lead", "opportunity"} and listed["deal_size"].notna().sum() > 5
    for col in ("last_contact", "next_action", "last_engagement", "score", "score_band", "expected_close"):
        assert listed[col].notna().sum() > 5, col
    assert (listed["web_visits_30d"] > 0).sum() > 5 and (listed["social_actions_30d"] > 0).sum() > 5


LAX = InsightConfig(fdr=1.0, min_trials=1, min_expected=0.0, min_effect=0.0, quota_miss=1.0)
"""An evidence bar every candidate passes: every rule's insights are written and compared."""


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_insights_of_the_part_of_the_crm_they_read_equal_those_of_the_whole_read(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    raised: Counter[str] = Counter()
    tested = 0
    with _cut_and_read(warehouse, as_of) as (cut, data):
        for spec in PERIODS:
            period = parse_period(spec, cut.as_of)
            for config in (None, LAX):
                part = sql_insights.insights(cut, period, config)
                assert part is not None
                assert part.as_dict() == insights(data, period, config).as_dict()
                if config is LAX:
                    raised.update(i.rule for i in part.insights)
            recent = sql_insights.read_part(cut, period)
            assert recent is not None
            # its deals as known at the as of, from each deal's last stage change alone: the whole read's
            pd.testing.assert_frame_equal(recent.data.opportunities, data.opportunities, check_exact=True)
            assert recent.data.has_stage_history == data.has_stage_history
            assert len(recent.data.stage_history) < len(data.stage_history)
            with pytest.raises(ValueError, match="last one alone"):  # its rules take them from DuckDB
                insights(recent.data, period)
            tested += _same_candidates(recent, data, period)
    every = {"prospecting", "email_replies", "win_rate", "selling_time", "capacity", "stage_conversion"}
    assert every <= set(raised) and {"slow_stage", "quota"} <= set(raised), raised
    assert tested > 200


def _same_candidates(part: sql_insights.Part, data: TrackingData, period: Period) -> int:
    """Every rule's candidates (raised or not) of the part equal those of the whole read; how many."""
    mine = _context(part.data, period, LAX, part.given)
    theirs = _context(data, period, LAX)
    compared = 0
    for name, rule in RULES.items():
        ours, reads = rule(mine), rule(theirs)
        assert len(ours) == len(reads), name
        for (a, a_ok), (b, b_ok) in zip(ours, reads, strict=True):
            written = [c if isinstance(c, Insight) else c.write() for c in (a, b)]
            assert written[0].as_dict() == written[1].as_dict() and a_ok == b_ok, name
            compared += 1
    return compared


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_adjusted_rates_of_the_period_s_part_of_the_crm_equal_those_of_the_whole_read(
    warehouse: Path, as_of: pd.Timestamp | None
) -> None:
    rows = 0
    with _cut_and_read(warehouse, as_of) as (cut, data):
        for spec in PERIODS:
            period = parse_period(spec, cut.as_of)
            for by in ADJUSTED_GROUPINGS:
                part = sql_reports.report(cut, "adjusted", period, by)["adjusted"]
                pd.testing.assert_frame_equal(part, adjusted(data, period, by))
                rows += len(part)
    assert rows > 100


def test_the_insights_take_the_read_where_the_part_cannot_be_read_as_the_read_reads_it(
    warehouse: Path, tmp_path: Path
) -> None:
    path = tmp_path / "no-engagement.duckdb"
    shutil.copy(warehouse, path)
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE engagement_events")  # the read takes its pandas path
        cut = open_cut(con)
        assert cut is not None and sql_insights.insights(cut, parse_period(None, cut.as_of)) is None
        with pytest.raises(NotInSqlError):
            sql_reports.report(cut, "adjusted", parse_period(None, cut.as_of), "rep")


@pytest.mark.parametrize(
    "written",
    [
        "ALTER TABLE lead_scores ALTER score TYPE VARCHAR;"
        " UPDATE lead_scores SET score = 'n/a' WHERE hash(lead_id) % 4 = 0;"
        " ALTER TABLE lead_scores ALTER as_of TYPE VARCHAR",
        # ids compared without case: L1 and l1 one lead in SQL, two in pandas
        "CREATE TABLE nocase (lead_id VARCHAR COLLATE NOCASE, score DOUBLE, band VARCHAR, as_of TIMESTAMP);"
        " INSERT INTO nocase SELECT * FROM lead_scores;"
        " INSERT INTO nocase SELECT lower(lead_id), 100, 'A', TIMESTAMP '2024-06-01' FROM lead_scores;"
        " DROP TABLE lead_scores; ALTER TABLE nocase RENAME TO lead_scores",
        "SET TimeZone = 'UTC'; ALTER TABLE lead_scores ALTER as_of TYPE TIMESTAMPTZ",  # a time with a zone
    ],
)
def test_written_scores_of_other_types_are_read_as_the_read_reads_them(
    warehouse: Path, tmp_path: Path, written: str
) -> None:
    path = tmp_path / "scores.duckdb"
    shutil.copy(warehouse, path)
    with duckdb.connect(str(path)) as con:
        con.execute(written)
    with _cut_and_read(path) as (cut, data):
        period = parse_period(None, cut.as_of)
        sql = sql_prospects.prospects(cut, period, "team")
        pd.testing.assert_frame_equal(sql, prospects(data, period, "team"))
    assert sql["score"].notna().sum() > 5


@pytest.mark.parametrize("as_of", [None, PAST])
def test_the_prospects_list_of_a_warehouse_without_engagement_events_equals_the_read_s(
    warehouse: Path, tmp_path: Path, as_of: pd.Timestamp | None
) -> None:
    path = tmp_path / "no-engagement.duckdb"
    shutil.copy(warehouse, path)
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE engagement_events")
    with _cut_and_read(path, as_of) as (cut, data):
        for spec in PERIODS[:2]:
            period = parse_period(spec, cut.as_of)
            sql = sql_prospects.prospects(cut, period, "rep")
            pd.testing.assert_frame_equal(sql, prospects(data, period, "rep"))
            assert len(sql) > 20 and (sql["web_visits_30d"] == 0).all()


@pytest.mark.parametrize(
    "breaks",
    [
        "INSERT INTO leads SELECT * FROM leads LIMIT 1",  # a lead id twice: the read repeats its activities
        "UPDATE activities SET duration_seconds = 'nan'::DOUBLE WHERE hash(activity_id) % 97 = 0",
        "DROP TABLE stage_history",
        "ALTER TABLE opportunities ALTER amount TYPE VARCHAR",
        "UPDATE reps SET rep_id = NULL WHERE rep_id = (SELECT min(rep_id) FROM reps)",
        "ALTER TABLE reps RENAME TO reps_table; CREATE VIEW reps AS SELECT * FROM reps_table",  # no rowid
        "ALTER TABLE activities ALTER type TYPE VARCHAR COLLATE NOCASE",  # 'Call' would be a call
        "ALTER TABLE opportunities ALTER amount TYPE FLOAT",  # averaged in 32 bits by pandas
        "ALTER TABLE stage_history ALTER amount TYPE BIGINT",  # with a gap: the read cannot cast it
        "ALTER TABLE engagement_events ALTER occurred_at TYPE VARCHAR",  # the last event compared as text
        "UPDATE stage_history SET stage = NULL WHERE hash(opportunity_id) % 50 = 0",
        "ALTER TABLE activities ALTER scheduled_for TYPE VARCHAR",  # the next action compared as text
        # the behaviour's types compared as numbers
        "ALTER TABLE engagement_events ALTER type TYPE INTEGER USING NULL::INTEGER",
    ],
)
def test_a_warehouse_the_sql_cut_would_read_otherwise_takes_the_read(
    warehouse: Path, tmp_path: Path, breaks: str
) -> None:
    path = tmp_path / "broken.duckdb"
    shutil.copy(warehouse, path)
    with duckdb.connect(str(path)) as con:
        assert open_cut(con) is not None
        con.execute(breaks)
        assert open_cut(con) is None


def test_the_sql_reports_equal_the_reports_in_memory_on_maven(tmp_path: Path) -> None:
    source = shared_dataset("maven-crm-sales-opportunities")
    path = tmp_path / "maven.duckdb"
    ingest(source, "maven", Warehouse(path))
    with _cut_and_read(path) as (cut, data):
        for spec in (None, "quarter", "2016-01-01..2018-01-01"):
            period = parse_period(spec, cut.as_of)
            for by in GROUPINGS:
                _same(sql_performance.performance(cut, period, by), performance(data, period, by), by)
            for by in EFFECTIVENESS_GROUPINGS:
                _same(sql_effectiveness.effectiveness(cut, period, by), effectiveness(data, period, by), by)
            for by in PROCESS_GROUPINGS:
                _same(sql_process.process(cut, period, by), process(data, period, by), by)
            for by in STAGE_GROUPINGS:
                _same(sql_process.stage_table(cut, period, by), stage_table(data, period, by), by)
            listed = sql_prospects.prospects(cut, period, "team")
            pd.testing.assert_frame_equal(listed, prospects(data, period, "team"))
            for config in (None, LAX):
                part = sql_insights.insights(cut, period, config)
                assert part is not None and part.as_dict() == insights(data, period, config).as_dict()
        whole = sql_performance.performance(cut, parse_period("2016-01-01..2018-01-01", cut.as_of), "rep")
    assert whole.iloc[-1]["won"] > 1000  # the sample's deals are counted, and it has no activities
    assert whole.iloc[-1]["calls"] == 0
