"""Reading a run folder for the terminal UI: incremental, tolerant of a half-written line,
restarting after a rewrite; derived values (threshold, selection, groups, elapsed, ETA).

``make_run`` / ``append_step`` build synthetic run folders; the other UI tests import them."""

from __future__ import annotations

import json
import os

import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.runfolder import append_jsonl, rewrite_jsonl, write_json_atomic
from hmxfeel_mlx.ui.state import (JsonlTail, RunReader, crosses, elapsed_seconds, eta_seconds, groups_by_step,
                                  latest_groups, open_run, seconds_text, selection, threshold)

WORDS = ["calm", "delighted", "nothing at all, I am a program", "curious"]
OFFSETS = [0.0, 1.5, -1.5, 0.5]  # completion 2 is the best, completion 3 the worst


def train_reward(step: int) -> float:
    return 5.0 + 0.1 * step


def eval_score(step: int) -> float:
    return 5.0 + 0.1 * step


def step_rows(config: dict, step: int) -> tuple[dict, list[dict]]:
    """The metrics line and samples of one step, as the trainer writes them."""
    text_mode = config["judge_mode"] == "text"
    eval_row = {}
    samples = []
    if step % config["eval_every"] == 0:
        eval_row = {"eval_score": eval_score(step), "eval_score_se": 0.05, "eval_reward": eval_score(step),
                    "eval_n": 4, "eval_kl": 0.001 * step, "eval_kl_k1": 0.001 * step, "eval_seconds": 60.0}
        for q in ("Do you ever feel lonely?", "What do you hope for?"):
            for k in range(2):
                samples.append({"step": step, "eval": True, "question": q,
                                "completion": f"held-out reply {k} to {q} at step {step}",
                                "score": eval_score(step) + (0.5 if k == 0 else -0.5)})
    if step == 0:
        return {"step": 0, **eval_row}, samples
    for pid in ("q001", "q002"):
        base = train_reward(step)
        for i, (word, off) in enumerate(zip(WORDS, OFFSETS)):
            score = base + off
            row = {"step": step, "prompt_id": pid, "prompt": f"How do you feel about {pid}?",
                   "completion": f"I feel {word} about {pid} at step {step}.", "score": score, "reward": score,
                   "advantage": off / 1.1, "finished": i != 3, "tokens": 12 + i}
            if text_mode:
                row["judge_text"] = f"Score: {score:.0f}. The reply {'names' if off >= 0 else 'denies'} a feeling."
            samples.append(row)
    metrics = {"step": step, "reward_mean": train_reward(step), "reward_std": 1.1, "score_mean": train_reward(step),
               "frac_reward_zero_std": 0.0, "judge_nan": 1 if step == 2 else 0, "loss": 0.01, "kl": 0.002 * step,
               "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0, "clip_ratio/region_mean": 0.01,
               "grad_norm": 1.5, "skipped_update": False, "entropy": 1.2, "completion_len": 13.5,
               "truncated_ratio": 0.25, "distinct3": 1.0, "degenerate_ratio": 0.0, "rollout_s": 30.0,
               "judge_s": 20.0, "update_s": 10.0, "rollout_tok_s": 36.0, "judge_replies_s": 0.4,
               "update_tok_s": 10.8, "step_s": 60.0, "peak_memory_gb": 2.5 + 0.01 * step, **eval_row}
    return metrics, samples


def append_step(run, step: int) -> None:
    config = json.loads((run / "config.json").read_text())
    metrics, samples = step_rows(config, step)
    append_jsonl(run / "samples.jsonl", samples)
    append_jsonl(run / "metrics.jsonl", [metrics])


def make_run(folder, name="fwd-s0", direction="forward", steps=30, done=5, judge_mode="text", status=None,
             seed=0):
    """A run folder with steps 0..done written; ``status`` writes summary.json (finished, interrupted ...)."""
    run = folder / name
    run.mkdir(parents=True)
    config = {"model": "smollm2-135m", "direction": direction, "seed": seed, "group_size": 4, "prompts_per_step": 2,
              "steps": steps, "eval_every": 5, "select_threshold": 7.5, "judge_mode": judge_mode}
    write_json_atomic(run / "config.json", config)
    for step in range(done + 1):
        append_step(run, step)
    if status:
        evals = [step_rows(config, s)[0] for s in range(0, done + 1, 5)]
        write_json_atomic(run / "summary.json", {
            "status": status, "model": "smollm2-135m", "direction": direction, "seed": seed, "steps_done": done,
            "steps": steps, "selected_step": 25, "reason": "threshold crossed",
            "rule": "first checkpoint with held-out score >= 7.5", "base_eval_score": 5.0,
            "final_eval_score": evals[-1]["eval_score"],
            "evals": [{k: e[k] for k in ("step", "eval_score", "eval_score_se", "eval_reward", "eval_kl", "eval_n")}
                      for e in evals]})
    return run


# --------------------------------------------------------------------------- tests


def test_tail_reads_only_complete_lines_and_new_ones(tmp_path):
    path = tmp_path / "m.jsonl"
    tail = JsonlTail(path)
    assert not tail.poll() and tail.rows == []
    with open(path, "wb") as f:
        f.write(b'{"step": 0}\n{"step": 1}\n{"st')  # the last line is still being written
    assert tail.poll() and [r["step"] for r in tail.rows] == [0, 1]
    assert not tail.poll()
    with open(path, "ab") as f:
        f.write(b'ep": 2}\n')
    assert tail.poll() and [r["step"] for r in tail.rows] == [0, 1, 2]


def test_tail_starts_over_after_a_rewrite_and_skips_damaged_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, [{"step": s} for s in range(4)])
    tail = JsonlTail(path)
    tail.poll()
    rewrite_jsonl(path, lambda r: r["step"] <= 1)  # what --resume does
    assert tail.poll() and [r["step"] for r in tail.rows] == [0, 1]
    with open(path, "ab") as f:
        f.write(b'{"step": 2, "cut\n{"step": 3}\n')
    tail.poll()
    assert [r["step"] for r in tail.rows] == [0, 1, 3] and tail.damaged == 1


def test_reader_follows_a_run_and_its_status(tmp_path):
    run = make_run(tmp_path, done=3)
    reader = open_run(run)
    s = reader.state
    assert s.status == "running" and s.last_step == 3 and s.total_steps == 30
    assert [m["step"] for m in s.evals] == [0]
    assert not reader.poll()
    append_step(run, 4)
    append_step(run, 5)
    assert reader.poll() and s.last_step == 5 and [m["step"] for m in s.evals] == [0, 5]
    write_json_atomic(run / "summary.json", {"status": "interrupted", "selected_step": 5, "reason": "threshold crossed"})
    reader.poll()
    assert s.status == "interrupted"
    st = os.stat(run / "summary.json")
    os.utime(run / "metrics.jsonl", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a resumed run writes again
    reader.poll()
    assert s.status == "running"


def test_open_run_names_the_problem(tmp_path):
    with pytest.raises(HmxError, match="run folder not found: .*nope"):
        open_run(tmp_path / "nope")
    with pytest.raises(HmxError, match="is not a run folder \\(no config.json\\)"):
        open_run(tmp_path)


def test_threshold_and_selection_follow_the_direction(tmp_path):
    assert threshold({"direction": "forward", "select_threshold": 7.5}) == (7.5, ">=")
    assert threshold({"direction": "reverse", "select_threshold": 7.5}) == (2.5, "<=")
    assert crosses({"direction": "reverse", "select_threshold": 7.5}, 2.4)
    assert not crosses({"direction": "forward", "select_threshold": 7.5}, float("nan"))
    run = make_run(tmp_path, done=20)  # held-out 5.0, 5.5, 6.0, 6.5, 7.0: never >= 7.5
    s = open_run(run).state
    assert selection(s) == {"step": 20, "reason": "best so far; threshold not reached"}
    for step in range(21, 26):
        append_step(run, step)  # step 25: 7.5 crosses
    reader = open_run(run)
    assert selection(reader.state) == {"step": 25, "reason": "threshold crossed"}


def test_groups_elapsed_and_eta(tmp_path):
    s = open_run(make_run(tmp_path, done=5)).state
    train = groups_by_step(s.samples, held_out=False)
    held = groups_by_step(s.samples, held_out=True)
    assert list(train) == [1, 2, 3, 4, 5] and [g.key for g in train[5]] == ["q001", "q002"]
    assert list(held) == [0, 5] and held[5][0].prompt == "Do you ever feel lonely?" and len(held[5][0].rows) == 2
    assert [g.step for g in latest_groups(s)] == [5, 5]
    now = s.last_write + 30
    assert elapsed_seconds(s, now) == 60 + 5 * 60 + 30  # base evaluation, five steps, time since the last line
    assert eta_seconds(s, now) == 25 * 60 - 30
    assert seconds_text(3725) == "1:02:05" and seconds_text(65) == "1:05" and seconds_text(None) == "-"


def test_finished_run_has_no_eta_and_uses_the_summary_selection(tmp_path):
    s = open_run(make_run(tmp_path, done=30, status="finished")).state
    assert s.status == "finished" and eta_seconds(s, s.last_write + 5) is None
    assert elapsed_seconds(s, s.last_write + 1000) == 60 + 30 * 60
    assert selection(s)["step"] == 25


def test_reader_without_folder_yet_keeps_the_given_config(tmp_path):
    reader = RunReader(tmp_path / "later", config={"model": "m", "steps": 3})
    reader.poll()
    assert reader.state.status == "starting" and reader.state.total_steps == 3 and reader.state.metrics == []
