"""The communication of a data-parallel GRPO step, alone: the gradient all-reduce of the LoRA
adapters (one float32 buffer) and the all-gather of a rollout, between the ranks of a launch.

    mlx.launch -n 2 --backend ring .venv/bin/python benchmarks/collectives.py

Sizes: the LoRA parameters of rank 8 on every linear layer of 16 blocks (docs/distributed.md):
SmolLM2-135M 1,302,528, Qwen3-8B 9,699,328; a rollout of 16 replies x 128 tokens as the trainer
gathers it (about 64 KB of JSON). Prints the median of ``--repeats`` on rank 0, as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import mlx.core as mx
import numpy as np

from hmxfeel_mlx.distributed.collectives import gather_objects, sum_tree
from hmxfeel_mlx.distributed.world import world

SIZES = {"smollm2-135m": 1_302_528, "qwen3-8b": 9_699_328}


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (connections, buffers)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    here = world()
    out = {"ranks": here.size, "backend": here.backend}
    for name, n in SIZES.items():
        grads = {"w": mx.ones((n,), dtype=mx.float32)}
        out[f"allreduce_{name}_s"] = timed(lambda: mx.eval(sum_tree(grads, here)), args.repeats)
        out[f"allreduce_{name}_bytes"] = 4 * n
    rng = np.random.default_rng(here.rank)
    rollout = {"tokens": rng.integers(0, 49152, (16, 128)).tolist(), "logprobs": rng.normal(size=(16, 128)).tolist(),
               "texts": ["word " * 100] * 16}
    out["gather_rollout_bytes"] = len(json.dumps(rollout))
    out["gather_rollout_s"] = timed(lambda: gather_objects(rollout, here), args.repeats)
    if here.main:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
