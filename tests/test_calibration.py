"""The judge-quality statistics (average ranks, ROC-AUC, Spearman's rho) and the judge's scale map.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.training.calibration import (
    CalibrationResult,
    JudgeScale,
    average_ranks,
    fit_logistic,
    load_calibration_result,
    logistic_loss,
    roc_auc,
    save_calibration,
    scale_fit,
    spearman,
)

# --------------------------------------------------------------------------- average_ranks


def test_average_ranks_without_ties():
    # sorted: 1 (idx 1) -> 1, 2 (idx 3) -> 2, 5 (idx 0) -> 3, 9 (idx 2) -> 4
    assert average_ranks([5, 1, 9, 2]).tolist() == [3.0, 1.0, 4.0, 2.0]


def test_average_ranks_with_ties():
    # 10 -> rank 1; the two 20s share ranks 2,3 -> 2.5; 30 -> 4
    assert average_ranks([10, 20, 20, 30]).tolist() == [1.0, 2.5, 2.5, 4.0]
    # sorted: 1 -> 1, 2 -> 2, the three 3s share ranks 3,4,5 -> 4
    assert average_ranks([3, 1, 3, 2, 3]).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]
    # two tie groups: 0,0 -> 1.5; 7 -> 3; 8,8,8,8 -> (4+5+6+7)/4 = 5.5
    assert average_ranks([8, 0, 8, 7, 8, 0, 8]).tolist() == [5.5, 1.5, 5.5, 3.0, 5.5, 1.5, 5.5]


def test_average_ranks_edge_cases():
    assert average_ranks([]).tolist() == []
    assert average_ranks([4.2]).tolist() == [1.0]
    assert average_ranks([5, 5, 5]).tolist() == [2.0, 2.0, 2.0]
    assert average_ranks([-1.5, 0.25, -1.5]).tolist() == [1.5, 3.0, 1.5]
    # ranks always sum to n(n+1)/2
    values = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    assert average_ranks(values).sum() == len(values) * (len(values) + 1) / 2


# --------------------------------------------------------------------------- roc_auc


def test_roc_auc_with_ties_by_hand():
    # pos [3,2,2], neg [2,1]; the six pairs:
    # (3,2) 1, (3,1) 1, (2,2) 1/2, (2,1) 1, (2,2) 1/2, (2,1) 1 -> 5/6
    assert roc_auc([3, 2, 2], [2, 1]) == pytest.approx(5 / 6, abs=1e-12)


def test_roc_auc_second_example_by_hand():
    # pos [7, 5], neg [5, 5, 8]:
    # 7: >5, >5, <8 -> 2;  5: =5 .5, =5 .5, <8 0 -> 1;  total 3 of 6 pairs -> 1/2
    assert roc_auc([7, 5], [5, 5, 8]) == pytest.approx(0.5, abs=1e-12)
    # pos [9, 6, 6, 4], neg [6, 2]:
    # 9: 1+1; 6: .5+1; 6: .5+1; 4: 0+1 -> 6 of 8 -> 0.75
    assert roc_auc([9, 6, 6, 4], [6, 2]) == pytest.approx(0.75, abs=1e-12)


def test_roc_auc_perfect_and_reversed():
    assert roc_auc([8, 9, 10], [1, 2, 3, 7]) == 1.0
    assert roc_auc([1, 2, 3, 7], [8, 9, 10]) == 0.0


def test_roc_auc_all_tied_is_half():
    assert roc_auc([5, 5], [5, 5, 5]) == pytest.approx(0.5, abs=1e-12)


def test_roc_auc_empty_class_is_nan():
    assert math.isnan(roc_auc([], [1, 2]))
    assert math.isnan(roc_auc([1, 2], []))
    assert math.isnan(roc_auc([], []))


def test_roc_auc_symmetry_and_pairwise_definition():
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 11, size=17)
    neg = rng.integers(0, 11, size=13)
    pairs = [1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg)]
    expected = sum(pairs) / len(pairs)
    assert roc_auc(pos, neg) == pytest.approx(expected, abs=1e-12)
    assert roc_auc(pos, neg) + roc_auc(neg, pos) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------- spearman


def test_spearman_with_ties_by_hand():
    # x = [1, 2, 2, 3] -> ranks [1, 2.5, 2.5, 4]; y = [1, 3, 2, 4] -> ranks [1, 3, 2, 4]
    # centred (mean 2.5): dx = [-1.5, 0, 0, 1.5], dy = [-1.5, .5, -.5, 1.5]
    # sum dx*dy = 2.25 + 0 + 0 + 2.25 = 4.5; sum dx^2 = 4.5; sum dy^2 = 5
    # rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9) = 0.948683...
    # (the no-ties shortcut 1 - 6*sum(d^2)/(n(n^2-1)) would give 1 - 6*0.5/60 = 0.95)
    rho = spearman([1, 2, 2, 3], [1, 3, 2, 4])
    assert rho == pytest.approx(math.sqrt(0.9), abs=1e-12)
    assert rho != pytest.approx(0.95, abs=1e-6)


def test_spearman_ties_on_both_sides_by_hand():
    # x = [10, 20, 20, 30, 40] -> ranks [1, 2.5, 2.5, 4, 5]
    # y = [1, 1, 2, 3, 3]      -> ranks [1.5, 1.5, 3, 4.5, 4.5]
    # centred (mean 3): dx = [-2, -.5, -.5, 1, 2], dy = [-1.5, -1.5, 0, 1.5, 1.5]
    # sum dx*dy = 3 + .75 + 0 + 1.5 + 3 = 8.25
    # sum dx^2 = 4 + .25 + .25 + 1 + 4 = 9.5; sum dy^2 = 4 * 2.25 = 9
    expected = 8.25 / math.sqrt(9.5 * 9.0)  # 0.8922...
    assert spearman([10, 20, 20, 30, 40], [1, 1, 2, 3, 3]) == pytest.approx(expected, abs=1e-12)
    assert spearman([1, 1, 2, 3, 3], [10, 20, 20, 30, 40]) == pytest.approx(expected, abs=1e-12)


def test_spearman_monotone_and_reversed():
    x = [1, 2, 3, 4, 5]
    assert spearman(x, [1, 8, 27, 64, 125]) == pytest.approx(1.0, abs=1e-12)  # monotone, not linear
    assert spearman(x, [50, 40, 30, 20, 10]) == pytest.approx(-1.0, abs=1e-12)


def test_spearman_labels_like_judge_check():
    # scores vs ordinal labels (machine 0 < neutral 1 < human 2), as judge_check uses it
    # scores [2, 5, 9, 8], labels [0, 1, 2, 2]
    # ranks scores [1, 2, 4, 3]; ranks labels [1, 2, 3.5, 3.5]; means 2.5
    # dx = [-1.5, -.5, 1.5, .5], dy = [-1.5, -.5, 1, 1]
    # sum dx*dy = 2.25 + .25 + 1.5 + .5 = 4.5; sum dx^2 = 5; sum dy^2 = 2.25 + .25 + 1 + 1 = 4.5
    # rho = 4.5 / sqrt(22.5) = sqrt(0.9)
    assert spearman([2, 5, 9, 8], [0, 1, 2, 2]) == pytest.approx(math.sqrt(0.9), abs=1e-12)
    # the reverse rubric negates the labels: rho flips sign
    assert spearman([2, 5, 9, 8], [0, -1, -2, -2]) == pytest.approx(-math.sqrt(0.9), abs=1e-12)


def test_spearman_constant_is_nan():
    assert math.isnan(spearman([3, 3, 3], [1, 2, 3]))
    assert math.isnan(spearman([1, 2, 3], [7, 7, 7]))
    assert math.isnan(spearman([4], [9]))


# --------------------------------------------------------------------------- the scale map


def test_logistic_fit_two_raw_values_by_hand():
    """With two raw values the logistic is saturated: it reproduces the mean target at each.
    Targets 0, 0.5 at raw 0 (mean 1/4) and 0.5, 1 at raw 1 (mean 3/4):
    intercept = logit(1/4) = -ln 3, slope = logit(3/4) - logit(1/4) = 2 ln 3."""
    slope, intercept = fit_logistic([0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0])
    assert slope == pytest.approx(2 * math.log(3), abs=1e-9) and intercept == pytest.approx(-math.log(3), abs=1e-9)
    # shifted and scaled raw scores: the same map in those units
    slope2, intercept2 = fit_logistic([4.0, 4.0, 4.5, 4.5], [0.0, 0.5, 0.5, 1.0])
    assert slope2 == pytest.approx(4 * math.log(3), abs=1e-8)
    assert intercept2 == pytest.approx(-math.log(3) - 4 * 4 * math.log(3), abs=1e-7)


def test_logistic_fit_solves_the_score_equations_and_is_a_minimum():
    rng = np.random.default_rng(0)
    raw = rng.normal(4.0, 0.5, size=60)
    target = np.clip(np.round(2 * (raw - 3.5) + rng.normal(0, 0.6, size=60)) / 2, 0, 1)  # 0, 0.5, 1 with overlap
    slope, intercept = fit_logistic(raw, target)
    p = 1 / (1 + np.exp(-(slope * raw + intercept)))
    assert abs(np.sum(p - target)) < 1e-8 and abs(np.sum((p - target) * raw)) < 1e-8  # gradient zero
    best = logistic_loss(raw, target, slope, intercept)
    h = 1e-4
    for ds, di in ((h, 0), (-h, 0), (0, h), (0, -h)):
        assert logistic_loss(raw, target, slope + ds, intercept + di) > best
    # the gradient by finite differences at another point matches the analytic one
    s0, i0 = 1.0, -3.0
    p0 = 1 / (1 + np.exp(-(s0 * raw + i0)))
    fd = (logistic_loss(raw, target, s0 + h, i0) - logistic_loss(raw, target, s0 - h, i0)) / (2 * h)
    assert fd == pytest.approx(np.sum((p0 - target) * raw), rel=1e-6)


def test_logistic_fit_is_flat_when_the_judge_ranks_backwards_or_not_at_all():
    # higher raw scores for lower targets: the constrained optimum is slope 0, intercept logit(mean 1/2) = 0
    assert fit_logistic([0.0, 1.0, 2.0, 3.0], [1.0, 0.5, 0.5, 0.0]) == (0.0, 0.0)
    slope, intercept = fit_logistic([5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 0.5, 1.0])  # one raw score for all
    assert slope == 0.0 and intercept == pytest.approx(math.log(0.375 / 0.625))


def test_judge_scale_values_inverse_and_nan():
    scale = JudgeScale(slope=2 * math.log(3), intercept=-math.log(3))
    assert scale.center == pytest.approx(0.5)
    got = scale([0.0, 0.5, 1.0, math.nan])
    assert got[:3] == pytest.approx([2.5, 5.0, 7.5]) and math.isnan(got[3])
    assert scale.raw_at(7.5) == pytest.approx(1.0) and scale.raw_at(10.0) is None
    flat = JudgeScale(0.0, 0.0)
    assert flat.center is None and flat.raw_at(5.0) is None and "flat" in flat.describe()


def test_scale_fit_on_labelled_scores_by_hand():
    """machine 0, 0 · neutral 0, 1 · human 1, 1 (targets 0, 5, 10): at raw 0 the mean target
    is (0 + 0 + 0.5) / 3 = 1/6, at raw 1 it is 5/6, so calibrated(0) = 10/6 and calibrated(1) = 50/6;
    RMSE = sqrt((2 (10/6)^2 + (5 - 10/6)^2 + (50/6 - 5)^2 + 2 (10 - 50/6)^2) / 6)."""
    labels = ["machine", "machine", "neutral", "neutral", "human", "human"]
    fit = scale_fit([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], labels, "forward")
    assert fit["scale"].slope == pytest.approx(2 * math.log(5), abs=1e-9)
    assert fit["scale"].intercept == pytest.approx(-math.log(5), abs=1e-9)
    cal = fit["mean_calibrated"]
    assert cal["machine"] == pytest.approx(10 / 6) and cal["human"] == pytest.approx(50 / 6)
    assert cal["neutral"] == pytest.approx(5.0)
    want = math.sqrt((2 * (10 / 6) ** 2 + (5 - 10 / 6) ** 2 + (50 / 6 - 5) ** 2 + 2 * (10 - 50 / 6) ** 2) / 6)
    assert fit["rmse"] == pytest.approx(want)
    assert fit["auc"] == 1.0 and fit["mean_by_label"]["neutral"] == 0.5 and fit["warning"] is None
    # the reverse rubric scores machine-likeness: the same replies scored the other way round fit the mirror
    rev = scale_fit([1.0, 1.0, 1.0, 0.0, 0.0, 0.0], labels, "reverse")
    assert rev["scale"].slope == pytest.approx(2 * math.log(5), abs=1e-9) and rev["auc"] == 1.0


def test_scale_fit_leaves_out_unparsed_scores_and_warns_on_a_flat_map():
    labels = ["machine", "neutral", "human", "human"]
    fit = scale_fit([6.0, 5.0, 4.0, math.nan], labels, "forward")  # ranks backwards; one verdict unparsed
    assert fit["unparsed"] == 1 and fit["n"] == 4 and fit["n_by_label"] == {"machine": 1, "neutral": 1, "human": 1}
    assert fit["scale"].slope == 0.0 and "flat" in fit["warning"]
    none = scale_fit([math.nan, math.nan], ["machine", "human"], "forward")
    assert none["unparsed"] == 2 and math.isnan(none["auc"]) and math.isnan(none["spearman"])


def test_calibration_result_round_trip(tmp_path):
    fit = scale_fit([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], ["machine", "machine", "neutral", "neutral", "human", "human"],
                    "forward")
    result = CalibrationResult(mode="logprob", direction="forward", seconds=1.5, template="fewshot", **fit)
    save_calibration(tmp_path / "judge_calibration.json", result)
    data = json.loads((tmp_path / "judge_calibration.json").read_text())
    assert data["scale"]["method"] == "logistic" and data["anchors"] == {"machine": 0.0, "neutral": 5.0, "human": 10.0}
    assert data["scale"]["center"] == pytest.approx(0.5) and data["n"] == 6
    back = load_calibration_result(tmp_path / "judge_calibration.json")
    assert back.scale == result.scale and back.mean_calibrated == result.mean_calibrated
    (tmp_path / "bad.json").write_text('{"mode": "logprob"}')
    with pytest.raises(HmxError, match="Delete it"):
        load_calibration_result(tmp_path / "bad.json")


def test_within_group_correlation_by_hand():
    from hmxfeel_mlx.training.calibration import within_group_correlation

    # two groups of 2: centred scores (-1, 1), (-0.5, 0.5); centred feature (-0.5, 0.5), (0.5, -0.5)
    # sum s*f = (0.5 + 0.5) + (-0.25 - 0.25) = 0.5; sum s^2 = 2.5, sum f^2 = 1 -> r = 0.5 / sqrt(2.5)
    scores, feature = [1, 3, 5, 6], [0, 1, 1, 0]
    assert within_group_correlation(scores, feature, 2) == pytest.approx(0.5 / math.sqrt(2.5))
    # a between-group difference alone is invisible to GRPO's advantages
    assert math.isnan(within_group_correlation([1, 1, 9, 9], [0, 0, 1, 1], 2))
    assert within_group_correlation([1, 2, 7, 8], [0, 1, 5, 6], 2) == pytest.approx(1.0)
    # one pooled slope: groups that disagree on the scale of the relation do not reach 1
    assert within_group_correlation([1, 2, 7, 9], [0, 1, 5, 6], 2) == pytest.approx(1.5 / math.sqrt(2.5))


def test_partial_within_group_correlation_removes_the_control():
    from hmxfeel_mlx.training.calibration import within_group_correlation

    rng = np.random.default_rng(0)
    length = rng.normal(size=400)
    feeling = rng.normal(size=400)
    scores = 2 * length + 0.5 * feeling + 0.1 * rng.normal(size=400)  # the judge pays mostly for length
    raw = within_group_correlation(scores, feeling, 8)
    partial = within_group_correlation(scores, feeling, 8, control=length)
    assert raw < 0.35 and partial > 0.9  # once length is held fixed, the feeling term explains the rest
    # by hand on one group of 3: control c = (-1, 0, 1); s = (0, 1, 0) -> s - 0 * c = s centred
    # (-1/3, 2/3, -1/3); f = (1, 0, 0) -> centred (2/3, -1/3, -1/3), slope on c = -1/2 ->
    # (1/6, -1/3, 1/6); r = (-1/18 - 2/9 - 1/18) / sqrt(2/3 * 1/6) = -1/3 / (1/3) = -1
    assert within_group_correlation([0, 1, 0], [1, 0, 0], 3, control=[-1, 0, 1]) == pytest.approx(-1.0)


def test_group_bootstrap_interval_covers_the_statistic_and_is_seeded():
    from hmxfeel_mlx.training.calibration import group_bootstrap

    values = np.arange(20, dtype=float)
    lo, hi = group_bootstrap(lambda idx: float(values[idx].mean()), 20, reps=500, seed=1)
    assert lo < values.mean() < hi and hi - lo < 10
    assert group_bootstrap(lambda idx: float(values[idx].mean()), 20, reps=500, seed=1) == (lo, hi)
