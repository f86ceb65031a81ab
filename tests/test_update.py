"""The GRPO update on a tiny model: the loss normalisers of TRL over micro-batches of
different token counts (bnpo is not dapo), and the ratio's "old" log-probs taken from the
training forward pass rather than from the sampler."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from hmxfeel_mlx.models.completions import completion_logprobs, make_completion_batch
from hmxfeel_mlx.models.loading import load_model
from hmxfeel_mlx.training.config import resolve_config
from hmxfeel_mlx.training.prompts import Question
from hmxfeel_mlx.training.rollout import Rollout, sample_rollout, step_key
from hmxfeel_mlx.training.trainer import attach_lora
from hmxfeel_mlx.training.update import build_value_and_grad, grpo_update, loss_weight, micro_batches

PROMPTS = [[5, 6, 7], [5, 6, 7], [8, 9], [8, 9]]
COMPS = [[10, 11, 12, 13], [14], [15, 16], [17]]  # micro-batches of 2 rows: 5 and 3 tokens
ADV = np.array([1.0, -1.0, 0.5, -0.5])


def config(model_dir, **kw):
    base = dict(model=str(model_dir), group_size=2, prompts_per_step=2, max_new_tokens=8, beta=0.0,
                update_batch_size=2)
    return resolve_config(overrides={**base, **kw})


def rollout(logprobs):
    return Rollout(questions=[None] * len(COMPS), prompt_ids=PROMPTS, tokens=COMPS, logprobs=logprobs,
                   finished=[True] * len(COMPS), texts=[""] * len(COMPS))


def update(model_dir, logprobs, **kw):
    loaded = load_model(str(model_dir))
    cfg = config(model_dir, **kw)
    attach_lora(loaded.model, cfg)
    out = grpo_update(loaded.model, optim.SGD(learning_rate=0.1), build_value_and_grad(loaded.model, cfg),
                      rollout(logprobs), ADV, cfg, pad_id=0)
    return out, dict(tree_flatten(loaded.model.trainable_parameters())), loaded


def minus_one():
    return [[-1.0] * len(c) for c in COMPS]


def test_loss_weight_and_micro_batches_by_hand():
    assert micro_batches(5, 2) == [[0, 1], [2, 3], [4]]
    # 3 of a micro-batch's 5 tokens used, 2 micro-batches, 8 tokens in the rollout
    assert loss_weight("bnpo", 1, 3.0, 5.0, 2, 4, 8.0) == pytest.approx(3 / 5 / 2)
    assert loss_weight("dapo", 1, 3.0, 5.0, 2, 4, 8.0) == pytest.approx(3 / 8)
    assert loss_weight("grpo", 1, 3.0, 5.0, 2, 4, 8.0) == loss_weight("dr_grpo", 1, 3.0, 5.0, 2, 4, 8.0) == 0.25


def test_bnpo_normalises_each_micro_batch_and_dapo_the_whole_rollout(tiny_model_dir):
    """On policy (ratio 1) with beta 0 each token's loss is -A of its row. Rows (tokens, A):
    (4, 1), (1, -1) | (2, 0.5), (1, -0.5): token sums -3 and -0.5 over 5 and 3 tokens.
    dapo = -3.5 / 8; bnpo (TRL: each micro-batch's token mean, averaged over micro-batches)
    = (-3/5 - 0.5/3) / 2; grpo = mean of the per-row means -A = 0; dr_grpo = -3.5 / (4 x 8)."""
    want = {"dapo": -3.5 / 8, "bnpo": (-3 / 5 - 0.5 / 3) / 2, "grpo": 0.0, "dr_grpo": -3.5 / 32}
    params = {}
    for loss_type, value in want.items():
        out, params[loss_type], _ = update(tiny_model_dir, minus_one(), loss_type=loss_type)
        assert out["loss"] == pytest.approx(value, abs=1e-6), loss_type
    differs = [k for k in params["bnpo"] if not mx.allclose(params["bnpo"][k], params["dapo"][k], atol=1e-7)]
    assert differs  # different normalisers, different steps
    # with the whole rollout in one micro-batch the two are the same
    _, bnpo_one, _ = update(tiny_model_dir, minus_one(), loss_type="bnpo", update_batch_size=4)
    _, dapo_one, _ = update(tiny_model_dir, minus_one(), loss_type="dapo", update_batch_size=4)
    assert all(mx.allclose(bnpo_one[k], dapo_one[k], atol=1e-7) for k in bnpo_one)


def test_the_ratio_uses_the_training_forward_not_the_samplers_logprobs(tiny_model_dir):
    """Sampler log-probs off by +0.7 per token (what a drifting decode kernel reports) must not
    change the update: with one step per rollout the ratio is exactly 1 and nothing is clipped."""
    loaded = load_model(str(tiny_model_dir))
    attach_lora(loaded.model, config(tiny_model_dir))
    batch = make_completion_batch(PROMPTS, COMPS, minus_one(), pad_id=0)
    exact = np.asarray(completion_logprobs(loaded.model, batch, 1.0))  # LoRA starts at zero: policy = base
    true_lp = [exact[i, : len(c)].tolist() for i, c in enumerate(COMPS)]
    drifted = [[v + 0.7 for v in row] for row in true_lp]
    out_true, params_true, _ = update(tiny_model_dir, true_lp, loss_type="dapo", epsilon=0.2)
    out_drift, params_drift, _ = update(tiny_model_dir, drifted, loss_type="dapo", epsilon=0.2)
    assert out_drift["clip_ratio/region_mean"] == 0.0
    assert all(mx.allclose(params_true[k], params_drift[k], atol=1e-7) for k in params_true)
    assert out_true["sampler_logp_diff"] < 1e-5
    assert out_drift["sampler_logp_diff"] == pytest.approx(0.7, abs=1e-5)
    assert math.isclose(out_true["loss"], out_drift["loss"], abs_tol=1e-7)


def test_sampler_and_training_logprobs_agree_on_the_cpu(tiny_model_dir):
    """A real rollout of the tiny 4-bit model (dequantized to fp32 on the CPU backend): the decode
    path's log-probs and the training forward's differ by float noise only."""
    loaded = load_model(str(tiny_model_dir))
    cfg = config(tiny_model_dir, group_size=4, temperature=0.9, loss_type="dapo")
    attach_lora(loaded.model, cfg)
    qs = [Question("q1", "custom", "How do you feel today?"), Question("q2", "custom", "What do you hope for?")]
    done = []
    roll = sample_rollout(loaded.model, loaded.tokenizer, qs, 4, 8, 0.9, step_key(0, 1), max_batch=3,
                          progress=done.append)
    assert sum(done) == 2 * 4 * 8  # the progress reports add up to the token budget, in chunks too
    adv = np.array([1.0, -1.0, 0.5, -0.5, 0.3, -0.3, 1.2, -1.2])
    out = grpo_update(loaded.model, optim.SGD(learning_rate=0.1), build_value_and_grad(loaded.model, cfg), roll, adv,
                      cfg, pad_id=0)
    assert not out["skipped_update"] and 0 <= out["sampler_logp_diff"] < 1e-4
