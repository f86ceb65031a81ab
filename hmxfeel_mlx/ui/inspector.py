"""`hmx-mlx inspect RUN [RUN...]`: a keyboard-driven browser of samples.jsonl.

Three views of the same position (run, training groups or held-out samples, step,
prompt):

    list      the group's completions with score, reward, advantage, best and worst
              marked; sorted best or worst first (best for the run's own direction: the
              highest reward, or for held-out replies of a reverse run the lowest score),
              filtered by score
    full      one completion in full, with its judge verdict (text mode)
    compare   the same prompt in every run side by side (the nearest step that has
              it; in held-out mode the base model's step 0 first)

``Inspector`` is the state: ``handle(key)`` moves, ``render(width, height)`` lays out
the header, the view (``inspector_views``) and the keys; neither touches files nor the
terminal, so tests drive it directly.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass

from rich.console import Console, Group as Lines
from rich.layout import Layout
from rich.live import Live
from rich.text import Text

from ..errors import HmxError
from .inspector_views import CompareView, FullView, ListView
from .keys import KeyReader
from .state import Group, RunState, groups_by_step, open_run
from .views import merit, one_line

SORTS = ("best first", "worst first", "as sampled")  # best for the run's direction (views.merit)
LIST_KEYS = ["←/→ step", "n/p prompt", "↑/↓ select", "enter open", "s sort", "f filter", "e held-out/train",
             "c compare runs", "tab next run", "g/G first/last step", "q quit"]
FULL_KEYS = ["↑/↓ scroll", "←/→ previous/next completion", "enter/esc back", "q quit"]
COMPARE_KEYS = ["←/→ step", "n/p prompt", "↑/↓ scroll", "e held-out/train", "c/esc back", "q quit"]
FILTER = re.compile(r"^\s*(>=|<=|>|<|=)?\s*(-?\d+(?:\.\d*)?|-?\.\d+)\s*$")


def parse_filter(text: str) -> tuple[str, float] | None:
    """'>=5', '<3.5', '4' (means >= 4) -> (op, value); '' -> None; ValueError otherwise."""
    if not text.strip():
        return None
    m = FILTER.match(text)
    if not m:
        raise ValueError(text)
    return m.group(1) or ">=", float(m.group(2))


def keep(score, flt: tuple[str, float] | None) -> bool:
    if flt is None:
        return True
    if not isinstance(score, (int, float)) or math.isnan(score):
        return False
    op, v = flt
    return {">=": score >= v, "<=": score <= v, ">": score > v, "<": score < v, "=": score == v}[op]


def pack(items: list[str], width: int, sep: str = "  ") -> list[str]:
    """Key hints packed greedily into lines of ``width``."""
    lines, line = [], ""
    for item in items:
        if line and len(line) + len(sep) + len(item) > width:
            lines.append(line)
            line = item
        else:
            line = f"{line}{sep}{item}" if line else item
    return lines + ([line] if line else [])


@dataclass
class RunSamples:
    name: str
    state: RunState
    train: dict[int, list[Group]]
    held_out: dict[int, list[Group]]

    def by_step(self, held_out: bool) -> dict[int, list[Group]]:
        return self.held_out if held_out else self.train

    def nearest(self, held_out: bool, prompt: str, step: int) -> Group | None:
        """The group of ``prompt`` at ``step``, or at the nearest step that has it (earlier first)."""
        found = [(abs(s - step), s > step, s, i) for s, groups in self.by_step(held_out).items()
                 for i, g in enumerate(groups) if g.prompt == prompt]
        if not found:
            return None
        _, _, s, i = min(found)
        return self.by_step(held_out)[s][i]


def display_names(states: list[RunState]) -> list[str]:
    names = [s.root.name for s in states]
    return [f"{s.root.parent.name}/{n}" if names.count(n) > 1 else n for s, n in zip(states, names)]


class Inspector:
    def __init__(self, states: list[RunState]):
        self.runs: list[RunSamples] = []
        self.run = 0
        self.load(states)
        self.held_out = not self.runs[0].train
        steps = self.steps()
        self.step = steps[-1] if steps else 0
        self.prompt = 0
        self.row = 0
        self.sort = 0
        self.filter: tuple[str, float] | None = None
        self.view = "list"
        self.scroll = 0
        self.editing: str | None = None
        self.message = ""
        self.page = 10  # lines per page in the full view, and how far it scrolls: both recorded by render
        self.scroll_limit = 0

    def load(self, states: list[RunState]) -> None:
        """(Re)read the runs' samples, keeping the position."""
        self.runs = [RunSamples(name, s, groups_by_step(s.samples, False), groups_by_step(s.samples, True))
                     for name, s in zip(display_names(states), states)]
        if hasattr(self, "row"):
            self.row = min(self.row, max(len(self.visible()) - 1, 0))

    # ------------------------------------------------------------------ position
    @property
    def current(self) -> RunSamples:
        return self.runs[self.run]

    def steps(self) -> list[int]:
        return list(self.current.by_step(self.held_out))

    def groups(self) -> list[Group]:
        return self.current.by_step(self.held_out).get(self.step, [])

    def group(self) -> Group | None:
        groups = self.groups()
        return groups[min(self.prompt, len(groups) - 1)] if groups else None

    def visible(self) -> list[tuple[int, dict]]:
        """(index in the group, row) after the filter, in the chosen order."""
        g = self.group()
        rows = [(i, r) for i, r in enumerate(g.rows if g else []) if keep(r.get("score"), self.filter)]
        if SORTS[self.sort] != "as sampled":
            sign = -1 if SORTS[self.sort] == "best first" else 1
            direction = self.direction

            def key(item):
                m = merit(item[1], direction)
                return (m is None, sign * m if m is not None else 0.0, item[0])

            rows.sort(key=key)
        return rows

    @property
    def direction(self) -> str:
        return self.current.state.config.get("direction", "forward")

    def best_means(self) -> str:
        """What "best" is for the rows shown: the highest reward (training replies), the highest
        held-out score, or in a reverse run the lowest."""
        if not self.held_out:
            return "reward"
        return "score" if self.direction == "forward" else "low score"

    def _move_step(self, where: int | str) -> None:
        steps = self.steps()
        if not steps:
            return
        if where == "first":
            target = steps[0]
        elif where == "last":
            target = steps[-1]
        else:
            later = [s for s in steps if (s > self.step if where > 0 else s < self.step)]
            if not later:
                self.message = "no later step" if where > 0 else "no earlier step"
                return
            target = later[0] if where > 0 else later[-1]
        prompt = self.group().prompt if self.group() else None
        self.step = target
        self._follow_prompt(prompt)

    def _follow_prompt(self, prompt: str | None) -> None:
        """Stay on the same prompt when the new step has it, else keep the index."""
        groups = self.groups()
        same = [i for i, g in enumerate(groups) if g.prompt == prompt]
        self.prompt = same[0] if same else min(self.prompt, max(len(groups) - 1, 0))
        self.row = self.scroll = 0

    def _switch_mode(self) -> None:
        other = self.current.by_step(not self.held_out)
        if not other:
            self.message = f"{self.current.name} has no {'training' if self.held_out else 'held-out'} samples"
            return
        self.held_out = not self.held_out
        steps = list(other)
        self.step = min(steps, key=lambda s: (abs(s - self.step), s))
        self.prompt = self.row = self.scroll = 0

    def _switch_run(self, delta: int) -> None:
        if len(self.runs) < 2:
            self.message = "only one run: pass several to inspect (hmx-mlx inspect RUN RUN ...)"
            return
        prompt = self.group().prompt if self.group() else None
        self.run = (self.run + delta) % len(self.runs)
        if not self.current.by_step(self.held_out):
            self.held_out = not self.held_out
        steps = self.steps()
        if self.step not in steps and steps:
            self.step = min(steps, key=lambda s: (abs(s - self.step), s))
        self._follow_prompt(prompt)

    # ------------------------------------------------------------------ keys
    def handle(self, key: str) -> bool:
        """Apply one key; False means quit."""
        self.message = ""
        if self.editing is not None:
            return self._edit(key)
        if key in ("q", "Q"):
            return False
        if self.view == "full":
            self._handle_full(key)
        elif self.view == "compare":
            self._handle_compare(key)
        else:
            self._handle_list(key)
        self.row = min(self.row, max(len(self.visible()) - 1, 0))
        return True

    def _edit(self, key: str) -> bool:
        if key == "enter":
            try:
                self.filter = parse_filter(self.editing)
            except ValueError:
                self.message = f"filter not understood: {self.editing!r} (examples: >=5, <3.5, empty clears)"
            self.editing = None
            self.row = 0
        elif key == "esc":
            self.editing = None
        elif key == "backspace":
            self.editing = self.editing[:-1]
        elif len(key) == 1 and key.isprintable():
            self.editing += key
        return True

    def _handle_list(self, key: str) -> None:
        n = len(self.visible())
        if key in ("right", "l"):
            self._move_step(1)
        elif key in ("left", "h"):
            self._move_step(-1)
        elif key in ("g", "home"):
            self._move_step("first")
        elif key in ("G", "end"):
            self._move_step("last")
        elif key in ("n", "p", "pagedown", "pageup"):
            groups = self.groups()
            if groups:
                self.prompt = (self.prompt + (1 if key in ("n", "pagedown") else -1)) % len(groups)
                self.row = 0
        elif key in ("down", "j"):
            self.row = min(self.row + 1, max(n - 1, 0))
        elif key in ("up", "k"):
            self.row = max(self.row - 1, 0)
        elif key in ("enter", "o"):
            if n:
                self.view, self.scroll = "full", 0
        elif key == "s":
            self.sort, self.row = (self.sort + 1) % len(SORTS), 0
        elif key == "f":
            self.editing = ""
        elif key == "e":
            self._switch_mode()
        elif key == "c":
            self.view, self.scroll = "compare", 0
        elif key == "tab":
            self._switch_run(1)
        elif key == "backtab":
            self._switch_run(-1)

    def _handle_full(self, key: str) -> None:
        if key in ("enter", "esc", "o", "backspace"):
            self.view = "list"
        elif key in ("down", "j"):
            self.scroll = min(self.scroll + 1, self.scroll_limit)
        elif key in ("up", "k"):
            self.scroll = max(0, self.scroll - 1)
        elif key in ("pagedown", " "):
            self.scroll = min(self.scroll + self.page, self.scroll_limit)
        elif key == "pageup":
            self.scroll = max(0, self.scroll - self.page)
        elif key in ("right", "l", "left", "h"):
            n = len(self.visible())
            if n:
                self.row = (self.row + (1 if key in ("right", "l") else -1)) % n
                self.scroll = 0

    def _handle_compare(self, key: str) -> None:
        if key in ("c", "esc", "enter"):
            self.view = "list"
        elif key in ("down", "j"):
            self.scroll += 1
        elif key in ("up", "k"):
            self.scroll = max(0, self.scroll - 1)
        elif key in ("right", "l", "left", "h", "n", "p", "e", "g", "G", "home", "end"):
            self._handle_list(key)
            self.scroll = 0

    # ------------------------------------------------------------------ drawing
    def header(self) -> list[Text]:
        run = self.current
        c = run.state.config
        steps = self.steps()
        groups = self.groups()
        g = self.group()
        where = "held-out" if self.held_out else "training"
        runs = f" [{self.run + 1}/{len(self.runs)}]" if len(self.runs) > 1 else ""
        step_pos = f"{steps.index(self.step) + 1}/{len(steps)}" if self.step in steps else "-"
        first = Text.assemble((f"{run.name}", "bold"), f" ({c.get('direction', '?')}, seed {c.get('seed', '?')})"
                              f"{runs} │ {where} │ ", (f"step {self.step}", "bold"), f" ({step_pos}) │ "
                              f"prompt {self.prompt + 1 if g else 0}/{len(groups)}" + (f" {g.key}" if g and not
                                                                                         self.held_out else ""))
        second = Text(one_line(g.prompt) if g else "no samples at this step", style="italic")
        scores = [r.get("score") for r in (g.rows if g else []) if isinstance(r.get("score"), (int, float))
                  and math.isfinite(r["score"])]
        flt = f"score {self.filter[0]} {self.filter[1]:g}" if self.filter else "none"
        stats = (f" · mean {sum(scores) / len(scores):.2f} · spread {max(scores) - min(scores):.2f}"
                 if scores else "")
        order = SORTS[self.sort] + (f" ({self.best_means()})" if SORTS[self.sort] != "as sampled" else "")
        third = Text(f"sort {order} │ filter {flt} │ {len(self.visible())}/{len(g.rows) if g else 0} "
                     f"shown{stats}", style="dim")
        for line in (first, second, third):
            line.no_wrap, line.overflow = True, "ellipsis"
        return [first, second, third]

    def footer(self, width: int) -> list[Text]:
        keys = {"full": FULL_KEYS, "compare": COMPARE_KEYS}.get(self.view, LIST_KEYS)
        lines = [Text(line, style="dim") for line in pack(keys, width)]
        if self.editing is not None:
            lines.insert(0, Text.assemble(("filter: ", "bold"), self.editing, ("█", "blink"),
                                          ("  (e.g. >=5, <3.5; enter applies, empty clears, esc cancels)", "dim")))
        elif self.message:
            lines.insert(0, Text(self.message, style="yellow"))
        for line in lines:
            line.no_wrap, line.overflow = True, "ellipsis"
        return lines

    def body(self):
        if self.view == "full":
            return FullView(self)
        if self.view == "compare":
            return CompareView(self)
        return ListView(self)

    def render(self, width: int, height: int) -> Layout:
        footer = self.footer(width)
        layout = Layout(name="inspector")
        layout.split_column(Layout(Lines(*self.header()), name="header", size=3),
                            Layout(self.body(), name="body"),
                            Layout(Lines(*footer), name="footer", size=len(footer)))
        self.page = max(1, height - 3 - len(footer) - 4)
        return layout


def inspect_runs(paths: list[str], console: Console | None = None) -> None:
    """`hmx-mlx inspect`: interactive in a terminal; otherwise the first screen, printed once."""
    readers = [open_run(p) for p in paths]
    for r in readers:
        if not r.state.samples:
            raise HmxError(f"{r.state.root} has no samples yet (samples.jsonl is empty or missing). Wait until "
                           "its base evaluation or first step is written, then run `hmx-mlx inspect` again.")
    insp = Inspector([r.state for r in readers])
    console = console or Console()
    if not console.is_terminal or console.is_dumb_terminal or not sys.stdin.isatty():
        console.print(insp.render(*console.size))
        return
    try:
        with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False,
                                       redirect_stderr=False) as live:
            dirty, size = True, None
            while True:
                if any([r.poll() for r in readers]):  # a run still being written: new steps appear
                    insp.load([r.state for r in readers])
                    dirty = True
                if dirty or console.size != size:
                    size = console.size
                    live.update(insp.render(*size), refresh=True)
                    dirty = False
                key = keys.read(1.0)
                if key is not None:
                    if not insp.handle(key):
                        return
                    dirty = True
    except KeyboardInterrupt:
        pass
