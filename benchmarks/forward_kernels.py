"""Forward speed with MLX's own attention/SwiGLU against ``hmxfeel_mlx.cpu_kernels``.

Times, on the embedded model (fp32, CPU backend), a prefill of ``--rows`` random
prompts of about ``--prompt-len`` tokens and the median of ``--steps`` decoding
steps on that cache, first with mlx-lm's kernels, then with ours, and checks the
two give the same logits.

    python benchmarks/forward_kernels.py                     # 64 rows x ~124 tokens
    python benchmarks/forward_kernels.py --rows 2 --prompt-len 8 --steps 2 --out /tmp/fk.json   # harness check
"""

from __future__ import annotations

if __name__ == "__main__":  # OpenBLAS must be preloaded before anything imports mlx
    from hmxfeel_mlx.backend import reexec_with_openblas

    reexec_with_openblas()

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def measure(model, prompts: list[list[int]], steps: int) -> dict:
    import mlx.core as mx

    from hmxfeel_mlx.generation import prefill

    start = time.perf_counter()
    logits, cache = prefill(model, prompts, joinable=True)
    mx.eval(logits)
    prefill_s = time.perf_counter() - start
    step = mx.array([[5]] * len(prompts), dtype=mx.int32)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        t = time.perf_counter()
        out = model(step, cache=cache)[:, -1, :]
        mx.eval(out)
        times.append(time.perf_counter() - t)
    return {"prefill_s": prefill_s, "decode_step_ms": 1000 * statistics.median(times[1:]), "logits": logits,
            "last": out}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=124)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/forward_kernels.json")
    args = ap.parse_args(argv)

    import mlx.core as mx
    import numpy as np
    from mlx_lm.models import activations, base

    from hmxfeel_mlx.backend import describe_cpu_mode
    from hmxfeel_mlx.cpu_kernels import _scaled_dot_product_attention, fast_swiglu
    from hmxfeel_mlx.loading import load_model

    loaded = load_model(args.model)
    module = sys.modules[type(loaded.model).__module__]
    rng = np.random.default_rng(0)
    prompts = [rng.integers(100, 20000, size=args.prompt_len - 3 + i % 7).tolist() for i in range(args.rows)]

    ours = {"swiglu": fast_swiglu, "scaled_dot_product_attention": _scaled_dot_product_attention}
    mlx_own = {"swiglu": activations.swiglu, "scaled_dot_product_attention": base.scaled_dot_product_attention}
    results = {}
    for name, kernels in (("mlx", mlx_own), ("cpu_kernels", ours)):
        for attr, fn in kernels.items():
            setattr(module, attr, fn)
        results[name] = measure(loaded.model, prompts, args.steps)
        print(f"{name}: prefill {results[name]['prefill_s']:.2f} s, decode step {results[name]['decode_step_ms']:.1f} ms")
    diff = {k: float(mx.abs(results["mlx"][k] - results["cpu_kernels"][k]).max()) for k in ("logits", "last")}
    scale = float(mx.abs(results["mlx"]["logits"]).max())
    summary = {
        "model": args.model, "rows": args.rows, "prompt_tokens": sum(map(len, prompts)), "steps": args.steps,
        **{f"{n}_{k}": results[n][k] for n in results for k in ("prefill_s", "decode_step_ms")},
        "prefill_ratio": results["cpu_kernels"]["prefill_s"] / results["mlx"]["prefill_s"],
        "decode_ratio": results["cpu_kernels"]["decode_step_ms"] / results["mlx"]["decode_step_ms"],
        "max_abs_logit_diff": diff, "max_abs_logit": scale, "backend": describe_cpu_mode(),
    }
    print(f"ratios: prefill {summary['prefill_ratio']:.2f}, decode {summary['decode_ratio']:.2f}; "
          f"max |logit diff| {diff} (logits up to {scale:.1f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
