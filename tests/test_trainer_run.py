"""A tiny run's folder as the experiment orchestrator reads it (calibration, held-out names,
summary, progress.json), and the trainer's defects, each with the test that catches it: one
rubric for both directions, metrics before the checkpoint, NaN scores are no floored replies,
a resume with more steps rewrites config.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_trainer import SMALL_CALIBRATION, small_config, without_timing

import hmxfeel_mlx.training.heldout as heldout
import hmxfeel_mlx.training.rollout as rollout_mod
import hmxfeel_mlx.training.trainer as trainer
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.runfolder import read_jsonl
from hmxfeel_mlx.training.rollout import is_degenerate
from hmxfeel_mlx.training.trainer import resume_config, train
from hmxfeel_mlx.ui.state import open_run

EVAL_KEYS = ("eval_score", "eval_score_se", "eval_score_cal", "eval_score_cal_se", "eval_kl", "eval_kl_k1",
             "eval_kl_reply", "eval_kl_reply_se", "eval_len")


@pytest.fixture(scope="module")
def whole(tiny_model_dir, tmp_path_factory):
    """An uninterrupted 4-step run (evaluations and checkpoints at steps 2 and 4)."""
    return train(small_config(tiny_model_dir), tmp_path_factory.mktemp("whole") / "run").run_dir


def test_run_folder_interface(whole):
    rows = read_jsonl(whole / "metrics.jsonl")
    evals = [r for r in rows if "eval_score" in r]
    assert [e["step"] for e in evals] == [0, 2, 4]
    for e in evals:
        assert all(k in e for k in EVAL_KEYS), e
        assert e["eval_kl_temperature"] == 1.0 and 0 < e["eval_judge_score_mass"] <= 1
    for r in rows[1:]:
        assert 0 < r["judge_score_mass"] <= 1 and 0 <= r["sampler_logp_diff"] < 1e-4
    cal = json.loads((whole / "judge_calibration.json").read_text())
    assert cal["scale"]["method"] == "logistic" and cal["n"] == 9 and cal["mode"] == "logprob"
    assert {"auc", "spearman", "mean_by_label", "mean_calibrated", "rmse", "n_by_label"} <= set(cal)
    # the calibrated held-out score is the mean of the replies' calibrated scores
    scale = trainer.load_calibration_result(whole / "judge_calibration.json").scale
    held = [s for s in read_jsonl(whole / "samples.jsonl") if s.get("eval") and s["step"] == 2]
    assert [s["score_cal"] for s in held] == pytest.approx(list(scale([s["score"] for s in held])))
    assert evals[1]["eval_score_cal"] == pytest.approx(np.mean([s["score_cal"] for s in held]))
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["threshold_scale"] == "calibrated" and "calibrated held-out score >= 7.5" in summary["rule"]
    assert summary["selected_step"] in (2, 4) and summary["reason"]
    assert [(e["step"], e["checkpoint"]) for e in summary["evals"]] == [(0, False), (2, True), (4, True)]
    for e in summary["evals"]:
        assert all(k in e for k in EVAL_KEYS) and e["crossed"] == (e["eval_score_cal"] >= 7.5)
    assert summary["base_eval_score_cal"] == evals[0]["eval_score_cal"]
    assert set(summary["crossing_steps"]) <= {2, 4} and summary["judge_calibration"]["method"] == "logistic"
    assert json.loads((whole / "progress.json").read_text())["stage"] == "finished"


def test_progress_is_written_during_the_base_evaluation(tiny_model_dir, tmp_path, monkeypatch):
    seen = []
    real = heldout.sample_rollout

    def spy(*args, **kwargs):
        seen.append(json.loads((tmp_path / "run" / "progress.json").read_text()))
        return real(*args, **kwargs)

    monkeypatch.setattr(heldout, "sample_rollout", spy)
    train(small_config(tiny_model_dir, steps=1, eval_every=1), tmp_path / "run")
    base = seen[0]
    assert base["stage"] == "base evaluation" and base["step"] == 0 and base["part"] == "sampling"
    assert base["total"] == 10 * 1 * 8 and base["unit"] == "tokens" and base["done"] == 0
    assert base["started"] <= base["updated"]


def test_calibration_is_fitted_once_and_reused_on_resume(tiny_model_dir, tmp_path, whole, monkeypatch):
    cfg = small_config(tiny_model_dir)

    def stop_at_3(metrics, samples):
        if metrics["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(trainer.TrainingStopped):
        train(cfg, tmp_path / "run", on_step=stop_at_3)
    stored = (tmp_path / "run" / "judge_calibration.json").read_text()
    monkeypatch.setattr(trainer, "judge_check", lambda *a, **k: pytest.fail("the resumed run fitted the scale again"))
    train(cfg, tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "judge_calibration.json").read_text() == stored
    assert without_timing(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == without_timing(
        read_jsonl(whole / "metrics.jsonl"))


class Killed(BaseException):
    """A kill (nothing in the trainer catches it)."""


def test_a_kill_before_the_metrics_line_loses_nothing(tiny_model_dir, tmp_path, whole, monkeypatch):
    """Killed while step 4's metrics line is being written: its checkpoint must not exist yet
    (the checkpoint used to be written first, and the resume then never recomputed step 4)."""
    real = trainer.append_jsonl

    def append(path, rows):
        rows = list(rows)
        if path.name == "metrics.jsonl" and rows and rows[0]["step"] == 4:
            raise Killed
        real(path, rows)

    monkeypatch.setattr(trainer, "append_jsonl", append)
    cfg = small_config(tiny_model_dir)
    with pytest.raises(Killed):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints" / "step_4").exists()
    monkeypatch.setattr(trainer, "append_jsonl", real)
    train(cfg, tmp_path / "run", resume=True)
    assert without_timing(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == without_timing(
        read_jsonl(whole / "metrics.jsonl"))


def test_a_kill_between_metrics_and_checkpoint_is_recomputed(tiny_model_dir, tmp_path, whole, monkeypatch):
    real = trainer.save_checkpoint

    def save(paths, step, *args, **kwargs):
        if step == 4:
            raise Killed
        return real(paths, step, *args, **kwargs)

    monkeypatch.setattr(trainer, "save_checkpoint", save)
    cfg = small_config(tiny_model_dir)
    with pytest.raises(Killed):
        train(cfg, tmp_path / "run")
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]["step"] == 4  # metrics first
    monkeypatch.setattr(trainer, "save_checkpoint", real)
    train(cfg, tmp_path / "run", resume=True)
    assert without_timing(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == without_timing(
        read_jsonl(whole / "metrics.jsonl"))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert all(e["checkpoint"] for e in summary["evals"] if e["step"] > 0)  # every evaluation can be selected


def test_nan_judge_scores_are_counted_not_floored(tiny_model_dir, tmp_path, monkeypatch):
    real = rollout_mod.score_replies

    def every_other_nan(*args, **kwargs):
        verdicts = real(*args, **kwargs)
        for v in verdicts[::2]:
            v.score = math.nan
        return verdicts

    monkeypatch.setattr(rollout_mod, "score_replies", every_other_nan)
    train(small_config(tiny_model_dir, steps=1, eval_every=1, degenerate_floor=0.0, min_reply_words=0),
          tmp_path / "run")
    samples = [s for s in read_jsonl(tmp_path / "run" / "samples.jsonl") if not s.get("eval")]
    nan = [s for s in samples if math.isnan(s["score"])]
    assert nan and any(not is_degenerate(s["completion"]) for s in nan)  # the case that was mislabelled
    for s in samples:
        assert s.get("floored", False) == is_degenerate(s["completion"]), s
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl")[1]["judge_nan"] == len(nan)


def test_resume_with_more_steps_rewrites_the_config(tiny_model_dir, tmp_path):
    run = tmp_path / "run"
    train(small_config(tiny_model_dir, steps=2, eval_every=2), run)
    config = resume_config(run, {"steps": 3})
    train(config, run, resume=True)
    assert json.loads((run / "config.json").read_text())["steps"] == 3
    assert open_run(run).state.total_steps == 3  # the dashboard's "step n/3"
    assert read_jsonl(run / "metrics.jsonl")[-1]["step"] == 3


# --------------------------------------------------------------------------- one rubric for both directions


def test_a_custom_forward_rubric_scores_reverse_runs_too(tmp_path, tiny_model_dir):
    custom = tmp_path / "rubric.txt"
    custom.write_text("#format: completion\nQuestion: {question}\nReply: {reply}\nHow much feeling? Score:")
    rev = small_config(tiny_model_dir, direction="reverse", reverse_reward="complement", judge_template=str(custom))
    templates = trainer.load_templates(rev)
    assert templates["forward"].text == custom.read_text().split("\n", 1)[1].strip()
    assert templates["forward"].direction == "forward" and "reverse" not in templates
    fwd = trainer.load_templates(small_config(tiny_model_dir, judge_template=str(custom)))
    assert fwd["forward"] == templates["forward"]  # the held-out score: the same rubric in both directions


def test_a_reversed_rubric_is_its_own_option(tmp_path, tiny_model_dir):
    custom = tmp_path / "rubric.txt"
    custom.write_text("Rate {reply} to {question}")
    with pytest.raises(HmxError, match="reverse_judge_template"):
        trainer.load_templates(small_config(tiny_model_dir, direction="reverse", reverse_reward="rubric",
                                            judge_template=str(custom)))
    reversed_file = tmp_path / "reversed.txt"
    reversed_file.write_text("How machine-like is {reply} (asked: {question})?")
    t = trainer.load_templates(small_config(tiny_model_dir, direction="reverse", reverse_reward="mixed",
                                            judge_template=str(custom), reverse_judge_template=str(reversed_file)))
    assert t["forward"].text == "Rate {reply} to {question}" and t["reverse"].direction == "reverse"
    assert t["reverse"].text == reversed_file.read_text()
    shipped = trainer.load_templates(small_config(tiny_model_dir, direction="reverse", reverse_reward="rubric"))
    assert "reverse" in shipped and shipped["reverse"].direction == "reverse"  # fewshot: its shipped reverse


def test_small_calibration_file_is_part_of_the_shipped_set():
    shipped = {json.dumps(json.loads(line), sort_keys=True) for line in
               (trainer.load_calibration.__globals__["PROMPTS_DIR"] / "judge_calibration.jsonl").read_text().splitlines()
               if line.strip()}
    small = [json.dumps(json.loads(line), sort_keys=True) for line in SMALL_CALIBRATION.read_text().splitlines()]
    assert len(small) == 9 and set(small) <= shipped
