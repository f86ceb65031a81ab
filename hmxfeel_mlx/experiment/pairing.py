"""Which checkpoint of each run is evaluated: forward and reverse paired at similar distance.

The study compares a human-like (forward) and a machine-like (reverse) model that moved
a similar distance from the base. For each seed (pure functions, no MLX):

1. candidates of a run = its checkpoints whose held-out score crosses the direction's
   threshold (the study's rule, on the calibrated scale when the run has one), or all
   of its checkpoints when none crosses;
2. the pair = the (forward, reverse) candidates whose per-reply KL to the base
   (``eval_kl_reply``, nats per reply at the sampling temperature) is closest; ties go to
   the earlier checkpoints. Per-reply rather than per-token KL, because a run that
   shortens its replies moves less per reply than its per-token KL says.

``rule="study"`` keeps each run's own selection (summary.json ``selected_step``: the
first checkpoint that crosses, else the best) and only records the distance between them.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..training.selection import crosses

RULES = ("kl-matched", "study")
KL_KEY = "eval_kl_reply"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def checkpoint_evals(summary: dict, checkpoints: set[int]) -> list[dict]:
    """The held-out evaluations of a run that have a complete checkpoint, in step order."""
    return sorted((e for e in summary.get("evals", []) if e.get("step") in checkpoints and e.get("step", 0) > 0),
                  key=lambda e: e["step"])


def crossed(e: dict, direction: str, threshold: float) -> bool:
    """An evaluation crosses the threshold: as the run recorded it, else on its calibrated score."""
    if isinstance(e.get("crossed"), bool):
        return e["crossed"]
    return crosses(direction, threshold, e.get("eval_score_cal"))


def candidates(evals: Sequence[dict], direction: str, threshold: float) -> tuple[list[dict], bool]:
    """(candidate evaluations, whether any crossed): the crossing checkpoints, or all of them."""
    hit = [e for e in evals if crossed(e, direction, threshold)]
    return (hit, True) if hit else (list(evals), False)


def closest_pair(forward: Sequence[dict], reverse: Sequence[dict], key: str = KL_KEY) -> tuple[dict, dict] | None:
    """The (forward, reverse) evaluations with the closest ``key``; earlier steps win ties.
    Evaluations without a finite ``key`` are skipped; None when a side has none."""
    best, best_key = None, None
    for f in forward:
        for r in reverse:
            if not (_finite(f.get(key)) and _finite(r.get(key))):
                continue
            rank = (abs(f[key] - r[key]), f["step"] + r["step"], f["step"])
            if best_key is None or rank < best_key:
                best, best_key = (f, r), rank
    return best


def side(run: str, e: dict, was_crossed: bool) -> dict:
    keys = ("eval_score", "eval_score_se", "eval_score_cal", "eval_score_cal_se", "eval_kl", "eval_kl_reply",
            "eval_kl_reply_se", "eval_len")
    return {"run": run, "step": e["step"], **{k: e.get(k) for k in keys}, "crossed": was_crossed}


def _gap(f: dict, r: dict, key: str) -> float | None:
    return abs(f[key] - r[key]) if _finite(f.get(key)) and _finite(r.get(key)) else None


def pair_seed(seed: int, forward: tuple[str, dict, set[int]], reverse: tuple[str, dict, set[int]],
              threshold: float, rule: str = "kl-matched") -> dict:
    """The pair of one seed. ``forward``/``reverse`` = (run path, summary.json, checkpoint steps)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES} (got {rule!r})")
    chosen: dict[str, tuple[dict, bool]] = {}
    cands: dict[str, list[int]] = {}
    pools: dict[str, list[dict]] = {}
    for direction, (run, summary, ckpts) in (("forward", forward), ("reverse", reverse)):
        evals = checkpoint_evals(summary, ckpts)
        if not evals:
            raise ValueError(f"{run} has no evaluated checkpoint")
        pool, any_crossed = candidates(evals, direction, threshold)
        pools[direction], cands[direction] = pool, [e["step"] for e in pool]
        if rule == "study":
            step = summary.get("selected_step")
            e = next((x for x in evals if x["step"] == step), evals[-1])
            chosen[direction] = (e, crossed(e, direction, threshold))
        else:
            chosen[direction] = (None, any_crossed)  # type: ignore[assignment]
    if rule == "kl-matched":
        # runs from before per-reply KL was recorded are matched on their per-token KL
        pair = closest_pair(pools["forward"], pools["reverse"]) or closest_pair(pools["forward"], pools["reverse"],
                                                                                "eval_kl")
        if pair is None:
            raise ValueError("no checkpoint of this seed's runs has a held-out KL to match on")
        chosen = {"forward": (pair[0], chosen["forward"][1]), "reverse": (pair[1], chosen["reverse"][1])}
    f, r = chosen["forward"][0], chosen["reverse"][0]
    return {"seed": seed, "forward": side(forward[0], f, chosen["forward"][1]),
            "reverse": side(reverse[0], r, chosen["reverse"][1]),
            "kl_reply_gap": _gap(f, r, KL_KEY), "kl_token_gap": _gap(f, r, "eval_kl"), "candidates": cands}


def select_single(run: str, summary: dict, ckpts: set[int], direction: str, threshold: float) -> dict:
    """A run without a partner (one direction only): the study's rule, as the run applied it."""
    evals = checkpoint_evals(summary, ckpts)
    if not evals:
        raise ValueError(f"{run} has no evaluated checkpoint")
    step = summary.get("selected_step")
    e = next((x for x in evals if x["step"] == step), evals[-1])
    return side(run, e, crossed(e, direction, threshold))
