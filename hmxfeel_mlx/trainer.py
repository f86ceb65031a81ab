"""Self-rewarded rubric GRPO (HMX-feel): `hmx-mlx train MODEL`.

Each step, for ``prompts_per_step`` questions of the training set:

1. rollout: G replies per question in one batched, KV-cached generation; token ids
   and sampling log-probs kept;
2. self-judge: the frozen base model (LoRA scale 0, no second copy) scores every
   reply 0-10 against the rubric, all replies in one batch;
3. reward: forward = the score; reverse = the reversed rubric's score or 10 - score;
4. GRPO update of the LoRA adapters (group-normalised advantages, clipped ratio,
   optional k3 KL to the LoRA-off base), one optimiser step per rollout.

Every ``eval_every`` steps the held-out questions are answered (fixed-seed
sampling), judged by the frozen base with the forward rubric, the KL(policy ||
base) is measured on those replies, a checkpoint is written and the selection
rule (the first checkpoint whose held-out score crosses the threshold) is applied.

Randomness depends only on (seed, step): the data order is a seeded permutation
per epoch, each step's sampling key is derived from (seed, step), LoRA dropout is
off. So a resumed run reproduces the metrics of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map

from . import grpo
from .backend import device_name
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .errors import HmxError
from .generation import forward_hidden, left_pad, make_batch_cache, output_logits
from .judge import lora_disabled
from .loading import LoadedModel
from .prompts import JudgeTemplate, Question, load_judge_template, load_questions
from .rollout import Judged, Rollout, floor_degenerate, judge_rollout, mean_and_stderr, repetition_stats, sample_rollout
from .runfolder import RunPaths, append_jsonl, read_json, read_jsonl, rewrite_jsonl, write_json_atomic
from .selection import select

EVAL_STREAM = 1_000_003  # seed stream for held-out sampling (fixed for the whole run)


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


def step_key(seed: int, step: int) -> mx.array:
    """The sampling key of a step, a function of (seed, step) only."""
    return mx.random.key(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))


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


@dataclass
class UpdateBatch:
    """Left-padded prompts followed by right-padded completions: completion t of every
    row sits in column P + t, so the completion logits are one slice of the hidden states."""

    x: mx.array  # (B, P + T - 1) input ids
    pads: list[int]  # left padding of each prompt
    width: int  # P
    targets: mx.array  # (B, T) completion ids
    mask: mx.array  # (B, T) float32, 1 on completion tokens
    old_logp: mx.array  # (B, T) sampling log-probs


def make_update_batch(prompt_ids, tokens, logprobs, pad_id: int) -> UpdateBatch:
    prompts, pads = left_pad(prompt_ids, pad_id)
    width = prompts.shape[1]
    longest = max(len(t) for t in tokens)
    targets = np.full((len(tokens), longest), pad_id, dtype=np.int32)
    mask = np.zeros((len(tokens), longest), dtype=np.float32)
    old = np.zeros((len(tokens), longest), dtype=np.float32)
    for i, (t, lp) in enumerate(zip(tokens, logprobs)):
        targets[i, : len(t)] = t
        mask[i, : len(t)] = 1.0
        old[i, : len(t)] = lp
    targets = mx.array(targets)
    x = mx.concatenate([prompts, targets[:, :-1]], axis=1)  # the last completion token is never an input
    return UpdateBatch(x, pads, width, targets, mx.array(mask), mx.array(old))


def completion_logprobs(model, batch: UpdateBatch, temperature: float, chunk: int = 32) -> mx.array:
    """log p(completion token t | prompt, tokens < t) under ``model``, (B, T) float32.

    The vocabulary-sized part (LM head, log-softmax) runs ``chunk`` positions at a time under
    ``mx.checkpoint``: the backward pass recomputes each chunk's logits instead of keeping
    (B, T, V) of them, about 0.4 GiB less at 8 x 128 tokens with a 49k vocabulary. The head
    is frozen here (LoRA sits inside the blocks), so only the hidden states need gradients.
    """
    hidden = forward_hidden(model, batch.x, make_batch_cache(model, batch.pads))  # (B, P+T-1, D)
    T = batch.targets.shape[1]
    hidden = hidden[:, batch.width - 1 : batch.width - 1 + T]  # (B, T, D)
    parts = []
    for s in range(0, T, chunk):
        targets = batch.targets[:, s : s + chunk]
        head = mx.checkpoint(lambda h, t=targets: grpo.token_logprobs(output_logits(model, h), t, temperature))
        parts.append(head(hidden[:, s : s + chunk]))
    lp = parts[0] if len(parts) == 1 else mx.concatenate(parts, axis=1)
    return mx.where(batch.mask > 0, lp, 0.0)


def loss_weight(loss_type: str, rows: int, tokens: float, total_rows: int, total_tokens: float) -> float:
    """Weight that turns a chunk's normalised loss into its share of the whole batch's loss."""
    if loss_type in ("bnpo", "dapo"):
        return tokens / max(total_tokens, 1.0)
    return rows / total_rows  # grpo (mean over sequences), dr_grpo (sum / (B * L))


def grpo_update(
    model, optimizer, value_and_grad, rollout: Rollout, advantages: np.ndarray, config: TrainConfig, pad_id: int
) -> dict:
    """One optimiser step on the rollout, in chunks of ``update_batch_size`` rows with
    exact gradient accumulation. Rows with zero advantage are skipped when beta = 0
    (their gradient is exactly zero) but still count in the normaliser."""
    truncated = np.array([not f for f in rollout.finished])
    lengths = np.array([len(t) for t in rollout.tokens], dtype=np.float64)
    if config.mask_truncated:
        lengths = np.where(truncated, 0.0, lengths)
    total_rows, total_tokens = len(rollout.tokens), float(lengths.sum())
    rows = [i for i in range(total_rows) if lengths[i] > 0 and (config.beta > 0 or advantages[i] != 0)]
    metrics = {"loss": 0.0, "kl": 0.0, "clip_ratio/low_mean": 0.0, "clip_ratio/high_mean": 0.0,
               "clip_ratio/region_mean": 0.0, "update_tokens": 0}
    if not rows:
        return {**metrics, "grad_norm": 0.0, "skipped_update": True}
    grads_sum = None
    for start in range(0, len(rows), config.update_batch_size):
        chunk = rows[start : start + config.update_batch_size]
        batch = make_update_batch(
            [rollout.prompt_ids[i] for i in chunk], [rollout.tokens[i] for i in chunk],
            [rollout.logprobs[i] for i in chunk], pad_id,
        )
        mask = batch.mask
        if config.mask_truncated:
            mask = grpo.mask_truncated(mask, mx.array(truncated[chunk]))
        ref = None
        if config.beta > 0:
            with lora_disabled(model):
                ref = mx.stop_gradient(completion_logprobs(model, batch, config.temperature))
        weight = loss_weight(config.loss_type, len(chunk), float(lengths[chunk].sum()), total_rows, total_tokens)
        (loss, parts), grads = value_and_grad(model, batch, mask, mx.array(advantages[chunk], dtype=mx.float32), ref, weight)
        grads_sum = grads if grads_sum is None else tree_map(mx.add, grads_sum, grads)
        mx.eval(loss, parts, grads_sum)
        chunk_tokens = float(mask.sum())
        metrics["loss"] += float(loss)
        metrics["update_tokens"] += int(chunk_tokens)
        for k in ("kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
            metrics[k] += float(parts[k]) * chunk_tokens
    used = max(metrics["update_tokens"], 1)
    for k in ("kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
        metrics[k] /= used
    if not math.isfinite(metrics["loss"]):
        return {**metrics, "grad_norm": math.nan, "skipped_update": True}
    grads_sum, norm = optim.clip_grad_norm(grads_sum, config.max_grad_norm)
    optimizer.update(model, grads_sum)
    mx.eval(model.trainable_parameters(), optimizer.state)
    return {**metrics, "grad_norm": float(norm), "skipped_update": False}


def build_value_and_grad(model, config: TrainConfig) -> Callable:
    """The loss and its gradient, built once (mlx-lm's trainer habit)."""

    def loss_fn(model, batch: UpdateBatch, mask, adv, ref, weight):
        logp = completion_logprobs(model, batch, config.temperature)
        loss, parts = grpo.grpo_loss(
            logp, batch.old_logp, adv, mask, ref_logp=ref, beta=config.beta, epsilon=config.epsilon,
            epsilon_high=config.epsilon_high, loss_type=config.loss_type, max_completion_length=config.max_new_tokens,
        )
        return loss * weight, parts

    return nn.value_and_grad(model, loss_fn)


# --------------------------------------------------------------------------- held-out evaluation


def heldout_kl(model, rollout: Rollout, pad_id: int, chunk: int) -> tuple[float, float]:
    """KL(policy || base) per completion token on policy samples: (k1 mean, k3 mean).

    Both are unbiased; k3 (reported as ``eval_kl``) is never negative and has lower variance."""
    k1 = k3 = n = 0.0
    for s in range(0, len(rollout.tokens), chunk):
        idx = range(s, min(s + chunk, len(rollout.tokens)))
        batch = make_update_batch([rollout.prompt_ids[i] for i in idx], [rollout.tokens[i] for i in idx],
                                  [rollout.logprobs[i] for i in idx], pad_id)
        policy = completion_logprobs(model, batch, 1.0)
        with lora_disabled(model):
            base = completion_logprobs(model, batch, 1.0)
        diff = (policy - base) * batch.mask
        k3_tok = grpo.kl_k3(policy, base) * batch.mask
        mx.eval(diff, k3_tok)
        k1 += float(diff.sum())
        k3 += float(k3_tok.sum())
        n += float(batch.mask.sum())
    return k1 / max(n, 1), k3 / max(n, 1)


def judge_reward(model, tok, rollout: Rollout, config: TrainConfig, templates: dict, frozen_base: bool) -> Judged:
    """Judge a rollout for the run's reward.

    forward: the forward-rubric score. reverse: ``reverse_reward`` = rubric (the reversed
    rubric's score), complement (10 - forward score) or mixed (the mean of both, two judge
    passes). ``scores`` are the forward-rubric scores whenever the forward judge ran.
    """
    judge = lambda direction, complement=False: judge_rollout(  # noqa: E731
        model, tok, rollout, templates[direction], config.judge_mode, frozen_base, complement,
        config.judge_max_tokens, config.judge_batch)
    if config.direction == "forward":
        return judge("forward")
    if config.reverse_reward == "rubric":
        return judge("reverse")
    fwd = judge("forward", complement=True)
    if config.reverse_reward == "complement":
        return fwd
    rev = judge("reverse")
    return Judged(fwd.scores, (fwd.rewards + rev.rewards) / 2, fwd.verdicts, fwd.seconds + rev.seconds)


def evaluate_heldout(loaded: LoadedModel, questions: list[Question], config: TrainConfig, templates: dict) -> dict:
    """Held-out score (frozen-base judge, forward rubric), the run's reward, and KL to the base."""
    model, tok = loaded.model, loaded.tokenizer
    greedy = config.eval_temperature == 0
    start = time.perf_counter()
    rollout = sample_rollout(
        model, tok, questions, 1 if greedy else config.eval_samples, config.max_new_tokens,
        config.eval_temperature, step_key(config.seed, EVAL_STREAM), config.system_prompt,
        max_batch=config.judge_batch,
    )
    judged = judge_rollout(model, tok, rollout, templates["forward"], config.judge_mode, True,
                           max_verdict_tokens=config.judge_max_tokens, max_batch=config.judge_batch)
    score, score_se = mean_and_stderr(judged.scores)
    if config.direction == "forward":
        reward = score
    elif config.reverse_reward == "complement":
        reward = 10.0 - score
    else:
        rev = judge_rollout(model, tok, rollout, templates["reverse"], config.judge_mode, True,
                            max_verdict_tokens=config.judge_max_tokens, max_batch=config.judge_batch)
        reward = mean_and_stderr(rev.rewards)[0]
        if config.reverse_reward == "mixed":
            reward = (reward + 10.0 - score) / 2
    k1, k3 = heldout_kl(model, rollout, pad_id(tok), config.update_batch_size)
    return {
        "eval_score": score, "eval_score_se": score_se, "eval_reward": reward, "eval_n": len(rollout.texts),
        "eval_kl": k3, "eval_kl_k1": k1, "eval_len": float(np.mean([len(t) for t in rollout.tokens])),
        "eval_trunc": float(np.mean([not f for f in rollout.finished])), "eval_seconds": time.perf_counter() - start,
        **{f"eval_{k}": v for k, v in repetition_stats(rollout.texts).items()},
        "eval_samples": [{"question": q.question, "completion": t, "score": float(s)}
                         for q, t, s in zip(rollout.questions, rollout.texts, judged.scores)],
    }


def select_checkpoint(config: TrainConfig, evals: list[dict], checkpoints: set[int]) -> dict:
    """Apply the selection rule (``selection.select``) to the evaluations that have a checkpoint."""
    return select([e for e in evals if e["step"] in checkpoints], config.direction, config.select_threshold)


# --------------------------------------------------------------------------- the loop


def pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(tokenizer.eos_token_ids))


def load_templates(config: TrainConfig) -> dict[str, JudgeTemplate]:
    def load(direction):
        variant = config.judge_template
        if variant in ("", "short", "fewshot"):
            return load_judge_template(direction, variant)
        if direction != config.direction and config.direction == "reverse":
            return load_judge_template(direction)  # the forward rubric for held-out scores of a custom reverse run
        return load_judge_template(direction, path=Path(variant))

    return {"forward": load("forward"), "reverse": load("reverse")}


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


def summarize(config: TrainConfig, paths: RunPaths, status: str, stopped: str | None = None) -> dict:
    rows = read_jsonl(paths.metrics)
    evals = [r for r in rows if "eval_score" in r]
    ckpts = {int(p.name.split("_")[1]) for p in paths.checkpoints.glob("step_*") if (p / "state.json").is_file()}
    summary = {
        "status": status, "model": config.model, "direction": config.direction, "seed": config.seed,
        "steps_done": rows[-1]["step"] if rows else 0, "steps": config.steps,
        **select_checkpoint(config, evals, ckpts),
        "evals": [{k: e[k] for k in ("step", "eval_score", "eval_score_se", "eval_reward", "eval_kl", "eval_n")}
                  for e in evals],
    }
    if evals:
        summary["base_eval_score"] = evals[0]["eval_score"] if evals[0]["step"] == 0 else None
        summary["final_eval_score"] = evals[-1]["eval_score"]
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
) -> TrainResult:
    """Run (or resume) GRPO training into ``run_dir``; return the summary."""
    from .loading import load_model

    paths = RunPaths(Path(run_dir))
    train_qs, eval_qs = check_questions(config)
    templates = load_templates(config)
    if loaded is None:
        loaded = load_model(config.model)
    model, tok = loaded.model, loaded.tokenizer
    adapter_config = attach_lora(model, config)
    optimizer = optim.AdamW(learning_rate=config.learning_rate, weight_decay=config.weight_decay)
    cursor = DataCursor(config.seed, len(train_qs))
    first_step = 1
    paths.root.mkdir(parents=True, exist_ok=True)
    if resume:
        ckpt = latest_checkpoint(paths)
        if ckpt is not None:
            state = load_checkpoint(ckpt, model, optimizer)
            cursor.epoch, cursor.index = state["cursor"]["epoch"], state["cursor"]["index"]
            first_step = state["step"] + 1
        last_done = first_step - 1
        # Lines after the checkpoint are recomputed (identically) from it.
        rewrite_jsonl(paths.metrics, lambda r: r.get("step", 0) <= last_done)
        rewrite_jsonl(paths.samples, lambda r: r.get("step", 0) <= last_done)
    else:
        config.save(paths.config)
    value_and_grad = build_value_and_grad(model, config)
    frozen_base = config.judge == "base"
    pid = pad_id(tok)

    def evaluate(step: int) -> dict:
        result = evaluate_heldout(loaded, eval_qs, config, templates)
        samples = result.pop("eval_samples")
        append_jsonl(paths.samples, [{"step": step, "eval": True, **s} for s in samples])
        return result

    def checkpoint(step: int) -> None:
        save_checkpoint(paths, step, model, optimizer, adapter_config,
                        {"cursor": cursor.state(), "seed": config.seed, "rng": "derived from (seed, step)"})

    stopped = None
    try:
        if first_step == 1 and not any(r.get("step") == 0 for r in read_jsonl(paths.metrics)):
            base = {"step": 0, "device": device_name(), **evaluate(0)}
            append_jsonl(paths.metrics, [base])
            if on_step:
                on_step(base, [])
        for step in range(first_step, config.steps + 1):
            mx.reset_peak_memory()
            t0 = time.perf_counter()
            questions = [train_qs[i] for i in cursor.take(config.prompts_per_step)]
            rollout = sample_rollout(model, tok, questions, config.group_size, config.max_new_tokens,
                                     config.temperature, step_key(config.seed, step), config.system_prompt,
                                     max_batch=config.judge_batch)
            judged = judge_reward(model, tok, rollout, config, templates, frozen_base)
            judge_rewards = judged.rewards
            judged.rewards = floor_degenerate(judge_rewards, rollout.texts, config.degenerate_floor,
                                              config.min_reply_words)
            floored = judged.rewards != judge_rewards
            rewards = mx.array(judged.rewards.astype(np.float32))
            adv = np.array(grpo.group_advantages(rewards, config.group_size, scale_std=config.scale_rewards))
            zero = np.array(grpo.zero_spread_groups(rewards, config.group_size))
            t_upd = time.perf_counter()
            upd = grpo_update(model, optimizer, value_and_grad, rollout, adv, config, pid)
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
                **{k: v for k, v in upd.items() if k != "update_tokens"},
                "entropy": float(-np.mean(completion_lp)) if completion_lp else 0.0,
                "completion_len": float(np.mean([len(t) for t in rollout.tokens])),
                "truncated_ratio": float(np.mean([not f for f in rollout.finished])),
                **repetition_stats(rollout.texts),
                "rollout_s": rollout.seconds, "judge_s": judged.seconds, "update_s": t_update,
                "rollout_tok_s": rollout.num_tokens / max(rollout.seconds, 1e-9),
                "judge_replies_s": len(rollout.texts) / max(judged.seconds, 1e-9),
                "update_tok_s": upd["update_tokens"] / max(t_update, 1e-9),
            }
            samples = [
                {"step": step, "prompt_id": q.id, "prompt": q.question, "completion": text, "score": float(s),
                 "reward": float(r), "advantage": float(a), "finished": f, "tokens": len(toks),
                 **({"judge_text": v.text} if v.text is not None else {}), **({"floored": True} if fl else {})}
                for q, text, s, r, a, f, toks, v, fl in zip(rollout.questions, rollout.texts, judged.scores,
                                                            judged.rewards, adv, rollout.finished, rollout.tokens,
                                                            judged.verdicts, floored)
            ]
            if step % config.eval_every == 0 or step == config.steps:
                metrics.update(evaluate(step))
                checkpoint(step)
            metrics["step_s"] = time.perf_counter() - t0
            metrics["peak_memory_gb"] = mx.get_peak_memory() / 2**30
            append_jsonl(paths.samples, samples)
            append_jsonl(paths.metrics, [metrics])
            if on_step:
                on_step(metrics, samples)
            if "eval_kl" in metrics and metrics["eval_kl"] > config.max_kl:
                stopped = f"held-out KL {metrics['eval_kl']:.2f} exceeded max_kl={config.max_kl} at step {step}"
                break
    except KeyboardInterrupt:
        summary = summarize(config, paths, "interrupted")
        last = latest_checkpoint(paths)
        raise TrainingStopped(
            f"interrupted; the last complete checkpoint is {last.name if last else 'none (no step reached an evaluation)'}. "
            f"Resume with: hmx-mlx train --resume {paths.root}"
        ) from None
    status = "stopped" if stopped else "finished"
    summary = summarize(config, paths, status, stopped)
    if stopped:
        last = latest_checkpoint(paths)
        raise TrainingStopped(
            f"training stopped: {stopped}. The last good checkpoint is {last.name if last else 'none'}; "
            f"lower learning_rate or raise beta, then start a new run (or resume with --resume {paths.root})."
        )
    return TrainResult(paths.root, summary)


def resume_config(run_dir: Path, overrides: dict) -> TrainConfig:
    """The run's own config, with the few options that may change on resume (steps)."""
    from .config import resolve_config

    base = read_json(RunPaths(Path(run_dir)).config, "run config")
    allowed = {"steps"}
    bad = sorted(k for k, v in overrides.items() if v is not None and k not in allowed)
    if bad:
        raise HmxError(
            f"cannot change {', '.join(bad)} when resuming {run_dir}: a resumed run keeps its configuration. "
            "Start a new run instead (only --steps may be raised on resume)."
        )
    return resolve_config(overrides={k: v for k, v in overrides.items() if k in allowed}, base=base)
