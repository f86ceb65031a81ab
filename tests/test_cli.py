"""The command line: help, generate on a model folder, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hmxfeel_mlx.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("generate", "chat", "models", "doctor"):
        assert command in result.output


def test_help_does_not_import_mlx():
    code = "import sys; from hmxfeel_mlx.cli import main; sys.argv=['hmx-mlx','--help']\ntry: main()\nexcept SystemExit: pass\nprint('mlx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_generate_on_a_model_folder(tiny_model_dir):
    result = run("generate", str(tiny_model_dir), "-p", "hi", "--max-tokens", "5")
    assert result.exit_code == 0, result.output
    assert result.output.endswith("\n")


def test_generate_same_seed_same_text(tiny_model_dir):
    args = ("generate", str(tiny_model_dir), "-p", "hi", "--max-tokens", "8", "--temp", "1.0", "--seed", "3")
    assert run(*args).output == run(*args).output


def test_unknown_model_is_one_line_and_nonzero():
    result = run("generate", "qwen-3-0.6b", "-p", "hi")
    assert result.exit_code == 1
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: unknown model") and "qwen3-0.6b" in lines[0]
    assert "Traceback" not in result.output


def test_bad_adapter_is_a_clear_error(tiny_model_dir, tmp_path):
    result = run("generate", str(tiny_model_dir), "-p", "hi", "--adapter", str(tmp_path / "none"))
    assert result.exit_code == 1 and "adapter folder not found" in result.output


def test_chat_reads_turns_until_eof(tiny_model_dir):
    result = CliRunner().invoke(cli, ["chat", str(tiny_model_dir), "--max-tokens", "3"], input="hello\n/reset\nagain\n")
    assert result.exit_code == 0, result.output
    assert "(history cleared)" in result.output


def test_models_lists_aliases():
    result = run("models")
    assert result.exit_code == 0 and "smollm2-135m" in result.output and "qwen3-8b" in result.output


def test_doctor_reports_blas_and_models():
    result = run("doctor", "--no-bench")
    assert result.exit_code == 0, result.output
    assert "blas" in result.output and "smollm2-135m" in result.output


# --------------------------------------------------------------------------- one name per concept


def test_generate_and_chat_take_the_config_names_and_keep_the_old_ones_hidden(tiny_model_dir):
    for command in ("generate", "chat"):
        help_text = run(command, "--help").output
        assert "--max-new-tokens" in help_text and "--temperature" in help_text and "--checkpoint" in help_text
        assert "--max-tokens" not in help_text and "--temp " not in help_text
    new = run("generate", str(tiny_model_dir), "-p", "hi", "--max-new-tokens", "6", "--temperature", "1.0",
              "--seed", "3")
    old = run("generate", str(tiny_model_dir), "-p", "hi", "--max-tokens", "6", "--temp", "1.0", "--seed", "3")
    assert new.exit_code == 0, new.output
    assert new.output == old.output


def test_train_takes_temperature_like_the_config(tmp_path):
    result = run("train", "--temperature", "0.5", "--max-new-tokens", "32", "--print-config")
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["temperature"] == 0.5 and config["max_new_tokens"] == 32
    assert json.loads(run("train", "--temp", "0.4", "--print-config").output)["temperature"] == 0.4


# --------------------------------------------------------------------------- train: values that were silently wrong


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_print_config_prints_the_resolved_configuration_and_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("train", "smollm2-135m", "--seed", "3", "--set", "beta=0.1", "--print-config")
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["seed"] == 3 and config["beta"] == 0.1
    assert config["judge_template"] == "fewshot" and config["degenerate_floor"] == 0.0  # the model's preset
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("setting, expected", [
    ("steps=1.5", "steps=1.5 is invalid: expected an integer >= 1"),
    ("seed=abc", "seed='abc' is invalid: expected an integer"),
    ("lora_layers=true", "lora_layers=True is invalid"),
    ("scale_rewards=1", "scale_rewards=1 is invalid: expected true or false"),
    ("lora_keys=[\"mlp.down_proj\", 3]", "expected a list of strings or null"),
    ("stepz=3", "unknown --set key(s): stepz"),
])
def test_train_refuses_values_of_the_wrong_type(setting, expected):
    assert expected in one_line_error(run("train", "--set", setting, "--print-config"))


def test_set_null_turns_a_preset_value_off_and_text_stays_text():
    result = run("train", "smollm2-135m", "--set", "degenerate_floor=null", "--set", "system_prompt=true",
                 "--print-config")
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["degenerate_floor"] is None  # the preset's 0.0 would otherwise win
    assert config["system_prompt"] == "true"  # a string setting keeps the text as typed


def test_a_value_given_by_a_flag_and_by_set_is_refused_naming_both():
    line = one_line_error(run("train", "--learning-rate", "1e-3", "--set", "learning_rate=5e-5", "--print-config"))
    assert "learning_rate is given twice: --learning-rate 0.001 and --set learning_rate=5e-5" in line
    line = one_line_error(run("train", "smollm2-135m", "--set", "model=qwen3-0.6b", "--print-config"))
    assert "model is given twice: MODEL smollm2-135m and --set model=qwen3-0.6b" in line


def fake_run(folder) -> str:
    """A run folder as far as resuming needs: its config.json."""
    from hmxfeel_mlx.training.config import resolve_config

    folder.mkdir(parents=True)
    resolve_config(overrides={"steps": 4}).save(folder / "config.json")
    return str(folder)


def test_resume_refuses_a_config_file_a_run_dir_and_any_setting_but_steps(tmp_path):
    run_dir = fake_run(tmp_path / "run")
    other = tmp_path / "other.json"
    other.write_text('{"beta": 0.5}')
    line = one_line_error(run("train", "--resume", run_dir, "--config", str(other)))
    assert f"--config {other} cannot be used with --resume {run_dir}" in line and "keeps its own configuration" in line
    line = one_line_error(run("train", "--resume", run_dir, "--run-dir", str(tmp_path / "x")))
    assert "--run-dir" in line and "cannot be used with --resume" in line
    line = one_line_error(run("train", "--resume", run_dir, "--set", "degenerate_floor=null"))
    assert "cannot change degenerate_floor when resuming" in line  # a null is a change too
    result = run("train", "--resume", run_dir, "--steps", "9", "--print-config")
    assert result.exit_code == 0 and json.loads(result.output)["steps"] == 9
    line = one_line_error(run("train", "--resume", str(tmp_path / "nope")))
    assert "no run there (no config.json)" in line


def test_a_second_train_on_a_run_being_written_is_refused_naming_the_holder(tmp_path):
    from hmxfeel_mlx.errors import HmxError
    from hmxfeel_mlx.locks import folder_lock
    from hmxfeel_mlx.training.trainer import train as run_training

    run_dir = fake_run(tmp_path / "run")
    with folder_lock(run_dir):  # what the first `train` holds for its whole run
        line = one_line_error(run("train", "--resume", run_dir, "--plain"))
        assert f"{run_dir} is being run by pid {os.getpid()}" in line and "hmx-mlx watch" in line
        from hmxfeel_mlx.training.config import resolve_config

        with pytest.raises(HmxError, match="is being run by pid"):  # the library refuses it too, before any work
            run_training(resolve_config(overrides={"steps": 4}), Path(run_dir), resume=True)
    with folder_lock(run_dir):  # released when the holder ends
        pass


def test_the_lock_is_held_by_another_process_too(tmp_path):
    from hmxfeel_mlx.locks import check_unlocked, folder_lock

    run_dir = tmp_path / "run"
    check_unlocked(run_dir)  # no folder: nothing to say
    code = ("import sys, time; from hmxfeel_mlx.locks import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(30)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match=f"is being run by pid {holder.pid}"):
            check_unlocked(run_dir)
    finally:
        holder.kill()
        holder.wait()
    check_unlocked(run_dir)  # the OS released it with the process
    with folder_lock(run_dir):
        pass


# --------------------------------------------------------------------------- messages


def test_a_mistyped_run_folder_is_not_an_unknown_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for args in (["eval", "runs/fwd-typo"], ["generate", "runs/x", "-p", "hi"], ["chat", "./runs/x"],
                 ["heldout", "runs/x/y"]):
        line = one_line_error(run(*args))
        assert line.startswith(f"Error: no such run folder or model: {args[1]}"), line


def test_what_looks_like_a_path():
    from hmxfeel_mlx.targets import looks_like_path

    assert looks_like_path("./x") and looks_like_path("~/x") and looks_like_path("/x") and looks_like_path("a/b/c")
    assert not looks_like_path("mlx-community/Qwen3-0.6B-4bit")  # a Hugging Face repo id (no local folder "mlx-community")
    assert not looks_like_path("smollm2-135m")


def test_eval_axes_are_case_folded():
    from hmxfeel_mlx.evals.runner import parse_axes

    assert parse_axes("MMLU, Gsm8k") == ["mmlu", "gsm8k"]
    assert parse_axes("ALL")[0] == "feeling"


# --------------------------------------------------------------------------- tables that fit where they go


def test_models_and_doctor_tables_are_not_cut_when_piped():
    from hmxfeel_mlx.models.registry import load_aliases

    table = run("models")
    assert table.exit_code == 0 and "…" not in table.output
    assert "available offline" in table.output and max(len(line) for line in table.output.splitlines()) > 80
    rows = json.loads(run("models", "--format", "json").output)
    assert {r["alias"] for r in rows} == set(load_aliases()) and {"source", "location"} <= set(rows[0])
    md = run("models", "--format", "markdown").output.splitlines()
    assert md[0] == "| alias | available offline | source | description |"
    csv_head = run("models", "--format", "csv").output.splitlines()[0]
    assert csv_head.startswith("alias,available offline,source,description")
    doctor = run("doctor", "--no-bench")
    assert doctor.exit_code == 0 and "…" not in doctor.output
    checks = json.loads(run("doctor", "--no-bench", "--format", "json").output)
    assert {"check", "status", "value", "fix"} == set(checks[0]) and any(c["check"] == "blas" for c in checks)


def test_a_mistake_in_the_question_set_leaves_no_run_folder(tmp_path):
    empty = tmp_path / "questions.jsonl"
    empty.write_text("")
    run_dir = tmp_path / "new-run"
    line = one_line_error(run("train", "--set", f"train_questions={empty}", "--run-dir", str(run_dir), "--plain"))
    assert "questions.jsonl" in line
    assert not run_dir.exists()  # refused before the run folder (and its lock file) is made
