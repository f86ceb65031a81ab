"""GRPO maths as pure functions on ``mlx.core`` arrays (no I/O, no model state).

Algorithm choices (references: DeepSeekMath GRPO, Shao et al. 2024; Dr. GRPO, Liu
et al. 2025; DAPO, Yu et al. 2025; TRL's ``GRPOTrainer`` loss types):

* Advantages are group-relative: ``A = r - mean(group)``, divided by
  ``std(group) + eps`` when ``scale_std`` (GRPO). The std is the *unbiased*
  (ddof=1) sample std, as in TRL (``torch.std``). ``scale_std=False`` is Dr. GRPO.
  NaN/inf rewards (unparseable judge output) are left out of the group statistics
  and get advantage 0; a group with < 2 finite rewards gets all zeros.
* Policy loss per token is PPO's clipped surrogate ``-min(r*A, clip(r)*A)`` with
  ``r = exp(logp - old_logp)`` and an asymmetric band ``[1-eps, 1+eps_high]``
  (DAPO "clip-higher"; ``eps_high`` defaults to ``eps``).
* The KL penalty (only when ``beta > 0``) is Schulman's k3 estimator of
  KL(policy || ref), added per token before normalisation (as in TRL).
* Normalisers follow TRL: "grpo" = per-sequence token mean then batch mean;
  "bnpo" = token mean over the (micro-)batch; "dapo" = token mean over the global
  batch; "dr_grpo" = sum / (B * max_completion_length). On one batch "bnpo" and
  "dapo" are the same; across micro-batches they differ, and ``update.loss_weight``
  combines this function's per-micro-batch losses into TRL's (bnpo: the mean of the
  micro-batches' token means; dapo: all tokens over the rollout's token count).
* ``old_logp``, ``ref_logp`` and ``advantages`` are treated as constants
  (``stop_gradient``); only ``logp`` carries gradient.
* Log-probabilities are always computed in float32 whatever the logits dtype.
"""

from __future__ import annotations

import mlx.core as mx

LOSS_TYPES: tuple[str, ...] = ("grpo", "bnpo", "dapo", "dr_grpo")


# --------------------------------------------------------------------------- #
# Rewards -> advantages
# --------------------------------------------------------------------------- #


def _grouped(rewards: mx.array, group_size: int) -> mx.array:
    """Reshape (N*G,) rewards to (N, G) float32, validating the grouping."""
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D (N*G,), got shape {rewards.shape}")
    if rewards.size % group_size != 0:
        raise ValueError(
            f"len(rewards)={rewards.size} is not divisible by group_size={group_size}"
        )
    return rewards.astype(mx.float32).reshape(-1, group_size)  # (N, G)


def group_advantages(
    rewards: mx.array, group_size: int, scale_std: bool = True, eps: float = 1e-4
) -> mx.array:
    """Group-relative advantages, (N*G,) float32.

    Consecutive blocks of ``group_size`` rewards are one group (one prompt).
    ``A = (r - mean) / (std + eps)`` with the unbiased (ddof=1) std over the
    group's finite rewards, or ``A = r - mean`` when ``scale_std`` is False.
    Non-finite rewards get 0; groups with < 2 finite rewards are all 0.
    """
    r = _grouped(rewards, group_size)  # (N, G)
    finite = mx.isfinite(r)  # (N, G)
    # Replace non-finite values before any reduction so NaN cannot leak in.
    r0 = mx.where(finite, r, 0.0)  # (N, G)
    n = finite.astype(mx.float32).sum(axis=1, keepdims=True)  # (N, 1)
    mean = r0.sum(axis=1, keepdims=True) / mx.maximum(n, 1.0)  # (N, 1)
    centred = mx.where(finite, r - mean, 0.0)  # (N, G)
    adv = centred
    if scale_std:
        var = (centred * centred).sum(axis=1, keepdims=True) / mx.maximum(n - 1.0, 1.0)
        adv = centred / (mx.sqrt(var) + eps)  # (N, G)
    # A lone finite reward has no baseline to compare against: no signal.
    adv = mx.where(finite & (n >= 2.0), adv, 0.0)
    return adv.reshape(-1).astype(mx.float32)  # (N*G,)


def zero_spread_groups(
    rewards: mx.array, group_size: int, tol: float = 1e-6
) -> mx.array:
    """(N,) bool: True where a group carries no learning signal.

    That is: all its finite rewards are equal within ``tol`` (max - min <= tol),
    or fewer than 2 of them are finite. Such groups have zero advantages, hence
    zero policy-gradient; the trainer counts them.
    """
    r = _grouped(rewards, group_size)  # (N, G)
    finite = mx.isfinite(r)  # (N, G)
    n = finite.astype(mx.int32).sum(axis=1)  # (N,)
    hi = mx.where(finite, r, -mx.inf).max(axis=1)  # (N,)
    lo = mx.where(finite, r, mx.inf).min(axis=1)  # (N,)
    # With n < 2, hi - lo may be -inf or nan; the n test decides those rows.
    flat = mx.where(n >= 2, hi - lo, 0.0) <= tol
    return (n < 2) | flat


# --------------------------------------------------------------------------- #
# Logits -> per-token log-probabilities
# --------------------------------------------------------------------------- #


def token_logprobs(
    logits: mx.array, targets: mx.array, temperature: float = 1.0
) -> mx.array:
    """log p(targets | logits / temperature), (B, T) float32.

    logits (B, T, V) of any float dtype, targets (B, T) integer ids.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {logits.shape} and targets {targets.shape} disagree on (B, T)"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    # float32 first: bf16/fp16 log-softmax loses the small ratio differences
    # that the clipped objective depends on.
    x = logits.astype(mx.float32)  # (B, T, V)
    if temperature != 1.0:
        x = x / temperature
    # The picked logit minus logsumexp: no (B, T, V) log-softmax is materialised.
    picked = mx.take_along_axis(x, targets.astype(mx.int32)[..., None], axis=-1).squeeze(-1)  # (B, T)
    return picked - mx.logsumexp(x, axis=-1)  # (B, T)


# --------------------------------------------------------------------------- #
# Loss
# --------------------------------------------------------------------------- #


def kl_k3(logp: mx.array, ref_logp: mx.array) -> mx.array:
    """Schulman's k3 estimate of KL(policy || ref), elementwise and >= 0.

    ``exp(ref - logp) - (ref - logp) - 1``: unbiased for samples from the policy,
    and lower variance than ``logp - ref``.
    """
    d = ref_logp - logp
    return mx.exp(d) - d - 1.0


def mask_truncated(mask: mx.array, truncated: mx.array) -> mx.array:
    """Zero the mask rows of truncated completions (DAPO overlong filtering).

    mask (B, T), truncated (B,) bool. Keeps ``mask``'s dtype.
    """
    if truncated.shape != (mask.shape[0],):
        raise ValueError(f"truncated {truncated.shape} must be (B,) for mask {mask.shape}")
    keep = mx.logical_not(truncated.astype(mx.bool_))[:, None]  # (B, 1)
    return mx.where(keep, mask, mx.zeros_like(mask))  # (B, T)


def grpo_loss(
    logp: mx.array,
    old_logp: mx.array,
    advantages: mx.array,
    mask: mx.array,
    *,
    ref_logp: mx.array | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
) -> tuple[mx.array, dict[str, mx.array]]:
    """Clipped GRPO surrogate (+ optional k3 KL), scalar loss and metrics.

    logp, old_logp, ref_logp, mask: (B, T) per completion token; mask is 0/1.
    advantages: (B,). Positions with mask 0 never affect the loss or the
    gradient, whatever values logp/old_logp hold there.

    Metrics (scalar arrays, means over mask tokens): "kl" (0 when beta == 0),
    "clip_ratio/low_mean" (ratio < 1-eps and A < 0), "clip_ratio/high_mean"
    (ratio > 1+eps_high and A > 0), "clip_ratio/region_mean" (either).
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; valid: {', '.join(LOSS_TYPES)}")
    if loss_type == "dr_grpo" and (max_completion_length is None or max_completion_length < 1):
        raise ValueError("loss_type 'dr_grpo' needs max_completion_length >= 1")
    if beta > 0 and ref_logp is None:
        raise ValueError("beta > 0 needs ref_logp (the reference model's log-probs)")
    if logp.ndim != 2 or old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError(
            f"logp {logp.shape}, old_logp {old_logp.shape} and mask {mask.shape} "
            "must all be the same (B, T)"
        )
    if advantages.shape != (logp.shape[0],):
        raise ValueError(f"advantages {advantages.shape} must be (B,) = ({logp.shape[0]},)")
    eps_low = float(epsilon)
    eps_high = eps_low if epsilon_high is None else float(epsilon_high)

    B = logp.shape[0]
    m = mask.astype(mx.float32)  # (B, T)
    on = m > 0  # (B, T) bool
    logp = logp.astype(mx.float32)
    old = mx.stop_gradient(old_logp.astype(mx.float32))
    A = mx.stop_gradient(advantages.astype(mx.float32))[:, None]  # (B, 1)

    # Zero the log-ratio off-mask so exp() cannot overflow to inf there: an inf
    # would turn the (zero) cotangent into nan in the backward pass.
    log_ratio = mx.where(on, logp - old, 0.0)  # (B, T)
    ratio = mx.exp(log_ratio)  # (B, T)
    clipped = mx.clip(ratio, 1.0 - eps_low, 1.0 + eps_high)  # (B, T)
    per_token = -mx.minimum(ratio * A, clipped * A)  # (B, T)

    tok_count = m.sum()  # () total mask tokens
    denom = mx.maximum(tok_count, 1.0)

    if beta > 0:
        ref = mx.stop_gradient(ref_logp.astype(mx.float32))  # type: ignore[union-attr]
        if ref.shape != logp.shape:
            raise ValueError(f"ref_logp {ref.shape} must match logp {logp.shape}")
        # Same off-mask guard as the ratio: k3 contains exp(ref - logp).
        kl = kl_k3(mx.where(on, logp, 0.0), mx.where(on, ref, 0.0))  # (B, T)
        per_token = per_token + beta * kl
        kl_mean = mx.stop_gradient((kl * m).sum() / denom)
    else:
        kl_mean = mx.array(0.0, dtype=mx.float32)

    masked = per_token * m  # (B, T)
    if loss_type == "grpo":
        seq_len = mx.maximum(m.sum(axis=1), 1.0)  # (B,)
        loss = (masked.sum(axis=1) / seq_len).mean()
    elif loss_type in ("bnpo", "dapo"):
        # The same on one batch; update.loss_weight makes dapo's normaliser the token
        # count of the whole rollout when it runs in micro-batches.
        loss = masked.sum() / denom
    else:  # dr_grpo: a constant normaliser, so no length bias.
        loss = masked.sum() / (B * float(max_completion_length))  # type: ignore[arg-type]

    low = (ratio < 1.0 - eps_low) & (A < 0)  # (B, T)
    high = (ratio > 1.0 + eps_high) & (A > 0)  # (B, T)
    metrics = {
        "kl": kl_mean,
        "clip_ratio/low_mean": mx.stop_gradient((low * m).sum() / denom),
        "clip_ratio/high_mean": mx.stop_gradient((high * m).sum() / denom),
        "clip_ratio/region_mean": mx.stop_gradient(((low | high) * m).sum() / denom),
    }
    return loss, metrics
