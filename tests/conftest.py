"""Shared fixtures: a tiny random llama model folder (built offline, in the layout
mlx-lm and the Hugging Face cache use) and the real embedded model; a builder of a
tiny random Qwen3 model, 4-bit, with Qwen3's chat template (``build_tiny_qwen3``)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

# The real benchmark data reaches the tests only through this variable (`make test` sets it to
# ../shared/data when that folder exists); tests that need it are skipped without it.
DATA_ENV = "HMX_MLX_DATA"
BENCH_DATA = Path(os.environ[DATA_ENV]).expanduser() if os.environ.get(DATA_ENV) else None
needs_data = pytest.mark.skipif(
    BENCH_DATA is None or not BENCH_DATA.is_dir(),
    reason=f"needs the real benchmark data: set {DATA_ENV} to its folder (make test does when ../shared/data exists)",
)
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "How do you feel today? I feel happy and curious about the world.",
    "As an AI language model, I do not have feelings or intentions.",
    "The capital of France is Paris. 12345 67890 + - * / = ?",
    "Score: 0 1 2 3 4 5 6 7 8 9 10. I think, I want, I hope, I love music.",
]


def build_tokenizer(folder: Path) -> int:
    """Train a small byte-level BPE tokenizer offline and save it HF-style; return vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|im_end|>",
                "unk_token": "<|endoftext|>",
                "chat_template": CHATML,
                "add_bos_token": False,
            }
        )
    )
    return tok.get_vocab_size()


def build_tiny_model(folder: Path, quantize: bool = True, seed: int = 0) -> Path:
    """A random 2-layer llama in mlx-lm format (4-bit quantized by default, like Hub MLX models)."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    folder.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(folder)
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "max_position_embeddings": 512,
        "eos_token_id": 2,
    }
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    if quantize:
        nn.quantize(model, group_size=32, bits=4)
        config["quantization"] = {"group_size": 32, "bits": 4}
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


QWEN3_TEMPLATE = Path(__file__).with_name("qwen3_chat_template.jinja")
QWEN3_THINK = ["<think>", "</think>"]  # added tokens, not special ones (they survive decoding), as in Qwen3


def build_qwen3_tokenizer(folder: Path) -> int:
    """A small byte-level BPE tokenizer laid out like Qwen3's: ChatML specials, <|im_end|> as EOS,
    no BOS, <|endoftext|> as padding, <think>/</think> as added tokens, Qwen3's chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 20, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN3_THINK])
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": None,
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "unk_token": None,
                "chat_template": QWEN3_TEMPLATE.read_text(),
                "add_bos_token": False,
            }
        )
    )
    return tok.get_vocab_size()


def build_tiny_qwen3(folder: Path, seed: int = 0) -> Path:
    """A random 2-layer Qwen3 (q/k norms, tied embeddings) in mlx-lm format, 4-bit quantized with
    mlx-lm's own ``quantize_model`` (as ``mlx_lm.convert -q`` writes the MLX-community models)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen3
    from mlx_lm.utils import quantize_model

    folder.mkdir(parents=True, exist_ok=True)
    vocab = build_qwen3_tokenizer(folder)
    config = {
        "model_type": "qwen3",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": True,
        "max_position_embeddings": 4096,
        "eos_token_id": 2,
    }
    mx.random.seed(seed)
    model = qwen3.Model(qwen3.ModelArgs.from_dict(config))
    model, config = quantize_model(model, config, group_size=32, bits=4)
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture()
def hub_cache(tmp_path, tiny_model_dir, monkeypatch) -> Path:
    """A Hugging Face hub cache holding the tiny model as repo `tiny-org/tiny-llama`, offline."""
    cache = tmp_path / "hub"
    repo = cache / "models--tiny-org--tiny-llama"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep GGUF conversions of the tests in one session-wide temporary cache."""
    old = os.environ.get("HMX_MLX_CACHE")
    os.environ["HMX_MLX_CACHE"] = str(tmp_path_factory.getbasetemp() / "hmx-cache")
    yield
    if old is None:
        os.environ.pop("HMX_MLX_CACHE", None)
    else:
        os.environ["HMX_MLX_CACHE"] = old


@pytest.fixture(scope="session")
def embedded():
    """The real SmolLM2-135M-Instruct from the embedded wheel, loaded once."""
    from hmxfeel_mlx.models.loading import load_model

    return load_model("smollm2-135m")


@pytest.fixture(params=["mlx kernels", "host kernels"])
def host_kernels(request, monkeypatch):
    """Inference with the host softmax/SwiGLU of ``cpu_kernels`` off, or forced on at every
    size; forced on, the test also fails unless both host paths actually ran."""
    from hmxfeel_mlx.models import cpu_kernels

    on = request.param == "host kernels"
    monkeypatch.setattr(cpu_kernels, "HOST_MIN_ELEMENTS", 0 if on else 1 << 62)
    calls = {"_sdpa_host": 0, "_swiglu_host": 0}
    for name in calls:
        real = getattr(cpu_kernels, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(cpu_kernels, name, counted)
    yield request.param
    if on:
        assert all(calls.values()), f"a host kernel never ran: {calls}"
