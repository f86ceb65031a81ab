"""The command line: help, generate on a model folder, and one-line errors for user mistakes."""

from __future__ import annotations

import subprocess
import sys

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
