"""The process group this process belongs to: ``mlx.launch`` starts K copies of a command,
each with ``MLX_RANK`` (and a backend's own variables) set; outside a launch it is one rank.

``world()`` initialises ``mx.distributed`` once and is the only place that does. Every
collective of this package runs on the CPU stream (the ring and JACCL backends need it on
Metal, and it is the only stream on the CPU backend).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

LAUNCH_ENV = ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    backend: str  # "none" outside a launch
    group: object | None = None  # mx.distributed.Group when launched

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes run folders, result files and plans."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, n: int) -> range:
        """This rank's contiguous share of ``n`` items (the first ``n % size`` ranks get one more)."""
        return shard_range(n, self.rank, self.size)


def shard_range(n: int, rank: int, size: int) -> range:
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def launched() -> bool:
    return any(os.environ.get(k) for k in LAUNCH_ENV)


def backend_name() -> str:
    """The backend mlx.launch set up (from its environment variables)."""
    env = os.environ
    if env.get("MLX_JACCL_COORDINATOR") or env.get("MLX_IBV_DEVICES"):
        return "jaccl-ring" if env.get("MLX_JACCL_RING") else "jaccl"
    if env.get("NCCL_HOST_IP"):
        return "nccl"
    if env.get("OMPI_COMM_WORLD_RANK") or env.get("PMI_RANK"):
        return "mpi"
    return "ring"


@lru_cache(maxsize=1)
def world() -> World:
    """This process's group: ``mx.distributed.init()`` when launched, a single rank otherwise."""
    if not launched():
        return World(0, 1, "none")
    import mlx.core as mx

    name = backend_name()
    try:
        group = mx.distributed.init(strict=True, backend=name.split("-")[0])
    except (RuntimeError, ValueError):
        group = mx.distributed.init()
    if group.size() == 1:
        return World(0, 1, "none")
    return World(group.rank(), group.size(), name, group)


def single() -> World:
    """A one-rank world (tests, and commands that must not join a launch's group)."""
    return World(0, 1, "none")


def ranks_on_this_host() -> int:
    """How many ranks of a ring launch share this machine: those listed with this rank's
    first address in ``MLX_HOSTFILE`` (1 when unknown). Read without importing MLX."""
    import json

    try:
        hosts = json.loads(open(os.environ["MLX_HOSTFILE"]).read() or "[]")
        rank = int(os.environ["MLX_RANK"])
        ip = lambda entry: entry[0].rsplit(":", 1)[0] if entry else None  # noqa: E731
        return max(1, sum(ip(h) == ip(hosts[rank]) for h in hosts))
    except (KeyError, OSError, ValueError, IndexError, TypeError):
        return 1


def threads_per_rank(cores: int | None = None, ranks_here: int | None = None) -> int:
    """BLAS threads per rank so the ranks on one machine share its cores (at least one each)."""
    cores = cores or os.cpu_count() or 1
    return max(1, cores // (ranks_here or ranks_on_this_host()))
