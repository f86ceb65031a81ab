"""The selection rule on the calibrated held-out score: it fires where the raw scores of a
compressed judge never reach the rubric's threshold; the crossing checkpoints for pairing."""

from __future__ import annotations

from hmxfeel_mlx.training.selection import crossed, crossing_checkpoints, score_key, select

# raw scores of a compressed judge (3-5) and their calibrated values on the rubric's scale
FORWARD = [{"step": 5, "eval_score": 4.20, "eval_score_cal": 5.1}, {"step": 10, "eval_score": 4.35, "eval_score_cal": 7.6},
           {"step": 15, "eval_score": 4.40, "eval_score_cal": 8.2}, {"step": 20, "eval_score": 4.30, "eval_score_cal": 7.0}]
REVERSE = [{"step": 5, "eval_score": 4.00, "eval_score_cal": 3.9}, {"step": 10, "eval_score": 3.78, "eval_score_cal": 2.4},
           {"step": 15, "eval_score": 3.70, "eval_score_cal": 1.9}]


def test_the_rule_reads_the_calibrated_score():
    out = select(FORWARD, "forward", 7.5)
    assert out["selected_step"] == 10 and out["reason"] == "threshold crossed"
    assert out["threshold_scale"] == "calibrated" and out["rule"] == "first checkpoint with calibrated held-out score >= 7.5"
    rev = select(REVERSE, "reverse", 7.5)
    assert rev["selected_step"] == 10 and "<= 2.5 (mirrored threshold)" in rev["rule"]


def test_crossing_checkpoints_for_pairing():
    assert crossed(FORWARD, "forward", 7.5) == [False, True, True, False]
    assert crossing_checkpoints(FORWARD, "forward", 7.5) == [10, 15]
    assert crossing_checkpoints(REVERSE, "reverse", 7.5) == [10, 15]
    low = [{**e, "eval_score_cal": 5.0} for e in FORWARD]
    assert crossing_checkpoints(low, "forward", 7.5) == [5, 10, 15, 20]  # none crosses: all of them


def test_best_when_none_crosses_ties_broken_by_the_raw_score():
    evals = [{"step": 5, "eval_score": 4.1, "eval_score_cal": 6.0}, {"step": 10, "eval_score": 4.3, "eval_score_cal": 6.0},
             {"step": 15, "eval_score": 4.2, "eval_score_cal": 5.5}]
    out = select(evals, "forward", 7.5)
    assert out["selected_step"] == 10 and "not reached" in out["reason"]
    assert select(evals, "reverse", 7.5)["selected_step"] == 15
    assert select([], "forward", 7.5) == {"selected_step": None, "reason": "no checkpoint yet",
                                          "rule": "first checkpoint with raw held-out score >= 7.5",
                                          "threshold_scale": "raw"}


def test_runs_without_calibrated_scores_use_the_raw_one_and_say_so():
    old = [{"step": 10, "eval_score": 7.0}, {"step": 20, "eval_score": 7.6}]
    assert score_key(old) == "eval_score"
    out = select(old, "forward", 7.5)
    assert out["selected_step"] == 20 and out["threshold_scale"] == "raw" and "raw held-out" in out["rule"]
    mixed = [FORWARD[0], {"step": 10, "eval_score": 7.6}]  # one evaluation lacks the calibrated score
    assert score_key(mixed) == "eval_score"


def test_a_base_that_already_crosses_is_flagged():
    from hmxfeel_mlx.training.progress import format_summary
    from hmxfeel_mlx.training.selection import base_warning

    # the embedded model's base on its held-out questions: raw 4.15, calibrated 8.12 (>= 7.5 before any training)
    base = {"step": 0, "eval_score": 4.15, "eval_score_cal": 8.12}
    warning = base_warning([base, *FORWARD], "forward", 7.5)
    assert warning.startswith("the base model's calibrated held-out score (8.12) already is >= 7.5")
    assert base_warning([{**base, "eval_score_cal": 5.0}, *FORWARD], "forward", 7.5) is None
    assert base_warning(FORWARD, "forward", 7.5) is None  # no step 0
    assert base_warning([{**base, "eval_score_cal": 2.5}, *REVERSE], "reverse", 7.5).endswith("markers) instead.")
    assert base_warning([base, *REVERSE], "reverse", 7.5) is None
    assert format_summary({"status": "finished", "rule_warning": warning}).endswith("\nwarning: " + warning)


def test_the_run_summary_carries_the_warning(tmp_path):
    import json

    from hmxfeel_mlx.runfolder import RunPaths
    from hmxfeel_mlx.training.config import TrainConfig
    from hmxfeel_mlx.training.trainer import summarize

    paths = RunPaths(tmp_path)
    rows = [{"step": 0, "eval_score": 4.15, "eval_score_cal": 8.12}, {"step": 1, "loss": 0.0},
            {"step": 5, "eval_score": 4.2, "eval_score_cal": 8.3}]
    paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = summarize(TrainConfig(), paths, "finished")
    assert "8.12" in out["rule_warning"] and json.loads(paths.summary.read_text())["rule_warning"] == out["rule_warning"]
    rows[0]["eval_score_cal"] = 5.0
    paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "rule_warning" not in summarize(TrainConfig(), paths, "finished")
