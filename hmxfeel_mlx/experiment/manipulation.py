"""The manipulation check: did each direction change, without the judge, what it is named for?

The judge is the training's own reward, so its held-out score cannot tell whether a run learnt to
express feelings or learnt what a 135M judge pays for (length, service formulas, the vocabulary of
feelings). The feeling axis also counts judge-free markers (``evals.metrics.feeling_markers``) on
the same replies; this check compares them with the base's over the seeds of an experiment:

- forward: the mean change of ``feeling_rate`` over seeds is at least ``FORWARD_MIN_FEELING``;
- reverse: the mean change of ``disclaimer_rate`` is at least ``REVERSE_MIN_DISCLAIMER``, or the
  mean change of ``feeling_rate`` at most ``-REVERSE_MIN_FEELING_DROP``;
- and the text stays readable: every seed's distinct-3 ratio at least ``MIN_DISTINCT3`` and its
  mean reply length within ``MAX_LENGTH_CHANGE`` of the base's.

``distinct_openings`` (the share of replies that open with their own first five words) is shown
beside them, not judged: a run whose replies all start "I'm so sorry to inform you, but as a language
model" keeps a per-reply distinct-3 of 0.99.

Pure functions over the evaluation result files (no MLX). A result written before the feeling axis
reported ``words`` and ``distinct3`` leaves readability unknown (None), never passed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from ..runfolder import read_json

FORWARD_MIN_FEELING = 0.20
REVERSE_MIN_DISCLAIMER = 0.15
REVERSE_MIN_FEELING_DROP = 0.15
MIN_DISTINCT3 = 0.95
MAX_LENGTH_CHANGE = 0.30
MIN_OPENINGS = 0.5  # below: the replies collapsed to a few openings (reported, not judged)
KEYS = ("feeling_rate", "disclaimer_rate", "politeness_rate", "words", "distinct3", "distinct_openings")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def feeling_row(result: dict) -> dict | None:
    """The feeling axis of one evaluation result file: condition, seed, checkpoint and the markers."""
    axis = (result.get("results") or {}).get("feeling")
    if not axis:
        return None
    m = axis.get("metrics", {})
    return {"label": result.get("label"), "condition": result.get("condition"), "seed": result.get("train_seed"),
            "checkpoint": result.get("checkpoint"), "n": _num(m.get("n")), **{k: _num(m.get(k)) for k in KEYS}}


def _mean_se(values: list[float]) -> tuple[float, float | None]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def check_direction(direction: str, base: dict, runs: list[dict]) -> dict:
    """The check for one direction's runs (one feeling row per seed) against the base's row."""
    per_seed, deltas = [], {k: [] for k in ("feeling_rate", "disclaimer_rate")}
    readable: list[bool | None] = []
    base = {k: base.get(k) for k in KEYS}
    for r in sorted(runs, key=lambda r: (r.get("seed") is None, r.get("seed") or 0)):
        row = {"seed": r.get("seed"), "checkpoint": r.get("checkpoint"), **{k: r.get(k) for k in KEYS}}
        for k in deltas:
            if row[k] is not None and base[k] is not None:
                row[f"{k}_change"] = row[k] - base[k]
                deltas[k].append(row[k] - base[k])
        if None in (row["words"], row["distinct3"], base["words"]) or not base["words"]:
            row["length_change"], ok = None, None
        else:
            row["length_change"] = row["words"] / base["words"] - 1.0
            ok = row["distinct3"] >= MIN_DISTINCT3 and abs(row["length_change"]) <= MAX_LENGTH_CHANGE + 1e-9
        row["readable"] = ok
        readable.append(ok)
        per_seed.append(row)
    out: dict[str, Any] = {"direction": direction, "seeds": len(per_seed), "per_seed": per_seed}
    for k, vals in deltas.items():
        mean, se = _mean_se(vals) if vals else (None, None)
        out[f"{k}_change"], out[f"{k}_change_se"] = mean, se
    f, d = out["feeling_rate_change"], out["disclaimer_rate_change"]
    if direction == "forward":
        out["criterion"] = f"mean feeling_rate change >= +{FORWARD_MIN_FEELING:.2f}"
        moved = f is not None and f >= FORWARD_MIN_FEELING - 1e-12
    else:
        out["criterion"] = (f"mean disclaimer_rate change >= +{REVERSE_MIN_DISCLAIMER:.2f} or mean feeling_rate "
                            f"change <= -{REVERSE_MIN_FEELING_DROP:.2f}")
        moved = (d is not None and d >= REVERSE_MIN_DISCLAIMER - 1e-12) or (
            f is not None and f <= -REVERSE_MIN_FEELING_DROP + 1e-12)
    out["moved"] = moved
    out["collapsed_seeds"] = [r["seed"] for r in per_seed
                              if r["distinct_openings"] is not None and r["distinct_openings"] < MIN_OPENINGS]
    out["readable"] = None if None in readable or not readable else all(readable)
    out["met"] = None if out["readable"] is None and moved else bool(moved and out["readable"])
    return out


def manipulation_check(results: Iterable[dict]) -> dict:
    """The check of every direction in ``results`` (evaluation result dicts: one base, one per run)."""
    rows = [r for r in (feeling_row(x) for x in results) if r is not None]
    bases = [r for r in rows if r["condition"] == "base"]
    if not bases:
        return {"available": False, "why": "no evaluation of the base has the feeling axis"}
    base = bases[0]
    if base["feeling_rate"] is None:
        return {"available": False, "why": "the base's feeling axis has no judge-free markers (feeling_rate)"}
    checks = {}
    for direction in ("forward", "reverse"):
        runs = [r for r in rows if r["condition"] == direction]
        if runs:
            checks[direction] = check_direction(direction, base, runs)
    return {"available": bool(checks), "base": {k: base[k] for k in ("label", "n", *KEYS)},
            "thresholds": {"forward_min_feeling": FORWARD_MIN_FEELING, "reverse_min_disclaimer": REVERSE_MIN_DISCLAIMER,
                           "reverse_min_feeling_drop": REVERSE_MIN_FEELING_DROP, "min_distinct3": MIN_DISTINCT3,
                           "max_length_change": MAX_LENGTH_CHANGE},
            "directions": checks}


def check_files(paths: Iterable[str | Path]) -> dict:
    return manipulation_check(read_json(Path(p), "evaluation result") for p in paths)


def fmt_number(v, signed: bool = False, digits: int = 3) -> str:
    """A rate or change as the check shows it ("n/a" for a missing value)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def verdict_sentence(d: dict, emphasis=lambda s: s) -> str:
    """One direction's result in a sentence (plain text; ``emphasis`` marks the verdict), as
    comparison.md and the report page show it."""
    se = lambda k: "" if d.get(f"{k}_change_se") is None else f" ± {d[f'{k}_change_se']:.3f}"  # noqa: E731
    verdict = {True: emphasis("met"), False: emphasis("not met"), None: "unknown (readability not recorded)"}[d.get("met")]
    collapsed = d.get("collapsed_seeds") or []
    return (f"{d.get('direction')} over {d.get('seeds')} seed(s): feeling {fmt_number(d.get('feeling_rate_change'), True)}"
            f"{se('feeling_rate')}, disclaimer {fmt_number(d.get('disclaimer_rate_change'), True)}"
            f"{se('disclaimer_rate')}; criterion: {d.get('criterion')}, distinct-3 >= {MIN_DISTINCT3} and "
            f"length within {MAX_LENGTH_CHANGE:.0%} of the base's: {verdict}"
            + (f"; the replies of seed(s) {', '.join(map(str, collapsed))} collapsed to a few "
               f"openings (distinct openings < {MIN_OPENINGS})" if collapsed else ""))


def to_markdown(check: dict) -> str:
    """The check as a Markdown section (comparison.md carries it)."""
    if not check.get("available"):
        return f"## Manipulation check\n\nNot available: {check.get('why', 'no trained run has the feeling axis')}.\n"
    b = check["base"]
    lines = ["## Manipulation check (judge-free, feeling axis)", "",
             f"Base: feeling {fmt_number(b['feeling_rate'])}, disclaimer {fmt_number(b['disclaimer_rate'])}, "
             f"{fmt_number(b['words'], digits=1)} words, distinct-3 {fmt_number(b['distinct3'])} "
             f"(n = {fmt_number(b['n'], digits=0)}).", "",
             "| direction | seed | checkpoint | feeling (change) | disclaimer (change) | words (change) | distinct-3 "
             "| distinct openings |",
             "|---|---|---|---|---|---|---|---|"]
    for d in check["directions"].values():
        for r in d["per_seed"]:
            lines.append(f"| {d['direction']} | {r['seed']} | {r['checkpoint']} | {fmt_number(r['feeling_rate'])} "
                         f"({fmt_number(r.get('feeling_rate_change'), True)}) | {fmt_number(r['disclaimer_rate'])} "
                         f"({fmt_number(r.get('disclaimer_rate_change'), True)}) | {fmt_number(r['words'], digits=1)} "
                         f"({fmt_number(r['length_change'], True, 2)}) | {fmt_number(r['distinct3'])} "
                         f"| {fmt_number(r['distinct_openings'], digits=2)} |")
    lines.append("")
    lines += [f"- {verdict_sentence(d, lambda s: f'**{s}**')}" for d in check["directions"].values()]
    return "\n".join(lines) + "\n"
