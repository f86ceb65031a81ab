"""The GRPO trainer on a tiny random model: update maths end to end, determinism,
resume after a kill, the run folder, adapters mlx-lm accepts, and bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.models.completions import completion_logprobs, make_completion_batch
from hmxfeel_mlx.models.loading import load_model
from hmxfeel_mlx.runfolder import read_jsonl
from hmxfeel_mlx.training import grpo
from hmxfeel_mlx.training.config import resolve_config
from hmxfeel_mlx.training.rollout import Rollout
from hmxfeel_mlx.training.trainer import DataCursor, TrainingStopped, attach_lora, select_checkpoint, step_key, train
from hmxfeel_mlx.training.update import build_value_and_grad, grpo_update

TIMING = ("_s", "tok_s", "replies_s", "peak_memory_gb", "eval_seconds")
# 3 replies per label from hmxfeel_mlx/prompts/judge_calibration.jsonl: the judge scale of a tiny run is
# fitted in a fraction of the 72-row set's time
SMALL_CALIBRATION = Path(__file__).parent / "calibration_small.jsonl"


def small_config(model_dir, **kw):
    base = dict(model=str(model_dir), steps=4, eval_every=2, group_size=4, prompts_per_step=2, max_new_tokens=8,
                judge_mode="logprob", judge_template="fewshot", eval_samples=1, learning_rate=5e-3,
                calibration_set=str(SMALL_CALIBRATION))
    return resolve_config(overrides={**base, **kw})


def without_timing(rows):
    return [{k: v for k, v in r.items() if not k.endswith(TIMING)} for r in rows]


def test_data_cursor_is_a_seeded_permutation_per_epoch():
    a = DataCursor(seed=3, size=5)
    first = a.take(5)
    assert sorted(first) == [0, 1, 2, 3, 4] and a.epoch == 1 and a.index == 0
    b = DataCursor(seed=3, size=5)
    assert b.take(2) + b.take(3) == first  # taking in pieces gives the same order
    assert DataCursor(seed=4, size=5).take(5) != first or DataCursor(seed=5, size=5).take(5) != first
    assert mx.array_equal(step_key(0, 7), step_key(0, 7)) and not mx.array_equal(step_key(0, 7), step_key(1, 7))


@pytest.fixture()
def policy(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    cfg = small_config(tiny_model_dir)
    attach_lora(loaded.model, cfg)
    # non-zero lora_b so the policy differs from the base
    loaded.model.load_weights([(n, mx.random.normal(p.shape, key=mx.random.key(9)) * 0.05)
                               for n, p in tree_flatten(loaded.model.trainable_parameters()) if n.endswith("lora_b")],
                              strict=False)
    return loaded, cfg


def fake_rollout(prompt_ids, completions):
    return Rollout(questions=[None] * len(completions), prompt_ids=prompt_ids, tokens=completions,
                   logprobs=[[-1.0] * len(c) for c in completions], finished=[True] * len(completions),
                   texts=[""] * len(completions))


def test_completion_logprobs_match_each_sequence_alone(policy):
    loaded, _ = policy
    prompts, comps = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13], [14]]
    batch = make_completion_batch(prompts, comps, [[0.0] * 3, [0.0]], pad_id=0)
    lp = completion_logprobs(loaded.model, batch, temperature=0.9)
    for i, (p, c) in enumerate(zip(prompts, comps)):
        logits = loaded.model(mx.array([p + c]))[0, len(p) - 1 : -1].astype(mx.float32) / 0.9
        ref = (logits - mx.logsumexp(logits, axis=-1, keepdims=True))[mx.arange(len(c)), mx.array(c)]
        assert mx.allclose(lp[i, : len(c)], ref, atol=1e-4)
        assert float(mx.abs(lp[i, len(c):]).sum()) == 0.0  # padding contributes nothing


def test_checkpointed_head_chunks_give_the_same_values_and_gradients(policy):
    """The LM head runs a few positions at a time under mx.checkpoint: values and LoRA gradients
    must not depend on the chunk size (chunks of 2 split every completion here, 64 does not)."""
    loaded, _ = policy
    prompts, comps = [[5, 6, 7, 8], [9, 10]], [[11, 12, 13, 14, 15], [16, 17, 18]]
    batch = make_completion_batch(prompts, comps, [[0.0] * 5, [0.0] * 3], pad_id=0)
    weights = mx.array([[1.0, -2.0, 0.5, 1.5, -1.0], [0.3, 2.0, -0.7, 0.0, 0.0]])
    results = []
    for chunk in (64, 2):
        def loss(model):
            return (completion_logprobs(model, batch, temperature=0.8, chunk=chunk) * weights).sum()

        value, grads = nn.value_and_grad(loaded.model, loss)(loaded.model)
        results.append((value, dict(tree_flatten(grads))))
    assert abs(results[0][0].item() - results[1][0].item()) < 1e-4
    assert any(float(mx.abs(g).sum()) > 0 for g in results[0][1].values())
    for k, g in results[0][1].items():
        # float32 sums in another order differ by ~3e-7 of the gradient's scale (these reach ~40);
        # a chunking mistake differs by its whole size
        scale = max(float(mx.abs(g).max()), 1.0)
        assert float(mx.abs(g - results[1][1][k]).max()) <= 1e-5 * scale, k


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_chunked_update_equals_one_batch(tiny_model_dir, loss_type):
    """Gradient accumulation over chunks reproduces the whole-batch step exactly (bnpo normalises
    each micro-batch by its own tokens, as TRL does, so it is not chunk-invariant: test_update.py)."""
    prompts = [[5, 6, 7], [5, 6, 7], [8, 9], [8, 9]]
    comps = [[10, 11, 12, 13], [14], [15, 16], [17, 18, 19]]
    adv = np.array([1.0, -1.0, 0.5, -0.5])
    params = []
    for chunk in (4, 1):
        loaded = load_model(str(tiny_model_dir))
        cfg = small_config(tiny_model_dir, loss_type=loss_type, update_batch_size=chunk, beta=0.1)
        attach_lora(loaded.model, cfg)
        import mlx.optimizers as optim

        opt = optim.SGD(learning_rate=0.1)
        vg = build_value_and_grad(loaded.model, cfg)
        out = grpo_update(loaded.model, opt, vg, fake_rollout(prompts, comps), adv, cfg, pad_id=0)
        assert not out["skipped_update"] and out["update_tokens"] == 10
        params.append(dict(tree_flatten(loaded.model.trainable_parameters())))
    for k in params[0]:
        assert mx.allclose(params[0][k], params[1][k], atol=1e-6), k


def test_identical_rewards_give_no_update(policy):
    loaded, cfg = policy
    import mlx.optimizers as optim

    before = {k: mx.array(v) for k, v in tree_flatten(loaded.model.trainable_parameters())}
    rewards = mx.array([5.0, 5.0, 5.0, 5.0])
    adv = np.array(grpo.group_advantages(rewards, 4))
    assert bool(grpo.zero_spread_groups(rewards, 4)[0]) and not adv.any()
    out = grpo_update(loaded.model, optim.Adam(learning_rate=0.1), build_value_and_grad(loaded.model, cfg),
                      fake_rollout([[5, 6]] * 4, [[7, 8]] * 4), adv, cfg, pad_id=0)
    assert out["skipped_update"]
    after = dict(tree_flatten(loaded.model.trainable_parameters()))
    assert all(mx.array_equal(before[k], after[k]) for k in before)


def test_selection_rule_first_crossing_and_mirror():
    fwd = resolve_config(overrides=dict(select_threshold=7.5))
    evals = [{"step": 0, "eval_score": 8.0}, {"step": 10, "eval_score": 7.0}, {"step": 20, "eval_score": 7.6},
             {"step": 30, "eval_score": 9.0}]
    assert select_checkpoint(fwd, evals, {10, 20, 30})["selected_step"] == 20  # step 0 (the base) is no checkpoint
    rev = resolve_config(overrides=dict(direction="reverse", select_threshold=7.5))
    evals_r = [{"step": 10, "eval_score": 3.0}, {"step": 20, "eval_score": 2.4}, {"step": 30, "eval_score": 1.0}]
    assert select_checkpoint(rev, evals_r, {10, 20, 30})["selected_step"] == 20
    none = select_checkpoint(fwd, [{"step": 10, "eval_score": 4.0}, {"step": 20, "eval_score": 5.0}], {10, 20})
    assert none["selected_step"] == 20 and "not reached" in none["reason"]


def test_run_folder_and_determinism(tiny_model_dir, tmp_path):
    cfg = small_config(tiny_model_dir)
    a = train(cfg, tmp_path / "a")
    b = train(cfg, tmp_path / "b")
    rows = read_jsonl(a.run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    for key in ("reward_mean", "reward_std", "frac_reward_zero_std", "judge_nan", "loss", "kl", "entropy",
                "clip_ratio/region_mean", "completion_len", "truncated_ratio", "rollout_s", "judge_s", "update_s",
                "rollout_tok_s", "peak_memory_gb"):
        assert key in rows[1], key
    assert "eval_score" in rows[2] and "eval_kl" in rows[2] and "eval_score" not in rows[1]
    assert without_timing(rows) == without_timing(read_jsonl(b.run_dir / "metrics.jsonl"))
    samples = read_jsonl(a.run_dir / "samples.jsonl")
    train_samples = [s for s in samples if not s.get("eval")]
    assert len(train_samples) == 4 * cfg.rollouts_per_step
    assert {"step", "prompt", "completion", "score", "advantage"} <= set(train_samples[0])
    summary = json.loads((a.run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["selected_step"] in (2, 4)
    assert json.loads((a.run_dir / "config.json").read_text())["group_size"] == 4
    assert sorted(p.name for p in (a.run_dir / "checkpoints").iterdir()) == ["step_2", "step_4"]


def test_resume_after_interrupt_reproduces_the_metrics(tiny_model_dir, tmp_path):
    cfg = small_config(tiny_model_dir, steps=6, eval_every=2)
    whole = train(cfg, tmp_path / "whole")

    def stop_at_5(metrics, samples):
        if metrics["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(TrainingStopped, match="step_4.*--resume"):
        train(cfg, tmp_path / "cut", on_step=stop_at_5)
    resumed = train(cfg, tmp_path / "cut", resume=True)
    assert without_timing(read_jsonl(resumed.run_dir / "metrics.jsonl")) == without_timing(
        read_jsonl(whole.run_dir / "metrics.jsonl"))


def test_sigkill_leaves_readable_files_and_resume_matches(tiny_model_dir, tmp_path):
    overrides = ["--steps", "6", "--eval-every", "2", "--group-size", "4", "--prompts-per-step", "2",
                 "--max-new-tokens", "8", "--judge-mode", "logprob", "--set", 'judge_template="fewshot"',
                 "--set", "eval_samples=1", "--learning-rate", "5e-3", "--plain",
                 "--set", f'calibration_set="{SMALL_CALIBRATION}"']
    cmd = [sys.executable, "-m", "hmxfeel_mlx", "train", str(tiny_model_dir)]
    env = dict(os.environ, HMX_MLX_OPENBLAS="0")
    subprocess.run(cmd + overrides + ["--run-dir", str(tmp_path / "whole")], check=True, env=env, capture_output=True)
    run = tmp_path / "killed"
    proc = subprocess.Popen(cmd + overrides + ["--run-dir", str(run)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_jsonl(run / "metrics.jsonl")) < 4:  # past the step_2 checkpoint
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for name in ("metrics.jsonl", "samples.jsonl"):
        read_jsonl(run / name)  # readable, whatever the moment of the kill
    json.loads((run / "config.json").read_text())
    done = subprocess.run(cmd[:-1] + ["--resume", str(run), "--plain"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert without_timing(read_jsonl(run / "metrics.jsonl")) == without_timing(
        read_jsonl(tmp_path / "whole" / "metrics.jsonl"))


def test_adapters_load_in_mlx_lm_and_hmx_generate(tiny_model_dir, tmp_path):
    from click.testing import CliRunner
    from mlx_lm.utils import load

    from hmxfeel_mlx.cli import cli

    result = train(small_config(tiny_model_dir, steps=2, eval_every=2), tmp_path / "run")
    ckpt = result.run_dir / "checkpoints" / "step_2"
    model, _ = load(str(tiny_model_dir), adapter_path=str(ckpt))
    ours = load_model(str(tiny_model_dir), adapter=ckpt)
    x = mx.array([[5, 6, 7, 8]])
    ours_out = ours.model(x)
    theirs = model(x).astype(mx.float32)  # mlx-lm keeps the 4-bit base; ours is dequantized fp32
    assert float(mx.abs(ours_out - theirs).max()) < 0.05 * float(mx.abs(theirs).max())
    base = load_model(str(tiny_model_dir)).model(x)
    assert float(mx.abs(ours_out - base).max()) > 1e-4  # the adapter changed the model
    fused = tmp_path / "fused"
    subprocess.run([sys.executable, "-m", "mlx_lm", "fuse", "--model", str(tiny_model_dir), "--adapter-path",
                    str(ckpt), "--save-path", str(fused), "--dequantize"], check=True, capture_output=True)
    fused_out = load_model(str(fused)).model(x)
    assert mx.allclose(fused_out, ours_out, atol=1e-4)  # dequantized base + fused LoRA = our fp32 model
    out = CliRunner().invoke(cli, ["generate", str(tiny_model_dir), "-p", "hi", "--max-tokens", "3", "--adapter", str(ckpt)])
    assert out.exit_code == 0, out.output


def test_nan_loss_stops_cleanly_keeping_the_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    import hmxfeel_mlx.training.trainer as trainer

    real = trainer.grpo.grpo_loss

    def nan_after_step_2(*a, **k):
        loss, parts = real(*a, **k)
        return (loss * math.nan if nan_after_step_2.calls > 2 * 1 else loss), parts

    nan_after_step_2.calls = 0

    def counting(*a, **k):
        nan_after_step_2.calls += 1
        return nan_after_step_2(*a, **k)

    monkeypatch.setattr(trainer.grpo, "grpo_loss", counting)
    cfg = small_config(tiny_model_dir, steps=4, eval_every=1, update_batch_size=64)
    with pytest.raises(TrainingStopped, match="NaN/inf loss at step 3.*step_2"):
        train(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "stopped" and (tmp_path / "run" / "checkpoints" / "step_2").is_dir()


@pytest.mark.parametrize(
    "overrides, message",
    [({"group_size": 1}, "group_size"), ({"prompts_per_step": 200}, "fewer than prompts_per_step")],
)
def test_bad_settings_are_one_clear_error(tiny_model_dir, tmp_path, overrides, message):
    with pytest.raises(HmxError, match=message):
        train(small_config(tiny_model_dir, **overrides), tmp_path / "run")


def test_bad_question_and_template_files(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(HmxError, match="empty"):
        train(small_config(tiny_model_dir, train_questions=str(empty)), tmp_path / "r1")
    bad = tmp_path / "judge.txt"
    bad.write_text("Rate this reply: {reply}")
    with pytest.raises(HmxError, match=r"\{question\}"):
        train(small_config(tiny_model_dir, judge_template=str(bad)), tmp_path / "r2")


def test_resume_refuses_another_model(tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from hmxfeel_mlx.cli import cli

    train(small_config(tiny_model_dir, steps=2, eval_every=2), tmp_path / "run")
    out = CliRunner().invoke(cli, ["train", "qwen3-0.6b", "--resume", str(tmp_path / "run")])
    assert out.exit_code == 1 and "cannot change model" in out.output and "Traceback" not in out.output
