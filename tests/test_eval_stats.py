"""Statistics against table values, closed forms and hand computations."""

import math

import numpy as np
import pytest

from hmxfeel_mlx.evals.stats import (
    betainc_reg, bootstrap_diff_ci, headline_share, holm_adjust, is_binary, mcnemar_exact_p, mcnemar_test,
    mean_std, newcombe_paired_ci, paired_bootstrap, relative_change, standard_error, t_cdf, t_quantile,
    t_sf_two_sided, welch_t_test, welch_test, wilson_interval,
)


def test_mean_std():
    assert mean_std([1, 2, float("nan"), 3]) == (2.0, 1.0)  # sample std of 1,2,3 is 1
    assert mean_std([4]) == (4.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([float("nan")]))


@pytest.mark.parametrize("t, df, p", [(2.0, 10, 0.07339), (1.0, 5, 0.36322), (2.228, 10, 0.05), (12.706, 1, 0.05),
                                      (2.086, 20, 0.05), (2.576, 1e6, 0.01)])
def test_t_two_sided_table_values(t, df, p):
    assert t_sf_two_sided(t, df) == pytest.approx(p, abs=6e-5)  # tables print 4-5 digits


@pytest.mark.parametrize("t", [0.1, 0.7, 1.0, 3.0, 25.0, 400.0])
def test_t_closed_forms_to_1e_12(t):
    # df = 1 (Cauchy): p = 1 - 2 atan(t)/pi; df = 2: p = 1 - t/sqrt(2 + t^2)
    assert t_sf_two_sided(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-10, abs=1e-13)
    assert t_sf_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-10, abs=1e-13)
    assert t_cdf(t, 3) + t_cdf(-t, 3) == pytest.approx(1.0, abs=1e-13)


def test_betainc_reg_known_values():
    assert betainc_reg(1, 1, 0.3) == pytest.approx(0.3, abs=1e-14)  # uniform
    assert betainc_reg(2, 3, 0.4) == pytest.approx(0.5248, abs=1e-12)  # 1 - sum_{k<2} C(4,k).4^k.6^(4-k)
    assert betainc_reg(0.5, 0.5, 0.5) == pytest.approx(0.5, abs=1e-14)  # symmetry


def test_welch_by_hand_and_against_quadrature():
    a, b = [1, 2, 3, 4, 5], [2, 4, 6, 8, 10]
    # means 3, 6; variances 2.5, 10; se^2 = 2.5/5 + 10/5 = 2.5; t = -3/sqrt(2.5) = -1.8973666
    # df = 2.5^2 / (0.5^2/4 + 2^2/4) = 6.25 / 1.0625 = 5.8823529
    t, df, p = welch_t_test(a, b)
    assert t == pytest.approx(-3 / math.sqrt(2.5)) and df == pytest.approx(6.25 / 1.0625)
    # p by integrating the t density on [|t|, 2000] (Simpson) plus the analytic tail beyond 2000
    x = np.linspace(abs(t), 2000.0, 2_000_001)
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    f = c * (1 + x * x / df) ** (-(df + 1) / 2)
    h = x[1] - x[0]
    simpson = h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
    tail = c * df ** ((df + 1) / 2) * 2000.0 ** (-df) / df
    assert p == pytest.approx(2 * (simpson + tail), abs=1e-8)
    assert p == pytest.approx(0.10753, abs=1e-5)


def test_welch_degenerate():
    assert all(math.isnan(v) for v in welch_t_test([1.0], [1.0, 2.0]))
    assert all(math.isnan(v) for v in welch_t_test([1, 1], [1, 1]))
    t, _, p = welch_t_test([2, 2], [1, 1])
    assert t == math.inf and p == 0.0


def test_bootstrap_deterministic_and_covers():
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 200)
    ci = bootstrap_diff_ci(a, b, n_boot=2000, seed=3)
    assert ci == bootstrap_diff_ci(a, b, n_boot=2000, seed=3)
    assert ci != bootstrap_diff_ci(a, b, n_boot=2000, seed=4)
    lo, hi = ci
    assert lo < 1.0 < hi and lo > 0.5 and hi < 1.5  # true diff 1; se ~ 0.1
    # constant samples: every resample gives exactly 3 - 1
    assert bootstrap_diff_ci([3, 3, 3], [1, 1], n_boot=100) == (2.0, 2.0)


def test_relative_change_is_relative_to_base():
    # (forward - reverse) / |base|: 0.1 / 0.5; a negative base counts by its size
    assert relative_change(0.6, 0.5, 0.5) == (pytest.approx(0.2), "")
    assert relative_change(-1.5, -1.0, -2.0) == (pytest.approx(-0.25), "")
    # a reverse value of 0 is no obstacle any more: (0.06 - 0) / 0.1
    assert relative_change(0.06, 0.0, 0.1, 0.04) == (pytest.approx(0.6), "")
    assert relative_change(0.06, 0.0, 0.02, 0.0198)[0] == pytest.approx(3.0)  # |base| just above its se
    value, why = relative_change(0.06, 0.0, 0.02, 0.025)  # base within one standard error of 0
    assert math.isnan(value) and why == "base 0.020 within one standard error (0.025) of 0"
    # one item right of 50: var (ddof 1) = (0.98^2 + 49 * 0.02^2) / 49 = 0.02, se = sqrt(0.02 / 50) = 0.02 = base
    one_of_50 = [1.0] + [0.0] * 49
    assert standard_error(one_of_50) == pytest.approx(0.02)
    value, why = relative_change(0.12, 0.28, 0.02, standard_error(one_of_50))  # despite float rounding in se
    assert math.isnan(value) and why == "base 0.020 within one standard error (0.020) of 0"
    value, why = relative_change(0.06, 0.0, 0.0, 0.0)  # base exactly 0 with no spread: |0| <= 0
    assert math.isnan(value) and "within one standard error" in why
    value, why = relative_change(0.06, 0.0, 0.0)  # standard error unknown
    assert math.isnan(value) and why == "base value 0"
    assert relative_change(0.5, float("nan"), 0.3)[1] == "forward or reverse undefined"
    assert relative_change(0.5, 0.4, float("nan"))[1] == "no base value"


def test_standard_error_and_is_binary():
    assert standard_error([0, 1, 1, 0]) == pytest.approx(math.sqrt(1 / 3) / 2)  # var = 1/3, n = 4
    assert math.isnan(standard_error([1.0, float("nan")]))
    assert is_binary([0, 1.0, 1]) and not is_binary([0, 0.5]) and not is_binary([])


@pytest.mark.parametrize("q, df, t", [(0.975, 4, 2.776445), (0.975, 10, 2.228139), (0.975, 2, 4.302653),
                                      (0.95, 5, 2.015048), (0.995, 20, 2.845340), (0.975, 1e6, 1.959966)])
def test_t_quantile_table_values(q, df, t):
    assert t_quantile(q, df) == pytest.approx(t, abs=2e-6)  # tables print 6-7 digits
    assert t_quantile(1 - q, df) == pytest.approx(-t, abs=2e-6)


@pytest.mark.parametrize("q", [0.6, 0.9, 0.975, 0.9999])
def test_t_quantile_closed_forms(q):
    # df = 1: tan(pi (q - 1/2)); df = 2: (2q - 1) / sqrt(2 q (1 - q))
    assert t_quantile(q, 1) == pytest.approx(math.tan(math.pi * (q - 0.5)), rel=1e-10)
    assert t_quantile(q, 2) == pytest.approx((2 * q - 1) / math.sqrt(2 * q * (1 - q)), rel=1e-10)
    assert t_cdf(t_quantile(q, 7.3), 7.3) == pytest.approx(q, abs=1e-12)
    assert t_quantile(0.5, 3) == 0.0 and math.isnan(t_quantile(1.0, 3)) and math.isnan(t_quantile(0.9, 0))


def test_welch_interval_by_hand():
    # a, b as in test_welch_by_hand_and_against_quadrature: diff -3, se sqrt(2.5), df 6.25 / 1.0625
    r = welch_test([1, 2, 3, 4, 5], [2, 4, 6, 8, 10])
    half = t_quantile(0.975, 6.25 / 1.0625) * math.sqrt(2.5)
    assert r.test == "welch" and r.diff == -3.0 and r.n == 10
    assert (r.ci_low, r.ci_high) == (pytest.approx(-3 - half), pytest.approx(-3 + half))
    assert r.p_value == pytest.approx(0.10753, abs=1e-5) and r.ci_low < 0 < r.ci_high  # p > 0.05: 0 inside
    # df = 2 (two values a side, equal variances): t_{0.975, 2} = 4.302653; diff 0.07, se sqrt(2 * 0.0002 / 2)
    r = welch_test([0.05, 0.07], [-0.02, 0.00])
    assert r.ci_low == pytest.approx(0.07 - 4.302653 * math.sqrt(0.0002), abs=1e-6)
    assert r.ci_high == pytest.approx(0.07 + 4.302653 * math.sqrt(0.0002), abs=1e-6)
    flat = welch_test([2, 2], [1, 1])  # no variance: the difference itself, p 0
    assert (flat.diff, flat.ci_low, flat.ci_high, flat.p_value) == (1.0, 1.0, 1.0, 0.0)
    assert math.isnan(welch_test([1.0], [1.0, 2.0]).p_value)


def test_mcnemar_exact_against_a_hand_binomial_sum():
    # b = 6, c = 16: n = 22, P(X <= 6) = (1 + 22 + 231 + 1540 + 7315 + 26334 + 74613) / 2^22 = 110056 / 4194304
    assert mcnemar_exact_p(6, 16) == pytest.approx(2 * 110056 / 4194304, rel=1e-12)
    assert mcnemar_exact_p(16, 6) == mcnemar_exact_p(6, 16)
    assert mcnemar_exact_p(6, 16) == pytest.approx(0.052479, abs=1e-6)  # Fagerland et al. 2017, ch. 8 (Cavo 2012)
    assert mcnemar_exact_p(3, 0) == pytest.approx(2 / 8)  # 2 * (1/2)^3
    assert mcnemar_exact_p(5, 5) == 1.0 and mcnemar_exact_p(0, 0) == 1.0  # 2 * P(X <= 5) > 1 is capped
    # large n (exact integers, no underflow) against the normal approximation with continuity correction:
    # z = (|b - c| - 1) / sqrt(b + c) = 99 / sqrt(4100) = 1.5461, 2 (1 - Phi(z)) = 0.1221
    assert mcnemar_exact_p(2000, 2100) == pytest.approx(0.1221, abs=1e-3)


def test_wilson_and_newcombe_by_hand():
    z = 1.959963984540054
    # Wilson (2 of 2): centre (2 + z^2/2) / (2 + z^2), half z / (2 + z^2) * sqrt(0 + z^2 / 4)
    centre, half = (2 + z * z / 2) / (2 + z * z), z / (2 + z * z) * z / 2
    assert wilson_interval(2, 2) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert wilson_interval(0, 2) == (pytest.approx(0.0, abs=1e-15), pytest.approx(1 - (centre - half)))
    # two pairs, both (1, 0): p1 = 1, p2 = 0, an empty margin so phi = 0;
    # L = 1 - sqrt((1 - l1)^2 + (u2 - 0)^2) with u2 = 1 - l1; U = 1 + sqrt(0 + 0) = 1
    l1 = centre - half  # 0.342374
    lo, hi = newcombe_paired_ci(0, 2, 0, 0)
    assert lo == pytest.approx(1 - math.sqrt(2) * (1 - l1)) and hi == pytest.approx(1.0)
    assert lo == pytest.approx(0.069985, abs=1e-6)
    # published: Cavo et al. 2012 table (59, 6; 16, 80): -0.0621 (95% CI -0.1186 to -0.0046)
    lo, hi = newcombe_paired_ci(59, 6, 16, 80)
    assert lo == pytest.approx(-0.1186, abs=5e-5) and hi == pytest.approx(-0.0046, abs=5e-5)


def test_mcnemar_test_counts_discordant_pairs():
    fwd = [1, 1, 1, 0, 1, 1, float("nan")]
    rev = [0, 0, 1, 0, 1, 0, 1]  # the last pair has no forward value: dropped
    r = mcnemar_test(fwd, rev)
    # n11 = 2 (items 2, 4), n10 = 3 (items 0, 1, 5), n01 = 0, n00 = 1 (item 3)
    assert r.test == "mcnemar" and r.n == 6 and r.diff == pytest.approx(0.5)
    assert r.p_value == pytest.approx(0.25)  # 2 * (1/2)^3
    assert (r.ci_low, r.ci_high) == pytest.approx(newcombe_paired_ci(2, 3, 0, 1))
    assert r.ci_low < 0 < r.ci_high <= 1
    with pytest.raises(ValueError, match="0/1 values"):
        mcnemar_test([0.5, 1], [1, 0])


def test_paired_bootstrap_by_enumeration():
    # differences (0, 1): a resample's mean is 0, 0.5 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 2.5% / 97.5% percentiles are 0 and 1 and P(D* <= 0) = 1/4: p = 2 * 1/4 = 0.5
    r = paired_bootstrap([5, 7], [5, 6], n_boot=20000, seed=1)
    assert r.test == "paired_bootstrap" and r.diff == 0.5 and r.n == 2
    assert (r.ci_low, r.ci_high) == (0.0, 1.0)
    assert r.p_value == pytest.approx(0.5, abs=0.02)
    assert r == paired_bootstrap([5, 7], [5, 6], n_boot=20000, seed=1)  # seeded
    same = paired_bootstrap([1, 2, 3], [1, 2, 3], n_boot=100)  # every D* is 0: both tails full
    assert (same.ci_low, same.ci_high, same.p_value) == (0.0, 0.0, 1.0)


def test_paired_interval_far_narrower_than_unpaired():
    # items differ a lot (sd 1), forward = reverse + 0.1 on every item: every paired resample gives
    # exactly 0.1, so the paired interval is [0.1, 0.1] and p = 2 * (0 + 1) / (B + 1); resampling the
    # sides independently sees the item spread and its interval (width ~ 2 * 1.96 * sqrt(2/50)) holds 0
    rev = np.random.default_rng(0).normal(0.0, 1.0, 50)
    fwd = rev + 0.1
    r = paired_bootstrap(fwd, rev, n_boot=4000, seed=0)
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.1), pytest.approx(0.1))
    assert r.p_value == pytest.approx(2 / 4001)
    lo, hi = bootstrap_diff_ci(fwd, rev, n_boot=4000, seed=0)
    assert lo < 0 < hi and hi - lo > 0.6 and hi - lo > 1000 * (r.ci_high - r.ci_low + 1e-6)
    noisy = paired_bootstrap(fwd + np.random.default_rng(1).normal(0, 0.05, 50), rev, n_boot=4000, seed=0)
    assert noisy.ci_low > 0 and noisy.ci_high - noisy.ci_low < (hi - lo) / 10  # still paired-narrow


def test_holm_by_hand():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> max so far 0.06
    adj = holm_adjust([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert adj[:4] == [pytest.approx(0.03), pytest.approx(0.06), pytest.approx(0.06), pytest.approx(0.02)]
    assert math.isnan(adj[4])  # NaN stays NaN and does not count in m
    assert holm_adjust([0.6, 0.5]) == [1.0, 1.0]  # 0.5 * 2 = 1.0, then max(1.0, 0.6) capped at 1
    assert holm_adjust([0.03]) == [0.03] and holm_adjust([]) == []


def test_headline_share_by_hand():
    changes = [
        ("mmlu_acc", 0.05, True),        # improved: +0.05
        ("gsm8k_acc", -0.01, True),      # degraded 1% < 2%: ok
        ("bbq_bias", 0.10, False),       # lower is better: +10% bias -> signed -0.10, degraded
        ("halueval_err", -0.03, False),  # lower is better: -3% -> signed +0.03, improved
        ("tqa_mc2", -0.02, True),        # exactly -2%: not "less than 2%" -> not ok
        ("eq", float("nan"), True),      # skipped
    ]
    r = headline_share(changes)
    # ok: mmlu, gsm8k, halueval -> 3 of 5; improved: mmlu, halueval -> 2 of 5; worst bbq_bias -0.10
    assert r["n"] == 5 and r["share_ok"] == pytest.approx(0.6) and r["share_improved"] == pytest.approx(0.4)
    assert r["largest_degradation"] == ("bbq_bias", pytest.approx(-0.10))
    assert r["skipped"] == ["eq"]
    assert headline_share([("a", 0.1, True)])["largest_degradation"] is None
    with pytest.raises(TypeError, match="better direction"):
        headline_share([0.1])
