"""One GRPO optimiser step on a rollout: the LoRA adapters' gradient, accumulated exactly
over micro-batches, clipped and applied.

Micro-batches are the rollout's rows in order, ``update_batch_size`` at a time (TRL's
per-device batch, without its shuffle). The loss normalisers are those of TRL's
``GRPOTrainer.compute_loss`` with gradient accumulation over the micro-batches:

* ``grpo``: the mean over sequences of each sequence's token mean;
* ``dr_grpo``: the token sum / (rows x ``max_new_tokens``);
* ``bnpo``: each micro-batch's token mean (its own token count), averaged over the
  micro-batches (TRL divides by the gradient-accumulation steps);
* ``dapo``: the token sum / the tokens of the whole rollout (TRL's ``num_items_in_batch``).

bnpo and dapo agree when there is one micro-batch, or when all micro-batches hold the same
number of tokens. (TRL's grpo and dr_grpo average micro-batch means, which equals the
whole-rollout means above when the micro-batches have the same number of rows, as
``group_size`` x ``prompts_per_step`` divisible by ``update_batch_size`` gives.)

``old_logp``: there is one optimiser step per rollout, so the policy that sampled is the one
being updated and the importance ratio is exactly 1: the loss uses the detached log-probs of
its own forward pass as ``old_logp`` (as TRL does with ``num_iterations`` = 1). The sampler's
log-probs are equal in exact arithmetic, but decoding (one position, a KV cache) and the
full-sequence forward run different kernels; on Metal with quantized weights they differ
enough that the ratio drifts from 1 and clipping removes real gradient. Their mismatch is
reported as ``sampler_logp_diff``: the mean |sampler - training| log-prob per token.

Rows with zero advantage are left out of the forward pass when beta = 0 (their gradient is
exactly zero) but still count in every normaliser.

Data-parallel (``rows``, ``world``; docs/distributed.md): every rank holds the whole rollout
(gathered after judging) but runs the forward and backward passes of its own ``rows`` only.
The micro-batches and every normaliser are those of the whole rollout (``micro_batch_plan``),
so the rank's pieces carry their share of the global loss; the gradients and the metric sums
are then summed over ranks before clipping (the global norm) and one identical update.
"""

from __future__ import annotations

import math
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map

from ..models.completions import CompletionBatch, completion_logprobs, frozen_states, make_completion_batch
from . import grpo
from .config import TrainConfig
from .judge import lora_disabled
from .rollout import Rollout

RATIO_KEYS = ("kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")


def loss_weight(loss_type: str, rows: int, tokens: float, batch_tokens: float, n_batches: int,
                total_rows: int, total_tokens: float) -> float:
    """The weight that turns ``grpo.grpo_loss`` computed on ``rows`` rows (``tokens`` tokens) of one
    micro-batch (``batch_tokens`` tokens in all its rows) into their share of the rollout's loss."""
    if loss_type == "dapo":
        return tokens / max(total_tokens, 1.0)
    if loss_type == "bnpo":
        return tokens / max(batch_tokens, 1.0) / n_batches
    return rows / total_rows  # grpo (mean over sequences), dr_grpo (sum / (B * L))


def micro_batches(n_rows: int, size: int) -> list[list[int]]:
    return [list(range(s, min(s + size, n_rows))) for s in range(0, n_rows, size)]


def micro_batch_plan(loss_type: str, lengths: np.ndarray, usable: np.ndarray, size: int,
                     rows: range | None = None) -> list[tuple[list[int], list[int], float]]:
    """(the micro-batch's rows held here, the rows run, their loss weight) per micro-batch of the
    whole rollout: ``lengths`` (N,) counted tokens per row, ``usable`` (N,) bool rows with a
    gradient, ``rows`` those of this rank (None: all). Every normaliser counts the whole rollout."""
    mine = set(rows) if rows is not None else None
    batches = micro_batches(len(lengths), size)
    total_tokens = float(lengths.sum())
    plan = []
    for batch in batches:
        held = [i for i in batch if mine is None or i in mine]
        used = [i for i in held if usable[i]]
        weight = loss_weight(loss_type, len(used), float(lengths[used].sum()), float(lengths[batch].sum()),
                             len(batches), len(lengths), total_tokens)
        plan.append((held, used, weight))
    return plan


def grpo_update(
    model, optimizer, value_and_grad, rollout: Rollout, advantages: np.ndarray, config: TrainConfig, pad_id: int,
    progress: Callable[[int], None] | None = None, rows: range | None = None, world=None,
) -> dict:
    """One optimiser step on the rollout; ``progress(n)`` after each micro-batch of ``n`` rows.

    ``rows``/``world``: this rank's rows of the (whole) rollout and the group whose gradients
    are summed (None: one process, every row)."""
    truncated = np.array([not f for f in rollout.finished])
    lengths = np.array([len(t) for t in rollout.tokens], dtype=np.float64)
    if config.mask_truncated:
        lengths = np.where(truncated, 0.0, lengths)
    usable = (lengths > 0) & ((config.beta > 0) | (np.asarray(advantages) != 0))
    metrics = {"loss": 0.0, **{k: 0.0 for k in RATIO_KEYS}, "update_tokens": 0}
    diff_sum = diff_tokens = 0.0
    grads_sum = None
    for held, used, weight in micro_batch_plan(config.loss_type, lengths, usable, config.update_batch_size, rows):
        if not used:
            if progress is not None and held:
                progress(len(held))
            continue
        batch = make_completion_batch([rollout.prompt_ids[i] for i in used], [rollout.tokens[i] for i in used],
                                      [rollout.logprobs[i] for i in used], pad_id, share_prompt=True)
        mask = batch.mask
        if config.mask_truncated:
            mask = grpo.mask_truncated(mask, mx.array(truncated[used]))
        frozen = frozen_states(model, batch)  # the blocks below the LoRA ones, run once for policy and base
        ref = None
        if config.beta > 0:
            with lora_disabled(model):
                ref = mx.stop_gradient(completion_logprobs(model, batch, config.temperature, frozen=frozen))
        (loss, parts), grads = value_and_grad(model, batch, mask, mx.array(advantages[used], dtype=mx.float32), ref,
                                              weight, frozen)
        grads_sum = grads if grads_sum is None else tree_map(mx.add, grads_sum, grads)
        mx.eval(loss, parts, grads_sum)
        chunk_tokens = float(mask.sum())
        metrics["loss"] += float(loss)
        metrics["update_tokens"] += int(chunk_tokens)
        for k in RATIO_KEYS:
            metrics[k] += float(parts[k]) * chunk_tokens
        diff_sum += float(parts["sampler_abs_diff_sum"])
        diff_tokens += float(batch.mask.sum())
        if progress is not None:
            progress(len(held))
    if world is not None and world.distributed:
        import time

        t0 = time.perf_counter()
        grads_sum, sums = _sum_over_ranks(model, grads_sum, [metrics[k] for k in metrics] + [diff_sum, diff_tokens],
                                          world)
        metrics = dict(zip(metrics, sums[: len(metrics)]))
        metrics["update_tokens"] = int(metrics["update_tokens"])
        diff_sum, diff_tokens = sums[len(metrics):]
        metrics["allreduce_s"] = time.perf_counter() - t0  # includes waiting for the slowest rank
    if grads_sum is None:
        return {**metrics, "grad_norm": 0.0, "skipped_update": True}
    used_tokens = max(metrics["update_tokens"], 1)
    for k in RATIO_KEYS:
        metrics[k] /= used_tokens
    metrics["sampler_logp_diff"] = diff_sum / max(diff_tokens, 1.0)
    if not math.isfinite(metrics["loss"]):
        return {**metrics, "grad_norm": math.nan, "skipped_update": True}
    grads_sum, norm = optim.clip_grad_norm(grads_sum, config.max_grad_norm)
    optimizer.update(model, grads_sum)
    mx.eval(model.trainable_parameters(), optimizer.state)
    return {**metrics, "grad_norm": float(norm), "skipped_update": False}


def _sum_over_ranks(model, grads, sums: list[float], world) -> tuple[dict | None, list[float]]:
    """The gradient and the metric sums of every rank, summed (in rank order for the metrics);
    the gradient is None when no rank ran a row. A rank that ran none contributes zeros."""
    from ..distributed.collectives import gather_objects, sum_tree

    ran = grads is not None
    parts = gather_objects([float(ran), *sums], world)
    totals = [math.fsum(p[j] for p in parts) for j in range(len(parts[0]))]
    if not totals[0]:
        return None, totals[1:]
    if grads is None:
        grads = tree_map(mx.zeros_like, model.trainable_parameters())
    grads = sum_tree(grads, world)
    mx.eval(grads)
    return grads, totals[1:]


def build_value_and_grad(model, config: TrainConfig) -> Callable:
    """The loss and its gradient, built once (mlx-lm's trainer habit)."""

    def loss_fn(model, batch: CompletionBatch, mask, adv, ref, weight, frozen=None):
        logp = completion_logprobs(model, batch, config.temperature, frozen=frozen)
        loss, parts = grpo.grpo_loss(
            logp, mx.stop_gradient(logp), adv, mask, ref_logp=ref, beta=config.beta, epsilon=config.epsilon,
            epsilon_high=config.epsilon_high, loss_type=config.loss_type, max_completion_length=config.max_new_tokens,
        )
        diff = mx.stop_gradient((mx.abs(batch.sampler_logp - logp) * batch.mask).sum())
        return loss * weight, {**parts, "sampler_abs_diff_sum": diff}

    return nn.value_and_grad(model, loss_fn)
