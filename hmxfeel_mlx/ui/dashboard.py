"""The live training dashboard: `hmx-mlx train` in a terminal, and `hmx-mlx watch RUN`.

One full-screen Rich layout, built once and updated in place (Rich's
``examples/fullscreen.py`` pattern):

    header   model, direction, seed, step / total, elapsed, ETA, device, peak memory
    progress the stage the trainer is in (progress.json) and how far, while it runs
    rewards  the training replies' score and the held-out score over steps, on the scale of
             the selection threshold, and the selected checkpoint; the reward (which in
             reverse runs is not the score) is named beneath
    health   KL train (k3), entropy, clip ratio, zero-spread groups, judge parse failures,
             length, truncation, seconds and tokens/s per phase, with a trend of each
    held-out how the held-out score moved, the selected checkpoint, the KL to the base on the
             held-out replies: one to three full-width lines, as the width needs
    samples  the newest group of one prompt under column titles: every completion with score,
             reward, advantage, best and worst for the run's direction marked, the judge's
             verdict in text mode
    footer   keys, or how to stop and resume

Everything is read from the run folder (``state.RunReader``), so the same screen
follows a run written by another process. Rendering does no model work.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from ..training.progress import format_progress, format_step, format_summary
from .keys import KeyReader
from .state import (
    FINAL_STATUSES,
    RunReader,
    RunState,
    elapsed_seconds,
    eta_seconds,
    latest_groups,
    open_run,
    seconds_text,
)
from .views import GroupView, HealthView, RewardView, chart_title, heldout_lines, num, one_line, reward_text

WATCH_KEYS = "q quit · n/p next/previous prompt of the step"
LOG_SHOWN_S = 60.0  # how long a line printed during training stays in the footer
MIN_FRAME_ROWS = 16


def status_text(state: RunState, now: float) -> str:
    status = state.status
    if status == "running" and state.last_write is not None:
        steps = [m.get("step_s", 0.0) for m in state.train_metrics]
        quiet = now - state.last_write
        if quiet > max(600.0, 3 * (sum(steps) / len(steps) if steps else 0.0)):
            return f"no new step for {seconds_text(quiet)}"
    if status == "stopped" and state.summary and state.summary.get("stopped"):
        return f"stopped: {state.summary['stopped']}"
    return status


def recorded_device(state: RunState) -> str | None:
    """The device the trainer wrote into the step-0 (base evaluation) line of metrics.jsonl."""
    return next((e["device"] for e in state.evals if e.get("step") == 0 and e.get("device")), None)


def render_header(state: RunState, now: float, device: str | None = None, elapsed: float | None = None,
                  status: str | None = None) -> Group:
    c = state.config
    step = state.last_step
    peak = max((m.get("peak_memory_gb", 0.0) for m in state.train_metrics), default=None)
    eta = eta_seconds(state, now)
    first = Text.assemble(
        (f"{c.get('model', '?')}", "bold"), f" · {c.get('direction', '?')} · seed {c.get('seed', '?')} │ ",
        (f"step {'-' if step is None else step}/{state.total_steps or '?'}", "bold"),
        f" │ {status or status_text(state, now)}")
    second = Text(
        f"elapsed {seconds_text(elapsed_seconds(state, now) if elapsed is None else elapsed)} · "
        f"ETA {seconds_text(eta) if eta is not None else '-'} │ device {device or c.get('device') or recorded_device(state) or 'not recorded'} │ "
        f"peak memory {num(peak)} GB", style="dim")
    for line in (first, second):
        line.no_wrap, line.overflow = True, "ellipsis"
    return Group(first, second)


PROGRESS_STALE_S = 30.0  # a progress file older than this says how old it is


def progress_line(state: RunState, now: float) -> Text | None:
    """The current stage's progress beneath the header, while the run is going on."""
    p = state.progress
    if not p or state.status in FINAL_STATUSES or p.get("stage") in FINAL_STATUSES:
        return None
    text = format_progress(p, now)
    updated = p.get("updated")
    if isinstance(updated, (int, float)) and now - updated > PROGRESS_STALE_S:
        text += f" (written {seconds_text(now - updated)} ago)"
    line = Text(text, style="yellow", no_wrap=True, overflow="ellipsis")
    return line


def samples_panel(state: RunState, prompt: int = 0, width: int = 80) -> Panel:
    groups = latest_groups(state)
    if not groups:
        return Panel(Text("no training group yet (step 0 is the base model's evaluation)", style="dim"),
                     title="samples", title_align="left")
    g = groups[prompt % len(groups)]
    title = f"samples · step {g.step} · {g.key} ({prompt % len(groups) + 1} of {len(groups)}): {one_line(g.prompt)}"
    if len(title) > width - 6:
        title = title[: width - 7] + "…"
    rewards = [r.get("reward") for r in g.rows if isinstance(r.get("reward"), (int, float))]
    spread = (max(rewards) - min(rewards)) if rewards else float("nan")
    subtitle = f"reward mean {num(sum(rewards) / len(rewards) if rewards else None)} · spread {num(spread)}"
    return Panel(GroupView(g.rows, state.judge_text_mode, state.config.get("direction", "forward")), title=title,
                 title_align="left", subtitle=subtitle, subtitle_align="right")


def top_rows(height: int, fixed: int = 3) -> int:
    """Rows of the reward/health band: about half of what the header, progress line, held-out lines
    and footer leave."""
    return max(8, round(0.52 * (height - fixed)))


HELDOUT_LINES = 3  # at most; the least important parts are left out beyond


def reward_panel(state: RunState) -> Panel:
    return Panel(RewardView(state), title=chart_title(state), title_align="left", subtitle=reward_text(state),
                 subtitle_align="right")


class Dashboard:
    """The layout, built once; ``update`` replaces each region's renderable."""

    def __init__(self):
        self.layout = Layout(name="dashboard")
        self.layout.split_column(Layout(name="header", size=2), Layout(name="progress", size=1),
                                 Layout(name="top", size=11), Layout(name="heldout", size=2), Layout(name="samples"),
                                 Layout(name="footer", size=1))
        self.layout["top"].split_row(Layout(name="rewards", ratio=11), Layout(name="health", ratio=9))

    def update(self, state: RunState, now: float, size: tuple[int, int], *, device: str | None = None,
               elapsed: float | None = None, status: str | None = None, footer: str = "",
               prompt: int = 0) -> Layout:
        width, height = size
        progress = progress_line(state, now)
        self.layout["progress"].visible = progress is not None
        if progress is not None:
            self.layout["progress"].update(progress)
        heldout = heldout_lines(state, width, HELDOUT_LINES)
        self.layout["heldout"].size = len(heldout)
        self.layout["heldout"].update(Group(*heldout))
        self.layout["top"].size = top_rows(height, (4 if progress is not None else 3) + len(heldout))
        self.layout["header"].update(render_header(state, now, device, elapsed, status))
        self.layout["rewards"].update(reward_panel(state))
        self.layout["rewards"].ratio, self.layout["health"].ratio = (11, 9) if width < 120 else (3, 2)
        step = state.train_metrics[-1]["step"] if state.train_metrics else "-"
        self.layout["health"].update(Panel(HealthView(state), title=f"health · step {step}", title_align="left"))
        self.layout["samples"].update(samples_panel(state, prompt, width))
        line = Text(footer, style="dim", no_wrap=True, overflow="ellipsis")
        self.layout["footer"].update(line)
        return self.layout


def render_dashboard(state: RunState, now: float, size: tuple[int, int], **kwargs) -> Layout:
    """The whole screen for one state (a fresh layout; the live views keep theirs)."""
    return Dashboard().update(state, now, size, **kwargs)


class CapturedLines(io.TextIOBase):
    """Stands in for stdout/stderr while the full-screen dashboard owns the terminal:
    keeps the lines (shown in the footer, printed again when the screen closes)."""

    def __init__(self, keep: int = 200):
        self.lines: list[str] = []
        self.keep = keep
        self.written_at = 0.0
        self._partial = ""

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"

    def write(self, text: str) -> int:
        self.written_at = time.time()
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop().rsplit("\r", 1)[-1]  # a progress bar redraws its line with \r
        self.lines = (self.lines + [p.rsplit("\r", 1)[-1] for p in parts if p.strip()])[-self.keep:]
        return len(text)

    @property
    def last(self) -> str:
        return self._partial.strip() or (self.lines[-1] if self.lines else "")


class TrainDashboard:
    """The ``on_step`` callback of ``trainer.train`` as a full-screen live dashboard.

    Use as a context manager around the training call: the screen refreshes once a
    second from the run folder; on exit (finished, or Ctrl-C turned into the trainer's
    ``TrainingStopped``) the screen is closed first, the last frame and any captured
    output are printed, and the exception goes on to the command, whose message is
    then the last thing on the terminal."""

    def __init__(self, config: dict, run_dir: str | Path, device: str | None = None,
                 console: Console | None = None, refresh_per_second: float = 1.0):
        self.reader = RunReader(run_dir, config=config)
        self.console = console or Console(file=sys.stdout)
        self.device = device
        self.view = Dashboard()
        self.log = CapturedLines()
        self.start = time.time()
        self.finished: float | None = None
        self._streams = None
        self._failed = False
        self.live = Live(console=self.console, screen=True, auto_refresh=True, refresh_per_second=refresh_per_second,
                         redirect_stdout=False, redirect_stderr=False, get_renderable=self.frame)

    def frame(self, size: tuple[int, int] | None = None):
        """The screen now. A failure to draw never stops training: it is shown instead of the
        screen and its traceback is printed when the screen closes."""
        try:
            return self._frame(size)
        except Exception:
            import traceback

            if not self._failed:
                self._failed = True
                self.log.write(traceback.format_exc())
            return Text(f"the dashboard failed to draw (training goes on): {self.log.last}", style="red")

    def _frame(self, size: tuple[int, int] | None) -> Layout:
        self.reader.poll()
        state = self.reader.state
        now = time.time()
        status = state.status if state.status in FINAL_STATUSES else (
            "training" if state.metrics else "starting" if state.progress else
            "loading the model, then the base evaluation")
        footer = f"Ctrl-C stops at a consistent point; resume with: hmx-mlx train --resume {state.root}"
        if self.finished is not None:  # the last frame, left on the terminal: captured lines follow it
            footer = f"run folder: {state.root}"
        elif self.log.last and now - self.log.written_at < LOG_SHOWN_S:  # a fresh message comes first
            footer = f"{self.log.last} │ {footer}"
        return self.view.update(state, now, size or self.console.size, device=self.device,
                                elapsed=(self.finished or now) - self.start, status=status, footer=footer)

    def __enter__(self) -> "TrainDashboard":
        self._streams = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = self.log
        self.live.start(refresh=True)
        return self

    def __call__(self, metrics: dict, samples: list[dict]) -> None:
        self.live.refresh()

    def __exit__(self, *exc) -> None:
        self.finished = time.time()
        try:
            self.live.stop()
        finally:
            sys.stdout, sys.stderr = self._streams
        width, height = self.console.size
        last = max(MIN_FRAME_ROWS, height - 4)  # leaves the command's last lines on the screen below it
        self.console.print(self.frame((width, last)), height=last)
        for line in self.log.lines + ([self.log.last] if self.log._partial.strip() else []):
            print(line, file=sys.stderr)

    def close(self) -> None:
        print(f"done in {((self.finished or time.time()) - self.start) / 60:.1f} min", flush=True)


# --------------------------------------------------------------------------- hmx-mlx watch


def follow_plain(reader: RunReader, out=None, interval: float = 1.0, once: bool = False) -> None:
    """One line per step, as `hmx-mlx train --plain` prints them, until the run ends."""
    out = out or sys.stdout
    state = reader.state
    c = state.config
    print(f"watching {state.root}: {c.get('model')} ({c.get('direction')}, seed {c.get('seed')}) "
          f"for {state.total_steps} steps", file=out, flush=True)
    printed = -1
    while True:
        for m in state.metrics:
            if m["step"] > printed:
                print(format_step(m, state.total_steps), file=out, flush=True)
                printed = m["step"]
        if state.status in FINAL_STATUSES:
            print(format_summary(state.summary or {}), file=out, flush=True)
            return
        if once:
            return
        time.sleep(interval)
        reader.poll()


def watch_run(path: str | Path, once: bool = False, plain: bool = False, interval: float = 1.0,
              console: Console | None = None) -> None:
    """`hmx-mlx watch RUN`: the dashboard of a run another process writes (or a finished one)."""
    reader = open_run(path)
    console = console or Console()
    if plain or (not once and (not console.is_terminal or console.is_dumb_terminal)):
        try:
            follow_plain(reader, interval=interval, once=once)
        except KeyboardInterrupt:
            pass
        return
    view = Dashboard()

    def frame(prompt: int = 0) -> Layout:
        state = reader.state
        more = f" · {state.damaged_lines} damaged line(s) skipped" if state.damaged_lines else ""
        return view.update(state, time.time(), console.size, footer=f"{WATCH_KEYS} · {state.root}{more}",
                           prompt=prompt)

    if once:
        console.print(frame())
        return
    prompt = 0
    try:
        with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False, redirect_stdout=False,
                                       redirect_stderr=False) as live:
            while True:
                reader.poll()
                live.update(frame(prompt), refresh=True)
                key = keys.read(interval)
                if key in ("q", "Q"):
                    return
                if key in ("n", "right", "tab"):
                    prompt += 1
                elif key in ("p", "left"):
                    prompt -= 1
    except KeyboardInterrupt:
        pass
