"""Gemma 2's attention (mlx-lm) groups its query heads as (B, Hkv, rep, L, T) before applying the
mask: a batch's (B, 1, L, T) padding mask must gain a group axis, or a batch of Hkv rows gets
row b's padding on kv head b and other batch sizes fail to broadcast. Every batched path on
such a model must give each row what it computes alone."""

from __future__ import annotations

import numpy as np
import pytest
from test_frozen_blocks import tiny

from hmxfeel_mlx.evals.axes import scoring
from hmxfeel_mlx.models import completions as C
from hmxfeel_mlx.models import generation as G

PROMPTS = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
TOKENS = [[20, 21, 22], [23, 24, 25, 26, 27], [28, 29]]


def test_gemma2_with_grouped_heads_is_detected():
    gemma = tiny("gemma2")
    assert gemma.layers[0].self_attn.repeats == 2 and G.grouped_mask(gemma)
    assert not G.grouped_mask(tiny("llama")) and not G.grouped_mask(tiny("qwen3"))


@pytest.mark.parametrize("rows", [2, 3])  # 2 = Hkv: the mask broadcast silently onto the kv heads
def test_batched_logprobs_equal_each_row_alone(rows):
    model = tiny("gemma2")
    prompts, tokens = PROMPTS[:rows], TOKENS[:rows]
    lps = [[0.0] * len(t) for t in tokens]
    batch = C.make_completion_batch(prompts, tokens, lps, 0)
    got = np.asarray(C.completion_logprobs(model, batch, 0.7))
    for i, (p, t) in enumerate(zip(prompts, tokens)):
        alone = C.make_completion_batch([p], [t], [[0.0] * len(t)], 0)
        np.testing.assert_allclose(got[i, : len(t)], np.asarray(C.completion_logprobs(model, alone, 0.7))[0], atol=1e-5)


@pytest.mark.parametrize("rows", [2, 3])
def test_batched_greedy_generation_equals_each_row_alone(rows):
    model = tiny("gemma2")
    prompts = PROMPTS[:rows]
    gen = G.generate_batch(model, prompts, 6, set(), 0.0)
    for p, toks, lps in zip(prompts, gen.tokens, gen.logprobs):
        alone = G.generate_batch(model, [p], 6, set(), 0.0)
        assert toks == alone.tokens[0]
        np.testing.assert_allclose(lps, alone.logprobs[0], atol=1e-5)


def test_options_scored_together_equal_each_option_alone():
    model = tiny("gemma2")
    rows = [([5, 6, 7, 8, 9, 10, 11], [20, 21]), ([5, 6, 7, 8, 9, 10, 11], [22]),
            ([12, 13, 14, 15, 16, 17], [23, 24, 25]), ([12, 13, 14, 15, 16, 17], [26])]  # two contexts, joined
    pairs = [scoring.ScoredPair(c, o, merged=False) for c, o in rows]
    scoring.score_pairs(model, pairs, 0)
    for (c, o), p in zip(rows, pairs):
        alone = C.make_completion_batch([c], [o], [[0.0] * len(o)], 0)
        assert p.sum_logprob == pytest.approx(float(C.completion_logprobs(model, alone, 1.0).sum()), abs=1e-4)
    assert len({round(p.sum_logprob, 3) for p in pairs}) == 4
