"""Data-parallel evaluation: an axis's model queries split across ranks.

``map_items(world, n, fn)``: ``fn(range)`` computes the JSON-able results of the items in its
range (this rank's contiguous share, ``World.shard``); every rank gets all ``n`` results in
item order. The evaluation axes call it where they query the model (``evals.axes.score_mc``,
``generate_replies``, the pushback axis's two-turn scoring), so each rank then builds the
same records and metrics from the whole result, as one process would, and rank 0 writes
the file. With one rank it is ``fn(range(n))``.
"""

from __future__ import annotations

from typing import Any, Callable

from .collectives import gather_objects
from .world import World, shard_range


def map_items(world: World | None, n: int, fn: Callable[[range], list[Any]]) -> list[Any]:
    if world is None or not world.distributed:
        return list(fn(range(n)))
    mine = world.shard(n)
    out = list(fn(mine)) if len(mine) else []
    if len(out) != len(mine):
        raise ValueError(f"fn returned {len(out)} results for {len(mine)} items")
    return [x for part in gather_objects(out, world) for x in part]


def map_chunks(world: World | None, n_chunks: int, fn: Callable[[int], list[Any]]) -> list[Any]:
    """``fn(c)`` for every chunk ``c`` (a list of results each), the chunks split across ranks;
    the concatenated results, in chunk order, on every rank. For sampling whose key is per
    chunk: a chunk draws the same whichever rank runs it."""
    if world is None or not world.distributed:
        return [x for c in range(n_chunks) for x in fn(c)]
    mine = shard_range(n_chunks, world.rank, world.size)
    out = [fn(c) for c in mine]
    return [x for part in gather_objects(out, world) for chunk in part for x in chunk]
