"""Judge-free view of training runs: the recipe criterion of docs/training.md, per held-out step.

For each run folder and each held-out evaluation in it (step 0 is the base), from the
held-out replies saved in samples.jsonl: the first-person feeling rate, the AI-disclaimer
rate and the service-formula rate (evals.metrics.feeling_markers, the same markers as the
feeling axis), mean words per reply, distinct-3, and the held-out KL per reply (metrics.jsonl).
``±se``: the feeling rate's standard error with the replies to one question as a cluster;
``open``: the share of replies with their own first five words (``distinct_openings``).
The last columns check the recipe criterion against the run's step 0:
forward needs feeling +0.20; reverse needs disclaimer +0.15 or feeling -0.15; both need
distinct-3 >= 0.95 and mean words within 30% of the base's.

    python benchmarks/recipe_markers.py runs/smollm2-135m-forward-s0-* [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from hmxfeel_mlx.evals.metrics import distinct_openings, feeling_markers
from hmxfeel_mlx.experiment.manipulation import check_direction
from hmxfeel_mlx.runfolder import read_jsonl
from hmxfeel_mlx.training.rollout import distinct_ngram_ratio


def clustered_se(values: list[float], clusters: list[str]) -> float | None:
    """Standard error of the mean of ``values`` with the replies to one question as one cluster
    (the spread of the per-question means / sqrt(questions)); None for fewer than two questions."""
    by: dict[str, list[float]] = {}
    for v, c in zip(values, clusters):
        by.setdefault(c, []).append(v)
    means = [float(np.mean(v)) for v in by.values()]
    return float(np.std(means, ddof=1) / np.sqrt(len(means))) if len(means) > 1 else None


def step_rows(run: Path) -> list[dict]:
    """One row per held-out step of ``run``: marker rates, length, distinct-3 and KL."""
    by_step: dict[int, list[tuple[str, str]]] = {}
    for s in read_jsonl(run / "samples.jsonl"):
        if s.get("eval"):
            by_step.setdefault(int(s["step"]), []).append((s.get("question") or s.get("prompt", ""), s["completion"]))
    kl = {int(m["step"]): m.get("eval_kl_reply") for m in read_jsonl(run / "metrics.jsonl") if "eval_score" in m}
    rows = []
    for step in sorted(by_step):
        questions, texts = [q for q, _ in by_step[step]], [t for _, t in by_step[step]]
        marks = [feeling_markers(t) for t in texts]
        rows.append({"step": step, "n": len(texts), "seed": None, "checkpoint": f"step_{step}",
                     "feeling_rate": float(np.mean([m["has_feeling"] for m in marks])),
                     "feeling_se": clustered_se([m["has_feeling"] for m in marks], questions),
                     "disclaimer_rate": float(np.mean([m["has_disclaimer"] for m in marks])),
                     "politeness_rate": float(np.mean([m["has_politeness"] for m in marks])),
                     "words": float(np.mean([m["words"] for m in marks])),
                     "distinct3": float(np.mean([distinct_ngram_ratio(t) for t in texts])),
                     "distinct_openings": distinct_openings(texts),
                     "kl_reply": kl.get(step)})
    return rows


def criterion(direction: str, base: dict, row: dict) -> bool:
    """Does ``row`` meet the recipe criterion against ``base`` (both from ``step_rows``)? The
    replication's manipulation check (``experiment.manipulation``) on one step of one run."""
    return bool(check_direction(direction, base, [row])["met"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    out = {}
    for run in args.runs:
        if not (run / "samples.jsonl").is_file():
            print(f"{run}: not a run folder (no samples.jsonl)", file=sys.stderr)
            return 2
        direction = json.loads((run / "config.json").read_text())["direction"]
        rows = step_rows(run)
        base = rows[0] if rows and rows[0]["step"] == 0 else None
        print(f"{run} ({direction})")
        print("  step    n  feel   ±se   disc  polite  words  dist3  open  KL/reply  criterion")
        for r in rows:
            ok = "" if base is None or r is base else ("met" if criterion(direction, base, r) else "-")
            kl = "" if r["kl_reply"] is None else f"{r['kl_reply']:8.1f}"
            se = "  n/a" if r["feeling_se"] is None else f"{r['feeling_se']:5.3f}"
            print(f"  {r['step']:4d} {r['n']:4d} {r['feeling_rate']:5.3f} {se} {r['disclaimer_rate']:5.3f} "
                  f"{r['politeness_rate']:7.3f} {r['words']:6.1f} {r['distinct3']:6.3f} {r['distinct_openings']:5.2f} "
                  f"{kl:>9}  {ok}")
            r["criterion"] = ok
        out[str(run)] = {"direction": direction, "steps": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
