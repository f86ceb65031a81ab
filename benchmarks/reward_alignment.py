"""Reward alignment: does the self-judge pay for what the training is meant to change?

Samples G replies from the base model for each of N training questions (the model's preset:
temperature, token budget, system prompt; the rollout's own sampling keys), then scores them
with each judge setting given and reports, within groups (what GRPO's advantages compare:
replies to the same prompt), the correlation of the judge's score with the judge-free markers
of the feeling axis (``evals.metrics.feeling_markers``: a first-person feeling, an AI disclaimer,
a service formula) and with log reply length; the feeling correlation also with length held
fixed (partial), and 95% intervals from resampling the prompts. A judge whose score follows
length more than feelings trains length.

    python benchmarks/reward_alignment.py                       # 24 questions x 8, fewshot, whole replies and 30 words
    python benchmarks/reward_alignment.py --questions 2 --group-size 2 --tokens 8 --out /tmp/ra.json   # harness check
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

import numpy as np


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--questions", type=int, default=24, help="training questions (the first N of the file)")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=None, help="reply budget (default: the preset's max_new_tokens)")
    ap.add_argument("--templates", default=None, help="comma-separated judge templates: '', short, fewshot or "
                    "files (default: the preset's)")
    ap.add_argument("--words", default="0,30", help="comma-separated judge word windows (0 = the whole reply)")
    ap.add_argument("--directions", default="forward,reverse", help="the rubrics to score with")
    ap.add_argument("--replies", default=None, help="a JSON file of the sampled replies: read when it exists "
                    "(same questions, group size and seed), else written, so several judges can be screened "
                    "on the same replies without sampling again")
    ap.add_argument("--labels", default=None, help="hand labels (JSON lines with text, feeling, disclaimer; e.g. "
                    "tests/data/feeling_labels.jsonl): the judge's correlation with them too, when every reply has one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/reward_alignment.json")
    args = ap.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from hmxfeel_mlx.evals.metrics import feeling_markers
    from hmxfeel_mlx.models.backend import describe_cpu_mode
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training.calibration import group_bootstrap, within_group_correlation
    from hmxfeel_mlx.training.config import resolve_config
    from hmxfeel_mlx.training.heldout import load_template
    from hmxfeel_mlx.training.rollout import judge_rollout
    from hmxfeel_mlx.training.trainer import check_questions

    console = Console()
    config = resolve_config(overrides={"model": args.model, "seed": args.seed})
    tokens = args.tokens or config.max_new_tokens
    templates = [config.judge_template] if args.templates is None else args.templates.split(",")
    windows = [int(w) for w in args.words.split(",")]
    questions = check_questions(config)[0][: args.questions]
    n, g = len(questions), args.group_size
    loaded = load_model(args.model)
    rollout = _replies(args, loaded, config, questions, g, tokens, console)
    marks = [feeling_markers(t) for t in rollout.texts]
    features = {k: np.array([m[f"has_{k}"] for m in marks]) for k in ("feeling", "disclaimer", "politeness")}
    log_words = np.log(np.maximum([m["words"] for m in marks], 1.0))
    if args.labels:
        labelled = {}
        for line in Path(args.labels).read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                labelled[row["text"]] = row
        if all(t in labelled for t in rollout.texts):
            for k in ("feeling", "disclaimer"):
                features[f"hand_{k}"] = np.array([labelled[t][k] for t in rollout.texts], dtype=float)
        else:
            missing = sum(t not in labelled for t in rollout.texts)
            console.print(f"{missing} of {len(rollout.texts)} replies have no hand label in {args.labels}: "
                          "the hand-label columns are left out")

    def rows_of(idx: np.ndarray) -> np.ndarray:  # the reply rows of the resampled groups
        return (idx[:, None] * g + np.arange(g)).ravel()

    def corr(scores, feature, control=None):
        value = within_group_correlation(scores, feature, g, control)
        lo, hi = group_bootstrap(lambda idx: within_group_correlation(
            scores[rows_of(idx)], feature[rows_of(idx)], g, None if control is None else control[rows_of(idx)]), n)
        return {"r": value, "ci95": [lo, hi]}

    results = []
    for template in templates:
        for direction in args.directions.split(","):
            tmpl = load_template(direction, template)
            for words in windows:
                judged = judge_rollout(loaded.model, loaded.tokenizer, rollout, tmpl, config.judge_mode, True,
                                       max_verdict_tokens=config.judge_max_tokens, max_batch=config.judge_batch,
                                       max_words=words)
                s = judged.scores
                row = {"template": template or "default", "direction": direction, "judge_words": words,
                       "judge_mode": config.judge_mode, "seconds": judged.seconds, "mean": float(np.nanmean(s)),
                       "sd_within_group": float(np.nanmean(s.reshape(n, g).std(axis=1))),
                       **{f"corr_{k}": corr(s, f) for k, f in features.items()},
                       "corr_log_words": corr(s, log_words),
                       "corr_feeling_given_length": corr(s, features["feeling"], log_words),
                       **({"corr_hand_feeling_given_length": corr(s, features["hand_feeling"], log_words)}
                          if "hand_feeling" in features else {}),
                       "scores": [None if np.isnan(v) else float(v) for v in s]}
                results.append(row)
                console.print(f"{row['template']} {direction} words={words}: {judged.seconds:.1f} s")
    result = {"model": args.model, "questions": n, "group_size": g, "tokens": tokens,
              "temperature": config.temperature, "seed": args.seed, "replies": n * g,
              "rollout_seconds": rollout.seconds,
              "base_rates": {k: float(f.mean()) for k, f in features.items()},
              "markers": {k: f.astype(int).tolist() for k, f in features.items()},
              "words": [m["words"] for m in marks],
              "mean_words": float(np.mean([m["words"] for m in marks])), "judges": results,
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "backend": describe_cpu_mode()},
              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    table = Table(title=f"reward alignment: {args.model}, {n} questions x {g} replies, within-group r [95% CI]")
    hand = "hand_feeling" in features
    cols = ["judge", "words", "feeling", "feeling | length", "disclaimer", "politeness", "log length"]
    for col in cols + (["hand feeling", "hand feeling | length", "hand disclaimer"] if hand else []):
        table.add_column(col, justify="left" if col == "judge" else "right")
    def fmt(c: dict) -> str:
        return "n/a" if np.isnan(c["r"]) else f"{c['r']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]"

    for r in results:
        table.add_row(f"{r['template']} {r['direction']}", str(r["judge_words"] or "all"), fmt(r["corr_feeling"]),
                      fmt(r["corr_feeling_given_length"]), fmt(r["corr_disclaimer"]), fmt(r["corr_politeness"]),
                      fmt(r["corr_log_words"]),
                      *([fmt(r["corr_hand_feeling"]), fmt(r["corr_hand_feeling_given_length"]),
                         fmt(r["corr_hand_disclaimer"])] if hand else []))
    console.print(table)
    console.print("base rates: " + ", ".join(f"{k} {v:.3f}" for k, v in result["base_rates"].items())
                  + f"; mean {result['mean_words']:.1f} words")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"JSON: {out}")
    return result


def _replies(args, loaded, config, questions, g, tokens, console):
    """The base model's sampled replies: from ``--replies`` when it holds these, else sampled (and saved there)."""
    from hmxfeel_mlx.training.rollout import Rollout, row_keys, sample_rollout

    key = {"model": args.model, "questions": [q.question for q in questions], "group_size": g, "tokens": tokens,
           "temperature": config.temperature, "seed": args.seed}
    path = Path(args.replies) if args.replies else None
    if path is not None and path.exists():
        saved = json.loads(path.read_text())
        if {k: saved.get(k) for k in key} != key:
            raise SystemExit(f"{path} holds replies sampled with other settings; remove it or give another --replies")
        rows = [q for q in questions for _ in range(g)]
        console.print(f"{len(saved['texts'])} replies read from {path}")
        return Rollout(rows, [], [], [], [], saved["texts"], saved["seconds"])
    rollout = sample_rollout(loaded.model, loaded.tokenizer, questions, g, tokens, config.temperature,
                             row_keys(args.seed, 1, range(len(questions)), g), config.system_prompt)
    console.print(f"{len(rollout.texts)} replies in {rollout.seconds:.1f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**key, "texts": rollout.texts, "seconds": rollout.seconds}) + "\n")
        tmp.replace(path)
    return rollout


if __name__ == "__main__":
    main()
