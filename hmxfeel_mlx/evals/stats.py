"""Comparison statistics for model-vs-model results: pure numpy + math.

The Student-t distribution is computed through the regularised incomplete beta
function (Numerical Recipes ``betai``/``betacf`` continued fraction), so no scipy.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np


def _clean(values: Iterable[float]) -> np.ndarray:
    a = np.asarray(list(values), dtype=float).ravel()
    return a[~np.isnan(a)]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """NaN-skipping mean and sample std (ddof=1; 0.0 for one value; NaN for none)."""
    a = _clean(values)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _betacf(a: float, b: float, x: float, max_iter: int = 500, eps: float = 1e-16) -> float:
    """Continued fraction for the incomplete beta function (modified Lentz; NR 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            return h
    raise ArithmeticError(f"betacf did not converge (a={a}, b={b}, x={x})")


def betainc_reg(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1] (got {x})")
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom
    (= I_{df/(df+t^2)}(df/2, 1/2))."""
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return float("nan")
    if math.isinf(t):
        return 0.0
    t, df = float(t), float(df)
    return float(betainc_reg(df / 2.0, 0.5, df / (df + t * t)))


def t_cdf(t: float, df: float) -> float:
    """Student-t CDF P(T <= t)."""
    half = 0.5 * t_sf_two_sided(t, df)
    return 1.0 - half if t > 0 else half


def welch_t_test(a: Iterable[float], b: Iterable[float]) -> tuple[float, float, float]:
    """Welch's unequal-variance t test of mean(a) - mean(b), NaNs skipped.

    t = (ma - mb) / sqrt(va/na + vb/nb) (sample variances), Welch-Satterthwaite
    df = (va/na + vb/nb)^2 / ((va/na)^2/(na-1) + (vb/nb)^2/(nb-1)); returns
    (t, df, two-sided p). Needs >= 2 values per group (else all NaN). With zero
    variance in both groups: (nan, nan, nan) for equal means, (+-inf, nan, 0.0) otherwise.
    """
    x, y = _clean(a), _clean(b)
    if x.size < 2 or y.size < 2:
        return float("nan"), float("nan"), float("nan")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    diff = float(x.mean() - y.mean())
    if va + vb == 0:
        return (float("nan"),) * 3 if diff == 0 else (math.copysign(math.inf, diff), float("nan"), 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    return float(t), float(df), t_sf_two_sided(t, df)


def bootstrap_diff_ci(a: Iterable[float], b: Iterable[float], n_boot: int = 10000, alpha: float = 0.05,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(a) - mean(b): both groups resampled with
    replacement, independently, ``n_boot`` times from ``np.random.default_rng(seed)``
    (a's indices drawn before b's per chunk); NaNs skipped."""
    x, y = _clean(a), _clean(b)
    if x.size == 0 or y.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    chunk = max(1, 4_000_000 // max(x.size, y.size))
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        ma = x[rng.integers(0, x.size, (k, x.size))].mean(axis=1)
        mb = y[rng.integers(0, y.size, (k, y.size))].mean(axis=1)
        diffs[start:start + k] = ma - mb
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def relative_change(forward: float, reverse: float) -> float:
    """(forward - reverse) / |reverse|; NaN when reverse is 0 or either is NaN."""
    if reverse == 0 or math.isnan(forward) or math.isnan(reverse):
        return float("nan")
    return (forward - reverse) / abs(reverse)


def headline_share(changes: Sequence[tuple[str, float, bool]], threshold: float = 0.02) -> dict:
    """Summary of relative changes, one ``(name, relative_change, higher_is_better)``
    per metric. The change is sign-flipped where lower is better, so positive always
    means better. Returns share_ok (improved, or degraded by less than
    ``threshold`` relative: signed > -threshold), share_improved (signed > 0),
    counts, NaN names skipped, and the largest degradation (name, signed change)
    or None when nothing degraded."""
    signed: list[tuple[str, float]] = []
    skipped: list[str] = []
    for entry in changes:
        if not isinstance(entry, (tuple, list)) or len(entry) != 3:
            raise TypeError("headline_share needs (name, relative_change, higher_is_better) tuples: "
                            f"state each metric's better direction (got {entry!r})")
        name, change, higher_is_better = entry
        if change is None or math.isnan(change):
            skipped.append(str(name))
            continue
        signed.append((str(name), float(change) if higher_is_better else -float(change)))
    n = len(signed)
    worst = min(signed, key=lambda s: s[1], default=None)
    return {"n": n, "share_ok": sum(v > -threshold for _, v in signed) / n if n else float("nan"),
            "share_improved": sum(v > 0 for _, v in signed) / n if n else float("nan"),
            "n_ok": sum(v > -threshold for _, v in signed), "threshold": threshold,
            "largest_degradation": worst if worst is not None and worst[1] < 0 else None,
            "signed": dict(signed), "skipped": skipped}
