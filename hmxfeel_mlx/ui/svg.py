"""Inline SVG charts for the HTML report: a line chart and a forest plot, as strings.

Pure functions from numbers to markup, no dependencies: every string that reaches
the markup (labels, titles) passes through ``esc``, so text read from files can
never open or close an element. Coordinates are rounded to 0.1 px.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

AXIS_COLOR, GRID_COLOR, TEXT_COLOR, MUTED_COLOR = "#555", "#e4e4e4", "#222", "#777"
THRESHOLD_COLOR = "#d08c00"


def esc(value) -> str:
    """Text for HTML or SVG content and attribute values."""
    return html.escape(str(value), quote=True)


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if v == v else "0"


def nice_step(span: float, count: int = 5) -> float:
    """A round tick spacing (1, 2, 2.5 or 5 x 10^k) giving about ``count`` ticks over ``span``."""
    if not finite(span) or span <= 0:
        return 1.0
    raw = span / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def nice_ceil(v: float) -> float:
    """The smallest round number (1, 2, 2.5 or 5 x 10^k) >= v > 0."""
    if not finite(v) or v <= 0:
        return 1.0
    mag = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * mag * (1 + 1e-12):
            return m * mag
    return 10 * mag


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = nice_step(hi - lo, count)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def tick_label(v: float) -> str:
    return f"{v:g}" if abs(v) >= 1e-4 or v == 0 else f"{v:.1e}"


@dataclass(frozen=True)
class Scale:
    """Linear map from a data interval to a pixel interval."""

    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, v: float) -> float:
        span = self.d1 - self.d0
        t = (v - self.d0) / span if span else 0.5
        return self.r0 + t * (self.r1 - self.r0)


# ----------------------------------------------------------------- elements
def line(x1: float, y1: float, x2: float, y2: float, color: str = AXIS_COLOR, width: float = 1,
         dash: str = "") -> str:
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{color}" '
            f'stroke-width="{_n(width)}"{extra}/>')


def text(x: float, y: float, s, size: float = 11, anchor: str = "start", color: str = TEXT_COLOR,
         weight: str = "") -> str:
    bold = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{_n(x)}" y="{_n(y)}" font-size="{_n(size)}" text-anchor="{anchor}" '
            f'fill="{color}"{bold}>{esc(s)}</text>')


def circle(x: float, y: float, r: float, fill: str, stroke: str = "none", width: float = 1) -> str:
    return (f'<circle cx="{_n(x)}" cy="{_n(y)}" r="{_n(r)}" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{_n(width)}"/>')


def path(points: list[tuple[float, float]], color: str, width: float = 1.5, dash: str = "",
         opacity: float = 1.0) -> str:
    """A polyline through pixel points (no element for fewer than two)."""
    if len(points) < 2:
        return ""
    d = "M" + " L".join(f"{_n(x)},{_n(y)}" for x, y in points)
    extra = (f' stroke-dasharray="{dash}"' if dash else "") + (f' stroke-opacity="{opacity:g}"' if opacity < 1 else "")
    return f'<path d="{d}" fill="none" stroke="{color}" stroke-width="{_n(width)}"{extra}/>'


def svg(width: int, height: int, body: list[str], label: str) -> str:
    """The outer element: scales to its container's width, keeps its aspect ratio."""
    return (f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{esc(label)}" '
            f'font-family="system-ui, sans-serif">' + "".join(body) + "</svg>")


# --------------------------------------------------------------- line chart
@dataclass
class Series:
    """One line (``line``) and/or its points (``markers``), in data coordinates; None/NaN skipped."""

    points: list[tuple[float, float | None]]
    color: str
    line: bool = True
    markers: bool = False
    dash: str = ""
    width: float = 1.5
    opacity: float = 1.0


@dataclass
class LineChart:
    series: list[Series]
    x_max: float
    y_range: tuple[float, float]
    x_label: str = ""
    y_label: str = ""
    hline: tuple[float, str] | None = None  # (y, label): the selection threshold
    rings: list[tuple[float, float, str]] = field(default_factory=list)  # (x, y, color): selected checkpoints
    width: int = 560
    height: int = 300


def y_range_of(values: list[float], floor: tuple[float, float] = (0.0, 10.0)) -> tuple[float, float]:
    """``floor`` (the 0-10 score scale) unless some value lies outside it; then round bounds around all."""
    vals = [v for v in values if finite(v)]
    lo, hi = min(vals + [floor[0]]), max(vals + [floor[1]])
    if (lo, hi) == floor:
        return floor
    step = nice_step(hi - lo)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step


def line_chart(c: LineChart, label: str) -> str:
    left, right, top, bottom = 42, 14, 12, 38
    x = Scale(0, c.x_max or 1, left, c.width - right)
    y = Scale(c.y_range[0], c.y_range[1], c.height - bottom, top)
    body = []
    for t in ticks(*c.y_range):
        body.append(line(left, y(t), c.width - right, y(t), GRID_COLOR))
        body.append(text(left - 6, y(t) + 4, tick_label(t), 10, "end", MUTED_COLOR))
    for t in ticks(0, c.x_max or 1, 6):
        body.append(line(x(t), c.height - bottom, x(t), c.height - bottom + 4))
        body.append(text(x(t), c.height - bottom + 16, tick_label(t), 10, "middle", MUTED_COLOR))
    body.append(line(left, c.height - bottom, c.width - right, c.height - bottom))
    body.append(line(left, top, left, c.height - bottom))
    if c.hline is not None and c.y_range[0] <= c.hline[0] <= c.y_range[1]:
        body.append(line(left, y(c.hline[0]), c.width - right, y(c.hline[0]), THRESHOLD_COLOR, 1.5, "6 4"))
        body.append(text(c.width - right - 4, y(c.hline[0]) - 5, c.hline[1], 10, "end", THRESHOLD_COLOR))
    for s in c.series:
        pts = [(x(px), y(py)) for px, py in s.points if finite(px) and finite(py)]
        if s.line:
            body.append(path(pts, s.color, s.width, s.dash, s.opacity))
        if s.markers:
            body += [circle(px, py, 3.2, s.color) for px, py in pts]
    for rx, ry, color in c.rings:
        if finite(rx) and finite(ry):
            body.append(circle(x(rx), y(ry), 7, "none", color, 2))
    if c.x_label:
        body.append(text((left + c.width - right) / 2, c.height - 6, c.x_label, 11, "middle", MUTED_COLOR))
    if c.y_label:
        body.append(f'<g transform="translate(11,{_n((top + c.height - bottom) / 2)}) rotate(-90)">'
                    + text(0, 0, c.y_label, 11, "middle", MUTED_COLOR) + "</g>")
    return svg(c.width, c.height, body, label)


# -------------------------------------------------------------- forest plot
@dataclass
class ForestRow:
    """One metric: the difference and its interval (NaN when there is none), drawn on its own scale."""

    label: str
    diff: float
    lo: float
    hi: float
    color: str
    value_text: str  # what the row says on the right, e.g. "+0.031 [-0.010, +0.072] Welch"


def row_half_range(r: ForestRow) -> float:
    """Half-width of a row's symmetric axis: a round number just above its largest |value|."""
    return nice_ceil(1.08 * max([abs(v) for v in (r.diff, r.lo, r.hi) if finite(v)] + [0.0]) or 1.0)


def forest_plot(groups: list[tuple[str, list[ForestRow]]], label: str, width: int = 1000) -> str:
    """Groups (an axis and its metrics) of rows; each row has its own axis -R..+R centred on 0."""
    row_h, head_h, top = 24, 26, 30
    name_w, plot_w = 230, 400
    x0 = name_w + 34
    x1 = x0 + plot_w
    body = [text(x0, 16, "forward − reverse (each row: its own scale, −R … 0 … +R)", 11, "start", MUTED_COLOR),
            text(x1 + 44, 16, "difference [95% interval]", 11, "start", MUTED_COLOR)]
    yy, stripe = top, 0
    for name, rows in groups:
        body.append(text(6, yy + 17, name, 13, "start", TEXT_COLOR, "600"))
        yy += head_h
        for r in rows:
            mid = yy + row_h / 2
            half = row_half_range(r)
            s = Scale(-half, half, x0, x1)
            if stripe % 2:
                body.append(f'<rect x="0" y="{_n(yy)}" width="{width}" height="{row_h}" fill="#f4f4f4"/>')
            stripe += 1
            body.append(text(18, mid + 4, r.label, 11.5))
            body.append(line(x0, mid, x1, mid, GRID_COLOR))
            body.append(line(s(0), yy + 3, s(0), yy + row_h - 3, AXIS_COLOR))
            body.append(text(x0 - 6, mid + 4, f"−{tick_label(half)}", 9.5, "end", MUTED_COLOR))
            body.append(text(x1 + 6, mid + 4, f"+{tick_label(half)}", 9.5, "start", MUTED_COLOR))
            if finite(r.lo) and finite(r.hi):
                body.append(line(s(r.lo), mid, s(r.hi), mid, r.color, 2.5))
                body += [line(s(v), mid - 5, s(v), mid + 5, r.color, 2) for v in (r.lo, r.hi)]
            if finite(r.diff):
                body.append(f'<rect x="{_n(s(r.diff) - 4.5)}" y="{_n(mid - 4.5)}" width="9" height="9" '
                            f'fill="{r.color}" transform="rotate(45 {_n(s(r.diff))} {_n(mid)})"/>')
            body.append(text(x1 + 44, mid + 4, r.value_text, 11, "start", r.color if finite(r.diff) else MUTED_COLOR))
            yy += row_h
    return svg(width, int(yy + 8), body, label)
