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


def checkpoint_names(paths: RunPaths) -> list[str]:
    """The run's checkpoint folders (``step_N`` with adapters), by step number: step_5 before step_10."""
    found = []
    for p in paths.checkpoints.glob("step_*") if paths.checkpoints.is_dir() else []:
        step = p.name.removeprefix("step_")
        if step.isdigit() and (p / "adapters.safetensors").is_file():
            found.append((int(step), p.name))
    return [name for _, name in sorted(found)]


def looks_like_path(target: str) -> bool:
    """A folder or file the user meant (./x, ~/x, /x, runs/x when runs/ exists, a/b/c), as opposed
    to an alias or a Hugging Face repo id (org/name)."""
    if target.startswith((".", "~", "/")):
        return True
    parts = target.split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).is_dir())


def resolve_target(target: str, checkpoint: str | None = None) -> Target:
    path = Path(target).expanduser()
    paths = RunPaths(path)
    # A run folder has the training config and metrics (a model folder has config.json only).
    if not (path.is_dir() and paths.config.is_file() and paths.metrics.is_file()):
        if not path.exists() and looks_like_path(target) and not target.lower().endswith(".gguf"):
            raise HmxError(f"no such run folder or model: {target}. Check the path (`ls {path.parent}`), or pass "
                           "a model alias (`hmx-mlx models`).")
        if path.is_dir() and paths.config.is_file() and not any(path.glob("model*.safetensors")) \
                and "direction" in read_json(paths.config, "config"):
            raise HmxError(f"{target} is a run folder with no step written yet (no metrics.jsonl), so it has no "
                           "checkpoint. Wait for its first evaluation, or pass another run.")
        if checkpoint:
            raise HmxError(f"--checkpoint needs a run folder, but {target} is not one (no config.json).")
        return Target(model=target)
    config = read_json(paths.config, "run config")
    available = ", ".join(checkpoint_names(paths)) or "none"
    if checkpoint is None:
        summary = read_json(paths.summary, "run summary") if paths.summary.is_file() else {}
        step = summary.get("selected_step")
        if step is None:
            raise HmxError(f"run {path} has no selected checkpoint yet. Pass --checkpoint step_N (available: "
                           f"{available}).")
        checkpoint = f"step_{step}"
    folder = paths.checkpoints / checkpoint
    if not (folder / "adapters.safetensors").is_file():
        raise HmxError(f"checkpoint {checkpoint} not found in {path}. Available: {available}.")
    return Target(model=config["model"], adapter=folder, run=path, config=config)
