"""Charts as inline SVG, drawn in Python: pure functions from numbers to markup.

No script and no external file: the page carries its charts. Colours are the Okabe-Ito palette,
which stays distinguishable with the common colour-vision deficiencies; every chart has a
``<title>`` (read by screen readers) and every data mark its own ``<title>`` with its value. Empty
data gives a figure that says "no data", never an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "grey": "#6b6b6b",
}
"""Okabe-Ito colours (colour-blind safe) by role-free names."""

WIDTH = 640
HEIGHT = 240
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 64, 16, 16, 40

Number = float | int | None
Formatter = Callable[[float], str]


def compact(value: float) -> str:
    """A short number for axes and tooltips: ``9,500``, ``95.0k``, ``1.2M``."""
    size = abs(value)
    if size >= 1e6:
        return f"{value / 1e6:.1f}M"
    if size >= 1e5:
        return f"{value / 1e3:.0f}k"
    if size >= 1e4:
        return f"{value / 1e3:.1f}k"
    return f"{value:,.0f}" if size >= 10 or value == int(value) else f"{value:.2f}"


def _floats(values: Sequence[Number] | None, n: int) -> list[float]:
    """The values as floats, a missing one (``None``) as NaN; ``None`` as ``n`` NaNs."""
    if values is None:
        return [math.nan] * n
    return [math.nan if v is None else float(v) for v in values]


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _open(title: str, width: int = WIDTH, height: int = HEIGHT, kind: str = "chart") -> list[str]:
    return [
        f'<svg class="{kind}" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(title)}</title>",
    ]


def no_data(title: str, message: str = "no data") -> str:
    """A figure that says there is nothing to draw (and why)."""
    parts = _open(f"{title}: {message}", height=80, kind="chart empty")
    parts.append(
        f'<text x="{WIDTH / 2}" y="45" text-anchor="middle" class="nodata">{escape(message)}</text></svg>'
    )
    return "".join(parts)


def _scale(lo: float, hi: float, top: float, bottom: float) -> Callable[[float], float]:
    if hi <= lo:
        hi = lo + 1.0
    return lambda v: bottom - (v - lo) / (hi - lo) * (bottom - top)


def _y_axis(lo: float, hi: float, y: Callable[[float], float], fmt: Formatter) -> list[str]:
    parts = []
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<line class="grid" x1="{_PAD_LEFT}" x2="{WIDTH - _PAD_RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
            f'<text class="tick" x="{_PAD_LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(v))}</text>"
        )
    return parts


def _x_label(x: float, label: str) -> str:
    return (
        f'<text class="tick" x="{x:.1f}" y="{HEIGHT - _PAD_BOTTOM + 16}" '
        f'text-anchor="middle">{escape(label)}</text>'
    )


def fan_chart(
    labels: Sequence[str],
    p10: Sequence[Number],
    p50: Sequence[Number],
    p90: Sequence[Number],
    quota: Sequence[Number] | None = None,
    title: str = "Revenue forecast",
    fmt: Formatter = compact,
) -> str:
    """The forecast per period: a P10-P90 band, the P50 and, where known, the quota.

    One ``rect.band`` and one ``circle.p50`` per period with a P50, one ``line.quota`` per period
    with a quota; periods without a P50 draw nothing.
    """
    n = len(labels)
    columns = zip(labels, _floats(p10, n), _floats(p50, n), _floats(p90, n), _floats(quota, n), strict=True)
    points = [(lab, lo, mid, hi, q) for lab, lo, mid, hi, q in columns if _finite(mid)]
    if not points:
        return no_data(title, "no forecast to draw")
    values = [v for _, lo, mid, hi, q in points for v in (lo, mid, hi, q) if _finite(v)]
    lo_v, hi_v = min(0.0, *values), max(values) * 1.1 or 1.0
    y = _scale(lo_v, hi_v, _PAD_TOP, HEIGHT - _PAD_BOTTOM)
    step = (WIDTH - _PAD_LEFT - _PAD_RIGHT) / len(points)
    parts = _open(title)
    parts += _y_axis(lo_v, hi_v, y, fmt)
    for k, (label, lo, mid, hi, q) in enumerate(points):
        cx = _PAD_LEFT + step * (k + 0.5)
        half = min(step * 0.3, 40)
        low = lo if _finite(lo) else mid
        high = hi if _finite(hi) else mid
        parts.append(
            f'<rect class="band" x="{cx - half:.1f}" y="{y(high):.1f}" width="{2 * half:.1f}" '
            f'height="{max(y(low) - y(high), 1):.1f}" fill="{PALETTE["sky"]}" fill-opacity="0.45">'
            f"<title>{escape(label)}: P10 {fmt(low)} to P90 {fmt(high)}</title></rect>"
        )
        parts.append(
            f'<circle class="p50" cx="{cx:.1f}" cy="{y(mid):.1f}" r="5" '
            f'fill="{PALETTE["blue"]}"><title>{escape(label)}: P50 {fmt(mid)}</title></circle>'
        )
        if _finite(q):
            qy = y(q)
            parts.append(
                f'<line class="quota" x1="{cx - half - 6:.1f}" x2="{cx + half + 6:.1f}" y1="{qy:.1f}" '
                f'y2="{qy:.1f}" stroke="{PALETTE["vermillion"]}" stroke-width="3" stroke-dasharray="6 3">'
                f"<title>{escape(label)}: quota {fmt(q)}</title></line>"
            )
        parts.append(_x_label(cx, label))
    parts.append(
        _legend([("P10–P90", PALETTE["sky"]), ("P50", PALETTE["blue"]), ("quota", PALETTE["vermillion"])])
    )
    parts.append("</svg>")
    return "".join(parts)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    parts = ['<g class="legend">']
    x = _PAD_LEFT
    for label, colour in items:
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text class="tick" x="{x + 14}" y="{HEIGHT - 5}">{escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    parts.append("</g>")
    return "".join(parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[Number],
    lo: Sequence[Number] | None = None,
    hi: Sequence[Number] | None = None,
    title: str = "",
    fmt: Formatter = compact,
    colour: str = PALETTE["blue"],
    ceiling: float | None = None,
) -> str:
    """Vertical bars, one ``rect.bar`` per label with a value, with whiskers where an interval is given.

    ``ceiling`` caps the axis' headroom where values cannot exceed it (rates: 1.0), so that a
    whisker at 94% does not stretch the axis past 100%.
    """
    n = len(labels)
    columns = zip(labels, _floats(values, n), _floats(lo, n), _floats(hi, n), strict=True)
    items = [(lab, v, a, b) for lab, v, a, b in columns if _finite(v)]
    if not items:
        return no_data(title, "no values to draw")
    all_values = [x for _, v, a, b in items for x in (v, a, b) if _finite(x)]
    lo_v, hi_v = min(0.0, *all_values), max(all_values) * 1.1 or 1.0
    if ceiling is not None and max(all_values) <= ceiling:
        hi_v = min(hi_v, ceiling)
    y = _scale(lo_v, hi_v, _PAD_TOP, HEIGHT - _PAD_BOTTOM)
    step = (WIDTH - _PAD_LEFT - _PAD_RIGHT) / len(items)
    parts = _open(title)
    parts += _y_axis(lo_v, hi_v, y, fmt)
    for k, (label, v, a, b) in enumerate(items):
        x = _PAD_LEFT + step * k + step * 0.15
        top, base = min(y(v), y(0.0)), max(y(v), y(0.0))
        interval = f" [{fmt(a)}–{fmt(b)}]" if _finite(a) and _finite(b) else ""
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{step * 0.7:.1f}" '
            f'height="{max(base - top, 1):.1f}" fill="{colour}">'
            f"<title>{escape(label)}: {fmt(v)}{escape(interval)}</title></rect>"
        )
        if interval:
            cx = x + step * 0.35
            parts.append(
                f'<line class="whisker" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(a):.1f}" '
                f'y2="{y(b):.1f}" stroke="#000" stroke-width="1.5"/>'
            )
        if len(items) <= 16:
            parts.append(_x_label(x + step * 0.35, label))
    parts.append("</svg>")
    return "".join(parts)


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number]]],
    title: str = "",
    fmt: Formatter = compact,
) -> str:
    """One ``path.line`` per series and one ``circle.point`` per finite value.

    ``series`` is ``[(name, values), ...]``, each as long as ``x_labels``.
    """
    n = len(x_labels)
    lines = [(name, _floats(values, n)) for name, values in series]
    finite = [v for _, values in lines for v in values if _finite(v)]
    if not x_labels or not finite:
        return no_data(title, "no values to draw")
    lo_v, hi_v = min(0.0, *finite), max(finite) * 1.1 or 1.0
    y = _scale(lo_v, hi_v, _PAD_TOP, HEIGHT - _PAD_BOTTOM)
    step = (WIDTH - _PAD_LEFT - _PAD_RIGHT) / max(n, 1)
    colours = [PALETTE["blue"], PALETTE["vermillion"], PALETTE["green"], PALETTE["orange"], PALETTE["purple"]]
    parts = _open(title)
    parts += _y_axis(lo_v, hi_v, y, fmt)
    for s, (name, values) in enumerate(lines):
        colour = colours[s % len(colours)]
        coords = [
            (_PAD_LEFT + step * (k + 0.5), y(v), x_labels[k], v) for k, v in enumerate(values) if _finite(v)
        ]
        if not coords:
            continue
        d = " ".join(f"{'M' if k == 0 else 'L'}{cx:.1f},{cy:.1f}" for k, (cx, cy, _, _) in enumerate(coords))
        dash = ' stroke-dasharray="6 3"' if s % 2 else ""
        parts.append(
            f'<path class="line" d="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash}>'
            f"<title>{escape(name)}</title></path>"
        )
        for cx, cy, label, v in coords:
            parts.append(
                f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)}, {escape(label)}: {fmt(v)}</title></circle>"
            )
    every = max(1, n // 8)
    for k in range(0, n, every):
        parts.append(_x_label(_PAD_LEFT + step * (k + 0.5), x_labels[k]))
    parts.append(_legend([(name, colours[s % len(colours)]) for s, (name, _) in enumerate(series)]))
    parts.append("</svg>")
    return "".join(parts)
