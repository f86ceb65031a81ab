"""The per-step progress line is a pure function of the metrics."""

from __future__ import annotations

import io

from hmxfeel_mlx.config import TrainConfig
from hmxfeel_mlx.progress import StepPrinter, format_step
from hmxfeel_mlx.rollout import distinct_ngram_ratio, repetition_stats

STEP = {"step": 3, "reward_mean": 4.25, "reward_std": 0.5, "loss": -0.01234, "frac_reward_zero_std": 0.5,
        "completion_len": 61.6, "truncated_ratio": 0.25, "degenerate_ratio": 0.0, "judge_nan": 1,
        "rollout_s": 14.2, "rollout_tok_s": 70.4, "judge_s": 10.6, "update_s": 15.1}


def test_step_line():
    assert format_step(STEP, 30) == (
        "step 3/30  reward 4.25 ± 0.50  loss -0.0123  zero-std 0.50  len 62  trunc 0.25  rep 0.00  nan 1  "
        "[14s roll 70 tok/s | 11s judge | 15s update]"
    )


def test_eval_and_base_lines():
    line = format_step({**STEP, "eval_score": 4.5, "eval_score_se": 0.05, "eval_reward": 4.5, "eval_kl": 0.01,
                        "eval_degenerate_ratio": 0.1}, 30)
    assert line.endswith("eval: held-out score 4.50 ± 0.05  reward 4.50  KL 0.0100  degenerate 0.10  checkpoint step_3")
    base = format_step({"step": 0, "eval_score": 4.2, "eval_score_se": 0.05, "eval_n": 20, "eval_seconds": 61.0}, 30)
    assert base == "step 0/30  base held-out score 4.20 ± 0.05 (n=20, 61s)"


def test_printer_writes_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    printer = StepPrinter(TrainConfig(steps=30), out=out)
    printer(STEP, [])
    lines = out.getvalue().splitlines()
    assert lines[0] == "training smollm2-135m (forward, seed 0) for 30 steps" and lines[1].startswith("step 3/30")


def test_repetition_measures():
    assert distinct_ngram_ratio("I feel happy and I feel calm today") == 1.0
    assert distinct_ngram_ratio("k k k k k k") == 0.25  # 4 trigrams, 1 distinct
    stats = repetition_stats(["a b c d", "x x x x x x"])
    assert stats == {"distinct3": 0.625, "degenerate_ratio": 0.5}


def test_summary_line():
    from hmxfeel_mlx.progress import format_summary

    summary = {"status": "stopped", "base_eval_score": 4.2, "final_eval_score": 4.35, "selected_step": 10,
               "reason": "threshold crossed", "stopped": "NaN/inf loss at step 12; the update was not applied"}
    assert format_summary(summary) == ("stopped: held-out score 4.20 -> 4.35; selected checkpoint: step_10 "
                                       "(threshold crossed); NaN/inf loss at step 12; the update was not applied")
    assert format_summary({}) == "no summary: no evaluation; selected checkpoint: none"
