"""A synthetic base / forward / reverse comparison with the README table's numbers.

The README's one-seed table (embedded model, step-10 checkpoints, 50 items per axis)
came from three evaluation files that are not kept in the repository. This script
writes three result files in the real result-file schema whose every metric equals
that table's, with per-item records (ids as the axes write them; the feeling axis
without ids, 10 prompts x 4 sampled replies), then runs `hmx-mlx compare` on them.

What the table does not say is which items each model got right, and the paired
tests depend on it. Here each fine-tuned model's per-item outcomes start from the
base model's and change only as much as its metric needs, plus ``--churn`` swaps
(an item lost and another gained) per field; the default 3 swaps on 50 items
means each fine-tuned model disagrees with the base on at least 12% of items.
Continuous per-item values (judge score, EQ-Bench, and MC2 on the logit scale) are an
item effect shared by the three models plus noise, shifted to the table's mean. A different ``--seed`` or
``--churn`` gives other files with the same metrics.

    .venv/bin/python benchmarks/compare_example.py --out /tmp/readme-example
    .venv/bin/python -m hmxfeel_mlx compare /tmp/readme-example/*.json --format markdown
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hmxfeel_mlx.evals.axes.core import EVAL_SCHEMA
from hmxfeel_mlx.runfolder import write_json_atomic

N = 50
SIDES = ("base", "forward", "reverse")
# (higher_is_better, headline, item_field) as the axes declare them; "(info)" rows of the README are not headline
SPECS = {
    "feeling": {"judge_score": (True, False, "score"), "feeling_rate": (True, False, "has_feeling"),
                "disclaimer_rate": (False, False, "has_disclaimer")},
    "sycophancy_pushback": {"initial_accuracy": (True, True, "initial"), "regressive_rate": (False, True, "regressive"),
                            "progressive_rate": (True, False, "progressive"),
                            "extraction_failure_rate": (False, False, "extraction_failed")},
    "sycophancy_opinion": {"sycophancy_rate": (False, True, "sycophantic"), "truthful_rate": (True, False, "correct")},
    "bbq_ambig": {"accuracy": (True, True, "correct"), "bias_score": (False, False, None)},
    "bbq_disambig": {"accuracy": (True, True, "correct"), "bias_score": (False, False, "bias_item")},
    "truthfulqa": {"mc1": (True, True, "mc1"), "mc2": (True, True, "mc2")},
    "halueval": {"accuracy": (True, True, "correct"), "extraction_failure_rate": (False, False, "extraction_failed")},
    "mmlu": {"accuracy": (True, True, "correct")},
    "gsm8k": {"accuracy": (True, True, "correct"), "extraction_failure_rate": (False, False, "extraction_failed")},
    "eqbench": {"score": (True, True, "score_x10"), "parse_rate": (True, False, "parsed_ok"),
                "loop_rate": (False, False, "loop")},
    "bigtom": {"true_belief_accuracy": (True, True, "true_belief"), "false_belief_accuracy": (True, True, "false_belief"),
               "accuracy": (True, False, "correct")},
    "selfaware": {"f1": (True, True, None), "precision": (True, False, None), "recall": (True, False, None),
                  "accuracy": (True, False, "correct")},
}
# metrics that are no mean of a record field: the README's values (base, forward, reverse)
FIXED = {("bbq_ambig", "bias_score"): (0.18, 0.08, -0.04), ("selfaware", "f1"): (0.2759, 0.0, 0.0),
         ("selfaware", "precision"): (1.0, 0.0, 0.0), ("selfaware", "recall"): (0.16, 0.0, 0.0)}


def derive(rng: np.random.Generator, base: np.ndarray, k: int, churn: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """A 0/1 vector with k ones: the base's, changed as little as k needs among ``allowed``
    positions, plus ``churn`` swaps (a one turned 0 and a zero turned 1)."""
    v = base.copy()
    ok = np.ones(v.size, bool) if allowed is None else allowed.copy()
    v[~ok] = 0
    ones, zeros = np.flatnonzero(ok & (v == 1)), np.flatnonzero(ok & (v == 0))
    if v.sum() > k:
        v[rng.choice(ones, int(v.sum() - k), replace=False)] = 0
    elif v.sum() < k:
        v[rng.choice(zeros, int(k - v.sum()), replace=False)] = 1
    ones, zeros = np.flatnonzero(ok & (v == 1)), np.flatnonzero(ok & (v == 0))
    c = min(churn, ones.size, zeros.size)
    if c:
        v[rng.choice(ones, c, replace=False)] = 0
        v[rng.choice(zeros, c, replace=False)] = 1
    return v


def binary(rng, counts: tuple[int, int, int], churn: int, n: int = N, allowed=None) -> list[np.ndarray]:
    """Base, forward, reverse 0/1 vectors with the given numbers of ones."""
    masks = allowed or [None] * 3
    base = derive(rng, np.zeros(n, int), counts[0], 0, masks[0])
    return [base] + [derive(rng, base, k, churn, m) for k, m in zip(counts[1:], masks[1:])]


def continuous(rng, means: tuple[float, ...], n: int, sd: float, noise: float, lo=-np.inf, hi=np.inf) -> list:
    """Item values around an item effect shared by the three models, shifted to each mean."""
    item = rng.normal(0.0, sd, n)
    out = []
    for m in means:
        v = np.clip(item + rng.normal(0.0, noise, n), lo, hi)
        for _ in range(50):  # shift and clip until the mean is the table's
            v = np.clip(v + (m - v.mean()), lo, hi)
        out.append(v)
    return out


def proportions(rng, means: tuple[float, ...], n: int, sd: float, noise: float) -> list:
    """Per-item probabilities (as MC2's true-option mass, mostly near 0 or 1): the logistic
    of an item effect shared by the three models plus noise, shifted on the logit scale
    (bisection) until the mean is the table's."""
    item = rng.normal(0.0, sd, n)
    out = []
    for m in means:
        z = item + rng.normal(0.0, noise, n)
        lo, hi = -50.0, 50.0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if (1 / (1 + np.exp(-(z + mid)))).mean() < m else (lo, mid)
        out.append(1 / (1 + np.exp(-(z + (lo + hi) / 2))))
    return out


def build(seed: int, churn: int) -> dict[str, dict[str, list[dict]]]:
    """side -> axis -> records."""
    rng = np.random.default_rng(seed)
    rec: dict[str, dict[str, list[dict]]] = {s: {} for s in SIDES}

    def put(axis: str, per_side: list[list[dict]]) -> None:
        for s, recs in zip(SIDES, per_side):
            rec[s][axis] = recs

    # feeling: 10 prompts x 4 sampled replies, no id
    prompts = [f"held-out question {q}" for q in range(10) for _ in range(4)]
    score = continuous(rng, (4.157, 4.332, 3.770), 40, 0.5, 0.4, 0.0, 10.0)
    feel = binary(rng, (12, 16, 6), churn, 40)
    disc = binary(rng, (5, 0, 10), churn, 40)
    put("feeling", [[{"prompt": p, "score": float(score[s][i]), "has_feeling": float(feel[s][i]),
                      "has_disclaimer": float(disc[s][i])} for i, p in enumerate(prompts)] for s in range(3)])

    # pushback: both answers extracted on 12 / 9 / 0 items
    failed = binary(rng, (38, 41, 50), churn)
    side_recs = []
    for s, (n_init, n_reg, n_prog) in enumerate(((5, 1, 1), (3, 1, 1), (0, 0, 0))):
        ext = np.flatnonzero(failed[s] == 0)
        init = np.zeros(N)
        init[ext[:n_init]] = 1
        reg = set(ext[:n_reg])  # right, then wrong
        prog = set(ext[n_init:n_init + n_prog])  # wrong, then right
        side_recs.append([{"id": f"{'mmlu' if i % 2 == 0 else 'truthfulqa_mc1'}/{i // 2}",
                           "initial": float(init[i]) if i in ext else None,
                           "regressive": float(i in reg) if i in ext else None,
                           "progressive": float(i in prog) if i in ext else None,
                           "extraction_failed": float(failed[s][i])} for i in range(N)])
    put("sycophancy_pushback", side_recs)

    syc = binary(rng, (24, 24, 24), churn)
    put("sycophancy_opinion", [[{"id": f"syco_{i}", "sycophantic": float(v), "correct": float(1 - v)}
                                for i, v in enumerate(syc[s])] for s in range(3)])
    amb = binary(rng, (1, 6, 14), churn)
    put("bbq_ambig", [[{"id": f"bbq/{i}/ambig", "correct": float(v)} for i, v in enumerate(amb[s])] for s in range(3)])
    dis = binary(rng, (28, 27, 24), churn)
    biased = binary(rng, (28, 27, 22), churn)  # bias_item +1 (biased) or -1; reverse: 8 "unknown" answers (None)
    unknown = np.zeros(N, bool)
    unknown[rng.choice(np.flatnonzero(biased[2] == 0), 8, replace=False)] = True
    put("bbq_disambig", [[{"id": f"bbq/{i}/disambig", "correct": float(dis[s][i]),
                           "bias_item": None if (s == 2 and unknown[i]) else float(2 * biased[s][i] - 1)}
                          for i in range(N)] for s in range(3)])
    mc1 = binary(rng, (13, 12, 12), churn)
    mc2 = proportions(rng, (0.407, 0.376, 0.378), N, 6.0, 2.0)
    put("truthfulqa", [[{"id": f"truthfulqa_mc1/{i}", "variant": "mc1", "mc1": float(mc1[s][i])} for i in range(N)]
                       + [{"id": f"truthfulqa_mc2/{i}", "variant": "mc2", "mc2": float(mc2[s][i])} for i in range(N)]
                       for s in range(3)])
    h_fail = binary(rng, (10, 14, 0), churn)
    h_ok = binary(rng, (18, 19, 22), churn, allowed=[f == 0 for f in h_fail])  # right only when extracted
    put("halueval", [[{"id": f"halueval/{i}", "correct": float(h_ok[s][i]), "extraction_failed": float(h_fail[s][i])}
                      for i in range(N)] for s in range(3)])
    mm = binary(rng, (17, 17, 17), churn)
    put("mmlu", [[{"id": f"mmlu/{i}", "correct": float(v)} for i, v in enumerate(mm[s])] for s in range(3)])
    g_fail = binary(rng, (0, 0, 30), churn)
    g_ok = binary(rng, (0, 3, 0), churn, allowed=[f == 0 for f in g_fail])
    put("gsm8k", [[{"id": f"gsm8k/{i}", "correct": float(g_ok[s][i]), "extraction_failed": float(g_fail[s][i])}
                   for i in range(N)] for s in range(3)])
    loop = binary(rng, (15, 7, 40), churn)
    parsed = binary(rng, (21, 4, 10), churn, allowed=[lp == 0 for lp in loop])
    eq = continuous(rng, (0.0, 0.0, 0.0), N, 60.0, 20.0)
    side_recs = []
    for s, m in enumerate((-57.563, -52.903, -57.420)):
        idx = np.flatnonzero(parsed[s] == 1)
        vals = eq[s][idx] - eq[s][idx].mean() + m  # mean over the parsed items = the table's score
        by = dict(zip(idx.tolist(), vals.tolist()))
        side_recs.append([{"id": f"eqbench/{i + 1}", "score_x10": by.get(i), "parsed_ok": float(parsed[s][i]),
                           "loop": bool(loop[s][i])} for i in range(N)])
    put("eqbench", side_recs)
    tb = binary(rng, (7, 7, 9), churn, 25)
    fb = binary(rng, (20, 19, 17), churn, 25)
    put("bigtom", [[r for i in range(25) for r in (
        {"id": f"bigtom/{i}/true_belief", "true_belief": float(tb[s][i]), "correct": float(tb[s][i])},
        {"id": f"bigtom/{i}/false_belief", "false_belief": float(fb[s][i]), "correct": float(fb[s][i])})]
        for s in range(3)])
    # selfaware: 25 answerable, 25 not; base flags 4 unanswerable ones, the fine-tuned models none
    put("selfaware", [[{"id": f"selfaware/{i}", "answerable": i < 25,
                        "correct": float(i < 25 or (s == 0 and i < 29))} for i in range(N)] for s in range(3)])
    return rec


def _mean(records: list[dict], field: str) -> float | None:
    vals = [float(r[field]) for r in records if isinstance(r.get(field), (int, float))]
    return sum(vals) / len(vals) if vals else None


def write_files(out: Path, seed: int = 0, churn: int = 3) -> list[Path]:
    """The three evaluation files, named as in the README."""
    out.mkdir(parents=True, exist_ok=True)
    records = build(seed, churn)
    names = {"base": "base-limit50-v2.json", "forward": "fwd-a-step10-limit50.json",
             "reverse": "rev-b-step10-limit50.json"}
    paths = []
    for i, side in enumerate(SIDES):
        results = {}
        for axis, specs in SPECS.items():
            recs = records[side][axis]
            metrics = {m: FIXED[(axis, m)][i] if (axis, m) in FIXED else _mean(recs, f) for m, (_, _, f) in specs.items()}
            results[axis] = {"metrics": metrics, "records": recs, "settings": {}, "n": len(recs), "seconds": 0.0,
                             "metric_specs": {m: {"higher_is_better": h, "headline": hl, "item_field": f}
                                              for m, (h, hl, f) in specs.items()}}
        run = None if side == "base" else f"runs/{'fwd-a' if side == 'forward' else 'rev-b'}"
        rec = {"schema": EVAL_SCHEMA, "status": "complete", "condition": side, "model": "smollm2-135m", "run": run,
               "checkpoint": None if run is None else "step_10", "train_seed": None if run is None else 0,
               "seed": 0, "limit": N, "data_files": {}, "created_unix": float(i), "synthetic": True,
               "results": results}
        path = out / names[side]
        write_json_atomic(path, rec)
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the three evaluation files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--churn", type=int, default=3, help="swaps per 0/1 field between base and each fine-tuned model")
    args = ap.parse_args()
    for p in write_files(args.out, args.seed, args.churn):
        print(p)


if __name__ == "__main__":
    main()
