"""Judge quality, measured: score the labelled calibration set and report how well
the judge separates human-like from machine-like replies.

* ROC-AUC (human-like vs machine-like; for the reverse rubric machine-like is the
  positive class): the probability that a random positive reply outscores a random
  negative one, ties counting one half (the Mann-Whitney U statistic / n_pos n_neg).
* Spearman's rank correlation between scores and the ordinal labels
  (machine 0 < neutral 1 < human 2, reversed for the reverse rubric), average ranks for ties.

Unparseable (NaN) verdicts are left out of both and counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .judge import score_replies
from .prompts import CalibrationRow, JudgeTemplate

LABEL_RANK = {"machine": 0, "neutral": 1, "human": 2}


def average_ranks(values) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def roc_auc(positive, negative) -> float:
    """P(score of a positive > score of a negative), ties 1/2. NaN if a class is empty."""
    pos, neg = np.asarray(positive, dtype=np.float64), np.asarray(negative, dtype=np.float64)
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    ranks = average_ranks(np.concatenate([pos, neg]))
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def spearman(x, y) -> float:
    """Spearman's rho: Pearson correlation of average ranks. NaN when either side is constant."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else math.nan


@dataclass
class CalibrationResult:
    mode: str
    direction: str
    auc: float
    spearman: float
    mean_by_label: dict[str, float]
    unparsed: int
    n: int
    seconds: float


def judge_check(
    model, tokenizer, template: JudgeTemplate, rows: list[CalibrationRow], mode: str
) -> CalibrationResult:
    start = time.perf_counter()
    verdicts = score_replies(model, tokenizer, template, [(r.question, r.reply) for r in rows], mode=mode)
    scores = np.array([v.score for v in verdicts], dtype=np.float64)
    labels = np.array([r.label for r in rows])
    ok = ~np.isnan(scores)
    positive, negative = ("human", "machine") if template.direction == "forward" else ("machine", "human")
    auc = roc_auc(scores[ok & (labels == positive)], scores[ok & (labels == negative)])
    sign = 1 if template.direction == "forward" else -1
    rho = spearman(scores[ok], [sign * LABEL_RANK[label] for label in labels[ok]])
    means = {
        label: float(np.mean(scores[ok & (labels == label)])) if (ok & (labels == label)).any() else math.nan
        for label in LABEL_RANK
    }
    return CalibrationResult(
        mode, template.direction, auc, rho, means, int((~ok).sum()), len(rows), time.perf_counter() - start
    )
