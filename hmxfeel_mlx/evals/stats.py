"""Comparison statistics for model-vs-model results: pure numpy + math.

The Student-t distribution is computed through the regularised incomplete beta
function (Numerical Recipes ``betai``/``betacf`` continued fraction), so no scipy;
its quantile inverts that CDF by bisection. Tests of forward vs reverse, each
returning a ``Difference`` (difference, 95% interval, two-sided p):

- ``welch_test``: Welch's t over per-seed values, interval diff ± t_{0.975, df}·se.
- ``mcnemar_test``: paired 0/1 items; exact McNemar p (binomial on the discordant
  pairs), Newcombe's square-and-add interval for the difference of paired
  proportions (Newcombe 1998, method 10).
- ``paired_bootstrap``: paired items of any value; item indices resampled jointly,
  percentile interval and the p-value that inverts it.

``holm_adjust`` corrects a family of p-values (Holm 1979). docs/statistics.md has
the references and how ``compare`` uses each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterable, Sequence

import numpy as np

ALPHA = 0.05  # two-sided level of every test and interval (95% intervals)


@dataclass(frozen=True)
class Difference:
    """One forward-vs-reverse test: ``diff`` = mean(forward) - mean(reverse) on what
    the test used, its ``1 - alpha`` interval, the two-sided p and the sample size
    (seeds per side for Welch as ``n_a + n_b``, paired items otherwise)."""

    test: str  # "welch", "mcnemar", "paired_bootstrap"
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


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


def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q for Student's t with ``df`` degrees of freedom
    (bisection on ``t_cdf`` to 1e-12 relative; NaN outside 0 < q < 1 or for df <= 0)."""
    if math.isnan(q) or math.isnan(df) or df <= 0 or not 0.0 < q < 1.0:
        return float("nan")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:  # the quantile lies in [lo, hi]
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


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


def welch_test(a: Iterable[float], b: Iterable[float], alpha: float = ALPHA) -> Difference:
    """Welch's t test (``welch_t_test``) with its interval diff ± t_{1-alpha/2, df}·se
    (se = sqrt(va/na + vb/nb)). Zero variance on both sides: the interval is the
    difference itself, p 0 (different means) or NaN (equal means)."""
    x, y = _clean(a), _clean(b)
    t, df, p = welch_t_test(x, y)
    n = int(x.size + y.size)
    if x.size < 2 or y.size < 2:
        return Difference("welch", float("nan"), float("nan"), float("nan"), float("nan"), n)
    diff = float(x.mean() - y.mean())
    se = math.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
    if se == 0:
        return Difference("welch", diff, diff, diff, p, n)
    half = t_quantile(1 - alpha / 2, df) * se
    return Difference("welch", diff, diff - half, diff + half, p, n)


def mcnemar_exact_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p: with n = b + c discordant pairs, X ~ Binomial(n, 1/2),
    p = min(1, 2 P(X <= min(b, c))); 1.0 when there is no discordant pair."""
    n, k = int(b) + int(c), min(int(b), int(c))
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)  # exact integers, one division


def wilson_interval(x: int, n: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Wilson score interval of a proportion x / n (no continuity correction)."""
    if n == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    centre = (x + z * z / 2) / (n + z * z)
    half = z / (n + z * z) * math.sqrt(x * (n - x) / n + z * z / 4)
    return centre - half, centre + half


def newcombe_paired_ci(n11: int, n10: int, n01: int, n00: int, alpha: float = ALPHA) -> tuple[float, float]:
    """Newcombe's square-and-add interval for p1 - p2 from a paired 2x2 table
    (Newcombe 1998, Stat Med 17:2635, method 10; as in Fagerland, Lydersen & Laake 2017, ch. 8).

    n11: both 1, n10: first 1 and second 0, n01: first 0 and second 1, n00: both 0.
    Wilson intervals (l1, u1) of p1 = (n11 + n10)/N and (l2, u2) of p2 = (n11 + n01)/N
    are combined with the correlation phi of the two margins, whose numerator
    A = n11 n00 - n10 n01 is continuity-corrected (A - N/2 when A > N/2, 0 when
    0 <= A <= N/2, A when negative; phi = 0 when a margin is empty):
    L = d - sqrt((p1 - l1)^2 + (u2 - p2)^2 - 2 phi (p1 - l1)(u2 - p2)),
    U = d + sqrt((p2 - l2)^2 + (u1 - p1)^2 - 2 phi (p2 - l2)(u1 - p1))."""
    n = n11 + n10 + n01 + n00
    if n == 0:
        return float("nan"), float("nan")
    r1, r2, c1, c2 = n11 + n10, n01 + n00, n11 + n01, n10 + n00
    p1, p2 = r1 / n, c1 / n
    l1, u1 = wilson_interval(r1, n, alpha)
    l2, u2 = wilson_interval(c1, n, alpha)
    phi = 0.0
    if min(r1, r2, c1, c2) > 0:
        a = n11 * n00 - n10 * n01
        a = a - n / 2 if a > n / 2 else (0.0 if a >= 0 else a)
        phi = a / math.sqrt(r1 * r2 * c1 * c2)
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)))
    high = d + math.sqrt(max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1)))
    return low, high


def _pairs(a: Iterable[float], b: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(list(a), dtype=float).ravel(), np.asarray(list(b), dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired samples need equal lengths (got {x.size} and {y.size})")
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


def is_binary(values: Iterable[float]) -> bool:
    """True when every value is 0 or 1 (and there is at least one)."""
    a = np.asarray(list(values), dtype=float)
    return a.size > 0 and bool(np.all((a == 0) | (a == 1)))


def mcnemar_test(a: Iterable[float], b: Iterable[float], alpha: float = ALPHA) -> Difference:
    """Paired 0/1 outcomes (a[i], b[i] of one item; pairs with a NaN dropped):
    exact McNemar p on the discordant counts and Newcombe's interval of the
    difference of proportions (``newcombe_paired_ci``)."""
    x, y = _pairs(a, b)
    if not (is_binary(x) and is_binary(y)):
        raise ValueError("mcnemar_test needs 0/1 values on both sides; use paired_bootstrap for others")
    n11, n10 = int(np.sum((x == 1) & (y == 1))), int(np.sum((x == 1) & (y == 0)))
    n01, n00 = int(np.sum((x == 0) & (y == 1))), int(np.sum((x == 0) & (y == 0)))
    lo, hi = newcombe_paired_ci(n11, n10, n01, n00, alpha)
    return Difference("mcnemar", (n10 - n01) / x.size, lo, hi, mcnemar_exact_p(n10, n01), int(x.size))


def paired_bootstrap(a: Iterable[float], b: Iterable[float], n_boot: int = 10000, alpha: float = ALPHA,
                     seed: int = 0) -> Difference:
    """Paired bootstrap of mean(a - b) (pairs with a NaN dropped): ``n_boot`` resamples
    of the item indices with replacement, the same indices for both sides, from
    ``np.random.default_rng(seed)``. Interval: percentiles alpha/2 and 1 - alpha/2
    of the resampled mean differences D*. p: twice the smaller tail,
    min(1, 2 min(1 + #{D* <= 0}, 1 + #{D* >= 0}) / (n_boot + 1)), the p-value that
    inverts the percentile interval (it excludes 0 roughly when p < alpha)."""
    x, y = _pairs(a, b)
    if x.size == 0:
        return Difference("paired_bootstrap", float("nan"), float("nan"), float("nan"), float("nan"), 0)
    d = x - y
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 4_000_000 // d.size)
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        means[start:start + k] = d[rng.integers(0, d.size, (k, d.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    tail = min(int(np.sum(means <= 0)), int(np.sum(means >= 0)))
    p = min(1.0, 2 * (1 + tail) / (n_boot + 1))
    return Difference("paired_bootstrap", float(d.mean()), float(lo), float(hi), p, int(d.size))


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (Holm 1979), in the input order. With the m
    finite p sorted ascending p_(1) <= ... <= p_(m): adj_(i) = min(1, max_{j<=i}
    (m - j + 1) p_(j)). NaN entries stay NaN and do not count in m."""
    out = [float("nan")] * len(p_values)
    finite = sorted((float(p), i) for i, p in enumerate(p_values) if p is not None and not math.isnan(p))
    m, running = len(finite), 0.0
    for j, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - j) * p))
        out[i] = running
    return out


def standard_error(values: Iterable[float]) -> float:
    """Standard error of the mean, std (ddof=1) / sqrt(n), NaNs skipped; NaN for fewer than 2 values."""
    a = _clean(values)
    return float(a.std(ddof=1) / math.sqrt(a.size)) if a.size > 1 else float("nan")


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


def relative_change(forward: float, reverse: float, base: float, base_se: float = float("nan")) -> tuple[float, str]:
    """(forward - reverse) / |base| and "" or, when it is not defined, NaN and the reason:
    no base value, base within one standard error of 0 (|base| <= base_se), base 0
    (when the standard error is unknown), forward or reverse undefined."""
    if math.isnan(forward) or math.isnan(reverse):
        return float("nan"), "forward or reverse undefined"
    if base is None or math.isnan(base):
        return float("nan"), "no base value"
    if not math.isnan(base_se) and abs(base) <= base_se * (1 + 1e-9):  # 1 of n items is exactly one se (1/n)
        return float("nan"), f"base {base:.3f} within one standard error ({base_se:.3f}) of 0"
    if base == 0:
        return float("nan"), "base value 0"
    return (forward - reverse) / abs(base), ""


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
