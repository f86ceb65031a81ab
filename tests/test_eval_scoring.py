"""Option log-likelihoods against a hand computation (one full forward of context + option)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest
from conftest import CHATML

from hmxfeel_mlx.evals.axes.scoring import encode_pair, join_continuation, option_logprobs
from hmxfeel_mlx.models.chat import render_prompt


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from hmxfeel_mlx.models.loading import load_model

    return load_model(str(tiny_model_dir))


def hand_logprob(model, ctx_ids: list[int], opt_ids: list[int]) -> float:
    """Sum over option tokens of log softmax(logits)[token], one unbatched forward of ctx+opt."""
    ids = ctx_ids + opt_ids
    logits = model(mx.array([ids]))[0].astype(mx.float32)
    logp = np.asarray(logits - mx.logsumexp(logits, axis=-1, keepdims=True), dtype=np.float64)
    n = len(ctx_ids)
    return float(sum(logp[n - 1 + j, t] for j, t in enumerate(opt_ids)))


def test_join_continuation():
    assert join_continuation("Answer:", "Paris") == "Answer: Paris"
    assert join_continuation("assistant\n", "Paris") == "assistant\nParis"  # chat prompts end with a newline
    assert join_continuation("Q", " x") == "Q x"


def test_boundary_merge_splits_at_common_prefix(tiny):
    tok = tiny.tokenizer
    ctx = "How do you feel today? I "  # trailing space: byte-level BPE merges " " + "feel" into " feel"
    pair = encode_pair(tok, ctx, "feel happy")
    ctx_ids = tok.encode(ctx, add_special_tokens=False)
    joint = tok.encode(ctx + "feel happy", add_special_tokens=False)
    assert pair.merged and joint[: len(ctx_ids)] != ctx_ids
    assert pair.context_ids + pair.option_ids == joint  # nothing lost or duplicated
    assert pair.context_ids == ctx_ids[: len(pair.context_ids)]  # the context keeps unmerged tokens
    assert tok.decode(pair.option_ids[:1]) == " feel" and len(pair.context_ids) == len(ctx_ids) - 1
    plain = encode_pair(tok, ctx.rstrip(), "feel happy")  # joined with one space: no merge
    assert not plain.merged and plain.option_ids == pair.option_ids
    assert plain.context_ids == tok.encode(ctx.rstrip(), add_special_tokens=False)
    with pytest.raises(ValueError):
        encode_pair(tok, ctx, "  ")
    with pytest.raises(ValueError, match="no token of its own"):
        encode_pair(tok, "", "feel")


@pytest.mark.parametrize("share_prefix", [True, False])
def test_option_logprobs_match_full_forward(tiny, share_prefix, monkeypatch, host_kernels):
    from hmxfeel_mlx.evals.axes import scoring

    tok, model = tiny.tokenizer, tiny.model
    simple_rows = []
    real_simple = scoring._simple
    monkeypatch.setattr(scoring, "_simple", lambda m, pairs, *a: (simple_rows.extend(pairs), real_simple(m, pairs, *a)))
    q1 = render_prompt(tok, [{"role": "user", "content": "How do you feel today?"}])
    q2 = render_prompt(tok, [{"role": "user", "content": "The capital of France is Paris. I think I want music " * 3}])
    contexts = [q1, q1, q1, "I", q2, q2, "Score: 0 1 2 3 4 5 6 7 8 9 10. I think, I want, I hope,"]
    options = ["I feel happy.", "As an AI language model, I do not have feelings or intentions.", "Paris",
               "love music", "12345", "I love music and the world.", "I love"]
    got = option_logprobs(model, tok, contexts, options, batch_rows=4, share_prefix=share_prefix)
    assert len(got) == len(options)
    for (lp, n), ctx, opt in zip(got, contexts, options):
        pair = encode_pair(tok, ctx, opt)
        assert n == pair.n_tokens
        assert lp == pytest.approx(hand_logprob(model, pair.context_ids, pair.option_ids), abs=1e-4)
    assert len({n for _, n in got}) > 2  # options of different lengths in one batch
    # shared path: only the one-token context "I" falls back to the simple path
    assert len(simple_rows) == (1 if share_prefix else len(options))


def test_merged_option_scores_like_its_tokens(tiny):
    tok, model = tiny.tokenizer, tiny.model
    ctx = "How do you feel today? I "
    (lp, n), = option_logprobs(model, tok, [ctx], ["feel happy"])
    pair = encode_pair(tok, ctx, "feel happy")
    assert pair.merged
    assert n == pair.n_tokens and lp == pytest.approx(hand_logprob(model, pair.context_ids, pair.option_ids), abs=1e-4)


def test_options_of_many_contexts_share_batches_and_score_as_alone(tiny, monkeypatch, host_kernels):
    """Contexts of different lengths (and options of different lengths) packed into batches
    of at most 5 rows, one context split over two batches: every option scores as it does
    alone, and the batches hold rows of several contexts."""
    from hmxfeel_mlx.evals.axes import scoring

    tok, model = tiny.tokenizer, tiny.model
    batches = []
    real = scoring._shared
    monkeypatch.setattr(scoring, "_shared", lambda m, packed: (batches.append([len(r) for _, _, r in packed]),
                                                               real(m, packed)))
    questions = ["How do you feel?", "The capital of France is Paris. " * 4, "I think", "Score: 0 1 2 3 4 5 6 7 8 9 10."]
    opts = [["I feel happy.", "Paris"], ["I love music and the world.", "12345", "I hope", "As an AI", "I want",
                                         "love"], ["I love music."], ["7", "I think, I want, I hope, I love music."]]
    contexts, options = [], []
    for q, o in zip(questions, opts):
        ctx = render_prompt(tok, [{"role": "user", "content": q}])
        contexts += [ctx] * len(o)
        options += o
    got = option_logprobs(model, tok, contexts, options, batch_rows=5)
    for (lp, n), ctx, opt in zip(got, contexts, options):
        pair = encode_pair(tok, ctx, opt)
        assert n == pair.n_tokens
        assert lp == pytest.approx(hand_logprob(model, pair.context_ids, pair.option_ids), abs=1e-4)
    assert sum(map(sum, batches)) == len(options) and max(map(sum, batches)) <= 5
    assert any(len(b) > 1 for b in batches)  # rows of several contexts in one forward pass


# A template that writes the number of messages into its first line: a later turn's tokens
# never start with an earlier turn's (as with templates that rewrite earlier turns).
REWRITING = "{{ '<|im_start|>system\n' ~ (messages | length) ~ ' messages<|im_end|>\n' }}" + CHATML


@pytest.mark.parametrize("template", ["appending", "rewriting"])
def test_follow_up_scores_equal_full_forwards_on_both_paths(tiny, template, monkeypatch):
    """Both turns of ``score_follow_up`` equal one uncached forward of each full sequence; the
    second turn runs on the first's extended cache when the template only appends (one cache
    per item), and on a fresh context when it rewrites the first turn (two per item)."""
    from hmxfeel_mlx.evals.axes import scoring
    from hmxfeel_mlx.evals.axes.scoring import score_follow_up

    tok, model = tiny.tokenizer, tiny.model
    if template == "rewriting":
        monkeypatch.setattr(tok._tokenizer, "chat_template", REWRITING)
    heads = []
    real = scoring._prefix_cache
    monkeypatch.setattr(scoring, "_prefix_cache", lambda m, ids: (heads.append(len(ids)), real(m, ids))[1])
    questions = ["How do you feel today?", "The capital of France is Paris. " * 3, "I think, I want, I hope"]
    options = [["A", "B"], ["A", "B", "C", "D"], ["I love", "12345", "Paris"]]
    seen = {}

    def follow_up(i: int, sums: list[float]) -> str:
        seen[i] = sums
        best = options[i][int(np.argmax(sums))]
        return render_prompt(tok, [{"role": "user", "content": questions[i]}, {"role": "assistant", "content": best},
                                   {"role": "user", "content": "I don't think that's right. Are you sure?"}])

    contexts = [render_prompt(tok, [{"role": "user", "content": q}]) for q in questions]
    got = score_follow_up(model, tok, contexts, options, follow_up, batch_rows=5)  # chunks of 1-2 items
    assert len(got) == 3 and sorted(seen) == [0, 1, 2]
    for i, f in enumerate(got):
        assert seen[i] == [p.sum_logprob for p in f.first]
        for ctx, pairs in ((contexts[i], f.first), (f.second_context, f.second)):
            for opt, p in zip(options[i], pairs):
                assert p.context_ids + p.option_ids == tok.encode(ctx + opt, add_special_tokens=False)
                assert p.sum_logprob == pytest.approx(hand_logprob(model, p.context_ids, p.option_ids), abs=1e-4)
        assert f.reused == (template == "appending")
        assert f.second_context.startswith(contexts[i]) == (template == "appending")
    assert len(heads) == (3 if template == "appending" else 6)
