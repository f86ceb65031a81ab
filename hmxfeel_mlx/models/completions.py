"""Sampled completions as one padded batch, and their log-probabilities under a model.

Shared by the GRPO update (the log-probs that carry the gradient) and the distance to
the base (``divergence``): both score exactly the token ids that were sampled, never a
re-tokenised text.

Both compare the policy with its LoRA-off base on the same batch. The blocks below the first
one holding a LoRA layer compute the same hidden states for both (and need no gradient), so
``frozen_states`` runs them once and ``completion_logprobs(..., frozen=...)`` runs only the
blocks from there: with LoRA on the last 16 of SmolLM2's 30 blocks, the policy and base
forwards cost 16 + 16 + 14 blocks instead of 30 + 30.

A batch whose rows all continue one prompt (the G replies of a rollout prompt) can also run
that prompt once (``make_completion_batch(..., share_prompt=True)``): every block computes the
prompt's hidden states, keys and values at batch 1 and the rows' completions attend to them, so
a micro-batch of G rows costs P + G x T token positions instead of G x (P + T). The gradient
reaches the prompt's positions through its keys and values (broadcast to the rows, so their
gradients add up), and the log-probs equal the unshared forward's up to float rounding
(``tests/test_shared_prompt.py``).
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
    shared: int = 0  # leading prompt columns every row shares, run once at batch 1 (0: none)


SHARE_MIN_TOKENS = 8  # a shorter common prompt is not worth its own pass


def make_completion_batch(prompt_ids, tokens, logprobs, pad_id: int, share_prompt: bool = False) -> CompletionBatch:
    """``share_prompt``: when every row has the same prompt (and there are several rows), its
    first P - 1 tokens run once for the batch; the last one stays in each row, where it
    predicts the first completion token."""
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
    same = share_prompt and len(prompt_ids) > 1 and all(list(p) == list(prompt_ids[0]) for p in prompt_ids[1:])
    shared = width - 1 if same and width - 1 >= SHARE_MIN_TOKENS else 0
    return CompletionBatch(x, pads, width, targets, mx.array(mask), mx.array(sampler), shared)


@dataclass
class FrozenStates:
    """The hidden states entering block ``start``, the first block with a LoRA layer."""

    hidden: mx.array  # (B, P + T - 1, D), no gradient; with a shared prompt the rows' own columns (B, T, D)
    start: int
    prefix: mx.array | None = None  # with a shared prompt: its hidden states (1, shared, D)


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


class _PromptKV:
    """The cache of a shared prompt's batch-1 pass: keeps each block's keys and values (in the
    graph, so the gradient flows back through them)."""

    offset = 0

    def update_and_fetch(self, keys, values):
        self.keys, self.values = keys, values
        return keys, values


class _AfterPrompt:
    """The cache of the rows' own columns: the shared prompt's keys and values, broadcast to the
    rows, come first; rotary positions continue after the prompt."""

    def __init__(self, prompt: _PromptKV, rows: int):
        self.prompt, self.rows, self.offset = prompt, rows, prompt.keys.shape[2]

    def update_and_fetch(self, keys, values):
        def joined(first, own):
            return mx.concatenate([mx.broadcast_to(first, (self.rows, *first.shape[1:])), own], axis=2)

        return joined(self.prompt.keys, keys), joined(self.prompt.values, values)


def _shared_blocks(model, prefix: mx.array, own: mx.array, start: int, stop: int) -> tuple[mx.array, mx.array]:
    """Blocks ``start:stop`` on a shared prompt's hidden states ``prefix`` (1, S, D) and the rows'
    own columns ``own`` (B, L, D), which attend to the whole prompt and causally to themselves."""
    S, L = prefix.shape[1], own.shape[1]
    own_mask = mx.arange(S + L)[None, :] <= (mx.arange(L)[:, None] + S)  # (L, S + L), True = attend
    for block in model.model.layers[start:stop]:
        kv = _PromptKV()
        next_prefix = block(prefix, "causal", kv)
        own = block(own, own_mask, _AfterPrompt(kv, own.shape[0]))
        prefix = next_prefix
    return prefix, own


def _split(model, batch: CompletionBatch) -> tuple[mx.array, mx.array]:
    """The embedded shared prompt (1, S, D) and the rows' own columns (B, T, D)."""
    embed = model.model.embed_tokens
    return embed(batch.x[:1, : batch.shared]), embed(batch.x[:, batch.shared :])


def frozen_states(model, batch: CompletionBatch) -> FrozenStates | None:
    """The batch's hidden states after the blocks without LoRA (evaluated, no gradient), or
    None when there are none or the architecture's body is not a plain stack of blocks (e.g.
    Gemma's scaled embeddings and sliding windows): callers then run the whole model."""
    start = lora_start(model)
    if start == 0 or start >= len(model.model.layers) or not _plain_body(model):
        return None
    if batch.shared:
        prefix, own = map(mx.stop_gradient, _shared_blocks(model, *_split(model, batch), 0, start))
        mx.eval(prefix, own)
        return FrozenStates(own, start, prefix)
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
    ``frozen`` (``frozen_states`` of this batch) starts the forward at its block. A batch with a
    shared prompt (``batch.shared``) runs it once, on plain bodies (others run every row whole).
    """
    T = batch.targets.shape[1]
    n_blocks = len(model.model.layers)
    if frozen is not None and frozen.prefix is not None:
        hidden = model.model.norm(_shared_blocks(model, frozen.prefix, frozen.hidden, frozen.start, n_blocks)[1])
    elif frozen is None and batch.shared and _plain_body(model):
        hidden = model.model.norm(_shared_blocks(model, *_split(model, batch), 0, n_blocks)[1])
    else:
        if frozen is None:
            hidden = forward_hidden(model, batch.x, make_batch_cache(model, batch.pads))  # (B, P+T-1, D)
        else:
            hidden = model.model.norm(_blocks(model, frozen.hidden, frozen.start, n_blocks, batch.pads))
        hidden = hidden[:, batch.width - 1 : batch.width - 1 + T]  # (B, T, D)
    parts = []
    for s in range(0, T, chunk):
        targets = batch.targets[:, s : s + chunk]
        head = mx.checkpoint(lambda h, t=targets: grpo.token_logprobs(output_logits(model, h), t, temperature))
        parts.append(head(hidden[:, s : s + chunk]))
    lp = parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=1)
    return mx.where(batch.mask > 0, lp, 0.0)
