"""Statistics against table values, closed forms and hand computations."""

import math

import numpy as np
import pytest

from hmxfeel_mlx.evals.stats import (
    betainc_reg, bootstrap_diff_ci, headline_share, mean_std, relative_change, t_cdf, t_sf_two_sided,
    welch_t_test,
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


def test_relative_change():
    assert relative_change(1.1, 1.0) == pytest.approx(0.1)
    assert relative_change(-1.5, -1.0) == pytest.approx(-0.5)  # (-1.5 + 1) / 1
    assert math.isnan(relative_change(1.0, 0.0))


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
