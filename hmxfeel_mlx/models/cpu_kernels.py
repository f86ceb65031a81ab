"""Faster attention and SwiGLU for MLX's CPU backend.

On the CPU backend MLX evaluates ``exp``/``sigmoid`` at ~25 ns an element (a
scalar polynomial), while ``power(2, y)`` runs at ~7 ns with the same accuracy
(both within 1e-6 relative of float64). Transformer inference on CPU spends most
of its non-matmul time there: SmolLM2-135M at batch 64 evaluates ~3M sigmoids
(SwiGLU) and ~2M softmax exponentials per decoded token, and a 127-token prefill
~600M. ``mx.fast.scaled_dot_product_attention`` on CPU also falls back to a
composed graph with the slow softmax.

``install(model)`` swaps, in the mlx-lm module that defines the model class, the
module-level ``scaled_dot_product_attention`` and ``swiglu`` for the versions
below (when the module uses mlx-lm's own). It is a no-op off the cpu path
(``backend.cpu_speedups``: on Metal the fused kernels are the fast path, and the
metal path's settings on the CPU keep mlx-lm's modules as they are; ``uninstall``
puts them back) and for architectures that bring their own attention (e.g.
Gemma 2's soft-capped one). Values and gradients match the originals to float32
rounding; tests check both.

Inside ``inference()`` on the cpu path (generation and option scoring, never a
gradient), large attention softmaxes and SwiGLUs run on the host instead:
numpy's vectorised exp (~4 ns an element here) is about twice as fast again as
``power``, and row groups run on one thread per core. That path evaluates its inputs and so cannot
be differentiated, which is why it needs the explicit context.
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache, partial

import mlx.core as mx
import numpy as np

from .backend import cpu_speedups

LOG2E = 1.0 / math.log(2.0)
_EXP2_MAX = 126.0  # 2**126 is finite in float32; beyond it sigmoid(-x) is 0 to float32 precision anyway


@partial(mx.compile, shapeless=True)
def fast_swiglu(gate: mx.array, x: mx.array) -> mx.array:
    """silu(gate) * x, with sigmoid computed through power(2, .) (clamped so it never overflows)."""
    return gate * x / (1.0 + mx.power(2.0, mx.minimum(-LOG2E * gate, _EXP2_MAX)))


def swiglu(gate: mx.array, x: mx.array) -> mx.array:
    """``fast_swiglu``, on the host inside ``inference()`` when large enough."""
    if _INFERENCE.get() and gate.size >= HOST_MIN_ELEMENTS and gate.shape == x.shape and _host_ok(gate, x):
        return _swiglu_host(gate, x)
    return fast_swiglu(gate, x)


def softmax_log2(scores: mx.array, axis: int = -1) -> mx.array:
    """Softmax of scores given in log2 units (2**s normalised), in float32 through
    power(2, .); the max shift keeps it stable."""
    scores = scores.astype(mx.float32)
    e = mx.power(2.0, scores - mx.stop_gradient(mx.max(scores, axis=axis, keepdims=True)))
    return e / e.sum(axis=axis, keepdims=True)


def fast_softmax(scores: mx.array, axis: int = -1) -> mx.array:
    """``mx.softmax`` (natural-log scores) through ``softmax_log2``."""
    return softmax_log2(scores * LOG2E, axis)


def _grouped_mask(mask: mx.array, n_kv: int, rep: int, L: int, T: int) -> mx.array:
    """A mask broadcastable to (B, Hq, L, T) laid out as (B, Hkv or 1, rep * L, T), the rows of
    the grouped scores (query head h = kv head h // rep, as mlx's)."""
    m = mask.reshape((1,) * (4 - mask.ndim) + mask.shape) if mask.ndim < 4 else mask
    m = mx.broadcast_to(m, (m.shape[0], m.shape[1], L, T))
    if m.shape[1] == 1:
        m = mx.broadcast_to(mx.expand_dims(m, 2), (m.shape[0], 1, rep, L, T))
    else:
        m = m.reshape(m.shape[0], n_kv, rep, L, T)
    return m.reshape(m.shape[0], m.shape[1], rep * L, T)


PARALLEL_MIN_SCORES = 1 << 16  # attention smaller than this many scores runs on one stream
HOST_MIN_ELEMENTS = 1 << 18  # inside inference(): softmaxes / SwiGLUs this large run on the host
_INFERENCE: ContextVar[bool] = ContextVar("hmx_inference", default=False)
_NEG = np.float32(-1e30)  # masked scores: exp underflows to 0; a fully masked row stays finite


@contextmanager
def inference():
    """Forward passes inside may compute large softmaxes and SwiGLUs on the host (no gradients),
    on the cpu path only."""
    token = _INFERENCE.set(cpu_speedups())
    try:
        yield
    finally:
        _INFERENCE.reset(token)


def _host_ok(*arrays: mx.array) -> bool:
    return mx.default_device() == mx.cpu and all(a.dtype == mx.float32 for a in arrays)


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, len(cpu_streams())), thread_name_prefix="hmx-host")


def _host_split(n: int, work) -> None:
    """``work(slice)`` over row groups of ``range(n)``, one per core (numpy releases the GIL)."""
    k = min(max(1, len(cpu_streams())), n)
    bounds = [n * i // k for i in range(k + 1)]
    if k == 1:
        work(slice(0, n))
        return
    for f in [_pool().submit(work, slice(lo, hi)) for lo, hi in zip(bounds, bounds[1:])]:
        f.result()


def _swiglu_host(gate: mx.array, x: mx.array) -> mx.array:
    mx.eval(gate, x)
    g = np.asarray(gate).reshape(-1, gate.shape[-1])
    u = np.asarray(x).reshape(-1, x.shape[-1])
    out = np.empty(g.shape, np.float32)

    def work(rows: slice) -> None:
        o = out[rows]
        with np.errstate(over="ignore"):  # exp(-g) = inf for g < -88: g / inf = 0, silu's limit
            np.exp(np.negative(g[rows], out=o), out=o)
        o += 1.0
        np.divide(g[rows], o, out=o)
        o *= u[rows]

    _host_split(g.shape[0], work)
    return mx.array(out).reshape(gate.shape)


_last_bias: list = [None, None, None]  # (mask, layout, bias): every layer of a forward gets the same mask


def _host_bias(mask, n_kv: int, rep: int, L: int, T: int) -> np.ndarray | None:
    """The mask as an additive float32 array (0 or -1e30 for booleans) laid out to broadcast
    against grouped scores (B, Hkv, rep, L, T); converted once per mask array (arrays are
    immutable, and a forward pass hands the same one to every layer)."""
    if mask is None:
        return None
    if isinstance(mask, mx.array):
        if _last_bias[0] is mask and _last_bias[1] == (n_kv, rep, L, T):
            return _last_bias[2]
        _last_bias[:] = [mask, (n_kv, rep, L, T), _bias_array(mask, n_kv, rep, L, T)]
        return _last_bias[2]
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"unsupported attention mask {mask!r}")
        keep = (np.arange(L)[:, None] + (T - L)) >= np.arange(T)[None, :]
        return np.where(keep, np.float32(0.0), _NEG).reshape(1, 1, 1, L, T)
    raise ValueError(f"unsupported attention mask {mask!r}")


def _bias_array(mask: mx.array, n_kv: int, rep: int, L: int, T: int) -> np.ndarray:
    m = mask.reshape((1,) * (4 - mask.ndim) + mask.shape) if mask.ndim < 4 else mask
    m = mx.broadcast_to(m, (m.shape[0], m.shape[1], L, T))
    m = mx.where(m, 0.0, -1e30) if m.dtype == mx.bool_ else m
    m = np.asarray(m.astype(mx.float32))
    return m.reshape(m.shape[0], 1, 1, L, T) if m.shape[1] == 1 else m.reshape(m.shape[0], n_kv, rep, L, T)


def _sdpa_host(queries, keys, values, scale: float, mask=None) -> mx.array:
    """``_sdpa`` with the softmax on the host: scores and the value product stay MLX matmuls,
    the exponentials are numpy's, and the normalisation divides the (rows x D) output
    rather than the (rows x T) probabilities."""
    B, n_q, L, D = queries.shape
    n_kv, T = keys.shape[1], keys.shape[2]
    rep = n_q // n_kv
    scores = (queries * scale).reshape(B, n_kv, rep * L, D) @ keys.swapaxes(-1, -2)
    bias = _host_bias(mask, n_kv, rep, L, T)
    mx.eval(scores)
    s = np.asarray(scores).reshape(B, n_kv, rep, L, T)
    e = np.empty(s.shape, np.float32)
    total = np.empty(s.shape[:-1] + (1,), np.float32)

    by_batch = B >= len(cpu_streams())  # split batch rows; a small batch splits its query rows

    def work(part: slice) -> None:
        at = (part,) if by_batch else (slice(None),) * 3 + (part,)
        out = e[at]
        if bias is None:
            np.copyto(out, s[at])
        else:
            np.add(s[at], bias if by_batch and bias.shape[0] == 1 else bias[at], out=out)
        np.subtract(out, out.max(axis=-1, keepdims=True), out=out)
        np.exp(out, out=out)
        np.sum(out, axis=-1, keepdims=True, out=total[at])

    _host_split(B if by_batch else L, work)
    probs = mx.array(e).reshape(B, n_kv, rep * L, T)
    out = (probs @ values) / mx.array(total).reshape(B, n_kv, rep * L, 1)
    return out.reshape(B, n_q, L, D)


def cpu_streams() -> tuple:
    """One CPU stream per core (at most 8) when MLX computes on the CPU, else none.
    MLX's CPU backend runs each stream's operations on one thread; only BLAS spreads
    over the cores on its own, so independent work on separate streams runs in parallel."""
    if mx.default_device() != mx.cpu:
        return ()
    return _new_cpu_streams()


@lru_cache(maxsize=1)
def _new_cpu_streams() -> tuple:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    n = min(cores, 8)
    return tuple(mx.new_stream(mx.cpu) for _ in range(n)) if n > 1 else ()


def fast_sdpa(queries, keys, values, scale: float, mask=None) -> mx.array:
    """Scaled dot-product attention with grouped-query heads, as ``mx.fast``'s.

    queries (B, Hq, L, D), keys/values (B, Hkv, T, D); ``mask`` is None, "causal"
    (aligned to the last L of T keys), a boolean array (True = attend) or an
    additive array, broadcastable to (B, Hq, L, T). The query heads sharing a kv
    head are stacked as rows of one product (B * Hkv small GEMMs, not B * Hq GEMVs)
    and scores are kept in log2 units (``scale * log2 e`` folded into the queries).

    Attention is many small products and a softmax, which the CPU backend runs on
    one thread; a large enough batch is split into row groups, one per core, each
    on its own CPU stream (rows are independent, so results are the same).
    """
    B, n_q, L, T = queries.shape[0], queries.shape[1], queries.shape[2], keys.shape[2]
    if (_INFERENCE.get() and L > 1 and B * n_q * L * T >= HOST_MIN_ELEMENTS
            and _host_ok(queries, keys, values)):
        return _sdpa_host(queries, keys, values, scale, mask)
    streams = cpu_streams()
    if not streams or B < 2 or B * n_q * L * T < PARALLEL_MIN_SCORES:
        return _sdpa(queries, keys, values, scale, mask)
    k = min(len(streams), B)
    bounds = [B * i // k for i in range(k + 1)]
    parts = []
    for stream, lo, hi in zip(streams, bounds, bounds[1:]):
        m = mask
        if isinstance(m, mx.array) and m.ndim == 4 and m.shape[0] == B:
            m = m[lo:hi]
        with mx.stream(stream):
            parts.append(_sdpa(queries[lo:hi], keys[lo:hi], values[lo:hi], scale, m))
    return mx.concatenate(parts, axis=0)


def _sdpa(queries, keys, values, scale: float, mask=None) -> mx.array:
    B, n_q, L, D = queries.shape
    n_kv, T = keys.shape[1], keys.shape[2]
    rep = n_q // n_kv
    q = (queries * (scale * LOG2E)).reshape(B, n_kv, rep * L, D)
    scores = q @ keys.swapaxes(-1, -2)  # (B, Hkv, rep * L, T), log2 units
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"unsupported attention mask {mask!r}")
        mask = (mx.arange(L)[:, None] + (T - L)) >= mx.arange(T)[None, :]
    if mask is not None:
        mask = _grouped_mask(mask, n_kv, rep, L, T)
        if mask.dtype == mx.bool_:
            scores = mx.where(mask, scores, mx.array(mx.finfo(scores.dtype).min, scores.dtype))
        else:
            scores = scores + mask * LOG2E
    out = softmax_log2(scores).astype(values.dtype) @ values
    return out.reshape(B, n_q, L, D)


def _scaled_dot_product_attention(queries, keys, values, cache, scale, mask, sinks=None):
    """Drop-in for ``mlx_lm.models.base.scaled_dot_product_attention``."""
    if sinks is not None or hasattr(cache, "bits"):
        from mlx_lm.models.base import scaled_dot_product_attention

        return scaled_dot_product_attention(queries, keys, values, cache, scale=scale, mask=mask, sinks=sinks)
    return fast_sdpa(queries, keys, values, scale=scale, mask=mask)


def _swaps():
    from mlx_lm.models import activations, base

    return (("scaled_dot_product_attention", base.scaled_dot_product_attention, _scaled_dot_product_attention),
            ("swiglu", activations.swiglu, swiglu))


def install(model) -> list[str]:
    """Use the fast kernels for this model's architecture on the cpu path; return what was swapped."""
    if not cpu_speedups():
        return []
    module = sys.modules.get(type(model).__module__)
    if module is None:
        return []
    swapped = []
    for name, original, fast in _swaps():
        if getattr(module, name, None) is original:
            setattr(module, name, fast)
            swapped.append(name)
    return swapped


def uninstall(model) -> list[str]:
    """Put mlx-lm's own functions back into this model's module; return what was restored.
    The swap is per module, so a cpu-path model of the same architecture in this process
    runs mlx-lm's kernels from then on (slower, the same values)."""
    module = sys.modules.get(type(model).__module__)
    if module is None:
        return []
    restored = []
    for name, original, fast in _swaps():
        if getattr(module, name, None) is fast:
            setattr(module, name, original)
            restored.append(name)
    return restored
