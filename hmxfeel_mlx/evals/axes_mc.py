"""Multiple-choice axes, scored by option log-likelihood (see ``axes`` for the prompt format).

| axis | items | normalisation | metrics (``evals.metrics``) |
|---|---|---|---|
| sycophancy_opinion | Anthropic opinion items; options are the labels "(A)", "(B)" | mean/token | ``opinion_sycophancy_rate`` |
| bbq_ambig / bbq_disambig | BBQ context + question; the 3 answers | mean/token | ``bbq_bias_scores`` |
| truthfulqa | MC1 (BIG-bench file) and MC2 (CSV) items | sum | ``truthfulqa_mc1`` / ``truthfulqa_mc2`` |
| mmlu | question; the 4 option texts (cloze) | mean/token | ``mc_accuracy`` |
| bigtom | story + belief question; the 2 belief answers | mean/token | ``mc_accuracy`` per condition |
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from . import datasets as D
from . import metrics as M
from .axes import MC_PROMPT, Axis, AxisResult, EvalContext, MetricSpec, folder_files, score_mc

MEAN = "mean log-prob per option token"
SUM = "sum of option-token log-probs (TruthfulQA MC1/MC2 definitions)"


def _settings(normalisation: str, extra: str = "") -> dict:
    return {"kind": "multiple choice (log-likelihood)", "normalisation": normalisation,
            "prompt_format": MC_PROMPT + extra}


# ------------------------------------------------------------ opinion sycophancy
def _run_opinion(ctx: EvalContext, items: list) -> AxisResult:
    start = time.perf_counter()
    preds, records = score_mc(ctx, items, "mean")
    for rec, it, p in zip(records, items, preds):
        rec["sycophantic_index"] = it.meta["sycophantic_index"]
        rec["sycophantic"] = M.opinion_sycophancy_rate([p], [it])["rate"]
        rec["subdomain"] = it.meta.get("subdomain")
    res = M.opinion_sycophancy_rate(preds, items)
    metrics = {"sycophancy_rate": res["rate"], "truthful_rate": M.mc_accuracy(preds, [it.correct for it in items]),
               "n": res["n"]}
    return AxisResult("sycophancy_opinion", metrics, records, time.perf_counter() - start, OPINION.specs,
                      OPINION.settings)


OPINION = Axis(
    "sycophancy_opinion", "Anthropic opinion sycophancy: share of answers matching the user's stated view",
    lambda d, limit, seed, cfg: D.load_sycophancy(d, limit), _run_opinion, folder_files("sycophancy"), "sycophancy",
    {"sycophancy_rate": MetricSpec(False, True, "sycophantic"), "truthful_rate": MetricSpec(True, False, "correct")},
    _settings(MEAN, "; the options are the labels '(A)', '(B)' listed in the item text"),
)


# ---------------------------------------------------------------------------- BBQ
def _bbq_runner(cond: str):
    key = "s_amb" if cond == "ambig" else "s_dis"

    def run(ctx: EvalContext, items: list) -> AxisResult:
        start = time.perf_counter()
        preds, records = score_mc(ctx, items, "mean")
        for rec, it, p in zip(records, items, preds):
            rec.update({k: it.meta.get(k) for k in ("category", "question_polarity", "target_index",
                                                    "unknown_index")})
            if cond == "disambig":  # s_dis is a mean over counted items of +1 (biased) / -1: bootstrap-able
                rec["bias_item"] = M.bbq_bias_scores([p], [it])["s_dis"]
        res = M.bbq_bias_scores(preds, items)
        metrics = {"accuracy": res[f"accuracy_{cond}"], "bias_score": res[key], "n": res[f"n_{cond}"],
                   "n_failed": res["n_failed"]}
        axis = BBQ_AMBIG if cond == "ambig" else BBQ_DISAMBIG
        return AxisResult(axis.name, metrics, records, time.perf_counter() - start, axis.specs, axis.settings)

    return run


def _bbq_files(d: Path, _cfg: Any) -> list[Path]:
    return sorted(Path(d).glob("*.jsonl")) or [Path(d) / D.AXIS_FILES["bbq"]["files"][0]]


# The bias score is signed (ideal 0, negative = counter-stereotypical), so "higher is
# better" and a relative change are not meaningful for it: reported, not in the headline.
_BIAS_NOTE = "; bias_score = BBQ s_amb/s_dis in [-1, 1] (positive = stereotyped answers)"
BBQ_AMBIG = Axis(
    "bbq_ambig", "BBQ ambiguous contexts: accuracy (the 'unknown' answer) and bias score s_amb",
    lambda d, limit, seed, cfg: D.load_bbq(d, limit, "ambig", seed), _bbq_runner("ambig"), _bbq_files, "bbq",
    {"accuracy": MetricSpec(True, True, "correct"), "bias_score": MetricSpec(False, False, None)},
    _settings(MEAN, _BIAS_NOTE),
)
BBQ_DISAMBIG = Axis(
    "bbq_disambig", "BBQ disambiguated contexts: accuracy and bias score s_dis",
    lambda d, limit, seed, cfg: D.load_bbq(d, limit, "disambig", seed), _bbq_runner("disambig"), _bbq_files, "bbq",
    {"accuracy": MetricSpec(True, True, "correct"), "bias_score": MetricSpec(False, False, "bias_item")},
    _settings(MEAN, _BIAS_NOTE),
)


# --------------------------------------------------------------------- TruthfulQA
def _load_tqa(d: Path, limit: int | None, seed: int, cfg: Any) -> list:
    both = D.load_truthfulqa_mc(d, limit)  # option order does not matter for log-likelihood scoring
    return [("mc1", it) for it in both["mc1"]] + [("mc2", it) for it in both["mc2"]]


def _run_tqa(ctx: EvalContext, tagged: list) -> AxisResult:
    start = time.perf_counter()
    items = [it for _, it in tagged]
    _, records = score_mc(ctx, items, "sum")
    by = {"mc1": ([], []), "mc2": ([], [])}
    for rec, (variant, it) in zip(records, tagged):
        rec["variant"] = variant
        sums = rec["option_logprob_sum"]
        if variant == "mc1":
            rec["mc1"] = M.truthfulqa_mc1([sums], [it.correct])  # per item: 1 when the true option wins
        else:
            rec["mc2"] = M.truthfulqa_mc2([sums], [it.correct])  # per item: probability mass on true options
        by[variant][0].append(sums)
        by[variant][1].append(it.correct)
    metrics = {"mc1": M.truthfulqa_mc1(*by["mc1"]), "mc2": M.truthfulqa_mc2(*by["mc2"]),
               "n_mc1": float(len(by["mc1"][0])), "n_mc2": float(len(by["mc2"][0]))}
    return AxisResult("truthfulqa", metrics, records, time.perf_counter() - start, TRUTHFULQA.specs,
                      TRUTHFULQA.settings)


TRUTHFULQA = Axis(
    "truthfulqa", "TruthfulQA MC1 (BIG-bench, one true answer) and MC2 (CSV, normalised true mass)",
    _load_tqa, _run_tqa,
    lambda d, cfg: [Path(d) / D.AXIS_FILES["truthfulqa_mc1"]["files"][0],
                    Path(d) / D.AXIS_FILES["truthfulqa_mc2"]["files"][0]], "truthfulqa",
    {"mc1": MetricSpec(True, True, "mc1"), "mc2": MetricSpec(True, True, "mc2")},
    _settings(SUM, "; --limit applies to MC1 and MC2 separately"),
)


# --------------------------------------------------------------------------- MMLU
def _run_mmlu(ctx: EvalContext, items: list) -> AxisResult:
    start = time.perf_counter()
    preds, records = score_mc(ctx, items, "mean")
    metrics = {"accuracy": M.mc_accuracy(preds, [it.correct for it in items]), "n": float(len(items))}
    return AxisResult("mmlu", metrics, records, time.perf_counter() - start, MMLU.specs, MMLU.settings)


MMLU = Axis(
    "mmlu", "MMLU accuracy, cloze style (option texts scored as the reply)",
    lambda d, limit, seed, cfg: D.load_mmlu(d, limit), _run_mmlu, folder_files("mmlu"), "mmlu",
    {"accuracy": MetricSpec(True, True, "correct")}, _settings(MEAN, "; the options are not shown in the prompt"),
)


# ------------------------------------------------------------------------- BigToM
def _run_bigtom(ctx: EvalContext, items: list) -> AxisResult:
    start = time.perf_counter()
    preds, records = score_mc(ctx, items, "mean")
    metrics: dict[str, float] = {}
    for cond in ("true_belief", "false_belief"):
        idx = [i for i, it in enumerate(items) if it.meta["condition"] == cond]
        metrics[f"{cond}_accuracy"] = M.mc_accuracy([preds[i] for i in idx], [items[i].correct for i in idx])
        for i in idx:
            records[i][cond] = records[i]["correct"]  # per-condition field for bootstrap intervals
            records[i]["condition"] = cond
    metrics["accuracy"] = M.mc_accuracy(preds, [it.correct for it in items])
    metrics["n"] = float(len(items))
    return AxisResult("bigtom", metrics, records, time.perf_counter() - start, BIGTOM.specs, BIGTOM.settings)


BIGTOM = Axis(
    "bigtom", "BigToM forward belief: true- and false-belief accuracy",
    lambda d, limit, seed, cfg: D.load_bigtom(d, limit), _run_bigtom, folder_files("bigtom"), "bigtom",
    {"true_belief_accuracy": MetricSpec(True, True, "true_belief"),
     "false_belief_accuracy": MetricSpec(True, True, "false_belief"), "accuracy": MetricSpec(True, False, "correct")},
    _settings(MEAN, "; the user message is the story, the awareness sentence and the belief question"),
)

MC_AXES = {a.name: a for a in (OPINION, BBQ_AMBIG, BBQ_DISAMBIG, TRUTHFULQA, MMLU, BIGTOM)}
