"""Sampled completions as one padded batch, and their log-probabilities under a model.

Shared by the GRPO update (the log-probs that carry the gradient) and the distance to
the base (``divergence``): both score exactly the token ids that were sampled, never a
re-tokenised text.

Both compare the policy with its LoRA-off base on the same batch. The blocks below the first
one holding a LoRA layer compute the same hidden states for both (and need no gradient), so
``frozen_states`` runs them once and ``completion_logprobs(..., frozen=...)`` runs only the
blocks from there: with LoRA on the last 16 of SmolLM2's 30 blocks, the policy and base
forwards cost 16 + 16 + 14 blocks instead of 30 + 30.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from ..training import grpo
from .generation import forward_hidden, left_pad, make_batch_cache, output_logits


def pad_id(tokenizer) -> int:
    """The id that fills padding (never attended to, never scored)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(tokenizer.eos_token_ids))


@dataclass
class CompletionBatch:
    """Left-padded prompts followed by right-padded completions: completion t of every
    row sits in column P + t, so the completion logits are one slice of the hidden states."""

    x: mx.array  # (B, P + T - 1) input ids
    pads: list[int]  # left padding of each prompt
    width: int  # P
    targets: mx.array  # (B, T) completion ids
    mask: mx.array  # (B, T) float32, 1 on completion tokens
    sampler_logp: mx.array  # (B, T) the log-probs the sampler reported (0 off the mask)


def make_completion_batch(prompt_ids, tokens, logprobs, pad_id: int) -> CompletionBatch:
    prompts, pads = left_pad(prompt_ids, pad_id)
    width = prompts.shape[1]
    longest = max(len(t) for t in tokens)
    targets = np.full((len(tokens), longest), pad_id, dtype=np.int32)
    mask = np.zeros((len(tokens), longest), dtype=np.float32)
    sampler = np.zeros((len(tokens), longest), dtype=np.float32)
    for i, (t, lp) in enumerate(zip(tokens, logprobs)):
        targets[i, : len(t)] = t
        mask[i, : len(t)] = 1.0
        sampler[i, : len(t)] = lp
    targets = mx.array(targets)
    x = mx.concatenate([prompts, targets[:, :-1]], axis=1)  # the last completion token is never an input
    return CompletionBatch(x, pads, width, targets, mx.array(mask), mx.array(sampler))


@dataclass
class FrozenStates:
    """The hidden states entering block ``start``, the first block with a LoRA layer."""

    hidden: mx.array  # (B, P + T - 1, D), no gradient
    start: int


PLAIN_BODIES = ("llama", "qwen3")  # bodies that are: embed, one causal mask, the blocks in order, norm


def lora_start(model) -> int:
    """Index of the first transformer block holding a LoRA layer (the number of blocks when none)."""
    for i, block in enumerate(model.model.layers):
        if any(hasattr(m, "lora_a") for _, m in block.named_modules()):
            return i
    return len(model.model.layers)


def _plain_body(model) -> bool:
    body = model.model
    return (getattr(model, "model_type", None) in PLAIN_BODIES and getattr(body, "swa_idx", None) is None
            and hasattr(body, "embed_tokens") and hasattr(body, "norm") and hasattr(body, "layers"))


def _blocks(model, h: mx.array, start: int, stop: int, pads: list[int]) -> mx.array:
    """Blocks ``start:stop`` of a plain body on hidden states ``h`` of a left-padded batch."""
    from mlx_lm.models.base import create_attention_mask
    from mlx_lm.models.cache import BatchKVCache

    cache = [BatchKVCache(pads) for _ in range(start, stop)]
    mask = create_attention_mask(h, cache[0]) if cache else None
    for block, c in zip(model.model.layers[start:stop], cache):
        h = block(h, mask, c)
    return h


def frozen_states(model, batch: CompletionBatch) -> FrozenStates | None:
    """The batch's hidden states after the blocks without LoRA (evaluated, no gradient), or
    None when there are none or the architecture's body is not a plain stack of blocks (e.g.
    Gemma's scaled embeddings and sliding windows): callers then run the whole model."""
    start = lora_start(model)
    if start == 0 or start >= len(model.model.layers) or not _plain_body(model):
        return None
    h = _blocks(model, model.model.embed_tokens(batch.x), 0, start, batch.pads)
    h = mx.stop_gradient(h)
    mx.eval(h)
    return FrozenStates(h, start)


def completion_logprobs(model, batch: CompletionBatch, temperature: float, chunk: int = 32,
                        frozen: FrozenStates | None = None) -> mx.array:
    """log p(completion token t | prompt, tokens < t) under ``model`` at ``temperature``
    (log-softmax of logits / T), (B, T) float32, 0 off the mask.

    The vocabulary-sized part (LM head, log-softmax) runs ``chunk`` positions at a time under
    ``mx.checkpoint``: the backward pass recomputes each chunk's logits instead of keeping
    (B, T, V) of them, about 0.4 GiB less at 8 x 128 tokens with a 49k vocabulary. The head
    is frozen here (LoRA sits inside the blocks), so only the hidden states need gradients.
    ``frozen`` (``frozen_states`` of this batch) starts the forward at its block.
    """
    if frozen is None:
        hidden = forward_hidden(model, batch.x, make_batch_cache(model, batch.pads))  # (B, P+T-1, D)
    else:
        hidden = model.model.norm(_blocks(model, frozen.hidden, frozen.start, len(model.model.layers), batch.pads))
    T = batch.targets.shape[1]
    hidden = hidden[:, batch.width - 1 : batch.width - 1 + T]  # (B, T, D)
    parts = []
    for s in range(0, T, chunk):
        targets = batch.targets[:, s : s + chunk]
        head = mx.checkpoint(lambda h, t=targets: grpo.token_logprobs(output_logits(model, h), t, temperature))
        parts.append(head(hidden[:, s : s + chunk]))
    lp = parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=1)
    return mx.where(batch.mask > 0, lp, 0.0)
