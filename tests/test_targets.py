"""TARGET resolution (model or run folder) and the `heldout` command on a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hmxfeel_mlx.cli import cli
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.targets import resolve_target
from hmxfeel_mlx.training.config import resolve_config
from hmxfeel_mlx.training.trainer import train

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


def test_checkpoints_are_listed_by_step_number(tmp_path):
    run = tmp_path / "run"
    for step in (5, 10, 15, 20):
        (run / "checkpoints" / f"step_{step}").mkdir(parents=True)
        (run / "checkpoints" / f"step_{step}" / "adapters.safetensors").write_bytes(b"")
    (run / "checkpoints" / "step_25").mkdir()  # no adapters: not a checkpoint
    (run / "config.json").write_text(json.dumps({"model": "smollm2-135m", "direction": "forward"}))
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(HmxError, match=r"Available: step_5, step_10, step_15, step_20\.$"):
        resolve_target(str(run), "step_9")
    with pytest.raises(HmxError, match=r"no selected checkpoint yet.*\(available: step_5, step_10, step_15, step_20\)"):
        resolve_target(str(run))
    (run / "metrics.jsonl").unlink()  # config.json only: a run whose first step is not written yet
    with pytest.raises(HmxError, match="is a run folder with no step written yet"):
        resolve_target(str(run))


def test_generate_and_chat_on_a_run_folder(tiny_run, tiny_model_dir):
    summary = json.loads((tiny_run / "summary.json").read_text())
    selected = tiny_run / "checkpoints" / f"step_{summary['selected_step']}"
    args = ["-p", "How do you feel?", "--max-new-tokens", "6", "--temperature", "1", "--seed", "1"]
    by_run = CliRunner().invoke(cli, ["generate", str(tiny_run), *args])
    by_adapter = CliRunner().invoke(cli, ["generate", str(tiny_model_dir), "--adapter", str(selected), *args])
    assert by_run.exit_code == 0, by_run.output
    assert by_run.output == by_adapter.output  # a run folder means its selected checkpoint
    step1 = CliRunner().invoke(cli, ["generate", str(tiny_run), "--checkpoint", "step_1", *args])
    step1_adapter = CliRunner().invoke(cli, ["generate", str(tiny_model_dir), "--adapter",
                                             str(tiny_run / "checkpoints" / "step_1"), *args])
    assert step1.exit_code == 0 and step1.output == step1_adapter.output
    both = CliRunner().invoke(cli, ["generate", str(tiny_run), "--adapter", str(selected), *args])
    assert both.exit_code == 1 and "is a run folder, which names its own adapter" in both.output
    chat = CliRunner().invoke(cli, ["chat", str(tiny_run), "--checkpoint", "step_2", "--max-new-tokens", "3"],
                              input="hello\n")
    assert chat.exit_code == 0, chat.output
    assert f"Chatting with {tiny_run.name}/step_2." in chat.stderr


def test_heldout_shows_its_progress_on_stderr(tiny_run):
    result = CliRunner().invoke(cli, ["heldout", str(tiny_run), "--checkpoint", "step_1", "--samples", "1"])
    assert result.exit_code == 0, result.output
    progress = result.stderr.splitlines()
    assert progress[0].startswith("loading the model")
    for part in ("held-out evaluation: sampling", "held-out evaluation: judging", "held-out evaluation: KL to the base"):
        assert any(line.startswith(part) for line in progress), progress
    assert result.stdout.startswith(f"{tiny_run.name}/step_1: held-out score ")  # the result alone on stdout


def test_judge_check_reads_as_many_words_as_the_presets_runs(tiny_model_dir, monkeypatch):
    # a run's judge reads its preset's judge_words, and fits its scale on them: judge-check must too
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training import config as config_module
    from hmxfeel_mlx.training.calibration import judge_check
    from hmxfeel_mlx.training.heldout import load_template
    from hmxfeel_mlx.training.prompts import load_calibration

    monkeypatch.setattr(config_module, "model_preset", lambda model: {"judge_words": 3})
    args = ["judge-check", str(tiny_model_dir), "--mode", "logprob", "--calibration", SMALL_CALIBRATION,
            "--format", "json"]
    loaded, rows = load_model(str(tiny_model_dir)), load_calibration(Path(SMALL_CALIBRATION))
    direct = {w: judge_check(loaded.model, loaded.tokenizer, load_template("forward", ""), rows, "logprob",
                             max_words=w).scale.slope for w in (0, 3)}
    assert direct[0] != pytest.approx(direct[3], rel=1e-6)  # the test can tell the two apart
    preset = CliRunner().invoke(cli, args)
    assert preset.exit_code == 0, preset.output
    assert json.loads(preset.output)[0]["slope"] == pytest.approx(direct[3], rel=1e-6)
    whole = CliRunner().invoke(cli, [*args, "--words", "0"])
    assert json.loads(whole.output)[0]["slope"] == pytest.approx(direct[0], rel=1e-6)
    table = CliRunner().invoke(cli, args[:-2])
    assert "first 3 words" in table.output


def test_judge_check_table_is_whole_when_piped_and_has_formats(tiny_model_dir):
    args = ["judge-check", str(tiny_model_dir), "--mode", "logprob", "--calibration", SMALL_CALIBRATION]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    header = next(line for line in table.output.splitlines() if "ROC-AUC" in line)
    for column in ("Spearman", "raw human", "cal machine", "cal RMSE", "unparsed", "seconds"):
        assert column in header
    assert "…" not in table.output and "map (logistic" in table.output
    rows = json.loads(CliRunner().invoke(cli, [*args, "--format", "json"]).output)
    assert rows[0]["mode"] == "logprob" and {"ROC-AUC", "Spearman", "slope", "intercept", "map"} <= set(rows[0])
    md = CliRunner().invoke(cli, [*args, "--format", "markdown"]).output.splitlines()
    assert md[0].startswith("| mode | ROC-AUC | Spearman |") and md[2].startswith("| logprob |")
    csv_lines = CliRunner().invoke(cli, [*args, "--format", "csv"]).output.splitlines()
    assert csv_lines[0].startswith("mode,ROC-AUC,Spearman") and len(csv_lines) == 2
