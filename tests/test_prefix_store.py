"""The judge's shared rubric prefix, computed once per run (``generation.PrefixStore``): later
calls reuse its keys and values and score exactly what they score without it."""

from __future__ import annotations

import numpy as np

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
