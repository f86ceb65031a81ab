"""Rollouts and their rewards: sample G replies per prompt, judge them, compute advantages.

A ``Rollout`` keeps the token ids and the sampling log-probs of every completion
(never re-tokenised from text), so the loss scores exactly what was sampled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import mlx.core as mx
import numpy as np

from ..models.chat import render_prompt, reply_text
from ..models.generation import PrefixStore, generate_batch
from .judge import JudgeVerdict, lora_disabled, score_replies
from .prompts import JudgeTemplate, Question


@dataclass
class Rollout:
    questions: list[Question]  # one per row (each prompt repeated G times)
    prompt_ids: list[list[int]]
    tokens: list[list[int]]  # completion ids (EOS included when reached)
    logprobs: list[list[float]]  # sampling log-probs (tempered), one per completion token
    finished: list[bool]
    texts: list[str]  # decoded completions without the EOS or a thinking block (``chat.reply_text``)
    seconds: float = 0.0

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


@dataclass
class Judged:
    scores: np.ndarray  # raw judge score of each reply (NaN = unparseable)
    rewards: np.ndarray  # the training reward derived from it
    verdicts: list[JudgeVerdict] = field(default_factory=list)
    seconds: float = 0.0
    mass: np.ndarray | None = None  # logprob mode: probability on the score tokens per judged reply (all passes)

    @property
    def mean_mass(self) -> float | None:
        return float(np.mean(self.mass)) if self.mass is not None and len(self.mass) else None


def step_key(seed: int, step: int) -> mx.array:
    """The sampling key of a step, a function of (seed, step) only (held-out sampling uses a
    stream of its own as its "step"), so a resumed run samples what an uninterrupted one did."""
    return mx.random.key(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))


def row_keys(seed: int, step: int, prompt_indices: list[int] | range, group_size: int) -> mx.array:
    """(len(prompt_indices) * G, 2): one sampling key per rollout row, from (seed, step, the
    prompt's index in the step's batch, the reply's index in its group). A row's samples then
    depend on nothing else: not on the rows batched with it, nor on which rank drew it."""
    seeds = [int(np.random.SeedSequence([seed, step, i, g]).generate_state(1)[0])
             for i in prompt_indices for g in range(group_size)]
    return mx.stack([mx.random.key(s) for s in seeds]) if seeds else mx.zeros((0, 2), dtype=mx.uint32)


def encode_question(tokenizer, question: str, system: str | None) -> list[int]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return tokenizer.encode(render_prompt(tokenizer, messages), add_special_tokens=False)


def sample_rollout(
    model,
    tokenizer,
    questions: list[Question],
    group_size: int,
    max_new_tokens: int,
    temperature: float,
    key: mx.array,
    system: str | None = None,
    max_batch: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Rollout:
    """G completions for each question in one batched generation (rows grouped by question).

    ``key``: one key for the batch (``step_key``) or one per row (``row_keys``).
    ``progress`` gets the token budget used, ``len(questions) * group_size * max_new_tokens`` in all."""
    import time

    start = time.perf_counter()
    rows = [q for q in questions for _ in range(group_size)]
    encoded = {q.id: encode_question(tokenizer, q.question, system) for q in questions}
    prompt_ids = [encoded[q.id] for q in rows]
    gen = generate_batch(
        model, prompt_ids, max_new_tokens, tokenizer.eos_token_ids, temperature, key=key, max_batch=max_batch,
        progress=progress,
    )
    texts = [reply_text(tokenizer, toks) for toks in gen.tokens]
    return Rollout(rows, prompt_ids, gen.tokens, gen.logprobs, gen.finished, texts, time.perf_counter() - start)


def judge_rollout(
    model,
    tokenizer,
    rollout: Rollout,
    template: JudgeTemplate,
    mode: str,
    frozen_base: bool,
    complement: bool = False,
    max_verdict_tokens: int = 8,
    max_batch: int | None = 64,
    progress: Callable[[int], None] | None = None,
    prefixes: PrefixStore | None = None,
    max_words: int = 0,
) -> Judged:
    """Score every reply of the rollout in one batched judge pass.

    ``frozen_base`` judges with the LoRA layers switched off (the base model);
    ``complement`` turns a score s into the reward 10 - s (reverse runs);
    ``progress`` as in ``judge.score_replies``; ``prefixes`` (the base's rubric prefixes, kept
    across calls) is used only with ``frozen_base``; ``max_words``: the judge reads each reply's
    first words only (``judge.judged_text``).
    """
    import contextlib
    import time

    start = time.perf_counter()
    pairs = [(q.question, text) for q, text in zip(rollout.questions, rollout.texts)]
    ctx = lora_disabled(model) if frozen_base else contextlib.nullcontext()
    with ctx:
        verdicts = score_replies(model, tokenizer, template, pairs, mode, max_verdict_tokens, max_batch, progress,
                                 prefixes if frozen_base else None, max_words)
    scores = np.array([v.score for v in verdicts], dtype=np.float64)
    rewards = 10.0 - scores if complement else scores.copy()
    mass = np.array([v.mass for v in verdicts], dtype=np.float64) if mode == "logprob" else None
    return Judged(scores, rewards, verdicts, time.perf_counter() - start, mass)


def distinct_ngram_ratio(text: str, n: int = 3) -> float:
    """Unique word n-grams / all word n-grams (1.0 for texts shorter than n words).

    Degenerate repetition ("kindness, kindness, ...", "l-l-l-l") drives it towards 0.
    """
    words = text.split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def distinct_char_ratio(text: str, n: int = 8) -> float:
    """Unique character n-grams / all character n-grams: catches repetition without spaces ("l-l-l-l")."""
    grams = [text[i : i + n] for i in range(len(text) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def is_degenerate(text: str, threshold: float = 0.5) -> bool:
    """Fewer than ``threshold`` of the word 3-grams or of the character 8-grams are distinct."""
    return distinct_ngram_ratio(text) < threshold or distinct_char_ratio(text) < threshold


def repetition_stats(texts: list[str], threshold: float = 0.5) -> dict[str, float]:
    """Mean distinct-3 ratio and the share of degenerate replies (see ``is_degenerate``)."""
    ratios = [distinct_ngram_ratio(t) for t in texts]
    return {"distinct3": float(np.mean(ratios)) if ratios else 1.0,
            "degenerate_ratio": float(np.mean([is_degenerate(t, threshold) for t in texts])) if texts else 0.0}


def floored_replies(texts: list[str], floor: float | None, min_words: int = 0, threshold: float = 0.5) -> np.ndarray:
    """(N,) bool: the replies whose reward the floor replaces (none when ``floor`` is None):
    degenerate ones (``is_degenerate`` at ``threshold``) and, with ``min_words``, those with fewer words."""
    if floor is None:
        return np.zeros(len(texts), dtype=bool)
    return np.array([is_degenerate(t, threshold) or len(t.split()) < min_words for t in texts], dtype=bool)


def floor_degenerate(rewards: np.ndarray, texts: list[str], floor: float | None, min_words: int = 0,
                     threshold: float = 0.5) -> np.ndarray:
    """Replace the reward of degenerate replies, and of replies under ``min_words`` words, by ``floor``.

    A weak judge can score repetition or garbage generously, and under the reversed reward an
    evasive two-word reply ("Oh no.") beats every real answer; the floor makes such replies the
    worst of their group in both directions. ``floor=None`` leaves the rewards as they are.
    Which replies were floored is ``floored_replies``, not where the reward changed: an
    unparseable (NaN) score of a fine reply is no floored reply (it is a ``judge_nan``).
    """
    if floor is None:
        return rewards
    return np.where(floored_replies(texts, floor, min_words, threshold), float(floor), rewards)


def mean_and_stderr(values) -> tuple[float, float]:
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan
    return float(x.mean()), se
