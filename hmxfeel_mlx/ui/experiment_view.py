"""The overview of an experiment (`hmx-mlx replicate`, `hmx-mlx watch EXPERIMENT`).

One table of the grid, read from the experiment folder only (plan.json, progress.json,
each run's metrics.jsonl / summary.json / progress.json, the evaluation files):

    job · state · progress · time · held-out score (raw / calibrated) · KL per token / reply · note

with the running job's one-line progress beneath, and the whole experiment's elapsed
time and ETA in the header. No MLX is imported: it starts at once and can follow an
experiment another process (or machine, on a shared folder) is running.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..errors import HmxError
from .state import JsonlTail, seconds_text

STATE_STYLE = {"done": "green", "running": "bold yellow", "failed": "bold red", "pending": "dim"}


def _json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _num(v, fmt: str = ".2f") -> str:
    return "-" if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) else format(v, fmt)


@dataclass
class ExperimentState:
    root: Path
    meta: dict = field(default_factory=dict)
    jobs: list[dict] = field(default_factory=list)
    progress: dict | None = None
    run_metrics: dict[str, list[dict]] = field(default_factory=dict)  # run (relative) -> metrics rows
    run_progress: dict[str, dict] = field(default_factory=dict)
    eval_axes: dict[str, int] = field(default_factory=dict)  # eval out (relative) -> finished axes


class ExperimentReader:
    """Keeps an ``ExperimentState`` up to date (metrics files are read incrementally)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "plan.json").is_file():
            raise HmxError(f"{root} is not an experiment folder (no plan.json). Pass a folder written by "
                           "`hmx-mlx replicate`, or a run folder.")
        self.state = ExperimentState(self.root)
        self._tails: dict[str, JsonlTail] = {}
        self.poll()

    def poll(self) -> None:
        s = self.state
        s.meta = _json(self.root / "experiment.json") or s.meta
        plan = _json(self.root / "plan.json")
        if plan is not None:
            s.jobs = plan.get("jobs", [])
        s.progress = _json(self.root / "progress.json")
        for job in s.jobs:
            if job.get("kind") == "train" and job.get("run"):
                tail = self._tails.setdefault(job["run"], JsonlTail(self.root / job["run"] / "metrics.jsonl"))
                tail.poll()
                s.run_metrics[job["run"]] = tail.rows
                prog = _json(self.root / job["run"] / "progress.json")
                if prog is not None:
                    s.run_progress[job["run"]] = prog
            elif job.get("kind") == "eval" and job.get("out") and job.get("state") in ("running", "done"):
                rec = _json(self.root / job["out"])
                s.eval_axes[job["out"]] = len((rec or {}).get("results", {}))


def _latest_eval(rows: list[dict]) -> dict | None:
    return next((r for r in reversed(rows) if "eval_score" in r), None)


def _step_seconds(rows: list[dict]) -> list[float]:
    return [r["step_s"] for r in rows if r.get("step", 0) >= 1 and isinstance(r.get("step_s"), (int, float))]


def job_progress(state: ExperimentState, job: dict) -> tuple[float | None, str]:
    """(fraction done, text) of one job."""
    n_axes = len(state.meta.get("axes") or [])
    if job.get("state") == "done":
        return 1.0, "done"
    if job.get("kind") == "train":
        rows = state.run_metrics.get(job.get("run"), [])
        total = int((state.meta.get("settings") or {}).get("steps") or 0) or None
        last = rows[-1]["step"] if rows else None
        if total is None:  # the run's own config knows
            cfg = _json(state.root / str(job.get("run")) / "config.json") or {}
            total = cfg.get("steps")
        if last is None:
            return (0.0 if total else None), "not started" if job.get("state") == "pending" else "base evaluation"
        return (last / total if total else None), f"step {last}/{total or '?'}"
    if job.get("kind") == "eval":
        done = state.eval_axes.get(job.get("out"), 0)
        return (done / n_axes if n_axes else None), f"{done}/{n_axes or '?'} axes"
    return (0.0 if job.get("state") == "pending" else None), job.get("state", "")


def _bar(frac: float | None, width: int = 10) -> str:
    if frac is None:
        return " " * width
    full = int(round(max(0.0, min(1.0, frac)) * width))
    return "█" * full + "░" * (width - full)


def job_seconds(job: dict, now: float) -> float:
    extra = now - job["started"] if job.get("state") == "running" and job.get("started") else 0.0
    return float(job.get("seconds") or 0.0) + (extra if job.get("state") == "running" else 0.0)


def eta_seconds(state: ExperimentState, now: float) -> float | None:
    """Remaining time: the running training's steps left x its mean step time, plus every
    pending job at the mean duration of finished jobs of its kind (None when nothing of a
    kind has finished yet and no estimate exists)."""
    by_kind: dict[str, list[float]] = {}
    for j in state.jobs:
        if j.get("state") == "done" and j.get("seconds"):
            by_kind.setdefault(j["kind"], []).append(float(j["seconds"]))
    left, unknown = 0.0, False
    for j in state.jobs:
        if j.get("state") == "done":
            continue
        kind = j.get("kind")
        typical = sum(by_kind[kind]) / len(by_kind[kind]) if by_kind.get(kind) else None
        if kind == "train":
            rows = state.run_metrics.get(j.get("run"), [])
            steps = _step_seconds(rows)
            frac, _ = job_progress(state, j)
            if j.get("state") == "running" and steps and frac:
                total = (_json(state.root / str(j.get("run")) / "config.json") or {}).get("steps") or 0
                left += max(0, total - rows[-1]["step"]) * (sum(steps) / len(steps))
                if typical is None:
                    by_kind.setdefault("train", []).append(job_seconds(j, now) / max(frac, 1e-9))
                continue
        if typical is None:
            if kind in ("pair", "compare", "report"):
                continue  # seconds
            unknown = True
            continue
        done_part = job_seconds(j, now) if j.get("state") == "running" else 0.0
        left += max(0.0, typical - done_part)
    return None if unknown and left == 0 else left


def held_out(state: ExperimentState, job: dict) -> tuple[str, str]:
    e = _latest_eval(state.run_metrics.get(job.get("run"), [])) if job.get("kind") == "train" else None
    if e is None:
        return "", ""
    score = _num(e.get("eval_score"))
    if "eval_score_cal" in e:
        score += f" / {_num(e.get('eval_score_cal'), '.1f')}"
    kl = _num(e.get("eval_kl"), ".3f") if e.get("step") else "-"
    if e.get("step") and "eval_kl_reply" in e:
        kl += f" / {_num(e.get('eval_kl_reply'), '.1f')}"
    return score, kl


def current_line(state: ExperimentState, now: float) -> Text:
    """The running job's one-line progress (the experiment's progress.json and, during a
    training, the run's own progress.json: its stage within the step)."""
    p = state.progress or {}
    job = next((j for j in state.jobs if j.get("state") == "running"), None)
    if job is None:
        if state.jobs and all(j.get("state") == "done" for j in state.jobs):
            return Text("experiment complete", style="green")
        failed = next((j for j in state.jobs if j.get("state") == "failed"), None)
        if failed:
            return Text(f"{failed['id']} failed: {failed.get('error')}", style="red")
        return Text("not running (rerun the same `hmx-mlx replicate` command to continue)", style="dim")
    parts = [job["id"]]
    if p.get("job") == job["id"] and p.get("stage"):
        stage = str(p["stage"])
        if p.get("total"):
            stage += f" {p.get('done') or 0}/{p['total']} {p.get('unit') or ''}".rstrip()
        if p.get("detail"):
            stage += f" ({p['detail']})"
        parts.append(stage)
    rp = state.run_progress.get(job.get("run")) if job.get("kind") == "train" else None
    if rp and rp.get("stage"):
        inner = str(rp["stage"])
        if rp.get("total"):
            inner += f" {rp.get('done') or 0}/{rp['total']} {rp.get('unit') or ''}".rstrip()
        parts.append(inner)
    parts.append(seconds_text(job_seconds(job, now)))
    line = Text(" · ".join(parts))
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def render_overview(state: ExperimentState, now: float, width: int = 100) -> Group:
    m = state.meta
    n_done = sum(j.get("state") == "done" for j in state.jobs)
    elapsed = sum(job_seconds(j, now) for j in state.jobs)
    eta = eta_seconds(state, now)
    seeds = ", ".join(str(s) for s in m.get("seeds") or [])
    head = Text.assemble(("replicate ", "bold"), (str(m.get("model", "?")), "bold"),
                         f" · seeds {seeds} · {', '.join(m.get('directions') or [])} · "
                         f"{len(m.get('axes') or [])} axes · limit {m.get('limit') or 'all'}")
    eta_text = seconds_text(eta) if eta is not None and n_done < len(state.jobs) else "-"
    sub = Text(f"{n_done}/{len(state.jobs)} jobs done · elapsed {seconds_text(elapsed)} · ETA {eta_text} · "
               f"{state.root}", style="dim")
    for line in (head, sub):
        line.no_wrap, line.overflow = True, "ellipsis"
    compact = width < 110  # 80 columns: a shorter bar, short headers, no note column
    table = Table(expand=False, pad_edge=False, box=None, header_style="bold")
    cols = [("job", "left", max([16] + [len(j["id"]) for j in state.jobs])), ("state", "left", 7),
            ("progress", "left", 17 if compact else 23), ("time", "right", 7),
            ("held-out" if compact else "held-out raw / cal", "right", 10 if compact else 18),
            ("KL tok/reply" if compact else "KL tok / reply", "right", 12 if compact else 14)]
    if not compact:
        cols.append(("note", "left", None))
    for col, just, w in cols:
        table.add_column(col, justify=just, no_wrap=True, overflow="ellipsis", min_width=w)
    for j in state.jobs:
        frac, text = job_progress(state, j)
        score, kl = held_out(state, j)
        st = j.get("state", "?")
        cells = [j["id"], Text(st, style=STATE_STYLE.get(st, "")), f"{_bar(frac, 6 if compact else 10)} {text}",
                 seconds_text(job_seconds(j, now)) if job_seconds(j, now) else "",
                 score.replace(" / ", "/") if compact else score, kl.replace(" / ", "/") if compact else kl]
        if not compact:
            note = j.get("error") if st == "failed" else (j.get("note") or "")
            if j.get("checkpoint") and j.get("kind") == "eval":
                note = f"{j['checkpoint']}" + (f" · {note}" if note else "")
            cells.append(note)
        table.add_row(*cells)
    return Group(head, sub, table, current_line(state, now))


def follow_plain(reader: ExperimentReader, out=None, interval: float = 2.0, once: bool = False) -> None:
    """One line per job state change (and per training step) until the experiment ends."""
    out = out or sys.stdout
    seen: dict[str, str] = {}
    steps: dict[str, int] = {}
    while True:
        s = reader.state
        for j in s.jobs:
            if seen.get(j["id"]) != j.get("state"):
                seen[j["id"]] = j.get("state")
                extra = f" ({j['note']})" if j.get("note") else (f": {j['error']}" if j.get("error") else "")
                print(f"{j['id']}: {j.get('state')}{extra}", file=out, flush=True)
            rows = s.run_metrics.get(j.get("run"), []) if j.get("kind") == "train" else []
            if rows and rows[-1]["step"] != steps.get(j["id"]):
                steps[j["id"]] = rows[-1]["step"]
                e = _latest_eval(rows)
                score = f", held-out {_num(e.get('eval_score'))}" if e is not None else ""
                print(f"  {j['id']} step {rows[-1]['step']}{score}", file=out, flush=True)
        if once or all(j.get("state") in ("done", "failed") for j in s.jobs):
            return
        time.sleep(interval)
        reader.poll()


def watch_experiment(path: str | Path, once: bool = False, plain: bool = False, interval: float = 1.0,
                     console: Console | None = None) -> None:
    """`hmx-mlx watch EXPERIMENT`: the overview of an experiment (q or Ctrl-C quits)."""
    reader = ExperimentReader(path)
    console = console or Console()
    if plain or (not once and (not console.is_terminal or console.is_dumb_terminal)):
        try:
            follow_plain(reader, interval=interval, once=once)
        except KeyboardInterrupt:
            pass
        return
    if once:
        console.print(render_overview(reader.state, time.time(), console.width))
        return
    from .keys import KeyReader

    try:
        with KeyReader() as keys, Live(console=console, auto_refresh=False, redirect_stdout=False,
                                       redirect_stderr=False) as live:
            while True:
                reader.poll()
                live.update(render_overview(reader.state, time.time(), console.width), refresh=True)
                if keys.read(interval) in ("q", "Q"):
                    return
    except KeyboardInterrupt:
        pass
