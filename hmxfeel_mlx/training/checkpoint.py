"""Checkpoints: LoRA adapters in mlx-lm's format plus everything needed to resume.

``checkpoints/step_N/`` holds ``adapters.safetensors`` + ``adapter_config.json``
(so ``mlx_lm.generate --adapter-path``, ``mlx_lm.fuse`` and ``hmx-mlx generate
--adapter`` accept the folder as it is), ``optimizer.safetensors`` and
``state.json`` (step, data cursor, RNG state). A checkpoint is written into a
hidden temporary folder and renamed into place when complete, so ``step_N``
exists only when whole; a failed write (disk full) removes its temporary folder
and leaves every earlier checkpoint untouched; a temporary folder left by a killed write is removed
by the next save.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

from ..errors import HmxError
from ..runfolder import RunPaths

STEP_DIR = re.compile(r"^step_(\d+)$")


def save_checkpoint(
    paths: RunPaths, step: int, model, optimizer, adapter_config: dict, state: dict
) -> Path:
    target = paths.checkpoint(step)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    for stale in paths.checkpoints.glob(".step_*"):  # a write killed before its rename (one writer: the run lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".step_{step}.", dir=paths.checkpoints))
    try:
        mx.save_safetensors(str(tmp / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
        (tmp / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
        opt_state = dict(tree_flatten(optimizer.state))
        mx.save_safetensors(str(tmp / "optimizer.safetensors"), opt_state)
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if target.exists():  # a re-run of the same step after resume: replace it whole
            shutil.rmtree(target)
        os.rename(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(paths)
        kept = f"checkpoint {previous.name} is intact" if previous else "no earlier checkpoint exists"
        why = "the disk is full" if e.errno == errno.ENOSPC else f"{e.strerror or e}"
        raise HmxError(
            f"could not save checkpoint step_{step}: {why}. {kept}. Free space, then resume with "
            f"`hmx-mlx train --resume {paths.root}`."
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def list_checkpoints(paths: RunPaths) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not paths.checkpoints.is_dir():
        return []
    found = []
    for d in paths.checkpoints.iterdir():
        m = STEP_DIR.match(d.name)
        if m and (d / "state.json").is_file() and (d / "adapters.safetensors").is_file():
            found.append((int(m.group(1)), d))
    return [d for _, d in sorted(found)]


def latest_checkpoint(paths: RunPaths) -> Path | None:
    found = list_checkpoints(paths)
    return found[-1] if found else None


def load_checkpoint(folder: Path, model, optimizer) -> dict:
    """Load adapters and optimizer state into ``model``/``optimizer``; return state.json."""
    model.load_weights(list(mx.load(str(folder / "adapters.safetensors")).items()), strict=False)
    opt_file = folder / "optimizer.safetensors"
    if opt_file.is_file():
        optimizer.state = tree_unflatten(list(mx.load(str(opt_file)).items()))
    mx.eval(model.parameters(), optimizer.state)
    return json.loads((folder / "state.json").read_text())
