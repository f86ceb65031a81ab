"""What the terminal UI knows about a run: read from its folder, incrementally.

``RunReader.poll()`` reads only what was appended since the last call, keeps a
final line that is still being written for the next call, and starts over when
a file was rewritten (``--resume`` drops the lines after the checkpoint). The
functions below derive what the screens show (groups of samples, the selection
threshold, elapsed time and ETA) from a ``RunState`` without touching files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HmxError
from ..runfolder import RunPaths
from ..training import selection as selection_rule
from ..training.progress import PROGRESS_FILE, read_progress

FINAL_STATUSES = ("finished", "stopped", "interrupted")
CALIBRATION_FILE = "judge_calibration.json"  # calibration.CALIBRATION_FILE, named here so the UI stays light


class JsonlTail:
    """The complete lines of a JSONL file that another process may be appending to."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._reset(None)

    def _reset(self, inode: int | None) -> None:
        self.rows: list[dict] = []
        self.damaged = 0  # complete lines that are not JSON (skipped)
        self.mtime_ns = 0
        self._offset = 0
        self._inode = inode

    def poll(self) -> bool:
        """Read what was appended; True when ``rows`` changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            changed = bool(self.rows)
            self._reset(None)
            return changed
        changed = False
        if st.st_ino != self._inode or st.st_size < self._offset:  # replaced or truncated: read again
            changed = bool(self.rows)
            self._reset(st.st_ino)
        self.mtime_ns = st.st_mtime_ns
        if st.st_size == self._offset:
            return changed
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read(st.st_size - self._offset)
        end = data.rfind(b"\n")
        if end < 0:
            return changed  # only a line still being written
        self._offset += end + 1
        for line in data[: end + 1].split(b"\n"):
            if not line.strip():
                continue
            try:
                self.rows.append(json.loads(line))
            except json.JSONDecodeError:
                self.damaged += 1
        return True


@dataclass
class Group:
    """The completions of one prompt at one step (a GRPO group, or a held-out question)."""

    step: int
    key: str  # prompt_id for training groups, the question for held-out samples
    prompt: str
    rows: list[dict]


@dataclass
class RunState:
    root: Path
    config: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)  # one row per step, ascending
    samples: list[dict] = field(default_factory=list)
    summary: dict | None = None
    status: str = "starting"  # starting, running, finished, stopped, interrupted
    last_write: float | None = None  # unix time of the last metrics line
    damaged_lines: int = 0
    progress: dict | None = None  # progress.json: the stage the trainer is in and how far it is
    calibration: dict | None = None  # judge_calibration.json: the map from raw judge scores to the rubric's scale

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def total_steps(self) -> int:
        return int(self.config.get("steps") or 0)

    @property
    def last_step(self) -> int | None:
        return self.metrics[-1]["step"] if self.metrics else None

    @property
    def train_metrics(self) -> list[dict]:
        return [m for m in self.metrics if m.get("step", 0) >= 1]

    @property
    def evals(self) -> list[dict]:
        return [m for m in self.metrics if "eval_score" in m]

    @property
    def judge_text_mode(self) -> bool:
        return self.config.get("judge_mode") == "text"


class RunReader:
    """Keeps a ``RunState`` up to date with the run folder."""

    def __init__(self, root: str | Path, config: dict | None = None):
        self.paths = RunPaths(Path(root))
        self.state = RunState(self.paths.root, config=dict(config or {}))
        self._metrics = JsonlTail(self.paths.metrics)
        self._samples = JsonlTail(self.paths.samples)
        self._stamps: dict[str, int] = {}

    def _changed(self, path: Path) -> bool:
        try:
            stamp = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            stamp = 0
        if self._stamps.get(path.name) == stamp:
            return False
        self._stamps[path.name] = stamp
        return True

    def _read_json(self, path: Path) -> dict | None:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None  # written atomically, so this is "not there yet"
        return value if isinstance(value, dict) else None

    def poll(self) -> bool:
        """Read what changed in the folder; True when the state changed."""
        s = self.state
        changed = False
        if self._changed(self.paths.config):
            config = self._read_json(self.paths.config)
            if config is not None:
                s.config, changed = config, True
        if self._metrics.poll():
            by_step = {}
            for row in self._metrics.rows:
                if isinstance(row.get("step"), int):
                    by_step[row["step"]] = row
            s.metrics = [by_step[k] for k in sorted(by_step)]
            changed = True
        if self._samples.poll():
            s.samples = self._samples.rows
            changed = True
        summary_changed = self._changed(self.paths.summary)
        if summary_changed:
            s.summary = self._read_json(self.paths.summary)
        calibration_path = self.paths.root / CALIBRATION_FILE
        if self._changed(calibration_path):
            s.calibration = self._read_json(calibration_path)
            changed = True
        progress_path = self.paths.root / PROGRESS_FILE
        if self._changed(progress_path):
            s.progress = read_progress(progress_path)
            changed = True
        s.last_write = self._metrics.mtime_ns / 1e9 if self._metrics.rows else None
        s.damaged_lines = self._metrics.damaged + self._samples.damaged
        status = run_status(s, self._stamps.get(self.paths.summary.name, 0), self._metrics.mtime_ns)
        changed = changed or summary_changed or status != s.status
        s.status = status
        return changed


def run_status(state: RunState, summary_mtime_ns: int, metrics_mtime_ns: int) -> str:
    """A summary written after the last metrics line is final; otherwise the run is going on."""
    if state.summary and summary_mtime_ns >= metrics_mtime_ns:
        return str(state.summary.get("status", "finished"))
    return "running" if state.metrics else "starting"


def open_run(path: str | Path) -> RunReader:
    """A reader on an existing run folder (HmxError naming the fix otherwise)."""
    root = Path(path)
    if not root.exists():
        raise HmxError(f"run folder not found: {root}. Pass the folder `hmx-mlx train` writes "
                       "(its --run-dir, or one under runs/).")
    if not (root / "config.json").is_file():
        raise HmxError(f"{root} is not a run folder (no config.json). Pass the folder `hmx-mlx train` writes "
                       "(its --run-dir, or one under runs/).")
    reader = RunReader(root)
    reader.poll()
    return reader


# --------------------------------------------------------------------------- derived values


def score_key(state: RunState) -> str:
    """The held-out score the selection reads: ``eval_score_cal`` when the run has it."""
    return selection_rule.score_key(state.evals)


def threshold(config: dict) -> tuple[float, str]:
    """The selection threshold on the held-out score and its direction, from a run's config."""
    return selection_rule.threshold(config.get("direction", "forward"), config.get("select_threshold", 7.5))


def crosses(config: dict, score) -> bool:
    return selection_rule.crosses(config.get("direction", "forward"), config.get("select_threshold", 7.5), score)


def selection(state: RunState) -> dict:
    """The selected checkpoint: summary.json's once the run wrote it, otherwise the rule so far."""
    if state.status in FINAL_STATUSES and state.summary and state.summary.get("selected_step") is not None:
        return {"step": state.summary["selected_step"], "reason": state.summary.get("reason", "")}
    chosen = selection_rule.select([e for e in state.evals if e["step"] > 0], state.config.get("direction", "forward"),
                                   state.config.get("select_threshold", 7.5))
    reason = chosen["reason"].replace("threshold not reached; best held-out score selected",
                                      "best so far; threshold not reached")
    return {"step": chosen["selected_step"], "reason": reason}


def forward_scores(config: dict) -> bool:
    """Whether the training samples' ``score`` is the forward rubric's (the held-out measure): in
    forward runs, and in reverse runs whose reward uses the forward judge (complement, mixed); a
    reverse run rewarded by the reversed rubric has only that rubric's scores."""
    return config.get("direction", "forward") == "forward" or config.get("reverse_reward", "rubric") != "rubric"


def reward_name(config: dict) -> str:
    """What the training reward is, in a few words: the score, 10 - score, the reversed rubric's
    score, or the mean of 10 - score and the reversed rubric's."""
    if config.get("direction", "forward") == "forward":
        return "score"
    return {"complement": "10 - score", "mixed": "(10 - score + reversed rubric) / 2"}.get(
        config.get("reverse_reward", "rubric"), "reversed rubric")


def calibration_map(state: RunState):
    """raw -> the rubric's 0-10 scale, from the run's judge calibration (None without one)."""
    scale = (state.calibration or {}).get("scale")
    if not isinstance(scale, dict) or not all(_finite(scale.get(k)) for k in ("slope", "intercept")):
        return None
    slope, intercept = float(scale["slope"]), float(scale["intercept"])

    def calibrated(raw: float) -> float:
        z = slope * raw + intercept
        return 10.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    return calibrated


def train_scores(state: RunState) -> tuple[list[tuple[int, float]], str] | None:
    """The training replies' forward-rubric score per step, on the held-out score's scale, and
    that scale ("calibrated" or "raw"); None when the run has no forward-rubric training scores.

    Calibrated: each reply's score mapped by the run's judge calibration, then averaged per
    step, as the held-out evaluation does; raw: the step's ``score_mean``."""
    if not forward_scores(state.config):
        return None
    calibrate = calibration_map(state) if score_key(state) == selection_rule.CALIBRATED else None
    if calibrate is None:
        return [(m["step"], m.get("score_mean", m.get("reward_mean"))) for m in state.train_metrics], "raw"
    by_step: dict[int, list[float]] = {}
    for row in state.samples:
        if not row.get("eval") and _finite(row.get("score")) and isinstance(row.get("step"), int):
            by_step.setdefault(row["step"], []).append(calibrate(row["score"]))
    points = [(step, sum(v) / len(v)) for step, v in sorted(by_step.items()) if step >= 1]
    return points, "calibrated"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def prompt_text(row: dict) -> str:
    return str(row.get("prompt") or row.get("question") or "")


def groups_by_step(samples: list[dict], held_out: bool) -> dict[int, list[Group]]:
    """Training groups (``held_out`` False) or held-out questions, per step, in file order."""
    out: dict[int, dict[str, Group]] = {}
    for row in samples:
        if bool(row.get("eval")) != held_out:
            continue
        step = int(row.get("step", 0))
        key = str(row.get("question") if held_out else row.get("prompt_id") or prompt_text(row))
        by_key = out.setdefault(step, {})
        if key not in by_key:
            by_key[key] = Group(step, key, prompt_text(row), [])
        by_key[key].rows.append(row)
    return {step: list(out[step].values()) for step in sorted(out)}


def latest_groups(state: RunState) -> list[Group]:
    """The training groups of the newest step that has any."""
    by_step = groups_by_step(state.samples[-4096:], held_out=False)  # the newest step is at the end
    return by_step[max(by_step)] if by_step else []


def elapsed_seconds(state: RunState, now: float) -> float:
    """Training time: the base evaluation and every step, plus the time since the last
    line while the run is going on."""
    total = sum(m.get("step_s", 0.0) for m in state.train_metrics)
    total += sum(m.get("eval_seconds", 0.0) for m in state.metrics if m.get("step") == 0)
    if state.status == "running" and state.last_write is not None:
        total += max(0.0, now - state.last_write)
    return total


def eta_seconds(state: RunState, now: float) -> float | None:
    """Mean step time (evaluation steps included) times the steps left."""
    steps = [m["step_s"] for m in state.train_metrics if _finite(m.get("step_s"))]
    if state.status != "running" or not steps or not state.total_steps:
        return None
    left = state.total_steps - state.last_step
    since = max(0.0, now - state.last_write) if state.last_write is not None else 0.0
    return max(0.0, sum(steps) / len(steps) * left - since)


def seconds_text(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"
