"""Sparkline and line chart, rendered into a colourless fixed-width console."""

from __future__ import annotations

import io

from rich.console import Console

from hmxfeel_mlx.ui.charts import LineChart, Series, sparkline


def render(renderable, width: int) -> list[str]:
    console = Console(width=width, color_system=None, file=io.StringIO(), legacy_windows=False)
    console.print(renderable)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


def test_sparkline_scales_to_its_range():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0.0, float("nan"), 1.0]) == "▁ █"  # NaN (e.g. a missing metric) is a gap
    assert sparkline([3, 3, 3]) == "▁▁▁"
    assert sparkline(list(range(10)), 4) == "▁▃▆█"  # the newest four: 6, 7, 8, 9


def test_line_chart_draws_points_threshold_and_marks():
    chart = LineChart([Series("train", [(0, 0.0), (1, 1.0), (2, 2.0)], "•"),
                       Series("held-out", [(2, 1.5)], "◆", connect=False)],
                      x_max=2, threshold=1.0, height=5, x_marks={1: "▲"})
    # 4 plot rows from 2.00 down to 0.00; the threshold line at 1.00 (row 2); steps 0, 1, 2 at columns 0, 7, 14
    assert render(chart, 20) == [
        "2.00┤            ··•",
        "    │        ····  ◆",
        "1.00┤╌╌╌····•╌╌╌╌╌╌╌",
        "0.00┤•··",
        "    └───────▲───────",
    ]


def test_threshold_far_from_the_data_is_named_at_the_edge_without_hiding_points():
    rising = LineChart([Series("train", [(0, 4.0), (4, 4.2)], "•")], x_max=4, threshold=7.5, height=8)
    lines = render(rising, 20)
    assert lines[0] == "4.20┤╌ 7.5 ↑      ·•"  # above the chart, on the left: the curve ends top right
    assert lines[-1] == "     0             4" and "7.50" not in "".join(lines)
    falling = LineChart([Series("train", [(0, 4.2), (4, 4.0)], "•")], x_max=4, threshold=0.5, height=6)
    assert render(falling, 20)[4] == "4.00┤╌ 0.5 ↓      ·•"


def test_chart_without_data_still_renders_its_frame():
    lines = render(LineChart([Series("train", [], "•")], x_max=30, threshold=7.5, height=6), 40)
    assert lines[0].startswith("10.00┤") and lines[-1].startswith("     └")
    assert any(set(line[6:]) == {"╌"} for line in lines)  # 7.5 lies in the default 0-10 range
