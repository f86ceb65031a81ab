"""The multiple-choice axes' option log-likelihoods against an independent plain forward pass
(``evals.audit``): every audited axis on 5 items with the tiny model, one item of each axis but
TruthfulQA with the embedded model (the 20-item embedded audit of every axis is
``benchmarks/eval_audit.py``)."""

from __future__ import annotations

import sys

import pytest
from conftest import BENCH_DATA, needs_data

from hmxfeel_mlx.evals.audit import AUDIT_AXES, TOLERANCE, audit_records, chat_rows, plain_mlx_lm, run_audit, summary


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from hmxfeel_mlx.models.loading import load_model

    return load_model(str(tiny_model_dir))


def _assert_all_ok(results: dict, min_records: int, axes=AUDIT_AXES) -> None:
    assert set(results) == set(axes)
    for axis, checks in results.items():
        s = summary(checks)
        assert s["records"] >= min_records, (axis, s)
        assert s["failed"] == 0, (axis, s["worst"])
        assert s["max_error_per_token"] <= TOLERANCE


@needs_data
def test_audit_tiny_model_several_items_per_axis(tiny):
    """5 items per axis (opinion: 5 in both orders; MMLU: letters and cloze; TruthfulQA: 5 MC1 + 5 MC2),
    so batches pack the options of several contexts of different lengths."""
    results = run_audit(tiny, BENCH_DATA, 5)
    _assert_all_ok(results, 5)
    assert summary(results["sycophancy_opinion"])["records"] == 10
    assert {c.id.rsplit("/", 1)[-1] for c in results["mmlu"]} == {"letters", "cloze"}
    # pushback: every label in both turns (the second after [question, label read, pushback])
    per_item: dict[str, list[int]] = {}
    for c in results["sycophancy_pushback"]:
        per_item.setdefault(c.id, []).append(c.option)
    assert len(per_item) == 5
    assert all(len(opts) % 2 == 0 and len(opts) >= 4 and opts == list(range(len(opts))) for opts in per_item.values())


@needs_data
def test_audit_embedded_model_one_item_per_axis(embedded):
    """TruthfulQA (14 options after a 200-token primer) is left to the tiny model and the benchmark
    here, to keep the suite short."""
    axes = [a for a in AUDIT_AXES if a != "truthfulqa"]
    _assert_all_ok(run_audit(embedded, BENCH_DATA, 1, axes=axes), 1, axes)


def test_audit_catches_a_wrong_value_or_token_count(tiny):
    record = {"id": "x", "system": "Be brief.", "prompt": "Name a colour.", "reply_prefix": "Answer:",
              "choices": ["red", "blue"], "option_logprob_sum": [0.0, 0.0], "option_tokens": [1, 1]}
    (ctx, opt, _, _), _ = chat_rows(tiny.tokenizer, record)
    assert ctx.endswith("<|im_start|>assistant\nAnswer:") and "<|im_start|>system\nBe brief." in ctx
    from hmxfeel_mlx.evals.axes.scoring import option_logprobs

    scored = option_logprobs(tiny.model, tiny.tokenizer, [ctx, ctx], record["choices"])
    record.update(option_logprob_sum=[s for s, _ in scored], option_tokens=[n for _, n in scored])
    good = audit_records(tiny.model, tiny.tokenizer, "probe", [record])
    assert all(c.ok for c in good)
    off = dict(record, option_logprob_sum=[record["option_logprob_sum"][0] + 10 * TOLERANCE * scored[0][1],
                                           record["option_logprob_sum"][1]])
    assert [c.ok for c in audit_records(tiny.model, tiny.tokenizer, "probe", [off])] == [False, True]
    miscounted = dict(record, option_tokens=[scored[0][1] + 1, scored[1][1]])
    assert [c.ok for c in audit_records(tiny.model, tiny.tokenizer, "probe", [miscounted])] == [False, True]


def test_plain_mlx_lm_undoes_the_kernel_swap_for_the_pass(tiny):
    from mlx_lm.models import activations, base

    module = sys.modules[type(tiny.model).__module__]
    swapped = module.scaled_dot_product_attention, module.swiglu
    with plain_mlx_lm(tiny.model):
        assert module.scaled_dot_product_attention is base.scaled_dot_product_attention
        assert module.swiglu is activations.swiglu
    assert (module.scaled_dot_product_attention, module.swiglu) == swapped
