"""The checkpoint-selection rule, shared by the trainer, the terminal UI and the experiment
orchestrator (no MLX here).

The study's rule: forward runs select the first checkpoint whose held-out score is
>= ``select_threshold`` (7.5); reverse runs mirror it (<= 10 - threshold = 2.5). The
threshold is on the rubric's 0-10 scale, so it applies to the *calibrated* held-out score
(``eval_score_cal``: each reply's raw judge score mapped by the run's judge calibration,
then averaged; see ``calibration``). Runs written before calibrated scores existed carry
only the raw ``eval_score``; for them the rule reads that, and says so.

When no checkpoint crosses, the best one is taken (by the same score, ties by the raw one):
a choice with a winner's curse, which ``reason`` states.
"""

from __future__ import annotations

import math
from typing import Iterable

CALIBRATED, RAW = "eval_score_cal", "eval_score"
REASON_CROSSED = "threshold crossed"
REASON_BEST = "threshold not reached; best held-out score selected"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def threshold(direction: str, select_threshold: float) -> tuple[float, str]:
    """The threshold on the held-out score and the comparison it needs: (7.5, ">=") or (2.5, "<=")."""
    t = float(select_threshold)
    return (t, ">=") if direction == "forward" else (10.0 - t, "<=")


def crosses(direction: str, select_threshold: float, score) -> bool:
    if not _finite(score):
        return False
    value, op = threshold(direction, select_threshold)
    return score >= value if op == ">=" else score <= value


def score_key(evals: Iterable[dict]) -> str:
    """The score the rule reads: calibrated when every evaluation has it, otherwise the raw one."""
    rows = list(evals)
    return CALIBRATED if rows and all(CALIBRATED in e for e in rows) else RAW


def threshold_scale(evals: Iterable[dict]) -> str:
    return "calibrated" if score_key(evals) == CALIBRATED else "raw"


def rule_text(direction: str, select_threshold: float, scale: str = "calibrated") -> str:
    value, op = threshold(direction, select_threshold)
    mirrored = "" if direction == "forward" else " (mirrored threshold)"
    return f"first checkpoint with {scale} held-out score {op} {value:g}{mirrored}"


def crossed(evals: Iterable[dict], direction: str, select_threshold: float) -> list[bool]:
    """For each evaluation, whether its score (``score_key``) crosses the direction's threshold."""
    rows = list(evals)
    key = score_key(rows)
    return [crosses(direction, select_threshold, e.get(key)) for e in rows]


def select(evals: Iterable[dict], direction: str, select_threshold: float) -> dict:
    """Apply the rule to checkpointed evaluations (dicts with ``step`` and the scores) in step order."""
    candidates = sorted(evals, key=lambda e: e["step"])
    key = score_key(candidates)
    scale = threshold_scale(candidates)
    out = {"rule": rule_text(direction, select_threshold, scale), "threshold_scale": scale}
    for e, hit in zip(candidates, crossed(candidates, direction, select_threshold)):
        if hit:
            return {"selected_step": e["step"], "reason": REASON_CROSSED, **out}
    finite = [e for e in candidates if _finite(e.get(key))]
    if not finite:
        return {"selected_step": None, "reason": "no checkpoint yet", **out}
    sign = 1 if direction == "forward" else -1
    raw = lambda e: e.get(RAW) if _finite(e.get(RAW)) else -sign * math.inf  # noqa: E731
    best = max(finite, key=lambda e: (sign * e[key], sign * raw(e), -e["step"]))
    return {"selected_step": best["step"], "reason": REASON_BEST, **out}


def base_warning(evals: Iterable[dict], direction: str, select_threshold: float) -> str | None:
    """A warning when the base model's own held-out evaluation (step 0) already crosses the
    threshold: the rule then selects the first checkpoint whatever the training did, so the
    selection says nothing about the training. None when the base does not cross (or is absent)."""
    rows = list(evals)
    base = next((e for e in rows if e["step"] == 0), None)
    key = score_key(rows)
    if base is None or not crosses(direction, select_threshold, base.get(key)):
        return None
    value, op = threshold(direction, select_threshold)
    scale = threshold_scale(rows)
    return (f"the base model's {scale} held-out score ({base[key]:.2f}) already is {op} {value:g}: the rule "
            "selects the first checkpoint whatever the training did. The judge's scale does not separate "
            "trained from untrained replies on these questions; compare checkpoints by their change from "
            "the base (and the judge-free markers) instead.")


def crossing_checkpoints(evals: Iterable[dict], direction: str, select_threshold: float) -> list[int]:
    """The steps of the checkpointed evaluations that cross the threshold, in step order; all of
    them when none crosses. The candidates for pairing a forward with a reverse checkpoint (at a
    similar distance from the base, say) beyond the rule's first crossing."""
    candidates = sorted(evals, key=lambda e: e["step"])
    hits = [e["step"] for e, hit in zip(candidates, crossed(candidates, direction, select_threshold)) if hit]
    return hits or [e["step"] for e in candidates]
