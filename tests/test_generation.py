"""Batched generation: padding and shared prefixes change nothing, sampling is seeded and
its log-probs are the ones the loss recomputes."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from hmxfeel_mlx.models.generation import (
    forward_hidden,
    generate_batch,
    left_pad,
    output_logits,
    prefill,
    repetition_loop,
    sample_tokens,
    shared_prefix_len,
)
from hmxfeel_mlx.models.loading import load_model


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir))


def test_left_pad_and_shared_prefix():
    x, pads = left_pad([[1, 2, 3], [4]], pad_id=0)
    assert x.tolist() == [[1, 2, 3], [0, 0, 4]] and pads == [0, 2]
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3]]) == 2  # each row keeps one token of its own
    with pytest.raises(ValueError):
        left_pad([[1], []])


def test_head_on_hidden_states_equals_the_model(tiny):
    x = mx.array([[5, 6, 7, 8]])
    assert mx.allclose(output_logits(tiny.model, forward_hidden(tiny.model, x)), tiny.model(x), atol=1e-5)


@pytest.mark.parametrize("min_shared", [1, 10**6])  # shared-prefix path and plain left-padding path
def test_prefill_matches_each_prompt_alone(tiny, min_shared, host_kernels):
    prompts = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12], [5, 6, 7, 8, 9, 13, 14, 15, 16]]
    logits, _ = prefill(tiny.model, prompts, min_shared=min_shared)
    for i, p in enumerate(prompts):
        alone = tiny.model(mx.array([p]))[0, -1]
        assert mx.allclose(logits[i], alone, atol=1e-4), i


def test_batched_greedy_equals_one_by_one(tiny):
    prompts = [[5, 6, 7, 8, 9], [5, 6, 7, 20], [30, 31]]
    eos = {9999}
    batch = generate_batch(tiny.model, prompts, 10, eos, 0.0)
    for i, p in enumerate(prompts):
        assert generate_batch(tiny.model, [p], 10, eos, 0.0).tokens[0] == batch.tokens[i]
    assert all(len(t) == 10 for t in batch.tokens) and not any(batch.finished)


def test_eos_stops_a_row_and_the_others_continue(tiny):
    prompts = [[5, 6, 7, 8, 9], [5, 6, 7, 20], [30, 31]]
    free = generate_batch(tiny.model, prompts, 8, {9999}, 0.0)
    stop_token = free.tokens[1][2]  # make row 1 stop where this token first appears
    first = free.tokens[1].index(stop_token)
    batch = generate_batch(tiny.model, prompts, 8, {stop_token}, 0.0)
    assert batch.finished[1] and batch.tokens[1] == free.tokens[1][: first + 1]
    for i in (0, 2):  # rows that never emit the stop token are unaffected by row 1 leaving the batch
        if stop_token not in free.tokens[i]:
            assert batch.tokens[i] == free.tokens[i]


def test_sampling_is_seeded_and_logprobs_match_the_model(tiny):
    prompts = [[5, 6, 7, 8]] * 3 + [[5, 6, 30]]
    a = generate_batch(tiny.model, prompts, 6, {9999}, 0.7, key=mx.random.key(1))
    b = generate_batch(tiny.model, prompts, 6, {9999}, 0.7, key=mx.random.key(1))
    c = generate_batch(tiny.model, prompts, 6, {9999}, 0.7, key=mx.random.key(2))
    assert a.tokens == b.tokens and a.tokens != c.tokens
    for p, toks, lps in zip(prompts, a.tokens, a.logprobs):  # recompute each token's tempered log-prob
        seq = mx.array([p + toks])
        logits = tiny.model(seq)[0, len(p) - 1 : -1].astype(mx.float32) / 0.7
        ref = (logits - mx.logsumexp(logits, axis=-1, keepdims=True))[mx.arange(len(toks)), mx.array(toks)]
        np.testing.assert_allclose(np.array(ref), np.array(lps), atol=1e-4)


def test_sample_tokens_follows_the_softmax():
    logits = mx.array([[0.0, 1.0, 2.0, -1.0]] * 4000)
    toks, lps = sample_tokens(logits, 1.0, np.random.default_rng(0))
    p = np.exp([0.0, 1.0, 2.0, -1.0]) / np.exp([0.0, 1.0, 2.0, -1.0]).sum()
    freq = np.bincount(toks, minlength=4) / len(toks)
    assert np.abs(freq - p).max() < 0.03  # 4000 draws: standard error below 0.008
    assert np.allclose(lps, np.log(p)[toks], atol=1e-6)
    greedy, glp = sample_tokens(logits[:2], 0.0, None)
    assert greedy == [2, 2] and np.allclose(glp, np.log(p[2]))


PROMPTS7 = [[5, 6, 7, 8, 9], [5, 6, 7, 20], [30, 31], [40, 41, 42, 43, 44, 45, 46], [5, 6, 7, 8, 11, 12],
            [50], [60, 61, 62]]


def _alone(tiny, prompts, n, eos, stop=None):
    return [generate_batch(tiny.model, [p], n, eos, 0.0, stop=stop).tokens[0] for p in prompts]


def test_continuous_batching_equals_one_by_one(tiny, host_kernels):
    """Seven prompts through a 3-row batch: rows finish at different steps (EOS), waiting
    prompts join the running batch, and every reply is what the prompt gives alone."""
    free = _alone(tiny, PROMPTS7, 12, {9999})
    eos = {r[k] for r in free for k in range(1, len(r)) if r[k] != r[k - 1]}  # tokens some rows switch to late
    alone = _alone(tiny, PROMPTS7, 12, eos)
    assert len({len(t) for t in alone}) > 2
    batch = generate_batch(tiny.model, PROMPTS7, 12, eos, 0.0, max_batch=3)
    assert batch.tokens == alone
    assert batch.finished == [t[-1] in eos for t in alone]


def test_joined_caches_give_each_row_its_own_logits(tiny):
    """A shared-prefix group and a plain group of another width, joined into one cache,
    then decoded one step: every row's logits equal its prompt's alone."""
    a = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12]]
    b = [[30, 31], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50]]
    la, ca = prefill(tiny.model, a, min_shared=1, joinable=True)
    lb, cb = prefill(tiny.model, b, joinable=True)
    for c, extra in zip(ca, cb):
        c.extend(extra)
    step = [3, 4, 5, 6]
    logits = tiny.model(mx.array([[t] for t in step]), cache=ca)[:, -1, :]
    for i, p in enumerate(a + b):
        alone = tiny.model(mx.array([p + [step[i]]]))[0, -1]
        assert mx.allclose(logits[i], alone, atol=1e-4), i
    assert mx.allclose(mx.concatenate([la, lb]), mx.stack([tiny.model(mx.array([p]))[0, -1] for p in a + b]), atol=1e-4)


def test_stop_rule_ends_a_row_where_it_says(tiny):
    free = _alone(tiny, PROMPTS7, 10, {9999})
    stop = lambda toks: len(toks) >= 4 and toks[-1] % 2 == 0  # noqa: E731 (any rule on the tokens so far)
    batch = generate_batch(tiny.model, PROMPTS7, 10, {9999}, 0.0, max_batch=3, stop=stop)
    for i, toks in enumerate(free):
        cut = next((k + 1 for k in range(3, len(toks)) if toks[k] % 2 == 0), None)
        assert batch.tokens[i] == (toks[:cut] if cut else toks), i
        assert batch.stopped[i] == (cut is not None) and not batch.finished[i]


def test_repetition_loop_needs_enough_repeats_of_one_block():
    block = [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22]  # 16 tokens
    intro = list(range(100, 140))
    assert repetition_loop(intro + block * 3)  # 3 repeats, 48 tokens
    assert not repetition_loop(intro + block * 2 + block[:15])  # one token short of the third repeat
    assert not repetition_loop(intro + block * 3 + [99])  # the reply left the loop
    assert repetition_loop(intro + block * 3 + block[:5])  # a loop need not end at its block's end
    assert not repetition_loop([5] * 47) and repetition_loop([5] * 48)  # period 1: 48 tokens at least
    assert not repetition_loop(list(range(1000)))
    big = list(range(200, 264))  # 64 tokens, the longest block
    assert repetition_loop(intro + big * 3) and not repetition_loop(list(range(300, 365)) * 3)  # 65 tokens: too long
    assert not repetition_loop(intro + [1, 2] * 23) and repetition_loop(intro + [1, 2] * 24)  # short blocks: 48 tokens
    assert repetition_loop(intro + block * 3, min_repeats=4) is False


def test_models_without_joinable_caches_decode_in_chunks(tiny, monkeypatch):
    import hmxfeel_mlx.models.generation as G

    alone = _alone(tiny, PROMPTS7, 8, {9999})
    monkeypatch.setattr(G, "joinable_caches", lambda caches: False)
    batch = generate_batch(tiny.model, PROMPTS7, 8, {9999}, 0.0, max_batch=3)
    assert batch.tokens == alone and batch.stopped == [False] * 7


@pytest.mark.parametrize("min_shared", [1, 10**6])
@pytest.mark.parametrize("joinable", [True, False])
def test_chunked_prefill_matches_one_pass(tiny, monkeypatch, min_shared, joinable, host_kernels):
    """Prefill in column chunks of 2 (padded suffixes span several chunks) gives the same
    logits and the same next decoding step as one pass."""
    import hmxfeel_mlx.models.generation as G

    prompts = [[5, 6, 7, 8, 9, 10, 11], [5, 6, 7, 8, 12], [5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 18]]
    whole, c1 = prefill(tiny.model, prompts, min_shared=min_shared, joinable=joinable)
    monkeypatch.setattr(G, "PREFILL_TOKENS", 6)  # 3 rows -> 2 columns per forward call
    chunked, c2 = prefill(tiny.model, prompts, min_shared=min_shared, joinable=joinable)
    assert mx.allclose(whole, chunked, atol=1e-4)
    step = mx.array([[3], [4], [5]])
    assert mx.allclose(tiny.model(step, cache=c1), tiny.model(step, cache=c2), atol=1e-4)
    for i, p in enumerate(prompts):
        assert mx.allclose(chunked[i], tiny.model(mx.array([p]))[0, -1], atol=1e-4), i


def test_fork_copies_rows_and_leaves_the_prefill_as_it_was(tiny_model_dir):
    """Decoding from ``attempts.fork`` gives what decoding from a fresh prefill of the same rows
    gives, and writes nothing into the prefill it was copied from."""
    import numpy as np

    from hmxfeel_mlx.models.attempts import fork, forkable
    from hmxfeel_mlx.models.generation import generate_batch, prefill
    from hmxfeel_mlx.models.loading import load_model

    loaded = load_model(str(tiny_model_dir))
    model = loaded.model
    prompts = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19], [20, 21, 22, 23]]
    logits, cache = prefill(model, prompts)
    assert forkable(cache)
    before = [(np.array(c.keys), np.array(c.values), np.array(c.offset)) for c in cache]
    eos = {-1}
    for rows in ([0, 1, 2, 3], [1, 3], [2]):
        got = generate_batch(model, [prompts[i] for i in rows], 12, eos, start=fork(logits, cache, rows))
        fresh = generate_batch(model, [prompts[i] for i in rows], 12, eos)
        assert got.tokens == fresh.tokens
        for a, b in zip(got.logprobs, fresh.logprobs):
            assert np.allclose(a, b, atol=1e-4)
    for c, (k, v, off) in zip(cache, before):
        assert np.array_equal(np.array(c.keys), k) and np.array_equal(np.array(c.values), v)
        assert np.array_equal(np.array(c.offset), off)
