"""Click commands `eval` and `compare` (registered in ``cli.py`` by the lead):

    cli.add_command(eval_command, "eval"); cli.add_command(compare_command, "compare")

Heavy imports happen inside the commands, so `hmx-mlx --help` stays fast.
"""

from __future__ import annotations

import math

import click

from .axes.core import AXIS_ORDER

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _headline_metrics(res) -> str:
    shown = [f"{k} {v:.3f}" for k, v in res.metrics.items()
             if k in res.specs and isinstance(v, (int, float)) and not math.isnan(v)]
    return ", ".join(shown) or "no finite metric"


@click.command("eval", context_settings=CONTEXT)
@click.argument("target", metavar="TARGET")
@click.option("--axes", default="all", show_default=True,
              help=f"Comma-separated axes or 'all': {', '.join(AXIS_ORDER)}.")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N items per axis (default: all).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Sampling seed of the feeling axis and of EQ-Bench's attempts; BBQ item draw and choice shuffles.")
@click.option("--checkpoint", default=None, help="step_N of a run folder (default: its selected checkpoint).")
@click.option("--data-dir", type=click.Path(path_type=str), default=None,
              help="Benchmark data folder (default: $HMX_MLX_DATA, else the Hugging Face cache filled by "
              "`hmx-mlx data pull`).")
@click.option("--revision-file", type=click.Path(path_type=str), default=None, envvar="HMX_MLX_REVISIONS",
              help="Hub revisions to read instead of the package's pins (as for `hmx-mlx data pull`).")
@click.option("--out", type=click.Path(path_type=str), default=None,
              help="Result JSON (default RUN/evals/<checkpoint>-<time>.json, or runs/evals/<model>-<time>.json).")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True, help="Rows per generation batch.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A training setting over a model's preset for the feeling axis (as for `train`), so that a base "
              "is sampled and judged as runs trained with those settings; a run folder uses its own.")
@click.option("--plain", is_flag=True, help="Plain lines instead of the live status display.")
def eval_command(target, axes, limit, seed, checkpoint, data_dir, revision_file, out, batch_size, settings, plain):
    """Evaluate TARGET (a model, as in `generate`, or a run folder) on the benchmark axes.

    Writes one JSON file: per-axis metrics, per-item records, where each axis's data
    came from and the hashes of its files, model, adapter, seed and limits.
    """
    from rich.console import Console

    from ..cli import _parse_settings
    from ..distributed.world import world
    from .runner import evaluate

    settings = _parse_settings(settings) or None
    if not world().main:  # another rank of a launch: its share of the work, quietly; rank 0 reports
        evaluate(target, axes, limit=limit, seed=seed, data_dir=data_dir, out=out, checkpoint=checkpoint,
                 batch_size=batch_size, revision_file=revision_file, settings=settings)
        return
    console = Console(highlight=False)
    status = None if plain else console.status("loading ...")
    if status is not None:
        status.start()

    def on_start(name: str, n: int) -> None:
        if status is not None:
            status.update(f"{name}: {n} items ...")
        else:
            click.echo(f"{name}: {n} items ...")

    def on_axis(res) -> None:
        line = f"{res.name}: {_headline_metrics(res)} ({len(res.records)} items, {res.seconds:.1f} s)"
        console.print(line) if status is not None else click.echo(line)

    try:
        run = evaluate(target, axes, limit=limit, seed=seed, data_dir=data_dir, out=out, checkpoint=checkpoint,
                       batch_size=batch_size, on_axis=on_axis, on_start=on_start, revision_file=revision_file,
                       settings=settings)
    finally:
        if status is not None:
            status.stop()
    click.echo(f"{run.record['label']} ({run.record['condition']}): {run.record['seconds']:.1f} s")
    click.echo(f"results: {run.path}")


@click.command("compare", context_settings=CONTEXT)
@click.argument("targets", nargs=-1, required=True, metavar="RUN_OR_EVAL...")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "csv", "json"]), default="table",
              show_default=True)
@click.option("--threshold", type=click.FloatRange(0), default=0.02, show_default=True,
              help="Study's rule in the headline: a change relative to the base value, (fwd - rev) / |base|, "
                   "above -THRESHOLD counts as within.")
@click.option("--out", type=click.Path(path_type=str), default=None, help="Also write the output to this file (markdown for --format table).")
def compare_command(targets, fmt, threshold, out):
    """Compare evaluations: base vs forward (human-like) vs reverse (machine-like), per metric.

    A RUN argument means its newest evaluation (RUN/evals/*.json); an evaluation JSON is used as is.
    """
    from pathlib import Path

    from .compare import compare_paths, print_table, to_csv, to_json, to_markdown

    result = compare_paths(targets, threshold=threshold)
    if fmt == "table":
        from rich.console import Console

        console = Console()
        print_table(result, console if console.is_terminal else Console(width=160))  # piped: do not wrap at 80
        text = to_markdown(result) if out else ""
    else:
        text = {"markdown": to_markdown, "csv": to_csv, "json": to_json}[fmt](result)
        click.echo(text, nl=False)
    if out:
        Path(out).write_text(text, encoding="utf-8")
