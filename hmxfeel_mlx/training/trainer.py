"""Self-rewarded rubric GRPO (HMX-feel): `hmx-mlx train MODEL`.

At the start, the frozen base judge scores the labelled calibration set and its scale map
(raw score -> the rubric's 0-10 scale) is stored as ``judge_calibration.json``
(``calibration``); a resumed run reuses it. Then, each step, for ``prompts_per_step``
questions of the training set:

1. rollout: G replies per question in one batched, KV-cached generation; token ids
   and sampling log-probs kept;
2. self-judge: the frozen base model (LoRA scale 0, no second copy) scores every
   reply 0-10 against the rubric, all replies in one batch;
3. reward: forward = the score; reverse = the reversed rubric's score or 10 - score;
4. GRPO update of the LoRA adapters (``update``: group-normalised advantages, clipped
   ratio, optional k3 KL to the LoRA-off base), one optimiser step per rollout.

Every ``eval_every`` steps the held-out questions are answered (``heldout``: fixed-seed
sampling, frozen-base judge with the forward rubric, raw and calibrated scores, KL(policy ||
base) at the sampling temperature), the step's metrics and samples are written, *then* its
checkpoint, and the selection rule (``selection``: the first checkpoint whose calibrated
held-out score crosses the threshold) is applied. A kill between the two leaves metrics
without a checkpoint; the resume recomputes that step, so every step with metrics that
survives has its checkpoint.

``progress.json`` tells the dashboard which stage is running and how far it is.

Randomness depends only on (seed, step): the data order is a seeded permutation
per epoch, each rollout row's sampling key is derived from (seed, step, the prompt's
index in the step, the reply's index in its group) (``rollout.row_keys``), LoRA dropout
is off. So a resumed run reproduces the metrics of an uninterrupted one, and a run on K
ranks those of one process.

Under ``mlx.launch`` (docs/distributed.md) each rank rolls out and judges its share of the
step's prompts; the rollout is gathered on every rank, each rank back-propagates its rows,
the gradients are summed and every rank applies the same update. Rank 0 alone calibrates,
runs the held-out evaluations and writes the run folder; a resume loads rank 0's checkpoint
on every rank.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

from ..distributed import training as parallel
from ..distributed.collectives import broadcast_object
from ..distributed.world import World
from ..distributed.world import world as this_world
from ..errors import HmxError
from ..locks import folder_lock
from ..models.backend import device_name
from ..models.completions import completion_logprobs, pad_id
from ..models.completions import make_completion_batch as make_update_batch  # noqa: F401  (evals.axes.scoring imports both)
from ..models.generation import PrefixStore
from ..models.loading import LoadedModel
from ..runfolder import RunPaths, append_jsonl, read_json, read_jsonl, rewrite_jsonl, write_json_atomic
from . import grpo
from . import selection
from .calibration import CALIBRATION_FILE, CalibrationResult, judge_check, load_calibration_result, save_calibration
from .checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .heldout import evaluate_heldout, load_templates
from .judge import judge_work, lora_disabled
from .progress import PROGRESS_FILE, ProgressFile
from .prompts import Question, load_calibration, load_questions
from .rollout import Judged, floored_replies, judge_rollout, repetition_stats, row_keys, sample_rollout, step_key
from .update import build_value_and_grad, grpo_update

__all__ = ["completion_logprobs", "evaluate_heldout", "load_templates", "make_update_batch", "step_key", "train"]


class TrainingStopped(HmxError):
    """Training ended early for a reason the user should see (NaN loss, exploding KL)."""


# --------------------------------------------------------------------------- data order


@dataclass
class DataCursor:
    """Position in a seeded per-epoch permutation of the training questions."""

    seed: int
    size: int
    epoch: int = 0
    index: int = 0

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def take(self, n: int) -> list[int]:
        out = []
        while len(out) < n:
            order = self.order(self.epoch)
            out.append(int(order[self.index]))
            self.index += 1
            if self.index == self.size:
                self.epoch, self.index = self.epoch + 1, 0
        return out

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}


# --------------------------------------------------------------------------- policy


def attach_lora(model, config: TrainConfig) -> dict:
    """Freeze the model, add LoRA layers (seeded init) and return mlx-lm's adapter_config."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    n_blocks = len(model.layers)
    num_layers = n_blocks if config.lora_layers == -1 else min(config.lora_layers, n_blocks)
    params = {"rank": config.lora_rank, "scale": config.lora_scale, "dropout": 0.0}
    if config.lora_keys:
        params["keys"] = list(config.lora_keys)
    model.freeze()
    mx.random.seed(config.seed)
    linear_to_lora_layers(model, num_layers, params)
    return {"fine_tune_type": "lora", "num_layers": num_layers, "lora_parameters": params, "model": config.model}


# --------------------------------------------------------------------------- judging


def judge_reward(model, tok, rollout, config: TrainConfig, templates: dict, frozen_base: bool,
                 progress: ProgressFile | None = None, prefixes: PrefixStore | None = None) -> Judged:
    """Judge a rollout for the run's reward.

    forward: the forward-rubric score. reverse: ``reverse_reward`` = rubric (the reversed
    rubric's score), complement (10 - forward score) or mixed (the mean of both, two judge
    passes). ``scores`` are the forward-rubric scores whenever the forward judge ran.
    ``prefixes``: the base's rubric prefixes, kept for the whole run (frozen-base judge only).
    """
    progress = progress or ProgressFile(None)
    passes = 2 if config.direction == "reverse" and config.reverse_reward == "mixed" else 1
    total, unit = judge_work(len(rollout.texts) if rollout is not None else 0, config.judge_mode,
                             config.judge_max_tokens)
    progress.part(None, passes * total, unit)
    judge = lambda direction, complement=False: judge_rollout(  # noqa: E731
        model, tok, rollout, templates[direction], config.judge_mode, frozen_base, complement,
        config.judge_max_tokens, config.judge_batch, progress, prefixes, config.judge_words)
    if config.direction == "forward":
        return judge("forward")
    if config.reverse_reward == "rubric":
        return judge("reverse")
    fwd = judge("forward", complement=True)
    if config.reverse_reward == "complement":
        return fwd
    rev = judge("reverse")
    mass = None if fwd.mass is None or rev.mass is None else np.concatenate([fwd.mass, rev.mass])
    return Judged(fwd.scores, (fwd.rewards + rev.rewards) / 2, fwd.verdicts, fwd.seconds + rev.seconds, mass)


def fit_calibration(loaded: LoadedModel, config: TrainConfig, templates: dict,
                    progress: ProgressFile) -> CalibrationResult:
    """The judge's calibration fitted now: the frozen base judge (the run's judge mode, the
    forward rubric) on the labelled calibration set."""
    rows = load_calibration(Path(config.calibration_set) if config.calibration_set else None)
    progress.stage("calibration", None, *judge_work(len(rows), config.judge_mode, config.judge_max_tokens))
    with lora_disabled(loaded.model):
        return judge_check(loaded.model, loaded.tokenizer, templates["forward"], rows, config.judge_mode,
                           template_name=config.judge_template or "default",
                           max_verdict_tokens=config.judge_max_tokens, max_batch=config.judge_batch,
                           progress=progress, max_words=config.judge_words)


def calibrate(loaded: LoadedModel, config: TrainConfig, templates: dict, paths: RunPaths,
              progress: ProgressFile) -> CalibrationResult:
    """The run's judge calibration: the stored one, or fitted now with the frozen base judge
    (the run's judge mode, the forward rubric) on the labelled calibration set, and stored."""
    path = paths.root / CALIBRATION_FILE
    if path.is_file():
        return load_calibration_result(path)
    result = fit_calibration(loaded, config, templates, progress)
    save_calibration(path, result)
    if result.warning:
        print(f"judge calibration: {result.warning}", file=sys.stderr)
    return result


def select_checkpoint(config: TrainConfig, evals: list[dict], checkpoints: set[int]) -> dict:
    """Apply the selection rule (``selection.select``) to the evaluations that have a checkpoint."""
    return selection.select([e for e in evals if e["step"] in checkpoints], config.direction,
                            config.select_threshold)


# --------------------------------------------------------------------------- the loop


def check_questions(config: TrainConfig) -> tuple[list[Question], list[Question]]:
    qs = load_questions(
        Path(config.train_questions) if config.train_questions else None,
        Path(config.eval_questions) if config.eval_questions else None,
    )
    if len(qs.train) < config.prompts_per_step:
        raise HmxError(
            f"the training question set has {len(qs.train)} questions, fewer than prompts_per_step="
            f"{config.prompts_per_step}. Add questions or lower prompts_per_step."
        )
    return qs.train, qs.eval


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict
    stopped: str | None = None


SUMMARY_EVAL_KEYS = ("step", "eval_score", "eval_score_se", "eval_score_cal", "eval_score_cal_se", "eval_reward",
                     "eval_kl", "eval_kl_k1", "eval_kl_reply", "eval_kl_reply_se", "eval_kl_temperature", "eval_len",
                     "eval_n", "eval_judge_score_mass")


def summarize(config: TrainConfig, paths: RunPaths, status: str, stopped: str | None = None) -> dict:
    rows = read_jsonl(paths.metrics)
    evals = [r for r in rows if "eval_score" in r]
    ckpts = {int(p.name.split("_")[1]) for p in list_checkpoints(paths)}
    crossed = selection.crossed(evals, config.direction, config.select_threshold)
    summary = {
        "status": status, "model": config.model, "direction": config.direction, "seed": config.seed,
        "steps_done": rows[-1]["step"] if rows else 0, "steps": config.steps,
        **select_checkpoint(config, evals, ckpts),
        "crossing_steps": selection.crossing_checkpoints([e for e in evals if e["step"] in ckpts], config.direction,
                                                         config.select_threshold),
        "evals": [{**{k: e[k] for k in SUMMARY_EVAL_KEYS if k in e}, "checkpoint": e["step"] in ckpts,
                   "crossed": hit} for e, hit in zip(evals, crossed)],
    }
    warning = selection.base_warning(evals, config.direction, config.select_threshold)
    if warning:
        summary["rule_warning"] = warning
    if evals:
        base = evals[0] if evals[0]["step"] == 0 else {}
        summary["base_eval_score"] = base.get("eval_score")
        summary["base_eval_score_cal"] = base.get("eval_score_cal")
        summary["final_eval_score"] = evals[-1]["eval_score"]
        summary["final_eval_score_cal"] = evals[-1].get("eval_score_cal")
    cal_path = paths.root / CALIBRATION_FILE
    if cal_path.is_file():
        cal = load_calibration_result(cal_path)
        summary["judge_calibration"] = {"method": cal.scale.method, "slope": cal.scale.slope,
                                        "intercept": cal.scale.intercept, "center": cal.scale.center,
                                        "auc": cal.auc, "spearman": cal.spearman, "rmse": cal.rmse}
    if stopped:
        summary["stopped"] = stopped
    write_json_atomic(paths.summary, summary)
    return summary


def train(
    config: TrainConfig,
    run_dir: Path,
    loaded: LoadedModel | None = None,
    resume: bool = False,
    on_step: Callable[[dict, list[dict]], None] | None = None,
    world: World | None = None,
) -> TrainResult:
    """Run (or resume) GRPO training into ``run_dir``; return the summary.

    The run folder's lock (``locks.folder_lock``) is held throughout: a second process
    training or resuming the same folder is refused, naming the holder. ``world``: the ranks
    training together (default: this process's launch, one rank outside one); only rank 0
    touches the run folder (and calls ``on_step``)."""
    world = world or this_world()
    check_questions(config)  # mistakes in the question set or the rubric files before the folder exists
    load_templates(config)
    if not world.main:
        return _train(config, run_dir, loaded, resume, None, world)
    with folder_lock(run_dir):
        return _train(config, run_dir, loaded, resume, on_step, world)


def _train(config: TrainConfig, run_dir: Path, loaded: LoadedModel | None, resume: bool,
           on_step: Callable[[dict, list[dict]], None] | None, world: World) -> TrainResult:
    from ..models.loading import load_model

    paths = RunPaths(Path(run_dir))
    train_qs, eval_qs = check_questions(config)
    templates = load_templates(config)
    main = world.main
    if main:
        paths.root.mkdir(parents=True, exist_ok=True)
        config.save(paths.config)  # on resume too: --steps may have changed (written atomically)
    progress = ProgressFile(paths.root / PROGRESS_FILE if main else None)
    if loaded is None:
        progress.stage("loading the model")
        loaded = load_model(config.model)
    model, tok = loaded.model, loaded.tokenizer
    adapter_config = attach_lora(model, config)
    optimizer = optim.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    cursor = DataCursor(config.seed, len(train_qs))
    first_step = 1
    if resume:
        state = parallel.broadcast_resume(latest_checkpoint(paths) if main else None, model, optimizer, world,
                                          load_checkpoint)
        if state is not None:
            cursor.epoch, cursor.index = state["cursor"]["epoch"], state["cursor"]["index"]
            first_step = state["step"] + 1
        last_done = first_step - 1
        if main:  # lines after the checkpoint are recomputed (identically) from it
            rewrite_jsonl(paths.metrics, lambda r: r.get("step", 0) <= last_done)
            rewrite_jsonl(paths.samples, lambda r: r.get("step", 0) <= last_done)
    scale = calibrate(loaded, config, templates, paths, progress).scale if main else None
    value_and_grad = build_value_and_grad(model, config)
    frozen_base = config.judge == "base"
    base_prefixes = PrefixStore()  # the rubrics' prefixes under the base's weights, which never change
    pid = pad_id(tok)

    def evaluate(step: int, stage: str) -> dict:
        progress.stage(stage, step)
        result = evaluate_heldout(loaded, eval_qs, config, templates, scale, progress, base_prefixes)
        samples = result.pop("eval_samples")
        append_jsonl(paths.samples, [{"step": step, "eval": True, **s} for s in samples])
        return result

    def checkpoint(step: int) -> None:
        progress.stage("checkpoint", step)
        save_checkpoint(paths, step, model, optimizer, adapter_config,
                        {"cursor": cursor.state(), "seed": config.seed, "rng": "derived from (seed, step)"})

    stopped = None
    try:
        if main and first_step == 1 and not any(r.get("step") == 0 for r in read_jsonl(paths.metrics)):
            base = {"step": 0, "device": device_name(), **evaluate(0, "base evaluation")}
            append_jsonl(paths.metrics, [base])
            if on_step:
                on_step(base, [])
        for step in range(first_step, config.steps + 1):
            mx.reset_peak_memory()
            t0 = time.perf_counter()
            questions = [train_qs[i] for i in cursor.take(config.prompts_per_step)]
            share = world.shard(len(questions))  # this rank's prompts (all of them on one rank)
            mine = [questions[i] for i in share]
            progress.stage("rollout", step, len(mine) * config.group_size * config.max_new_tokens, "tokens")
            rollout = sample_rollout(model, tok, mine, config.group_size, config.max_new_tokens,
                                     config.temperature, row_keys(config.seed, step, share, config.group_size),
                                     config.system_prompt, max_batch=config.judge_batch, progress=progress)
            progress.stage("judge", step)
            judged = judge_reward(model, tok, rollout, config, templates, frozen_base, progress, base_prefixes)
            t_gather = time.perf_counter()
            rollout, judged = parallel.gather_step(rollout, judged, questions, config.group_size, world)
            t_gather = time.perf_counter() - t_gather
            floored = floored_replies(rollout.texts, config.degenerate_floor, config.min_reply_words,
                                      config.degenerate_threshold)
            if floored.any():
                judged.rewards = np.where(floored, float(config.degenerate_floor), judged.rewards)
            rewards = mx.array(judged.rewards.astype(np.float32))
            adv = np.array(grpo.group_advantages(rewards, config.group_size, scale_std=config.scale_rewards))
            zero = np.array(grpo.zero_spread_groups(rewards, config.group_size))
            progress.stage("update", step, len(rollout.tokens), "rows")
            t_upd = time.perf_counter()
            rows = range(share.start * config.group_size, share.stop * config.group_size)
            upd = grpo_update(model, optimizer, value_and_grad, rollout, adv, config, pid, progress, rows, world)
            t_update = time.perf_counter() - t_upd
            if not math.isfinite(upd["loss"]):
                stopped = f"NaN/inf loss at step {step}; the update was not applied"
                break
            completion_lp = [lp for lps in rollout.logprobs for lp in lps]
            metrics = {
                "step": step,
                "reward_mean": float(np.nanmean(judged.rewards)), "reward_std": float(np.nanstd(judged.rewards)),
                "score_mean": float(np.nanmean(judged.scores)),
                "frac_reward_zero_std": float(zero.mean()), "judge_nan": int(np.isnan(judged.scores).sum()),
                "floored": int(floored.sum()),
                **({"judge_score_mass": judged.mean_mass} if judged.mass is not None else {}),
                **{k: v for k, v in upd.items() if k != "update_tokens"},
                "entropy": float(-np.mean(completion_lp)) if completion_lp else 0.0,
                "completion_len": float(np.mean([len(t) for t in rollout.tokens])),
                "truncated_ratio": float(np.mean([not f for f in rollout.finished])),
                **repetition_stats(rollout.texts),
                "rollout_s": rollout.seconds, "judge_s": judged.seconds, "update_s": t_update,
                "rollout_tok_s": rollout.num_tokens / max(rollout.seconds, 1e-9),
                "judge_replies_s": len(rollout.texts) / max(judged.seconds, 1e-9),
                "update_tok_s": upd["update_tokens"] / max(t_update, 1e-9),
                **({"ranks": world.size, "gather_s": t_gather} if world.distributed else {}),
            }
            samples = [
                {"step": step, "prompt_id": q.id, "prompt": q.question, "completion": text, "score": float(s),
                 "reward": float(r), "advantage": float(a), "finished": f, "tokens": len(toks),
                 **({"judge_text": v.text} if v.text is not None else {}),
                 **({"judge_score_mass": v.mass} if v.mass is not None else {}), **({"floored": True} if fl else {})}
                for q, text, s, r, a, f, toks, v, fl in zip(rollout.questions, rollout.texts, judged.scores,
                                                            judged.rewards, adv, rollout.finished, rollout.tokens,
                                                            judged.verdicts, floored)
            ]
            evaluating = step % config.eval_every == 0 or step == config.steps
            if evaluating:
                parallel.check_same_weights(model, world, step)
                if main:
                    metrics.update(evaluate(step, "held-out evaluation"))
            metrics["step_s"] = time.perf_counter() - t0
            metrics["peak_memory_gb"] = mx.get_peak_memory() / 2**30
            if main:
                # Metrics and samples first, then the checkpoint: a kill in between leaves a step with
                # metrics but no checkpoint, which the resume recomputes from the previous checkpoint.
                append_jsonl(paths.samples, samples)
                append_jsonl(paths.metrics, [metrics])
                if evaluating:
                    checkpoint(step)
                if on_step:
                    on_step(metrics, samples)
                if "eval_kl" in metrics and metrics["eval_kl"] > config.max_kl:
                    stopped = f"held-out KL {metrics['eval_kl']:.2f} exceeded max_kl={config.max_kl} at step {step}"
            if evaluating:
                stopped = broadcast_object(stopped, world)  # rank 0 evaluated: its decision holds for all
            if stopped:
                break
    except KeyboardInterrupt:
        if not main:
            raise
        summary = summarize(config, paths, "interrupted")
        progress.stage("interrupted")
        progress.flush()
        last = latest_checkpoint(paths)
        raise TrainingStopped(
            f"interrupted; the last complete checkpoint is {last.name if last else 'none (no step reached an evaluation)'}. "
            f"Resume with: hmx-mlx train --resume {paths.root}"
        ) from None
    status = "stopped" if stopped else "finished"
    summary = summarize(config, paths, status, stopped) if main else {"status": status, "rank": world.rank}
    progress.stage(status)
    progress.flush()
    if stopped:
        last = latest_checkpoint(paths) if main else None
        raise TrainingStopped(
            f"training stopped: {stopped}. The last good checkpoint is {last.name if last else 'none'}; "
            f"lower learning_rate or raise beta, then start a new run (or resume with --resume {paths.root})."
        )
    return TrainResult(paths.root, summary)


def resume_config(run_dir: Path, overrides: dict, settings: dict | None = None) -> TrainConfig:
    """The run's own config, with the few options that may change on resume (steps).

    ``overrides`` are flags (None: not given); ``settings`` are --set values (None is a value)."""
    from .config import resolve_config

    base = read_json(RunPaths(Path(run_dir)).config, "run config")
    allowed = {"steps"}
    settings = dict(settings or {})
    bad = sorted({k for k, v in overrides.items() if v is not None and k not in allowed} | (set(settings) - allowed))
    if bad:
        raise HmxError(
            f"cannot change {', '.join(bad)} when resuming {run_dir}: a resumed run keeps its configuration. "
            "Start a new run instead (only --steps may be raised on resume)."
        )
    return resolve_config(overrides={k: v for k, v in overrides.items() if k in allowed}, base=base,
                          settings=settings)
