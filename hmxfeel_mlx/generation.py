"""Batched generation and scoring with a KV cache, keeping token ids and log-probs.

Used by GRPO rollouts (sampling, with the sampling log-probs kept for the loss),
the text-mode judge and the evaluation suite (greedy). Prompts are left-padded
and run with mlx-lm's ``BatchKVCache``, which masks the padding and offsets the
rotary positions per row, so a padded row computes exactly what it would alone.
Rows that reach EOS are dropped from the batch, so short replies cost nothing
while long ones finish.

Randomness is explicit: sampling takes a ``key``; step ``t`` uses ``split(key)[t]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mlx.core as mx


@dataclass
class Generation:
    """Completions for a batch of prompts, in prompt order."""

    tokens: list[list[int]]  # completion ids, EOS included when reached
    logprobs: list[list[float]]  # log p(token) under the (tempered) sampling distribution
    finished: list[bool]  # reached EOS (False = truncated at max_tokens)
    prompt_tokens: int = 0  # total prompt tokens processed
    meta: dict = field(default_factory=dict)

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


def make_batch_cache(model, left_padding: list[int]) -> list:
    from mlx_lm.models.cache import BatchKVCache

    return [BatchKVCache(left_padding) for _ in range(len(model.layers))]


def left_pad(prompts: list[list[int]], pad_id: int = 0) -> tuple[mx.array, list[int]]:
    """(B, L) int32 array of left-padded prompts and the padding of each row."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    pads = [width - len(p) for p in prompts]
    rows = [[pad_id] * n + list(p) for n, p in zip(pads, prompts)]
    return mx.array(rows, dtype=mx.int32), pads


def prefill(model, prompts: list[list[int]]) -> tuple[mx.array, list]:
    """Run the prompts once; return the last-position logits (B, V) and the cache."""
    x, pads = left_pad(prompts)
    cache = make_batch_cache(model, pads)
    logits = model(x, cache=cache)[:, -1, :]
    return logits, cache


def _log_softmax(logits: mx.array, temperature: float) -> mx.array:
    logits = logits.astype(mx.float32)
    if temperature > 0:
        logits = logits / temperature
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


def generate_batch(
    model,
    prompts: list[list[int]],
    max_tokens: int,
    eos_ids: set[int] | list[int],
    temperature: float = 0.0,
    key: mx.array | None = None,
    max_batch: int | None = None,
) -> Generation:
    """Sample (or greedily decode when temperature is 0) completions for each prompt.

    ``logprobs`` are of the tempered distribution the token was drawn from (the
    GRPO "old" log-probs); for greedy decoding they are at temperature 1.
    ``max_batch`` splits a large batch into chunks (memory); the chunk ``c``
    uses ``split(key, n_chunks)[c]``.
    """
    if temperature > 0 and key is None:
        raise ValueError("sampling needs an explicit random key")
    if max_batch and len(prompts) > max_batch:
        chunks = [prompts[i : i + max_batch] for i in range(0, len(prompts), max_batch)]
        keys = mx.random.split(key, len(chunks)) if key is not None else [None] * len(chunks)
        parts = [generate_batch(model, c, max_tokens, eos_ids, temperature, k) for c, k in zip(chunks, keys)]
        return Generation(
            tokens=[t for p in parts for t in p.tokens],
            logprobs=[lp for p in parts for lp in p.logprobs],
            finished=[f for p in parts for f in p.finished],
            prompt_tokens=sum(p.prompt_tokens for p in parts),
        )

    eos = mx.array(sorted(set(eos_ids)), dtype=mx.int32)
    n = len(prompts)
    out_tokens: list[list[int]] = [[] for _ in range(n)]
    out_lps: list[list[float]] = [[] for _ in range(n)]
    finished = [False] * n
    step_keys = mx.random.split(key, max_tokens) if temperature > 0 else None

    logits, cache = prefill(model, prompts)
    active = list(range(n))
    for t in range(max_tokens):
        lp = _log_softmax(logits, temperature if temperature > 0 else 1.0)  # (b, V)
        if temperature > 0:
            tok = mx.random.categorical(lp, key=step_keys[t])
        else:
            tok = mx.argmax(lp, axis=-1)
        tok_lp = mx.take_along_axis(lp, tok[:, None], axis=-1)[:, 0]
        stop = (tok[:, None] == eos[None, :]).any(axis=-1)
        mx.eval(tok, tok_lp, stop)
        toks, lps, stops = tok.tolist(), tok_lp.tolist(), stop.tolist()
        keep = []
        for j, row in enumerate(active):
            out_tokens[row].append(toks[j])
            out_lps[row].append(lps[j])
            if stops[j]:
                finished[row] = True
            else:
                keep.append(j)
        if not keep or t == max_tokens - 1:
            break
        if len(keep) < len(active):
            idx = mx.array(keep, dtype=mx.int32)
            for c in cache:
                c.filter(idx)
            tok = tok[idx]
            active = [active[j] for j in keep]
        logits = model(tok[:, None].astype(mx.int32), cache=cache)[:, -1, :]
    return Generation(out_tokens, out_lps, finished, prompt_tokens=sum(len(p) for p in prompts))


def next_token_logprobs(model, prompts: list[list[int]], max_batch: int | None = None) -> mx.array:
    """log p(next token | prompt) for each prompt, (B, V) float32, one prefill."""
    if max_batch and len(prompts) > max_batch:
        parts = [next_token_logprobs(model, prompts[i : i + max_batch]) for i in range(0, len(prompts), max_batch)]
        return mx.concatenate(parts, axis=0)
    logits, _ = prefill(model, prompts)
    out = _log_softmax(logits, 1.0)
    mx.eval(out)
    return out
