"""The three views of the sample inspector (``inspector.Inspector``), as renderables that fit
the height Rich gives them: the group's completions, one completion in full, and the same
prompt in every run side by side.

They read the inspector's position and draw; the full view also records how far it can
scroll (``scroll_limit``), so that ↓ stops at the end of the text.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from .state import Group
from .views import BEST_STYLE, WORST_STYLE, best_and_worst, best_first, clip_lines, mark_cell, num, one_line

if TYPE_CHECKING:
    from .inspector import Inspector


class ListView:
    def __init__(self, insp: Inspector):
        self.insp = insp

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        insp = self.insp
        g = insp.group()
        rows = insp.visible()
        if not rows:
            yield Text("no completion matches the filter (f, then enter on an empty line, clears it)" if g and
                       insp.filter else "no samples here", style="dim")
            return
        height = max(2, (options.height or 20) - 1)  # one line of column titles
        per = max(1, min(6, height // len(rows)))
        fit = max(1, height // per)
        start = min(max(0, insp.row - fit // 2), max(0, len(rows) - fit))
        best, worst = best_and_worst(g.rows, insp.direction)
        reward_differs = any("reward" in r and r["reward"] != r.get("score") for _, r in rows)
        table = Table(box=None, padding=(0, 1), collapse_padding=True, pad_edge=False, show_edge=False)
        widths = [("", 1, "left"), ("#", 3, "right"), ("", 7, "left"), ("score", 5, "right")]
        widths += [("reward", 6, "right")] if reward_differs else []
        widths += [("adv", 6, "right")]
        for title, w, justify in widths:
            table.add_column(title, width=w, justify=justify, no_wrap=True)
        text_w = max(10, options.max_width - sum(w for _, w, _ in widths) - len(widths))
        table.add_column("completion", width=text_w)
        for pos in range(start, min(len(rows), start + fit)):
            i, r = rows[pos]
            selected = pos == insp.row
            style = BEST_STYLE if i == best else WORST_STYLE if i == worst else ""
            cells = ["›" if selected else "", str(i + 1), mark_cell(i, best, worst),
                     Text(num(r.get("score")), style=style)]
            if reward_differs:
                cells.append(num(r.get("reward")))
            cells += [num(r.get("advantage"), "+.2f") if "advantage" in r else "",
                      clip_lines(one_line(r.get("completion", "")), console, text_w, per)]
            table.add_row(*cells, style="reverse" if selected else "")
        yield table


class FullView:
    def __init__(self, insp: Inspector):
        self.insp = insp

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        insp = self.insp
        rows = insp.visible()
        if not rows:
            yield Text("no completion here", style="dim")
            return
        i, r = rows[min(insp.row, len(rows) - 1)]
        width = options.max_width
        best, worst = best_and_worst(insp.group().rows, insp.direction)
        facts = [f"completion #{i + 1} of {len(insp.group().rows)}"]
        facts += ["best of the group"] if i == best else ["worst of the group"] if i == worst else []
        facts.append(f"score {num(r.get('score'))}")
        if "reward" in r and r["reward"] != r.get("score"):
            facts.append(f"reward {num(r.get('reward'))}")
        if "advantage" in r:
            facts.append(f"advantage {num(r.get('advantage'), '+.2f')}")
        if "tokens" in r:
            facts.append(f"{r['tokens']} tokens" + ("" if r.get("finished", True) else ", cut at the token limit"))
        text = Text(" · ".join(facts) + "\n", style="bold")
        text.append(str(r.get("completion", "")))
        if r.get("judge_text") is not None:
            text.append("\n\njudge: ", style="bold")
            text.append(str(r["judge_text"]), style="italic")
        lines = text.wrap(console, width)
        height = options.height or len(lines)
        insp.scroll_limit = max(0, len(lines) - height)  # recorded so that ↓ stops at the end
        scroll = min(insp.scroll, insp.scroll_limit)
        shown = list(lines)[scroll: scroll + height]
        if scroll + height < len(lines):
            shown[-1] = Text(f"… {len(lines) - scroll - height + 1} more line(s): ↓ or page down", style="dim")
        yield Text("\n").join(shown)


class CompareView:
    """The current prompt in every run, one column each; held-out mode starts with the base (step 0)."""

    def __init__(self, insp: Inspector):
        self.insp = insp

    def columns(self) -> list[tuple[str, Group | None]]:
        insp = self.insp
        g = insp.group()
        if g is None:
            return []
        cols = []
        if insp.held_out and insp.step != 0:
            base = insp.current.held_out.get(0, [])
            same = [b for b in base if b.prompt == g.prompt]
            if same:
                cols.append((f"base (step 0 of {insp.current.name})", same[0]))
        for run in insp.runs:
            cols.append((f"{run.name} ({run.state.config.get('direction', '?')})",
                         run.nearest(insp.held_out, g.prompt, insp.step)))
        return cols

    def directions(self) -> list[str]:
        """Each column's direction, by which its replies are ordered best first (the base column
        is ordered as the current run's)."""
        insp = self.insp
        dirs = [run.state.config.get("direction", "forward") for run in insp.runs]
        return ([insp.direction] if len(self.columns()) > len(dirs) else []) + dirs

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        cols = self.columns()
        if not cols:
            yield Text("no samples here", style="dim")
            return
        height = max(1, (options.height or 20) - 2)  # two lines of column titles
        width = max(10, (options.max_width - (len(cols) - 1)) // len(cols))
        most = max((len(grp.rows) for _, grp in cols if grp), default=1)
        self.insp.scroll = min(self.insp.scroll, max(0, most - 1))
        per = max(1, min(6, height // max(1, most - self.insp.scroll)))
        table = Table(box=None, padding=(0, 1, 0, 0), expand=True, show_edge=False)
        for title, grp in cols:
            scores = [r["score"] for r in (grp.rows if grp else []) if isinstance(r.get("score"), (int, float))
                      and math.isfinite(r["score"])]
            where = (f"step {grp.step}" + (f" · mean {sum(scores) / len(scores):.2f}" if scores else "")
                     if grp else "-")
            head = Text(title, style="bold", no_wrap=True, overflow="ellipsis")
            head.append("\n" + where, style="dim")
            table.add_column(head, width=width - 1, overflow="fold")
        cells = []
        for (_, grp), direction in zip(cols, self.directions()):
            if grp is None:
                cells.append(Text("this prompt is not in this run", style="dim"))
                continue
            ordered = [grp.rows[i] for i in best_first(grp.rows, direction)][self.insp.scroll:]
            block = Text()
            used = 0
            for r in ordered:
                if used + 1 > height:
                    break
                lines = min(per, height - used)
                entry = Text(f"{num(r.get('score'))} ", style="bold")
                entry.append(one_line(r.get("completion", "")))
                clipped = clip_lines(entry, console, width - 1, lines)
                if block:
                    block.append("\n")
                block.append_text(clipped)
                used += len(clipped.wrap(console, width - 1))
            cells.append(block)
        table.add_row(*cells)
        yield table
