"""Training progress: one compact line per step (and per evaluation), and the live
progress of the current stage.

What `hmx-mlx train` prints when its output is not a terminal or with ``--plain``
(the live dashboard is ``ui.dashboard``), and `hmx-mlx watch --plain`.
``format_step``, ``format_summary`` and ``format_progress`` are pure (data in, text out).

``ProgressFile`` is the trainer's ``progress.json`` in the run folder: the stage it is in
("loading the model", "calibration", "base evaluation", "rollout", "judge", "update",
"held-out evaluation", "checkpoint"), the part of it (sampling, judging, KL), the step,
work done of the total in a unit (tokens of the sampling budget, replies, rows), when the
stage started and when the file was written. It is written atomically: at once when a stage
or a part begins (a handful of times per step, so the screen never shows a part that has
ended), and otherwise at most once per ``min_interval`` seconds however often the hot loops
report, so a report costs a counter update and a clock read.

This module does not import MLX: `watch` uses it.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .config import TrainConfig


def _f(value, fmt: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def format_step(m: dict, total: int) -> str:
    if m.get("step") == 0:
        return (f"step 0/{total}  base held-out score {_f(m.get('eval_score'))} ± {_f(m.get('eval_score_se'))}"
                f"{_calibrated(m)} (n={m.get('eval_n')}, {_f(m.get('eval_seconds'), '.0f')}s)")
    line = (
        f"step {m['step']}/{total}  reward {_f(m['reward_mean'])} ± {_f(m['reward_std'])}  "
        f"loss {_f(m['loss'], '.4f')}  zero-std {_f(m['frac_reward_zero_std'])}  len {_f(m['completion_len'], '.0f')}  "
        f"trunc {_f(m['truncated_ratio'])}  rep {_f(m.get('degenerate_ratio'))}  nan {m['judge_nan']}  "
        f"[{_f(m['rollout_s'], '.0f')}s roll {_f(m['rollout_tok_s'], '.0f')} tok/s | "
        f"{_f(m['judge_s'], '.0f')}s judge | {_f(m['update_s'], '.0f')}s update]"
    )
    if "judge_score_mass" in m:
        line += f"  mass {_f(m['judge_score_mass'], '.3f')}"
    if "sampler_logp_diff" in m:
        line += f"  logp diff {_f(m['sampler_logp_diff'], '.1e')}"
    if "eval_score" in m:
        line += (f"\n  eval: held-out score {_f(m['eval_score'])} ± {_f(m['eval_score_se'])}{_calibrated(m)}  "
                 f"reward {_f(m['eval_reward'])}  KL {_f(m['eval_kl'], '.4f')}{_per_reply(m)}  "
                 f"degenerate {_f(m.get('eval_degenerate_ratio'))}  checkpoint step_{m['step']}")
    return line


def _calibrated(m: dict) -> str:
    if "eval_score_cal" not in m:
        return ""
    return f" (calibrated {_f(m['eval_score_cal'])} ± {_f(m.get('eval_score_cal_se'))})"


def _per_reply(m: dict) -> str:
    return f"/token {_f(m['eval_kl_reply'])}/reply" if "eval_kl_reply" in m else ""


def format_summary(summary: dict) -> str:
    """The end of a run in one line: status, how the held-out score moved, the selected checkpoint."""
    base, final = summary.get("base_eval_score"), summary.get("final_eval_score")
    moved = f"held-out score {_f(base)} -> {_f(final)}" if base is not None and final is not None else "no evaluation"
    base_cal, final_cal = summary.get("base_eval_score_cal"), summary.get("final_eval_score_cal")
    if base_cal is not None and final_cal is not None:
        moved += f" (calibrated {_f(base_cal)} -> {_f(final_cal)})"
    sel = summary.get("selected_step")
    reason = f" ({summary['reason']})" if summary.get("reason") else ""
    line = (f"{summary.get('status', 'no summary')}: {moved}; selected checkpoint: "
            f"{'step_' + str(sel) if sel is not None else 'none'}{reason}")
    line += f"; {summary['stopped']}" if summary.get("stopped") else ""
    return line + (f"\nwarning: {summary['rule_warning']}" if summary.get("rule_warning") else "")


class StepPrinter:
    """The ``on_step`` callback of ``trainer.train`` printing plain lines (a context manager,
    like the live dashboard, so the train command treats both alike)."""

    def __init__(self, config: TrainConfig, out=None):
        self.total = config.steps
        self.out = out or sys.stdout
        self.start = time.perf_counter()
        self._emit(f"training {config.model} ({config.direction}, seed {config.seed}) for {config.steps} steps")

    def _emit(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def __enter__(self) -> "StepPrinter":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, metrics: dict, samples: list[dict]) -> None:
        self._emit(format_step(metrics, self.total))

    def close(self) -> None:
        self._emit(f"done in {(time.perf_counter() - self.start) / 60:.1f} min")


# --------------------------------------------------------------------------- progress.json

PROGRESS_FILE = "progress.json"


class ProgressFile:
    """The current stage's progress, written to ``path`` (nothing is written when it is None).

    ``stage`` starts a stage and ``part`` a part of it with its total work and unit (both are
    written at once); ``advance`` (also the object's call, so it can be handed to generation
    and the judge as their ``progress`` callback) adds work done and writes at most once per
    ``min_interval`` seconds; ``flush`` writes now."""

    def __init__(self, path: Path | None, min_interval: float = 1.0, clock: Callable[[], float] = time.time):
        self.path = Path(path) if path is not None else None
        self.min_interval = min_interval
        self.clock = clock
        self.state: dict = {"stage": "", "part": None, "step": None, "done": 0, "total": 0, "unit": "",
                            "started": None, "updated": None}
        self.writes = 0
        self._last: float | None = None

    def stage(self, name: str, step: int | None = None, total: int = 0, unit: str = "",
              part: str | None = None) -> None:
        self.state.update(stage=name, step=step, part=part, done=0, total=int(total), unit=unit,
                          started=self.clock())
        self.flush()

    def part(self, name: str | None, total: int = 0, unit: str = "") -> None:
        self.state.update(part=name, done=0, total=int(total), unit=unit)
        self.flush()

    def advance(self, n: int = 1) -> None:
        self.state["done"] += int(n)
        self._maybe_write()

    __call__ = advance

    def _enabled(self) -> bool:
        return self.path is not None

    def _maybe_write(self) -> None:
        if not self._enabled():
            return
        now = self.clock()
        if self._last is None or now - self._last >= self.min_interval:
            self._write(now)

    def flush(self) -> None:
        if self._enabled():
            self._write(self.clock())

    def _write(self, now: float) -> None:
        from ..runfolder import write_json_atomic

        self._last = now
        try:
            write_json_atomic(self.path, {**self.state, "updated": now})
            self.writes += 1
        except OSError:
            pass  # a display aid: a full disk stops the checkpoint, which says so, not the progress line


class ProgressLine(ProgressFile):
    """The same reports as one line on a stream (stderr), for a command that works for minutes
    without a run folder (`hmx-mlx heldout`): on a terminal the line is rewritten in place at most
    every ``min_interval`` seconds (0.5) and cleared by ``close``; elsewhere a line is printed when
    a stage or part begins and at most every ``min_interval`` seconds (30) in between."""

    def __init__(self, stream=None, min_interval: float | None = None, clock: Callable[[], float] = time.time):
        stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        super().__init__(None, min_interval if min_interval is not None else 0.5 if self.tty else 30.0, clock)
        self.stream = stream
        self._shown = False

    def _enabled(self) -> bool:
        return True

    def _write(self, now: float) -> None:
        import shutil

        self._last = now
        text = format_progress(self.state, now)
        if self.tty:
            self.stream.write("\r" + text[: shutil.get_terminal_size().columns - 1] + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.writes += 1
        self._shown = True

    def close(self) -> None:
        """Clear the line on a terminal, so the result is printed on a clean one."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def read_progress(path: Path) -> dict | None:
    """progress.json, or None when it is missing or not (yet) readable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "stage" in data else None


def format_progress(p: dict, now: float) -> str:
    """One line: "step 3 · judge · 40/64 replies (62%) · 0:12 in this stage" (pure)."""
    parts = []
    if p.get("step") is not None:
        parts.append(f"step {p['step']}")
    stage = str(p.get("stage") or "")
    parts.append(stage + (f": {p['part']}" if p.get("part") else ""))
    done, total, unit = p.get("done") or 0, p.get("total") or 0, p.get("unit") or ""
    if total:
        parts.append(f"{min(done, total)}/{total} {unit} ({100 * min(done, total) / total:.0f}%)")
    if isinstance(p.get("started"), (int, float)):
        seconds = int(max(0.0, now - p["started"]))
        parts.append(f"{seconds // 60}:{seconds % 60:02d} in this stage")
    return " · ".join(x for x in parts if x)
