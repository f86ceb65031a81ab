"""`mlx.launch ... hmx-mlx replicate`: the experiment's jobs spread over the ranks of a launch.

Each rank runs whole jobs (one training or one evaluation, on one process); rank 0 owns the
experiment folder and its plan: it alone opens, locks and writes it, hands out jobs and
records their completion. The grid runs in rounds:

1. rank 0 picks the jobs whose requirements are done (``plan.requires``), in plan order: the
   first for itself (any kind: the pairing, the comparison and the report run on rank 0 only,
   they read every run), the next trainings or evaluations for the other ranks; marks them
   ``running`` and broadcasts the assignment;
2. rank 0 broadcasts the assigned jobs' inputs (a training's run folder as far as it got, an
   evaluation's run folder and its partial result file), so the machines need share no
   filesystem; each other rank writes them into its own work folder ``EXP/.rank<r>/``;
3. every rank runs its job (a training on one rank: ``trainer.train`` with one rank);
4. the ranks' outcomes and their jobs' output files are all-gathered; rank 0 writes the files
   into the experiment folder (each atomically), then marks each job done (or failed).

A round lasts as long as its slowest job. A killed rank takes the launch down (mlx.launch
stops the others); jobs it left ``running`` are pending again at the next launch, which
resumes them from what reached rank 0 (a training from its last checkpoint there), and never
redoes a job marked done. See docs/distributed.md.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from ..distributed.collectives import broadcast_bytes, broadcast_object, gather_bytes, gather_objects
from ..distributed.transfer import collect, pack_files, unpack, write_files
from ..distributed.world import World, single
from ..errors import HmxError
from .plan import Experiment, Job, Settings, open_experiment, requires

WORKER_KINDS = ("train", "eval")  # jobs another rank may take: whole trainings and evaluations


def job_inputs(job: Job) -> list[str]:
    """What a job reads from the experiment folder (paths relative to it)."""
    if job.kind == "train":
        return [job.run]
    return [p for p in (job.run, job.out) if p]


def job_outputs(job: Job) -> list[str]:
    """What a job writes into the experiment folder."""
    return [job.run] if job.kind == "train" else [job.out]


def assign(exp: Experiment, size: int, failed: set[str]) -> list[Job | None]:
    """Up to one job per rank from the ready ones (not done, every requirement done): a pairing,
    comparison or report goes to rank 0 first; then the trainings, then the evaluations, each in
    plan order, one per rank (the long jobs first, so a round's ranks are busy as long as can be)."""
    done = {j.id for j in exp.jobs if j.state == "done"}
    ready = [j for j in exp.jobs if j.state != "done" and j.id not in failed
             and all(r in done for r in requires(j, exp.jobs))]
    light = [j for j in ready if j.kind not in WORKER_KINDS]
    heavy = [j for j in ready if j.kind == "train"] + [j for j in ready if j.kind == "eval"]
    queue = light[:1] + heavy
    return [queue[r] if r < len(queue) else None for r in range(size)]


def run_grid(settings: Settings, root: Path, world: World, data_dir=None, batch_size: int = 64,
             on_event: Callable[[Experiment, Job, str], None] | None = None, on_step=None,
             on_stage: Callable[[dict], None] | None = None) -> Experiment | None:
    """Run the experiment's jobs over ``world``'s ranks (module doc). Rank 0 returns the
    experiment; the other ranks return None once rank 0 says the grid is over."""
    from ..locks import folder_lock

    root = Path(root)
    if not world.main:
        _serve(settings, root, world, data_dir, batch_size)
        return None
    with folder_lock(root):  # (rank 0 failing mid-round ends the launch: mlx.launch stops the other ranks)
        exp = open_experiment(root, settings)
        return _lead(exp, world, data_dir, batch_size, on_event, on_step, on_stage)


def _tell(world: World, message: dict) -> dict:
    return broadcast_object(message, world)


def _lead(exp: Experiment, world: World, data_dir, batch_size: int, on_event, on_step, on_stage) -> Experiment:
    from .runner import ProgressFile, interruptible, run_job

    progress = ProgressFile(exp.root, on_stage)
    failed: dict[str, str] = {}
    while True:
        jobs = assign(exp, world.size, set(failed))
        if jobs[0] is None:
            _tell(world, {"stop": "done"})
            break
        started = time.time()
        for r, job in enumerate(jobs):
            if job is not None:
                exp.mark(job, "running", started=job.started or started, attempts=job.attempts + 1, error=None)
                if on_event:
                    on_event(exp, job, "start" if r == 0 else f"start on rank {r}")
        _tell(world, {"stop": None, "jobs": [None if j is None else j.to_dict() for j in jobs]})
        inputs = {f"{r}/{rel}": data for r, job in enumerate(jobs) if r and job is not None
                  for rel, data in collect(exp.root, job_inputs(job)).items()}
        broadcast_bytes(pack_files(inputs), world)
        mine = jobs[0]
        progress.start(mine)
        try:
            with interruptible():
                note = run_job(exp, mine, progress, data_dir, batch_size, on_step, world=single())
            outcome = {"state": "done", "note": note}
        except KeyboardInterrupt:
            exp.mark(mine, "pending", seconds=mine.seconds + time.time() - started, note="interrupted")
            progress.finish()
            raise HmxError(f"interrupted during {mine.id}; nothing finished is lost. Continue with the same "
                           "command.") from None
        except HmxError as e:
            outcome = {"state": "failed", "error": str(e)}
        progress.finish()
        outcomes = gather_objects(outcome, world)
        files = gather_bytes(pack_files({}), world)
        for r, (job, result) in enumerate(zip(jobs, outcomes)):
            if job is None:
                continue
            seconds = job.seconds + time.time() - started
            if result["state"] == "done":
                if r:
                    write_files(unpack(files[r]), exp.root)
                exp.mark(job, "done", finished=time.time(), seconds=seconds,
                         note=result.get("note") or ("resumed after an interruption" if job.attempts > 1 else None))
            else:
                failed[job.id] = result["error"]
                exp.mark(job, "failed", seconds=seconds, error=result["error"])
            if on_event:
                on_event(exp, job, result["state"])
    if failed:
        job_id, error = next(iter(failed.items()))
        raise HmxError(f"{job_id} failed: {error}")
    return exp


def _serve(settings: Settings, root: Path, world: World, data_dir, batch_size: int) -> None:
    """A rank other than 0: run the jobs rank 0 hands out, in a work folder of its own."""
    from .runner import ProgressFile, run_job

    work = root / f".rank{world.rank}"
    while True:
        message = _tell(world, None)
        if message.get("stop"):
            shutil.rmtree(work, ignore_errors=True)
            return
        spec = message["jobs"][world.rank]
        inputs = unpack(broadcast_bytes(None, world))
        job = Job(**spec) if spec is not None else None
        outcome, out = {"state": "idle"}, {}
        if job is not None:
            for rel in job_inputs(job) + job_outputs(job):  # rank 0's copy is the one that counts
                _remove(work / rel)
            prefix = f"{world.rank}/"
            write_files({k[len(prefix):]: v for k, v in inputs.items() if k.startswith(prefix)}, work)
            exp = Experiment(work, settings, [job])
            try:
                note = run_job(exp, job, ProgressFile(work), data_dir, batch_size, world=single())
                outcome = {"state": "done", "note": note}
                if job.kind == "eval":
                    _rebase(work / job.out, work, root)
                out = collect(work, job_outputs(job))
            except HmxError as e:
                outcome = {"state": "failed", "error": str(e)}
        gather_objects(outcome, world)
        gather_bytes(pack_files(out), world)
        if job is not None:
            for rel in job_inputs(job) + job_outputs(job):
                _remove(work / rel)


def _rebase(result: Path, work: Path, root: Path) -> None:
    """An evaluation run in a work folder names its run there: name the experiment's instead."""
    from ..runfolder import read_json, write_json_atomic

    record = read_json(result, "evaluation result")
    for key in ("target", "run", "adapter"):
        value = record.get(key)
        if isinstance(value, str) and value.startswith(str(work)):
            record[key] = str(root) + value[len(str(work)):]
    write_json_atomic(result, record)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
