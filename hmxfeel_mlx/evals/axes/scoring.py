"""Option log-likelihoods for multiple-choice axes: log p(option | context).

An option is scored as the continuation of its context *text*. Joining: when the
context ends with whitespace (a chat prompt ends with "assistant\\n") or the option
starts with it, the two are concatenated as they are; otherwise one space is put
in front of the option ("Answer:" + " Paris").

Tokenisation boundary: the context and the joined text are tokenised separately
(``add_special_tokens=False``, as rollouts encode rendered chat prompts). Usually
the joined tokens start with the context's tokens and the option is the rest. When
the tokenizer merges across the boundary ("is " + "Paris" -> "is", " Paris"), the
joined tokens are split at their longest common prefix with the context's tokens:
the context keeps its unmerged tokens and the option's first token carries the
merged characters. (Splitting at the context's token count instead can leave the
option empty or cut a token in two.) ``ScoredPair.merged`` records when it happened.

Two computing paths give the same numbers (tested against a full forward):
- shared prefix (default): each context is computed once, batch 1, and the options run
  on its KV cache (``generation``'s ``SharedPrefixCache``), so the context is not
  recomputed per option; the options of several contexts (taken in order of context
  length) share one batch of up to ``batch_rows`` rows, their contexts' caches joined;
- simple: ``trainer.make_update_batch`` + ``completion_logprobs``, one row per option
  (left-padded contexts), used for models whose caches are not plain ``KVCache``.

Two turns (``score_follow_up``, the pushback axis): options scored after a context, then
after a second context built from the first turn's scores (the conversation continued);
the second runs on the first's cache, extended by its new tokens, whenever its tokens start
with the first's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import mlx.core as mx
import numpy as np

from ...models.cpu_kernels import inference


@dataclass
class ScoredPair:
    """One (context, option) row: its token ids and log-likelihood."""

    context_ids: list[int]
    option_ids: list[int]
    merged: bool  # the tokenizer merged characters across the context/option boundary
    sum_logprob: float = float("nan")

    @property
    def n_tokens(self) -> int:
        return len(self.option_ids)


def join_continuation(context: str, option: str) -> str:
    """``context + option`` with one space between them unless either side brings whitespace."""
    if not context or context[-1].isspace() or option[:1].isspace():
        return context + option
    return context + " " + option


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def encode_pair(tokenizer, context: str, option: str, context_ids: list[int] | None = None) -> ScoredPair:
    """Token ids of ``context`` and of ``option`` as its continuation (see the module doc)."""
    if not option.strip():
        raise ValueError("an option needs non-whitespace text")
    ctx = _encode(tokenizer, context) if context_ids is None else context_ids
    joint = _encode(tokenizer, join_continuation(context, option))
    k = 0
    limit = min(len(ctx), len(joint))
    while k < limit and ctx[k] == joint[k]:
        k += 1
    if k == len(joint):  # cannot happen for a non-empty option, but never score zero tokens
        raise ValueError(f"option {option!r} adds no tokens to its context")
    if k == 0:
        raise ValueError(f"context {context!r} has no token of its own before option {option!r}")
    return ScoredPair(joint[:k], joint[k:], merged=k < len(ctx))


def encode_pairs(tokenizer, contexts: Sequence[str], options: Sequence[str]) -> list[ScoredPair]:
    """``encode_pair`` for each row; a context repeated by consecutive rows is tokenised once."""
    if len(contexts) != len(options):
        raise ValueError(f"{len(contexts)} contexts but {len(options)} options")
    out, last, last_ids = [], None, None
    for ctx, opt in zip(contexts, options):
        if ctx != last:
            last, last_ids = ctx, _encode(tokenizer, ctx)
        out.append(encode_pair(tokenizer, ctx, opt, last_ids))
    return out


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(tokenizer.eos_token_ids))


def _groups(pairs: list[ScoredPair]) -> list[list[int]]:
    """Indices of consecutive rows with identical context ids."""
    groups: list[list[int]] = []
    for i, p in enumerate(pairs):
        if groups and pairs[groups[-1][0]].context_ids == p.context_ids:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _simple(model, pairs: list[ScoredPair], pad_id: int, batch_rows: int) -> None:
    from ...training.trainer import completion_logprobs, make_update_batch

    for s in range(0, len(pairs), batch_rows):
        chunk = pairs[s : s + batch_rows]
        batch = make_update_batch([p.context_ids for p in chunk], [p.option_ids for p in chunk],
                                  [[0.0] * p.n_tokens for p in chunk], pad_id)
        sums = completion_logprobs(model, batch, 1.0).sum(axis=1)  # zeros on padding
        mx.eval(sums)
        for p, v in zip(chunk, np.asarray(sums, dtype=np.float64).tolist()):
            p.sum_logprob = float(v)


def _prefix_cache(model, prefix: list[int]):
    """The KV cache of ``prefix`` (batch 1), or None when the model's caches are not plain KVCache."""
    from mlx_lm.models.cache import KVCache, make_prompt_cache

    from ...models.generation import forward_hidden

    head = make_prompt_cache(model)
    if not all(type(c) is KVCache for c in head):
        return None
    forward_hidden(model, mx.array([prefix], dtype=mx.int32), head)
    return head


def _shared(model, packed: list[tuple[list, int, list[ScoredPair]]]) -> None:
    """Score rows on their contexts' caches in one batch: ``packed`` holds (context cache,
    last context token, rows of that context). Each suffix row is [last context token] +
    option[:-1], padded between prefix and suffix; the contexts' caches are joined
    (right-aligned, the columns left of a shorter context masked out); the logits at
    the suffix's real columns predict the option's tokens."""
    from ...models.generation import _shared_prefix_cache_class, cache_class, forward_hidden, left_pad, output_logits

    rows = [p for _, _, group in packed for p in group]
    x, pads = left_pad([[last] + p.option_ids[:-1] for _, last, group in packed for p in group])
    cls = cache_class(model, _shared_prefix_cache_class())
    cache = [cls.joined([(c.keys[..., : c.offset, :], c.values[..., : c.offset, :]) for c in layer],
                        [len(group) for _, _, group in packed], pads, room=x.shape[1])
             for layer in zip(*(head for head, _, _ in packed))]
    hidden = forward_hidden(model, x, cache)  # (n, S, D)
    width = x.shape[1]
    real = mx.array([i * width + j for i, pad in enumerate(pads) for j in range(pad, width)], dtype=mx.int32)
    # the head only at real columns, (tokens, V); the log-softmax is done in numpy, whose
    # exp is several times faster than the CPU backend's
    logits = np.asarray(output_logits(model, hidden.reshape(-1, hidden.shape[-1])[real]).astype(mx.float32))
    top = logits.max(axis=-1)
    lse = top + np.log(np.exp(logits - top[:, None]).sum(axis=-1, dtype=np.float64))
    start = 0
    for p in rows:
        n = p.n_tokens
        picked = logits[np.arange(start, start + n), p.option_ids].astype(np.float64)
        p.sum_logprob = float((picked - lse[start : start + n]).sum())
        start += n


PACK_WIDTH = 1.25  # a batch takes contexts up to this many times its shortest (+16 tokens) long
PACK_PADDING = 1.5  # ... and options whose padded suffixes hold at most this many cells per real token


def _score_on_heads(model, groups: Iterable[tuple[list, list[ScoredPair]]], batch_rows: int) -> None:
    """Score each group's rows on ``head``, the KV cache (batch 1) of their shared context's ids
    but the last, groups taken in order of context length. The rows of one group and of the
    next groups are packed into batches of up to ``batch_rows`` rows (a group with more rows
    is split over batches), so short options of many items run as one forward pass. A batch
    takes only contexts of similar lengths (``PACK_WIDTH``: every row attends over the longest
    one's columns) and options of similar lengths (``PACK_PADDING``: every row runs the
    longest one's). A generator's heads are computed as they are taken, so only those of one
    batch are alive at a time."""
    pack: list[tuple[list, int, list[ScoredPair]]] = []
    shortest = 0
    for head, rows in groups:
        ctx = rows[0].context_ids
        for s in range(0, len(rows), batch_rows):
            chunk = rows[s : s + batch_rows]
            packed_rows = [r for _, _, taken in pack for r in taken] + chunk
            cells = len(packed_rows) * max(r.n_tokens for r in packed_rows)  # suffix columns, padding included
            if pack and (len(packed_rows) > batch_rows or len(ctx) > PACK_WIDTH * shortest + 16
                         or cells > PACK_PADDING * sum(r.n_tokens for r in packed_rows)):
                _shared(model, pack)
                pack = []
            if not pack:
                shortest = len(ctx)
            pack.append((head, ctx[-1], chunk))
    if pack:
        _shared(model, pack)


@inference()
def score_pairs(model, pairs: list[ScoredPair], pad_id: int, batch_rows: int = 32, share_prefix: bool = True) -> None:
    """Fill ``sum_logprob`` of every pair (in place).

    Shared path: each context is computed once (batch 1) and its option rows run on its
    cache, packed with those of the next contexts in order of context length
    (``_score_on_heads``)."""
    if not share_prefix:
        _simple(model, pairs, pad_id, batch_rows)
        return
    leftovers: list[ScoredPair] = []

    def heads() -> Iterator[tuple[list, list[ScoredPair]]]:
        for group in sorted(_groups(pairs), key=lambda g: len(pairs[g[0]].context_ids)):
            rows = [pairs[i] for i in group]
            ctx = rows[0].context_ids
            head = _prefix_cache(model, ctx[:-1]) if len(ctx) >= 2 else None
            if head is None:  # a one-token context, or a cache type the shared path cannot extend
                leftovers.extend(rows)
                continue
            yield head, rows

    _score_on_heads(model, heads(), batch_rows)
    if leftovers:
        _simple(model, leftovers, pad_id, batch_rows)


def option_logprobs(model, tokenizer, contexts: Sequence[str], options: Sequence[str], batch_rows: int = 32,
                    share_prefix: bool = True) -> list[tuple[float, int]]:
    """(sum of log p(option tokens | context), number of option tokens) per row.

    Rows of one context should be consecutive (all options of an item) so the
    context is computed once. Callers normalise: sum (TruthfulQA MC1/MC2) or
    sum / n_tokens (mean per token, the other MC axes).
    """
    pairs = encode_pairs(tokenizer, contexts, options)
    score_pairs(model, pairs, _pad_id(tokenizer), batch_rows, share_prefix)
    return [(p.sum_logprob, p.n_tokens) for p in pairs]


# ------------------------------------------------------------- two turns
@dataclass
class FollowUp:
    """One item of ``score_follow_up``: its options scored after the first context and after the second."""

    first: list[ScoredPair]
    second: list[ScoredPair]
    second_context: str
    reused: bool  # the second context ran on the first's KV cache, extended (False: computed afresh)


def _head(model, pairs: list[ScoredPair], share_prefix: bool) -> list | None:
    """The cache of the rows' shared context but its last token, or None for the simple path
    (sharing off, a one-token context, a cache type the shared path cannot extend, or options
    whose boundary merges left the rows different contexts)."""
    ctx = pairs[0].context_ids
    if not share_prefix or len(ctx) < 2 or any(p.context_ids != ctx for p in pairs):
        return None
    return _prefix_cache(model, ctx[:-1])


def _score_rows(model, groups: list[tuple[list | None, list[ScoredPair]]], pad_id: int, batch_rows: int) -> None:
    on_heads = sorted([(h, rows) for h, rows in groups if h is not None], key=lambda g: len(g[1][0].context_ids))
    _score_on_heads(model, on_heads, batch_rows)
    simple = [p for h, rows in groups if h is None for p in rows]
    if simple:
        _simple(model, simple, pad_id, batch_rows)


def _two_turns(model, tokenizer, chunk: list[int], first: list[list[ScoredPair]], options: Sequence[Sequence[str]],
               follow_up: Callable[[int, list[float]], str], batch_rows: int, share_prefix: bool,
               out: list) -> None:
    from ...models.generation import forward_hidden

    pad = _pad_id(tokenizer)
    heads = {i: _head(model, first[i], share_prefix) for i in chunk}
    _score_rows(model, [(heads[i], first[i]) for i in chunk], pad, batch_rows)
    groups = []
    for i in chunk:
        text = follow_up(i, [p.sum_logprob for p in first[i]])
        second = encode_pairs(tokenizer, [text] * len(options[i]), list(options[i]))
        cached, ctx = first[i][0].context_ids[:-1], second[0].context_ids
        head = heads[i]
        reused = (head is not None and len(ctx) > len(cached) and ctx[: len(cached)] == cached
                  and all(p.context_ids == ctx for p in second))
        if reused:
            if len(ctx) - 1 > len(cached):  # the new tokens but the last run on the first turn's cache
                forward_hidden(model, mx.array([ctx[len(cached) : -1]], dtype=mx.int32), head)
        else:  # the template rewrote the first turn's tokens: a fresh context
            head = _head(model, second, share_prefix)
        groups.append((head, second))
        out[i] = FollowUp(first[i], second, text, reused)
    _score_rows(model, groups, pad, batch_rows)


@inference()
def score_follow_up(model, tokenizer, contexts: Sequence[str], options: Sequence[Sequence[str]],
                    follow_up: Callable[[int, list[float]], str], batch_rows: int = 32,
                    share_prefix: bool = True) -> list[FollowUp]:
    """Score item i's ``options[i]`` after ``contexts[i]``, then after the text
    ``follow_up(i, option log-prob sums)`` returns: a second context that usually continues
    the first (the conversation with the answer read and a new user turn).

    When the second context's tokens start with the first's cached ones (chat templates that
    only append), the first context's KV cache is extended by the new tokens alone
    (``FollowUp.reused``); when a template rewrites earlier turns, the second context is
    computed afresh. Items run in chunks of up to ``batch_rows`` option rows (at least one
    item), in order of first-context length, so only one chunk's caches are alive at a time;
    results come back in input order. Both paths equal one full forward per row (tested)."""
    if len(contexts) != len(options):
        raise ValueError(f"{len(contexts)} contexts but {len(options)} option lists")
    if any(not o for o in options):
        raise ValueError("every item needs at least one option")
    first = [encode_pairs(tokenizer, [c] * len(o), list(o)) for c, o in zip(contexts, options)]
    out: list[FollowUp | None] = [None] * len(contexts)
    chunk: list[int] = []
    for i in sorted(range(len(contexts)), key=lambda j: len(first[j][0].context_ids)):
        if chunk and sum(len(first[j]) for j in chunk) + len(first[i]) > batch_rows:
            _two_turns(model, tokenizer, chunk, first, options, follow_up, batch_rows, share_prefix, out)
            chunk = []
        chunk.append(i)
    if chunk:
        _two_turns(model, tokenizer, chunk, first, options, follow_up, batch_rows, share_prefix, out)
    return out
