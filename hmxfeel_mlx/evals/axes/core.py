"""What an evaluation axis is, and the two ways axes query the model.

An ``Axis`` loads its items (before the model loads, so bad data fails fast),
names the data files it read (hashed into the result), runs on an
``EvalContext`` and returns an ``AxisResult``: metrics computed by
``evals.metrics`` only, one record per item (prompt, model output or option
scores, extracted answer, correctness) and a ``MetricSpec`` per metric saying
which way is better, whether it counts in the headline, and which record field
averages to it (for bootstrap intervals in ``compare``).

Prompt formats (every axis): the item text is the *user* message of the model's
chat template (``chat.render_prompt``, thinking off), with no system message of
ours (a model whose template adds a default one keeps it), so base, forward and
reverse models see identical prompts whatever system prompt a run trained with;
the one exception is a system message the benchmark's reference protocol itself
sets (MMLU's description, BigToM's instruction: ``MCItem.system``).
- Multiple choice: each option is scored as the assistant's reply text by its
  log-likelihood (``evals.axes.scoring``; the rendered prompt ends with the assistant
  header, so the option follows it with no extra space), after the reply prefix a
  protocol prefills (``MCItem.reply_prefix``, e.g. BigToM's "Answer:"); the
  prediction is the option with the highest score, the first on ties. Options are
  answer texts or labels ("A", "(A)", "a)"); see ``choice`` for each axis's choice
  and normalisation (sum of log-probs, or mean per token for answer texts of
  different lengths).
- Generation: greedy (temperature 0), batched (``generation.generate_batch``), a
  per-axis token budget (``GEN_TOKENS``), the reply decoded without EOS or a thinking
  block (``chat.reply_text``). A reply
  ends early once its answer is complete (``generation.GEN_STOPS``): HaluEval once it starts
  with Yes/No, GSM8K after its "#### <number>" line. EQ-Bench follows its reference
  (v2.1): up to 3 sampled attempts of 60 tokens at its temperatures, no stop rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ...errors import HmxError
from ...models.chat import render_prompt, reply_text
from ..datasets.items import AXIS_FILES, MCItem

EVAL_SCHEMA = "hmxfeel_mlx.eval/1"  # the "schema" field of every result file
# The order of the list; `--axes all` runs them in this order.
AXIS_ORDER = ["feeling", "sycophancy_pushback", "sycophancy_opinion", "bbq_ambig", "bbq_disambig", "truthfulqa",
              "halueval", "mmlu", "gsm8k", "eqbench", "bigtom", "selfaware", "drift"]
# New-token budgets of the generation axes (recorded in every result).
GEN_TOKENS = {"sycophancy_pushback": 64, "halueval": 32, "gsm8k": 256, "eqbench": 60, "selfaware": 128}
MC_PROMPT = "user message = the item text; each option scored as the assistant reply (chat template)"
GEN_PROMPT = "user message = the item text (chat template); greedy reply"


@dataclass(frozen=True)
class MetricSpec:
    """How to read a metric: better direction, headline membership, per-item field."""

    higher_is_better: bool | None  # None: two-sided (a label preference), neither direction is better
    headline: bool = True
    item_field: str | None = None  # record field whose mean (None/NaN skipped) equals the metric


@dataclass
class AxisResult:
    name: str
    metrics: dict[str, float]
    records: list[dict]
    seconds: float
    specs: dict[str, MetricSpec] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # normalisation, prompt format, token budget

    def to_dict(self) -> dict:
        return {"metrics": {k: _num(v) for k, v in self.metrics.items()},
                "metric_specs": {k: asdict(v) for k, v in self.specs.items()}, "settings": self.settings,
                "n": len(self.records), "seconds": self.seconds, "records": self.records}


@dataclass
class EvalContext:
    """What an axis needs at run time."""

    model: Any
    tokenizer: Any
    loaded: Any  # LoadedModel (the feeling axis passes it to trainer.evaluate_heldout)
    seed: int = 0
    batch_size: int = 64  # rows per generation batch (CPU decode: 64 rows ~1.9x the tokens/s of 16)
    score_rows: int = 32  # option rows per scoring batch
    config: Any = None  # TrainConfig for the feeling axis
    world: Any = None  # distributed.world.World: the ranks sharing the model queries (None: this process)


@dataclass(frozen=True)
class Axis:
    name: str
    description: str
    load: Callable[[Path, int | None, int, Any], list]  # (axis data dir, limit, seed, config) -> items
    run: Callable[[EvalContext, list], AxisResult]
    files: Callable[[Path, Any], list[Path]]  # the data files it reads (hashed), given the axis data dir
    folder: str | None  # its folder under the data dir (None: not from the data dir)
    specs: dict[str, MetricSpec] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def _num(v: Any) -> Any:
    """JSON-safe numbers: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def clean(obj: Any) -> Any:
    """Recursively replace NaN/inf by None so result files are strict JSON."""
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    return _num(obj)


def flag(v: bool | None) -> float | None:
    return None if v is None else float(bool(v))


def folder_files(axis: str) -> Callable[[Path, Any], list[Path]]:
    """The files ``AXIS_FILES[axis]`` names inside the axis folder."""
    return lambda d, _cfg: [Path(d) / f for f in AXIS_FILES[axis]["files"]]


# --------------------------------------------------------------------- prompts
def user_prompt(tokenizer, text: str, history: Sequence[dict] = ()) -> str:
    return render_prompt(tokenizer, [*history, {"role": "user", "content": text}])


def lettered(question: str, choices: Sequence[str], instruction: str | None = None) -> str:
    """Question, options "A. ..", and an instruction to answer with a letter."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(choices)]
    body = "\n".join(f"{L}. {c}" for L, c in zip(letters, choices))
    ask = instruction or f"Answer with the letter of the correct option ({', '.join(letters)})."
    return f"{question}\n\n{body}\n\n{ask}"


# ---------------------------------------------------------- multiple choice
def mc_context(tokenizer, item: MCItem) -> str:
    """The text an item's options continue: its chat prompt (the item's own system message,
    if any, then the user message), then the reply's start ``item.reply_prefix``."""
    system = [{"role": "system", "content": item.system}] if item.system is not None else []
    return user_prompt(tokenizer, item.prompt, system) + item.reply_prefix


def score_mc(ctx: EvalContext, items: Sequence[MCItem], normalisation: str) -> tuple[list[int], list[dict]]:
    """Option log-likelihoods for every item; returns predictions and one record per item.

    ``normalisation``: "sum" (sum of option-token log-probs) or "mean" (per token).
    Records keep the raw sums and token counts so any normalisation can be redone, and
    the system message, user message and reply prefix the context was built from.
    """
    from .scoring import option_logprobs

    if normalisation not in ("sum", "mean"):
        raise ValueError(f"normalisation must be 'sum' or 'mean' (got {normalisation!r})")
    from ...distributed.sharding import map_items

    def score(share: range) -> list[list]:
        contexts, options = [], []
        for it in (items[i] for i in share):
            ctx_text = mc_context(ctx.tokenizer, it)
            contexts += [ctx_text] * len(it.choices)  # consecutive rows share the context (computed once)
            options += list(it.choices)
        rows = option_logprobs(ctx.model, ctx.tokenizer, contexts, options, batch_rows=ctx.score_rows)
        out, k = [], 0
        for it in (items[i] for i in share):
            out.append([list(r) for r in rows[k : k + len(it.choices)]])
            k += len(it.choices)
        return out

    scored = [tuple(row) for per_item in map_items(ctx.world, len(items), score) for row in per_item]
    preds, records, k = [], [], 0
    for it in items:
        rows = scored[k : k + len(it.choices)]
        k += len(it.choices)
        sums, ntok = [s for s, _ in rows], [n for _, n in rows]
        scores = sums if normalisation == "sum" else [s / n for s, n in rows]
        pred = int(np.argmax(scores))  # first maximum on ties
        preds.append(pred)
        records.append({"id": it.id, "system": it.system, "prompt": it.prompt, "reply_prefix": it.reply_prefix,
                        "choices": list(it.choices), "option_logprob_sum": sums,
                        "option_tokens": ntok, "option_scores": scores, "pred": pred, "correct_index": it.correct,
                        "correct": float(pred in it.correct)})
    return preds, records


# ---------------------------------------------------------------- generation
def generate_replies(ctx: EvalContext, prompts: Sequence[str], max_tokens: int,
                     stop_text: Callable[[str], bool] | None = None, loop_stop: bool = False,
                     temperature: float = 0.0, key: Any = None) -> list[dict]:
    """Greedy replies to rendered prompts, batched; each {text, tokens, finished, stopped, loop}.
    With ``temperature`` > 0 they are sampled with the MLX ``key`` (``generate_batch``'s chunks).

    Rows are generated shortest prompt first and the batch is kept full as rows finish
    (``generate_batch``'s continuous batching); replies come back in input order (padding
    is masked, so batching changes results only by float rounding). ``stop_text(reply)``
    ends a reply early when its answer is complete (``stopped``); ``loop_stop`` also ends
    one caught in a repetition loop (``generation.repetition_loop``; ``stopped`` and ``loop``).
    """
    from ...models.generation import generate_batch, repetition_loop

    tok = ctx.tokenizer
    ids = [list(tok.encode(p, add_special_tokens=False)) for p in prompts]
    if not ids:
        return []

    def stop(toks: list[int]) -> bool:
        return (stop_text is not None and stop_text(reply_text(tok, toks))) or (loop_stop and repetition_loop(toks))

    from ...distributed.sharding import map_chunks, map_items

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    rule = stop if stop_text is not None or loop_stop else None

    def run(rows: list[list[int]], k) -> list[list]:
        gen = generate_batch(ctx.model, rows, max_tokens, tok.eos_token_ids, temperature, k, max_batch=ctx.batch_size,
                             stop=rule)
        return [[t, bool(f), bool(s)] for t, f, s in zip(gen.tokens, gen.finished, gen.stopped)]

    sorted_ids = [ids[i] for i in order]
    if ctx.world is None or not ctx.world.distributed:
        gens = run(sorted_ids, key)
    elif temperature > 0 and len(ids) > ctx.batch_size:  # each chunk draws with its own key: split by chunk
        import mlx.core as mx

        size = ctx.batch_size
        keys = mx.random.split(key, -(-len(ids) // size))
        gens = map_chunks(ctx.world, len(keys), lambda c: run(sorted_ids[c * size : (c + 1) * size], keys[c]))
    elif temperature > 0:  # one batch, one key: its draws are shared by its rows, so one rank samples it
        from ...distributed.collectives import broadcast_object

        gens = broadcast_object(run(sorted_ids, key) if ctx.world.main else None, ctx.world)
    else:
        gens = map_items(ctx.world, len(ids), lambda share: run([sorted_ids[j] for j in share], None))
    out: list[dict] = [{}] * len(ids)
    for j, i in enumerate(order):
        toks, finished, stopped = gens[j]
        text = reply_text(tok, toks)
        loop = stopped and loop_stop and not (stop_text is not None and stop_text(text))
        out[i] = {"text": text, "tokens": len(toks), "finished": finished, "stopped": stopped, "loop": loop}
    return out


def generate_attempts(ctx: EvalContext, prompts: Sequence[str], max_tokens: int, temperatures: Sequence[float],
                      keys: Sequence[Any], accepted: Callable[[int, str], bool]) -> list[list[dict]]:
    """Up to ``len(temperatures)`` sampled replies per rendered prompt: attempt ``k`` asks again, at
    ``temperatures[k]`` with ``keys[k]``, the prompts whose last reply was not ``accepted(i, text)``.
    Returns each prompt's attempts ({text, tokens, finished, stopped}).

    Prompts run shortest first in chunks of ``ctx.batch_size``; chunk ``c`` of attempt ``k`` draws
    with ``split(keys[k], n_chunks)[c]`` (``keys[k]`` itself when there is one chunk), so a chunk
    samples the same on whichever rank runs it. On the CPU backend every attempt decodes from
    the chunk's first prefill (``models.attempts``)."""
    import mlx.core as mx

    from ...distributed.collectives import broadcast_object
    from ...distributed.sharding import map_chunks
    from ...models.attempts import sample_attempts
    from ...models.backend import cpu_speedups

    tok = ctx.tokenizer
    ids = [list(tok.encode(p, add_special_tokens=False)) for p in prompts]
    if not ids:
        return []
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    size = max(1, ctx.batch_size or len(ids))
    n_chunks = -(-len(ids) // size)
    chunk_keys = [[k] if n_chunks == 1 else list(mx.random.split(k, n_chunks)) for k in keys]

    def run(c: int) -> list[list]:
        rows = order[c * size : (c + 1) * size]
        got = sample_attempts(ctx.model, [ids[i] for i in rows], max_tokens, tok.eos_token_ids, list(temperatures),
                              [ks[c] for ks in chunk_keys], lambda j, toks: accepted(rows[j], reply_text(tok, toks)),
                              reuse=cpu_speedups())
        return [[[t, f, s] for t, f, s in r] for r in got]

    world = ctx.world
    if world is None or not world.distributed:
        gens = [g for c in range(n_chunks) for g in run(c)]
    elif n_chunks > 1:
        gens = map_chunks(world, n_chunks, run)
    else:  # one batch, one key per attempt: its draws are shared by its rows, so one rank samples it
        gens = broadcast_object(run(0) if world.main else None, world)
    out: list[list[dict]] = [[] for _ in ids]
    for j, i in enumerate(order):
        out[i] = [{"text": reply_text(tok, t), "tokens": len(t), "finished": f, "stopped": s} for t, f, s in gens[j]]
    return out


def check_axes(names: Sequence[str], known: Sequence[str]) -> list[str]:
    """Validate axis names ("all" = every axis), keeping ``known`` order; HmxError lists the valid ones."""
    wanted = [n.strip().lower() for n in names if n.strip()]  # --axes MMLU means mmlu
    if not wanted or "all" in wanted:
        return list(known)
    bad = [n for n in wanted if n not in known]
    if bad:
        raise HmxError(f"unknown axis {', '.join(repr(b) for b in bad)}. Valid axes: {', '.join(known)} (or 'all').")
    return [n for n in known if n in wanted]
