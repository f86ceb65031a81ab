"""GGUF import: exact on a synthetic llama GGUF, right on the real embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from conftest import CHATML, build_tiny_model

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.models.gguf_import import import_gguf

GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
}


def llamacpp_permute(w: mx.array, n_head: int) -> mx.array:
    """llama.cpp's convert_hf_to_gguf permute (HF half-split rotary -> interleaved)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_gguf(folder: Path, path: Path, arch: str = "llama") -> Path:
    """Write the fp32 tiny model of ``folder`` as a llama.cpp-style GGUF file."""
    config = json.loads((folder / "config.json").read_text())
    weights = mx.load(str(folder / "model.safetensors"))
    tensors = {}
    for name, w in weights.items():
        if name == "model.embed_tokens.weight":
            tensors["token_embd.weight"] = w
        elif name == "model.norm.weight":
            tensors["output_norm.weight"] = w
        else:
            _, _, layer, *rest = name.split(".")
            kind = GGUF_NAMES[".".join(rest[:-1])]
            if kind == "attn_q":
                w = llamacpp_permute(w, config["num_attention_heads"])
            elif kind == "attn_k":
                w = llamacpp_permute(w, config["num_key_value_heads"])
            tensors[f"blk.{layer}.{kind}.weight"] = w
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
    added = {t["id"]: t["content"] for t in tok["added_tokens"]}
    tokens = [added.get(i, t) for t, i in vocab]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    u32 = lambda v: mx.array(v, dtype=mx.uint32)  # noqa: E731
    meta = {
        "general.architecture": arch,
        "general.name": "tiny",
        f"{arch}.embedding_length": u32(config["hidden_size"]),
        f"{arch}.block_count": u32(config["num_hidden_layers"]),
        f"{arch}.feed_forward_length": u32(config["intermediate_size"]),
        f"{arch}.attention.head_count": u32(config["num_attention_heads"]),
        f"{arch}.attention.head_count_kv": u32(config["num_key_value_heads"]),
        f"{arch}.attention.layer_norm_rms_epsilon": mx.array(config["rms_norm_eps"], dtype=mx.float32),
        f"{arch}.rope.freq_base": mx.array(config["rope_theta"], dtype=mx.float32),
        f"{arch}.context_length": u32(512),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.token_type": mx.array([3 if i in added else 1 for i in range(len(tokens))], dtype=mx.int32),
        "tokenizer.ggml.bos_token_id": u32(1),
        "tokenizer.ggml.eos_token_id": u32(2),
        "tokenizer.ggml.padding_token_id": u32(2),
        "tokenizer.chat_template": CHATML,
    }
    mx.save_gguf(str(path), tensors, meta)
    return path


@pytest.fixture(scope="module")
def fp32_tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("fp32") / "tiny", quantize=False)


def test_synthetic_gguf_imports_to_the_same_model(fp32_tiny, tmp_path):
    """Renaming + Q/K un-permutation must give exactly the original network."""
    from mlx_lm import load

    gguf = write_tiny_gguf(fp32_tiny, tmp_path / "tiny.gguf")
    out = import_gguf(gguf, tmp_path / "cache")
    config = json.loads((out / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and "quantization" not in config
    original, tok_a = load(str(fp32_tiny))
    imported, tok_b = load(str(out))
    ids = tok_a.encode("How do you feel today? I feel happy 123.")
    assert ids == tok_b.encode("How do you feel today? I feel happy 123.")
    x = mx.array([ids])
    np.testing.assert_allclose(np.array(original(x)), np.array(imported(x)), rtol=1e-5, atol=1e-5)
    assert tok_b.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )


def test_without_unpermute_the_model_differs(fp32_tiny, tmp_path, monkeypatch):
    """The permutation matters: skipping it changes the logits (so the test above is not vacuous)."""
    from mlx_lm import load

    import hmxfeel_mlx.models.gguf_import as gi

    monkeypatch.setattr(gi, "_unpermute_qk", lambda w, n: w)
    out = gi.import_gguf(write_tiny_gguf(fp32_tiny, tmp_path / "t.gguf"), tmp_path / "cache")
    x = mx.array([[5, 6, 7, 8, 9, 10]])
    a, _ = load(str(fp32_tiny))
    b, _ = load(str(out))
    assert float(mx.abs(a(x) - b(x)).max()) > 1e-3


def test_conversion_is_cached(fp32_tiny, tmp_path):
    gguf = write_tiny_gguf(fp32_tiny, tmp_path / "tiny.gguf")
    first = import_gguf(gguf, tmp_path / "cache")
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert import_gguf(gguf, tmp_path / "cache") == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp


def test_corrupt_gguf_is_a_clear_error_and_leaves_no_cache(fp32_tiny, tmp_path):
    good = write_tiny_gguf(fp32_tiny, tmp_path / "tiny.gguf").read_bytes()
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(HmxError, match="corrupt"):
        import_gguf(bad, tmp_path / "cache")
    notgguf = tmp_path / "text.gguf"
    notgguf.write_text("hello")
    with pytest.raises(HmxError, match="not a GGUF file"):
        import_gguf(notgguf, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_wrong_architecture_is_refused(fp32_tiny, tmp_path):
    gguf = write_tiny_gguf(fp32_tiny, tmp_path / "gpt.gguf", arch="gpt2")
    with pytest.raises(HmxError, match="architecture 'gpt2' is not supported"):
        import_gguf(gguf, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# --- the real embedded SmolLM2-135M-Instruct -------------------------------------------------


def greedy(loaded, question: str, max_tokens: int = 24) -> str:
    from hmxfeel_mlx.models.chat import stream_reply

    return "".join(stream_reply(loaded, [{"role": "user", "content": question}], max_tokens=max_tokens))


@pytest.mark.parametrize(
    "question, answer",
    [("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"), ("What is 2 + 3?", "5")],
)
def test_embedded_model_answers_plain_questions(embedded, question, answer):
    assert answer in greedy(embedded, question)


def test_embedded_config_matches_the_gguf(embedded):
    cfg = embedded.config
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (
        30, 576, 9, 3,
    )
    assert cfg["tie_word_embeddings"] is True and cfg["rope_theta"] == 100000.0
    assert embedded.dtype == "float32"


@pytest.mark.parametrize(
    "text",
    ["Hello world", "Digits 0123456789 and 3.14159", "unicode: café, naïve, 日本語, emoji 🙂",
     "<|im_start|>user\nhi<|im_end|>\n", "  leading and   multiple spaces\ttab\nnewline"],
)
def test_embedded_tokenizer_round_trips(embedded, text):
    tok = embedded.tokenizer
    assert tok.decode(tok.encode(text)) == text


def test_embedded_tokenizer_specials_and_digits(embedded):
    tok = embedded.tokenizer
    ids = tok.encode("<|im_start|>assistant<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2  # chat specials are single tokens, never split
    digits = tok.encode("2024")
    assert len(digits) == 4  # the smollm pre-tokenizer splits numbers into single digits
    assert tok.eos_token_ids == {2}


def test_embedded_chat_template_renders_as_declared(embedded):
    from hmxfeel_mlx.models.chat import render_prompt

    text = render_prompt(embedded.tokenizer, [{"role": "user", "content": "Hi there"}])
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
    )
