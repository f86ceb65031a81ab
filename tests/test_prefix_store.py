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
CALLS = [  # three steps: two questions, one question twice (a longer shared prefix), two others
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
                assert [v.probs for v in stored] == [v.probs for v in plain]  # bit for bit
                assert [v.mass for v in stored] == [v.mass for v in plain]
            else:
                assert [v.text for v in stored] == [v.text for v in plain]
        # the first call stores the rubric; the second shares more (one question twice), a prefix not
        # stored, so it is computed whole; the third shares exactly the rubric again
        assert store.hits == 1


def test_a_stored_prefix_is_reused_only_when_exact_and_never_changed(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    model = loaded.model
    store = PrefixStore(capacity=2)
    shared = list(range(5, 30))
    a, b = [shared + [40, 41], shared + [42]], [shared + [50, 51, 52], shared + [50, 51, 53]]
    prefill(model, a, prefixes=store)
    layers = store.get(shared)
    assert layers is not None and store.get(shared[:-1]) is None
    before = [np.asarray(k).copy() for k, _ in layers]
    logits, _ = prefill(model, b, prefixes=store)  # shares shared + [50, 51]: not stored, so computed whole
    ref, _ = prefill(model, b)
    assert np.array_equal(np.asarray(logits), np.asarray(ref)) and store.hits == 0
    again, _ = prefill(model, a, prefixes=store)  # exactly a stored prefix: reused, bit for bit
    assert np.array_equal(np.asarray(again), np.asarray(prefill(model, a)[0])) and store.hits == 1
    assert all(np.array_equal(np.asarray(k), k0) for (k, _), k0 in zip(layers, before))
    prefill(model, [[7] * 20 + [1], [7] * 20 + [2]], prefixes=store)  # a third prefix: the oldest is dropped
    assert store.get(shared + [50, 51]) is None and len(store._entries) == 2
    gen = generate_batch(model, a, 3, eos_ids=[-1], prefixes=store)
    assert gen.tokens == generate_batch(model, a, 3, eos_ids=[-1]).tokens


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
    assert stores[-1].hits >= 2  # held-out evaluations after the first reuse the rubric prefix
    assert len(with_store) == len(without) == 3
    assert with_store == without  # bit for bit: a stored prefix is exactly what would be computed
