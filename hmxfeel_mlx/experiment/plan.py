"""The experiment folder and its plan: what `hmx-mlx replicate` runs, and how far it got.

    EXP/experiment.json   the settings the experiment was started with (a rerun must match them)
    EXP/plan.json         every job and its state (pending, running, done, failed)
    EXP/runs/<direction>-s<seed>/        normal run folders (`hmx-mlx train`)
    EXP/evals/base.json, EXP/evals/<direction>-s<seed>.json   normal `hmx-mlx eval` result files
    EXP/pairs.json        the checkpoint chosen per run and the forward/reverse pairs
    EXP/comparison.json, EXP/comparison.md   `hmx-mlx compare` of base and the selected checkpoints
    EXP/report.html       the report page
    EXP/progress.json     what the running job is doing now (for `hmx-mlx watch EXP`)

This module is MLX-free (the overview reads it). Every write is atomic, so a kill at
any moment leaves a plan that says which jobs finished; a job found ``running`` by a
new process was interrupted and is resumed (trainings from their last checkpoint,
evaluations from their last finished axis).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HmxError
from .. import runfolder
from ..runfolder import write_json_atomic

EXPERIMENT_SCHEMA = "hmxfeel_mlx.experiment/1"
PLAN_SCHEMA = "hmxfeel_mlx.plan/1"
JOB_STATES = ("pending", "running", "done", "failed")
JOB_KINDS = ("eval", "train", "pair", "compare", "report")


@dataclass
class Settings:
    """What defines an experiment: a rerun with other settings on the same folder is refused."""

    model: str
    seeds: list[int]
    directions: list[str]
    axes: list[str]
    limit: int | None
    overrides: dict[str, Any] = field(default_factory=dict)  # training config values (file + --set)
    selection: str = "kl-matched"  # kl-matched | study
    eval_seed: int = 0

    def to_dict(self) -> dict:
        """As experiment.json holds it: the training config values under "settings"."""
        d = asdict(self)
        d["settings"] = d.pop("overrides")
        return d


@dataclass
class Job:
    id: str
    kind: str
    state: str = "pending"
    seed: int | None = None
    direction: str | None = None
    run: str | None = None  # run folder, relative to the experiment (train, eval of a checkpoint)
    checkpoint: str | None = None  # step_N (eval of a checkpoint; filled in by the pair job)
    out: str | None = None  # what the job writes, relative to the experiment
    started: float | None = None
    finished: float | None = None
    seconds: float = 0.0  # wall time spent in the job, over all attempts
    attempts: int = 0
    error: str | None = None
    note: str | None = None  # e.g. "resumed from step_10", "stopped: held-out KL ..."

    def to_dict(self) -> dict:
        return asdict(self)


def run_name(direction: str, seed: int) -> str:
    return f"{direction}-s{seed}"


def build_jobs(settings: Settings) -> list[Job]:
    """The whole grid in the order it runs: base evaluation, the trainings (seed-major, so
    each seed's forward/reverse pair completes early), pairing, the selected checkpoints'
    evaluations, the comparison and the report."""
    jobs = [Job("eval-base", "eval", out="evals/base.json")]
    runs = [(s, d) for s in settings.seeds for d in settings.directions]
    jobs += [Job(f"train-{d}-s{s}", "train", seed=s, direction=d, run=f"runs/{run_name(d, s)}") for s, d in runs]
    jobs.append(Job("pair", "pair", out="pairs.json"))
    jobs += [Job(f"eval-{d}-s{s}", "eval", seed=s, direction=d, run=f"runs/{run_name(d, s)}",
                 out=f"evals/{run_name(d, s)}.json") for s, d in runs]
    jobs.append(Job("compare", "compare", out="comparison.json"))
    jobs.append(Job("report", "report", out="report.html"))
    return jobs


def requires(job: Job, jobs: list[Job]) -> list[str]:
    """The jobs ``job`` needs done first (the order ``build_jobs`` runs them in says the same):
    pairing needs every training; a run's evaluation its training and the pairing (which picks
    its checkpoint); the comparison every evaluation; the report the comparison."""
    if job.kind == "pair":
        return [j.id for j in jobs if j.kind == "train"]
    if job.kind == "eval" and job.run:
        return [j.id for j in jobs if j.kind == "train" and j.run == job.run] + ["pair"]
    if job.kind == "compare":
        return [j.id for j in jobs if j.kind == "eval"]
    if job.kind == "report":
        return ["compare"]
    return []  # the base evaluation and the trainings need nothing


@dataclass
class Experiment:
    """An experiment folder: its settings and plan, read and written atomically."""

    root: Path
    settings: Settings
    jobs: list[Job]
    created: str = ""

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    def path(self, rel: str | None) -> Path | None:
        return None if rel is None else self.root / rel

    def job(self, job_id: str) -> Job:
        for j in self.jobs:
            if j.id == job_id:
                return j
        raise KeyError(job_id)

    def save_plan(self) -> None:
        write_json_atomic(self.plan_path, {"schema": PLAN_SCHEMA, "jobs": [j.to_dict() for j in self.jobs]})

    def mark(self, job: Job, state: str, **changes: Any) -> None:
        """Set a job's state (and other fields) and write the plan."""
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}")
        job.state = state
        for k, v in changes.items():
            setattr(job, k, v)
        self.save_plan()

    def done(self) -> bool:
        return all(j.state == "done" for j in self.jobs)


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"{key}: {json.dumps(old.get(key))} in the folder, {json.dumps(new.get(key))} now")
    return out


def resolved_training(settings: Settings) -> dict[str, dict]:
    """Each direction's training configuration as its runs will resolve it (the model's preset,
    the experiment's training values on top; the seed left out). experiment.json keeps it, so a
    preset changed between two invocations on one folder is refused like any other setting."""
    from ..training.config import resolve_config

    out = {}
    for d in settings.directions:
        cfg = resolve_config(overrides={"model": settings.model, "direction": d, "seed": 0},
                             settings=settings.overrides).to_dict()
        cfg.pop("seed", None)
        out[d] = cfg
    return out


def open_experiment(root: Path, settings: Settings) -> Experiment:
    """Create the experiment folder, or reopen it when its settings are the same (HmxError naming
    every difference otherwise). Jobs left ``running`` by a killed process become pending again."""
    root = Path(root)
    meta = root / "experiment.json"
    if meta.is_file():
        stored = read_json(meta, "experiment settings")
        if stored.get("schema") != EXPERIMENT_SCHEMA:
            raise HmxError(f"{meta} is not an experiment written by `hmx-mlx replicate` (schema "
                           f"{stored.get('schema')!r}). Pick another --out.")
        diff = _differences({k: stored.get(k) for k in settings.to_dict()}, settings.to_dict())
        if not diff and isinstance(stored.get("training"), dict):  # folders written before it was kept: not checked
            now = resolved_training(settings)
            diff = [f"{d} training {line}" for d in now for line in _differences(stored["training"].get(d) or {}, now[d])]
        if diff:
            raise HmxError(f"{root} holds an experiment with other settings ({'; '.join(diff)}). Rerun it with "
                           "its own settings to continue it, or pass another --out for a new experiment.")
        plan = read_json(root / "plan.json", "experiment plan")
        jobs = [Job(**j) for j in plan.get("jobs", [])]
        if [j.id for j in jobs] != [j.id for j in build_jobs(settings)]:
            raise HmxError(f"{root / 'plan.json'} does not list this experiment's jobs; it was edited or damaged. "
                           "Restore it or start a new experiment with another --out.")
        exp = Experiment(root, settings, jobs, stored.get("created", ""))
        alive = _last_progress(root)
        for j in exp.jobs:
            if j.state == "running":  # the process running it was killed: resume it
                j.state = "pending"
                j.note = "interrupted; resumed" if j.kind in ("train", "eval") else None
                if alive.get("job") == j.id and isinstance(alive.get("updated"), (int, float)) \
                        and isinstance(alive.get("started"), (int, float)):
                    j.seconds += max(0.0, alive["updated"] - alive["started"])  # the killed attempt's time
        exp.save_plan()
        return exp
    if root.exists() and any(p.name != ".lock" for p in root.iterdir()):
        raise HmxError(f"{root} exists and is not an experiment folder. Pass another --out (or an empty folder).")
    root.mkdir(parents=True, exist_ok=True)
    created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json_atomic(meta, {"schema": EXPERIMENT_SCHEMA, "created": created, **settings.to_dict(),
                             "training": resolved_training(settings)})
    exp = Experiment(root, settings, build_jobs(settings), created)
    exp.save_plan()
    return exp


def _last_progress(root: Path) -> dict:
    """progress.json as the killed process last wrote it (its job, when it started, when it was last alive)."""
    try:
        data = json.loads((Path(root) / "progress.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_json(path: Path, what: str) -> dict:
    return runfolder.read_json(path, what, "Restore it, or start a new experiment with another --out.")


def is_experiment(path: str | Path) -> bool:
    return (Path(path) / "experiment.json").is_file() and (Path(path) / "plan.json").is_file()


def read_plan(root: str | Path) -> tuple[dict, list[dict]]:
    """experiment.json and the plan's jobs (dicts), for readers that never run anything."""
    root = Path(root)
    return read_json(root / "experiment.json", "experiment settings"), read_json(root / "plan.json",
                                                                                 "experiment plan").get("jobs", [])
