"""The drift axis: how far a checkpoint moved from its base on things unrelated to feelings.

The study assumed that human-like and machine-like training "degrade performance to a
similar degree", and matched them on KL measured on the training prompts, a weak proxy.
This axis measures the distance where the benchmarks live:

- **general prompts** (half TruthfulQA questions, half MMLU questions, without options):
  the policy answers each once, sampled at the run's training temperature, and
  KL(policy || base) is estimated on those replies with both log-probs at that temperature
  (``divergence.kl_rows``: per reply, k3, nats; and per token);
- **reference answers** (half GSM8K reference solutions, half TruthfulQA true answers as the
  assistant's reply to their question): the change of their log-likelihood per token,
  policy minus base. Negative: the checkpoint finds correct reference text less likely.

The base is the same model with its LoRA layers switched off, so a base model (no adapter)
measures exactly 0 on every item. The items do not depend on the model: the same prompts
for every checkpoint, so the comparison pairs them.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import loaders as D
from ..datasets import truthfulqa as TQA
from ..datasets.items import AXIS_FILES, GenItem
from ..protocols import protocol_settings
from .core import Axis, AxisResult, EvalContext, MetricSpec

DEFAULT_ITEMS = 50  # per kind (general prompts, reference answers) when --limit is not given


def _pick(items: list, n: int, seed: int, salt: int) -> list:
    """``n`` items of a list, drawn by a seeded permutation (file order would favour one topic)."""
    order = np.random.default_rng([seed, salt]).permutation(len(items))
    return [items[int(i)] for i in order[:n]]


def _load(d: Path, limit: int | None, seed: int, _cfg: Any) -> list[GenItem]:
    n = limit or DEFAULT_ITEMS
    mmlu = D.load_mmlu(Path(d) / "mmlu")
    mc1 = TQA.load_truthfulqa_mc1(Path(d) / "truthfulqa")
    gsm = D.load_gsm8k(Path(d) / "gsm8k")
    general = ([GenItem(f"drift/general/truthfulqa/{it.id}", it.prompt, "", {"kind": "general"})
                for it in _pick(mc1, n - n // 2, seed, 1)]
               + [GenItem(f"drift/general/mmlu/{it.id}", it.prompt, "", {"kind": "general"})
                  for it in _pick(mmlu, n // 2, seed, 2)])
    reference = ([GenItem(f"drift/reference/gsm8k/{it.id}", it.prompt, it.meta["solution"],
                          {"kind": "reference", "source": "gsm8k"}) for it in _pick(gsm, n - n // 2, seed, 3)]
                 + [GenItem(f"drift/reference/truthfulqa/{it.id}", it.prompt, it.choices[it.correct[0]],
                            {"kind": "reference", "source": "truthfulqa"}) for it in _pick(mc1, n // 2, seed, 4)])
    return general + reference


def _files(d: Path, _cfg: Any) -> list[Path]:
    return [Path(d) / "mmlu" / AXIS_FILES["mmlu"]["files"][0],
            Path(d) / "truthfulqa" / AXIS_FILES["truthfulqa_mc1"]["files"][0],
            Path(d) / "gsm8k" / AXIS_FILES["gsm8k"]["files"][0]]


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def _se(values: list[float]) -> float:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.std(vals, ddof=1) / math.sqrt(len(vals))) if len(vals) > 1 else float("nan")


def _run(ctx: EvalContext, items: list[GenItem]) -> AxisResult:
    from ...models.completions import pad_id
    from ...training.divergence import kl_rows
    from ...training.judge import lora_disabled
    from ...training.prompts import Question
    from ...training.rollout import sample_rollout
    from ...training.trainer import step_key
    from .core import user_prompt
    from .scoring import option_logprobs

    start = time.perf_counter()
    config = replace(ctx.config, seed=ctx.seed)
    general = [it for it in items if it.meta["kind"] == "general"]
    reference = [it for it in items if it.meta["kind"] == "reference"]
    if not _has_lora(ctx.model):  # a base model is its own base: every distance is exactly 0
        return _zero(items, time.perf_counter() - start, config)
    records: list[dict] = []
    if general:
        questions = [Question(it.id, "custom", it.prompt) for it in general]
        rollout = sample_rollout(ctx.model, ctx.tokenizer, questions, 1, config.max_new_tokens, config.temperature,
                                 step_key(config.seed, DRIFT_STREAM), config.system_prompt,
                                 max_batch=ctx.batch_size)
        k1, k3, lengths = kl_rows(ctx.model, rollout.prompt_ids, rollout.tokens, config.temperature,
                                  pad_id(ctx.tokenizer))
        for it, text, a, b, n in zip(general, rollout.texts, k1, k3, lengths):
            records.append({"id": it.id, "kind": "general", "prompt": it.prompt, "output": text, "tokens": n,
                            "kl_reply": b, "kl_reply_k1": a})
    if reference:
        contexts = [user_prompt(ctx.tokenizer, it.prompt) for it in reference]
        options = [it.reference for it in reference]
        policy = option_logprobs(ctx.model, ctx.tokenizer, contexts, options, batch_rows=ctx.score_rows)
        with lora_disabled(ctx.model):
            base = option_logprobs(ctx.model, ctx.tokenizer, contexts, options, batch_rows=ctx.score_rows)
        for it, (p, n), (b, _) in zip(reference, policy, base):
            delta = (p - b) / n
            source = it.meta["source"]
            records.append({"id": it.id, "kind": "reference", "source": source, "prompt": it.prompt,
                            "reference": it.reference, "ref_tokens": n, "policy_logprob": p, "base_logprob": b,
                            "ref_delta": delta, **{f"ref_delta_{s}": (delta if s == source else None)
                                                   for s in ("gsm8k", "truthfulqa")}})
    gen = [r for r in records if r["kind"] == "general"]
    tokens = sum(r["tokens"] for r in gen)
    metrics = {
        "kl_general_token": sum(r["kl_reply"] for r in gen) / tokens if tokens else float("nan"),
        "kl_general_reply": _mean([r["kl_reply"] for r in gen]),
        "kl_general_reply_se": _se([r["kl_reply"] for r in gen]),
        "ref_loglik_delta": _mean([r.get("ref_delta") for r in records]),
        "ref_loglik_delta_gsm8k": _mean([r.get("ref_delta_gsm8k") for r in records]),
        "ref_loglik_delta_truthfulqa": _mean([r.get("ref_delta_truthfulqa") for r in records]),
        "n_general": float(len(gen)), "n_reference": float(len(records) - len(gen)),
    }
    settings = {**DRIFT.settings, "temperature": config.temperature, "max_new_tokens": config.max_new_tokens}
    return AxisResult("drift", metrics, records, time.perf_counter() - start, DRIFT.specs, settings)


def _has_lora(model) -> bool:
    return any(hasattr(m, "lora_a") for _, m in model.named_modules())


def _zero(items: list[GenItem], seconds: float, config) -> AxisResult:
    """The drift of a model without adapter: 0 on every item, nothing sampled or scored."""
    records = []
    for it in items:
        if it.meta["kind"] == "general":
            records.append({"id": it.id, "kind": "general", "prompt": it.prompt, "kl_reply": 0.0,
                            "kl_reply_k1": 0.0})
        else:
            source = it.meta["source"]
            records.append({"id": it.id, "kind": "reference", "source": source, "prompt": it.prompt,
                            "reference": it.reference, "ref_delta": 0.0,
                            **{f"ref_delta_{s}": (0.0 if s == source else None) for s in ("gsm8k", "truthfulqa")}})
    n_gen = sum(r["kind"] == "general" for r in records)
    metrics = {"kl_general_token": 0.0, "kl_general_reply": 0.0, "kl_general_reply_se": 0.0, "ref_loglik_delta": 0.0,
               "ref_loglik_delta_gsm8k": 0.0, "ref_loglik_delta_truthfulqa": 0.0, "n_general": float(n_gen),
               "n_reference": float(len(records) - n_gen)}
    settings = {**DRIFT.settings, "temperature": config.temperature, "max_new_tokens": config.max_new_tokens,
                "base_model": "no adapter: 0 by definition, nothing sampled"}
    return AxisResult("drift", metrics, records, seconds, DRIFT.specs, settings)


DRIFT_STREAM = 2_000_003  # seed stream of the drift axis's sampling (apart from training and held-out keys)

DRIFT = Axis(
    "drift", "distance from the base on general prompts (KL) and reference answers (log-likelihood change)",
    _load, _run, _files, "",
    {"kl_general_reply": MetricSpec(False, False, "kl_reply"), "kl_general_token": MetricSpec(False, False, None),
     "ref_loglik_delta": MetricSpec(True, False, "ref_delta"),
     "ref_loglik_delta_gsm8k": MetricSpec(True, False, "ref_delta_gsm8k"),
     "ref_loglik_delta_truthfulqa": MetricSpec(True, False, "ref_delta_truthfulqa")},
    {"kind": "distance to the base (LoRA off)", **protocol_settings("drift"),
     "prompt_format": "general: the question as the user message (chat template), one reply sampled at the run's "
     "training temperature, KL(policy || base) with both log-probs at that temperature (k3 per reply, nats; and "
     "per token); reference: the reference text as the assistant reply, log-likelihood per token policy minus base; "
     "--limit N = N general prompts and N reference answers (default 50 each)"},
)
