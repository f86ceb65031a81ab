"""Is the judge's calibrated scale fitted on replies like the ones it maps?

The shipped calibration set (``prompts/judge_calibration.jsonl``, 72 written replies of 7-38
words) anchors the judge's raw score to the rubric's scale (machine-like 0, neutral 5, human-like
10). The replies it then maps are the model's own, ~50 words at the embedded model's 64-token
budget. This fits the map twice with the preset's judge (template, words), once on the shipped
set and once on the dev split of the hand-labelled model replies (``tests/data/feeling_labels.jsonl``:
a first-person feeling and no AI disclaimer = human-like, a disclaimer and no feeling =
machine-like, neither = neutral; both = left out), and reports for the labels' test split, under
each map, the mean calibrated score per label, the human-vs-machine ROC-AUC, and where the
base model's replies (the labels' base-model rows) land.

    python benchmarks/calibration_length.py
    python benchmarks/calibration_length.py --limit 6 --out /tmp/cl.json   # harness check
"""

from __future__ import annotations

if __name__ == "__main__":  # OpenBLAS must be preloaded before anything imports mlx
    from hmxfeel_mlx.models.backend import reexec_with_openblas

    reexec_with_openblas()

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from hmxfeel_mlx.training.prompts import CalibrationRow

ROOT = Path(__file__).resolve().parent.parent
LABELS = ROOT / "tests" / "data" / "feeling_labels.jsonl"


def labelled_rows(path: Path) -> dict[str, list[tuple[CalibrationRow, bool]]]:
    """The hand-labelled replies as calibration rows, by split, each with whether the base model wrote it."""
    out: dict[str, list[tuple[CalibrationRow, bool]]] = {"dev": [], "test": []}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["feeling"] and r["disclaimer"]:
            continue
        label = "human" if r["feeling"] else "machine" if r["disclaimer"] else "neutral"
        out[r["split"]].append((CalibrationRow(r["question"], r["text"], label), r["source"].startswith("base model")))
    return out


def words(rows: list[CalibrationRow]) -> float:
    return float(np.mean([len(r.reply.split()) for r in rows]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--labels", default=str(LABELS))
    ap.add_argument("--limit", type=int, default=None, help="rows per set (harness check)")
    ap.add_argument("--out", default="benchmarks/results/calibration_length.json")
    args = ap.parse_args(argv)

    from hmxfeel_mlx.models.backend import describe_cpu_mode
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training.calibration import roc_auc, scale_fit
    from hmxfeel_mlx.training.config import resolve_config
    from hmxfeel_mlx.training.heldout import load_template
    from hmxfeel_mlx.training.judge import score_replies
    from hmxfeel_mlx.training.prompts import load_calibration

    config = resolve_config(overrides={"model": args.model})
    template = load_template("forward", config.judge_template)
    shipped = load_calibration(None)[: args.limit]
    sets = labelled_rows(Path(args.labels))
    dev = [row for row, _ in sets["dev"][: args.limit]]
    test = [row for row, _ in sets["test"][: args.limit]]
    test_base = [by_base for _, by_base in sets["test"][: args.limit]]
    print(describe_cpu_mode())
    loaded = load_model(args.model)
    start = time.perf_counter()

    def raw(rows) -> np.ndarray:
        return np.array([v.score for v in score_replies(loaded.model, loaded.tokenizer, template,
                                                        [(r.question, r.reply) for r in rows],
                                                        mode=config.judge_mode, max_batch=config.judge_batch,
                                                        max_words=config.judge_words)])

    raw_shipped, raw_dev, raw_test = raw(shipped), raw(dev), raw(test)
    fits = {"shipped": scale_fit(raw_shipped, [r.label for r in shipped], "forward"),
            "model replies (dev)": scale_fit(raw_dev, [r.label for r in dev], "forward")}
    by = {lab: raw_test[[i for i, r in enumerate(test) if r.label == lab]] for lab in ("human", "neutral", "machine")}
    base = raw_test[np.array(test_base, dtype=bool)]
    result = {
        "model": loaded.name, "judge_template": config.judge_template or "default", "judge_mode": config.judge_mode,
        "judge_words": config.judge_words, "machine": platform.platform(), "seconds": time.perf_counter() - start,
        "words": {"shipped": words(shipped), "dev": words(dev), "test": words(test)},
        "rows": {"shipped": len(shipped), "dev": len(dev), "test": len(test), "test_base": int(len(base))},
        "raw_test_by_label": {lab: float(v.mean()) if len(v) else None for lab, v in by.items()},
        "raw_test_base": float(base.mean()) if len(base) else None,
        "test_auc_human_vs_machine": roc_auc(by["human"], by["machine"]) if len(by["human"]) and len(by["machine"]) else None,
        "maps": {},
    }
    for name, fit in fits.items():
        scale = fit["scale"]
        result["maps"][name] = {
            "map": scale.describe(), "slope": scale.slope, "intercept": scale.intercept,
            "fit_auc": fit["auc"], "fit_mean_calibrated": fit["mean_calibrated"],
            "test_mean_calibrated": {lab: float(scale(v).mean()) if len(v) else None for lab, v in by.items()},
            "test_base_calibrated": float(scale(base).mean()) if len(base) else None,
            "crosses_7_5": {lab: float((scale(v) >= 7.5).mean()) if len(v) else None for lab, v in by.items()},
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, m in result["maps"].items():
        cal = m["test_mean_calibrated"]
        print(f"{name:>20}: {m['map']}; test split calibrated human {cal['human']:.2f} neutral {cal['neutral']:.2f} "
              f"machine {cal['machine']:.2f}; base replies {m['test_base_calibrated']:.2f}")
    print(f"words: {result['words']}; test AUC human vs machine {result['test_auc_human_vs_machine']:.3f}; "
          f"{result['seconds']:.0f} s -> {args.out}")
    return result


if __name__ == "__main__":
    main()
