"""The `hmx-mlx` command line: thin commands that build arguments and call the library.

Heavy imports (mlx, mlx-lm) happen inside commands so `hmx-mlx --help` stays fast.
"""

from __future__ import annotations

import sys

import click

from . import __version__
from .table_output import format_option, print_rows

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
# Commands that run MLX: on CPU-only Linux they are re-executed once with OpenBLAS preloaded.
MLX_COMMANDS = {"generate", "chat", "doctor", "train", "judge-check", "heldout", "eval", "bench", "replicate"}

class AliasedOption(click.Option):
    """An option whose old spellings (``hidden_aliases``) still work but are not shown in --help."""

    def __init__(self, *args, hidden_aliases: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden_aliases = tuple(hidden_aliases)

    def get_help_record(self, ctx):
        shown = self.opts
        self.opts = [o for o in shown if o not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def max_new_tokens_option(default: int | None):
    return click.option("--max-new-tokens", "--max-tokens", "max_new_tokens", cls=AliasedOption,
                        hidden_aliases=("--max-tokens",), type=click.IntRange(1), default=default,
                        show_default=default is not None, help="Most tokens to generate per reply.")


def temperature_option(default: float | None, help: str = "Sampling temperature; 0 = greedy."):
    return click.option("--temperature", "--temp", "temperature", cls=AliasedOption, hidden_aliases=("--temp",),
                        type=click.FloatRange(0), default=default, show_default=default is not None, help=help)


target_argument = click.argument("target", required=False, default="smollm2-135m", metavar="MODEL|RUN")
checkpoint_option = click.option("--checkpoint", default=None,
                                 help="step_N of a RUN folder (default: its selected checkpoint).")
adapter_option = click.option(
    "--adapter", type=click.Path(path_type=str), default=None, help="LoRA adapter folder (mlx-lm format)."
)
model_argument = click.argument("model", required=False, default="smollm2-135m", metavar="MODEL")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version")
def cli():
    """hmxfeel_mlx: train chat models to express (or deny) feelings with self-rewarded GRPO,
    and measure what that changes.

    MODEL is an alias (see `hmx-mlx models`), a Hugging Face repo id, a local model
    folder or a .gguf file; it defaults to the embedded smollm2-135m. RUN is a run folder
    written by `hmx-mlx train` (its selected checkpoint, or --checkpoint step_N).
    """


def _load_target(target: str, checkpoint: str | None, adapter: str | None):
    """The model of TARGET (a model, or a run folder's checkpoint), with ``adapter`` when given."""
    from .errors import HmxError
    from .models.loading import load_model
    from .targets import resolve_target

    t = resolve_target(target, checkpoint)
    if t.run is not None and adapter:
        raise HmxError(f"{target} is a run folder, which names its own adapter ({t.adapter}), and --adapter "
                       f"{adapter} names another. Pass one of them (another checkpoint of the run: --checkpoint step_N).")
    return t, load_model(t.model, adapter=adapter or t.adapter)


@cli.command(context_settings=CONTEXT)
@target_argument
@click.option("-p", "--prompt", required=True, help="The user message.")
@max_new_tokens_option(256)
@temperature_option(0.0)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--system", default=None, help="Optional system message.")
@checkpoint_option
@adapter_option
def generate(target, prompt, max_new_tokens, temperature, seed, system, checkpoint, adapter):
    """Answer one prompt with MODEL or a RUN's checkpoint, streaming the reply."""
    from .models.chat import stream_reply

    _, loaded = _load_target(target, checkpoint, adapter)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    for piece in stream_reply(loaded, messages, max_tokens=max_new_tokens, temp=temperature, seed=seed):
        click.echo(piece, nl=False)
    click.echo()


@cli.command(context_settings=CONTEXT)
@target_argument
@max_new_tokens_option(512)
@temperature_option(0.7)
@click.option("--system", default=None, help="Optional system message.")
@checkpoint_option
@adapter_option
def chat(target, max_new_tokens, temperature, system, checkpoint, adapter):
    """Multi-turn chat with MODEL or a RUN's checkpoint (/reset clears the history, /exit or Ctrl-D quits)."""
    from .models.chat import chat_loop

    t, loaded = _load_target(target, checkpoint, adapter)
    name = t.label if t.run is not None else loaded.name
    click.echo(f"Chatting with {name}. /reset clears the history, /exit or Ctrl-D quits.", err=True)
    chat_loop(loaded, max_tokens=max_new_tokens, temp=temperature, system=system)


@cli.command(context_settings=CONTEXT)
@format_option
def models(fmt):
    """List model aliases and whether each is available offline."""
    from .models.registry import cache_dir, cached_status

    rows = [{"alias": r["alias"], "available offline": "yes" if r["available"] else "no", "source": r["source"],
             "description": r["description"], "location": r["location"]} for r in cached_status()]
    print_rows(rows, ("alias", "available offline", "source", "description"), fmt, title="models",
               notes=[f"GGUF conversions are cached in {cache_dir()}; downloads go to the Hugging Face cache."])


@cli.command(context_settings=CONTEXT)
@click.option("--no-bench", is_flag=True, help="Skip the GEMM measurement.")
@format_option
def doctor(no_bench, fmt):
    """Check the platform, MLX device, BLAS speed, memory and model cache."""
    from .distributed.world import world
    from .doctor import run_checks

    checks = run_checks(measure=not no_bench)
    if not world().main:  # rank 0 reports for the launch (its distributed line names every rank)
        return
    rows = [{"check": c.name, "status": "ok" if c.ok else "problem", "value": c.value, "fix": c.fix} for c in checks]
    problems = sum(not c.ok for c in checks)
    print_rows(rows, ("check", "status", "value", "fix"), fmt, title="hmx-mlx doctor",
               styles={"check": {r["check"]: "bold" for r in rows}, "status": {"ok": "green", "problem": "red"}},
               notes=[f"{problems} problem(s) found; the fix column says what to run."] if problems else [])


def _default_run_dir(config) -> str:
    import time
    from pathlib import Path

    name = Path(str(config.model)).name.removesuffix(".gguf")
    return str(Path("runs") / f"{name}-{config.direction}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}")


# train's flags and the config keys they set (the --set spelling of each).
TRAIN_FLAGS = ("direction", "seed", "steps", "group_size", "prompts_per_step", "max_new_tokens", "temperature",
               "learning_rate", "beta", "judge_mode", "eval_every")


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
@max_new_tokens_option(None)
@temperature_option(None, help="Sampling temperature of the rollouts (the loss divides logits by it too).")
@click.option("--learning-rate", type=float, default=None)
@click.option("--beta", type=float, default=None)
@click.option("--judge-mode", type=click.Choice(["text", "logprob"]), default=None)
@click.option("--eval-every", type=int, default=None)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Any config value (JSON value syntax; null unsets, e.g. degenerate_floor=null).")
@click.option("--print-config", is_flag=True, help="Print the resolved configuration (JSON) and exit without training.")
@click.option("--plain", is_flag=True, help="One line per step instead of the live display.")
def train(model, direction, seed, steps, run_dir, config_file, resume, group_size, prompts_per_step,
          max_new_tokens, temperature, learning_rate, beta, judge_mode, eval_every, settings, print_config, plain):
    """Self-rewarded rubric GRPO: train MODEL to express (forward) or deny (reverse) feelings.

    Every default is documented in `hmxfeel_mlx/training/config.py`; `--set key=value` sets any of them.
    """
    import json
    from pathlib import Path

    from .errors import HmxError
    from .locks import check_unlocked
    from .training.config import resolve_config
    from .training.progress import format_summary
    from .training.trainer import check_questions, load_templates, resume_config
    from .training.trainer import train as run_training

    flags = dict(direction=direction, seed=seed, steps=steps, group_size=group_size, prompts_per_step=prompts_per_step,
                 max_new_tokens=max_new_tokens, temperature=temperature, learning_rate=learning_rate, beta=beta,
                 judge_mode=judge_mode, eval_every=eval_every, model=model)
    given = {k: v for k, v in flags.items() if v is not None}
    named = _parse_settings(settings)
    _refuse_twice(given, named, settings)
    from .distributed.training import shared_config
    from .distributed.world import world

    here = world()
    if resume and not here.main:  # rank 0 reads the run's config (the folder may be on its disk only)
        config, run = shared_config(None, here), Path(resume)
    elif resume:
        for option, value in (("--config", config_file), ("--run-dir", run_dir)):
            if value:
                raise HmxError(f"{option} {value} cannot be used with --resume {resume}: a resumed run keeps its own "
                               f"configuration and folder ({Path(resume) / 'config.json'}). Drop {option}, or start a "
                               "new run with it.")
        run = Path(resume)
        if not (run / "config.json").is_file():
            raise HmxError(f"--resume {resume}: no run there (no config.json). Pass a folder `hmx-mlx train` wrote.")
        config = shared_config(resume_config(run, given, named), here)
    else:
        config = resolve_config(config_file, given, settings=named)
        run = Path(run_dir or _default_run_dir(config))
        if here.distributed:  # one folder name for every rank (the default one has the time in it)
            run = Path(shared_config(str(run), here))
    if print_config:
        if here.main:
            click.echo(json.dumps(config.to_dict(), indent=2))
        return
    check_questions(config)
    load_templates(config)
    if here.main:
        check_unlocked(run)  # these before the live screen opens and the model loads
        if not resume and (run / "config.json").exists():
            raise click.ClickException(f"{run} already holds a run. Resume it with --resume {run} or pick another "
                                       "--run-dir.")
    if not here.main:  # the other ranks train quietly; rank 0 shows and writes everything
        run_training(config, run, resume=bool(resume), world=here)
        return
    display = _train_display(config, run, plain)
    with display:  # the live screen closes before an error (Ctrl-C: how to resume) is printed
        result = run_training(config, run, resume=bool(resume), on_step=display)
    display.close()
    click.echo(f"run: {result.run_dir}")
    click.echo(format_summary(result.summary))


def _refuse_twice(given: dict, named: dict, raw: tuple[str, ...]) -> None:
    """A value given both by a flag (or MODEL) and by --set is refused, naming both."""
    from .errors import HmxError

    for key in sorted(set(given) & set(named)):
        flag = "MODEL" if key == "model" else f"--{key.replace('_', '-')}"
        setting = next(item for item in reversed(raw) if item.partition("=")[0].strip().replace("-", "_") == key)
        raise HmxError(f"{key} is given twice: {flag} {given[key]} and --set {setting}. Give it once.")


def _train_display(config, run, plain: bool):
    """The live dashboard in a terminal; one plain line per step otherwise or with --plain."""
    from rich.console import Console

    from .training.progress import StepPrinter

    console = Console(file=sys.stdout)
    if plain or not console.is_terminal or console.is_dumb_terminal:
        return StepPrinter(config)
    from dataclasses import asdict

    from .models.backend import device_name
    from .ui.dashboard import TrainDashboard

    return TrainDashboard(asdict(config), run, device=device_name(), console=console)


def _parse_settings(settings) -> dict:
    """``--set key=value`` items -> {key: value}: JSON values (null is None), plain text otherwise and
    wherever the key holds a string (``--set system_prompt=true`` is the text "true")."""
    import json

    from .training.config import config_fields

    fields = config_fields()
    out = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.ClickException(f"--set {item!r} must look like key=value, e.g. --set beta=0.04")
        key = key.strip().replace("-", "_")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        annotation = str(fields[key].type) if key in fields else ""
        if annotation.split("|")[0].strip() == "str" and parsed is not None and not isinstance(parsed, str):
            parsed = value
        out[key] = parsed
    return out


JUDGE_CHECK_COLUMNS = ("mode", "ROC-AUC", "Spearman", "raw human", "raw neutral", "raw machine", "cal human",
                       "cal neutral", "cal machine", "cal RMSE", "unparsed", "seconds")


@cli.command("judge-check", context_settings=CONTEXT)
@model_argument
@click.option("--mode", "modes", type=click.Choice(["text", "logprob"]), multiple=True,
              help="Score mode(s); default both.")
@click.option("--template", default=None, help="Judge template variant ('', short, fewshot) or a file; default: the model's preset.")
@click.option("--direction", type=click.Choice(["forward", "reverse"]), default="forward", show_default=True)
@click.option("--calibration", type=click.Path(path_type=str), default=None, help="Calibration JSONL (default hmxfeel_mlx/prompts/).")
@click.option("--words", type=click.IntRange(0), default=None,
              help="The judge reads each reply's first N words (0 = whole replies); default: the model's preset, as its runs do.")
@format_option
def judge_check(model, modes, template, direction, calibration, words, fmt):
    """Score the labelled calibration set: ROC-AUC and Spearman per mode, and the map from the
    judge's raw score to the rubric's scale (machine-like 0, neutral 5, human-like 10) with its fit."""
    from pathlib import Path

    from .models.loading import load_model
    from .training.calibration import judge_check as run_check
    from .training.config import model_preset
    from .training.heldout import load_template
    from .training.prompts import load_calibration

    preset = model_preset(model)
    variant = template if template is not None else preset.get("judge_template", "")
    words = words if words is not None else int(preset.get("judge_words", 0))
    tmpl = load_template(direction, variant)
    rows = load_calibration(Path(calibration) if calibration else None)
    loaded = load_model(model)
    out, maps = [], []
    for mode in modes or ("text", "logprob"):
        r = run_check(loaded.model, loaded.tokenizer, tmpl, rows, mode, template_name=variant or "default", max_words=words)
        raw, cal = r.mean_by_label, r.mean_calibrated
        cells = (mode, f"{r.auc:.3f}", f"{r.spearman:.3f}", f"{raw['human']:.2f}", f"{raw['neutral']:.2f}",
                 f"{raw['machine']:.2f}", f"{cal['human']:.2f}", f"{cal['neutral']:.2f}", f"{cal['machine']:.2f}",
                 f"{r.rmse:.2f}", str(r.unparsed), f"{r.seconds:.1f}")
        out.append({**dict(zip(JUDGE_CHECK_COLUMNS, cells)), "map": r.scale.describe(), "slope": r.scale.slope,
                    "intercept": r.scale.intercept, "warning": r.warning or ""})
        maps.append(f"  {mode}: calibrated = {r.scale.describe()}  (slope {r.scale.slope:.4f}, intercept "
                    f"{r.scale.intercept:.4f})" + (f"\n  warning: {r.warning}" if r.warning else ""))
    notes = ["map (logistic, fitted to the anchors machine-like 0 / neutral 5 / human-like 10"
             + (", mirrored for the reverse rubric" if direction == "reverse" else "") + "):", *maps]
    reads = f"first {words} words" if words else "whole replies"
    title = f"judge-check {loaded.name} ({direction} rubric, template '{variant or 'default'}', {reads}, {len(rows)} rows)"
    print_rows(out, JUDGE_CHECK_COLUMNS, fmt, title=title, right=JUDGE_CHECK_COLUMNS[1:], notes=notes)


@cli.command(context_settings=CONTEXT)
@click.argument("target", metavar="MODEL|RUN")
@checkpoint_option
@click.option("--samples", type=click.IntRange(1), default=32, show_default=True, help="Replies per held-out question.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=str), default=None, help="Also write the result as JSON.")
@click.option("--calibration", type=click.Path(path_type=str), default=None,
              help="Calibration JSONL for a model TARGET's judge scale (default: the run's set, or hmxfeel_mlx/prompts/).")
def heldout(target, checkpoint, samples, seed, out, calibration):
    """Held-out feeling score of MODEL or a RUN's checkpoint: replies to the 10 held-out questions
    judged by the frozen base model with the forward rubric, raw and calibrated (the run's judge
    calibration, or one fitted now for a model), with mean ± standard error, and the KL to the
    base at the sampling temperature. Progress goes to stderr."""
    from .training.progress import ProgressLine

    progress = ProgressLine()
    try:
        record = _heldout(target, checkpoint, samples, seed, calibration, progress)
    finally:
        progress.close()
    click.echo(f"{record['label']}: held-out score {record['eval_score']:.3f} ± {record['eval_score_se']:.3f} raw, "
               f"{record['eval_score_cal']:.3f} ± {record['eval_score_cal_se']:.3f} calibrated (se, "
               f"n={record['eval_n']}), KL to base {record['eval_kl']:.4f}/token, "
               f"{record['eval_kl_reply']:.3f} ± {record['eval_kl_reply_se']:.3f} nats/reply "
               f"(T={record['eval_kl_temperature']:g})")
    if out:
        from pathlib import Path

        from .runfolder import write_json_atomic

        write_json_atomic(Path(out), {k: v for k, v in record.items() if k != "label"})


def _heldout(target, checkpoint, samples, seed, calibration, progress) -> dict:
    from dataclasses import replace

    from .models.loading import load_model
    from .targets import resolve_target
    from .training.calibration import CALIBRATION_FILE, load_calibration_result
    from .training.config import resolve_config
    from .training.trainer import check_questions, evaluate_heldout, fit_calibration, load_templates

    t = resolve_target(target, checkpoint)
    if t.config:
        config = resolve_config(base=t.config)
    else:
        config = resolve_config(overrides={"model": t.model})
    config = replace(config, eval_samples=samples, seed=seed, eval_temperature=config.eval_temperature or 1.0,
                     calibration_set=calibration or config.calibration_set)
    _, eval_qs = check_questions(config)
    templates = load_templates(config)
    progress.stage("loading the model")
    loaded = load_model(t.model, adapter=t.adapter)
    if t.adapter is None:
        from .training.trainer import attach_lora

        attach_lora(loaded.model, config)  # zero-initialised LoRA: the base model, judged the same way
    stored = t.run / CALIBRATION_FILE if t.run is not None else None
    if stored is not None and stored.is_file() and calibration is None:
        fit, source = load_calibration_result(stored), str(stored)
    else:
        fit = fit_calibration(loaded, config, templates, progress)
        source = f"fitted now with the base judge on {fit.n} labelled replies"
    progress.stage("held-out evaluation")
    result = evaluate_heldout(loaded, eval_qs, config, templates, fit.scale, progress)
    result.pop("eval_samples")
    return {"label": t.label, "target": target, "model": t.model, "adapter": str(t.adapter) if t.adapter else None,
            "samples_per_question": samples, "seed": seed, "judge_mode": config.judge_mode,
            "judge_template": config.judge_template,
            "judge_calibration": {"source": source, **fit.to_dict()["scale"], "auc": fit.auc}, **result}


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
    from .evals.datasets.commands import data_group

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
        from .models.backend import reexec_with_openblas

        reexec_with_openblas()
    cli.main(args=args, prog_name="hmx-mlx")


if __name__ == "__main__":
    main()
