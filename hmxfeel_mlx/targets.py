"""What `eval`-like commands accept as TARGET: a model (as in `generate`) or a run folder.

A run folder means its selected checkpoint (summary.json), or ``--checkpoint step_N``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import HmxError
from .runfolder import RunPaths, read_json


@dataclass
class Target:
    model: str
    adapter: Path | None = None
    run: Path | None = None
    config: dict | None = None  # the run's config.json, when TARGET is a run

    @property
    def label(self) -> str:
        if self.run is None:
            return self.model
        return f"{self.run.name}/{self.adapter.name if self.adapter else 'base'}"


def resolve_target(target: str, checkpoint: str | None = None) -> Target:
    path = Path(target)
    paths = RunPaths(path)
    # A run folder has the training config and metrics (a model folder has config.json only).
    if not (path.is_dir() and paths.config.is_file() and paths.metrics.is_file()):
        if checkpoint:
            raise HmxError(f"--checkpoint needs a run folder, but {target} is not one (no config.json).")
        return Target(model=target)
    config = read_json(paths.config, "run config")
    if checkpoint is None:
        summary = read_json(paths.summary, "run summary") if paths.summary.is_file() else {}
        step = summary.get("selected_step")
        if step is None:
            raise HmxError(
                f"run {path} has no selected checkpoint yet. Pass --checkpoint step_N "
                f"(available: {', '.join(p.name for p in sorted(paths.checkpoints.glob('step_*'))) or 'none'})."
            )
        checkpoint = f"step_{step}"
    folder = paths.checkpoints / checkpoint
    if not (folder / "adapters.safetensors").is_file():
        available = ", ".join(sorted(p.name for p in paths.checkpoints.glob("step_*"))) or "none"
        raise HmxError(f"checkpoint {checkpoint} not found in {path}. Available: {available}.")
    return Target(model=config["model"], adapter=folder, run=path, config=config)
