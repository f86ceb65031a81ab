"""The collectives of a data-parallel step, on top of ``mx.distributed``.

* ``gather_objects``: every rank's JSON-able object, on every rank, in rank order (rollouts,
  judge verdicts, per-item outputs: kilobytes). Sent as UTF-8 JSON in uint8 arrays, padded to
  the longest; Python floats survive the round trip exactly (``repr``), NaN included.
* ``broadcast_object``: rank 0's object on every rank (the others contribute zeros to a sum).
* ``sum_tree``: a tree of arrays (the LoRA gradient) summed over ranks in one all-reduce of
  one flat float32 buffer.

With one rank each is the identity, so callers need no special case.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .world import World



def _cpu():
    import mlx.core as mx

    return mx.cpu


def _encode(obj: Any) -> np.ndarray:
    return np.frombuffer(json.dumps(obj, separators=(",", ":")).encode("utf-8"), dtype=np.uint8)


def _decode(buf: np.ndarray) -> Any:
    return json.loads(bytes(buf).decode("utf-8"))


def gather_bytes(data: np.ndarray, world: World) -> list[np.ndarray]:
    """Every rank's uint8 buffer (any lengths), on every rank, in rank order."""
    import mlx.core as mx

    if not world.distributed:
        return [data]
    lengths = mx.distributed.all_gather(mx.array([len(data)], dtype=mx.int64), group=world.group, stream=_cpu())
    lengths = [int(n) for n in np.array(lengths)]
    width = max(max(lengths), 1)
    padded = np.zeros(width, dtype=np.uint8)
    padded[: len(data)] = data
    out = np.array(mx.distributed.all_gather(mx.array(padded), group=world.group, stream=_cpu()))
    return [out[r * width : r * width + n] for r, n in enumerate(lengths)]


def gather_objects(obj: Any, world: World) -> list[Any]:
    """Every rank's JSON-able ``obj``, on every rank, in rank order."""
    if not world.distributed:
        return [obj]
    return [_decode(b) for b in gather_bytes(_encode(obj), world)]


def broadcast_bytes(data: np.ndarray | None, world: World) -> np.ndarray:
    """Rank 0's uint8 buffer on every rank (``data`` is ignored elsewhere)."""
    import mlx.core as mx

    if not world.distributed:
        return data
    n = int(np.array(mx.distributed.all_sum(mx.array([len(data) if world.main else 0], dtype=mx.int64),
                                            group=world.group, stream=_cpu()))[0])
    buf = data if world.main else np.zeros(n, dtype=np.uint8)
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.array(mx.distributed.all_sum(mx.array(buf), group=world.group, stream=_cpu()))


def broadcast_object(obj: Any, world: World) -> Any:
    """Rank 0's JSON-able ``obj`` on every rank."""
    if not world.distributed:
        return obj
    return _decode(broadcast_bytes(_encode(obj) if world.main else None, world))


def sum_tree(tree: Any, world: World) -> Any:
    """The element-wise sum over ranks of a tree of arrays of one structure on every rank."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_unflatten

    if not world.distributed:
        return tree
    leaves = tree_flatten(tree)
    flat = mx.concatenate([v.astype(mx.float32).reshape(-1) for _, v in leaves])
    total = mx.distributed.all_sum(flat, group=world.group, stream=_cpu())
    out, start = [], 0
    for name, v in leaves:
        out.append((name, total[start : start + v.size].reshape(v.shape).astype(v.dtype)))
        start += v.size
    return tree_unflatten(out)


def barrier(world: World) -> None:
    """Wait until every rank got here (a one-element sum)."""
    import mlx.core as mx

    if world.distributed:
        mx.eval(mx.distributed.all_sum(mx.array([1.0]), group=world.group, stream=_cpu()))
