"""``forecast report`` with the dashboard's filters, and the pages' figures against the previous period.

On the dashboard tests' trained CRM: a filtered report has the filtered pages' figures (the same
sections over the same functions), says which filters it applies and which a section cannot; a bad
filter value exits 2 naming the option; and the previous period's figures on the pages are the
CLI's ``forecast metrics --report performance`` of the previous period's days.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from forecast.cli import app
from forecast.dashboard.app import create_app
from tests.cli import cli_json, runner
from tests.dashboard_env import AS_OF, trained_env
from tests.integration.test_dashboard import _close, _figures, _rows, _settings

with warnings.catch_warnings():  # starlette's TestClient warns that it still uses httpx (no httpx2 here)
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.slow  # the shared trained CRM, and 10,000 revenue simulations per view

PERIOD = "week"
PREVIOUS = "2024-12-02..2024-12-08"
"""The week before the last complete week as of Monday 2024-12-16 (2024-12-09..2024-12-15)."""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, str]:
    return trained_env(tmp_path_factory, worker_id)


@pytest.fixture(scope="module")
def client(env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(env), warm_every=None)) as c:
        yield c


def _performance(
    env: dict[str, str], by: str, period: str, report: str = "performance"
) -> dict[str, dict[str, Any]]:
    doc = cli_json(env, "metrics", "--report", report, "--by", by, "--period", period, "--as-of", AS_OF)
    return {str(r[by]): r for r in doc["reports"][report]["tables"][report]}


def _headline(env: dict[str, str], by: str, period: str) -> dict[str, dict[str, Any]]:
    """The CLI's rows of the compared figures: performance, and the process report's new leads."""
    process = _performance(env, by, period, "process")
    rows = _performance(env, by, period)
    return {k: {**row, "prospects": process.get(k, {}).get("prospects")} for k, row in rows.items()}


@pytest.fixture(scope="module")
def chosen(env: dict[str, str]) -> dict[str, str]:
    """A team and a source with won deals both weeks (the comparison means something)."""
    teams = _performance(env, "team", PERIOD)
    sources = _performance(env, "source", PERIOD)
    team = max((t for t in teams if t != "(all)"), key=lambda t: teams[t]["won_value"])
    source = max((s for s in sources if s != "(all)"), key=lambda s: sources[s]["calls"] or 0)
    return {"team": team, "source": source}


def _changes(html: str) -> dict[str, dict[str, str]]:
    """Each compared figure by ``data-metric``: its ``data-now``, ``data-prev`` and ``data-change``."""
    found = re.findall(
        r'data-metric="([^"]+)" data-now="([^"]*)" data-prev="([^"]*)" data-change="([^"]*)"', html
    )
    return {m: {"now": n, "prev": p, "change": c} for m, n, p, c in found}


def _change_rows(html: str) -> dict[str, dict[str, dict[str, str]]]:
    """The Reps page's comparison table: per row, each figure's values."""
    match = re.search(r'<table data-table="changes">(.*?)</table>', html, re.S)
    assert match
    rows = re.findall(r'<tr data-compare-row="([^"]*)"[^>]*>(.*?)</tr>', match.group(1), re.S)
    return {unescape(key): _changes(body) for key, body in rows}


def _same(page: str, cli: Any) -> bool:
    return page == "" if cli is None else _close(page, cli)


def test_a_filtered_report_has_the_filtered_pages_figures(
    env: dict[str, str], client: TestClient, chosen: dict[str, str], tmp_path: Path
) -> None:
    team, source = chosen["team"], chosen["source"]
    out = tmp_path / "team.html"
    args = ["report", "--as-of", AS_OF, "--period", PERIOD, "--team", team, "--source", source]
    result = runner.invoke(app, [*args, "--out", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    query = {"as_of": AS_OF, "period": PERIOD, "team": team, "source": source}
    overview = client.get("/", params=query).text
    reps = client.get("/reps", params=query).text
    assert _figures(html) == {**_figures(overview), **_figures(reps)}  # every headline figure
    assert _figures(html)["won_to_date"] != ""
    assert _rows(html) == {**_rows(overview), **_rows(reps)}  # the forecast's and the reps' rows
    assert _changes(html) == {**_changes(overview), **_changes(reps)} and _changes(html)
    assert _change_rows(html) == _change_rows(reps)
    # the reps are the team's, with the team's total, as the CLI gives them
    teams = _performance(env, "team", PERIOD)
    by_rep = _performance(env, "rep", PERIOD)
    rows = _rows(html)
    assert _close(rows[team]["won_value"], teams[team]["won_value"])
    members = {k for k in rows if k in by_rep and k != "(all)"}
    assert members and len(members) < len(by_rep) - 1  # the team's reps: some, not all
    for rep in members:
        assert _same(rows[rep]["won_value"], by_rep[rep]["won_value"]), rep
    # it says which filters it applies, and which a section cannot follow
    header = re.findall(r'<p class="filters-applied">(.*?)</p>', html, re.S)[0]
    assert f'data-filter="team">{team}<' in header and f'data-filter="source">{source}<' in header
    text = unescape(html)
    for what in ("the revenue forecast", "the per-rep table", "the flags (the whole team's)"):
        assert f"{what}: not split by source, so the source filter ({source}) does not apply" in text, what
    assert (
        f"the flags (the whole team's): not split by team, so the team filter ({team}) does not apply" in text
    )


def test_the_previous_period_on_the_pages_is_the_cli_metrics_of_its_days(
    env: dict[str, str], client: TestClient, chosen: dict[str, str]
) -> None:
    team, source = chosen["team"], chosen["source"]
    query = {"as_of": AS_OF, "period": PERIOD, "team": team, "source": source}
    overview = _changes(client.get("/", params=query).text)
    before, now = _headline(env, "team", PREVIOUS), _headline(env, "team", PERIOD)
    assert before[team]["won"] > 0 and now[team]["won"] > 0  # both weeks have wins: a real comparison
    assert set(overview) >= {"won_value", "won", "win_rate", "new_opportunities", "prospects", "calls"}
    for metric, values in overview.items():
        assert _same(values["prev"], before[team][metric]), metric
        assert _same(values["now"], now[team][metric]), metric
        if before[team][metric] is not None and now[team][metric] is not None:
            assert _close(values["change"], now[team][metric] - before[team][metric]), metric
    page = client.get("/reps", params={"as_of": AS_OF, "period": PERIOD}).text
    assert f"--period {PREVIOUS}" in page
    table = _change_rows(page)
    by_rep = _headline(env, "rep", PREVIOUS)
    assert set(table) == set(by_rep)  # every rep and the (all) row
    for rep, cells in table.items():
        for metric, values in cells.items():
            assert _same(values["prev"], by_rep[rep][metric]), (rep, metric)
    assert "▲" in page or "▼" in page  # a change is marked with a shape and a sign


def test_the_previous_period_before_the_warehouse_is_no_data(client: TestClient) -> None:
    html = client.get("/reps", params={"as_of": AS_OF, "period": "2023-01-01..2023-01-31"}).text
    table = _change_rows(html)
    assert table and all(
        v["prev"] == "" and v["change"] == "" for cells in table.values() for v in cells.values()
    )
    assert "no data for the previous period" in html and "(+0%)" not in html


def test_a_bad_filter_value_fails_clearly(env: dict[str, str], client: TestClient, tmp_path: Path) -> None:
    out = tmp_path / "bad.html"
    for option, value, says in (
        ("--team", "Nowhere", "--team 'Nowhere' is not a team of the warehouse as of 2024-12-16: use one of"),
        ("--rep", "no-such-rep", "--rep 'no-such-rep' is not a rep of the warehouse"),
        ("--source", "carrier pigeon", "--source 'carrier pigeon' is not a source"),
        ("--horizon", "year", "--horizon 'year': use week, month or quarter"),
    ):
        args = ["report", "--as-of", AS_OF, option, value, "--out", str(out)]
        result = runner.invoke(app, args, env=env, catch_exceptions=False)
        assert result.exit_code == 2, (option, result.output)
        assert says in " ".join(result.output.split()), (option, result.output)  # the log wraps lines
        assert "Traceback" not in result.output and not out.exists()
    page = client.get("/reps", params={"as_of": AS_OF, "team": "Nowhere"})
    assert page.status_code == 400 and "team &#x27;Nowhere&#x27; is not a team" in page.text
