"""How far apart are two runs of the same training? (a K-rank run against one process, a resumed run
against an uninterrupted one)

Per step, the largest relative difference over the numeric metrics (timings and rank counts left
out) and the metric it is in; how many saved replies are identical; and, for every checkpoint both
runs have, the largest absolute difference of the adapter weights.

    python benchmarks/compare_runs.py /tmp/dist/one /tmp/dist/two [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

TIMING = ("_s", "seconds", "tok_s", "replies_s", "peak_memory_gb", "ranks")


def relative(a: float, b: float) -> float:
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def compare(a: Path, b: Path) -> dict:
    from hmxfeel_mlx.runfolder import read_jsonl

    ma, mb = read_jsonl(a / "metrics.jsonl"), read_jsonl(b / "metrics.jsonl")
    steps = []
    for ra, rb in zip(ma, mb):
        worst, key = 0.0, None
        for k, v in ra.items():
            w = rb.get(k)
            if k.endswith(TIMING) or isinstance(v, bool) or not isinstance(v, (int, float)) \
                    or not isinstance(w, (int, float)):
                continue
            d = relative(float(v), float(w))
            if d > worst:
                worst, key = d, k
        steps.append({"step": ra["step"], "max_rel_diff": worst, "metric": key})
    sa, sb = read_jsonl(a / "samples.jsonl"), read_jsonl(b / "samples.jsonl")
    same = sum(x.get("completion") == y.get("completion") for x, y in zip(sa, sb))
    adapters = {}
    ca, cb = a / "checkpoints", b / "checkpoints"
    if ca.is_dir() and cb.is_dir():
        import mlx.core as mx

        for d in sorted(ca.iterdir()):
            other = cb / d.name / "adapters.safetensors"
            if (d / "adapters.safetensors").is_file() and other.is_file():
                wa, wb = mx.load(str(d / "adapters.safetensors")), mx.load(str(other))
                adapters[d.name] = max(float(mx.abs(wa[k] - wb[k]).max()) for k in wa)
    return {"steps": steps, "samples": len(sa), "samples_other": len(sb), "identical_samples": same,
            "adapter_max_abs_diff": adapters}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    for run in (args.a, args.b):
        if not (run / "metrics.jsonl").is_file():
            print(f"{run}: not a run folder (no metrics.jsonl)", file=sys.stderr)
            return 2
    out = compare(args.a, args.b)
    for s in out["steps"]:
        print(f"step {s['step']:3d}  max relative difference {s['max_rel_diff']:.1e}  ({s['metric'] or '-'})")
    print(f"identical replies: {out['identical_samples']} of {out['samples']} (other run: {out['samples_other']})")
    for name, d in out["adapter_max_abs_diff"].items():
        print(f"{name}: adapters max |difference| {d:.1e}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
