"""The drift axis: zero for a base model, positive for a moved LoRA, metrics equal to their
records' means; and the per-reply KL rows it uses keep the replies' order."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest
from conftest import BENCH_DATA, needs_data
from mlx.utils import tree_flatten

from hmxfeel_mlx.evals.axes.core import EvalContext


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training.config import resolve_config

    loaded = load_model(str(tiny_model_dir))
    config = resolve_config(overrides=dict(model=str(tiny_model_dir), max_new_tokens=6, temperature=0.7))
    return loaded, config


def items(limit=4):
    from hmxfeel_mlx.evals.axes.drift import DRIFT

    return DRIFT.load(BENCH_DATA, limit, 0, None)


def run(loaded, config, its):
    from hmxfeel_mlx.evals.axes.drift import DRIFT

    return DRIFT.run(EvalContext(loaded.model, loaded.tokenizer, loaded, seed=0, config=config), its)


@needs_data
def test_items_are_general_prompts_and_reference_answers_fixed_by_the_seed():
    its = items(6)
    kinds = [it.meta["kind"] for it in its]
    assert kinds == ["general"] * 6 + ["reference"] * 6
    assert sum("/truthfulqa/" in it.id for it in its[:6]) == 3 and sum("/mmlu/" in it.id for it in its[:6]) == 3
    refs = its[6:]
    assert {it.meta["source"] for it in refs} == {"gsm8k", "truthfulqa"} and all(it.reference for it in refs)
    assert any("####" in it.reference for it in refs)  # GSM8K's reference solution, answer line included
    assert [it.id for it in items(6)] == [it.id for it in its]


@needs_data
def test_a_base_model_has_zero_drift(tiny):
    loaded, config = tiny
    its = items()
    res = run(loaded, config, its)  # no adapter: 0 by definition, nothing sampled
    m = res.metrics
    assert m["kl_general_token"] == 0.0 and m["kl_general_reply"] == 0.0 and m["ref_loglik_delta"] == 0.0
    assert m["n_general"] == 4 and m["n_reference"] == 4 and [r["id"] for r in res.records] == [it.id for it in its]
    assert "nothing sampled" in res.settings["base_model"]


@needs_data
def test_an_untrained_adapter_measures_exactly_zero_when_computed(tiny_model_dir, tiny):
    """A freshly attached LoRA (lora_b = 0) is its base: the sampling and reference log-likelihoods run, and
    the KL, known to be exactly 0 (``divergence.policy_is_base``, tested there against computing it), is 0."""
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training.trainer import attach_lora

    loaded = load_model(str(tiny_model_dir))
    _, config = tiny
    attach_lora(loaded.model, config)
    res = run(loaded, config, items())
    assert "base_model" not in res.settings and all(r.get("output") is not None for r in res.records
                                                       if r["kind"] == "general")
    assert res.metrics["kl_general_reply"] == 0.0 and res.metrics["ref_loglik_delta"] == 0.0


@needs_data
def test_a_moved_lora_drifts_and_every_metric_is_its_records_mean(tiny, tiny_model_dir):
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training.trainer import attach_lora

    loaded = load_model(str(tiny_model_dir))
    _, config = tiny
    attach_lora(loaded.model, config)
    # move every lora_b away from zero (a trained adapter): the policy is no longer its base
    moved = [(k, mx.random.normal(v.shape, key=mx.random.key(i)) * 0.5)
             for i, (k, v) in enumerate(tree_flatten(loaded.model.trainable_parameters())) if k.endswith("lora_b")]
    loaded.model.load_weights(moved, strict=False)
    res = run(loaded, config, items())
    m, recs = res.metrics, res.records
    assert m["kl_general_reply"] > 0 and m["kl_general_token"] > 0 and m["ref_loglik_delta"] != 0
    gen = [r for r in recs if r["kind"] == "general"]
    assert m["kl_general_reply"] == pytest.approx(np.mean([r["kl_reply"] for r in gen]))
    assert m["kl_general_token"] == pytest.approx(sum(r["kl_reply"] for r in gen) / sum(r["tokens"] for r in gen))
    ref = [r for r in recs if r["kind"] == "reference"]
    for r in ref:
        assert r["ref_delta"] == pytest.approx((r["policy_logprob"] - r["base_logprob"]) / r["ref_tokens"])
    assert m["ref_loglik_delta"] == pytest.approx(np.mean([r["ref_delta"] for r in ref]))
    for source in ("gsm8k", "truthfulqa"):
        vals = [r[f"ref_delta_{source}"] for r in ref if r[f"ref_delta_{source}"] is not None]
        assert len(vals) == 2 and m[f"ref_loglik_delta_{source}"] == pytest.approx(np.mean(vals))


def test_kl_rows_keep_the_replies_order_and_an_empty_reply_adds_zero(tiny, tiny_model_dir):
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training.divergence import kl_rows, kl_to_base
    from hmxfeel_mlx.training.trainer import attach_lora

    loaded = load_model(str(tiny_model_dir))
    _, config = tiny
    attach_lora(loaded.model, config)
    loaded.model.load_weights([(k, mx.ones(v.shape) * 0.3) for k, v in tree_flatten(loaded.model.trainable_parameters())
                               if k.endswith("lora_b")], strict=False)
    prompts = [[5, 6, 7], [8, 9], [10, 11, 12], [13]]
    tokens = [[20, 21, 22], [], [23, 24], [25]]
    k1, k3, n = kl_rows(loaded.model, prompts, tokens, 0.7, 0, rows=3)
    assert n == [3, 0, 2, 1] and k1[1] == 0.0 and k3[1] == 0.0 and all(v > 0 for v in (k3[0], k3[2], k3[3]))
    alone = [kl_rows(loaded.model, [p], [t], 0.7, 0)[1][0] for p, t in zip(prompts, tokens) if t]
    assert [k3[0], k3[2], k3[3]] == pytest.approx(alone, rel=1e-5)
    est = kl_to_base(loaded.model, prompts, tokens, 0.7, 0, rows=3)
    assert est.k3_reply == pytest.approx(np.mean(k3)) and est.k3_token == pytest.approx(sum(k3) / 6)
    assert math.isfinite(est.k3_reply_se)
