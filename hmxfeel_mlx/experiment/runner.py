"""`hmx-mlx replicate`: run an experiment's plan, job by job, resumable whatever stops it.

One process owns an experiment folder at a time (a lock file). Each job is marked
``running`` before it starts and ``done`` when its output is complete; a SIGINT marks it
``pending`` again, a SIGKILL leaves it ``running``, and the next run of the same command
resumes it either way (a training from its last checkpoint, an evaluation from its last
finished axis) and never redoes a finished job. A failing job is marked ``failed`` with its
error; the next run retries it.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable, Iterator

from ..errors import HmxError
from ..locks import folder_lock as experiment_lock
from ..runfolder import write_json_atomic
from . import jobs as J
from .plan import Experiment, Job, Settings, open_experiment

PROGRESS_FILE = "progress.json"


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt for the duration, so a Ctrl-C, a `kill` or a
    shutdown marks the running job interrupted at a consistent point. (A process started in the
    background by a shell inherits SIGINT ignored; it is restored here.) Main thread only."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    saved = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class ProgressFile:
    """EXP/progress.json: the running job and what it is doing, at most one write a second.
    ``listener(state)`` hears every change of stage (plain output prints it)."""

    def __init__(self, root: Path, listener: Callable[[dict], None] | None = None):
        self.path = root / PROGRESS_FILE
        self.job: Job | None = None
        self.last = 0.0
        self.state: dict = {}
        self.listener = listener

    def start(self, job: Job) -> None:
        self.job = job
        self.state = {"job": job.id, "kind": job.kind, "stage": job.kind, "done": None, "total": None,
                      "unit": None, "detail": None, "started": time.time()}
        self._write(force=True)

    def __call__(self, stage: str, done=None, total=None, unit=None, detail=None) -> None:
        changed = stage != self.state.get("stage")
        self.state.update(stage=stage, done=done, total=total, unit=unit, detail=detail)
        self._write(force=changed)
        if changed and self.listener is not None:
            self.listener(self.state)

    def _write(self, force: bool = False) -> None:
        now = time.time()
        if force or now - self.last >= 1.0:
            self.last = now
            write_json_atomic(self.path, {**self.state, "updated": now})

    def finish(self) -> None:
        self.state.update(stage="idle", done=None, total=None, unit=None, detail=None)
        self._write(force=True)


def run_job(exp: Experiment, job: Job, progress: ProgressFile, data_dir, batch_size: int, on_step=None,
            world=None) -> str | None:
    if job.kind == "train":
        return J.run_train(exp, job, progress, on_step, world)
    if job.kind == "eval":
        J.run_eval(exp, job, progress, data_dir, batch_size, world)
        return None
    if job.kind == "pair":
        return J.run_pair(exp, job)
    if job.kind == "compare":
        return J.run_compare(exp, job)
    if job.kind == "report":
        J.run_report(exp, job)
        return None
    raise ValueError(f"unknown job kind {job.kind!r}")


def replicate(settings: Settings, root: str | Path, data_dir: str | Path | None = None, batch_size: int = 64,
              on_event: Callable[[Experiment, Job, str], None] | None = None, on_step=None,
              on_stage: Callable[[dict], None] | None = None) -> Experiment:
    """Run every job of the experiment in ``root`` that is not done yet (see the module doc).

    ``on_event(exp, job, event)`` is told "start", "done", "failed" and "interrupted";
    ``on_stage(progress)`` each new stage of a job (an evaluation's axis, ...)."""
    root = Path(root)
    with experiment_lock(root), interruptible():
        exp = open_experiment(root, settings)
        progress = ProgressFile(root, on_stage)
        for job in exp.jobs:
            if job.state == "done":
                continue
            started = time.time()
            try:  # a signal may arrive anywhere in here: the plan always ends consistent
                exp.mark(job, "running", started=job.started or started, attempts=job.attempts + 1, error=None)
                progress.start(job)
                if on_event:
                    on_event(exp, job, "start")
                note = run_job(exp, job, progress, data_dir, batch_size, on_step)
                resumed = "resumed after an interruption" if job.attempts > 1 else None
                exp.mark(job, "done", finished=time.time(), seconds=job.seconds + time.time() - started,
                         note=note or resumed)
            except KeyboardInterrupt:
                if job.state != "done":
                    exp.mark(job, "pending", seconds=job.seconds + time.time() - started, note="interrupted")
                progress.finish()
                if on_event:
                    on_event(exp, job, "interrupted")
                raise HmxError(f"interrupted during {job.id}; nothing finished is lost. Continue with the same "
                               "command.") from None
            except HmxError as e:
                exp.mark(job, "failed", seconds=job.seconds + time.time() - started, error=str(e))
                progress.finish()
                if on_event:
                    on_event(exp, job, "failed")
                raise HmxError(f"{job.id} failed: {e}") from None
            progress.finish()
            if on_event:
                on_event(exp, job, "done")
        return exp
