"""The per-step progress line is a pure function of the metrics."""

from __future__ import annotations

import io

import pytest

from hmxfeel_mlx.training.config import TrainConfig
from hmxfeel_mlx.training.progress import StepPrinter, format_step
from hmxfeel_mlx.training.rollout import distinct_ngram_ratio, repetition_stats

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
    from hmxfeel_mlx.training.progress import format_summary

    summary = {"status": "stopped", "base_eval_score": 4.2, "final_eval_score": 4.35, "selected_step": 10,
               "reason": "threshold crossed", "stopped": "NaN/inf loss at step 12; the update was not applied"}
    assert format_summary(summary) == ("stopped: held-out score 4.20 -> 4.35; selected checkpoint: step_10 "
                                       "(threshold crossed); NaN/inf loss at step 12; the update was not applied")
    assert format_summary({}) == "no summary: no evaluation; selected checkpoint: none"


def test_eval_line_with_calibrated_score_kl_per_reply_and_judge_mass():
    m = {**STEP, "judge_score_mass": 0.912, "sampler_logp_diff": 2.5e-6, "eval_score": 4.33, "eval_score_se": 0.01,
         "eval_score_cal": 6.1, "eval_score_cal_se": 0.2, "eval_reward": 4.33, "eval_kl": 0.257,
         "eval_kl_reply": 16.3, "eval_degenerate_ratio": 0.0}
    line = format_step(m, 30)
    assert "mass 0.912  logp diff 2.5e-06" in line
    assert line.endswith("eval: held-out score 4.33 ± 0.01 (calibrated 6.10 ± 0.20)  reward 4.33  "
                         "KL 0.2570/token 16.30/reply  degenerate 0.00  checkpoint step_3")
    base = format_step({"step": 0, "eval_score": 4.2, "eval_score_se": 0.05, "eval_score_cal": 4.9,
                        "eval_score_cal_se": 0.1, "eval_n": 20, "eval_seconds": 61.0}, 30)
    assert base == "step 0/30  base held-out score 4.20 ± 0.05 (calibrated 4.90 ± 0.10) (n=20, 61s)"


def test_summary_line_with_calibrated_scores():
    from hmxfeel_mlx.training.progress import format_summary

    summary = {"status": "finished", "base_eval_score": 4.2, "final_eval_score": 4.35, "base_eval_score_cal": 4.9,
               "final_eval_score_cal": 7.6, "selected_step": 10, "reason": "threshold crossed"}
    assert format_summary(summary) == ("finished: held-out score 4.20 -> 4.35 (calibrated 4.90 -> 7.60); "
                                       "selected checkpoint: step_10 (threshold crossed)")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_progress_file_writes_reports_at_most_once_per_interval(tmp_path):
    from hmxfeel_mlx.training.progress import ProgressFile, read_progress

    clock = Clock()
    p = ProgressFile(tmp_path / "progress.json", min_interval=1.0, clock=clock)
    p.stage("rollout", step=3, total=1024, unit="tokens")
    assert p.writes == 1  # a stage is written when it begins
    for _ in range(500):  # a hot loop reporting every decode step, all within the same second
        p.advance(2)
        clock.now += 0.001
    assert p.writes == 1 and read_progress(tmp_path / "progress.json")["done"] == 0
    clock.now += 1.0
    p.advance(24)
    got = read_progress(tmp_path / "progress.json")
    assert p.writes == 2 and got["done"] == 1024 and got["stage"] == "rollout" and got["step"] == 3
    assert got["started"] == 1000.0 and got["updated"] == pytest.approx(1001.5)
    p.advance(1)  # within the interval: not written ...
    p.part("judging", 16, "replies")  # ... but the next part is, at once, whatever the interval
    got = read_progress(tmp_path / "progress.json")
    assert p.writes == 3 and (got["part"], got["done"], got["total"], got["unit"]) == ("judging", 0, 16, "replies")
    assert read_progress(tmp_path / "missing.json") is None
    silent = ProgressFile(None)
    silent.stage("rollout")
    silent(5)
    assert silent.writes == 0


def test_progress_line_text():
    from hmxfeel_mlx.training.progress import format_progress

    p = {"stage": "base evaluation", "part": "sampling", "step": 0, "done": 640, "total": 2560, "unit": "tokens",
         "started": 100.0, "updated": 160.0}
    assert format_progress(p, now=175.0) == "step 0 · base evaluation: sampling · 640/2560 tokens (25%) · 1:15 in this stage"
    assert format_progress({"stage": "loading the model", "started": 100.0}, now=103.0) == (
        "loading the model · 0:03 in this stage")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_line_rewrites_one_terminal_line_and_clears_it():
    from hmxfeel_mlx.training.progress import ProgressLine

    now = [100.0]
    out = Terminal()
    line = ProgressLine(out, clock=lambda: now[0])
    line.stage("held-out evaluation")
    line.part("sampling", 640, "tokens")
    line.advance(64)  # within min_interval of the last write: counted, not drawn
    now[0] += 1.0
    line.advance(64)
    line.close()
    assert out.getvalue().split("\r")[1:] == [
        "held-out evaluation · 0:00 in this stage\x1b[K",
        "held-out evaluation: sampling · 0/640 tokens (0%) · 0:00 in this stage\x1b[K",
        "held-out evaluation: sampling · 128/640 tokens (20%) · 0:01 in this stage\x1b[K",
        "\x1b[K"]


def test_progress_line_on_a_pipe_prints_when_a_part_begins_and_at_most_every_30_s():
    from hmxfeel_mlx.training.progress import ProgressLine

    now = [0.0]
    out = io.StringIO()
    line = ProgressLine(out, clock=lambda: now[0])
    line.stage("calibration", None, 72, "replies")
    for _ in range(71):
        now[0] += 1.0
        line.advance()
    line.close()
    assert out.getvalue().splitlines() == ["calibration · 0/72 replies (0%) · 0:00 in this stage",
                                           "calibration · 30/72 replies (42%) · 0:30 in this stage",
                                           "calibration · 60/72 replies (83%) · 1:00 in this stage"]
