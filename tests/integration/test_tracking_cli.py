"""`forecast metrics` and `forecast insights` end to end: simulated CRM -> ingest -> warehouse -> JSON."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from forecast.cli import app
from forecast.data.simulate import SimulationConfig, simulate_crm

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tracking")
    simulate_crm(SimulationConfig(n_leads=2000, seed=11, months=12)).write(root / "crm")
    env = {"FORECAST_WAREHOUSE": str(root / "wh.duckdb"), "ROOT": str(root)}
    result = runner.invoke(app, ["ingest", str(root / "crm"), "--json"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stdout
    return env


def _run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, result.stdout
    return result.stdout


def test_json_flag_is_the_json_format(env: dict[str, str]) -> None:
    """README: every command that prints a result takes --json."""
    flag = json.loads(_run(env, "metrics", "--report", "funnel", "--json"))
    assert flag == json.loads(_run(env, "metrics", "--report", "funnel", "--format", "json"))
    clash = json.loads(_run(env, "metrics", "--json", "--format", "csv", code=2))
    assert "disagree" in clash["error"]


def _check_rates(rows: list[dict]) -> int:
    checked = 0
    for row in rows:
        for key, value in row.items():
            if (
                f"{key}_lo" in row
                and f"{key}_hi" in row
                and value is not None
                and not key.startswith("corr_")
            ):
                if key.endswith(("rate", "conversion", "share", "silent")):
                    assert 0 <= value <= 1, (key, value)
                lo, hi = row[f"{key}_lo"], row[f"{key}_hi"]
                if lo is not None:
                    assert lo - 1e-9 <= value <= hi + 1e-9, (key, lo, value, hi)
                    checked += 1
            if key.startswith("corr_") and key.endswith(("calls", "emails")) and value is not None:
                assert -1 <= row[f"{key}_lo"] <= value <= row[f"{key}_hi"] <= 1
    return checked


def test_metrics_all_reports_json(env: dict[str, str]) -> None:
    doc = json.loads(_run(env, "metrics", "--report", "all", "--format", "json"))
    assert doc["ok"] and doc["period"]["kind"] == "month" and doc["period"]["label"] == "2024-12"
    assert set(doc["reports"]) == {
        "performance",
        "prospects",
        "goals",
        "funnel",
        "effectiveness",
        "process",
        "adjusted",
    }
    assert set(doc["reports"]["funnel"]["tables"]) == {"funnel", "monthly", "loss_reasons"}
    checked = sum(_check_rates(t) for r in doc["reports"].values() for t in r["tables"].values())
    assert checked > 50
    perf = doc["reports"]["performance"]["tables"]["performance"]
    total = next(r for r in perf if r["rep"] == "(all)")
    assert total["calls"] == sum(r["calls"] for r in perf if r["rep"] != "(all)")


def test_won_lost_open_add_up_to_all_deals(env: dict[str, str]) -> None:
    doc = json.loads(
        _run(
            env,
            "metrics",
            "--report",
            "funnel",
            "--period",
            "2000-01-01..2030-12-31",
            "--by",
            "product",
            "--format",
            "json",
        )
    )
    rows = doc["reports"]["funnel"]["tables"]["funnel"]
    total = next(r for r in rows if r["product"] == "(all)")
    with duckdb.connect(env["FORECAST_WAREHOUSE"], read_only=True) as con:
        n = con.execute("SELECT count(*) FROM opportunities").fetchone()
        counts = dict(con.execute("SELECT outcome, count(*) FROM opportunities GROUP BY 1").fetchall())
    assert n is not None
    assert total["won"] + total["lost"] + total["open_opportunities"] == n[0]
    assert (total["won"], total["lost"], total["open_opportunities"]) == (
        counts["won"],
        counts["lost"],
        counts["open"],
    )
    assert sum(r["won"] for r in rows if r["product"] != "(all)") == total["won"]


def test_insights_json(env: dict[str, str]) -> None:
    doc = json.loads(_run(env, "insights", "--period", "quarter", "--json"))
    assert doc["ok"] and doc["period"]["kind"] == "quarter" and doc["tested"] > 0
    impacts = [
        i["expected_revenue_impact"] for i in doc["insights"] if i["expected_revenue_impact"] is not None
    ]
    assert impacts == sorted(impacts, reverse=True)
    for insight in doc["insights"]:
        assert {
            "rule",
            "audience",
            "subject",
            "decision",
            "message",
            "p_value",
            "test",
            "adjusted_for",
            "evidence",
        } <= set(insight)
        assert insight["audience"] in ("manager", "rep")
        if insight["p_value"] is not None:
            assert insight["q_value"] <= doc["evidence_bar"]["fdr"]


def test_table_and_csv_output(env: dict[str, str], tmp_path: Path) -> None:
    out = _run(env, "metrics", "--report", "funnel", "--metrics", "win_rate,open_opportunities")
    assert "win_rate" in out and "open_opportunities" in out
    csv = _run(env, "metrics", "--report", "performance", "--format", "csv")
    assert csv.splitlines()[0].startswith("rep,name,calls")
    target = tmp_path / "goals.csv"
    _run(env, "metrics", "--report", "goals", "--format", "csv", "--output", str(target))
    assert target.exists() and (tmp_path / "goals.daily.csv").exists()
    text = _run(env, "insights")
    assert "Insights for" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["metrics", "--by", "product", "--report", "performance"], "cannot be grouped by product"),
        (["metrics", "--by", "planet"], "--by 'planet'"),
        (["metrics", "--period", "2024-02-30..2024-03-01"], "not two ISO dates"),
        (["metrics", "--report", "nope"], "--report 'nope'"),
        (["metrics", "--report", "funnel", "--metrics", "bogus"], "unknown for the funnel report"),
        (["metrics", "--as-of", "yesterday-ish"], "--as-of"),
        (["insights", "--period", "fortnight"], "fortnight"),
    ],
)
def test_bad_options_exit_2(env: dict[str, str], args: list[str], message: str) -> None:
    result = runner.invoke(
        app, [*args, "--format", "json"] if args[0] == "metrics" else [*args, "--json"], env=env
    )
    assert result.exit_code == 2
    assert message in json.loads(result.stdout)["error"]


def test_missing_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["insights", "--json"], env={"FORECAST_WAREHOUSE": str(tmp_path / "none.duckdb")}
    )
    assert result.exit_code == 2 and "forecast ingest" in json.loads(result.stdout)["error"]


def test_tiny_canonical_crm_through_ingest(tiny_crm: Path, tmp_path: Path) -> None:
    env = {"FORECAST_WAREHOUSE": str(tmp_path / "tiny.duckdb")}
    _run(env, "ingest", str(tiny_crm), "--json")
    doc = json.loads(
        _run(env, "metrics", "--report", "all", "--period", "2024-03-01..2024-03-31", "--format", "json")
    )
    funnel = doc["reports"]["funnel"]["tables"]["funnel"]
    r1 = next(r for r in funnel if r["rep"] == "R1")
    assert (r1["won"], r1["won_value"], r1["open_opportunities"]) == (1, 12000.0, 1)  # O1 won 03-05; O2 open
    goals = doc["reports"]["goals"]["tables"]["goals"]
    assert all(r["goal"] is None for r in goals)  # the quotas cover January only
    january = json.loads(
        _run(env, "metrics", "--report", "goals", "--period", "2024-01-01..2024-01-31", "--format", "json")
    )
    r2 = next(r for r in january["reports"]["goals"]["tables"]["goals"] if r["rep"] == "R2")
    assert (r2["goal"], r2["won_value"], r2["attainment"]) == (40000.0, 0.0, 0.0)
    assert json.loads(_run(env, "insights", "--json"))["ok"]


def test_metrics_by_rep_fits_80_columns_and_wide_shows_the_rest(env: dict[str, str]) -> None:
    """Issue 17 item 7: at 80 columns no cell is cut, nothing is all zero; --wide shows every column."""
    narrow = _run({**env, "COLUMNS": "80"}, "metrics", "--by", "rep", "--report", "performance")
    assert "…" not in narrow and max(len(line) for line in narrow.splitlines()) <= 80
    assert "win_rate" in narrow and "%" in narrow and "[" in narrow  # a rate with its interval
    wide = _run({**env, "COLUMNS": "80"}, "metrics", "--by", "rep", "--report", "performance", "--wide")
    assert "n=" in wide and max(len(line) for line in wide.splitlines()) > 80


@pytest.mark.parametrize(
    "name", ["performance", "effectiveness", "process", "funnel", "prospects", "adjusted"]
)
def test_metrics_of_one_report_are_aggregated_in_duckdb_with_the_figures_of_the_read(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """`--report performance` (or effectiveness) alone needs no CRM read; `--report all` reads it."""
    args = ("--as-of", "2024-09-15", "--period", "quarter", "--by", "team", "--json")
    read = json.loads(_run(env, "metrics", "--report", "all", *args))
    from forecast.tracking import read as reading

    def no_read(*_: object, **__: object) -> None:
        raise AssertionError("the CRM was read")

    monkeypatch.setattr(reading, "load", no_read)
    monkeypatch.setattr("forecast.tracking.api.load", no_read)
    alone = json.loads(_run(env, "metrics", "--report", name, *args))
    assert alone["as_of"] == read["as_of"] and alone["period"] == read["period"]
    assert alone["notes"] == read["notes"]
    assert alone["reports"][name]["tables"].keys() == read["reports"][name]["tables"].keys()
    for table, left in alone["reports"][name]["tables"].items():
        right = read["reports"][name]["tables"][table]
        first = next(iter(right[0]))  # the group (or month, or loss reason)
        assert [r[first] for r in left] == [r[first] for r in right] and len(left) >= 3
        for a, b in zip(left, right, strict=True):
            assert a.keys() == b.keys()
            for key, value in a.items():
                assert value == b[key] or value == pytest.approx(b[key], rel=1e-12, abs=1e-12), (table, key)
    if name in ("prospects", "adjusted"):  # a row per open lead and deal; per metric and team
        assert len(alone["reports"][name]["tables"][name]) > 5
        return
    counted = {"process": "prospects", "funnel": "open_opportunities"}.get(name, "new_opportunities")
    assert alone["reports"][name]["tables"][name][-1][counted] > 0


def test_insights_read_the_part_of_the_crm_they_need_and_raise_those_of_the_whole_read(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The period's activities, the deals and the leads they name (not the whole CRM): the same document."""
    from forecast.tracking import read as reading

    args = ("--as-of", "2024-09-15", "--period", "quarter", "--json")
    with monkeypatch.context() as patched:
        patched.setattr("forecast.tracking.sql_insights.read_part", lambda *_, **__: None)  # the read
        read = json.loads(_run(env, "insights", *args))

    def no_read(*_: object, **__: object) -> None:
        raise AssertionError("the CRM was read")

    monkeypatch.setattr(reading, "load", no_read)
    monkeypatch.setattr("forecast.tracking.api.load", no_read)
    part = json.loads(_run(env, "insights", *args))
    assert part == read and read["tested"] > 20 and read["insights"]


def test_metrics_performance_reads_a_warehouse_the_sql_cut_cannot_take(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lead id given twice (the read repeats its activities): the read answers, as it always did."""
    import shutil

    path = tmp_path / "twice.duckdb"
    shutil.copy(env["FORECAST_WAREHOUSE"], path)
    with duckdb.connect(str(path)) as con:
        con.execute("INSERT INTO leads SELECT * FROM leads LIMIT 1")
    twice = {**env, "FORECAST_WAREHOUSE": str(path)}

    def no_sql(*_: object, **__: object) -> None:
        raise AssertionError("the report was aggregated in SQL")

    monkeypatch.setattr("forecast.tracking.sql_reports.report", no_sql)
    doc = json.loads(_run(twice, "metrics", "--report", "performance", "--json"))
    rows = doc["reports"]["performance"]["tables"]["performance"]
    assert rows[-1]["rep"] == "(all)" and rows[-1]["calls"] > 0
