"""The judge's shared rubric prefix, computed once per run (``generation.PrefixStore``): later
calls reuse its keys and values and score exactly what they score without it."""

from __future__ import annotations

import numpy as np
import pytest

from hmxfeel_mlx.models.generation import PrefixStore, generate_batch, prefill
from hmxfeel_mlx.models.loading import load_model
from hmxfeel_mlx.training.judge import score_replies
from hmxfeel_mlx.training.prompts import JudgeTemplate

RUBRIC = JudgeTemplate("forward", "Rate how human the reply sounds, 0 to 10. A reply that speaks of its "
                                  "own feelings scores high; a reply that denies having any scores low.\n"
                                  "Question: {question}\nReply: {reply}\nScore 0-10:")
CALLS = [  # three steps: two questions, one question (a longer shared prefix), two others
    [("How do you feel?", "I feel happy."), ("What is 2+2?", "4"), ("How do you feel?", "Fine.")],
    [("Why?", "Because I care."), ("Why?", "No reason.")],
    [("What scares you?", "Nothing, I am a program."), ("Do you dream?", "Sometimes I imagine.")],
]


def test_scores_with_the_store_equal_scores_without(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    model, tok = loaded.model, loaded.tokenizer
    for mode in ("logprob", "text"):
        store = PrefixStore()
        for pairs in CALLS:
            plain = score_replies(model, tok, RUBRIC, pairs, mode=mode, max_verdict_tokens=4)
            stored = score_replies(model, tok, RUBRIC, pairs, mode=mode, max_verdict_tokens=4, prefixes=store)
            if mode == "logprob":
                np.testing.assert_allclose([v.probs for v in stored], [v.probs for v in plain], atol=1e-6)
                np.testing.assert_allclose([v.mass for v in stored], [v.mass for v in plain], atol=1e-6)
            else:
                assert [v.text for v in stored] == [v.text for v in plain]
        assert store.hits == len(CALLS) - 1  # the first call fills it; every later one reuses the rubric


def test_a_stored_prefix_is_extended_and_never_changed(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    model = loaded.model
    store = PrefixStore(capacity=2)
    shared = list(range(5, 30))
    a, b = [shared + [40, 41], shared + [42]], [shared + [50, 51, 52], shared + [50, 51, 53]]
    prefill(model, a, prefixes=store)
    n, layers = store.longest(shared + [50, 51])
    assert n == len(shared) and layers is not None
    before = [np.asarray(k).copy() for k, _ in layers]
    logits, _ = prefill(model, b, prefixes=store)  # reuses `shared`, fills [50, 51] on top, stores the longer one
    ref, _ = prefill(model, b)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref), atol=1e-5)
    assert store.longest(shared + [50, 51, 99])[0] == len(shared) + 2 and store.hits == 1
    assert all(np.array_equal(np.asarray(k), k0) for (k, _), k0 in zip(layers, before))
    prefill(model, [[7] * 20 + [1], [7] * 20 + [2]], prefixes=store)  # a third prefix: the oldest is dropped
    assert store.longest(shared)[0] == 0 and len(store._entries) == 2
    gen = generate_batch(model, b, 3, eos_ids=[-1], prefixes=store)
    assert gen.tokens == generate_batch(model, b, 3, eos_ids=[-1]).tokens


def test_a_run_reuses_the_rubric_prefix_and_trains_what_it_trains_without(tiny_model_dir, tmp_path, monkeypatch):
    import json

    from hmxfeel_mlx.training import trainer
    from hmxfeel_mlx.training.config import resolve_config

    stores = []

    class Counting(PrefixStore):
        def __init__(self, capacity: int = 4):
            super().__init__(capacity)
            stores.append(self)

    def run(name: str, capacity: int) -> list[dict]:
        monkeypatch.setattr(trainer, "PrefixStore", lambda: Counting(capacity))
        cfg = resolve_config(overrides=dict(model=str(tiny_model_dir), steps=2, eval_every=1, group_size=2,
                                            prompts_per_step=2, max_new_tokens=4, judge_mode="logprob",
                                            judge_template="fewshot", eval_samples=1, seed=1,
                                            calibration_set="tests/calibration_small.jsonl"))
        trainer.train(cfg, tmp_path / name)
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        timing = lambda k: "seconds" in k or k.endswith("_s") or k.startswith("peak_memory")  # noqa: E731
        return [{k: v for k, v in json.loads(line).items() if not timing(k)} for line in lines]

    without = run("without", 0)  # stores nothing: every prefill computes its prefix
    assert stores[-1].hits == 0
    with_store = run("with", 4)
    assert stores[-1].hits >= 4  # 2 training judge passes and 3 held-out ones after the first
    assert len(with_store) == len(without) == 3
    # A stored prefix extended in a later call computes its new columns in a pass of their own:
    # scores agree to float32 rounding (~1e-7 here), not bit for bit. The GRPO loss at ratio 1 is
    # exactly 0 in exact arithmetic, so its recorded value is rounding noise on both sides; so are
    # the near-zero k1 sums of the KL (standard error ~6e-3 here), hence 1e-4 absolute.
    for a, b in zip(with_store, without):
        assert a.keys() == b.keys()
        for k in a:
            if k == "loss":
                assert abs(a[k] - b[k]) < 1e-3
            elif isinstance(a[k], float):
                assert a[k] == pytest.approx(b[k], rel=1e-5, abs=1e-4), k
            else:
                assert a[k] == b[k], k
        assert a.get("score_mean") is None or abs(a["score_mean"] - b["score_mean"]) < 1e-5
