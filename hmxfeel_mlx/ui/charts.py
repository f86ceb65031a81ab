"""Text charts: a sparkline and a line chart with a threshold line, as Rich renderables.

The line chart fits the space Rich gives it (``options.max_width`` and, inside a
Layout, ``options.height``): steps go left to right, the y range covers the data
and the threshold when it is near the data; a threshold far outside the data is
named in the legend instead, so a flat curve does not hide in one row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

BLOCKS = "▁▂▃▄▅▆▇█"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def sparkline(values: list[float], width: int | None = None) -> str:
    """The last ``width`` values as block characters scaled to their own range; NaN is a space."""
    values = list(values)[-width:] if width else list(values)
    finite = [v for v in values if _finite(v)]
    if not finite:
        return " " * len(values)
    lo, hi = min(finite), max(finite)
    span = hi - lo
    out = []
    for v in values:
        if not _finite(v):
            out.append(" ")
        elif span == 0:
            out.append(BLOCKS[0])
        else:
            out.append(BLOCKS[min(len(BLOCKS) - 1, int((v - lo) / span * len(BLOCKS)))])
    return "".join(out)


@dataclass
class Series:
    label: str
    points: list[tuple[int, float]]  # (step, value)
    marker: str
    style: str = ""
    connect: bool = True  # fill the columns between points with a dotted line


@dataclass
class LineChart:
    """Series over steps 0..x_max with an optional horizontal threshold and x-axis marks."""

    series: list[Series]
    x_max: int
    threshold: float | None = None
    height: int | None = None  # rows including the x axis; default: the height Rich offers, else 8
    x_marks: dict[int, str] = field(default_factory=dict)  # step -> axis character (checkpoints, selection)
    threshold_style: str = "yellow"

    def y_range(self) -> tuple[float, float, bool]:
        """(low, high, threshold shown): the data range, stretched to the threshold when it is near."""
        ys = [y for s in self.series for _, y in s.points if _finite(y)]
        if not ys:
            return 0.0, 10.0, self.threshold is not None and 0 <= self.threshold <= 10
        lo, hi = min(ys), max(ys)
        span = max(hi - lo, 0.1)
        shown = self.threshold is not None and lo - span <= self.threshold <= hi + span
        if shown:
            lo, hi = min(lo, self.threshold), max(hi, self.threshold)
        if hi - lo < 0.1:
            lo, hi = lo - 0.05, hi + 0.05
        return lo, hi, shown

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = self.height or options.height or 8
        with_labels = height >= 8  # the "0 ... x_max" line under the axis, when there is room
        rows = max(2, height - 1 - with_labels)
        lo, hi, shown = self.y_range()
        labels = {0: f"{hi:.2f}", rows - 1: f"{lo:.2f}"}

        def row_of(y: float) -> int:
            return int(round((hi - y) / (hi - lo) * (rows - 1)))

        if shown:
            labels[row_of(self.threshold)] = f"{self.threshold:.2f}"
        gutter = max(len(v) for v in labels.values()) + 1
        width = max(4, options.max_width - gutter)

        def col_of(x: float) -> int:
            return int(round(x / max(self.x_max, 1) * (width - 1)))

        grid: list[list[tuple[str, str]]] = [[(" ", "")] * width for _ in range(rows)]
        if shown:
            grid[row_of(self.threshold)] = [("╌", self.threshold_style)] * width
        for s in self.series:
            pts = [(x, y) for x, y in s.points if _finite(y)]
            if s.connect:
                for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                    c0, c1 = col_of(x0), col_of(x1)
                    for c in range(c0 + 1, c1):
                        y = y0 + (y1 - y0) * (c - c0) / (c1 - c0)
                        grid[row_of(y)][c] = ("·", s.style)
            for x, y in pts:
                grid[row_of(y)][col_of(x)] = (s.marker, s.style)
        if self.threshold is not None and not shown:  # far from the data: named at the top or bottom edge,
            above = self.threshold > hi                # on the side where it hides the fewest points
            note = f"╌ {self.threshold:g} {'↑' if above else '↓'}"
            row = grid[0 if above else rows - 1]
            if len(note) < width:
                starts = (width - len(note), 0)
                start = min(starts, key=lambda a: sum(ch != " " for ch, _ in row[a: a + len(note)]))
                for k, ch in enumerate(note):
                    if row[start + k][0] == " ":
                        row[start + k] = (ch, self.threshold_style)
        for r in range(rows):
            line = Text(labels.get(r, "").rjust(gutter - 1) + ("┤" if r in labels else "│"), style="dim")
            for ch, style in grid[r]:
                line.append(ch, style)
            yield line
        axis = ["─"] * width
        for x, mark in sorted(self.x_marks.items()):
            if 0 <= x <= self.x_max:
                axis[col_of(x)] = mark
        yield Text(" " * (gutter - 1) + "└" + "".join(axis), style="dim")
        if with_labels:
            left, right = "0", str(self.x_max)
            yield Text(" " * gutter + left + right.rjust(width - len(left)), style="dim")
