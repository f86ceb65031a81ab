"""Load a model and tokenizer ready to run on this machine.

``load_model(spec, adapter=...)`` resolves the model (see ``registry``), loads
it with mlx-lm, dequantizes to fp32 on the cpu path (see ``backend.backend_path``) and
applies a LoRA adapter saved in mlx-lm's format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import HmxError
from .registry import ResolvedModel, resolve_model


@dataclass
class LoadedModel:
    model: Any  # mlx.nn.Module
    tokenizer: Any  # mlx_lm TokenizerWrapper
    resolved: ResolvedModel
    config: dict = field(default_factory=dict)
    dtype: str = "float32"
    quantized: bool = False  # whether the weights in memory are quantized
    adapter: Path | None = None

    @property
    def name(self) -> str:
        return self.resolved.alias or self.resolved.repo or str(self.resolved.path)


def is_quantized(model) -> bool:
    """Whether any of the model's layers holds quantized weights (QuantizedLinear/Embedding)."""
    return any(hasattr(m, "scales") for _, m in model.named_modules())


def to_compute_dtype(model) -> tuple[str, bool]:
    """On the cpu path (``backend.backend_path``) dequantize, cast to fp32 and use ``cpu_kernels``;
    on the metal path keep the weights as stored and mlx-lm's modules as they are."""
    import mlx.core as mx
    from mlx_lm.utils import dequantize_model

    from .backend import announce_once, cpu_speedups, describe_cpu_mode, describe_metal_path_on_cpu, uses_metal
    from .cpu_kernels import install, uninstall

    if not cpu_speedups():
        uninstall(model)  # a cpu-path model of the same architecture may have swapped them earlier in this process
        if mx.default_device() == mx.cpu:
            announce_once(describe_metal_path_on_cpu())
        return "as stored", is_quantized(model)
    dequantize_model(model)
    model.set_dtype(mx.float32)
    install(model)
    if not uses_metal():
        announce_once(describe_cpu_mode())
    return "float32", False


def read_adapter_config(adapter: Path) -> dict:
    if not adapter.is_dir():
        raise HmxError(f"adapter folder not found: {adapter}. Pass the folder that holds adapters.safetensors.")
    cfg_path, weights = adapter / "adapter_config.json", adapter / "adapters.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise HmxError(
            f"{adapter} is not an mlx-lm adapter folder (needs adapter_config.json and adapters.safetensors). "
            "Pass a checkpoint folder written by `hmx-mlx train` or `mlx_lm.lora`."
        )
    try:
        return json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise HmxError(f"{cfg_path} is not valid JSON ({e}). Restore it from the run folder.")


def apply_adapter(model, adapter: Path, model_name: str) -> None:
    """Attach LoRA layers as the adapter config says and load its weights, checking every
    tensor matches the model (mlx-lm's own loader ignores names it does not find)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    config = read_adapter_config(adapter)
    weights = mx.load(str(adapter / "adapters.safetensors"))
    try:
        model.freeze()
        linear_to_lora_layers(
            model,
            config["num_layers"],
            config["lora_parameters"],
            use_dora=config.get("fine_tune_type") == "dora",
        )
    except (KeyError, ValueError, IndexError) as e:
        raise HmxError(f"adapter {adapter} cannot be applied to {model_name}: {e}. Use the model it was trained on.")
    params = dict(tree_flatten(model.parameters()))
    for name, value in weights.items():
        if name not in params or params[name].shape != value.shape:
            trained_on = config.get("model", "another model")
            raise HmxError(
                f"adapter {adapter} does not match model {model_name}: tensor {name} "
                f"{'is not in the model' if name not in params else f'has shape {value.shape}, model expects {params[name].shape}'}. "
                f"It was trained on {trained_on}; load that model instead."
            )
    model.load_weights(list(weights.items()), strict=False)
    mx.eval(model.parameters())


def load_model(spec: str | None = None, adapter: str | Path | None = None) -> LoadedModel:
    import mlx.core as mx
    from mlx_lm.utils import load_model as mlx_load_model
    from mlx_lm.utils import load_tokenizer

    resolved = resolve_model(spec)
    try:
        model, config = mlx_load_model(resolved.path)
    except ValueError as e:
        raise HmxError(f"cannot load model {resolved.spec} from {resolved.path}: {e}")
    try:
        tokenizer = load_tokenizer(resolved.path, eos_token_ids=config.get("eos_token_id"))
    except Exception as e:
        raise HmxError(
            f"cannot load the tokenizer of {resolved.spec} from {resolved.path} ({type(e).__name__}: {e}). "
            "Check the tokenizer files in that folder."
        )
    dtype, quantized = to_compute_dtype(model)
    loaded = LoadedModel(model, tokenizer, resolved, config, dtype, quantized)
    if adapter is not None:
        loaded.adapter = Path(adapter)
        apply_adapter(model, loaded.adapter, loaded.name)
    model.eval()
    mx.eval(model.parameters())
    return loaded
