"""The distance of the policy from its base: KL(policy || base) on replies sampled from the policy.

The policy is the model with its LoRA layers, the base the same model with them switched
off (scale 0, ``judge.lora_disabled``). Replies are sampled from the policy at temperature
T, that is from pi_T(y_t | y_<t) = softmax(z_t / T). What is estimated is the KL between
the *tempered* distributions over whole replies,

    KL(pi_T || b_T) = E_{y ~ pi_T} sum_t [log pi_T(y_t | y_<t) - log b_T(y_t | y_<t)],

the two distributions the training KL term compares (``grpo.kl_k3`` on log-probs taken at
the sampling temperature). Per reply, with r_t = b_T(y_t | .) / pi_T(y_t | .):

* k1 = sum_t -log r_t: unbiased for the sequence KL (its chain rule);
* k3 = sum_t (r_t - 1 - log r_t) (Schulman): every term >= 0 and E[term_t | y_<t] is the KL
  of the t-th conditionals, so the sum is unbiased for the sequence KL as well, with lower
  variance than k1 while the two models are close.

Both are reported per reply (sum over the reply's tokens, mean over replies, with its
standard error: nats per reply) and per token (all terms over all tokens: a ratio
estimator, consistent, which hides length: a model whose replies are shorter moves less
per reply at the same per-token value).

Log-probs at T = 1 on replies sampled at T != 1 (the held-out KL before this module)
estimate E_{pi_T}[log pi_1 - log b_1], which is neither KL(pi_T || b_T) nor
KL(pi_1 || b_1); tests/test_divergence.py shows it missing the enumerated KL by tens of
standard errors on a tiny model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import mlx.core as mx
import numpy as np

from ..models.completions import completion_logprobs, frozen_states, make_completion_batch
from . import grpo
from .judge import lora_disabled
from .rollout import mean_and_stderr

KL_ROWS = 8  # replies per forward pass (no gradients here, so more rows than an update chunk)


@dataclass
class KLEstimate:
    temperature: float  # both log-probs are of softmax(logits / temperature)
    k3_token: float  # sum of k3 terms / number of tokens
    k1_token: float
    k3_reply: float  # mean over replies of the per-reply k3 sum (nats per reply)
    k3_reply_se: float
    k1_reply: float
    k1_reply_se: float
    n_replies: int
    n_tokens: int

    def metrics(self, prefix: str = "eval_") -> dict[str, float]:
        """The run folder's names: ``kl`` (per token, k3), ``kl_k1``, ``kl_reply`` (k3, nats) ..."""
        return {f"{prefix}kl": self.k3_token, f"{prefix}kl_k1": self.k1_token,
                f"{prefix}kl_reply": self.k3_reply, f"{prefix}kl_reply_se": self.k3_reply_se,
                f"{prefix}kl_reply_k1": self.k1_reply, f"{prefix}kl_reply_k1_se": self.k1_reply_se,
                f"{prefix}kl_temperature": self.temperature}

    def to_dict(self) -> dict:
        return asdict(self)


def summarize_kl(k1_rows, k3_rows, lengths, temperature: float) -> KLEstimate:
    """Per-reply sums of the k1 and k3 terms (and each reply's token count) -> the estimate."""
    k1, k3 = np.asarray(k1_rows, dtype=np.float64), np.asarray(k3_rows, dtype=np.float64)
    n_tokens = int(np.sum(lengths))
    per_tok = max(n_tokens, 1)
    k3_mean, k3_se = mean_and_stderr(k3)
    k1_mean, k1_se = mean_and_stderr(k1)
    return KLEstimate(float(temperature), float(k3.sum() / per_tok), float(k1.sum() / per_tok),
                      k3_mean, k3_se, k1_mean, k1_se, len(k1), n_tokens)


def kl_terms(policy_logp: mx.array, base_logp: mx.array, mask: mx.array) -> tuple[mx.array, mx.array]:
    """Per-reply sums of the k1 and k3 terms, (B,) each, from (B, T) log-probs of the sampled
    tokens under the policy and the base (both at the sampling temperature) and the 0/1 mask."""
    on = mask > 0
    policy, base = mx.where(on, policy_logp, 0.0), mx.where(on, base_logp, 0.0)
    k1 = ((policy - base) * mask).sum(axis=1)
    k3 = (grpo.kl_k3(policy, base) * mask).sum(axis=1)
    return k1, k3


def policy_is_base(model) -> bool:
    """Whether the LoRA layers change nothing: none at all, or every ``lora_b`` exactly 0 (as
    mlx-lm initialises them). The policy's log-probs are then the base's, bit for bit, and
    every k1 and k3 term is exactly 0."""
    return all(not bool(mx.any(m.lora_b != 0)) for _, m in model.named_modules() if hasattr(m, "lora_b"))


def kl_passes(prompt_ids: list[list[int]], tokens: list[list[int]], rows: int) -> list[list[int]]:
    """The replies (indices) of each forward pass: consecutive replies to one prompt together (so
    the pass runs that prompt once), at most ``rows`` a pass; a prompt's lone reply is pooled with
    others' up to ``rows``. Replies without a token are left out."""
    passes, pooled = [], []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and list(prompt_ids[j]) == list(prompt_ids[i]):
            j += 1
        run = [k for k in range(i, j) if tokens[k]]
        for s in range(0, len(run), rows):
            chunk = run[s : s + rows]
            if len(chunk) > 1:
                passes.append(chunk)
                continue
            pooled += chunk
            if len(pooled) == rows:
                passes.append(pooled)
                pooled = []
        i = j
    return passes + ([pooled] if pooled else [])


def kl_rows(
    model,
    prompt_ids: list[list[int]],
    tokens: list[list[int]],
    temperature: float,
    pad_id: int,
    rows: int = KL_ROWS,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[float], list[float], list[int]]:
    """Per reply, in order: the sums of its k1 and of its k3 terms, and its token count, for
    ``model`` (LoRA on) against its LoRA-off base, on ``tokens``: replies the policy sampled at
    ``temperature`` after ``prompt_ids`` (one prompt per reply). A reply without a token adds 0.
    ``progress(n)`` is called after each ``n`` replies."""
    if temperature <= 0:
        raise ValueError(f"the KL is estimated at the sampling temperature, which must be > 0 (got {temperature})")
    if len(prompt_ids) != len(tokens):
        raise ValueError(f"{len(prompt_ids)} prompts for {len(tokens)} replies; give one prompt per reply")
    k1_rows, k3_rows = [0.0] * len(tokens), [0.0] * len(tokens)
    if policy_is_base(model):  # every term is exactly 0: nothing to run (a run's step 0)
        if progress is not None:
            progress(len(tokens))
        return k1_rows, k3_rows, [len(t) for t in tokens]
    passes = kl_passes(prompt_ids, tokens, rows)
    if progress is not None and sum(map(len, passes)) < len(tokens):
        progress(len(tokens) - sum(map(len, passes)))  # replies without a token: nothing to run
    for idx in passes:
        batch = make_completion_batch([prompt_ids[i] for i in idx], [tokens[i] for i in idx],
                                      [[0.0] * len(tokens[i]) for i in idx], pad_id, share_prompt=True)
        frozen = frozen_states(model, batch)  # blocks without LoRA: the same for policy and base
        policy = completion_logprobs(model, batch, temperature, frozen=frozen)
        with lora_disabled(model):
            base = completion_logprobs(model, batch, temperature, frozen=frozen)
        k1, k3 = kl_terms(policy, base, batch.mask)
        mx.eval(k1, k3)
        for i, a, b in zip(idx, np.asarray(k1).tolist(), np.asarray(k3).tolist()):
            k1_rows[i], k3_rows[i] = a, b
        if progress is not None:
            progress(len(idx))
    return k1_rows, k3_rows, [len(t) for t in tokens]


def kl_to_base(
    model,
    prompt_ids: list[list[int]],
    tokens: list[list[int]],
    temperature: float,
    pad_id: int,
    rows: int = KL_ROWS,
    progress: Callable[[int], None] | None = None,
) -> KLEstimate:
    """KL(policy || base) of ``model`` (LoRA on) from its LoRA-off base, estimated on ``tokens``
    (``kl_rows``), per token and per reply.

    Any LoRA model works (a training run's policy, a checkpoint loaded for evaluation).
    """
    return summarize_kl(*kl_rows(model, prompt_ids, tokens, temperature, pad_id, rows, progress), temperature)
