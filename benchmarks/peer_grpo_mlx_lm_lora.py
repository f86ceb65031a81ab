"""The peer side of benchmarks/grpo_step.py: mlx-lm-lora's GRPO trainer, timed per step.

Run by grpo_step.py with the python of a separate virtualenv holding the peer
(``mlx[cpu]==0.32.4 mlx-lm==0.32.2 mlx-lm-lora==5.10.2``); it never imports
hmxfeel_mlx. Usage::

    PEER_PYTHON benchmarks/peer_grpo_mlx_lm_lora.py SPEC.json

SPEC.json (written by grpo_step.py) names the model folder, the prompt token ids
(rendered by our side, so both sides see exactly the same prompt), group size,
completion length, LoRA settings, optimiser, seed and the path of the result JSON.

What runs is the peer's own code path for ``mlx_lm_lora.train --train-mode grpo``
minus the CLI: ``mlx_lm_lora.utils.from_pretrained`` (mlx-lm ``load`` + LoRA
layers), then ``mlx_lm_lora.trainer.grpo_trainer.train_grpo`` for ``steps``
iterations on a one-example dataset with ``steps_per_report=1``. Timing:

* step = the trainer's own per-report time (``1 / iterations_per_second`` with
  one step per report): batch fetch, ``generate_grpo``, rewards/advantages,
  value-and-grad over the micro-batches, optimiser update and the final
  ``mx.eval`` of model and optimiser state; reporting/printing is outside it;
* rollout = a wrapper around ``grpo_trainer.generate_grpo`` (module global the
  trainer calls), reward = a wrapper around ``grpo_trainer._rollout_rewards``;
  update = step - rollout - reward;
* peak memory = ``mx.get_peak_memory()``: read and reset at the end of the
  rollout wrapper (rollout peak) and in the report callback (rewards + update
  peak); the step's peak is the larger. Reset once more just before training.

Full-length completions: the tokenizer's ``eos_token_ids`` is emptied and
``end_answer_token`` is "", so ``generate_grpo`` gives ``BatchGenerator`` no stop
tokens and every completion runs to ``max_completion_length`` (checked: the
trainer's own ``hit_max_tokens_ratio`` metric is recorded per step).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from peer_blas import active_blas  # benchmarks/ is sys.path[0] when this file is run


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())

    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.callbacks import TrainingCallback
    from mlx_lm_lora.trainer import grpo_trainer as gt
    from mlx_lm_lora.utils import from_pretrained

    mx.random.seed(spec["seed"])
    adapter_dir = Path(spec.get("adapter_dir") or tempfile.mkdtemp(prefix="peer-grpo-adapters-"))
    lora = {
        "rank": spec["lora_rank"],
        "dropout": 0.0,
        "scale": spec["lora_scale"],
        "use_dora": False,
        "num_layers": spec["lora_layers"],
    }
    model, tokenizer, adapter_file = from_pretrained(
        model=spec["model_dir"], new_adapter_path=str(adapter_dir), lora_config=lora
    )
    ref_model = None
    if spec.get("ref_model"):
        # What `mlx_lm_lora.train --train-mode grpo` does whatever beta is: a second full copy.
        from mlx_lm.utils import load

        ref_model = load(spec["model_dir"])[0].freeze()
    # Force full-length completions: no stop tokens at all (see the module docstring).
    tokenizer.eos_token_ids = set()

    weight_dtypes = sorted({str(v.dtype) for _, v in tree_flatten(model.parameters())})
    trainable = sum(v.size for _, v in tree_flatten(model.trainable_parameters()))
    lora_modules = sum(1 for _, m in model.named_modules() if hasattr(m, "lora_a"))

    def trivial_reward(prompts, completions, answer, types=None):
        return [float(len(c) % 7) for c in completions]

    trivial_reward.__name__ = "chars_mod_7"

    current: dict = {}
    steps: list[dict] = []
    orig_generate, orig_rewards = gt.generate_grpo, gt._rollout_rewards

    def timed_generate(*args, **kwargs):
        t = time.perf_counter()
        out = orig_generate(*args, **kwargs)
        current["rollout_s"] = time.perf_counter() - t
        current["rollout_tokens"] = int(sum(c.size for c in out[0]))
        current["completion_lengths"] = [int(c.size) for c in out[0]]
        current["rollout_peak_bytes"] = int(mx.get_peak_memory())
        mx.reset_peak_memory()  # the rest of the step (rewards, update) gets its own peak
        return out

    def timed_rewards(*args, **kwargs):
        t = time.perf_counter()
        out = orig_rewards(*args, **kwargs)
        current["reward_s"] = time.perf_counter() - t
        return out

    gt.generate_grpo, gt._rollout_rewards = timed_generate, timed_rewards

    class Report(TrainingCallback):
        def on_train_loss_report(self, info: dict) -> None:
            step_s = 1.0 / info["iterations_per_second"]
            row = {
                "step": info["iteration"],
                "step_s": step_s,
                "rollout_s": current.get("rollout_s", float("nan")),
                "reward_s": current.get("reward_s", float("nan")),
                "update_s": step_s - current.get("rollout_s", 0.0) - current.get("reward_s", 0.0),
                "rollout_tokens": current.get("rollout_tokens", 0),
                "update_tokens": current.get("rollout_tokens", 0),  # every completion token is trained
                "completion_lengths": current.get("completion_lengths", []),
                "rollout_peak_bytes": current.get("rollout_peak_bytes", 0),
                "update_peak_bytes": int(mx.get_peak_memory()),  # rewards + update
                "loss": info["train_loss"],
                "avg_generated_tokens": info.get("train_average_generated_tokens"),
                "hit_max_tokens_ratio": info.get("train_hit_max_tokens_ratio"),
                "reward_mean": info.get("train_total_rewards_mean"),
            }
            steps.append(row)
            current.clear()
            mx.reset_peak_memory()

    G, T = spec["group_size"], spec["max_tokens"]
    prompt_ids = list(spec["prompt_ids"])
    dataset = [(prompt_ids, [0], spec["prompt_text"], "")]  # (prompt ids, answer ids, prompt, answer)
    args = gt.GRPOTrainingArgs(
        batch_size=1,  # prompts per step
        iters=spec["steps"],
        val_batches=0,
        steps_per_report=1,
        steps_per_eval=10**9,
        steps_per_save=10**9,
        adapter_file=adapter_file,
        max_seq_length=4096,
        max_completion_length=T,
        grad_checkpoint=False,
        beta=spec["beta"],
        group_size=G,
        epsilon=spec["epsilon"],
        epsilon_high=None,
        temperature=spec["temperature"],
        top_p=1.0,  # 1.0 / 0 / 0.0 switch the filters off: plain softmax sampling, as on our side
        top_k=0,
        min_p=0.0,
        gradient_accumulation_steps=1,
        grpo_loss_type=spec["loss_type"],
        importance_sampling_level="token",
    )
    optimizer = optim.AdamW(learning_rate=spec["learning_rate"], weight_decay=0.0)
    mx.reset_peak_memory()
    t0 = time.perf_counter()
    gt.train_grpo(
        model=model,
        ref_model=ref_model,
        tokenizer=tokenizer,
        optimizer=optimizer,
        train_dataset=dataset,
        val_dataset=None,
        reward_funcs=[trivial_reward],
        args=args,
        training_callback=Report(),
        end_answer_token="",
    )
    result = {
        "versions": {p: version(p) for p in ("mlx", "mlx-lm", "mlx-lm-lora")},
        "python": sys.version.split()[0],
        "blas": active_blas(),
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        "weight_dtypes": weight_dtypes,
        "trainable_parameters": int(trainable),
        "lora_modules": lora_modules,
        "ref_model_loaded": ref_model is not None,
        "total_s": time.perf_counter() - t0,
        "steps": steps,
    }
    Path(spec["out"]).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: PEER_PYTHON benchmarks/peer_grpo_mlx_lm_lora.py SPEC.json (written by grpo_step.py)")
    main(sys.argv[1])
