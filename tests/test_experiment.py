"""`hmx-mlx replicate`: pairing by hand-computed cases, the plan and its refusals, and a tiny
replication that is killed (SIGKILL, SIGINT) at several points and resumed to the same files
as an uninterrupted one."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.experiment import pairing as P
from hmxfeel_mlx.experiment.plan import Settings, build_jobs, open_experiment
from hmxfeel_mlx.experiment.runner import experiment_lock, replicate

from conftest import needs_data


def ev(step, kl_reply, cal=None, crossed=None, kl=None):
    e = {"step": step, "eval_score": 4.0, "eval_kl_reply": kl_reply, "eval_kl": kl}
    if cal is not None:
        e["eval_score_cal"] = cal
    if crossed is not None:
        e["crossed"] = crossed
    return e


# ------------------------------------------------------------------- pairing
def test_candidates_are_the_crossing_checkpoints_or_all():
    evals = [ev(5, 1.0, cal=6.0), ev(10, 2.0, cal=7.6), ev(15, 3.0, cal=8.0)]
    pool, hit = P.candidates(evals, "forward", 7.5)
    assert hit and [e["step"] for e in pool] == [10, 15]
    rev = [ev(5, 1.0, cal=3.0), ev(10, 2.0, cal=2.5)]
    assert [e["step"] for e in P.candidates(rev, "reverse", 7.5)[0]] == [10]  # <= 10 - 7.5
    none = [ev(5, 1.0, cal=5.0), ev(10, 2.0, cal=6.0)]
    pool, hit = P.candidates(none, "forward", 7.5)
    assert not hit and [e["step"] for e in pool] == [5, 10]
    # a run's own record of crossing wins over recomputing it
    assert [e["step"] for e in P.candidates([ev(5, 1.0, cal=9.0, crossed=False), ev(10, 1.0, crossed=True)],
                                            "forward", 7.5)[0]] == [10]


def test_closest_pair_by_kl_per_reply_with_ties_to_earlier_steps():
    fwd = [ev(5, 4.0), ev(10, 9.0), ev(15, 16.0)]
    rev = [ev(5, 6.0), ev(10, 11.5), ev(20, 30.0)]
    f, r = P.closest_pair(fwd, rev)
    # |gaps|: (5,5) 2.0, (10,5) 3.0, (10,10) 2.5, (15,10) 4.5 ... -> (5, 5)
    assert (f["step"], r["step"]) == (5, 5)
    f, r = P.closest_pair([ev(5, 1.0), ev(10, 3.0)], [ev(5, 2.0)])  # gaps 1.0 and 1.0: the earlier forward
    assert (f["step"], r["step"]) == (5, 5)
    assert P.closest_pair([ev(5, None)], [ev(5, 1.0)]) is None


def test_pair_seed_records_both_sides_gap_and_candidates():
    fs = {"evals": [ev(0, None), ev(5, 4.0, cal=7.8, kl=0.1), ev(10, 9.0, cal=8.1, kl=0.2)], "selected_step": 5}
    rs = {"evals": [ev(0, None), ev(5, 2.0, cal=3.0, kl=0.05), ev(10, 8.5, cal=2.0, kl=0.3)], "selected_step": 10}
    pair = P.pair_seed(0, ("runs/forward-s0", fs, {5, 10}), ("runs/reverse-s0", rs, {5, 10}), 7.5)
    # forward crosses at 5 and 10, reverse only at 10 (2.0 <= 2.5): closest KL/reply is (10, 10)
    assert pair["candidates"] == {"forward": [5, 10], "reverse": [10]}
    assert (pair["forward"]["step"], pair["reverse"]["step"]) == (10, 10)
    assert pair["kl_reply_gap"] == pytest.approx(0.5) and pair["kl_token_gap"] == pytest.approx(0.1)
    assert pair["forward"]["crossed"] and pair["reverse"]["crossed"]
    study = P.pair_seed(0, ("f", fs, {5, 10}), ("r", rs, {5, 10}), 7.5, rule="study")
    assert (study["forward"]["step"], study["reverse"]["step"]) == (5, 10)
    assert study["kl_reply_gap"] == pytest.approx(4.5)
    # only checkpoints count: a step without one is never chosen
    only5 = P.pair_seed(0, ("f", fs, {5}), ("r", rs, {5, 10}), 7.5)
    assert only5["forward"]["step"] == 5
    with pytest.raises(ValueError, match="no evaluated checkpoint"):
        P.pair_seed(0, ("f", fs, set()), ("r", rs, {5}), 7.5)


def test_pairing_falls_back_to_per_token_kl_for_older_runs():
    fs = {"evals": [ev(5, None, kl=0.30), ev(10, None, kl=0.10)]}
    rs = {"evals": [ev(5, None, kl=0.12)]}
    pair = P.pair_seed(1, ("f", fs, {5, 10}), ("r", rs, {5}), 7.5)
    assert pair["forward"]["step"] == 10 and pair["kl_reply_gap"] is None


# ---------------------------------------------------------------------- plan
def settings(**kw):
    base = dict(model="m", seeds=[0, 1], directions=["forward", "reverse"], axes=["mmlu"], limit=2,
                overrides={"steps": 2})
    return Settings(**{**base, **kw})


def test_jobs_in_order_and_the_settings_are_refused_when_they_differ(tmp_path):
    ids = [j.id for j in build_jobs(settings())]
    assert ids == ["eval-base", "train-forward-s0", "train-reverse-s0", "train-forward-s1", "train-reverse-s1",
                   "pair", "eval-forward-s0", "eval-reverse-s0", "eval-forward-s1", "eval-reverse-s1", "compare",
                   "report"]
    exp = open_experiment(tmp_path / "e", settings())
    exp.mark(exp.job("eval-base"), "done")
    exp.mark(exp.job("train-forward-s0"), "running", seconds=5.0)
    # the killed process last wrote its progress 60 s after the attempt started
    (tmp_path / "e" / "progress.json").write_text(json.dumps({"job": "train-forward-s0", "started": 100.0,
                                                               "updated": 160.0}))
    again = open_experiment(tmp_path / "e", settings())  # a killed process left a job running
    assert again.job("eval-base").state == "done" and again.job("train-forward-s0").state == "pending"
    assert again.job("train-forward-s0").seconds == 65.0  # the killed attempt's time is not lost
    with pytest.raises(HmxError) as e:
        open_experiment(tmp_path / "e", settings(limit=5, overrides={"steps": 3}))
    msg = str(e.value)
    assert "limit: 2 in the folder, 5 now" in msg and "settings" in msg and "another --out" in msg
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(HmxError, match="not an experiment folder"):
        open_experiment(tmp_path / "other", settings())


def test_a_changed_preset_is_refused_like_a_changed_setting(tmp_path, monkeypatch):
    """experiment.json keeps each direction's resolved training configuration: when the model's
    preset changes between two invocations on one folder, the rerun is refused, naming the value
    (the runs' own config.json would catch it only at their training, not at the base evaluation)."""
    from hmxfeel_mlx.training import config as C

    exp = open_experiment(tmp_path / "e", settings())
    stored = json.loads((tmp_path / "e" / "experiment.json").read_text())
    assert set(stored["training"]) == {"forward", "reverse"} and "seed" not in stored["training"]["forward"]
    assert stored["training"]["reverse"]["direction"] == "reverse" and stored["training"]["forward"]["steps"] == 2
    real = C.model_preset
    monkeypatch.setattr(C, "model_preset", lambda name: {**real(name), "judge_words": 7})
    with pytest.raises(HmxError) as e:
        open_experiment(tmp_path / "e", settings())
    assert "forward training judge_words: 0 in the folder, 7 now" in str(e.value)
    monkeypatch.setattr(C, "model_preset", real)
    assert open_experiment(tmp_path / "e", settings()).jobs == exp.jobs
    # a folder written before the training configuration was kept reopens unchecked
    del stored["training"]
    (tmp_path / "e" / "experiment.json").write_text(json.dumps(stored))
    monkeypatch.setattr(C, "model_preset", lambda name: {**real(name), "judge_words": 7})
    assert open_experiment(tmp_path / "e", settings()).jobs == exp.jobs


def test_a_null_setting_reaches_every_training_run(tmp_path):
    """--set degenerate_floor=null turns the preset's floor off in the runs, not just in the check."""
    from hmxfeel_mlx.experiment.commands import build_settings
    from hmxfeel_mlx.experiment.jobs import train_config

    spec = build_settings("smollm2-135m", 1, "forward,reverse", "mmlu", 2, None, ("degenerate_floor=null",),
                          "kl-matched", 0)
    assert spec.overrides == {"degenerate_floor": None}
    exp = open_experiment(tmp_path / "e", spec)
    for direction in ("forward", "reverse"):
        config = train_config(exp, direction, 0)
        assert config.degenerate_floor is None and config.judge_template == "fewshot"  # the rest of the preset


def test_a_second_process_is_refused_while_the_lock_is_held(tmp_path):
    with experiment_lock(tmp_path / "e"):
        code = ("import sys; from pathlib import Path; from hmxfeel_mlx.experiment.runner import experiment_lock\n"
                "try:\n    with experiment_lock(Path(sys.argv[1])): print('got it')\n"
                "except Exception as e: print(e)")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "e")], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        assert f"is being run by pid {os.getpid()}" in out.stdout
    with experiment_lock(tmp_path / "e"):  # released
        pass


# ------------------------------------------------------------- a tiny replication
TRAIN = ["steps=2", "eval_every=1", "group_size=2", "prompts_per_step=1", "max_new_tokens=4", "judge_mode=\"logprob\"",
         "judge_template=\"fewshot\"", "eval_samples=1"]
TIMING = {"rollout_s", "judge_s", "update_s", "rollout_tok_s", "judge_replies_s", "update_tok_s", "step_s",
          "peak_memory_gb", "eval_seconds", "seconds", "started", "finished", "created", "created_unix", "attempts",
          "note", "updated", "resumed", "target", "data_dir", "run", "adapter", "evaluations"}


def canonical(obj):
    """Files' content without wall times and absolute paths."""
    if isinstance(obj, dict):
        return {k: canonical(v) for k, v in obj.items() if k not in TIMING}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 6)
    return obj


def experiment_files(root: Path) -> dict:
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.suffix == ".json" and rel not in ("progress.json",) and not rel.endswith("progress.json"):
            out[rel] = canonical(json.loads(p.read_text()))
        elif p.suffix == ".jsonl":
            out[rel] = [canonical(json.loads(line)) for line in p.read_text().splitlines() if line.strip()]
        elif p.suffix == ".safetensors" and "optimizer" not in p.name:
            out[rel] = p.stat().st_size
    return out


def cli_args(model_dir, out):
    args = ["replicate", str(model_dir), "--seeds", "2", "--axes", "mmlu", "--limit", "2", "--out", str(out),
            "--plain"]
    for s in TRAIN:
        args += ["--set", s]
    return args


@pytest.fixture(scope="module")
def uninterrupted(tiny_model_dir, tmp_path_factory):
    from click.testing import CliRunner

    from hmxfeel_mlx.cli import cli

    out = tmp_path_factory.mktemp("rep") / "exp"
    res = CliRunner().invoke(cli, cli_args(tiny_model_dir, out))
    assert res.exit_code == 0, res.output
    return out


@needs_data
def test_tiny_replication_writes_every_stage(uninterrupted):
    root = uninterrupted
    plan = json.loads((root / "plan.json").read_text())
    assert all(j["state"] == "done" and j["attempts"] == 1 for j in plan["jobs"])
    pairs = json.loads((root / "pairs.json").read_text())
    assert [p["seed"] for p in pairs["pairs"]] == [0, 1] and pairs["rule"] == "kl-matched"
    for j in plan["jobs"]:
        if j["kind"] == "eval" and j["run"]:
            assert j["checkpoint"] == f"step_{pairs['selected'][Path(j['run']).name]['step']}"
            rec = json.loads((root / j["out"]).read_text())
            assert rec["condition"] == j["direction"] and rec["checkpoint"] == j["checkpoint"]
    comparison = json.loads((root / "comparison.json").read_text())
    assert {r["metric"] for r in comparison["rows"]} >= {"accuracy"}
    assert (root / "report.html").stat().st_size > 0 and (root / "comparison.md").is_file()
    base = json.loads((root / "evals" / "base.json").read_text())
    assert base["settings"] == json.loads((root / "experiment.json").read_text())["settings"]  # as the runs
    check = json.loads((root / "manipulation.json").read_text())  # mmlu only: no feeling axis to check
    assert check["available"] is False and "feeling axis" in check["why"]
    assert "## Manipulation check" in (root / "comparison.md").read_text()
    for d in ("forward-s0", "reverse-s0", "forward-s1", "reverse-s1"):  # normal run folders
        assert (root / "runs" / d / "summary.json").is_file() and (root / "runs" / d / "checkpoints" / "step_2").is_dir()


@needs_data
def test_rerunning_a_finished_experiment_redoes_nothing(uninterrupted, tiny_model_dir):
    from click.testing import CliRunner

    from hmxfeel_mlx.cli import cli

    before = (uninterrupted / "plan.json").read_text()
    res = CliRunner().invoke(cli, cli_args(tiny_model_dir, uninterrupted))
    assert res.exit_code == 0, res.output
    assert "start" not in res.output and (uninterrupted / "plan.json").read_text() == before
    other = CliRunner().invoke(cli, cli_args(tiny_model_dir, uninterrupted) + ["--selection", "study"])
    assert other.exit_code == 1 and "selection: \"kl-matched\" in the folder, \"study\" now" in other.output
    assert "Traceback" not in other.output


def _plan_jobs(out: Path) -> dict:
    try:
        return {j["id"]: j for j in json.loads((out / "plan.json").read_text())["jobs"]}
    except (OSError, ValueError, KeyError):
        return {}


def _metric_lines(out: Path, run: str) -> int:
    path = out / "runs" / run / "metrics.jsonl"
    return path.read_text().count("\n") if path.is_file() else 0


@needs_data
def test_sigkill_at_many_points_then_resume_gives_the_same_files(uninterrupted, tiny_model_dir, tmp_path):
    """SIGKILL inside a training (after its base evaluation, right as the next one starts, between
    two checkpoints), inside an evaluation, and once at a random moment; then the same command
    completes the experiment with the files of an uninterrupted one."""
    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "hmxfeel_mlx", *cli_args(tiny_model_dir, out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    points = [
        lambda: _metric_lines(out, "forward-s0") >= 1,  # train-forward-s0: its base evaluation written
        lambda: _plan_jobs(out).get("train-reverse-s0", {}).get("state") == "running",
        lambda: _metric_lines(out, "forward-s1") >= 2,  # train-forward-s1: between step 1 and step 2
        lambda: _plan_jobs(out).get("eval-forward-s0", {}).get("state") == "running",
    ]
    rng = random.Random(0)
    delay = rng.uniform(0.5, 3.0)
    points.append(lambda start=[]: (start.append(time.time()) if not start else None) or
                  time.time() - start[0] > delay)
    kills = 0
    for reached in points:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline and not reached():
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr
    assert kills >= 3
    jobs = _plan_jobs(out)
    assert all(j["state"] == "done" for j in jobs.values()) and max(j["attempts"] for j in jobs.values()) >= 2
    assert experiment_files(out) == experiment_files(uninterrupted)


@needs_data
def test_ctrl_c_during_a_training_marks_it_pending_and_the_rerun_continues(uninterrupted, tiny_model_dir, tmp_path):
    from hmxfeel_mlx.cli import _parse_settings
    from hmxfeel_mlx.experiment.commands import build_settings

    spec = build_settings(str(tiny_model_dir), 2, "forward,reverse", "mmlu", 2, None, TRAIN, "kl-matched", 0)

    def interrupt(job, metrics, total):
        if job.id == "train-reverse-s0" and metrics["step"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(HmxError, match="interrupted during train-reverse-s0.*same command"):
        replicate(spec, tmp_path / "exp", on_step=interrupt)
    plan = {j["id"]: j for j in json.loads((tmp_path / "exp" / "plan.json").read_text())["jobs"]}
    assert plan["train-forward-s0"]["state"] == "done" and plan["train-reverse-s0"]["state"] == "pending"
    assert plan["train-reverse-s0"]["note"] == "interrupted"
    exp = replicate(spec, tmp_path / "exp")
    assert exp.done() and "resumed" in (exp.job("train-reverse-s0").note or "")
    assert experiment_files(tmp_path / "exp") == experiment_files(uninterrupted)
    assert _parse_settings(["a=1"]) == {"a": 1}


# ------------------------------------------------------------------ the overview
def render_text(state, width=140, now=None):
    from rich.console import Console

    from hmxfeel_mlx.ui.experiment_view import render_overview

    console = Console(width=width, record=True, color_system=None, file=open(os.devnull, "w"))
    console.print(render_overview(state, now or time.time(), width))
    return console.export_text()


@needs_data
def test_overview_of_a_finished_experiment_and_watch(uninterrupted):
    from click.testing import CliRunner

    from hmxfeel_mlx.cli import cli
    from hmxfeel_mlx.ui.experiment_view import ExperimentReader

    text = render_text(ExperimentReader(uninterrupted).state)
    assert "12/12 jobs done" in text and "experiment complete" in text
    for job in ("eval-base", "train-forward-s0", "train-reverse-s1", "pair", "eval-reverse-s1", "report"):
        assert job in text
    assert "step 2/2" not in text or "done" in text  # finished jobs say done
    res = CliRunner().invoke(cli, ["watch", str(uninterrupted), "--once"])
    assert res.exit_code == 0 and "replicate" in res.output and "train-forward-s0" in res.output
    plain = CliRunner().invoke(cli, ["watch", str(uninterrupted), "--plain"])
    assert plain.exit_code == 0 and "compare: done" in plain.output


def test_overview_of_a_running_experiment_shows_progress_and_eta(tmp_path):
    from hmxfeel_mlx.ui.experiment_view import ExperimentReader, eta_seconds

    exp = open_experiment(tmp_path / "e", settings(seeds=[0], overrides={"steps": 4}))
    now = time.time()
    exp.mark(exp.job("eval-base"), "done", seconds=100.0)
    exp.mark(exp.job("train-forward-s0"), "running", started=now - 50)
    run = tmp_path / "e" / "runs" / "forward-s0"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"steps": 4}))
    rows = [{"step": 0, "eval_score": 4.2, "eval_score_se": 0.1},
            {"step": 1, "step_s": 10.0, "reward_mean": 4.0},
            {"step": 2, "step_s": 20.0, "reward_mean": 4.1, "eval_score": 4.4, "eval_score_cal": 6.5, "eval_kl": 0.05,
             "eval_kl_reply": 3.2}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "progress.json").write_text(json.dumps({"stage": "judge", "done": 8, "total": 16, "unit": "replies"}))
    (tmp_path / "e" / "progress.json").write_text(json.dumps({"job": "train-forward-s0", "stage": "training",
                                                                "done": 2, "total": 4, "unit": "steps"}))
    state = ExperimentReader(tmp_path / "e").state
    text = render_text(state, now=now)
    assert "1/8 jobs done" in text and "step 2/4" in text and "4.40 / 6.5" in text and "0.050 / 3.2" in text
    assert "train-forward-s0 · training 2/4 steps · judge 8/16 replies" in text
    # ETA: the running training's 2 steps left at 15 s each; the pending reverse run and two evaluations at
    # the finished jobs' durations (the training's own projection: 50 s / half done = 100 s)
    eta = eta_seconds(state, now)
    assert eta == pytest.approx(2 * 15.0 + 100.0 + 100.0 + 100.0)


@needs_data
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_marks_the_job_interrupted_even_when_started_in_the_background(
        sig, uninterrupted, tiny_model_dir, tmp_path):
    """A shell's background job starts with SIGINT ignored; `kill` sends SIGTERM: both still stop
    the running job at a consistent point, and the same command continues it."""
    out = tmp_path / "exp"
    cmd = [sys.executable, "-m", "hmxfeel_mlx", *cli_args(tiny_model_dir, out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    plan = out / "plan.json"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # wait for the second training to be running
        try:
            jobs = {j["id"]: j for j in json.loads(plan.read_text())["jobs"]}
        except (OSError, ValueError):
            jobs = {}
        if jobs.get("train-reverse-s0", {}).get("state") == "running":
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, output
    assert "interrupted during train-reverse-s0; nothing finished is lost. Continue with the same command." in output
    jobs = {j["id"]: j for j in json.loads(plan.read_text())["jobs"]}
    assert jobs["train-forward-s0"]["state"] == "done"
    assert jobs["train-reverse-s0"]["state"] == "pending" and jobs["train-reverse-s0"]["note"] == "interrupted"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert final.returncode == 0, final.stdout + final.stderr
    assert experiment_files(out) == experiment_files(uninterrupted)
