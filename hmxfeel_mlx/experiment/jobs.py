"""The jobs of an experiment: each one reads and writes only folders and files.

``world``: the ranks a training or an evaluation runs on (None: this process's launch; the
grid passes one rank, as each of its ranks runs whole jobs). A training is ``trainer.train`` into ``EXP/runs/<direction>-s<seed>`` (resumed from its last
checkpoint when the folder already holds a run), an evaluation is ``evals.runner.evaluate``
into ``EXP/evals/<name>.json`` (resumed from its last finished axis), pairing reads the
runs' summary.json, the comparison reads the evaluation files. So every job can be killed
at any moment and rerun, and each run folder stays a normal one (`inspect`, `watch`,
`eval`, `compare` work on it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import HmxError
from ..runfolder import read_json, write_bytes_atomic, write_json_atomic
from .pairing import pair_seed, select_single
from .plan import Experiment, Job, run_name

Progress = Callable[..., None]  # progress(stage=..., done=..., total=..., unit=...)


def train_config(exp: Experiment, direction: str, seed: int):
    from ..training.config import resolve_config

    s = exp.settings
    return resolve_config(overrides={"model": s.model, "direction": direction, "seed": seed}, settings=s.overrides)


def run_train(exp: Experiment, job: Job, progress: Progress, on_step=None, world=None) -> str | None:
    """Train (or resume) one run; returns a note for the plan (resumed, stopped early)."""
    from ..runfolder import RunPaths
    from ..training.checkpoint import latest_checkpoint
    from ..training.trainer import TrainingStopped, train

    run = exp.path(job.run)
    config = train_config(exp, job.direction, job.seed)
    paths = RunPaths(run)
    resume = paths.config.is_file()
    if resume:
        stored = read_json(paths.config, "run config")
        if stored != config.to_dict():
            raise HmxError(f"{run} was trained with another configuration than this experiment's. Move it away "
                           "(or delete it) and rerun to train it again.")
        summary = read_json(paths.summary, "run summary") if paths.summary.is_file() else {}
        if summary.get("status") in ("finished", "stopped") and summary.get("steps_done", 0) >= config.steps:
            return "finished earlier"
    last = latest_checkpoint(paths) if resume else None

    def on_train_step(metrics: dict, samples: list) -> None:
        progress(stage="training", done=metrics.get("step", 0), total=config.steps, unit="steps")
        if on_step:
            on_step(job, metrics, config.steps)

    progress(stage="training", done=0 if last is None else int(last.name.split("_")[1]), total=config.steps,
             unit="steps")
    try:
        train(config, run, resume=resume, on_step=on_train_step, world=world)
    except TrainingStopped as e:
        summary = read_json(paths.summary, "run summary") if paths.summary.is_file() else {}
        if summary.get("status") == "interrupted":
            raise KeyboardInterrupt from None
        return f"stopped early: {summary.get('stopped') or e}"
    return f"resumed from {last.name}" if last is not None else ("resumed" if resume else None)


def run_eval(exp: Experiment, job: Job, progress: Progress, data_dir: str | Path | None,
             batch_size: int = 64, world=None) -> None:
    from ..evals.runner import evaluate

    s = exp.settings
    target = str(exp.path(job.run)) if job.run else s.model
    if job.run and not job.checkpoint:
        raise HmxError(f"{job.id}: no checkpoint was chosen for {job.run} (the pair job has not run).")
    done: list[str] = []

    def on_start(axis: str, n: int) -> None:
        progress(stage=f"eval {axis}", done=len(done), total=len(s.axes), unit="axes", detail=f"{n} items")

    def on_axis(res) -> None:
        done.append(res.name)
        progress(stage=f"eval {res.name} done", done=len(done), total=len(s.axes), unit="axes")

    evaluate(target, s.axes, limit=s.limit, seed=s.eval_seed, data_dir=data_dir, out=exp.path(job.out),
             checkpoint=job.checkpoint, batch_size=batch_size, on_start=on_start, on_axis=on_axis, resume=True,
             world=world, on_skip=done.append,  # a resumed evaluation counts the axes it already has
             settings=None if job.run else s.overrides)  # the base's feeling axis samples as the runs do


def _run_state(exp: Experiment, direction: str, seed: int) -> tuple[str, dict, set[int], float]:
    from ..runfolder import RunPaths
    from ..training.checkpoint import list_checkpoints

    rel = f"runs/{run_name(direction, seed)}"
    paths = RunPaths(exp.root / rel)
    if not paths.summary.is_file():
        raise HmxError(f"{paths.root} has no summary.json: its training did not finish. Rerun to continue it.")
    summary = read_json(paths.summary, "run summary")
    config = read_json(paths.config, "run config")
    steps = {int(p.name.split("_")[1]) for p in list_checkpoints(paths)}
    return rel, summary, steps, float(config.get("select_threshold", 7.5))


def run_pair(exp: Experiment, job: Job) -> str:
    """Choose each run's checkpoint (pairs.json) and give the evaluation jobs their checkpoint."""
    s = exp.settings
    pairs, selected = [], {}
    for seed in s.seeds:
        states = {d: _run_state(exp, d, seed) for d in s.directions}
        try:
            if {"forward", "reverse"} <= set(states):
                f, r = states["forward"], states["reverse"]
                pair = pair_seed(seed, f[:3], r[:3], f[3], s.selection)
                pairs.append(pair)
                selected[run_name("forward", seed)], selected[run_name("reverse", seed)] = pair["forward"], pair["reverse"]
            else:
                for d, (rel, summary, steps, thr) in states.items():
                    selected[run_name(d, seed)] = select_single(rel, summary, steps, d, thr)
        except ValueError as e:
            raise HmxError(f"cannot choose a checkpoint for seed {seed}: {e}. Its training stopped before its "
                           "first held-out evaluation; rerun with more steps or another seed.") from None
    write_json_atomic(exp.path(job.out), {"rule": s.selection, "pairs": pairs, "selected": selected})
    for j in exp.jobs:
        if j.kind == "eval" and j.run:
            j.checkpoint = f"step_{selected[Path(j.run).name]['step']}"
    exp.save_plan()
    gaps = [p["kl_reply_gap"] for p in pairs if p["kl_reply_gap"] is not None]
    return f"{len(selected)} checkpoints" + (f", KL/reply gap ≤ {max(gaps):.2f}" if gaps else "")


def eval_outputs(exp: Experiment) -> list[Path]:
    return [exp.path(j.out) for j in exp.jobs if j.kind == "eval"]


def run_compare(exp: Experiment, job: Job) -> str:
    """comparison.json and .md, and the judge-free manipulation check (manipulation.json, in the .md too)."""
    from ..evals.compare import compare_paths, headline_text, to_json, to_markdown
    from . import manipulation

    outputs = eval_outputs(exp)
    result = compare_paths([str(p) for p in outputs])
    check = manipulation.check_files(outputs)
    write_bytes_atomic(exp.path(job.out), to_json(result).encode())
    write_bytes_atomic(exp.path(job.out).with_suffix(".md"),
                       (to_markdown(result) + "\n" + manipulation.to_markdown(check)).encode())
    write_json_atomic(exp.path("manipulation.json"), check)
    verdicts = {True: "met", False: "not met", None: "unknown"}
    checked = "; ".join(f"{d} {verdicts[c['met']]}" for d, c in check.get("directions", {}).items())
    headline = headline_text(result.headlines.get(next(iter(result.headlines), ""), {}))
    return f"{headline} | manipulation check: {checked}" if checked else headline


def run_report(exp: Experiment, job: Job) -> None:
    """The report page: one self-contained HTML file (``ui.report_html``)."""
    from ..ui.report_html import write_report

    write_report(exp.root, exp.path(job.out))
