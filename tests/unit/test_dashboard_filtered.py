"""A filtered view's rows computed for its group alone equal the whole report's rows of that group.

On a cold cache a filtered dashboard page computes the reports for its group (and ``(all)``) alone
(``report(..., only=...)``), and takes them from the whole report when the warm-up has computed it.
Both must be the rows the old code showed: the whole report (``forecast metrics --by``, what the CLI
prints) filtered in pandas to the group and ``(all)``. The reference below is that filter written
out, over reports computed with nothing kept between calls (the last contacts, stays and filter
choices are kept per frame now); equality is exact, dtypes and order included.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from forecast.config import load_settings
from forecast.dashboard import choices, compare
from forecast.dashboard.data import Filters, Reader
from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.data.simulate import SimulationConfig, simulate_crm
from forecast.revenue.forecast import period_grid
from forecast.tracking.api import REPORTS, narrowed, report
from forecast.tracking.common import GroupingError
from forecast.tracking.data import ALL_LABEL, TrackingData, group_values, prepare
from forecast.tracking.periods import parse_period

process_module = importlib.import_module("forecast.tracking.process")
goals = importlib.import_module("forecast.tracking.goals")
NARROWING = [name for name, spec in REPORTS.items() if spec.narrows]
BYS = ("rep", "team", "region", "source", "channel")


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return simulate_crm(SimulationConfig(n_leads=2000, seed=5, months=12)).tables


@pytest.fixture(scope="module")
def data(tables: dict[str, pd.DataFrame]) -> TrackingData:
    return prepare(tables, DEFAULT_PIPELINE)


@pytest.fixture(scope="module")
def fresh(tables: dict[str, pd.DataFrame], data: TrackingData) -> TrackingData:
    """The same CRM in other frames (nothing computed from ``data``'s frames is kept for them)."""
    made = prepare(tables, DEFAULT_PIPELINE)
    assert made.activities is not data.activities
    pd.testing.assert_frame_equal(made.activities, data.activities)
    return made


def _old_rows(table: pd.DataFrame, by: str, groups: list[str]) -> pd.DataFrame:
    """The old filtered view: the whole table's rows of the groups and ``(all)``, in order."""
    if by not in table.columns:
        return table
    return table[table[by].astype(str).isin([*groups, ALL_LABEL])].reset_index(drop=True)


def _uncached(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing kept between calls: the last contacts and stays computed on every call, as before."""
    monkeypatch.setattr(process_module, "memo", lambda frame, name, compute: compute())


def _groups(table: pd.DataFrame, by: str) -> list[str]:
    return sorted({str(g) for g in table[by]} - {ALL_LABEL})


@pytest.mark.parametrize(("name", "by"), [(n, b) for n in NARROWING for b in BYS])
def test_a_groups_rows_alone_equal_the_whole_reports_rows(
    data: TrackingData, fresh: TrackingData, name: str, by: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for spec in ("month", "quarter"):
        period = parse_period(spec, data.as_of)
        with monkeypatch.context() as m:
            _uncached(m)
            try:
                whole = report(fresh, name, period, by)
            except GroupingError:
                pytest.skip(f"{name} is not grouped by {by}")
        groups = _groups(whole[name], by)
        assert len(groups) >= 2
        some = groups if len(groups) <= 8 else [*groups[:5], *groups[-3:]]
        asked = [[g] for g in some] + [groups[:2], ["nobody"], [groups[-1], "nobody"]]
        for only in asked:
            got = report(data, name, period, by, only=only)
            assert got.keys() == whole.keys()
            for key in whole:
                expected = _old_rows(whole[key], by, only)
                pd.testing.assert_frame_equal(got[key], expected, check_exact=True)
                pd.testing.assert_frame_equal(narrowed(whole, by, only)[key], expected, check_exact=True)


def test_only_is_refused_by_a_report_that_computes_every_group(data: TrackingData) -> None:
    period = parse_period("month", data.as_of)
    with pytest.raises(ValueError, match="every group"):
        report(data, "goals", period, "rep", only=["R001"])


def test_kept_stays_last_contacts_and_choices_are_the_computed_ones(
    data: TrackingData, fresh: TrackingData
) -> None:
    assert process_module.stays(data) is process_module.stays(data)  # kept
    pd.testing.assert_frame_equal(process_module.stays(data), process_module._stays(fresh), check_exact=True)
    for spec in ("month", "quarter", "2024-01-01..2024-02-15"):
        period = parse_period(spec, data.as_of)
        cutoff = min(period.end, data.as_of)
        acts = fresh.activities
        contacts = acts.loc[acts["done"] & (acts["occurred_at"] < cutoff), ["lead_id", "occurred_at"]]
        expected = contacts.groupby("lead_id", sort=False)["occurred_at"].max().sort_index()
        kept = process_module.last_contacts(data.activities, cutoff)
        assert kept is process_module.last_contacts(data.activities, cutoff)
        pd.testing.assert_series_equal(kept.sort_index(), expected)  # (looked up by lead: any order)
    assert choices.known(data) is choices.known(data)
    assert choices.known(data) == choices._known(fresh)
    other = replace(data, reps=data.reps.iloc[:1])  # other reps, the same leads: not the kept ones
    assert choices.known(other)["rep"] == [str(data.reps["rep_id"].iloc[0])]


# --- the dashboard's reader: cold (a group alone) and warmed (the whole reports) ------------------


def _reader(tmp_path: Path, data: TrackingData, name: str) -> Reader:
    warehouse = tmp_path / f"{name}.duckdb"
    warehouse.write_bytes(b"never read: the tracking read is held")
    made = Reader(load_settings(warehouse=warehouse, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db"))
    made._keep(("tracking", None), data)
    return made


def _pages(reader: Reader, filters: Filters) -> dict[str, Any]:
    """What the filtered Activity, Pipeline and Reps pages and both comparisons show."""
    return {
        "activity": reader.activity(filters),
        "pipeline": reader.pipeline(filters),
        "reps": reader.reps(filters),
        "overview changes": compare.overview_changes(reader, filters).rows,
        "reps changes": compare.reps_changes(reader, filters).rows,
    }


def _equal(got: Any, expected: Any) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for key in expected:
            _equal(got[key], expected[key])
    else:
        assert got == expected


def _filters(data: TrackingData) -> list[Filters]:
    reps = data.reps.sort_values("rep_id")
    rep = reps.iloc[1]
    return [
        Filters(team=str(rep["team"])),
        Filters(rep=str(rep["rep_id"])),
        Filters(region=str(rep["region"])),
        Filters(source=str(sorted(data.leads["source"].unique())[0])),
        Filters(rep=str(rep["rep_id"]), team=str(rep["team"])),
        Filters(team=str(reps["team"].iloc[-1]), period="quarter"),
    ]


def test_a_cold_filtered_view_equals_the_one_from_the_whole_reports(
    tmp_path: Path, data: TrackingData, fresh: TrackingData
) -> None:
    """Cold: the group's rows computed alone; warmed: taken from the whole reports (nothing computed)."""
    warmed = _reader(tmp_path, data, "warmed")
    for n, filters in enumerate(_filters(data)):
        cold = _reader(tmp_path, fresh, f"cold-{n}")
        got = _pages(cold, filters)
        held = cold.keys()  # the reader's keys (a method, not a dict's)
        assert any(k[0] == "report" and len(k) == 6 for k in held)  # a group's rows alone
        _pages(warmed, replace(filters, rep=None, team=None, region=None, source=None))  # the defaults
        warmed.whole_reports(filters)
        before = warmed.computed
        _equal(_pages(warmed, filters), got)
        if len(filters.scopes) == 1:  # one filter: every report it reads is held whole
            assert warmed.computed == before


def test_a_cold_filtered_view_shows_the_old_rows(
    tmp_path: Path, data: TrackingData, fresh: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old way: each page's tables are the whole reports (computed as before) filtered in pandas."""
    filters = Filters(region=str(data.reps["region"].iloc[0]), period="quarter")
    value = str(filters.region)
    new = _reader(tmp_path, data, "new")
    activity, pipeline, reps = new.activity(filters), new.pipeline(filters), new.reps(filters)
    with monkeypatch.context() as m:
        _uncached(m)
        old = _reader(tmp_path, fresh, "old")

        def whole(name: str, by: str) -> dict[str, pd.DataFrame]:
            return old.report(Filters(period="quarter"), name, by)

        effectiveness = whole("effectiveness", "region")["effectiveness"]
        process = whole("process", "region")
        funnel = whole("funnel", "region")["funnel"]
        performance = whole("performance", "region")["performance"]
    _equal(activity["effectiveness"], _old_rows(effectiveness, "region", [value]))
    _equal(activity["process"], _old_rows(process["process"], "region", [value]))
    _equal(activity["stages"], _old_rows(process["stages"], "region", [value]))
    _equal(pipeline["funnel"], _old_rows(funnel, "region", [value]))
    expected_total = performance[performance["region"].astype(str) == value].reset_index(drop=True)
    _equal(reps["total"], expected_total)


@pytest.mark.parametrize("by", ["rep", "team", "region"])
def test_a_period_without_days_has_the_same_empty_pacing_table(data: TrackingData, by: str) -> None:
    """A period starting at the as of (the forecast's current one) has no day: one group's empty frame."""
    period = period_grid(data.as_of, 1, "month")[0]
    assert period.start == data.as_of  # the simulated CRM ends with a month: its pacing has no day
    got = goals.daily(data, period, by)
    days = pd.date_range(period.start, period.start, freq="D")[:0]
    won = pd.DataFrame({by: pd.Series([], dtype=object), "amount": [], "day": pd.Series([], dtype="M8[ns]")})
    groups = [*group_values(data, by), ALL_LABEL]
    assert len(groups) > 2
    old = goals._daily_frames(data, by, won, days, groups)  # every group's (empty) frame, as before
    assert got.empty
    pd.testing.assert_frame_equal(got, old, check_exact=True)


@pytest.mark.parametrize("by", ["rep", "team", "manager", "region"])
def test_kept_quota_rows_are_the_computed_ones(data: TrackingData, fresh: TrackingData, by: str) -> None:
    groups = [*sorted({str(g) for g in data.reps["rep_id" if by == "rep" else by]}), "nobody", ALL_LABEL]
    for group in groups:
        kept = goals.quota_rows(data, by, group)
        assert goals.quota_rows(data, by, group) is kept
        pd.testing.assert_frame_equal(kept, goals._quota_rows(fresh, by, group), check_exact=True)
    other = replace(data, reps=data.reps.iloc[:1])  # the same quotas, other reps: not the kept rows
    group = str(data.reps[by if by != "rep" else "rep_id"].iloc[-1])
    pd.testing.assert_frame_equal(goals.quota_rows(other, by, group), goals._quota_rows(other, by, group))


def test_a_kept_value_holding_frames_is_forgotten_without_a_deadlock() -> None:
    """Freeing a frame drops its kept value, which may free frames with kept values of their own."""
    import threading

    from forecast.tracking.common import _MEMO, memo

    keys: set[tuple[int, str]] = set()

    def keep_and_free() -> None:
        inner = pd.DataFrame({"a": [1]})
        memo(inner, "inner", lambda: pd.DataFrame({"b": [2]}))
        outer = pd.DataFrame({"a": [2]})
        memo(outer, "outer", lambda held=inner: (held, 1))  # the value holds the only other reference
        keys.update({(id(inner), "inner"), (id(outer), "outer")})
        del inner
        del outer  # frees outer, its value, then inner: each entry forgotten in turn

    worker = threading.Thread(target=keep_and_free, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "forgetting a kept value deadlocked"
    assert len(keys) == 2 and not keys & set(_MEMO)


def test_the_readers_rows_of_a_group_are_the_same_held_or_not(
    tmp_path: Path, data: TrackingData, fresh: TrackingData
) -> None:
    """A group's rows from the reader: sliced from a held whole report, or computed alone; the old rows."""
    warmed, cold = _reader(tmp_path, data, "warmed"), _reader(tmp_path, fresh, "cold")
    for filters in _filters(data)[:4]:
        by, value = filters.scope or ("", "")
        for name in NARROWING:
            whole = warmed.report(filters, name, by)  # held from now on
            sliced = warmed.report(filters, name, by, only=[value])
            alone = cold.report(filters, name, by, only=[value])
            assert sliced.keys() == alone.keys() == whole.keys()
            for key in whole:
                expected = _old_rows(whole[key], by, [value])
                pd.testing.assert_frame_equal(sliced[key], expected, check_exact=True)
                pd.testing.assert_frame_equal(alone[key], expected, check_exact=True)


def test_a_reports_main_table_alone_is_its_main_table(
    tmp_path: Path, data: TrackingData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A comparison reads the process report's prospects: computed without the stage table, the same rows."""
    stage_tables: list[object] = []
    real = REPORTS["process"]
    monkeypatch.setitem(
        REPORTS,
        "process",
        replace(
            real, extras=(("stages", lambda *a, **k: stage_tables.append(a) or real.extras[0][1](*a, **k)),)
        ),
    )
    reader = _reader(tmp_path, data, "main")
    rep = str(sorted(data.reps["rep_id"])[1])
    for filters, only in ((Filters(period="quarter"), None), (Filters(rep=rep), (rep,))):
        main = reader.report(filters, "process", "rep", only=only, main_only=True)
        assert list(main) == ["process"] and not stage_tables  # no stage table computed
        whole = report(data, "process", parse_period(filters.period, data.as_of), "rep", only=only)
        assert len(stage_tables) == 1
        stage_tables.clear()
        pd.testing.assert_frame_equal(main["process"], whole["process"], check_exact=True)
    held = reader.report(Filters(), "process", "team")  # with its stage table, held
    stage_tables.clear()
    team = str(data.reps["team"].iloc[0])
    assert reader.report(Filters(), "process", "team", main_only=True)["process"] is held["process"]
    narrowed_main = reader.report(Filters(team=team), "process", "team", only=(team,), main_only=True)
    pd.testing.assert_frame_equal(narrowed_main["process"], narrowed(held, "team", (team,))["process"])
    assert not stage_tables  # both taken from the held report
    performance = reader.report(Filters(), "performance", "rep", main_only=True)  # no extras: the one kept
    assert performance is reader.report(Filters(), "performance", "rep")
