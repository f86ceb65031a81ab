"""Asking the same prompts again from their first prefill.

EQ-Bench asks a question up to three times, at rising temperatures, until its answer parses
(``evals.axes.generation``). Every attempt reads the same prompt, and on the CPU backend the prompt
(~440 tokens of dialogue and instructions) is ~85% of an attempt's cost against 60 new tokens.
``sample_attempts`` prefills the prompts once, keeps their cache and last logits, and decodes
each attempt from a copy of the rows still asking (``fork``): attempts after the first cost
their new tokens only. Each attempt samples as ``generate_batch`` would from the same prompts
and key (one batch, rows in the given order); only float rounding differs, from the batch the
prompt was prefilled in.

The copy holds the asking rows' cache twice for a moment, so this is the CPU backend's path
(``evals.axes.generate_attempts`` checks ``backend.cpu_speedups``); on Metal, where prefill is
cheap next to decoding, each attempt prefills again, with the memory of a single batch.
"""

from __future__ import annotations

import copy
from typing import Callable

import mlx.core as mx

from .cpu_kernels import inference
from .generation import generate_batch, prefill

Reply = tuple[list[int], bool, bool]  # tokens, finished (EOS), stopped (generate_batch's stop rule: none here)


def forkable(cache: list) -> bool:
    """Whether rows of these caches can be copied out (``fork``): mlx-lm's ``BatchKVCache`` and
    its subclasses here, whose ``filter`` replaces every array it keeps rather than writing
    into it. Other caches (rotating windows, recurrent states) are prefilled again."""
    from mlx_lm.models.cache import BatchKVCache

    return all(isinstance(c, BatchKVCache) for c in cache)


def fork(logits: mx.array, cache: list, rows: list[int]) -> tuple[mx.array, list]:
    """The last logits and a copy of the cache of ``rows`` (in that order), leaving the
    originals as they are: the copy's decoding writes only into arrays of its own."""
    idx = mx.array(rows, dtype=mx.int32)
    copies = []
    for c in cache:
        c2 = copy.copy(c)
        c2.filter(idx)  # new key, value, offset and padding arrays: nothing shared is written later
        copies.append(c2)
    return logits[idx], copies


@inference()
def sample_attempts(model, prompts: list[list[int]], max_tokens: int, eos_ids, temperatures: list[float],
                    keys: list[mx.array | None], accepted: Callable[[int, list[int]], bool],
                    reuse: bool = True) -> list[list[Reply]]:
    """Up to ``len(temperatures)`` attempts per prompt, in one batch: attempt ``k`` samples the
    prompts not yet ``accepted(i, tokens)`` at ``temperatures[k]`` with ``keys[k]`` (rows in
    prompt order), decoding from the first prefill (``reuse`` False, or caches that cannot be
    copied: each attempt prefills its prompts again). Returns each prompt's attempts."""
    out: list[list[Reply]] = [[] for _ in prompts]
    pending = list(range(len(prompts)))
    logits, cache = prefill(model, prompts) if reuse else (None, None)
    copyable = cache is not None and forkable(cache)
    if copyable:
        mx.eval(logits, [(c.keys, c.values) for c in cache])
    for temperature, key in zip(temperatures, keys):
        if not pending:
            break
        if copyable:
            start = fork(logits, cache, pending)
        else:  # the first attempt decodes from the prefill itself; later ones prefill again
            start, logits, cache = ((logits, cache) if cache is not None else None), None, None
        gen = generate_batch(model, [prompts[i] for i in pending], max_tokens, eos_ids, temperature, key,
                             start=start)
        left = []
        for i, toks, fin, stp in zip(pending, gen.tokens, gen.finished, gen.stopped):
            out[i].append((toks, bool(fin), bool(stp)))
            if not accepted(i, toks):
                left.append(i)
        pending = left
    return out
