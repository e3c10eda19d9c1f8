"""The dashboard's SVG charts: one mark per data point, a "no data" figure for nothing, no other host."""

from __future__ import annotations

import math
import re

import pytest

from forecast.dashboard import charts


def _marks(svg: str, tag: str, cls: str) -> int:
    return len(re.findall(rf'<{tag} class="{cls}"', svg))


def _well_formed(svg: str) -> None:
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<title>" in svg and 'role="img"' in svg
    assert "http" not in svg and "<script" not in svg


def test_fan_chart_draws_a_band_a_p50_and_a_quota_per_period() -> None:
    svg = charts.fan_chart(
        ["2025-01", "2025-02", "2025-03"], [10, 20, 30], [50, 60, 70], [90, 100, 110], [80, None, 75]
    )
    _well_formed(svg)
    assert _marks(svg, "rect", "band") == 3
    assert _marks(svg, "circle", "p50") == 3
    assert _marks(svg, "line", "quota") == 2  # the period without a quota draws none
    assert "2025-02: P50 60" in svg and "P10 20 to P90 100" in svg


def test_fan_chart_skips_periods_without_a_p50() -> None:
    svg = charts.fan_chart(["a", "b"], [1, None], [2, math.nan], [3, None])
    assert _marks(svg, "rect", "band") == 1 and _marks(svg, "circle", "p50") == 1


def test_bar_chart_one_bar_per_value_with_whiskers_for_intervals() -> None:
    svg = charts.bar_chart(
        ["R1", "R2", "R3"], [0.2, None, 0.5], [0.1, None, 0.4], [0.3, None, 0.6], title="win"
    )
    _well_formed(svg)
    assert _marks(svg, "rect", "bar") == 2
    assert _marks(svg, "line", "whisker") == 2


def test_line_chart_one_path_per_series_and_one_point_per_value() -> None:
    svg = charts.line_chart(["d1", "d2", "d3"], [("won", [1, 2, 3]), ("goal", [2, None, 6])], title="pace")
    _well_formed(svg)
    assert _marks(svg, "path", "line") == 2
    assert _marks(svg, "circle", "point") == 5


@pytest.mark.parametrize(
    "svg",
    [
        charts.fan_chart([], [], [], []),
        charts.fan_chart(["a"], [None], [None], [None]),
        charts.bar_chart([], [], title="empty"),
        charts.bar_chart(["a"], [math.nan]),
        charts.line_chart([], [], title="empty"),
        charts.line_chart(["a"], [("s", [None])]),
    ],
)
def test_empty_data_gives_a_no_data_figure(svg: str) -> None:
    _well_formed(svg)
    assert 'class="chart empty"' in svg and "no " in svg
    assert not re.search(r'class="(band|p50|bar|line|point)"', svg)


def test_titles_are_escaped_and_the_palette_is_okabe_ito() -> None:
    svg = charts.bar_chart(["<b>&"], [1.0], title='a "quoted" <title>')
    assert "<b>&" not in svg and "&lt;b&gt;&amp;" in svg
    assert charts.PALETTE["blue"] == "#0072B2" and charts.PALETTE["vermillion"] == "#D55E00"


def test_compact_numbers() -> None:
    assert [charts.compact(v) for v in (950, 9_500, 95_000, 950_000, 1_250_000)] == [
        "950",
        "9,500",
        "95.0k",
        "950k",
        "1.2M",
    ]


def test_a_rate_axis_stops_at_its_ceiling() -> None:
    """A whisker at 94% stretched the win-rate axis to 103% before ``ceiling``."""
    pct = lambda v: f"{100 * v:.0f}%"  # noqa: E731

    def top_tick(svg: str) -> int:
        return max(int(t) for t in re.findall(r'class="tick"[^>]*>(\d+)%</text>', svg))

    args = (["R1", "R2"], [0.5, 0.8], [0.4, 0.6], [0.6, 0.94])
    assert top_tick(charts.bar_chart(*args, fmt=pct)) == 103
    assert top_tick(charts.bar_chart(*args, fmt=pct, ceiling=1.0)) == 100
    assert top_tick(charts.bar_chart(["R1"], [0.2], fmt=pct, ceiling=1.0)) == 22  # headroom kept below it
