"""The dashboard's period comparisons and filter checks, over a hand-made CRM held in a reader's cache.

The previous period's figures must be ``forecast metrics --report performance`` of the previous
period's days (the function the CLI calls), "no data" where the warehouse holds nothing then, and
a change must be told with a sign and a mark, never by colour alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from forecast.config import load_settings
from forecast.dashboard import choices, pages
from forecast.dashboard.compare import HEADLINE, Change, compare, overview_changes, reps_changes
from forecast.dashboard.data import Filters, Reader
from forecast.data.pipeline import DEFAULT_PIPELINE
from forecast.errors import InputError
from forecast.tracking import prepare
from forecast.tracking.api import report
from forecast.tracking.periods import parse_period
from tests.unit.test_tracking_metrics import AS_OF, hand_tables


@pytest.fixture
def reader(tmp_path: Path) -> Reader:
    """A reader whose cache holds the hand-made CRM as its default as of's tracking read."""
    warehouse = tmp_path / "warehouse.duckdb"
    warehouse.write_bytes(b"never read: the tracking read is held")
    made = Reader(load_settings(warehouse=warehouse, mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db"))
    made._keep(("tracking", None), prepare(hand_tables(), DEFAULT_PIPELINE, AS_OF))
    return made


def test_the_previous_period_figures_are_the_cli_report_of_its_days(reader: Reader) -> None:
    filters = Filters(period="month")  # as of 2024-04-01: March, against February
    made = compare(reader, filters, [("rep", "(all)"), ("rep", "R1"), ("team", "T2")])
    assert (made.period.label, made.previous.label, made.covered) == ("2024-03", "2024-02", True)
    data = reader.tracking(filters)
    february = parse_period("2024-02-01..2024-02-29", data.as_of)
    march = parse_period("month", data.as_of)
    source = {metric: name for metric, _, _, name in HEADLINE}
    for who in ("(all)", "R1"):
        for metric, change in made.rows[("rep", who)].items():
            feb = report(data, source[metric], february, "rep")[source[metric]]
            now_table = report(data, source[metric], march, "rep")[source[metric]]
            prev = feb.loc[feb["rep"] == who, metric].iloc[0]
            now = now_table.loc[now_table["rep"] == who, metric].iloc[0]
            assert change.prev == (None if pd.isna(prev) else pytest.approx(prev)), (who, metric)
            assert change.now == (None if pd.isna(now) else pytest.approx(now)), (who, metric)
    everyone = made.rows[("rep", "(all)")]
    assert (everyone["calls"].prev, everyone["calls"].now) == (1, 4)  # A12 in February; A1-A3, A10
    assert everyone["win_rate"].prev is None  # no deal closed in February: no rate, not 0%
    assert (everyone["prospects"].prev, everyone["prospects"].now) == (1, 3)  # L1; L2, L3, L4
    assert made.reports == ["performance", "process"]
    assert made.command("team", "process") == (
        "forecast metrics --report process --by team --period 2024-02-01..2024-02-29 "
        "--as-of 2024-04-01T00:00:00"
    )
    held = reader.keys()  # the reader's cache, not a dict
    # the previous period's brief table (the headline figures alone), every group's
    assert ("report", None, "2024-02-01..2024-02-29", "performance", "rep", "brief") in held
    assert [k for k in held if k[0] == "tracking"] == [("tracking", None)]  # one read


def test_nothing_recorded_before_the_previous_period_ends_is_no_data(reader: Reader) -> None:
    # the hand CRM starts on 2024-01-10 (lead L5): the 11 days before 2024-01-10..2024-01-20 are empty
    made = overview_changes(reader, Filters(period="2024-01-10..2024-01-20"))
    assert not made.covered and "no data for the previous period" in made.notes[0]
    changes = made.rows[("rep", "(all)")]
    assert all(c.prev is None and c.direction is None for c in changes.values())
    html = pages.change_figures(made)
    assert html.count(">no data<") >= len(changes) and "%" not in re.sub(r"<code>.*?</code>", "", html)
    partly = overview_changes(reader, Filters(period="2024-01-15..2024-01-20"))
    assert partly.covered and "cover only part" in partly.notes[0]


def test_the_reps_comparison_has_the_shown_reps_and_the_total(reader: Reader) -> None:
    made = reps_changes(reader, Filters(period="month", team="T1"))
    assert list(made.rows) == [("rep", "R1"), ("rep", "R2"), ("team", "T1")]
    html = pages.change_table(made)
    assert re.findall(r'data-compare-row="([^"]*)"', html) == ["R1", "R2", "T1"]
    assert "T1 (team total)" in html
    source = overview_changes(reader, Filters(period="month", team="T1", source="web_form"))
    assert list(source.rows) == [("team", "T1")]
    assert any("the source filter (web_form) does not apply" in n for n in source.notes)


def test_a_change_is_told_with_a_sign_and_a_mark() -> None:
    assert pages.change_text(Change(12.0, 9.0, "count")) == "▲ +3 (+33%)"
    assert pages.change_text(Change(9.0, 12.0, "count")) == "▼ −3 (−25%)"
    assert pages.change_text(Change(5.0, 0.0, "count")) == "▲ +5 (from 0)"
    assert pages.change_text(Change(0.0, 0.0, "count")) == "= ±0"  # nothing then or now: no ratio
    assert pages.change_text(Change(4.0, 4.0, "count")) == "= ±0 (±0%)"
    assert pages.change_text(Change(0.30, 0.25, "rate")) == "▲ +5.0 pp"
    assert pages.change_text(Change(25_000.0, 20_000.0, "money")).startswith("▲ +5")
    assert pages.change_text(Change(3.0, None, "count")) == "no data"
    assert pages.change_text(Change(None, 3.0, "rate")) == "no data"
    assert Change(0.3, 0.25, "rate").relative is None  # a rate changes in points, not in percent


def test_an_unknown_filter_value_is_refused_naming_the_filter(reader: Reader) -> None:
    data = reader.tracking(Filters())
    assert choices.known(data)["team"] == ["T1", "T2"]
    choices.check(data, Filters(team="T1", source="referral"))  # known values pass
    with pytest.raises(InputError) as refused:
        choices.check(data, Filters(team="Nope"))
    assert refused.value.parameter == "team"
    assert str(refused.value).startswith("team 'Nope' is not a team of the warehouse as of 2024-04-01")
    assert "T1, T2" in str(refused.value)
    with pytest.raises(InputError, match="rep 'R9'"):
        choices.check(data, Filters(rep="R9"))
