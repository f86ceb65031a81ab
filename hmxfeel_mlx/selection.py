"""The checkpoint-selection rule, shared by the trainer and the terminal UI (no MLX here).

Forward runs select the first checkpoint whose held-out score is >= ``select_threshold``;
reverse runs mirror it (<= 10 - threshold). When no checkpoint crosses, the best one is taken.
"""

from __future__ import annotations

import math
from typing import Iterable


def threshold(direction: str, select_threshold: float) -> tuple[float, str]:
    """The threshold on the held-out score and the comparison it needs: (7.5, ">=") or (2.5, "<=")."""
    t = float(select_threshold)
    return (t, ">=") if direction == "forward" else (10.0 - t, "<=")


def crosses(direction: str, select_threshold: float, score) -> bool:
    if not isinstance(score, (int, float)) or not math.isfinite(score):
        return False
    value, op = threshold(direction, select_threshold)
    return score >= value if op == ">=" else score <= value


def rule_text(direction: str, select_threshold: float) -> str:
    value, op = threshold(direction, select_threshold)
    mirrored = "" if direction == "forward" else " (mirrored threshold)"
    return f"first checkpoint with held-out score {op} {value:g}{mirrored}"


def select(evals: Iterable[dict], direction: str, select_threshold: float) -> dict:
    """Apply the rule to evaluations (dicts with ``step`` and ``eval_score``) in step order."""
    candidates = list(evals)
    rule = rule_text(direction, select_threshold)
    for e in candidates:
        if crosses(direction, select_threshold, e["eval_score"]):
            return {"selected_step": e["step"], "reason": "threshold crossed", "rule": rule}
    finite = [e for e in candidates if isinstance(e["eval_score"], (int, float)) and math.isfinite(e["eval_score"])]
    if not finite:
        return {"selected_step": None, "reason": "no checkpoint yet", "rule": rule}
    sign = 1 if direction == "forward" else -1
    best = max(finite, key=lambda e: sign * e["eval_score"])
    return {"selected_step": best["step"], "reason": "threshold not reached; best held-out score selected", "rule": rule}
