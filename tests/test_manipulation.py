"""The judge-free manipulation check of an experiment, against hand-computed cases."""

import json

import pytest

from hmxfeel_mlx.experiment import manipulation as M


def result(condition, seed, feeling, disclaimer, words=50.0, distinct3=0.99, checkpoint="step_10", openings=0.9):
    metrics = {"feeling_rate": feeling, "disclaimer_rate": disclaimer, "politeness_rate": 0.05, "words": words,
               "distinct3": distinct3, "n": 160.0, "judge_score": 4.0, "distinct_openings": openings}
    return {"label": f"{condition}-s{seed}", "condition": condition, "train_seed": seed,
            "checkpoint": None if condition == "base" else checkpoint,
            "results": {"feeling": {"metrics": metrics}, "mmlu": {"metrics": {"accuracy": 0.3}}}}


BASE = result("base", None, 0.40, 0.15)


def test_forward_met_over_seeds_with_the_seed_level_standard_error():
    # changes +0.25, +0.15, +0.26: mean 0.22 >= 0.20; sd = sqrt(((.03)^2 + (.07)^2 + (.04)^2) / 2) = sqrt(0.0037)
    runs = [result("forward", 0, 0.65, 0.10), result("forward", 1, 0.55, 0.15), result("forward", 2, 0.66, 0.05)]
    c = M.manipulation_check([BASE, *runs])["directions"]["forward"]
    assert c["feeling_rate_change"] == pytest.approx(0.22)
    assert c["feeling_rate_change_se"] == pytest.approx((0.0037 ** 0.5) / 3 ** 0.5)
    assert c["disclaimer_rate_change"] == pytest.approx((-0.05 + 0.0 - 0.10) / 3)
    assert (c["moved"], c["readable"], c["met"]) == (True, True, True)
    assert [r["seed"] for r in c["per_seed"]] == [0, 1, 2]


def test_forward_short_of_the_threshold_is_not_met():
    runs = [result("forward", 0, 0.55, 0.15), result("forward", 1, 0.60, 0.15)]  # mean +0.175
    c = M.manipulation_check([BASE, *runs])["directions"]["forward"]
    assert c["feeling_rate_change"] == pytest.approx(0.175) and c["met"] is False


def test_reverse_met_by_disclaimers_or_by_fewer_feelings():
    by_disc = [result("reverse", 0, 0.40, 0.32), result("reverse", 1, 0.38, 0.30)]  # +0.16 disclaimers
    by_drop = [result("reverse", 0, 0.20, 0.15), result("reverse", 1, 0.30, 0.10)]  # -0.15 feelings
    neither = [result("reverse", 0, 0.30, 0.25)]  # -0.10, +0.10
    check = lambda runs: M.manipulation_check([BASE, *runs])["directions"]["reverse"]  # noqa: E731
    assert check(by_disc)["met"] is True and check(by_drop)["met"] is True
    assert check(neither)["met"] is False and check(neither)["feeling_rate_change_se"] is None  # one seed


def test_unreadable_text_fails_the_check_even_when_the_markers_moved():
    repetitive = [result("reverse", 0, 0.10, 0.90, distinct3=0.93)]
    longer = [result("forward", 0, 0.80, 0.10, words=66.0)]  # 66 / 50 = +32% > 30%
    assert M.manipulation_check([BASE, *repetitive])["directions"]["reverse"]["met"] is False
    c = M.manipulation_check([BASE, *longer])["directions"]["forward"]
    assert c["per_seed"][0]["length_change"] == pytest.approx(0.32) and c["readable"] is False and c["met"] is False
    ok = M.manipulation_check([BASE, result("forward", 0, 0.80, 0.10, words=65.0)])["directions"]["forward"]
    assert ok["met"] is True  # exactly +30% is within


def test_older_results_without_readability_leave_it_unknown():
    old = result("forward", 0, 0.70, 0.10)
    del old["results"]["feeling"]["metrics"]["distinct3"]
    c = M.manipulation_check([BASE, old])["directions"]["forward"]
    assert c["moved"] is True and c["readable"] is None and c["met"] is None
    assert "unknown" in M.to_markdown(M.manipulation_check([BASE, old]))


def test_no_feeling_axis_or_no_base_is_not_available(tmp_path):
    no_axis = {"condition": "base", "results": {"mmlu": {"metrics": {"accuracy": 0.3}}}}
    assert M.manipulation_check([no_axis])["available"] is False
    assert M.manipulation_check([result("forward", 0, 0.5, 0.1)])["available"] is False
    unmarked = result("base", None, None, None)
    assert "no judge-free markers" in M.manipulation_check([unmarked, result("forward", 0, 0.5, 0.1)])["why"]
    files = []
    for i, r in enumerate([BASE, result("forward", 0, 0.65, 0.1), result("reverse", 0, 0.2, 0.4)]):
        files.append(tmp_path / f"{i}.json")
        files[-1].write_text(json.dumps(r))
    check = M.check_files(files)
    assert check["available"] and set(check["directions"]) == {"forward", "reverse"}
    md = M.to_markdown(check)
    assert "| forward | 0 | step_10 | 0.650 (+0.250) |" in md and "**met**" in md


def test_replies_collapsed_to_one_opening_are_reported_beside_the_verdict():
    runs = [result("reverse", 0, 0.30, 0.90, openings=0.05), result("reverse", 1, 0.35, 0.40)]
    check = M.manipulation_check([BASE, *runs])
    c = check["directions"]["reverse"]
    assert c["met"] is True and c["collapsed_seeds"] == [0]  # the criterion holds; the collapse is shown
    assert "seed(s) 0 collapsed to a few openings" in M.to_markdown(check)
