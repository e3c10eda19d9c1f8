"""``forecast report``: the weekly report as one self-contained HTML file (and its PDF), on the
dashboard tests' trained CRM.

The report's figures must equal the CLI's JSON for the same as of and period, the file must reference
nothing outside itself (parsed, not grepped), and ``--pdf`` must print a PDF where Chromium exists and
name the missing browser where it does not.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from forecast.cli import app
from tests.cli import cli_json, runner
from tests.dashboard_env import AS_OF, trained_env

pytestmark = pytest.mark.slow  # the shared trained CRM, and 10,000 revenue simulations

PERIOD = "week"
EMBEDDING_TAGS = frozenset({"script", "link", "img", "iframe", "object", "embed", "video", "audio", "source"})
URL_ATTRIBUTES = frozenset({"href", "src", "srcset", "action", "formaction", "poster", "data", "xlink:href"})


class _References(HTMLParser):
    """Every way an HTML document can point outside itself: tags that embed, URL attributes, CSS urls."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in EMBEDDING_TAGS:
            self.found.append(f"<{tag}>")
        self.found += [f"{tag}[{name}={value}]" for name, value in attrs if name in URL_ATTRIBUTES]
        styles = [value or "" for name, value in attrs if name == "style"]
        self.found += [f"{tag}[style]" for style in styles if "url(" in style]
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style and ("url(" in data or "@import" in data):
            self.found.append("<style> with url( or @import")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[dict[str, str], Path]:
    """The report of the trained CRM (with its PDF when a browser exists)."""
    env = trained_env(tmp_path_factory, worker_id)
    out = tmp_path_factory.mktemp("report") / "report.html"
    pdf = ["--pdf"] if shutil.which("chromium") else []
    args = ["report", "--as-of", AS_OF, "--period", PERIOD, "--out", str(out), *pdf]
    result = runner.invoke(app, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return env, out


def _figures(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([^"]+)" data-value="([^"]*)"', html))


def _rows(html: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, body in re.findall(r'<tr data-row="([^"]*)"[^>]*>(.*?)</tr>', html, re.S):
        out.setdefault(key, dict(re.findall(r'data-col="([^"]+)" data-value="([^"]*)"', body)))
    return out


def _close(page: str, cli: Any) -> bool:
    return float(page) == pytest.approx(float(cli), rel=1e-9, abs=1e-9)


def test_the_report_references_nothing_outside_itself(written: tuple[dict[str, str], Path]) -> None:
    html = written[1].read_text(encoding="utf-8")
    parser = _References()
    parser.feed(html)
    assert parser.found == []
    assert "http://" not in html and "https://" not in html
    assert "<style>" in html and html.count("<svg") >= 3  # the stylesheet and the charts are inline
    period = re.findall(r"period <strong>([^<]+)</strong>", html)[0]
    titles = re.findall(r"<h1>(.*?)</h1>", html)
    assert titles[1:] == ["Overview", f"Reps: {period}", f"Insights: {period}"]


def test_the_report_figures_equal_the_cli_json(written: tuple[dict[str, str], Path]) -> None:
    env, out = written
    html = out.read_text(encoding="utf-8")
    figures = _figures(html)
    assert figures["as_of"] == f"{AS_OF}T00:00:00"
    revenue = cli_json(env, "revenue", "--as-of", AS_OF)
    goals = revenue["goals"]
    current = next(r for r in revenue["forecast"] if r["period"] == goals["period"] and r["group"] == "(all)")
    assert goals["won_to_date"] > 0  # the comparison means something
    for key in ("won_to_date", "goal", "pace_to_date", "p_hit_quota"):
        assert _close(figures[key], goals[key]), key
    for key in ("p50", "gap_to_goal", "deals_needed"):
        assert _close(figures[key], current[key]), key
    performance = cli_json(env, "metrics", "--report", "performance", "--period", PERIOD, "--as-of", AS_OF)
    rows = _rows(html)
    cli_rows = {r["rep"]: r for r in performance["reports"]["performance"]["tables"]["performance"]}
    assert set(cli_rows) <= set(rows)
    for rep, row in cli_rows.items():
        for key in ("calls", "won", "won_value", "reply_rate"):
            page = rows[rep][key]
            assert (page == "") if row[key] is None else _close(page, row[key]), (rep, key)
    insights = cli_json(env, "insights", "--period", PERIOD, "--as-of", AS_OF)
    listed = re.findall(r'<li data-rule="([^"]*)">.*?class="impact" data-value="([^"]*)"', html, re.S)
    top = [(i["rule"], i["expected_revenue_impact"]) for i in insights["insights"]]
    assert top  # at least one insight to compare
    assert [rule for rule, _ in listed] == [rule for rule, _ in top[:5]] + [rule for rule, _ in top]
    for (_, page), (_, cli) in zip(listed[len(top[:5]) :], top, strict=True):
        assert (page == "") if cli is None else _close(page, cli)


def test_the_pdf_is_printed_by_chromium(written: tuple[dict[str, str], Path]) -> None:
    if shutil.which("chromium") is None:
        pytest.skip("no chromium on PATH: install Debian's chromium to print the report")
    pdf = written[1].with_suffix(".pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000


def test_pdf_without_a_browser_names_it_and_writes_nothing(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh.duckdb"
    warehouse.touch()  # the browser is checked before the warehouse is read
    out = tmp_path / "report.html"
    args = ["--warehouse", str(warehouse), "report", "--out", str(out), "--pdf"]
    result = runner.invoke(app, args, env={"PATH": str(tmp_path)}, catch_exceptions=False)
    assert result.exit_code == 2
    assert "chromium" in result.output and "--pdf" in result.output
    assert not out.exists()
