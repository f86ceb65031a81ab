"""Evaluation speed: items/s per axis of `hmx-mlx eval` on one model.

Runs ``evals.runner.evaluate`` (the same code as the command) with ``--limit N``
items per axis and reports, per axis, items, seconds and items/s (an "item" is
one record: an MC question with all its options, one generated reply, or for
``sycophancy_pushback`` one question with both turns; for ``feeling`` one sampled
reply, judged). The evaluation JSON itself is kept next to the result
(``<out>.eval.json``) so the timed outputs can be audited.

    python benchmarks/eval_speed.py                 # embedded model, 20 items per axis
    python benchmarks/eval_speed.py --limit 2 --out /tmp/eval_speed.json   # harness check
"""

from __future__ import annotations

if __name__ == "__main__":  # OpenBLAS must be preloaded before anything imports mlx
    from hmxfeel_mlx.models.backend import reexec_with_openblas

    reexec_with_openblas()

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--axes", default="all")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="benchmarks/results/eval_speed.json")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from hmxfeel_mlx.evals.runner import evaluate
    from hmxfeel_mlx.models.backend import describe_cpu_mode

    out = Path(args.out)
    rows: list[dict] = []
    console = Console()

    def on_axis(res) -> None:
        n = len(res.records)
        rows.append({"axis": res.name, "items": n, "seconds": res.seconds,
                     "items_per_s": n / res.seconds if res.seconds > 0 else float("nan"),
                     "settings": {k: v for k, v in res.settings.items() if k in ("normalisation", "max_new_tokens")}})
        console.print(f"{res.name}: {n} items in {res.seconds:.1f} s")

    start = time.perf_counter()
    run = evaluate(args.model, args.axes, limit=args.limit, seed=args.seed, data_dir=args.data_dir,
                   out=out.with_suffix(".eval.json"), batch_size=args.batch_size, on_axis=on_axis)
    total = time.perf_counter() - start
    result = {"model": args.model, "limit": args.limit, "batch_size": args.batch_size, "axes": rows,
              "total_seconds": total, "eval_seconds": sum(r["seconds"] for r in rows),
              "eval_file": str(run.path), "versions": run.record["versions"],
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "backend": describe_cpu_mode(),
                          "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None}}
    table = Table(title=f"eval speed: {args.model}, --limit {args.limit}, batch {args.batch_size}")
    for col in ("axis", "items", "seconds", "items/s"):
        table.add_column(col, justify="left" if col == "axis" else "right")
    for r in rows:
        table.add_row(r["axis"], str(r["items"]), f"{r['seconds']:.1f}", f"{r['items_per_s']:.2f}")
    console.print(table)
    console.print(f"total {total:.1f} s (model load and data included); JSON: {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
