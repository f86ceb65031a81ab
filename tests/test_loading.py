"""Loading on this backend (fp32 on CPU) and LoRA adapters in mlx-lm's format."""

from __future__ import annotations

import json

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.models.loading import load_model

LORA = {"num_layers": 2, "lora_parameters": {"rank": 4, "scale": 10.0, "dropout": 0.0}, "fine_tune_type": "lora"}


def save_adapter(model, folder, config=LORA):
    """Save a model's trainable (LoRA) parameters the way mlx_lm.lora does."""
    folder.mkdir(parents=True)
    weights = dict(tree_flatten(model.trainable_parameters()))
    mx.save_safetensors(str(folder / "adapters.safetensors"), weights)
    (folder / "adapter_config.json").write_text(json.dumps(config))


def test_quantized_folder_is_dequantized_to_fp32_on_cpu(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    assert loaded.dtype == "float32" and not loaded.quantized
    params = dict(tree_flatten(loaded.model.parameters()))
    assert "model.layers.0.self_attn.q_proj.scales" not in params
    assert all(v.dtype == mx.float32 for v in params.values())


def test_adapter_round_trip_changes_outputs(tiny_model_dir, tmp_path):
    from mlx_lm.tuner.utils import linear_to_lora_layers

    base = load_model(str(tiny_model_dir))
    base.model.freeze()
    linear_to_lora_layers(base.model, LORA["num_layers"], LORA["lora_parameters"])
    # lora_b starts at zero; give it values so the adapter changes the function.
    updates = [(n, mx.full(p.shape, 0.01)) for n, p in tree_flatten(base.model.trainable_parameters()) if n.endswith("lora_b")]
    base.model.load_weights(updates, strict=False)
    save_adapter(base.model, tmp_path / "adapter")

    x = mx.array([[5, 6, 7, 8]])
    with_adapter = load_model(str(tiny_model_dir), adapter=tmp_path / "adapter")
    plain = load_model(str(tiny_model_dir))
    assert mx.allclose(with_adapter.model(x), base.model(x), atol=1e-5)
    assert float(mx.abs(with_adapter.model(x) - plain.model(x)).max()) > 1e-4


def test_adapter_for_another_model_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "alien"
    folder.mkdir()
    mx.save_safetensors(
        str(folder / "adapters.safetensors"),
        {"model.layers.1.self_attn.q_proj.lora_a": mx.zeros((576, 8)), "model.layers.1.self_attn.q_proj.lora_b": mx.zeros((8, 576))},
    )
    (folder / "adapter_config.json").write_text(json.dumps({**LORA, "model": "smollm2-135m"}))
    with pytest.raises(HmxError, match="does not match model .* trained on smollm2-135m"):
        load_model(str(tiny_model_dir), adapter=folder)


def test_adapter_folder_must_exist_and_be_complete(tiny_model_dir, tmp_path):
    with pytest.raises(HmxError, match="adapter folder not found"):
        load_model(str(tiny_model_dir), adapter=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HmxError, match="not an mlx-lm adapter folder"):
        load_model(str(tiny_model_dir), adapter=tmp_path / "empty")
