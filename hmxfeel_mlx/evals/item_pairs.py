"""Per-item values of one metric, aligned between the forward and reverse evaluations.

An evaluation's axis holds one record per item; ``MetricSpec.item_field`` names the
record field whose mean (None/NaN skipped) is the metric. The unit of a paired
test is the item, keyed by:

- its ``id``, when every record of every file given carries one;
- otherwise its prompt, but only when every file lists the same prompts in the
  same order (the same items in the same order; the feeling axis, whose records
  carry no id, qualifies when both models answered the same held-out questions);
- otherwise nothing: the metric cannot be paired, and ``pair_items`` says why.

Records sharing a key (the several sampled replies to one feeling prompt, or one
item in several evaluations of a side) are averaged into one value, so the test
counts items, not replies, as independent. An item enters the test when both
sides have a value for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

Records = Sequence[dict]  # one evaluation file's records of one axis


@dataclass
class Paired:
    """Aligned per-item values: ``forward[i]`` and ``reverse[i]`` belong to item ``keys[i]``."""

    keys: list[str]
    forward: np.ndarray
    reverse: np.ndarray
    by: str  # "id" or "prompt"
    n_forward: int  # items with a forward value (paired or not)
    n_reverse: int


@dataclass
class Unpaired:
    reason: str  # starts with "cannot pair items" or "undefined: no item"


def _value(rec: dict, field: str) -> float:
    v = rec.get(field)
    if isinstance(v, bool):
        return float(v)
    if not isinstance(v, (int, float)):
        return float("nan")
    return float(v)


def key_kind(files: Sequence[Records]) -> str | None:
    """"id" when every record has an id; "prompt" when none is missing a prompt and
    every file lists the same prompts in the same order; None otherwise."""
    records = [r for f in files for r in f]
    if records and all(isinstance(r, dict) and r.get("id") not in (None, "") for r in records):
        return "id"
    prompts = [[r.get("prompt") if isinstance(r, dict) else None for r in f] for f in files]
    if prompts and all(p is not None for f in prompts for p in f) and all(f == prompts[0] for f in prompts):
        return "prompt"
    return None


def unit_values(files: Sequence[Records], field: str, kind: str) -> dict[str, float]:
    """Mean value of ``field`` per item key over all records of all files (items without
    a finite value left out), in first-seen order."""
    sums: dict[str, list[float]] = {}
    for f in files:
        for r in f:
            if not isinstance(r, dict):
                continue
            v = _value(r, field)
            key = str(r.get(kind))
            acc = sums.setdefault(key, [0.0, 0])
            if not math.isnan(v):
                acc[0] += v
                acc[1] += 1
    return {k: s / n for k, (s, n) in sums.items() if n}


def item_values(files: Sequence[Records], field: str) -> np.ndarray:
    """One side's per-item values (for a standard error): keyed as ``key_kind`` allows,
    else one value per record."""
    kind = key_kind(files)
    if kind is None:
        vals = [_value(r, field) for f in files for r in f if isinstance(r, dict)]
        return np.asarray([v for v in vals if not math.isnan(v)], dtype=float)
    return np.asarray(list(unit_values(files, field, kind).values()), dtype=float)


def pair_items(forward: Sequence[Records], reverse: Sequence[Records], field: str) -> Paired | Unpaired:
    """Forward and reverse values of ``field`` on the items both sides answered."""
    kind = key_kind([*forward, *reverse])
    if kind is None:
        return Unpaired("cannot pair items: no item ids, and the files do not list the same prompts in the same order")
    f, r = unit_values(forward, field, kind), unit_values(reverse, field, kind)
    empty = [side for side, vals in (("forward", f), ("reverse", r)) if not vals]
    if empty:
        return Unpaired(f"undefined: no item ({' and '.join(empty)})")
    keys = [k for k in f if k in r]
    if not keys:
        return Unpaired("cannot pair items: no item has a value on both sides")
    return Paired(keys, np.asarray([f[k] for k in keys]), np.asarray([r[k] for k in keys]), kind, len(f), len(r))


def records_of(evals: Sequence[dict], axis: str) -> list[list[dict]]:
    """Each evaluation's records of ``axis`` (an empty list where the axis is absent)."""
    out: list[list[Any]] = []
    for rec in evals:
        recs = rec.get("results", {}).get(axis, {}).get("records", [])
        out.append([r for r in recs if isinstance(r, dict)] if isinstance(recs, list) else [])
    return out
