"""The `hmx-mlx` command line: thin commands that build arguments and call the library.

Heavy imports (mlx, mlx-lm) happen inside commands so `hmx-mlx --help` stays fast.
"""

from __future__ import annotations

import sys

import click

from . import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# Commands that run MLX: on CPU-only Linux they are re-executed once with OpenBLAS preloaded.
MLX_COMMANDS = {"generate", "chat", "doctor", "train", "judge-check", "eval", "bench"}

model_argument = click.argument("model", required=False, default="smollm2-135m", metavar="MODEL")
adapter_option = click.option(
    "--adapter", type=click.Path(path_type=str), default=None, help="LoRA adapter folder (mlx-lm format)."
)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
def cli():
    """hmxfeel_mlx: train chat models to express (or deny) feelings with self-rewarded GRPO,
    and measure what that changes.

    MODEL is an alias (see `hmx-mlx models`), a Hugging Face repo id, a local model
    folder or a .gguf file; it defaults to the embedded smollm2-135m.
    """


@cli.command(context_settings=CONTEXT)
@model_argument
@click.option("-p", "--prompt", required=True, help="The user message.")
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(1))
@click.option("--temp", default=0.0, show_default=True, type=click.FloatRange(0), help="0 = greedy.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--system", default=None, help="Optional system message.")
@adapter_option
def generate(model, prompt, max_tokens, temp, seed, system, adapter):
    """Answer one prompt, streaming the reply."""
    from .chat import stream_reply
    from .loading import load_model

    loaded = load_model(model, adapter=adapter)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    for piece in stream_reply(loaded, messages, max_tokens=max_tokens, temp=temp, seed=seed):
        click.echo(piece, nl=False)
    click.echo()


@cli.command(context_settings=CONTEXT)
@model_argument
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(1))
@click.option("--temp", default=0.7, show_default=True, type=click.FloatRange(0))
@click.option("--system", default=None, help="Optional system message.")
@adapter_option
def chat(model, max_tokens, temp, system, adapter):
    """Multi-turn chat in the terminal (/reset clears the history, /exit or Ctrl-D quits)."""
    from .chat import chat_loop
    from .loading import load_model

    loaded = load_model(model, adapter=adapter)
    click.echo(f"Chatting with {loaded.name}. /reset clears the history, /exit or Ctrl-D quits.", err=True)
    chat_loop(loaded, max_tokens=max_tokens, temp=temp, system=system)


@cli.command(context_settings=CONTEXT)
def models():
    """List model aliases and whether each is available offline."""
    from rich.console import Console
    from rich.table import Table

    from .registry import cache_dir, cached_status

    table = Table(title="models")
    for col in ("alias", "available offline", "source", "description"):
        table.add_column(col)
    for row in cached_status():
        table.add_row(row["alias"], "yes" if row["available"] else "no", row["source"], row["description"])
    console = Console()
    console.print(table)
    console.print(f"GGUF conversions are cached in {cache_dir()}; downloads go to the Hugging Face cache.")


@cli.command(context_settings=CONTEXT)
@click.option("--no-bench", is_flag=True, help="Skip the GEMM measurement.")
def doctor(no_bench):
    """Check the platform, MLX device, BLAS speed, memory and model cache."""
    from rich.console import Console

    from .doctor import render_checks, run_checks

    checks = run_checks(measure=not no_bench)
    Console().print(render_checks(checks))
    problems = [c for c in checks if not c.ok]
    if problems:
        click.echo(f"{len(problems)} problem(s) found; the fix column says what to run.")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    if any(a in MLX_COMMANDS for a in args) and not any(a in ("-h", "--help") for a in args):
        from .backend import reexec_with_openblas

        reexec_with_openblas()
    cli.main(args=args, prog_name="hmx-mlx")


if __name__ == "__main__":
    main()
