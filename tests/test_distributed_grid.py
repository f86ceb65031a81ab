"""The grid on two ranks (``mlx.launch -n 2 hmx-mlx replicate``): the same plan and files as one
process, and a rank killed (SIGKILL) mid-job, then the same command relaunched, finishes the
experiment without redoing a finished job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BENCH_DATA, needs_data
from launching import command, env, run
from test_experiment import TRAIN, experiment_files
from test_trainer import SMALL_CALIBRATION

from hmxfeel_mlx.experiment.grid import assign
from hmxfeel_mlx.experiment.plan import Settings, build_jobs, open_experiment, requires


def _args(model_dir, out):
    args = ["replicate", str(model_dir), "--seeds", "1", "--axes", "mmlu", "--limit", "2", "--out", str(out), "--plain",
            "--data-dir", str(BENCH_DATA), "--set", f"calibration_set=\"{SMALL_CALIBRATION}\""]
    for s in TRAIN:
        args += ["--set", s]
    return args


def _plan(out: Path) -> dict:
    try:
        return {j["id"]: j for j in json.loads((out / "plan.json").read_text())["jobs"]}
    except (OSError, ValueError, KeyError):
        return {}


def test_requirements_and_rounds_follow_the_plan(tmp_path):
    spec = Settings(model="m", seeds=[0], directions=["forward", "reverse"], axes=["mmlu"], limit=2)
    jobs = build_jobs(spec)
    need = {j.id: requires(j, jobs) for j in jobs}
    assert need["eval-base"] == [] and need["train-forward-s0"] == []
    assert need["pair"] == ["train-forward-s0", "train-reverse-s0"]
    assert need["eval-forward-s0"] == ["train-forward-s0", "pair"]
    assert need["compare"] == ["eval-base", "eval-forward-s0", "eval-reverse-s0"] and need["report"] == ["compare"]
    exp = open_experiment(tmp_path / "e", spec)
    ids = lambda js: [j.id if j else None for j in js]  # noqa: E731
    assert ids(assign(exp, 3, set())) == ["train-forward-s0", "train-reverse-s0", "eval-base"]  # long jobs first
    for j in exp.jobs[:3]:
        j.state = "done"
    assert ids(assign(exp, 2, set())) == ["pair", None]  # the pairing on rank 0, nothing else is ready
    exp.job("pair").state = "done"
    assert ids(assign(exp, 2, set())) == ["eval-forward-s0", "eval-reverse-s0"]
    assert ids(assign(exp, 2, {"eval-forward-s0"})) == ["eval-reverse-s0", None]  # failed: not retried this launch


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("grid") / "one"
    run(0, *_args(tiny_model_dir, out))
    return out


def _files(root: Path) -> dict:
    return {k: v for k, v in experiment_files(root).items() if not k.startswith(".rank")}


@needs_data
def test_two_ranks_run_the_grid_to_the_same_plan_and_files(reference, tiny_model_dir, tmp_path):
    out = tmp_path / "two"
    res = run(2, *_args(tiny_model_dir, out))
    assert "train-reverse-s0: start on rank 1" in res.stdout and res.stdout.count("experiment: ") == 1
    plan = _plan(out)
    assert all(j["state"] == "done" and j["attempts"] == 1 for j in plan.values())
    assert list(plan) == list(_plan(reference))
    assert _files(out) == _files(reference) and not (out / ".rank1").exists()
    rec = json.loads((out / "evals" / "reverse-s0.json").read_text())  # evaluated on rank 1, in its work folder
    assert rec["run"] == str(out / "runs" / "reverse-s0") and ".rank1" not in json.dumps(rec)


def _rank_pid(rank: int, marker: str) -> int | None:
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            environ = (p / "environ").read_bytes().split(b"\0")
            cmdline = (p / "cmdline").read_bytes()
        except OSError:
            continue
        if f"MLX_RANK={rank}".encode() in environ and marker.encode() in cmdline:
            return int(p.name)
    return None


@needs_data
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the rank's process through /proc")
def test_a_killed_rank_then_a_relaunch_finishes_without_redoing_finished_jobs(reference, tiny_model_dir, tmp_path):
    out = tmp_path / "killed"
    args = _args(tiny_model_dir, out)
    proc = subprocess.Popen(command(2, *args), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, killed = time.time() + 240, None
    try:  # wait until rank 1 runs the reverse evaluation (the trainings, base evaluation and pairing done)
        while proc.poll() is None and time.time() < deadline:
            if _plan(out).get("eval-reverse-s0", {}).get("state") == "running":
                killed = _rank_pid(1, str(out))
                if killed:
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.05)
        proc.wait(timeout=120)  # mlx.launch stops rank 0 when rank 1 dies
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed  # (mlx.launch itself exits 0 whatever its ranks did)
    before = _plan(out)
    finished = {k: j["finished"] for k, j in before.items() if j["state"] == "done"}
    assert {"train-forward-s0", "train-reverse-s0", "eval-base", "pair"} <= set(finished)
    assert before["eval-reverse-s0"]["state"] == "running"  # left by the kill; the relaunch resumes it
    run(2, *args)
    after = _plan(out)
    assert all(j["state"] == "done" for j in after.values())
    for k, t in finished.items():  # finished jobs were not redone
        assert after[k]["finished"] == t and after[k]["attempts"] == 1, k
    assert after["eval-reverse-s0"]["attempts"] == 2
    assert _files(out) == _files(reference)
