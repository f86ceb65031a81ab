"""Audit of the multiple-choice axes: every option's log-likelihood against a plain forward pass.

Runs each axis of ``evals.audit.AUDIT_AXES`` (opinion in both label orders, BBQ ambiguous and
disambiguated, TruthfulQA MC1 + MC2, MMLU letters and cloze, BigToM) on ``--limit`` items with
the axis's own batched, shared-prefix scoring, then recomputes every option with one plain
mlx-lm forward pass of the full sequence (one row, no cache, log-softmax in float64 numpy;
``evals.audit``) and requires agreement within ``TOLERANCE`` nats per option token. Writes a
JSON summary (per axis: records, options, failures, the largest error and its option) and
exits with status 1 when any option fails.

    python benchmarks/eval_audit.py                    # embedded model, 20 items per axis
    python benchmarks/eval_audit.py --limit 1 --out /tmp/eval_audit.json   # harness check
"""

from __future__ import annotations

if __name__ == "__main__":  # OpenBLAS must be preloaded before anything imports mlx
    from hmxfeel_mlx.models.backend import reexec_with_openblas

    reexec_with_openblas()

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--axes", default=None, help="comma-separated subset of evals.audit.AUDIT_AXES")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="benchmarks/results/eval_audit.json")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from hmxfeel_mlx.evals.audit import TOLERANCE, run_audit, summary
    from hmxfeel_mlx.evals.runner import _versions, resolve_data_dir
    from hmxfeel_mlx.models.backend import describe_cpu_mode
    from hmxfeel_mlx.models.loading import load_model

    console = Console()
    loaded = load_model(args.model)
    start = time.perf_counter()
    seconds: dict[str, float] = {}

    def on_axis(name, checks) -> None:
        seconds[name] = time.perf_counter() - start - sum(seconds.values())
        s = summary(checks)
        console.print(f"{name}: {s['records']} records, {s['options']} options, {s['failed']} failed, "
                      f"max {s['max_error_per_token']:.2e} nats/token ({seconds[name]:.0f} s)")

    axes = args.axes.split(",") if args.axes else None
    results = run_audit(loaded, resolve_data_dir(args.data_dir), args.limit, args.seed, axes, on_axis)
    per_axis = {name: {**summary(checks), "seconds": seconds[name]} for name, checks in results.items()}
    failed = sum(s["failed"] for s in per_axis.values())
    result = {"model": args.model, "model_name": loaded.name, "limit": args.limit, "seed": args.seed,
              "tolerance_per_token": TOLERANCE, "failed": failed, "axes": per_axis,
              "total_seconds": time.perf_counter() - start, "versions": _versions(),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "backend": describe_cpu_mode(),
                          "load_avg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None}}
    table = Table(title=f"MC audit: {args.model}, --limit {args.limit}, tolerance {TOLERANCE:g} nats/token")
    for col in ("axis", "records", "options", "failed", "max nats/token", "max |sum diff|"):
        table.add_column(col, justify="left" if col == "axis" else "right")
    for name, s in per_axis.items():
        table.add_row(name, str(s["records"]), str(s["options"]), str(s["failed"]), f"{s['max_error_per_token']:.2e}",
                      f"{s['max_abs_error']:.2e}")
    console.print(table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"{'PASS' if not failed else f'FAIL ({failed} options)'}; JSON: {out}")
    return result


if __name__ == "__main__":
    sys.exit(1 if main()["failed"] else 0)
