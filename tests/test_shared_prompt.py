"""Rows that continue one prompt run it once (``make_completion_batch(share_prompt=True)``):
their log-probs, gradients, a GRPO update and the KL to the base equal those of running every
row whole, on llama and Qwen3 bodies, with and without the frozen lower blocks."""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten
from test_frozen_blocks import tiny

from hmxfeel_mlx.models import completions as C
from hmxfeel_mlx.training import divergence, update
from hmxfeel_mlx.training.config import TrainConfig
from hmxfeel_mlx.training.judge import lora_disabled
from hmxfeel_mlx.training.rollout import Rollout

PROMPT = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]  # 11 tokens: 10 shared, the last one in each row
TOKENS = [[20, 21, 22], [23, 24, 25, 26, 27], [28], [29, 30, 31, 32]]


def batches(share: bool = True, prompts=None):
    prompts = prompts or [PROMPT] * len(TOKENS)
    lps = [[-1.0] * len(t) for t in TOKENS]
    return C.make_completion_batch(prompts, TOKENS, lps, 0, share_prompt=share), C.make_completion_batch(prompts, TOKENS, lps, 0)


def test_only_rows_of_one_long_enough_prompt_share_it():
    shared, whole = batches()
    assert shared.shared == len(PROMPT) - 1 and whole.shared == 0
    assert batches(prompts=[PROMPT, PROMPT, PROMPT[:-1] + [99], PROMPT])[0].shared == 0  # one prompt differs
    short = [[5, 6, 7, 8]] * len(TOKENS)
    assert batches(prompts=short)[0].shared == 0  # under SHARE_MIN_TOKENS
    one = C.make_completion_batch([PROMPT], [[1, 2]], [[0.0, 0.0]], 0, share_prompt=True)
    assert one.shared == 0  # a single row has nothing to share with


@pytest.mark.parametrize("model_type", ["llama", "qwen3"])
@pytest.mark.parametrize("use_frozen", [False, True])
def test_logprobs_equal_the_unshared_forward(model_type, use_frozen):
    model = tiny(model_type)
    shared, whole = batches()
    frozen = C.frozen_states(model, shared) if use_frozen else None
    if use_frozen:
        assert frozen.prefix.shape[:2] == (1, len(PROMPT) - 1) and frozen.hidden.shape[:2] == (4, 5)
    expected = C.completion_logprobs(model, whole, 0.7)
    got = C.completion_logprobs(model, shared, 0.7, frozen=frozen)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), atol=1e-5)
    assert float(mx.abs(got).min()) == 0.0 and float(mx.abs(got).max()) > 1.0  # zeros off the mask, real values on
    with lora_disabled(model):
        base = C.completion_logprobs(model, shared, 0.7, frozen=frozen)
        np.testing.assert_allclose(np.asarray(base), np.asarray(C.completion_logprobs(model, whole, 0.7)), atol=1e-5)
    assert float(mx.abs(base - got).max()) > 1e-3  # the adapters matter, so the check has teeth


def test_a_body_that_is_not_plain_runs_every_row_whole(monkeypatch):
    model = tiny("llama", lora_layers=-1)
    monkeypatch.setattr(C, "_plain_body", lambda model: False)  # as for Gemma's scaled embeddings
    monkeypatch.setattr(C, "_shared_blocks", None)  # never reached
    shared, whole = batches()
    np.testing.assert_allclose(np.asarray(C.completion_logprobs(model, shared, 1.0)),
                               np.asarray(C.completion_logprobs(model, whole, 1.0)), atol=1e-6)


@pytest.mark.parametrize("use_frozen", [False, True])
def test_gradients_reach_the_shared_prompt(use_frozen):
    model = tiny("llama", lora_layers=-1 if not use_frozen else 2)
    config = TrainConfig(beta=0.04, temperature=0.7, max_new_tokens=5)
    vg = update.build_value_and_grad(model, config)
    adv = mx.array([1.0, -0.5, 0.25, -0.75])
    shared, whole = batches()
    with lora_disabled(model):
        ref = mx.stop_gradient(C.completion_logprobs(model, whole, 0.7))
    (loss_a, _), grads_a = vg(model, whole, whole.mask, adv, ref, 1.0)
    frozen = C.frozen_states(model, shared) if use_frozen else None
    (loss_b, _), grads_b = vg(model, shared, shared.mask, adv, ref, 1.0, frozen)
    assert float(loss_b) == pytest.approx(float(loss_a), abs=1e-6)
    flat_a, flat_b = dict(tree_flatten(grads_a)), dict(tree_flatten(grads_b))
    assert flat_a.keys() == flat_b.keys()
    for k in flat_a:
        scale = float(mx.abs(flat_a[k]).max())
        np.testing.assert_allclose(np.asarray(flat_b[k]), np.asarray(flat_a[k]), atol=2e-5 * scale)
    # (float32 rounding: on this model the unshared gradient itself is ~1e-5 x its largest entry from a
    # float64 one, and the shared one is closer to float64 than that)
    # the prompt's keys and values carry gradient: the first block's k_proj adapter has one
    first_k = [v for k, v in flat_b.items() if "k_proj.lora_a" in k][0]
    assert float(mx.abs(first_k).max()) > 1e-5


def test_an_update_and_the_kl_of_groups_equal_the_unshared_ones(monkeypatch):
    config = TrainConfig(beta=0.04, temperature=0.7, max_new_tokens=5, update_batch_size=2, loss_type="dapo",
                         learning_rate=1e-2)
    other = [40, 41, 42, 43, 44, 45, 46, 47, 48, 49]
    prompts = [PROMPT, PROMPT, other, other]  # two groups of two, one micro-batch each
    rollout = Rollout(questions=["q"] * 4, prompt_ids=prompts, tokens=TOKENS,
                      logprobs=[[-1.0] * len(t) for t in TOKENS], finished=[True, False, True, True],
                      texts=list("abcd"))
    adv = np.array([1.0, -0.5, 0.25, -1.0])
    seen = []

    def run(share: bool):
        original = C.make_completion_batch

        def make(*args, share_prompt=False, **kw):
            batch = original(*args, share_prompt=share and share_prompt, **kw)
            seen.append(batch.shared)
            return batch

        monkeypatch.setattr(update, "make_completion_batch", make)
        monkeypatch.setattr(divergence, "make_completion_batch", make)
        model = tiny("llama")
        opt = optim.SGD(learning_rate=config.learning_rate)  # linear in the gradient (Adam's first step is its sign)
        metrics = update.grpo_update(model, opt, update.build_value_and_grad(model, config), rollout, adv, config, 0)
        kl = divergence.kl_rows(model, prompts, TOKENS, 0.7, 0)
        monkeypatch.undo()
        return metrics, dict(tree_flatten(model.trainable_parameters())), kl

    m_whole, p_whole, kl_whole = run(False)
    assert set(seen) == {0}
    seen.clear()
    m_shared, p_shared, kl_shared = run(True)
    assert seen == [10, 9, 10, 9]  # each micro-batch and each KL pass shared its group's prompt
    for k in ("loss", "kl", "grad_norm"):
        assert m_shared[k] == pytest.approx(m_whole[k], rel=1e-5, abs=1e-7), k
    for k in p_whole:
        np.testing.assert_allclose(np.asarray(p_shared[k]), np.asarray(p_whole[k]), atol=2e-6)
    np.testing.assert_allclose(kl_shared[0], kl_whole[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(kl_shared[1], kl_whole[1], rtol=1e-5, atol=1e-5)
    assert m_whole["kl"] > 0 and min(abs(x) for x in kl_whole[0]) > 0


def test_kl_passes_follow_the_groups():
    prompts = [[1] * 9] * 3 + [[2] * 9] * 5 + [[3] * 9]
    assert divergence.kl_passes(prompts, [[1]] * 9, rows=4) == [[0, 1, 2], [3, 4, 5, 6], [7, 8]]  # lone rows pooled
    assert divergence.kl_passes(prompts, [[1], [], [1], [1], [1], [1], [1], [1], [1]], rows=8) == [
        [0, 2], [3, 4, 5, 6, 7], [8]]  # a reply without a token is not run
    distinct = [[k] * 9 for k in range(6)]  # one reply per prompt (the drift questions): full passes still
    assert divergence.kl_passes(distinct, [[1]] * 6, rows=4) == [[0, 1, 2, 3], [4, 5]]
