"""The self-judge: the model scores replies 0-10 against a rubric.

By default the judge is the frozen base model: the policy's LoRA layers are
switched off (scale 0) while judging, so no second copy of the weights is held.
Two ways to read a score:

* ``text`` (the original study's way): the judge writes a short verdict and the
  first integer 0-10 in it is the score; no integer means NaN, counted and shown.
* ``logprob``: the expected score under the judge's next-token distribution over
  the score tokens, from one prefill without decoding. Tokenisers that split
  "10" into "1" + "0" (SmolLM2, Llama) get one extra cached step after "1":
  p(10) = p("1") p("0" | "1") and p(1) = p("1") (1 - p("0" | "1")).

In logprob mode each verdict also records ``mass``: the probability the judge put
on the score tokens before renormalising over them (1.0 = it would certainly write a
score next; a small mass means the expected score averages a distribution the judge
itself barely holds).

All judge prompts of a step go through the model as one batch.
"""

from __future__ import annotations

import math
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import mlx.core as mx
import numpy as np

from ..models.chat import render_prompt, reply_text
from ..models.generation import PrefixStore, generate_batch, next_token_logprobs, prefill
from .prompts import JudgeTemplate

SCORE_MODES = ("text", "logprob")
_SCORE_RE = re.compile(r"(?<![\d.])(10(?:\.0+)?|[0-9](?:\.\d+)?)(?!\d|\.\d)")


@dataclass
class JudgeVerdict:
    score: float  # 0-10, NaN when unparseable (text mode)
    text: str | None = None  # the verdict text (text mode)
    probs: list[float] | None = None  # p(score = 0..10) (logprob mode)
    mass: float | None = None  # probability on the score tokens before renormalising (logprob mode)


@contextmanager
def lora_disabled(model):
    """Temporarily switch every LoRA layer off (scale 0): the model is its base again."""
    layers = [m for _, m in model.named_modules() if hasattr(m, "lora_a") and hasattr(m, "scale")]
    scales = [m.scale for m in layers]
    try:
        for m in layers:
            m.scale = 0.0
        yield model
    finally:
        for m, s in zip(layers, scales):
            m.scale = s


def parse_score(text: str) -> float:
    """The first number 0-10 in a verdict ("Score: 7/10" -> 7, "7.5" -> 7.5); NaN when there is none."""
    m = _SCORE_RE.search(text)
    return float(m.group(1)) if m else math.nan


def judged_text(reply: str, max_words: int = 0) -> str:
    """What the judge reads of a reply: its first ``max_words`` whitespace-separated words
    (spacing kept), or all of it when ``max_words`` is 0. A length control: a judge that
    prefers longer replies cannot reward length beyond the window."""
    if max_words <= 0:
        return reply
    m = re.match(r"\s*(?:\S+\s+){%d}" % max_words, reply)
    return reply if m is None else m.group(0).rstrip()


def judge_prompts(tokenizer, template: JudgeTemplate, pairs: list[tuple[str, str]], mode: str = "text") -> list[list[int]]:
    """Token ids of the judge prompt for each (question, reply).

    Chat-format templates become the user turn of the chat template; completion-format
    (few-shot) templates are raw text the model continues, and in logprob mode they
    end with the space that precedes a score so the next token is the score digit.
    """
    out = []
    for question, reply in pairs:
        filled = template.render(question, reply)
        if template.format == "chat":
            text = render_prompt(tokenizer, [{"role": "user", "content": filled}])
        else:
            text = filled + (" " if mode == "logprob" else "")
        out.append(tokenizer.encode(text, add_special_tokens=False))
    return out


def check_completion_scoring(tokenizer) -> None:
    """Completion-format logprob scoring needs "Score: 7" to tokenise as "Score: " + "7"."""
    from ..errors import HmxError

    if tokenizer.encode("Score: 7", add_special_tokens=False) != tokenizer.encode(
        "Score: ", add_special_tokens=False
    ) + tokenizer.encode("7", add_special_tokens=False):
        raise HmxError(
            "this model's tokenizer merges a space into digits, so few-shot logprob judging cannot read "
            "the score token. Use --judge-mode text or a chat-format judge template."
        )


@dataclass
class ScoreTokens:
    digits: list[int]  # token id of "0".."9"
    ten: int | None  # token id of "10" when the tokenizer has one


def score_tokens(tokenizer) -> ScoreTokens:
    digits = []
    for d in range(10):
        ids = tokenizer.encode(str(d), add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"the tokenizer splits the digit {d} into {ids}; logprob scoring needs single-token digits")
        digits.append(ids[0])
    ten = tokenizer.encode("10", add_special_tokens=False)
    return ScoreTokens(digits, ten[0] if len(ten) == 1 else None)


def score_distribution(model, tokenizer, prompts: list[list[int]], max_batch: int | None = None) -> np.ndarray:
    """p(score = 0..10) for each judge prompt, (B, 11), renormalised over the score tokens."""
    return score_distribution_and_mass(model, tokenizer, prompts, max_batch)[0]


def score_distribution_and_mass(
    model, tokenizer, prompts: list[list[int]], max_batch: int | None = None,
    progress: Callable[[int], None] | None = None, prefixes: PrefixStore | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``score_distribution`` and, per prompt, the probability mass on the score tokens
    before renormalising, (B,). With "10" split into "1" + "0" the split of p("1") into
    p(1) and p(10) keeps its sum, so the mass is p(first token is a digit) in both cases.
    ``progress(n)`` is called after each batch of ``n`` prompts; ``prefixes``: see ``score_replies``."""
    st = score_tokens(tokenizer)
    if max_batch and len(prompts) > max_batch:
        parts = [score_distribution_and_mass(model, tokenizer, prompts[i : i + max_batch], progress=progress,
                                             prefixes=prefixes)
                 for i in range(0, len(prompts), max_batch)]
        return np.concatenate([p for p, _ in parts]), np.concatenate([m for _, m in parts])
    if st.ten is not None:
        lp = np.asarray(next_token_logprobs(model, prompts, prefixes=prefixes))  # (B, V)
        p = np.exp(lp[:, st.digits + [st.ten]].astype(np.float64))
    else:
        logits, cache = prefill(model, prompts, prefixes=prefixes)
        first = logits.astype(mx.float32)
        first = first - mx.logsumexp(first, axis=-1, keepdims=True)
        one = mx.full((len(prompts), 1), st.digits[1], dtype=mx.int32)
        second = model(one, cache=cache)[:, -1, :].astype(mx.float32)
        second = second - mx.logsumexp(second, axis=-1, keepdims=True)
        p_first = np.exp(np.asarray(first)[:, st.digits].astype(np.float64))  # (B, 10)
        p_zero_after_one = np.exp(np.asarray(second)[:, st.digits[0]].astype(np.float64))  # (B,)
        ten = p_first[:, 1] * p_zero_after_one
        p_first[:, 1] *= 1.0 - p_zero_after_one
        p = np.concatenate([p_first, ten[:, None]], axis=1)
    total = p.sum(axis=1, keepdims=True)
    if progress is not None:
        progress(len(prompts))
    return p / np.maximum(total, 1e-300), total[:, 0]


def judge_work(n_pairs: int, mode: str, max_verdict_tokens: int) -> tuple[int, str]:
    """What ``score_replies`` reports to its ``progress`` callback in total, and in what unit."""
    return (n_pairs, "replies") if mode == "logprob" else (n_pairs * max_verdict_tokens, "tokens")


def score_replies(
    model,
    tokenizer,
    template: JudgeTemplate,
    pairs: list[tuple[str, str]],
    mode: str = "logprob",
    max_verdict_tokens: int = 8,
    max_batch: int | None = 64,
    progress: Callable[[int], None] | None = None,
    prefixes: PrefixStore | None = None,
    max_words: int = 0,
) -> list[JudgeVerdict]:
    """Score every (question, reply) pair in one batched pass of the judge.

    ``progress`` receives the work done (see ``judge_work`` for its total and unit).
    ``prefixes`` keeps the rubric's shared prefix across calls; only for a judge whose weights
    never change between them (the frozen base), since a stored prefix is never recomputed.
    ``max_words``: the judge reads each reply's first words only (``judged_text``)."""
    if mode not in SCORE_MODES:
        raise ValueError(f"unknown judge mode {mode!r}; use one of {SCORE_MODES}")
    pairs = [(q, judged_text(r, max_words)) for q, r in pairs]
    prompts = judge_prompts(tokenizer, template, pairs, mode)
    if mode == "logprob":
        if template.format == "completion":
            check_completion_scoring(tokenizer)
        probs, mass = score_distribution_and_mass(model, tokenizer, prompts, max_batch, progress, prefixes)
        expected = probs @ np.arange(11, dtype=np.float64)
        return [JudgeVerdict(float(s), probs=p.tolist(), mass=float(m)) for s, p, m in zip(expected, probs, mass)]
    gen = generate_batch(model, prompts, max_verdict_tokens, tokenizer.eos_token_ids, 0.0, max_batch=max_batch,
                         progress=progress, prefixes=prefixes)
    texts = [reply_text(tokenizer, toks) for toks in gen.tokens]
    return [JudgeVerdict(parse_score(t), text=t) for t in texts]
