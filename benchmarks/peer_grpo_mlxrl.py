"""The second peer of benchmarks/grpo_step.py: inductive-mlxrl's GRPO step, timed per phase.

Run by grpo_step.py with the python of a separate virtualenv holding the peer
(``mlx[cpu]==0.32.4 inductive-mlxrl==0.2.4 mlx-lm==0.32.2``; mlxrl declares its
``mlx``/``mlx-lm`` dependencies for macOS arm64 only, so on Linux mlx-lm is pinned by
hand); it never imports hmxfeel_mlx. Usage::

    PEER_PYTHON benchmarks/peer_grpo_mlxrl.py SPEC.json

SPEC.json is the one grpo_step.py writes for both peers (model folder, prompt token
ids and text, group size, completion length, LoRA, optimiser, seed, result path),
plus ``rollout`` ("sequential" or "batched") and ``micro_batch_size``.

mlxrl's CLI (``mlxrl phase1-gsm8k`` / ``mlxrl train``, ``mlxrl/cli.py:_phase1_gsm8k``)
is tied to its built-in GSM8K prompts and reward, so this script drives the same loop
through its Python API, one call per phase, as that function does:

1. rollout: ``mlxrl.rollout.naive.generate_group_rollouts`` (what the CLI calls). For
   each of the G completions, ``generate_completion`` builds a fresh KV cache,
   prefills the whole prompt again and decodes one token at a time (batch 1), with an
   ``mx.eval`` and a host read of the token per step. With ``rollout="batched"`` the
   script calls ``mlxrl.rollout.optimized.generate_prefix_cached_group_rollouts(...,
   batch_groups=True)`` instead (one prompt prefill, the G rows decoded together in a
   fixed-size KV cache); the CLI's training loop never uses it.
2. reward: the trivial ``len(completion.text) % 7`` on ``Completion.text``.
3. old log-probs: ``mlxrl.train.grpo.batch_from_rollouts``. It ignores the sampling
   log-probs the rollout captured and recomputes the old-policy log-probs with a full
   forward of the G prompt+completion rows (``policy.logprobs.dual_logprobs`` ->
   ``completion_logprobs_from_inputs``, eval mode, ``mx.eval``); with beta 0
   (``compute_reference=False``) the adapter-disabled reference forward is skipped.
   Advantages: ``algorithm.compute_advantages`` = ``algo.grpo.group_normalize_rewards``
   ((r - mean) / sqrt(var + 1e-8), ddof 0).
4. update: ``mlxrl.train.grpo.optimizer_step``: ``nn.value_and_grad`` of
   ``grpo_metrics_from_batch`` (a second full forward, with gradients, then the loss),
   all G rows at once (``micro_batch_size=0``, mlxrl's default) or in token-weighted
   micro-batches; ``optimizer.update`` and ``mx.eval(model.state, optimizer.state)``.
   No gradient clipping (mlxrl has none).

Loss: ``algo.grpo.DAPOAlgorithm(clip_low=eps, clip_high=eps, dynamic_sampling=False)``:
PPO-clipped token ratio, token mean over every completion token of the batch, i.e.
``bnpo`` with clip 0.2 as on our side (mlxrl's ``GRPOAlgorithm``, its CLI default, is
the same without clipping; the compute is the same). Optimiser: ``mlx.optimizers.AdamW``
(lr 1e-5, weight decay 0) passed to ``optimizer_step`` (mlxrl's CLI builds ``Adam``,
which is the same update with weight decay 0).

LoRA: mlxrl's ``policy.model.load_policy_with_lora`` / ``inject_lora_adapters`` always
converts every transformer block (``num_layers=len(layers)``), so it cannot place LoRA
on the last 16 blocks only. This script does what it does otherwise: mlx-lm ``load``,
``model.freeze()``, mlx-lm's ``linear_to_lora_layers`` (here with ``num_layers`` = the
spec's, as the mlx-lm-lora peer does), ``model.freeze(); model.unfreeze(keys=["lora_a",
"lora_b"]); model.eval()``, then mlxrl's own gate ``assert_only_lora_trainable``.

Full-length completions: mlxrl's generators take no EOS or "ignore EOS" argument; they
call ``eos_token_ids_from_tokenizer(tokenizer)``. The script replaces that module
global in ``mlxrl.rollout.naive`` and ``mlxrl.rollout.optimized`` by a function that
returns ``frozenset({-1})``, an id no sampled token can equal, so every completion runs
to ``max_tokens`` (checked per step: ``completion_lengths``). Nothing else is patched.

Prompt: the generators take prompt strings. They get our rendered prompt text with
``use_chat_template=False`` and encode it themselves; the script checks that the
resulting ``Completion.prompt_tokens`` equal our prompt ids and stops otherwise.

Timing: ``time.perf_counter`` around each call (each ends with its own ``mx.eval`` or
host read); step = rollout + reward + old log-probs + update. Peak memory:
``mx.get_peak_memory()``, reset at the start of the step and read (then reset) after
the rollout, after the old-log-prob pass and after the update.
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path

from peer_blas import active_blas  # benchmarks/ is sys.path[0] when this file is run

NEVER_EOS = frozenset({-1})


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())

    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten
    from mlx_lm import load
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlxrl.algo import DAPOAlgorithm
    from mlxrl.policy import assert_only_lora_trainable, pad_token_id_from_tokenizer
    from mlxrl.rollout import (
        SamplingConfig,
        generate_group_rollouts,
        generate_prefix_cached_group_rollouts,
    )
    from mlxrl.rollout import naive as mlxrl_naive
    from mlxrl.rollout import optimized as mlxrl_optimized
    from mlxrl.train import batch_from_rollouts, optimizer_step

    # Force full-length completions (see the module docstring): the only patch.
    mlxrl_naive.eos_token_ids_from_tokenizer = lambda tokenizer: NEVER_EOS
    mlxrl_optimized.eos_token_ids_from_tokenizer = lambda tokenizer: NEVER_EOS

    model, tokenizer = load(spec["model_dir"], tokenizer_config={"trust_remote_code": False})[:2]
    model.freeze()
    mx.random.seed(spec["seed"])
    lora = {"rank": spec["lora_rank"], "scale": spec["lora_scale"], "dropout": 0.0}
    linear_to_lora_layers(model, spec["lora_layers"], lora)
    model.freeze()
    model.unfreeze(keys=["lora_a", "lora_b"])
    model.eval()
    assert_only_lora_trainable(model)

    weight_dtypes = sorted({str(v.dtype) for _, v in tree_flatten(model.parameters())})
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    lora_modules = sum(1 for _, m in model.named_modules() if hasattr(m, "lora_a"))

    G, T, beta = spec["group_size"], spec["max_tokens"], spec["beta"]
    prompt_ids = tuple(spec["prompt_ids"])
    sampling = SamplingConfig(max_tokens=T, temperature=spec["temperature"], top_p=1.0, min_p=0.0, top_k=0)
    algorithm = DAPOAlgorithm(clip_low=spec["epsilon"], clip_high=spec["epsilon"], dynamic_sampling=False)
    optimizer = optim.AdamW(learning_rate=spec["learning_rate"], weight_decay=0.0)
    pad_id = pad_token_id_from_tokenizer(tokenizer)
    batched = spec.get("rollout", "sequential") == "batched"
    micro_batch_size = int(spec.get("micro_batch_size", 0))

    def rollout(step: int):
        kwargs = {"model": model, "tokenizer": tokenizer, "prompts": [spec["prompt_text"]], "group_size": G,
                  "config": sampling, "seed": spec["seed"] + step, "use_chat_template": False}
        if batched:
            return generate_prefix_cached_group_rollouts(**kwargs, compile_decode_step=False, batch_groups=True)
        return generate_group_rollouts(**kwargs)

    steps: list[dict] = []
    t_start = time.perf_counter()
    for step in range(1, spec["steps"] + 1):
        mx.reset_peak_memory()
        t0 = time.perf_counter()
        completions = rollout(step)  # token ids are host ints: the work is done
        t1 = time.perf_counter()
        rollout_peak = mx.get_peak_memory()
        mx.reset_peak_memory()
        if completions[0].prompt_tokens != prompt_ids:
            sys.exit(f"mlxrl encoded the prompt text to {len(completions[0].prompt_tokens)} ids that differ from "
                     f"the {len(prompt_ids)} ids of our side; the comparison would not be at the same prompt")
        rewards = [float(len(c.text) % 7) for c in completions]
        t2 = time.perf_counter()
        batch = batch_from_rollouts(model=model, completions=completions, rewards=rewards, group_size=G,
                                    pad_token_id=pad_id, algorithm=algorithm, use_checkpoint=False,
                                    compute_reference=beta != 0.0)
        mx.eval(batch.advantages)
        t3 = time.perf_counter()
        old_peak = mx.get_peak_memory()
        mx.reset_peak_memory()
        metrics = optimizer_step(model=model, optimizer=optimizer, batch=batch, beta=beta, pad_token_id=pad_id,
                                 algorithm=algorithm, use_checkpoint=False, micro_batch_size=micro_batch_size)
        t4 = time.perf_counter()
        update_peak = mx.get_peak_memory()
        lengths = [len(c.completion_tokens) for c in completions]
        steps.append({
            "step": step,
            "step_s": t4 - t0,
            "rollout_s": t1 - t0,
            "reward_s": t2 - t1,
            "old_logprob_s": t3 - t2,
            "update_s": t4 - t3,
            "rollout_tokens": sum(lengths),
            "update_tokens": sum(lengths),  # every completion token is trained
            "completion_lengths": lengths,
            "rollout_peak_bytes": int(rollout_peak),
            "old_logprob_peak_bytes": int(old_peak),
            "update_peak_bytes": int(max(old_peak, update_peak)),  # old log-probs + update
            "loss": metrics.loss,
            "mean_ratio": metrics.mean_ratio,
            "clip_fraction": metrics.clip_fraction,
            "reward_mean": metrics.mean_reward,
            "update_rows": len(batch.completion_token_ids),
        })
        print(f"mlxrl step {step}: {t4 - t0:.2f} s (rollout {t1 - t0:.2f}, old log-probs {t3 - t2:.2f}, "
              f"update {t4 - t3:.2f}), lengths {sorted(set(lengths))}", flush=True)

    result = {
        "versions": {p: version(p) for p in ("mlx", "mlx-lm", "inductive-mlxrl")},
        "python": sys.version.split()[0],
        "blas": active_blas(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "weight_dtypes": weight_dtypes,
        "trainable_parameters": int(trainable),
        "lora_modules": lora_modules,
        "ref_model_loaded": False,  # mlxrl never holds a second copy (adapters are disabled for the reference)
        "rollout": "generate_prefix_cached_group_rollouts(batch_groups=True)" if batched
                   else "generate_group_rollouts (sequential, as its CLI)",
        "micro_batch_size": micro_batch_size,
        "algorithm": f"DAPOAlgorithm(clip_low={algorithm.clip_low}, clip_high={algorithm.clip_high}, "
                     "dynamic_sampling=False)",
        "total_s": time.perf_counter() - t_start,
        "steps": steps,
    }
    Path(spec["out"]).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: PEER_PYTHON benchmarks/peer_grpo_mlxrl.py SPEC.json (written by grpo_step.py)")
    main(sys.argv[1])
