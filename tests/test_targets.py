"""TARGET resolution (model or run folder) and the `heldout` command on a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hmxfeel_mlx.cli import cli
from hmxfeel_mlx.config import resolve_config
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.targets import resolve_target
from hmxfeel_mlx.trainer import train

SMALL_CALIBRATION = str(Path(__file__).parent / "calibration_small.jsonl")  # 9 of the 72 labelled replies


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, tmp_path_factory):
    cfg = resolve_config(overrides=dict(model=str(tiny_model_dir), steps=2, eval_every=1, group_size=2,
                                        prompts_per_step=2, max_new_tokens=6, judge_mode="logprob",
                                        judge_template="fewshot", eval_samples=1,
                                        calibration_set=SMALL_CALIBRATION))
    return train(cfg, tmp_path_factory.mktemp("runs") / "run").run_dir


def test_model_target_is_passed_through():
    t = resolve_target("smollm2-135m")
    assert t.model == "smollm2-135m" and t.adapter is None and t.label == "smollm2-135m"
    with pytest.raises(HmxError, match="needs a run folder"):
        resolve_target("smollm2-135m", "step_2")


def test_run_target_uses_the_selected_checkpoint(tiny_run, tiny_model_dir):
    summary = json.loads((tiny_run / "summary.json").read_text())
    t = resolve_target(str(tiny_run))
    assert t.model == str(tiny_model_dir) and t.adapter.name == f"step_{summary['selected_step']}"
    assert resolve_target(str(tiny_run), "step_1").adapter.name == "step_1"
    with pytest.raises(HmxError, match="step_9 not found.*step_1, step_2"):
        resolve_target(str(tiny_run), "step_9")


def test_heldout_command_on_model_and_run(tiny_run, tiny_model_dir, tmp_path):
    out = tmp_path / "h.json"
    result = CliRunner().invoke(cli, ["heldout", str(tiny_run), "--checkpoint", "step_2", "--samples", "2",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text())
    assert record["eval_n"] == 20 and record["adapter"].endswith("step_2") and 0 <= record["eval_score"] <= 10
    assert record["eval_kl"] > 0  # k3: a trained adapter differs from the base
    # the run's stored judge calibration maps the raw scores
    stored = json.loads((tiny_run / "judge_calibration.json").read_text())
    assert record["judge_calibration"]["source"].endswith("judge_calibration.json")
    assert record["judge_calibration"]["slope"] == stored["scale"]["slope"]
    assert 0 <= record["eval_score_cal"] <= 10 and record["eval_kl_temperature"] == 1.0
    base = CliRunner().invoke(cli, ["heldout", str(tiny_model_dir), "--samples", "1", "--calibration",
                                    SMALL_CALIBRATION])
    assert base.exit_code == 0, base.output
    assert "KL to base 0.0000/token" in base.output and "calibrated" in base.output  # the base against itself
