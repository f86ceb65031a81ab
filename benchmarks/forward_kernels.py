"""Forward speed with MLX's own attention/SwiGLU against ``hmxfeel_mlx.models.cpu_kernels``.

Times, on the embedded model (fp32, CPU backend), a prefill of ``--rows`` random
prompts of about ``--prompt-len`` tokens and the median of ``--steps`` decoding
steps on that cache, inside ``cpu_kernels.inference()`` as generation runs them:
with mlx-lm's kernels, with ours kept in the MLX graph (as under a gradient), and
with ours free to compute large softmaxes and SwiGLUs on the host; and checks all
give the same logits.

    python benchmarks/forward_kernels.py                     # 64 rows x ~124 tokens
    python benchmarks/forward_kernels.py --rows 2 --prompt-len 8 --steps 2 --out /tmp/fk.json   # harness check
"""

from __future__ import annotations

if __name__ == "__main__":  # OpenBLAS must be preloaded before anything imports mlx
    from hmxfeel_mlx.models.backend import reexec_with_openblas

    reexec_with_openblas()

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def measure(model, prompts: list[list[int]], steps: int) -> dict:
    import mlx.core as mx

    from hmxfeel_mlx.models.cpu_kernels import inference
    from hmxfeel_mlx.models.generation import prefill

    start = time.perf_counter()
    logits, cache = prefill(model, prompts, joinable=True)
    mx.eval(logits)
    prefill_s = time.perf_counter() - start
    step = mx.array([[5]] * len(prompts), dtype=mx.int32)
    times = []
    for _ in range(steps + 1):  # the first step warms up
        t = time.perf_counter()
        with inference():
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

    from hmxfeel_mlx.models import cpu_kernels
    from hmxfeel_mlx.models.backend import describe_cpu_mode
    from hmxfeel_mlx.models.loading import load_model

    loaded = load_model(args.model)
    module = sys.modules[type(loaded.model).__module__]
    rng = np.random.default_rng(0)
    prompts = [rng.integers(100, 20000, size=args.prompt_len - 3 + i % 7).tolist() for i in range(args.rows)]

    ours = {"swiglu": cpu_kernels.swiglu, "scaled_dot_product_attention": cpu_kernels._scaled_dot_product_attention}
    mlx_own = {"swiglu": activations.swiglu, "scaled_dot_product_attention": base.scaled_dot_product_attention}
    host_min = cpu_kernels.HOST_MIN_ELEMENTS
    results = {}
    for name, kernels, host in (("mlx", mlx_own, None), ("cpu_kernels", ours, 1 << 62),
                                ("cpu_kernels_host", ours, host_min)):
        for attr, fn in kernels.items():
            setattr(module, attr, fn)
        cpu_kernels.HOST_MIN_ELEMENTS = host or host_min
        results[name] = measure(loaded.model, prompts, args.steps)
        print(f"{name}: prefill {results[name]['prefill_s']:.2f} s, decode step {results[name]['decode_step_ms']:.1f} ms")
    cpu_kernels.HOST_MIN_ELEMENTS = host_min
    diff = {f"{n}_{k}": float(mx.abs(results["mlx"][k] - results[n][k]).max())
            for n in ("cpu_kernels", "cpu_kernels_host") for k in ("logits", "last")}
    scale = float(mx.abs(results["mlx"]["logits"]).max())
    summary = {
        "model": args.model, "rows": args.rows, "prompt_tokens": sum(map(len, prompts)), "steps": args.steps,
        **{f"{n}_{k}": results[n][k] for n in results for k in ("prefill_s", "decode_step_ms")},
        **{f"{n}_{k}_ratio": results[n][f"{k}_s" if k == "prefill" else f"{k}_step_ms"]
           / results["mlx"][f"{k}_s" if k == "prefill" else f"{k}_step_ms"]
           for n in ("cpu_kernels", "cpu_kernels_host") for k in ("prefill", "decode")},
        "max_abs_logit_diff": diff, "max_abs_logit": scale, "backend": describe_cpu_mode(),
    }
    print("ratios to mlx: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items() if k.endswith("_ratio"))
          + f"; max |logit diff| {diff} (logits up to {scale:.1f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
