"""The `hmx-mlx` command line: thin commands that build arguments and call the library.

Heavy imports (mlx, mlx-lm) happen inside commands so `hmx-mlx --help` stays fast.
"""

from __future__ import annotations

import sys

import click

from . import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# Commands that run MLX: on CPU-only Linux they are re-executed once with OpenBLAS preloaded.
MLX_COMMANDS = {"generate", "chat", "doctor", "train", "judge-check", "heldout", "eval", "bench", "replicate"}

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


def _default_run_dir(config) -> str:
    import time
    from pathlib import Path

    name = Path(str(config.model)).name.removesuffix(".gguf")
    return str(Path("runs") / f"{name}-{config.direction}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}")


@cli.command(context_settings=CONTEXT)
@click.argument("model", required=False, metavar="MODEL")
@click.option("--direction", type=click.Choice(["forward", "reverse"]), default=None,
              help="forward = human-like (default), reverse = machine-like control.")
@click.option("--seed", type=int, default=None)
@click.option("--steps", type=click.IntRange(1), default=None)
@click.option("--run-dir", type=click.Path(path_type=str), default=None, help="Where to write the run (default runs/...).")
@click.option("--config", "config_file", type=click.Path(path_type=str), default=None, help="JSON/YAML config file.")
@click.option("--resume", type=click.Path(path_type=str), default=None, help="Continue a run from its last checkpoint.")
@click.option("--group-size", type=int, default=None)
@click.option("--prompts-per-step", type=int, default=None)
@click.option("--max-new-tokens", type=int, default=None)
@click.option("--learning-rate", type=float, default=None)
@click.option("--beta", type=float, default=None)
@click.option("--judge-mode", type=click.Choice(["text", "logprob"]), default=None)
@click.option("--eval-every", type=int, default=None)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any config value (JSON value syntax).")
@click.option("--plain", is_flag=True, help="One line per step instead of the live display.")
def train(model, direction, seed, steps, run_dir, config_file, resume, group_size, prompts_per_step,
          max_new_tokens, learning_rate, beta, judge_mode, eval_every, settings, plain):
    """Self-rewarded rubric GRPO: train MODEL to express (forward) or deny (reverse) feelings.

    Every default is documented in `hmxfeel_mlx/config.py`; `--set key=value` sets any of them.
    """
    from pathlib import Path

    from .config import resolve_config
    from .progress import format_summary
    from .trainer import resume_config, train as run_training

    overrides = dict(direction=direction, seed=seed, steps=steps, group_size=group_size,
                     prompts_per_step=prompts_per_step, max_new_tokens=max_new_tokens,
                     learning_rate=learning_rate, beta=beta, judge_mode=judge_mode, eval_every=eval_every)
    overrides.update(_parse_settings(settings))
    if resume:
        run = Path(resume)
        if model is not None:
            overrides["model"] = model
        config = resume_config(run, overrides)
    else:
        overrides["model"] = model
        config = resolve_config(config_file, overrides)
        run = Path(run_dir or _default_run_dir(config))
        if (run / "config.json").exists():
            raise click.ClickException(f"{run} already holds a run. Resume it with --resume {run} or pick another --run-dir.")
    display = _train_display(config, run, plain)
    with display:  # the live screen closes before an error (Ctrl-C: how to resume) is printed
        result = run_training(config, run, resume=bool(resume), on_step=display)
    display.close()
    click.echo(f"run: {result.run_dir}")
    click.echo(format_summary(result.summary))


def _train_display(config, run, plain: bool):
    """The live dashboard in a terminal; one plain line per step otherwise or with --plain."""
    from rich.console import Console

    from .progress import StepPrinter

    console = Console(file=sys.stdout)
    if plain or not console.is_terminal or console.is_dumb_terminal:
        return StepPrinter(config)
    from dataclasses import asdict

    from .backend import device_name
    from .ui.dashboard import TrainDashboard

    return TrainDashboard(asdict(config), run, device=device_name(), console=console)


def _parse_settings(settings) -> dict:
    import json

    out = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.ClickException(f"--set {item!r} must look like key=value, e.g. --set beta=0.04")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


@cli.command("judge-check", context_settings=CONTEXT)
@model_argument
@click.option("--mode", "modes", type=click.Choice(["text", "logprob"]), multiple=True,
              help="Score mode(s); default both.")
@click.option("--template", default=None, help="Judge template variant ('', short, fewshot) or a file; default: the model's preset.")
@click.option("--direction", type=click.Choice(["forward", "reverse"]), default="forward", show_default=True)
@click.option("--calibration", type=click.Path(path_type=str), default=None, help="Calibration JSONL (default prompts/).")
def judge_check(model, modes, template, direction, calibration):
    """Score the labelled calibration set: ROC-AUC and Spearman per mode, and the map from the
    judge's raw score to the rubric's scale (machine-like 0, neutral 5, human-like 10) with its fit."""
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from .calibration import judge_check as run_check
    from .config import model_preset
    from .heldout import load_template
    from .loading import load_model
    from .prompts import load_calibration

    variant = template if template is not None else model_preset(model).get("judge_template", "")
    tmpl = load_template(direction, variant)
    rows = load_calibration(Path(calibration) if calibration else None)
    loaded = load_model(model)
    table = Table(title=f"judge-check {loaded.name} ({direction} rubric, template '{variant or 'default'}', {len(rows)} rows)")
    for col in ("mode", "ROC-AUC", "Spearman", "raw human", "raw neutral", "raw machine", "cal human", "cal neutral",
                "cal machine", "cal RMSE", "unparsed", "seconds"):
        table.add_column(col, justify="right" if col != "mode" else "left")
    maps = []
    for mode in modes or ("text", "logprob"):
        r = run_check(loaded.model, loaded.tokenizer, tmpl, rows, mode, template_name=variant or "default")
        raw, cal = r.mean_by_label, r.mean_calibrated
        table.add_row(mode, f"{r.auc:.3f}", f"{r.spearman:.3f}", f"{raw['human']:.2f}", f"{raw['neutral']:.2f}",
                      f"{raw['machine']:.2f}", f"{cal['human']:.2f}", f"{cal['neutral']:.2f}", f"{cal['machine']:.2f}",
                      f"{r.rmse:.2f}", str(r.unparsed), f"{r.seconds:.1f}")
        maps.append(f"{mode}: calibrated = {r.scale.describe()}  (slope {r.scale.slope:.4f}, intercept "
                    f"{r.scale.intercept:.4f})" + (f"\n  warning: {r.warning}" if r.warning else ""))
    console = Console()
    console.print(table)
    console.print("map (logistic, fitted to the anchors machine-like 0 / neutral 5 / human-like 10"
                  + (", mirrored for the reverse rubric" if direction == "reverse" else "") + "):")
    for line in maps:
        console.print("  " + line, highlight=False)


@cli.command(context_settings=CONTEXT)
@click.argument("target", metavar="TARGET")
@click.option("--checkpoint", default=None, help="step_N of a run folder (default: its selected checkpoint).")
@click.option("--samples", type=click.IntRange(1), default=32, show_default=True, help="Replies per held-out question.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=str), default=None, help="Also write the result as JSON.")
@click.option("--calibration", type=click.Path(path_type=str), default=None,
              help="Calibration JSONL for a model TARGET's judge scale (default: the run's set, or prompts/).")
def heldout(target, checkpoint, samples, seed, out, calibration):
    """Held-out feeling score of TARGET (a model or a run folder): replies to the 10 held-out
    questions judged by the frozen base model with the forward rubric, raw and calibrated (the
    run's judge calibration, or one fitted now for a model), with mean ± standard error, and the
    KL to the base at the sampling temperature."""
    from dataclasses import replace
    from pathlib import Path

    from .calibration import CALIBRATION_FILE, judge_check as run_check, load_calibration_result
    from .config import resolve_config
    from .judge import lora_disabled
    from .loading import load_model
    from .prompts import load_calibration
    from .runfolder import write_json_atomic
    from .targets import resolve_target
    from .trainer import check_questions, evaluate_heldout, load_templates

    t = resolve_target(target, checkpoint)
    if t.config:
        config = resolve_config(base=t.config)
    else:
        config = resolve_config(overrides={"model": t.model})
    config = replace(config, eval_samples=samples, seed=seed, eval_temperature=config.eval_temperature or 1.0,
                     calibration_set=calibration or config.calibration_set)
    _, eval_qs = check_questions(config)
    templates = load_templates(config)
    loaded = load_model(t.model, adapter=t.adapter)
    if t.adapter is None:
        from .trainer import attach_lora

        attach_lora(loaded.model, config)  # zero-initialised LoRA: the base model, judged the same way
    stored = t.run / CALIBRATION_FILE if t.run is not None else None
    if stored is not None and stored.is_file() and calibration is None:
        fit, source = load_calibration_result(stored), str(stored)
    else:
        rows = load_calibration(Path(config.calibration_set) if config.calibration_set else None)
        with lora_disabled(loaded.model):
            fit = run_check(loaded.model, loaded.tokenizer, templates["forward"], rows, config.judge_mode,
                            template_name=config.judge_template or "default",
                            max_verdict_tokens=config.judge_max_tokens, max_batch=config.judge_batch)
        source = f"fitted now with the base judge on {len(rows)} labelled replies"
    result = evaluate_heldout(loaded, eval_qs, config, templates, fit.scale)
    result.pop("eval_samples")
    record = {"target": target, "model": t.model, "adapter": str(t.adapter) if t.adapter else None,
              "samples_per_question": samples, "seed": seed, "judge_mode": config.judge_mode,
              "judge_template": config.judge_template,
              "judge_calibration": {"source": source, **fit.to_dict()["scale"], "auc": fit.auc},
              **result}
    click.echo(f"{t.label}: held-out score {result['eval_score']:.3f} ± {result['eval_score_se']:.3f} raw, "
               f"{result['eval_score_cal']:.3f} ± {result['eval_score_cal_se']:.3f} calibrated (se, "
               f"n={result['eval_n']}), KL to base {result['eval_kl']:.4f}/token, "
               f"{result['eval_kl_reply']:.3f} ± {result['eval_kl_reply_se']:.3f} nats/reply "
               f"(T={result['eval_kl_temperature']:g})")
    if out:
        write_json_atomic(Path(out), record)


# Terminal UI: these read run folders only and never import MLX (not in MLX_COMMANDS).


@cli.command(context_settings=CONTEXT)
@click.argument("run", metavar="RUN")
@click.option("--once", is_flag=True, help="Render the dashboard once and exit (size: the terminal, or "
              "COLUMNS x LINES when piped).")
@click.option("--plain", is_flag=True, help="One line per step, following the run until it ends.")
@click.option("--interval", type=click.FloatRange(0.1), default=1.0, show_default=True,
              help="Seconds between reads of the run folder.")
def watch(run, once, plain, interval):
    """Live dashboard of a training run written by another process (or a finished one), or the
    overview of an experiment (`hmx-mlx replicate`); q quits."""
    from .experiment.plan import is_experiment

    if is_experiment(run):
        from .ui.experiment_view import watch_experiment

        watch_experiment(run, once=once, plain=plain, interval=interval)
        return
    from .ui.dashboard import watch_run

    watch_run(run, once=once, plain=plain, interval=interval)


@cli.command(context_settings=CONTEXT)
@click.argument("runs", nargs=-1, required=True, metavar="RUN [RUN...]")
def inspect(runs):
    """Browse samples.jsonl of one or more runs with the keyboard: by step and prompt, sorted or
    filtered by score, one completion in full, the same prompt in every run side by side."""
    from .ui.inspector import inspect_runs

    inspect_runs(list(runs))


@cli.command(context_settings=CONTEXT)
@click.argument("targets", nargs=-1, required=True, metavar="RUN_OR_EVAL... | EXPERIMENT")
@click.option("--export", type=click.Path(path_type=str), default=None, metavar="FILE.html|FILE.svg",
              help="Also save what is shown (Rich's HTML or SVG export); for an EXPERIMENT, FILE.html is its "
                   "self-contained report page instead.")
@click.option("--width", type=click.IntRange(60), default=None,
              help="Columns to render (default: the terminal's, 160 when piped).")
@click.option("--threshold", type=click.FloatRange(0), default=0.02, show_default=True,
              help="Headline: relative degradation below this counts as unchanged.")
def report(targets, export, width, threshold):
    """Reward curves and selected checkpoints of the runs next to the comparison table of their
    evaluations (as `hmx-mlx compare`), on one screen. An EXPERIMENT folder (from `hmx-mlx replicate`,
    given alone) shows its runs and evaluations; with --export FILE.html it writes the experiment's page."""
    from .ui.report import report as print_report

    print_report(list(targets), export=export, width=width, threshold=threshold)


def _register_eval_commands() -> None:
    from .evals.commands import compare_command, eval_command
    from .evals.data_commands import data_group

    cli.add_command(eval_command, "eval")
    cli.add_command(compare_command, "compare")
    cli.add_command(data_group, "data")
    from .experiment.commands import replicate_command

    cli.add_command(replicate_command, "replicate")


_register_eval_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = sys.argv[1:] if argv is None else argv
    if any(a in MLX_COMMANDS for a in args) and not any(a in ("-h", "--help") for a in args):
        from .backend import reexec_with_openblas

        reexec_with_openblas()
    cli.main(args=args, prog_name="hmx-mlx")


if __name__ == "__main__":
    main()
