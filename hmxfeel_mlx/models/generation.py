"""Batched generation and scoring with a KV cache, keeping token ids and log-probs.

Used by GRPO rollouts (sampling, with the sampling log-probs kept for the loss),
the text-mode judge and the evaluation suite (greedy). Prompts are left-padded
and run with mlx-lm's ``BatchKVCache``, which masks the padding and offsets the
rotary positions per row, so a padded row computes exactly what it would alone.
Rows that reach EOS are dropped from the batch, so short replies cost nothing
while long ones finish.

Randomness is explicit: sampling takes an MLX ``key`` that seeds one numpy
generator for the batch (sampling runs in numpy, see ``sample_tokens``), or one key
per row (shape (n, 2)): each row then draws from its own generator, so its samples do
not depend on which other rows share its batch (data-parallel rollouts).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import mlx.core as mx
import numpy as np

from .cpu_kernels import inference


@dataclass
class Generation:
    """Completions for a batch of prompts, in prompt order."""

    tokens: list[list[int]]  # completion ids, EOS included when reached
    logprobs: list[list[float]]  # log p(token) under the (tempered) sampling distribution
    finished: list[bool]  # reached EOS (False = truncated at max_tokens, or stopped)
    prompt_tokens: int = 0  # total prompt tokens processed
    meta: dict = field(default_factory=dict)
    stopped: list[bool] = field(default_factory=list)  # ended by the caller's ``stop`` rule

    @property
    def num_tokens(self) -> int:
        return sum(len(t) for t in self.tokens)


def make_batch_cache(model, left_padding: list[int]) -> list:
    from mlx_lm.models.cache import BatchKVCache

    cls = cache_class(model, BatchKVCache)
    return [cls(left_padding) for _ in range(len(model.layers))]


def grouped_mask(model) -> bool:
    """Whether the model's attention applies the mask to query heads grouped as (B, Hkv, rep, L,
    T): mlx-lm's Gemma 2 does, with a (B, 1, L, T) batch mask then aligned against the wrong
    axes (a batch of Hkv rows gets row b's padding on kv head b; other batch sizes fail to
    broadcast). Its batch masks need an axis for the group."""
    layers = getattr(model, "layers", None) or []
    attn = getattr(layers[0], "self_attn", None) if len(layers) else None
    return type(model).__module__.endswith(".gemma2") and getattr(attn, "repeats", 1) > 1


@lru_cache(maxsize=None)
def _with_group_axis(cls):
    class GroupAxis(cls):
        def make_mask(self, *args, **kwargs):
            mask = super().make_mask(*args, **kwargs)
            return mask[:, :, None] if isinstance(mask, mx.array) and mask.ndim == 4 else mask

    GroupAxis.__name__ = GroupAxis.__qualname__ = f"{cls.__name__}GroupAxis"
    return GroupAxis


def cache_class(model, cls):
    """``cls``, or for a model whose attention groups its query heads (``grouped_mask``) the same
    cache with a group axis in its masks (B, 1, 1, L, T)."""
    return _with_group_axis(cls) if grouped_mask(model) else cls


@lru_cache(maxsize=1)
def _shared_prefix_cache_class():
    from mlx_lm.models.base import create_causal_mask
    from mlx_lm.models.cache import BatchKVCache

    class SharedPrefixCache(BatchKVCache):
        """A ``BatchKVCache`` whose rows share a prefix computed once (batch 1) and whose
        suffixes are padded between prefix and suffix: the padding columns are masked out
        and rotary positions continue from the prefix, so each row computes exactly what
        it would alone. With no prefix (``keys`` None) it is a left-padded batch cache.
        Padding lives in ``blocked`` (rows x columns) rather than ``left_padding``, so
        caches of different widths can be joined (``extend``) into one running batch."""

        def __init__(self, keys: mx.array | None, values: mx.array | None, suffix_pads: list[int]):
            rows = len(suffix_pads)
            super().__init__([0] * rows)
            width = 0 if keys is None else keys.shape[2]
            if keys is not None:
                self.keys = mx.repeat(keys, rows, axis=0)
                self.values = mx.repeat(values, rows, axis=0)
            self._idx = width
            pads = mx.array(suffix_pads)
            self.offset = width - pads
            self.blocked = mx.zeros((rows, width), dtype=mx.bool_)  # (B, columns so far)
            pad_width = max(suffix_pads)
            self._pending = mx.arange(pad_width)[None, :] < pads[:, None] if pad_width else None

        @classmethod
        def joined(cls, prefixes: list[tuple[mx.array, mx.array]], rows: list[int], suffix_pads: list[int],
                   room: int = 0) -> "SharedPrefixCache":
            """Rows over several prefixes in one cache: prefix ``i`` (keys and values of shape
            (1, H, length, D)) serves the next ``rows[i]`` rows. Prefixes are right-aligned to
            the longest, the columns left of a shorter one masked out; each row's rotary
            positions continue its own prefix. ``room`` columns are allocated for the suffix to
            come, so writing it copies nothing."""
            width = max(k.shape[2] for k, _ in prefixes)
            lengths = [k.shape[2] for k, _ in prefixes]

            def stack(arrays: list[mx.array]) -> mx.array:
                pad = lambda a: mx.pad(a, [(0, 0), (0, 0), (width - a.shape[2], room), (0, 0)])  # noqa: E731
                return mx.concatenate([pad(a) for a in arrays], axis=0)

            owner = mx.array([i for i, n in enumerate(rows) for _ in range(n)], dtype=mx.int32)
            cache = cls(None, None, suffix_pads)
            cache.keys = stack([k for k, _ in prefixes])[owner]
            cache.values = stack([v for _, v in prefixes])[owner]
            own = mx.array(lengths)[owner]
            cache.blocked = mx.arange(width)[None, :] < (width - own)[:, None]
            cache.offset = own - mx.array(suffix_pads)
            cache._idx = width
            return cache

        def _next_blocked(self, n: int) -> mx.array:
            rows = self.blocked.shape[0]
            if self._pending is None:
                return mx.zeros((rows, n), dtype=mx.bool_)
            have = self._pending.shape[1]
            if n <= have:  # a prefill chunk inside the padded suffix
                return self._pending[:, :n]
            return mx.concatenate([self._pending, mx.zeros((rows, n - have), dtype=mx.bool_)], axis=1)

        def make_mask(self, N: int, return_array: bool = False, **kwargs):
            causal = create_causal_mask(N, offset=self._idx)  # (N, idx+N)
            blocked = mx.concatenate([self.blocked, self._next_blocked(N)], axis=1)  # (B, idx+N)
            return causal[None, None] & ~blocked[:, None, None, :]

        def update_and_fetch(self, keys, values):
            n = keys.shape[2]
            self.blocked = mx.concatenate([self.blocked, self._next_blocked(n)], axis=1)
            if self._pending is not None:
                self._pending = self._pending[:, n:] if self._pending.shape[1] > n else None
            return super().update_and_fetch(keys, values)

        def filter(self, batch_indices):
            super().filter(batch_indices)  # left_padding stays 0, so no column shift there
            self.blocked = self.blocked[batch_indices]
            if self.keys is not None and self._idx:
                # Columns no remaining row may attend to (left by rows that finished, or padding
                # to the width of a joined cache) are dropped: attention cost follows the width.
                first = int(mx.argmax(mx.any(~self.blocked, axis=0)).item())
                if first:
                    self.keys = self.keys[..., first:, :]
                    self.values = self.values[..., first:, :]
                    self.blocked = self.blocked[:, first:]
                    self._idx -= first

        def _right_aligned(self, width: int) -> tuple[mx.array, mx.array, mx.array]:
            keys, values = self.keys[..., : self._idx, :], self.values[..., : self._idx, :]
            extra = width - self._idx
            blocked = self.blocked
            if extra:
                pad = [(0, 0), (0, 0), (extra, 0), (0, 0)]
                keys, values = mx.pad(keys, pad), mx.pad(values, pad)
                blocked = mx.concatenate([mx.ones((blocked.shape[0], extra), dtype=mx.bool_), blocked], axis=1)
            return keys, values, blocked

        def extend(self, other: "SharedPrefixCache") -> None:
            """Append ``other``'s rows (in place): both are right-aligned to the wider one,
            the new left columns masked out; each row keeps its own rotary offset."""
            width = max(self._idx, other._idx)
            (k1, v1, b1), (k2, v2, b2) = self._right_aligned(width), other._right_aligned(width)
            self.keys = mx.concatenate([k1, k2], axis=0)
            self.values = mx.concatenate([v1, v2], axis=0)
            self.blocked = mx.concatenate([b1, b2], axis=0)
            self.offset = mx.concatenate([self.offset, other.offset])
            self.left_padding = mx.concatenate([self.left_padding, other.left_padding])
            self._idx = width

    return SharedPrefixCache


def left_pad(prompts: list[list[int]], pad_id: int = 0) -> tuple[mx.array, list[int]]:
    """(B, L) int32 array of left-padded prompts and the padding of each row."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    pads = [width - len(p) for p in prompts]
    rows = [[pad_id] * n + list(p) for n, p in zip(pads, prompts)]
    return mx.array(rows, dtype=mx.int32), pads


def output_logits(model, hidden: mx.array) -> mx.array:
    """The language-model head applied to final hidden states (tied or separate, Gemma soft-capping)."""
    if hasattr(model, "lm_head"):
        out = model.lm_head(hidden)
    else:
        out = model.model.embed_tokens.as_linear(hidden)
    cap = getattr(model, "final_logit_softcapping", None)
    if cap:
        out = mx.tanh(out / cap) * cap
    return out


def forward_hidden(model, x: mx.array, cache=None) -> mx.array:
    """Final hidden states (B, L, D): the body without the vocabulary projection, so
    callers project only the positions they need (the head is a fifth of SmolLM2's FLOPs)."""
    return model.model(x, cache=cache)


def shared_prefix_len(prompts: list[list[int]]) -> int:
    """Length of the prefix all prompts share, leaving every prompt at least one own token."""
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


class PrefixStore:
    """Key/value caches of shared prompt prefixes, computed once and reused by later prefills.

    Only for a model whose weights do not change between the calls: the frozen-base judge,
    whose every prompt in a run begins with the same rubric and examples (SmolLM2's few-shot
    rubric: 355 tokens before the question). A stored prefix is reused only when it is exactly
    the batch's shared prefix, and a missing one is computed whole, in one pass from nothing: so a
    prefill computes bit for bit what it computes without the store, whatever came before (a
    resumed run reproduces the uninterrupted one). Holds up to ``capacity`` prefixes, the least
    recently used dropped first."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, ...], list[tuple[mx.array, mx.array]]] = OrderedDict()
        self.hits = 0  # prefills that reused a stored prefix

    def get(self, tokens: list[int]) -> list[tuple[mx.array, mx.array]] | None:
        """The per-layer (keys, values) of exactly ``tokens``, when stored."""
        key = tuple(tokens)
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, tokens: list[int], layers: list[tuple[mx.array, mx.array]]) -> None:
        self._entries[tuple(tokens)] = layers
        self._entries.move_to_end(tuple(tokens))
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


def _fill_prefix(model, prefix: list[int], head: list, store: PrefixStore | None) -> None:
    """Fill the batch-1 caches ``head`` with ``prefix``: from the store when it holds exactly it."""
    layers = store.get(prefix) if store is not None else None
    if layers is not None:
        for c, (k, v) in zip(head, layers):
            c.keys, c.values, c.offset = k, v, len(prefix)
        store.hits += 1
        return
    _fill(model, mx.array([prefix], dtype=mx.int32), head)
    if store is not None:
        layers = [(c.keys[..., : c.offset, :], c.values[..., : c.offset, :]) for c in head]
        mx.eval(layers)
        store.put(prefix, layers)


@inference()
def prefill(model, prompts: list[list[int]], min_shared: int = 16, joinable: bool = False,
            prefixes: PrefixStore | None = None) -> tuple[mx.array, list]:
    """Run the prompts once; return the last-position logits (B, V) and the cache.

    When the prompts share a prefix of at least ``min_shared`` tokens (the G copies
    of a rollout prompt, judge prompts with a common rubric, a question's answer
    options), the prefix is computed once and shared by all rows. ``joinable``
    asks for caches another prefill's can be joined to (``SharedPrefixCache.extend``);
    see ``joinable_caches`` for the models that have them. ``prefixes`` keeps shared prefixes
    for later calls on the same, unchanged weights (``PrefixStore``).
    """
    from mlx_lm.models.cache import make_prompt_cache

    shared = shared_prefix_len(prompts) if len(prompts) > 1 else 0
    shared = shared if shared >= min_shared else 0
    head = make_prompt_cache(model) if shared or joinable else None
    if head is not None and joinable_caches(head):
        if shared:
            _fill_prefix(model, prompts[0][:shared], head, prefixes)
        x, pads = left_pad([p[shared:] for p in prompts])
        cls = cache_class(model, _shared_prefix_cache_class())
        if shared:
            cache = [cls(c.keys[..., : c.offset, :], c.values[..., : c.offset, :], pads) for c in head]
        else:
            cache = [cls(None, None, pads) for _ in head]
    else:
        x, pads = left_pad(prompts)
        cache = make_batch_cache(model, pads)
    logits = output_logits(model, _fill(model, x, cache)[:, -1:, :])[:, -1, :]
    return logits, cache


PREFILL_TOKENS = 2048  # token positions per forward call during prefill (rows x columns)


def _fill(model, x: mx.array, cache: list) -> mx.array:
    """``forward_hidden`` over (B, L) in column chunks of about ``PREFILL_TOKENS / B``;
    returns the last chunk's hidden states. Attention's intermediates grow with B x L x T,
    so long prompts (EQ-Bench's ~500 tokens x 64 rows) run in pieces that stay in cache
    memory, and each chunk attends only to the columns before it (causal work halved)."""
    rows, width = x.shape
    step = max(1, PREFILL_TOKENS // rows)
    starts = list(range(0, width, step))
    for s in starts[:-1]:
        forward_hidden(model, x[:, s : s + step], cache)
        mx.eval([(c.keys, c.values) for c in cache])
    return forward_hidden(model, x[:, starts[-1] :], cache)


def repetition_loop(tokens: list[int], max_period: int = 64, min_repeats: int = 3, min_tokens: int = 48) -> bool:
    """Whether ``tokens`` end in a loop: one block of at most ``max_period`` tokens
    repeated at least ``min_repeats`` times in a row, the repeats together at least
    ``min_tokens`` long ("Annoyed: 10\\nAnnoyed: 10\\n..."). Greedy decoding that
    reaches such a tail almost always repeats it to the token limit."""
    n = len(tokens)
    if n < min_tokens:
        return False
    tail = np.asarray(tokens[-max(max_period * min_repeats, min_tokens) :])  # the longest span checked
    for p in range(1, min(max_period, n // min_repeats) + 1):
        span = max(p * min_repeats, min_tokens)
        if span > len(tail) or tail[-1] != tail[-1 - p]:
            continue
        if np.array_equal(tail[-span + p :], tail[-span : len(tail) - p]):
            return True
    return False


def joinable_caches(caches: list) -> bool:
    """Whether a model's prompt caches are all plain ``KVCache`` (not rotating or quantized):
    only those can be shared across rows and joined into a running batch."""
    from mlx_lm.models.cache import KVCache

    return all(type(c) is KVCache for c in caches)


def _log_softmax(logits: mx.array, temperature: float) -> mx.array:
    logits = logits.astype(mx.float32)
    if temperature > 0:
        logits = logits / temperature
    return logits - mx.logsumexp(logits, axis=-1, keepdims=True)


@inference()
def generate_batch(
    model,
    prompts: list[list[int]],
    max_tokens: int,
    eos_ids: set[int] | list[int],
    temperature: float = 0.0,
    key: mx.array | None = None,
    max_batch: int | None = None,
    stop: Callable[[list[int]], bool] | None = None,
    progress: Callable[[int], None] | None = None,
    prefixes: PrefixStore | None = None,
    start: tuple[mx.array, list] | None = None,
) -> Generation:
    """Sample (or greedily decode when temperature is 0) completions for each prompt.

    ``logprobs`` are of the tempered distribution the token was drawn from (the
    GRPO "old" log-probs); for greedy decoding they are at temperature 1.
    ``max_batch`` bounds the rows decoded at once. Greedy decoding keeps the batch
    full (continuous batching): as rows finish, waiting prompts are prefilled and
    joined to the running batch, so a few long replies do not leave most of the
    batch idle. Sampling, and models whose caches cannot be joined, split into
    chunks instead, chunk ``c`` drawing with ``split(key, n_chunks)[c]``, so a
    chunk's samples do not depend on the others.
    ``stop(tokens)``, called with a row's completion after each new token, ends
    that row when it returns True (``Generation.stopped``).
    ``progress(n)``, called once per decode step, reports the token budget used since the
    last call: one per row that drew a token, plus the unused budget of rows that ended,
    so the calls add up to ``len(prompts) * max_tokens``. ``prefixes``: see ``prefill``.
    ``start``: the prompts' last logits and cache, already prefilled (``attempts.fork``):
    decoding starts from them, in one batch.
    """
    if temperature > 0 and key is None:
        raise ValueError("sampling needs an explicit random key")
    from mlx_lm.models.cache import make_prompt_cache

    chunked = max_batch and len(prompts) > max_batch and start is None
    if chunked and (temperature > 0 or not joinable_caches(make_prompt_cache(model))):
        chunks = [prompts[i : i + max_batch] for i in range(0, len(prompts), max_batch)]
        if key is not None and key.ndim == 2:  # one key per row: each chunk takes its rows' keys
            keys = [key[i : i + max_batch] for i in range(0, len(prompts), max_batch)]
        else:
            keys = mx.random.split(key, len(chunks)) if key is not None else [None] * len(chunks)
        parts = [generate_batch(model, c, max_tokens, eos_ids, temperature, k, stop=stop, progress=progress,
                                prefixes=prefixes) for c, k in zip(chunks, keys)]
        return Generation(
            tokens=[t for p in parts for t in p.tokens],
            logprobs=[lp for p in parts for lp in p.logprobs],
            finished=[f for p in parts for f in p.finished],
            prompt_tokens=sum(p.prompt_tokens for p in parts),
            stopped=[s for p in parts for s in p.stopped],
        )

    eos = set(eos_ids)
    n = len(prompts)
    width = n if start is not None else min(max_batch or n, n)
    refill = n > width  # rows join the running batch (joinable caches, checked above)
    if max_tokens <= 0:
        return Generation([[] for _ in range(n)], [[] for _ in range(n)], [False] * n, stopped=[False] * n)
    out_tokens: list[list[int]] = [[] for _ in range(n)]
    out_lps: list[list[float]] = [[] for _ in range(n)]
    finished, stopped = [False] * n, [False] * n
    rng = None
    if temperature > 0:
        rng = [sampling_rng(k) for k in key] if key.ndim == 2 else sampling_rng(key)

    active: list[int] = []  # prompt index of each batch row
    cache, logits, waiting = None, None, 0
    if start is not None:
        (logits, cache), active, waiting = start, list(range(n)), n
    while True:
        room = width - len(active)
        if waiting < n and (not active or room >= max(1, width // 4)):
            new = list(range(waiting, min(n, waiting + room)))
            waiting += len(new)
            new_logits, new_cache = prefill(model, [prompts[i] for i in new], joinable=refill, prefixes=prefixes)
            if active:
                for c, extra in zip(cache, new_cache):
                    c.extend(extra)
                logits = mx.concatenate([logits, new_logits], axis=0)
            else:
                cache, logits = new_cache, new_logits
            active += new
        if not active:
            break
        toks, lps = sample_tokens(logits, temperature, [rng[i] for i in active] if isinstance(rng, list) else rng)
        keep = []
        spent = len(active)
        for j, row in enumerate(active):
            out_tokens[row].append(toks[j])
            out_lps[row].append(lps[j])
            if toks[j] in eos:
                finished[row] = True
            elif stop is not None and stop(out_tokens[row]):
                stopped[row] = True
            elif len(out_tokens[row]) < max_tokens:
                keep.append(j)
                continue
            spent += max_tokens - len(out_tokens[row])
        if progress is not None:
            progress(spent)
        if not keep:
            active, cache, logits = [], None, None
            continue
        if len(keep) < len(active):
            idx = mx.array(keep, dtype=mx.int32)
            for c in cache:
                c.filter(idx)
            active = [active[j] for j in keep]
        step = mx.array([[toks[j]] for j in keep], dtype=mx.int32)
        logits = model(step, cache=cache)[:, -1, :]
    return Generation(out_tokens, out_lps, finished, prompt_tokens=sum(len(p) for p in prompts), stopped=stopped)


def sampling_rng(key: mx.array) -> np.random.Generator:
    """A numpy generator seeded from an MLX key, so one key decides a whole batch."""
    return np.random.default_rng(np.asarray(key).astype(np.uint64).tolist())


def sample_tokens(logits: mx.array, temperature: float,
                  rng: np.random.Generator | list[np.random.Generator] | None) -> tuple[list[int], list[float]]:
    """Draw one token per row from softmax(logits / T) (argmax when T = 0) and its log-prob;
    ``rng`` is the batch's generator or one per row.

    Done in numpy: MLX's CPU backend evaluates exp() several times slower than
    numpy, and sampling needs one exp per vocabulary entry per row.
    """
    x = np.asarray(logits.astype(mx.float32), dtype=np.float32)  # (b, V)
    if temperature > 0:
        x = x / np.float32(temperature)
    top = x.max(axis=-1, keepdims=True)
    p = np.exp(x - top)
    total = p.sum(axis=-1, dtype=np.float64)
    if temperature > 0:
        cdf = np.cumsum(p, axis=-1, dtype=np.float64)
        u = (np.array([g.random() for g in rng]) if isinstance(rng, list) else rng.random(len(x))) * total
        tok = np.minimum((cdf < u[:, None]).sum(axis=-1), x.shape[-1] - 1)
    else:
        tok = x.argmax(axis=-1)
    rows = np.arange(len(x))
    lp = (x[rows, tok] - top[:, 0]).astype(np.float64) - np.log(total)
    return tok.tolist(), lp.tolist()


@inference()
def next_token_logprobs(model, prompts: list[list[int]], max_batch: int | None = None,
                        prefixes: PrefixStore | None = None) -> mx.array:
    """log p(next token | prompt) for each prompt, (B, V) float32, one prefill."""
    if max_batch and len(prompts) > max_batch:
        parts = [next_token_logprobs(model, prompts[i : i + max_batch], prefixes=prefixes)
                 for i in range(0, len(prompts), max_batch)]
        return mx.concatenate(parts, axis=0)
    logits, _ = prefill(model, prompts, prefixes=prefixes)
    out = _log_softmax(logits, 1.0)
    mx.eval(out)
    return out
