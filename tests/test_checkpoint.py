"""Checkpoints: save, list, load (exact resume) and a failed save on a full disk."""

from __future__ import annotations

import errno
import json
import os
import shutil

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import pytest
from mlx.utils import tree_flatten
from mlx_lm.models import llama
from mlx_lm.tuner.utils import linear_to_lora_layers

import hmxfeel_mlx.training.checkpoint as checkpoint
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.runfolder import RunPaths
from hmxfeel_mlx.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint

MODEL_CONFIG = {
    "model_type": "llama",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "vocab_size": 50,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
}
LORA = {"rank": 2, "scale": 1.0, "dropout": 0.0}
# LoRA on the last block only: the first block stays without trainable parameters,
# so the optimizer state holds an empty entry for it (a list with a hole).
ADAPTER_CONFIG = {"fine_tune_type": "lora", "num_layers": 1, "lora_parameters": LORA, "model": "tiny"}
STATE = {"cursor": {"epoch": 1, "index": 4}, "seed": 0, "rng": "derived from (seed, step)"}
TOKENS = mx.array([[1, 5, 9, 13, 17, 21], [2, 4, 8, 16, 32, 3]])


def make_model(lora_seed: int = 0):
    """Same frozen base weights every time; the LoRA init depends on ``lora_seed``."""
    mx.random.seed(1234)
    model = llama.Model(llama.ModelArgs.from_dict(MODEL_CONFIG))
    model.freeze()
    mx.random.seed(lora_seed)
    linear_to_lora_layers(model, 1, dict(LORA))
    mx.eval(model.parameters())
    return model


def make_optimizer():
    return optim.AdamW(learning_rate=1e-2, weight_decay=0.01)


def loss_fn(model):
    logits = model(TOKENS[:, :-1])
    return nn.losses.cross_entropy(logits, TOKENS[:, 1:]).mean()


def train_step(model, optimizer):
    _, grads = nn.value_and_grad(model, loss_fn)(model)
    optimizer.update(model, grads)
    mx.eval(model.parameters(), optimizer.state)


def flat(tree) -> dict:
    return dict(tree_flatten(tree))


def assert_trees_equal(a, b):
    fa, fb = flat(a), flat(b)
    assert sorted(fa) == sorted(fb)
    assert fa  # not vacuous
    for key in fa:
        assert fa[key].dtype == fb[key].dtype, key
        assert fa[key].shape == fb[key].shape, key
        assert mx.array_equal(fa[key], fb[key]).item(), key


def trees_equal(a, b) -> bool:
    fa, fb = flat(a), flat(b)
    return sorted(fa) == sorted(fb) and all(mx.array_equal(fa[k], fb[k]).item() for k in fa)


@pytest.fixture()
def trained():
    model, optimizer = make_model(0), make_optimizer()
    train_step(model, optimizer)
    train_step(model, optimizer)
    return model, optimizer


@pytest.fixture()
def paths(tmp_path):
    return RunPaths(tmp_path / "run")


def hidden_entries(paths):
    return [p.name for p in paths.checkpoints.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------- save and load


def test_save_writes_complete_folder(paths, trained):
    model, optimizer = trained
    folder = save_checkpoint(paths, 3, model, optimizer, ADAPTER_CONFIG, STATE)
    assert folder == paths.checkpoint(3)
    assert sorted(os.listdir(folder)) == [
        "adapter_config.json",
        "adapters.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]
    assert json.loads((folder / "adapter_config.json").read_text()) == ADAPTER_CONFIG
    assert json.loads((folder / "state.json").read_text()) == {"step": 3, **STATE}
    adapters = mx.load(str(folder / "adapters.safetensors"))
    assert set(adapters) == set(flat(model.trainable_parameters()))
    assert all(".lora_a" in k or ".lora_b" in k for k in adapters)
    assert all(k.startswith("model.layers.1.") for k in adapters)  # only the last block has LoRA
    opt = mx.load(str(folder / "optimizer.safetensors"))
    assert opt["step"].item() == 2
    assert hidden_entries(paths) == []


def test_load_restores_parameters_and_optimizer_exactly(paths, trained):
    model, optimizer = trained
    save_checkpoint(paths, 3, model, optimizer, ADAPTER_CONFIG, STATE)

    fresh, fresh_opt = make_model(lora_seed=99), make_optimizer()
    assert not trees_equal(fresh.trainable_parameters(), model.trainable_parameters())  # the test can fail
    state = load_checkpoint(paths.checkpoint(3), fresh, fresh_opt)

    assert state == {"step": 3, **STATE}
    assert_trees_equal(fresh.trainable_parameters(), model.trainable_parameters())
    assert_trees_equal(fresh.parameters(), model.parameters())
    assert_trees_equal(fresh_opt.state, optimizer.state)
    assert fresh_opt.state["step"].item() == 2
    assert "learning_rate" in fresh_opt.state

    # The next step continues identically from the loaded state.
    train_step(model, optimizer)
    train_step(fresh, fresh_opt)
    assert_trees_equal(fresh.trainable_parameters(), model.trainable_parameters())
    assert_trees_equal(fresh_opt.state, optimizer.state)
    assert fresh_opt.state["step"].item() == 3


def test_resumed_step_differs_from_a_fresh_optimizer(paths, trained):
    # Guard for the test above: without the optimizer state the next step would differ.
    model, optimizer = trained
    save_checkpoint(paths, 3, model, optimizer, ADAPTER_CONFIG, STATE)
    fresh, fresh_opt = make_model(lora_seed=99), make_optimizer()
    load_checkpoint(paths.checkpoint(3), fresh, fresh_opt)
    other, other_opt = make_model(lora_seed=99), make_optimizer()
    other.load_weights(list(mx.load(str(paths.checkpoint(3) / "adapters.safetensors")).items()), strict=False)
    train_step(fresh, fresh_opt)
    train_step(other, other_opt)
    assert not trees_equal(fresh.trainable_parameters(), other.trainable_parameters())


def test_load_without_optimizer_file(paths, trained):
    model, optimizer = trained
    folder = save_checkpoint(paths, 2, model, optimizer, ADAPTER_CONFIG, STATE)
    (folder / "optimizer.safetensors").unlink()
    fresh, fresh_opt = make_model(lora_seed=7), make_optimizer()
    state = load_checkpoint(folder, fresh, fresh_opt)
    assert state["step"] == 2
    assert_trees_equal(fresh.trainable_parameters(), model.trainable_parameters())
    assert fresh_opt.state["step"].item() == 0  # untouched


def test_saving_same_step_twice_replaces_it_whole(paths, trained):
    model, optimizer = trained
    folder = save_checkpoint(paths, 3, model, optimizer, ADAPTER_CONFIG, {"cursor": {"epoch": 0, "index": 1}})
    (folder / "leftover.txt").write_text("from the first save")
    first = {k: mx.array(v) for k, v in mx.load(str(folder / "adapters.safetensors")).items()}

    train_step(model, optimizer)
    folder2 = save_checkpoint(paths, 3, model, optimizer, ADAPTER_CONFIG, {"cursor": {"epoch": 0, "index": 2}})
    assert folder2 == folder
    assert not (folder / "leftover.txt").exists()
    assert json.loads((folder / "state.json").read_text()) == {"step": 3, "cursor": {"epoch": 0, "index": 2}}
    second = mx.load(str(folder / "adapters.safetensors"))
    assert_trees_equal(second, flat(model.trainable_parameters()))
    assert not trees_equal(first, second)
    assert mx.load(str(folder / "optimizer.safetensors"))["step"].item() == 3
    assert list_checkpoints(paths) == [folder]
    assert hidden_entries(paths) == []


# --------------------------------------------------------------------------- listing


def test_list_checkpoints_filters_and_sorts(paths, trained):
    model, optimizer = trained
    for step in (10, 2, 9):
        save_checkpoint(paths, step, model, optimizer, ADAPTER_CONFIG, STATE)
    ck = paths.checkpoints
    # A hidden temporary folder, even a complete-looking one, is not a checkpoint.
    shutil.copytree(ck / "step_9", ck / ".step_5.ab12cd")
    # Incomplete folders: no state.json, or no adapters.
    shutil.copytree(ck / "step_9", ck / "step_7")
    (ck / "step_7" / "state.json").unlink()
    shutil.copytree(ck / "step_9", ck / "step_8")
    (ck / "step_8" / "adapters.safetensors").unlink()
    # Names that are not step_N folders.
    shutil.copytree(ck / "step_9", ck / "step_x")
    shutil.copytree(ck / "step_9", ck / "best")
    (ck / "step_11").write_text("a file, not a folder")

    assert list_checkpoints(paths) == [ck / "step_2", ck / "step_9", ck / "step_10"]
    assert latest_checkpoint(paths) == ck / "step_10"


def test_list_checkpoints_empty(paths):
    assert list_checkpoints(paths) == []
    assert latest_checkpoint(paths) is None
    paths.checkpoints.mkdir(parents=True)
    (paths.checkpoints / "step_1").mkdir()  # empty: incomplete
    assert list_checkpoints(paths) == []
    assert latest_checkpoint(paths) is None


# --------------------------------------------------------------------------- failed saves


def test_disk_full_keeps_previous_checkpoint(paths, trained, monkeypatch):
    model, optimizer = trained
    save_checkpoint(paths, 3, model, optimizer, ADAPTER_CONFIG, STATE)
    saved_params = flat(model.trainable_parameters())
    saved_opt = flat(optimizer.state)
    train_step(model, optimizer)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.mx, "save_safetensors", full)
    with pytest.raises(HmxError) as excinfo:
        save_checkpoint(paths, 6, model, optimizer, ADAPTER_CONFIG, STATE)
    monkeypatch.undo()

    msg = excinfo.value.message
    assert "step_6" in msg
    assert "the disk is full" in msg
    assert "checkpoint step_3 is intact" in msg
    assert f"--resume {paths.root}" in msg

    assert not paths.checkpoint(6).exists()
    assert hidden_entries(paths) == []
    assert list_checkpoints(paths) == [paths.checkpoint(3)]

    fresh, fresh_opt = make_model(lora_seed=5), make_optimizer()
    state = load_checkpoint(paths.checkpoint(3), fresh, fresh_opt)
    assert state == {"step": 3, **STATE}
    assert_trees_equal(fresh.trainable_parameters(), saved_params)
    assert_trees_equal(fresh_opt.state, saved_opt)


def test_failure_after_partial_write_removes_temp_folder(paths, trained, monkeypatch):
    # The adapters are written, then the optimizer file fails (another errno).
    model, optimizer = trained
    real_save = mx.save_safetensors
    calls = []

    def second_call_fails(path, arrays, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        return real_save(path, arrays, *args, **kwargs)

    monkeypatch.setattr(checkpoint.mx, "save_safetensors", second_call_fails)
    with pytest.raises(HmxError) as excinfo:
        save_checkpoint(paths, 4, model, optimizer, ADAPTER_CONFIG, STATE)
    monkeypatch.undo()
    assert len(calls) == 2
    msg = excinfo.value.message
    assert "Input/output error" in msg
    assert "disk is full" not in msg
    assert "no earlier checkpoint exists" in msg
    assert os.listdir(paths.checkpoints) == []


def test_other_exceptions_propagate_and_clean_up(paths, trained, monkeypatch):
    model, optimizer = trained

    def broken(*args, **kwargs):
        raise RuntimeError("mlx failure")

    monkeypatch.setattr(checkpoint.mx, "save_safetensors", broken)
    with pytest.raises(RuntimeError, match="mlx failure"):
        save_checkpoint(paths, 1, model, optimizer, ADAPTER_CONFIG, STATE)
    monkeypatch.undo()
    assert os.listdir(paths.checkpoints) == []


def test_a_temporary_folder_left_by_a_killed_write_is_removed_by_the_next_save(paths, trained):
    model, optimizer = trained
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    stale = paths.checkpoints / ".step_1.k1lled"  # what a SIGKILL between write and rename leaves
    stale.mkdir()
    (stale / "adapter_config.json").write_text("{}")
    save_checkpoint(paths, 2, model, optimizer, ADAPTER_CONFIG, STATE)
    assert hidden_entries(paths) == [] and [p.name for p in list_checkpoints(paths)] == ["step_2"]
