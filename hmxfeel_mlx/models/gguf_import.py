"""Turn a llama-architecture GGUF file into an mlx-lm model folder.

MLX reads GGUF natively (``mx.load(path, return_metadata=True)``): Q4_0, Q4_1 and
Q8_0 tensors arrive as MLX affine-quantized triples (weight, scales, biases) and
F16/F32 tensors as plain arrays. What is left to do here:

* rename tensors from llama.cpp names (``blk.N.attn_q``) to mlx-lm names
  (``model.layers.N.self_attn.q_proj``);
* undo llama.cpp's Q/K row permutation: its converter reorders each head's rows
  so that rotary embeddings apply to interleaved pairs (GPT-J style); mlx-lm's
  llama uses the Hugging Face half-split layout. A row permutation commutes with
  MLX's quantization (groups run along the input dimension), so quantized
  weights are permuted without dequantizing;
* write ``config.json`` (with the quantization MLX found), ``tokenizer.json``
  rebuilt with the ``tokenizers`` library from the GGUF vocabulary, merges and
  pre-tokenizer, and ``tokenizer_config.json`` with the chat template and
  special tokens from the metadata.

The folder is written under a temporary name and renamed when complete, so a
failed or interrupted import never leaves a half-written cache entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import HmxError

SUPPORTED_ARCHITECTURES = ("llama",)

# llama.cpp tensor names -> mlx-lm names (suffix .weight / .scales / .biases kept).
_GLOBAL_NAMES = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}

# Pre-tokenizer split patterns, as llama.cpp applies them for each
# ``tokenizer.ggml.pre`` value (llama-vocab.cpp), before the byte-level mapping.
_GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_PRE_TOKENIZER_SPLITS = {
    "gpt2": [_GPT2_REGEX],
    "default": [_GPT2_REGEX],
    "smollm": [r"\p{N}", _GPT2_REGEX],
    "starcoder": [r"\p{N}", _GPT2_REGEX],
    "refact": [r"\p{N}", _GPT2_REGEX],
    "llama-bpe": [
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
        r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    ],
}


def _scalar(meta: dict, key: str, default=None):
    value = meta.get(key, default)
    if hasattr(value, "item"):
        return value.item()
    return value


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """Short sha256 of a file, used to key the conversion cache."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def read_gguf(path: Path) -> tuple[dict, dict]:
    """Load tensors and metadata, turning any read failure into one clear error."""
    import mlx.core as mx

    path = Path(path)
    if not path.is_file():
        raise HmxError(f"GGUF file not found: {path}. Check the path.")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise HmxError(f"cannot read GGUF file {path}: {e.strerror}. Check its permissions.")
    if magic != b"GGUF":
        raise HmxError(
            f"{path} is not a GGUF file (it does not start with the GGUF magic). "
            "Pass a .gguf model file, a model folder, an alias or a Hugging Face repo id."
        )
    try:
        weights, meta = mx.load(str(path), return_metadata=True)
    except Exception as e:  # MLX raises RuntimeError/ValueError with C++ messages
        raise HmxError(
            f"cannot read GGUF file {path} ({e}). The file is corrupt, truncated or uses a "
            "GGUF feature MLX does not read; download it again or convert the model with mlx_lm.convert."
        )
    return weights, meta


def _unpermute_qk(w, n_head: int):
    """Inverse of llama.cpp's ``permute``: rows (H, D/2, 2) -> (H, 2, D/2)."""
    rows = w.shape[0]
    rest = w.shape[1:]
    return w.reshape(n_head, rows // n_head // 2, 2, *rest).swapaxes(1, 2).reshape(rows, *rest)


def convert_weights(weights: dict, n_head: int, n_kv_head: int) -> dict:
    """Rename GGUF tensors to mlx-lm names and undo the Q/K rotary permutation."""
    out = {}
    for name, value in weights.items():
        stem, _, suffix = name.rpartition(".")
        if stem in _GLOBAL_NAMES:
            out[f"{_GLOBAL_NAMES[stem]}.{suffix}"] = value
            continue
        parts = stem.split(".")
        if len(parts) != 3 or parts[0] != "blk" or parts[2] not in _BLOCK_NAMES:
            if stem.startswith("rope_freqs"):
                continue  # llama-3 style rope factors are recomputed from config
            raise HmxError(
                f"unexpected tensor '{name}' in the GGUF file: this importer supports plain "
                "llama-architecture models only. Convert the original model with mlx_lm.convert instead."
            )
        layer, kind = parts[1], parts[2]
        if kind == "attn_q":
            value = _unpermute_qk(value, n_head)
        elif kind == "attn_k":
            value = _unpermute_qk(value, n_kv_head)
        out[f"model.layers.{layer}.{_BLOCK_NAMES[kind]}.{suffix}"] = value
    return out


def build_config(meta: dict, weights: dict) -> dict:
    """An mlx-lm/HF style ``config.json`` for the llama architecture."""
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise HmxError(
            f"GGUF architecture '{arch}' is not supported (supported: {', '.join(SUPPORTED_ARCHITECTURES)}). "
            "Use an MLX model folder or Hugging Face repo for this model instead."
        )
    p = f"{arch}."
    n_embd = int(_scalar(meta, p + "embedding_length"))
    n_head = int(_scalar(meta, p + "attention.head_count"))
    head_dim = int(_scalar(meta, p + "rope.dimension_count", n_embd // n_head))
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": n_embd,
        "num_hidden_layers": int(_scalar(meta, p + "block_count")),
        "intermediate_size": int(_scalar(meta, p + "feed_forward_length")),
        "num_attention_heads": n_head,
        "num_key_value_heads": int(_scalar(meta, p + "attention.head_count_kv", n_head)),
        "head_dim": head_dim,
        "rms_norm_eps": float(_scalar(meta, p + "attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_theta": float(_scalar(meta, p + "rope.freq_base", 10000.0)),
        "max_position_embeddings": int(_scalar(meta, p + "context_length", 2048)),
        "vocab_size": len(meta["tokenizer.ggml.tokens"]),
        "tie_word_embeddings": "output.weight" not in weights,
        "bos_token_id": _scalar(meta, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _scalar(meta, "tokenizer.ggml.eos_token_id"),
    }
    quantized = [k for k in weights if k.endswith(".scales")]
    if quantized:
        # The default is the most common setting; mlx-lm infers the others
        # (e.g. a Q8_0 embedding beside Q4_1 layers) from each tensor's shape.
        name = next((k for k in quantized if k.startswith("blk.")), quantized[0])[: -len(".scales")]
        packed, scales = weights[name + ".weight"], weights[name + ".scales"]
        group_size = 32
        in_dims = scales.shape[-1] * group_size
        bits = packed.shape[-1] * 32 // in_dims
        config["quantization"] = {"group_size": group_size, "bits": bits, "mode": "affine"}
    return config


def build_tokenizer(meta: dict):
    """A ``tokenizers.Tokenizer`` equal to the GGUF's BPE vocabulary and pre-tokenizer."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    kind = meta.get("tokenizer.ggml.model")
    if kind != "gpt2":
        raise HmxError(
            f"GGUF tokenizer type '{kind}' is not supported (only byte-level BPE, 'gpt2'). "
            "Use the model's Hugging Face repo or MLX folder instead."
        )
    pre = meta.get("tokenizer.ggml.pre", "default")
    if pre not in _PRE_TOKENIZER_SPLITS:
        raise HmxError(
            f"GGUF pre-tokenizer '{pre}' is not supported (known: {', '.join(sorted(_PRE_TOKENIZER_SPLITS))}). "
            "Use the model's Hugging Face repo or MLX folder instead."
        )
    tokens = list(meta["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in _PRE_TOKENIZER_SPLITS[pre]]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    # Token types 3 (control) and 4 (user-defined) are never split by the BPE.
    types = meta.get("tokenizer.ggml.token_type")
    types = types.tolist() if hasattr(types, "tolist") else [1] * len(tokens)
    special = [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == 3]
    user = [AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == 4]
    tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)
    bos_id = _scalar(meta, "tokenizer.ggml.bos_token_id")
    if _scalar(meta, "tokenizer.ggml.add_bos_token", False) and bos_id is not None:
        bos = tokens[bos_id]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def build_tokenizer_config(meta: dict) -> dict:
    tokens = meta["tokenizer.ggml.tokens"]

    def token(key):
        i = _scalar(meta, f"tokenizer.ggml.{key}_token_id")
        return tokens[i] if i is not None and 0 <= i < len(tokens) else None

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "add_bos_token": bool(_scalar(meta, "tokenizer.ggml.add_bos_token", False)),
        "add_eos_token": bool(_scalar(meta, "tokenizer.ggml.add_eos_token", False)),
        "model_max_length": int(_scalar(meta, f"{meta.get('general.architecture')}.context_length", 2048)),
    }
    for key in ("bos", "eos", "unknown", "padding"):
        name = {"unknown": "unk_token", "padding": "pad_token"}.get(key, f"{key}_token")
        if (value := token(key)) is not None:
            config[name] = value
    if template := meta.get("tokenizer.chat_template"):
        config["chat_template"] = template
    return config


def _atomic_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def import_gguf(gguf_path: Path, cache_dir: Path) -> Path:
    """Convert ``gguf_path`` into ``cache_dir/<stem>-<sha>/`` once; return that folder."""
    import mlx.core as mx

    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise HmxError(f"GGUF file not found: {gguf_path}. Check the path.")
    target = Path(cache_dir) / f"{gguf_path.stem}-{file_digest(gguf_path)}"
    if (target / "config.json").is_file():
        return target

    weights, meta = read_gguf(gguf_path)
    config = build_config(meta, weights)
    converted = convert_weights(weights, config["num_attention_heads"], config["num_key_value_heads"])
    tokenizer = build_tokenizer(meta)

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        mx.save_safetensors(str(tmp / "model.safetensors"), converted, metadata={"format": "mlx"})
        _atomic_json(tmp / "config.json", config)
        tokenizer.save(str(tmp / "tokenizer.json"))
        _atomic_json(tmp / "tokenizer_config.json", build_tokenizer_config(meta))
        _atomic_json(tmp / "source.json", {"gguf": str(gguf_path.resolve()), "name": meta.get("general.name")})
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent import that won
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
