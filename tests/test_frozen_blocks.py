"""The blocks below the first LoRA block run once for the policy and its base
(``completions.frozen_states``): log-probs, gradients, a whole GRPO update and the KL to
the base equal those of running the whole model for each."""

from __future__ import annotations

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from hmxfeel_mlx.models import completions as C
from hmxfeel_mlx.training import divergence, update
from hmxfeel_mlx.training.config import TrainConfig
from hmxfeel_mlx.training.judge import lora_disabled
from hmxfeel_mlx.training.rollout import Rollout
from hmxfeel_mlx.training.trainer import attach_lora

BASE = dict(hidden_size=32, num_hidden_layers=4, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
            rms_norm_eps=1e-5, vocab_size=50, rope_theta=10000.0, tie_word_embeddings=True, max_position_embeddings=128)


def tiny(model_type: str, lora_layers: int = 2, seed: int = 0):
    from mlx_lm.models import gemma2, llama, qwen3

    module = {"llama": llama, "qwen3": qwen3, "gemma2": gemma2}[model_type]
    extra = {"head_dim": 8} if model_type != "llama" else {}
    if model_type == "gemma2":
        extra.update(query_pre_attn_scalar=8, head_dim=8)
    mx.random.seed(seed)
    model = module.Model(module.ModelArgs.from_dict({**BASE, **extra, "model_type": model_type}))
    attach_lora(model, TrainConfig(lora_layers=lora_layers, seed=seed))
    # lora_b starts at 0 (the policy is its base); make the adapters do something
    rng = np.random.default_rng(seed)
    for _, m in model.named_modules():
        if hasattr(m, "lora_b"):
            m.lora_b = mx.array(rng.normal(0, 0.05, m.lora_b.shape).astype(np.float32))
    mx.eval(model.parameters())
    return model


def batch(pad_id: int = 0) -> C.CompletionBatch:
    prompts = [[5, 6, 7, 8, 9], [11, 12], [5, 6, 7, 8, 9]]
    tokens = [[20, 21, 22], [23, 24, 25, 26, 27], [28]]
    return C.make_completion_batch(prompts, tokens, [[-1.0] * len(t) for t in tokens], pad_id)


@pytest.mark.parametrize("model_type", ["llama", "qwen3"])
def test_policy_and_base_logprobs_equal_the_whole_forward(model_type):
    model, b = tiny(model_type), batch()
    frozen = C.frozen_states(model, b)
    assert frozen is not None and frozen.start == 2 and C.lora_start(model) == 2
    whole = C.completion_logprobs(model, b, 0.7)
    shared = C.completion_logprobs(model, b, 0.7, frozen=frozen)
    np.testing.assert_allclose(np.asarray(shared), np.asarray(whole), atol=1e-6)
    with lora_disabled(model):
        base_whole = C.completion_logprobs(model, b, 0.7)
        base_shared = C.completion_logprobs(model, b, 0.7, frozen=frozen)
    np.testing.assert_allclose(np.asarray(base_shared), np.asarray(base_whole), atol=1e-6)
    assert float(mx.abs(whole - base_whole).max()) > 1e-3  # the adapters matter, so the check has teeth


def test_gradients_equal_the_whole_forward():
    model, b = tiny("llama"), batch()
    config = TrainConfig(beta=0.04, temperature=0.7, max_new_tokens=5)
    vg = update.build_value_and_grad(model, config)
    adv = mx.array([1.0, -0.5, 0.25])
    frozen = C.frozen_states(model, b)
    with lora_disabled(model):
        ref = mx.stop_gradient(C.completion_logprobs(model, b, 0.7))
    (loss_a, _), grads_a = vg(model, b, b.mask, adv, ref, 1.0)
    (loss_b, _), grads_b = vg(model, b, b.mask, adv, ref, 1.0, frozen)
    assert abs(float(loss_a) - float(loss_b)) < 1e-6
    flat_a, flat_b = dict(tree_flatten(grads_a)), dict(tree_flatten(grads_b))
    assert flat_a.keys() == flat_b.keys() and len(flat_a) == 2 * 7 * 2  # lora_a, lora_b of 7 linears x 2 blocks
    for k in flat_a:
        np.testing.assert_allclose(np.asarray(flat_b[k]), np.asarray(flat_a[k]), atol=1e-6, rtol=1e-5)
    assert max(float(mx.abs(g).max()) for g in flat_a.values()) > 1e-4


def test_a_grpo_update_and_the_kl_equal_the_whole_forward(monkeypatch):
    config = TrainConfig(beta=0.04, temperature=0.7, max_new_tokens=5, update_batch_size=2, loss_type="dapo",
                         learning_rate=1e-2)
    b = batch()
    rollout = Rollout(questions=["q"] * 3, prompt_ids=[[5, 6, 7, 8, 9], [11, 12], [5, 6, 7, 8, 9]],
                      tokens=[[20, 21, 22], [23, 24, 25, 26, 27], [28]], logprobs=[[-1.0] * 3, [-1.0] * 5, [-1.0]],
                      finished=[True, False, True], texts=["a", "b", "c"])
    adv = np.array([1.0, -0.5, 0.25])

    def run(share: bool):
        if not share:
            monkeypatch.setattr(update, "frozen_states", lambda model, batch: None)
            monkeypatch.setattr(divergence, "frozen_states", lambda model, batch: None)
        model = tiny("llama")
        opt = optim.AdamW(learning_rate=config.learning_rate)
        metrics = update.grpo_update(model, opt, update.build_value_and_grad(model, config), rollout, adv, config, 0)
        kl = divergence.kl_rows(model, rollout.prompt_ids, rollout.tokens, 0.7, 0)
        monkeypatch.undo()
        return metrics, dict(tree_flatten(model.trainable_parameters())), kl

    m_whole, p_whole, kl_whole = run(False)
    m_shared, p_shared, kl_shared = run(True)
    for k in ("loss", "kl", "grad_norm"):
        assert m_shared[k] == pytest.approx(m_whole[k], rel=1e-5, abs=1e-7), k
    for k in p_whole:
        np.testing.assert_allclose(np.asarray(p_shared[k]), np.asarray(p_whole[k]), atol=1e-6)
    np.testing.assert_allclose(kl_shared[0], kl_whole[0], atol=1e-5)
    np.testing.assert_allclose(kl_shared[1], kl_whole[1], atol=1e-5)
    assert m_whole["kl"] > 0 and kl_whole[0][1] != 0
    assert b.mask.shape == (3, 5)


def test_no_shared_blocks_when_there_is_nothing_to_share():
    b = batch()
    assert C.frozen_states(tiny("llama", lora_layers=-1), b) is None  # LoRA in every block
    from mlx_lm.models import llama

    plain = llama.Model(llama.ModelArgs.from_dict({**BASE, "model_type": "llama"}))
    assert C.lora_start(plain) == 4 and C.frozen_states(plain, b) is None
    assert C.frozen_states(tiny("gemma2"), b) is None  # scaled embeddings: the whole model runs
