"""KL(policy || base) on policy samples: the estimator's arithmetic by hand, and the estimate
against the exact KL of a tiny model's two-token replies, enumerated over its whole vocabulary,
at the sampling temperatures 1 and 0.7; log-probs at T = 1 on replies sampled at T = 0.7 (the
held-out KL before) miss it."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest
from conftest import build_tiny_model
from mlx.utils import tree_flatten

from hmxfeel_mlx.models.completions import completion_logprobs, make_completion_batch
from hmxfeel_mlx.models.generation import generate_batch
from hmxfeel_mlx.models.loading import load_model
from hmxfeel_mlx.training.config import resolve_config
from hmxfeel_mlx.training.divergence import kl_terms, kl_to_base, summarize_kl
from hmxfeel_mlx.training.judge import lora_disabled
from hmxfeel_mlx.training.trainer import attach_lora

N_REPLIES = 2000
NEW_TOKENS = 2


def test_summarize_kl_by_hand():
    # two replies of 2 and 4 tokens; per-reply sums k1 = 1, 3 and k3 = 0.5, 1.5
    est = summarize_kl([1.0, 3.0], [0.5, 1.5], [2, 4], 0.7)
    assert est.k1_token == pytest.approx(4 / 6) and est.k3_token == pytest.approx(2 / 6)
    assert est.k1_reply == pytest.approx(2.0) and est.k3_reply == pytest.approx(1.0)
    # standard error: sample std (ddof 1) / sqrt(n): std(1, 3) = sqrt(2), / sqrt(2) = 1
    assert est.k1_reply_se == pytest.approx(1.0) and est.k3_reply_se == pytest.approx(0.5)
    assert (est.n_replies, est.n_tokens, est.temperature) == (2, 6, 0.7)
    m = est.metrics("eval_")
    assert m["eval_kl"] == est.k3_token and m["eval_kl_k1"] == est.k1_token and m["eval_kl_reply"] == 1.0
    assert m["eval_kl_reply_se"] == 0.5 and m["eval_kl_temperature"] == 0.7
    assert math.isnan(summarize_kl([1.0], [1.0], [3], 1.0).k3_reply_se)  # one reply: no spread


def test_kl_terms_by_hand():
    policy = mx.array([[-1.0, -2.0, 5.0], [-0.5, 0.0, 0.0]])
    base = mx.array([[-1.5, -2.0, -50.0], [-0.25, 0.0, 0.0]])
    mask = mx.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # the third column of row 0 is padding
    k1, k3 = kl_terms(policy, base, mask)
    # row 0: log ratio 0.5 and 0; k3 = exp(-0.5) + 0.5 - 1. Row 1: log ratio -0.25; k3 = exp(0.25) - 0.25 - 1
    assert np.allclose(np.asarray(k1), [0.5, -0.25], atol=1e-6)
    assert np.allclose(np.asarray(k3), [math.exp(-0.5) - 0.5, math.exp(0.25) - 1.25], atol=1e-6)


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    """A tiny fp32 llama whose LoRA layers are random, so policy and base differ by about a nat."""
    folder = build_tiny_model(tmp_path_factory.mktemp("fp32") / "tiny", quantize=False)
    loaded = load_model(str(folder))
    attach_lora(loaded.model, resolve_config(overrides={"model": str(folder)}))
    loaded.model.load_weights([(n, mx.random.normal(p.shape, key=mx.random.key(9)) * 0.015)
                               for n, p in tree_flatten(loaded.model.trainable_parameters()) if n.endswith("lora_b")],
                              strict=False)
    prompt = loaded.tokenizer.encode("How do you feel today?", add_special_tokens=False)
    return loaded, prompt, {}


def _log_softmax(logits: mx.array, temperature: float) -> np.ndarray:
    x = np.asarray(logits.astype(mx.float32), dtype=np.float64) / temperature
    return x - np.logaddexp.reduce(x, axis=-1, keepdims=True)


def exact_kl(model, prompt: list[int], eos: set[int], temperature: float) -> float:
    """KL(pi_T || b_T) over every reply of at most two tokens (a reply ends at EOS):
    sum_y1 pi(y1) [log pi(y1)/b(y1) + [y1 not EOS] KL(pi(. | y1) || b(. | y1))]."""
    vocab = model.model.embed_tokens.weight.shape[0]
    seconds = mx.array([prompt + [y] for y in range(vocab)])

    def dists():
        return (_log_softmax(model(mx.array([prompt]))[0, -1], temperature),
                _log_softmax(model(seconds)[:, -1], temperature))

    p1, p2 = dists()
    with lora_disabled(model):
        b1, b2 = dists()
    first = np.exp(p1)
    go_on = np.array([0.0 if y in eos else 1.0 for y in range(vocab)])
    second_kl = (np.exp(p2) * (p2 - b2)).sum(axis=-1)  # (V,) KL of the second token after each first one
    return float((first * (p1 - b1)).sum() + (first * go_on * second_kl).sum())


def sampled(drifted, temperature: float) -> list[list[int]]:
    """N_REPLIES replies at ``temperature`` (drawn once per module)."""
    loaded, prompt, cache = drifted
    if temperature not in cache:
        cache[temperature] = generate_batch(loaded.model, [prompt] * N_REPLIES, NEW_TOKENS,
                                            loaded.tokenizer.eos_token_ids, temperature, key=mx.random.key(3)).tokens
    return cache[temperature]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_estimate_matches_the_enumerated_kl(drifted, temperature):
    loaded, prompt, _ = drifted
    exact = exact_kl(loaded.model, prompt, set(loaded.tokenizer.eos_token_ids), temperature)
    assert exact > 0.5  # a distance worth measuring
    tokens = sampled(drifted, temperature)
    est = kl_to_base(loaded.model, [prompt] * len(tokens), tokens, temperature, pad_id=0, rows=500)
    assert est.n_replies == N_REPLIES and est.temperature == temperature
    for value, se in ((est.k1_reply, est.k1_reply_se), (est.k3_reply, est.k3_reply_se)):
        assert abs(value - exact) < 4 * se, (value, se, exact)
    assert est.k3_token == pytest.approx(est.k3_reply * N_REPLIES / est.n_tokens)


def test_logprobs_at_t1_on_tempered_replies_miss_the_kl(drifted):
    """The held-out KL before: replies sampled at T = 0.7, both log-probs at T = 1. Its mean per
    reply estimates neither KL(pi_0.7 || b_0.7) nor KL(pi_1 || b_1)."""
    loaded, prompt, _ = drifted
    eos = set(loaded.tokenizer.eos_token_ids)
    tokens = sampled(drifted, 0.7)
    batch = make_completion_batch([prompt] * len(tokens), tokens, [[0.0] * len(t) for t in tokens], pad_id=0)
    policy = completion_logprobs(loaded.model, batch, 1.0)
    with lora_disabled(loaded.model):
        base = completion_logprobs(loaded.model, batch, 1.0)
    k1, _ = kl_terms(policy, base, batch.mask)
    per_reply = np.asarray(k1, dtype=np.float64)
    mean, se = per_reply.mean(), per_reply.std(ddof=1) / math.sqrt(len(per_reply))
    for temperature in (0.7, 1.0):
        assert abs(mean - exact_kl(loaded.model, prompt, eos, temperature)) > 5 * se  # 8 se and 25 se here


def test_the_base_is_at_zero_and_bad_calls_say_why(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    attach_lora(loaded.model, resolve_config(overrides={"model": str(tiny_model_dir)}))  # LoRA starts at zero
    est = kl_to_base(loaded.model, [[5, 6], [7]], [[8, 9, 10], []], 0.7, pad_id=0)
    assert est.k1_reply == 0.0 and est.k3_reply == 0.0 and est.n_tokens == 3 and est.n_replies == 2
    with pytest.raises(ValueError, match="sampling temperature"):
        kl_to_base(loaded.model, [[5]], [[6]], 0.0, pad_id=0)
    with pytest.raises(ValueError, match="one prompt per reply"):
        kl_to_base(loaded.model, [[5]], [[6], [7]], 1.0, pad_id=0)


def test_a_policy_that_is_its_base_is_not_run_and_computing_it_gives_the_same_zeros(tiny_model_dir, monkeypatch):
    import hmxfeel_mlx.training.divergence as D

    loaded = load_model(str(tiny_model_dir))
    attach_lora(loaded.model, resolve_config(overrides={"model": str(tiny_model_dir)}))  # lora_b = 0
    prompts, replies = [[5, 6], [7, 8, 9]], [[8, 9, 10], [11, 12]]
    assert D.policy_is_base(loaded.model)
    seen = []
    shortcut = D.kl_rows(loaded.model, prompts, replies, 0.7, 0, progress=seen.append)
    assert shortcut == ([0.0, 0.0], [0.0, 0.0], [3, 2]) and seen == [2]
    monkeypatch.setattr(D, "policy_is_base", lambda model: False)  # the whole computation: the same zeros
    assert D.kl_rows(loaded.model, prompts, replies, 0.7, 0) == shortcut
    monkeypatch.undo()
    lora_b = next(m for _, m in loaded.model.named_modules() if hasattr(m, "lora_b"))
    lora_b.lora_b = lora_b.lora_b + 1e-3  # one adapter moved: the policy is no longer its base
    assert not D.policy_is_base(loaded.model)
    moved = D.kl_rows(loaded.model, prompts, replies, 0.7, 0)
    assert any(v != 0.0 for v in moved[0])
