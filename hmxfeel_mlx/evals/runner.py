"""`hmx-mlx eval`: run the axes on a model or a run's checkpoint and write one JSON file.

Order of work: resolve the target, load every selected axis's items (bad data
fails here, before minutes of model loading), hash the data files, load the
model (with the run's adapter), run the axes one by one. The result file is
rewritten after each axis (``status: "partial"``) and finally with
``status: "complete"``, so an interrupted evaluation keeps what it finished.

Under ``mlx.launch`` (docs/distributed.md) every rank loads the items and the model; each
axis's model queries are split across the ranks (``distributed.sharding``) and their results
gathered, so every rank builds the same records and metrics and rank 0 alone writes the
file. The feeling and drift axes sample whole-batch streams and run on rank 0 alone.

Result file (``EVAL_SCHEMA``): target, label, condition (base / forward / reverse
from the run's config.json ``direction``), model, adapter, run, checkpoint,
train_seed, seed, limit, axes, data_dir (None: the Hugging Face cache), data_sources
{axis: [{source: hub, dataset, revision, commit, files} | {source: folder, path} |
{source: upstream, repo, commit, path}]}, data_files {path: sha256}, gen_tokens,
versions, created, seconds, and ``results[axis]`` = ``AxisResult.to_dict()``
(metrics, metric_specs, settings, n, seconds, records).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import HmxError
from ..runfolder import write_json_atomic
from .axes.choice import MC_AXES
from .axes.core import AXIS_ORDER, EVAL_SCHEMA, GEN_TOKENS, Axis, AxisResult, EvalContext, check_axes, clean
from .axes.drift import DRIFT
from .axes.generation import GEN_AXES
from .datasets.hub import sha256_file
from .datasets.sources import DATA_ENV, HubData, hub_data, resolve_data_dir  # noqa: F401 (DATA_ENV: part of the API)

AXES: dict[str, Axis] = {name: {**MC_AXES, **GEN_AXES, "drift": DRIFT}[name] for name in AXIS_ORDER}
CONFIG_AXES = ("feeling", "drift")  # axes that sample as the run trains (its temperature, tokens, system prompt)
MAIN_ONLY_AXES = CONFIG_AXES  # their sampling keys cover the whole batch: rank 0 runs them alone


@dataclass
class EvalRun:
    """A finished (or interrupted) evaluation: its record and where it was written."""

    record: dict
    path: Path
    results: dict[str, AxisResult] = field(default_factory=dict)


def parse_axes(spec: str | Sequence[str] | None) -> list[str]:
    """"all", "mmlu,gsm8k" or a list -> axis names in canonical order (HmxError lists valid ones)."""
    names = spec.split(",") if isinstance(spec, str) else list(spec or ["all"])
    return check_axes(names, AXIS_ORDER)


def _rel(path: Path, root: Path) -> str:
    """The path relative to the data dir, or to the repository for prompt files (feeling)."""
    from ..training.prompts import PROMPTS_DIR

    for base in (root, PROMPTS_DIR.parent):
        try:
            return str(Path(path).resolve().relative_to(Path(base).resolve()))
        except ValueError:
            continue
    return str(path)


def _train_config(target, settings: dict | None = None) -> Any:
    """The training settings the feeling axis samples and judges with: a run's own config, or for a
    model the preset with ``settings`` on top (an experiment's --set values, so that its base is
    evaluated as its runs are)."""
    from ..training.config import resolve_config

    if target.config:
        return resolve_config(base=target.config)
    return resolve_config(overrides={"model": target.model}, settings=settings)


def default_out(target, now: float | None = None) -> Path:
    """RUN/evals/<checkpoint>-<time>.json for a run, runs/evals/<model>-<time>.json for a model."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now or time.time()))
    if target.run is not None:
        folder, label = target.run / "evals", target.adapter.name if target.adapter else "base"
    else:
        folder, label = Path("runs") / "evals", Path(str(target.model)).name.removesuffix(".gguf")
    label = re.sub(r"[^A-Za-z0-9._-]+", "_", label)
    path, k = folder / f"{label}-{stamp}.json", 1
    while path.exists():  # two evaluations in the same second
        path, k = folder / f"{label}-{stamp}-{k}.json", k + 1
    return path


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("hmxfeel_mlx", "mlx", "mlx-lm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def prepare(axes: Sequence[str], data_dir: Path, limit: int | None, seed: int, config: Any,
            hub: HubData | None = None) -> tuple[dict, dict]:
    """Items of every axis and the sha256 of every data file they read.

    ``hub``: the data comes from the Hugging Face cache (``data_dir`` is then its
    ``HubData.view()``); the files are recorded as ``<dataset id>/<path>`` with the
    hashes computed when they were checked.
    """
    items, hashes = {}, {}
    for name in axes:
        axis = AXES[name]
        folder = data_dir / axis.folder if axis.folder is not None else data_dir
        items[name] = axis.load(folder, limit, seed, config)
        if hub is not None and axis.folder is not None:
            hashes.update(hub.file_hashes(name))
            continue
        for f in axis.files(folder, config):
            if Path(f).is_file():
                hashes[_rel(f, data_dir)] = sha256_file(f)
    return items, hashes


RESUME_KEYS = ("target", "model", "adapter", "checkpoint", "seed", "limit", "axes", "n_items", "data_files",
               "gen_tokens", "batch_size", "settings")


def _resumable(path: Path, record: dict) -> dict | None:
    """The earlier evaluation at ``path`` when it is of the same evaluation as ``record``."""
    try:
        old = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(old, dict) or old.get("schema") != EVAL_SCHEMA or not isinstance(old.get("results"), dict):
        return None
    def stored(k: str):  # results written before "settings" was recorded had none
        return (old.get(k) or {}) if k == "settings" else old.get(k)

    same = all(json.dumps(stored(k), sort_keys=True) == json.dumps(clean(record[k]), sort_keys=True)
               for k in RESUME_KEYS)
    return old if same else None


def evaluate(target: str, axes: str | Sequence[str] | None = "all", limit: int | None = None, seed: int = 0,
             data_dir: str | Path | None = None, out: str | Path | None = None, checkpoint: str | None = None,
             batch_size: int = 64, on_axis: Callable[[AxisResult], None] | None = None,
             on_start: Callable[[str, int], None] | None = None, resume: bool = False,
             revision_file: str | Path | None = None, world=None,
             on_skip: Callable[[str], None] | None = None, settings: dict | None = None) -> EvalRun:
    """Evaluate TARGET (a model spec or a run folder) on ``axes``; write and return the result.

    Data: ``data_dir``, else ``$HMX_MLX_DATA``, else the Hugging Face cache at the
    pinned revisions (``revision_file`` replaces pins; see ``evals.datasets.sources``).
    ``resume``: when ``out`` already holds an evaluation of the same target, axes, limit, seed
    and data files (an interrupted one), its finished axes are kept (``on_skip`` is called with
    each) and only the others run.
    ``settings``: training settings over a model's preset for the feeling axis (a run folder has
    its own; giving both is refused).
    ``world``: the ranks evaluating together (default: this process's launch); rank 0 writes
    (and calls ``on_axis``/``on_start``).
    """
    from ..distributed.collectives import broadcast_object
    from ..distributed.world import world as this_world
    from ..models.loading import load_model
    from ..targets import resolve_target

    world = world or this_world()
    main = world.main

    if limit is not None and limit < 1:
        raise HmxError(f"--limit must be at least 1 (got {limit}).")
    names = parse_axes(axes)
    data = resolve_data_dir(data_dir)
    t = resolve_target(target, checkpoint)
    if settings and t.config:
        raise HmxError(f"{target} is a run folder: the feeling axis uses its own config.json, not other settings.")
    config = _train_config(t, settings) if set(CONFIG_AXES) & set(names) else None
    if data is None:
        hub = hub_data([n for n in names if AXES[n].folder is not None], revision_file)
        with hub.view() as view:
            items, hashes = prepare(names, view, limit, seed, config, hub=hub)
        sources = hub.provenance()
    else:
        items, hashes = prepare(names, data, limit, seed, config)
        sources = {n: [{"source": "folder", "path": str(data / AXES[n].folder)}] for n in names
                   if AXES[n].folder is not None}
    started = time.time()
    path = Path(out) if out else default_out(t, started)
    condition = (t.config or {}).get("direction", "forward") if t.run is not None else "base"
    record: dict[str, Any] = {
        "schema": EVAL_SCHEMA, "status": "partial", "target": target, "label": t.label, "condition": condition,
        "model": t.model, "adapter": str(t.adapter) if t.adapter else None,
        "run": str(t.run) if t.run else None, "checkpoint": t.adapter.name if t.adapter else None,
        "train_seed": (t.config or {}).get("seed") if t.run else None, "seed": seed, "limit": limit, "axes": names,
        "settings": dict(settings or {}),
        "n_items": {n: len(v) for n, v in items.items()}, "data_dir": str(data) if data else None,
        "data_sources": sources, "data_files": hashes,
        "gen_tokens": dict(GEN_TOKENS), "batch_size": batch_size, "versions": _versions(),
        "created": datetime.fromtimestamp(started, timezone.utc).isoformat(), "created_unix": started,
        "seconds": 0.0, "results": {}}
    prior = _resumable(path, record) if resume and main else None
    if world.distributed:  # rank 0's file decides what is left to do
        done = broadcast_object(None if prior is None else [prior.get("status"), list(prior["results"])], world)
        if done is not None and not main:
            prior = {"status": done[0], "results": {n: None for n in done[1]}, "created": record["created"],
                     "created_unix": started}
    if prior is not None:
        record.update(results=prior["results"], created=prior["created"], created_unix=prior["created_unix"],
                      resumed=prior.get("resumed", 0) + 1, seconds=prior.get("seconds") or 0.0)
        if prior.get("status") == "complete":
            return EvalRun(prior, path, {})
        started = time.time() - record["seconds"]  # seconds count every attempt
    loaded = load_model(t.model, adapter=t.adapter)
    record["model_name"] = loaded.name
    ctx = EvalContext(loaded.model, loaded.tokenizer, loaded, seed=seed, batch_size=batch_size, config=config,
                      world=world)
    results: dict[str, AxisResult] = {}
    for name in names:
        if name in record["results"]:  # finished by an earlier, interrupted attempt
            if on_skip and main:
                on_skip(name)
            continue
        if name in MAIN_ONLY_AXES and not main:
            continue
        if on_start and main:
            on_start(name, len(items[name]))
        res = AXES[name].run(replace(ctx, world=None) if name in MAIN_ONLY_AXES else ctx, items[name])
        results[name] = res
        record["results"][name] = res.to_dict()
        record["seconds"] = time.time() - started
        if main:
            write_json_atomic(path, clean(record))
        if on_axis and main:
            on_axis(res)
    record["status"] = "complete"
    record["seconds"] = time.time() - started
    if main:
        write_json_atomic(path, clean(record))
    return EvalRun(clean(record), path, results)
