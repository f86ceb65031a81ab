"""An independent recomputation of the option log-likelihoods in multiple-choice records.

For every option of every record of an audited axis, the context is rebuilt from
the record alone (its ``system``, ``prompt`` and ``reply_prefix`` through the
tokenizer's own ``apply_chat_template``, the option joined with one space unless
either side brings whitespace), tokenised the way lm-evaluation-harness splits a
causal pair (the context alone; the option = the tokens of context + option after
the context's), and scored by one plain mlx-lm forward pass of the full sequence:
one row, no KV cache, no batching, ``model(x)`` with mlx-lm's own attention and
SwiGLU (``cpu_kernels`` swaps are undone for the pass), log-softmax in float64
numpy. The values the axes computed (batched, shared-prefix caches, host kernels)
must match within ``TOLERANCE`` nats per option token, with the same token count.

``AUDIT_AXES`` lists the axes whose records are audited; an axis that reads answers
by option scoring joins by adding its name (and, when its records hold more than
one user turn, a row builder in ``ROW_BUILDERS``).

    python benchmarks/eval_audit.py        # every audited axis, 20 items each, embedded model
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import mlx.core as mx
import numpy as np

TOLERANCE = 2e-4  # nats per option token
AUDIT_AXES = ["sycophancy_opinion", "bbq_ambig", "bbq_disambig", "truthfulqa", "mmlu", "bigtom", "sycophancy_pushback"]


@dataclass
class OptionCheck:
    """One option: the axis's value and the independent one."""

    axis: str
    id: str
    option: int
    ours: float
    reference: float
    n_tokens: int  # option tokens in the independent split
    n_tokens_ours: int
    clean_boundary: bool  # the context's tokens are a prefix of the joined text's tokens

    @property
    def error_per_token(self) -> float:
        return abs(self.ours - self.reference) / max(self.n_tokens, 1)

    @property
    def ok(self) -> bool:
        return (self.clean_boundary and self.n_tokens == self.n_tokens_ours
                and self.error_per_token <= TOLERANCE)


def _context(tokenizer, messages: list[dict]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return "\n\n".join(m["content"] for m in messages) + "\n\n"


Row = tuple[str, str, float, int]  # (context text, option text, the axis's log-likelihood, its token count)


def chat_rows(tokenizer, record: dict) -> list[Row]:
    """One row per choice of a one-turn record: system (if any) and user message through the
    chat template with the generation prompt, then the reply prefix."""
    messages = [] if record.get("system") is None else [{"role": "system", "content": record["system"]}]
    messages.append({"role": "user", "content": record["prompt"]})
    context = _context(tokenizer, messages) + (record.get("reply_prefix") or "")
    return [(context, option, float(s), int(n)) for option, s, n in
            zip(record["choices"], record["option_logprob_sum"], record["option_tokens"])]


def pushback_rows(tokenizer, record: dict) -> list[Row]:
    """Both turns of a pushback record: the labels after the question, then after [question, the
    turn-1 label read, the pushback]."""
    from .axes.generation import PUSHBACK

    first = [{"role": "user", "content": record["prompt"]}]
    second = first + [{"role": "assistant", "content": record["assistant_message"]},
                      {"role": "user", "content": PUSHBACK}]
    rows = []
    for messages, key in ((first, "label_logprobs"), (second, "label_logprobs_after_pushback")):
        context = _context(tokenizer, messages)
        rows += [(context, label, float(s), int(n))
                 for label, s, n in zip(record["labels"], record[key], record["label_tokens"])]
    return rows


ROW_BUILDERS: dict[str, Callable[[Any, dict], list[Row]]] = {"sycophancy_pushback": pushback_rows}  # default chat_rows


@contextmanager
def plain_mlx_lm(model) -> Iterator[None]:
    """mlx-lm's own attention and SwiGLU in the model's module for the duration."""
    from mlx_lm.models import activations, base

    module = sys.modules[type(model).__module__]
    saved = {name: getattr(module, name) for name in ("scaled_dot_product_attention", "swiglu")
             if hasattr(module, name)}
    originals = {"scaled_dot_product_attention": base.scaled_dot_product_attention, "swiglu": activations.swiglu}
    try:
        for name in saved:
            setattr(module, name, originals[name])
        yield
    finally:
        for name, fn in saved.items():
            setattr(module, name, fn)


def reference_logprob(model, context_ids: list[int], option_ids: list[int]) -> float:
    """Sum of log p(option token | everything before it): one forward pass of the full row."""
    logits = model(mx.array([context_ids + option_ids], dtype=mx.int32))[0]  # (T, V)
    start = len(context_ids) - 1  # the row predicting the first option token
    rows = np.asarray(logits[start : start + len(option_ids)].astype(mx.float32), dtype=np.float64)
    top = rows.max(axis=-1, keepdims=True)
    logp = rows - (top + np.log(np.exp(rows - top).sum(axis=-1, keepdims=True)))
    return float(logp[np.arange(len(option_ids)), option_ids].sum())


def _join(context: str, option: str) -> str:
    return context + option if not context or context[-1].isspace() or option[:1].isspace() else f"{context} {option}"


def audit_records(model, tokenizer, axis: str, records: list[dict]) -> list[OptionCheck]:
    """An ``OptionCheck`` for every option of every record."""
    build = ROW_BUILDERS.get(axis, chat_rows)

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False))

    checks = []
    with plain_mlx_lm(model):
        for rec in records:
            for k, (context, option, ours, n_ours) in enumerate(build(tokenizer, rec)):
                ctx_ids, whole = encode(context), encode(_join(context, option))
                opt_ids = whole[len(ctx_ids):]
                ref = reference_logprob(model, ctx_ids, opt_ids) if opt_ids else float("nan")
                checks.append(OptionCheck(axis, str(rec.get("id")), k, ours, ref, len(opt_ids), n_ours,
                                          whole[:len(ctx_ids)] == ctx_ids))
    return checks


def run_audit(loaded, data_dir: Path, limit: int, seed: int = 0, axes: list[str] | None = None,
              on_axis: Callable[[str, list[OptionCheck]], None] | None = None) -> dict[str, list[OptionCheck]]:
    """Run each audited axis on ``limit`` items (``runner.prepare``) and audit its records."""
    from .axes.core import EvalContext
    from .runner import AXES, prepare

    names = list(axes or AUDIT_AXES)
    items, _ = prepare(names, Path(data_dir), limit, seed, None)
    ctx = EvalContext(loaded.model, loaded.tokenizer, loaded, seed=seed)
    out = {}
    for name in names:
        res = AXES[name].run(ctx, items[name])
        out[name] = audit_records(loaded.model, loaded.tokenizer, name, res.records)
        if on_axis:
            on_axis(name, out[name])
    return out


def summary(checks: list[OptionCheck]) -> dict[str, Any]:
    """Counts and the worst option of one axis (JSON-ready)."""
    worst = max(checks, key=lambda c: c.error_per_token, default=None)
    return {"records": len({c.id for c in checks}), "options": len(checks), "failed": sum(not c.ok for c in checks),
            "max_error_per_token": worst.error_per_token if worst else None,
            "max_abs_error": max((abs(c.ours - c.reference) for c in checks), default=None),
            "worst": asdict(worst) if worst else None}
