"""`hmx-mlx replicate MODEL`: the whole study in one resumable command (registered in cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def default_out(model: str) -> Path:
    """runs/replicate-<model>: the same command always names the same folder, so rerunning it continues."""
    name = Path(str(model)).name.removesuffix(".gguf")
    return Path("runs") / f"replicate-{name}"


def build_settings(model, seeds, directions, axes, limit, config_file, settings, selection, eval_seed):
    """Validated settings: every training configuration and the axes are checked before anything runs."""
    from ..cli import _parse_settings
    from ..errors import HmxError
    from ..evals.runner import parse_axes
    from ..training.config import read_config_file, resolve_config
    from .plan import Settings

    dirs = [d.strip() for d in directions.split(",") if d.strip()]
    bad = [d for d in dirs if d not in ("forward", "reverse")]
    if bad or not dirs or len(set(dirs)) != len(dirs):
        raise HmxError(f"--directions {directions!r}: give forward, reverse or both, once each (e.g. forward,reverse).")
    overrides = {**(read_config_file(config_file) if config_file else {}), **_parse_settings(settings)}
    fixed = sorted(set(overrides) & {"model", "direction", "seed"})
    if fixed:
        raise HmxError(f"{', '.join(fixed)} cannot be set for a replication: it sets the model, the directions "
                       "and the seeds itself (MODEL, --directions, --seeds).")
    for d in dirs:
        resolve_config(overrides={"model": model, "direction": d, "seed": 0}, settings=overrides)
    return Settings(model=model, seeds=list(range(seeds)), directions=dirs, axes=parse_axes(axes), limit=limit,
                    overrides=overrides, selection=selection, eval_seed=eval_seed)


@click.command("replicate", context_settings=CONTEXT)
@click.argument("model", required=False, default="smollm2-135m", metavar="MODEL")
@click.option("--seeds", type=click.IntRange(1), default=5, show_default=True,
              help="Training seeds per direction (0..N-1); the study used five.")
@click.option("--directions", default="forward,reverse", show_default=True,
              help="forward (human-like), reverse (machine-like control), or both.")
@click.option("--axes", default="all", show_default=True, help="Evaluation axes, comma-separated, or 'all'.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N items per axis (default: all).")
@click.option("--out", type=click.Path(path_type=str), default=None,
              help="Experiment folder (default runs/replicate-<model>; rerunning the same command continues it).")
@click.option("--config", "config_file", type=click.Path(path_type=str), default=None,
              help="JSON/YAML training config applied to every run (on top of the model's preset).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any training config value.")
@click.option("--selection", type=click.Choice(["kl-matched", "study"]), default="kl-matched", show_default=True,
              help="kl-matched: per seed, the crossing checkpoints of forward and reverse with the closest KL per "
                   "reply; study: each run's own rule (first checkpoint crossing the threshold, else the best).")
@click.option("--eval-seed", type=int, default=0, show_default=True, help="Seed of the evaluations.")
@click.option("--data-dir", type=click.Path(path_type=str), default=None, help="Benchmark data folder.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
              help="Rows per generation batch in evaluations.")
@click.option("--plain", is_flag=True, help="Plain lines instead of the live overview.")
def replicate_command(model, seeds, directions, axes, limit, out, config_file, settings, selection, eval_seed,
                      data_dir, batch_size, plain):
    """Replicate the study: base evaluation; SEEDS trainings per direction; checkpoint selection and
    forward/reverse pairing at matched KL; evaluation of every selected checkpoint; comparison; report.

    Everything lands in one experiment folder with a plan of every job. Rerunning the same command
    continues where it stopped (Ctrl-C, a kill, a reboot) and never redoes a finished job; other
    settings on an existing folder are refused. `hmx-mlx watch EXPERIMENT` follows it from another
    terminal; each run folder stays a normal run folder.
    """
    from rich.console import Console

    from ..distributed.world import world
    from .runner import replicate

    spec = build_settings(model, seeds, directions, axes, limit, config_file, settings, selection, eval_seed)
    root = Path(out) if out else default_out(model)
    console = Console(file=sys.stdout)
    here = world()
    if here.distributed:  # mlx.launch: the jobs spread over the ranks (experiment.grid); rank 0 reports
        from .grid import run_grid

        exp = run_grid(spec, root, here, data_dir, batch_size, on_event=_plain_event, on_step=_plain_step,
                       on_stage=_plain_stage)
        if exp is None:
            return
    elif plain or not console.is_terminal or console.is_dumb_terminal:
        exp = replicate(spec, root, data_dir, batch_size, on_event=_plain_event, on_step=_plain_step,
                        on_stage=_plain_stage)
    else:
        exp = _live(spec, root, data_dir, batch_size, console)
    click.echo(f"experiment: {exp.root}")
    for rel in ("comparison.md", "report.html"):
        if (exp.root / rel).is_file():
            click.echo(f"  {exp.root / rel}")


def _plain_event(exp, job, event: str) -> None:
    extra = f" ({job.note})" if event == "done" and job.note else ""
    extra += f": {job.error}" if event == "failed" and job.error else ""
    click.echo(f"{job.id}: {event}{extra} [{job.seconds:.0f} s]" if not event.startswith("start")
               else f"{job.id}: {event}")


def _plain_stage(state: dict) -> None:
    if state.get("kind") == "eval" and state.get("stage", "").startswith("eval ") and state.get("detail"):
        click.echo(f"  {state['job']}: {state['stage'][5:]} ({state['detail']}; {state.get('done') or 0}/"
                   f"{state.get('total')} axes done)")


def _plain_step(job, metrics: dict, total: int) -> None:
    from ..training.progress import format_step

    click.echo(f"  {job.id} " + format_step(metrics, total).replace("\n", "\n  "))


def _live(spec, root: Path, data_dir, batch_size: int, console):
    import time

    from rich.live import Live

    from ..ui.experiment_view import ExperimentReader, render_overview
    from .runner import replicate

    reader: list = []

    def frame():
        if not reader:
            try:
                reader.append(ExperimentReader(root))
            except Exception:  # the folder is not written yet
                from rich.text import Text

                return Text(f"starting {root} ...")
        reader[0].poll()
        return render_overview(reader[0].state, time.time(), console.width)

    with Live(console=console, get_renderable=frame, refresh_per_second=1, redirect_stdout=True,
              redirect_stderr=True):
        return replicate(spec, root, data_dir, batch_size)
