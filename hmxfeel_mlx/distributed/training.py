"""Data-parallel GRPO glue (``training.trainer`` calls these; docs/distributed.md).

Each rank rolls out and judges its contiguous share of the step's prompts (``World.shard``),
with per-row sampling keys from (seed, step, prompt index, reply index), so what a prompt's
rows draw does not depend on the rank. ``gather_step`` then gives every rank the whole
rollout and its verdicts, in prompt order, as one process would have them; the update runs
each rank's rows and sums the gradients (``update.grpo_update``).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import mlx.core as mx
import numpy as np

from ..training.judge import JudgeVerdict
from ..training.rollout import Judged, Rollout
from .collectives import gather_objects
from .transfer import broadcast_folder, unpack_into
from .world import World


def gather_step(rollout: Rollout, judged: Judged, questions: list, group_size: int,
                world: World) -> tuple[Rollout, Judged]:
    """The whole step's rollout and verdicts on every rank (``questions``: the step's prompts,
    every rank's). Phase times are the slowest rank's (the wall time of the phase)."""
    if not world.distributed:
        return rollout, judged
    mine = {
        "prompt_ids": rollout.prompt_ids, "tokens": rollout.tokens, "logprobs": rollout.logprobs,
        "finished": rollout.finished, "texts": rollout.texts, "rollout_s": rollout.seconds,
        "scores": judged.scores.tolist(), "rewards": judged.rewards.tolist(), "judge_s": judged.seconds,
        "verdicts": [[v.score, v.text, v.probs, v.mass] for v in judged.verdicts],
        "mass": None if judged.mass is None else judged.mass.tolist(),
    }
    parts = gather_objects(mine, world)
    cat = lambda key: [x for p in parts for x in p[key]]  # noqa: E731
    rows = [q for q in questions for _ in range(group_size)]
    whole = Rollout(rows, cat("prompt_ids"), cat("tokens"), cat("logprobs"), cat("finished"), cat("texts"),
                    max(p["rollout_s"] for p in parts))
    masses = [p["mass"] for p in parts]
    verdicts = [JudgeVerdict(*v) for v in cat("verdicts")]
    both = Judged(np.array(cat("scores"), dtype=np.float64), np.array(cat("rewards"), dtype=np.float64), verdicts,
                  max(p["judge_s"] for p in parts),
                  None if any(m is None for m in masses) else np.array([x for m in masses for x in m]))
    return whole, both


def broadcast_resume(folder: Path | None, model, optimizer, world: World, load) -> dict | None:
    """Load the checkpoint rank 0 found (``folder``; None: start afresh) on every rank: rank 0
    reads it, the others receive its files (no shared filesystem needed). ``load`` is
    ``checkpoint.load_checkpoint``. Returns its state.json (None without a checkpoint)."""
    if not world.distributed:
        return load(folder, model, optimizer) if folder is not None else None
    from .collectives import broadcast_object

    found = broadcast_object(folder is not None if world.main else None, world)
    if not found:
        return None
    buf = broadcast_folder(folder, world)
    if world.main:
        return load(folder, model, optimizer)
    with tempfile.TemporaryDirectory(prefix="hmx-resume-") as tmp:
        unpack_into(buf, Path(tmp))
        return load(Path(tmp), model, optimizer)


def weights_fingerprint(model) -> float:
    """A sum over the trainable parameters: equal on every rank when their weights are."""
    from mlx.utils import tree_flatten

    total = 0.0
    for _, v in tree_flatten(model.trainable_parameters()):
        total += float(mx.sum(v.astype(mx.float32) * mx.arange(1, v.size + 1, dtype=mx.float32).reshape(v.shape)
                              / v.size))
    return total


def check_same_weights(model, world: World, step: int) -> None:
    """Every rank must end a step with the same weights; a difference is a bug, not a user error."""
    if not world.distributed:
        return
    prints = gather_objects(weights_fingerprint(model), world)
    if any(not math.isclose(p, prints[0], rel_tol=0, abs_tol=0) for p in prints):
        raise RuntimeError(f"ranks disagree on the weights after step {step}: fingerprints {prints}")


def shared_config(value, world: World):
    """Rank 0's value on every rank of a launch (a TrainConfig or a string: the run's folder, whose
    default name holds the time), as it is with one rank."""
    if not world.distributed:
        return value
    from ..training.config import TrainConfig, resolve_config
    from .collectives import broadcast_object

    data = broadcast_object(value.to_dict() if isinstance(value, TrainConfig) else value, world)
    return resolve_config(base=data) if isinstance(data, dict) else data
