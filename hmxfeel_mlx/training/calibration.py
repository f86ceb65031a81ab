"""Judge quality and the judge's scale, measured on the labelled calibration set.

Quality: how well the judge separates human-like from machine-like replies.

* ROC-AUC (human-like vs machine-like; for the reverse rubric machine-like is the
  positive class): the probability that a random positive reply outscores a random
  negative one, ties counting one half (the Mann-Whitney U statistic / n_pos n_neg).
* Spearman's rank correlation between scores and the ordinal labels
  (machine 0 < neutral 1 < human 2, reversed for the reverse rubric), average ranks for ties.

Scale: a small judge's expected scores are compressed (SmolLM2-135M puts nearly every
reply between 3 and 5), so a threshold written on the rubric's 0-10 scale ("7.5") means
nothing on its raw scores. The calibration map puts them back on the rubric's scale,
anchored by the labels: clearly machine-like replies at 0, neutral ones at 5, clearly
human-like ones at 10 (mirrored for the reverse rubric). It is a two-parameter logistic,

    calibrated(raw) = 10 / (1 + exp(-(slope * raw + intercept))),

fitted by maximum likelihood with the anchors as fractional targets y in {0, 0.5, 1}
(fractional-logit regression, Papke & Wooldridge 1996: minimise
sum softplus(eta) - y * eta, eta = slope * raw + intercept; convex, solved by Newton's
method). Why a logistic and not isotonic regression: it is strictly increasing, so it keeps
every ranking the raw judge makes (ROC-AUC and Spearman are unchanged, no two raw scores
collapse onto one step); two parameters are well determined by 72 labelled replies where
isotonic regression would fit a staircase of their noise; and it is defined, saturating
towards 0 and 10, beyond the raw range of the calibration set, where a trained policy's
replies go. The slope is constrained to be >= 0 (a judge that ranks machine-like replies
higher gets a flat map at the mean anchor, with a warning). The neutral replies, whose
target is the midpoint, keep the fit finite unless they all share one raw score.

Unparseable (NaN) verdicts are left out of everything and counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import HmxError
from .prompts import CalibrationRow, JudgeTemplate

LABEL_RANK = {"machine": 0, "neutral": 1, "human": 2}
CALIBRATION_FILE = "judge_calibration.json"  # in the run folder
METHOD = "logistic"


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


# --------------------------------------------------------------------------- the scale map


def softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-softplus(-np.asarray(x, dtype=np.float64)))


def logistic_loss(raw, target, slope: float, intercept: float) -> float:
    """Fractional-logit negative log-likelihood: sum softplus(eta) - y * eta."""
    eta = slope * np.asarray(raw, dtype=np.float64) + intercept
    return float(np.sum(softplus(eta) - np.asarray(target, dtype=np.float64) * eta))


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def fit_logistic(raw, target, iterations: int = 100) -> tuple[float, float]:
    """(slope, intercept) minimising ``logistic_loss`` with slope >= 0.

    Newton's method with step halving on standardised raw scores. When the raw scores are
    all equal, or the unconstrained optimum has a negative slope, the constrained optimum
    is slope 0 with intercept logit(mean target) (the loss is convex, so the optimum on the
    boundary slope = 0 is the optimum over slope >= 0).
    """
    x, y = np.asarray(raw, dtype=np.float64), np.asarray(target, dtype=np.float64)
    flat = (0.0, _logit(float(y.mean()))) if len(y) else (0.0, 0.0)
    sd = float(x.std()) if len(x) else 0.0
    if len(x) < 2 or sd == 0.0:
        return flat
    mu = float(x.mean())
    design = np.column_stack([np.ones_like(x), (x - mu) / sd])  # (n, 2): intercept, standardised slope

    def loss(w):
        eta = design @ w
        return float(np.sum(softplus(eta) - y * eta))

    w = np.zeros(2)
    for _ in range(iterations):
        p = sigmoid(design @ w)
        grad = design.T @ (p - y)
        hess = design.T @ (design * (p * (1 - p))[:, None]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        t, before = 1.0, loss(w)
        while loss(w - t * step) > before + 1e-12 * max(1.0, abs(before)) and t > 1e-10:  # halve only real increases
            t /= 2
        w = w - t * step
        if np.max(np.abs(t * step)) < 1e-12 or np.max(np.abs(grad)) < 1e-12:
            break
    slope, intercept = w[1] / sd, w[0] - w[1] * mu / sd
    return flat if slope <= 0 else (float(slope), float(intercept))


@dataclass(frozen=True)
class JudgeScale:
    """The monotone map from the judge's raw score to the rubric's 0-10 scale."""

    slope: float
    intercept: float
    method: str = METHOD

    def __call__(self, raw) -> np.ndarray:
        """Calibrated scores, element-wise; NaN stays NaN."""
        x = np.asarray(raw, dtype=np.float64)
        out = np.full(x.shape, math.nan)
        ok = np.isfinite(x)
        out[ok] = 10.0 * sigmoid(self.slope * x[ok] + self.intercept)
        return out

    @property
    def center(self) -> float | None:
        """The raw score mapped to 5 (None for a flat map)."""
        return -self.intercept / self.slope if self.slope > 0 else None

    def raw_at(self, calibrated: float) -> float | None:
        """The raw score that maps to ``calibrated`` (None for a flat map)."""
        if self.slope <= 0 or not 0 < calibrated < 10:
            return None
        return (_logit(calibrated / 10) - self.intercept) / self.slope

    def describe(self) -> str:
        if self.center is None:
            return f"flat: every reply {float(self(0.0)):.2f}"
        return f"10 / (1 + exp(-{self.slope:.3f} (raw - {self.center:.3f})))"


def anchors(direction: str) -> dict[str, float]:
    """Where each label sits on the rubric's scale: the reverse rubric scores machine-likeness."""
    if direction == "forward":
        return {"machine": 0.0, "neutral": 5.0, "human": 10.0}
    return {"machine": 10.0, "neutral": 5.0, "human": 0.0}


def fit_scale(scores, labels, direction: str = "forward") -> JudgeScale:
    """The logistic map fitted to the finite ``scores`` with the labels' anchors as targets."""
    x = np.asarray(scores, dtype=np.float64)
    lab = np.asarray(labels)
    ok = np.isfinite(x)
    where = anchors(direction)
    target = np.array([where[str(label)] / 10.0 for label in lab[ok]])
    return JudgeScale(*fit_logistic(x[ok], target))


# --------------------------------------------------------------------------- the calibration set


@dataclass
class CalibrationResult:
    mode: str
    direction: str
    auc: float
    spearman: float
    mean_by_label: dict[str, float]  # mean raw score per label
    unparsed: int
    n: int
    seconds: float
    scale: JudgeScale | None = None
    mean_calibrated: dict[str, float] = field(default_factory=dict)
    n_by_label: dict[str, int] = field(default_factory=dict)
    rmse: float = math.nan  # of the calibrated scores from their labels' anchors
    template: str = ""  # the template's name (variant or file) the judge read
    warning: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["scale"] = None if self.scale is None else {**asdict(self.scale), "center": self.scale.center,
                                                         "formula": "10 / (1 + exp(-(slope * raw + intercept)))"}
        out["anchors"] = anchors(self.direction)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "CalibrationResult":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        sc = known.get("scale")
        known["scale"] = None if sc is None else JudgeScale(float(sc["slope"]), float(sc["intercept"]),
                                                              sc.get("method", METHOD))
        return cls(**known)


def scale_fit(scores, labels, direction: str) -> dict:
    """Everything ``CalibrationResult`` holds that follows from the scores and labels."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    ok = ~np.isnan(scores)
    positive, negative = ("human", "machine") if direction == "forward" else ("machine", "human")
    auc = roc_auc(scores[ok & (labels == positive)], scores[ok & (labels == negative)])
    sign = 1 if direction == "forward" else -1
    rho = spearman(scores[ok], [sign * LABEL_RANK[label] for label in labels[ok]]) if ok.sum() > 1 else math.nan
    scale = fit_scale(scores, labels, direction)
    cal = scale(scores)

    def by_label(values):
        return {label: float(np.mean(values[ok & (labels == label)])) if (ok & (labels == label)).any() else math.nan
                for label in LABEL_RANK}

    where = anchors(direction)
    target = np.array([where[str(label)] for label in labels])
    rmse = float(np.sqrt(np.mean((cal[ok] - target[ok]) ** 2))) if ok.any() else math.nan
    warning = None
    if scale.slope == 0:
        warning = ("the judge does not rank the labelled replies in the rubric's direction (or gives them all one "
                   "score), so its calibrated scale is flat: no checkpoint can cross the threshold. Check the judge "
                   "with `hmx-mlx judge-check` and choose another template or judge mode.")
    return {"auc": auc, "spearman": rho, "mean_by_label": by_label(scores), "unparsed": int((~ok).sum()),
            "n": len(scores), "scale": scale, "mean_calibrated": by_label(cal), "rmse": rmse, "warning": warning,
            "n_by_label": {label: int((ok & (labels == label)).sum()) for label in LABEL_RANK}}


def judge_check(
    model, tokenizer, template: JudgeTemplate, rows: list[CalibrationRow], mode: str, *, template_name: str = "",
    max_verdict_tokens: int = 8, max_batch: int | None = 64, progress: Callable[[int], None] | None = None,
    max_words: int = 0,
) -> CalibrationResult:
    """Score the calibration rows with the judge as it is (callers switch LoRA off for the base),
    measure its quality and fit its scale map. ``max_words``: the judge reads each reply's first
    words only, as in the run it calibrates."""
    from .judge import score_replies

    start = time.perf_counter()
    verdicts = score_replies(model, tokenizer, template, [(r.question, r.reply) for r in rows], mode=mode,
                             max_verdict_tokens=max_verdict_tokens, max_batch=max_batch, progress=progress,
                             max_words=max_words)
    fit = scale_fit([v.score for v in verdicts], [r.label for r in rows], template.direction)
    return CalibrationResult(mode=mode, direction=template.direction, seconds=time.perf_counter() - start,
                             template=template_name, **fit)


# ----------------------------------------------- the reward on the policy's own replies


def _centred(x, group_size: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(-1, group_size)
    return x - x.mean(axis=1, keepdims=True)


def within_group_correlation(scores, feature, group_size: int, control=None) -> float:
    """Pearson correlation between judge scores and a feature of the replies, within groups:
    both have each group's mean removed (what GRPO's advantages compare is replies to the same
    prompt) and the products are pooled over groups. ``control`` (for example log length)
    is first regressed out of both, within groups with one pooled slope (a partial
    correlation). NaN when either side has no variation left. Rows are in groups of
    ``group_size`` consecutive replies, as in a rollout."""
    s, f = _centred(scores, group_size), _centred(feature, group_size)
    if control is not None:
        c = _centred(control, group_size)
        cc = float((c * c).sum())
        if cc > 0:
            s, f = s - (s * c).sum() / cc * c, f - (f * c).sum() / cc * c
    den = math.sqrt(float((s * s).sum()) * float((f * f).sum()))
    return float((s * f).sum() / den) if den > 1e-12 else math.nan


def group_bootstrap(statistic: Callable[[np.ndarray], float], n_groups: int, reps: int = 2000,
                    seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ``statistic(group_indices)`` over groups resampled with
    replacement (groups, not replies, are the independent units)."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_groups, n_groups)) for _ in range(reps)])
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def save_calibration(path: Path, result: CalibrationResult) -> None:
    from ..runfolder import write_json_atomic

    write_json_atomic(path, result.to_dict())


def load_calibration_result(path: Path) -> CalibrationResult:
    from ..runfolder import read_json

    data = read_json(path, "judge calibration")
    try:
        result = CalibrationResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise HmxError(f"judge calibration {path} is damaged ({e}). Delete it; a resumed run then fits it again.")
    if result.scale is None:
        raise HmxError(f"judge calibration {path} has no scale map. Delete it; a resumed run then fits it again.")
    return result
