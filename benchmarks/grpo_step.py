"""Time one GRPO step of hmxfeel_mlx, per phase, and the same step in two peers: mlx-lm-lora and mlxrl.

Fixed setting (flags change it): 1 prompt x G=8 completions of exactly 128 new
tokens (EOS ignored on every side), LoRA rank 8 (scale 20, no dropout) on every
linear layer of the last 16 transformer blocks, trivial reward
``len(completion text) % 7``, beta 0 (no reference pass), loss ``bnpo``
(= this project's default ``dapo`` with one process), temperature 1 with no
top-p/top-k, AdamW lr 1e-5, fp32 weights on the CPU backend with OpenBLAS.

Ours: a step is a forced-full-length rollout (``generation.generate_batch`` with an
EOS set that no token can hit, wrapped in a ``rollout.Rollout`` as
``sample_rollout`` builds it), the trivial reward and group advantages, and
``trainer.grpo_update`` (value-and-grad, grad clipping, AdamW update, eval).
Separately, each step also runs our real self-judge (frozen base, few-shot
template, logprob mode) on the same 8 replies; its time is reported as judged
replies/s and kept out of the step so every side times the same work.

Peers, each run by the python of its own virtualenv on an fp32 (dequantized)
copy of the same model folder, with the same prompt token ids, one after the other
(never concurrently), after our side:

* mlx-lm-lora 5.10.2's GRPO trainer: ``benchmarks/peer_grpo_mlx_lm_lora.py``
  (``--peer-python``);
* inductive-mlxrl 0.2.4's Python API (rollout, old-log-prob recomputation, update):
  ``benchmarks/peer_grpo_mlxrl.py`` (``--mlxrl-python``; skipped with a message
  when that python is missing).

See those files and benchmarks/README.md for what each peer's step contains.
The first step of each side is a warm-up and is excluded; medians of the rest.
Output: a table on stdout and a JSON file (``--out``).

    python benchmarks/grpo_step.py --steps 6 --peer-python /tmp/peer-venv/bin/python \
        --mlxrl-python /tmp/mlxrl-venv/bin/python
"""

from __future__ import annotations

if __name__ == "__main__":  # OpenBLAS must be preloaded before anything imports mlx
    from hmxfeel_mlx.models.backend import reexec_with_openblas

    reexec_with_openblas()

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "peer_grpo_mlx_lm_lora.py"
MLXRL_SCRIPT = HERE / "peer_grpo_mlxrl.py"
DEFAULT_OUT = HERE / "results" / "grpo_step.json"
DEFAULT_PEER_PYTHON = "/tmp/peer-venv/bin/python"
PEER_INSTALL = (
    'python3 -m venv /tmp/peer-venv && /tmp/peer-venv/bin/pip install "mlx[cpu]==0.32.4" '
    '"mlx-lm==0.32.2" "mlx-lm-lora==5.10.2"'
)
DEFAULT_MLXRL_PYTHON = "/tmp/mlxrl-venv/bin/python"
MLXRL_INSTALL = (  # mlxrl declares mlx/mlx-lm for macOS arm64 only: mlx-lm is pinned by hand on Linux
    'python3 -m venv /tmp/mlxrl-venv && /tmp/mlxrl-venv/bin/pip install "mlx[cpu]==0.32.4" '
    '"inductive-mlxrl==0.2.4" "mlx-lm==0.32.2"'
)
NEVER_EOS = {-1}  # no sampled token id equals -1: every completion runs to max_new_tokens
GIB = 2**30


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6, help="steps per side, the first is a warm-up (default 6)")
    p.add_argument("--model", default="smollm2-135m", help="alias, repo id, folder or .gguf (default smollm2-135m)")
    p.add_argument("--tokens", type=int, default=128, help="new tokens per completion, forced (default 128)")
    p.add_argument("--group-size", type=int, default=8, help="completions per prompt G (default 8)")
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-layers", type=int, default=16, help="last N blocks get LoRA on every linear layer")
    p.add_argument("--update-batch-size", type=int, default=2,
                   help="our rows per forward/backward chunk (default 2, the project default; 16 = all G rows at "
                        "once; 1 = micro-batches of one sequence, as the peer does with one prompt per step)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peer-python", default=os.environ.get("HMX_PEER_PYTHON", DEFAULT_PEER_PYTHON),
                   help=f"python of the peer virtualenv (default {DEFAULT_PEER_PYTHON} or $HMX_PEER_PYTHON)")
    p.add_argument("--no-peer", action="store_true", help="time our side only")
    p.add_argument("--peer-ref-model", action="store_true",
                   help="peer also holds a reference copy of the model, as its CLI always does for GRPO (beta stays 0)")
    p.add_argument("--mlxrl-python", default=os.environ.get("HMX_MLXRL_PYTHON", DEFAULT_MLXRL_PYTHON),
                   help=f"python of the mlxrl virtualenv (default {DEFAULT_MLXRL_PYTHON} or $HMX_MLXRL_PYTHON); "
                        "mlxrl is skipped with a message when it is missing")
    p.add_argument("--no-mlxrl", action="store_true", help="skip the mlxrl peer")
    p.add_argument("--mlxrl-rollout", choices=("sequential", "batched"), default="sequential",
                   help="mlxrl's rollout: sequential = generate_group_rollouts, what its CLI trains with (default); "
                        "batched = generate_prefix_cached_group_rollouts(batch_groups=True), its batched decoder")
    p.add_argument("--mlxrl-micro-batch-size", type=int, default=0,
                   help="mlxrl optimizer_step micro_batch_size (default 0 = all G rows at once, mlxrl's default)")
    p.add_argument("--no-judge", action="store_true", help="skip our self-judge phase")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"result JSON (default {DEFAULT_OUT.relative_to(HERE.parent)})")
    a = p.parse_args(argv)
    if a.steps < 2:
        p.error("--steps must be >= 2 (the first step is a warm-up)")
    if not a.no_peer and not Path(a.peer_python).is_file():
        p.error(f"peer python {a.peer_python} not found. Install the peer with: {PEER_INSTALL} "
                "(or pass --peer-python PATH, or --no-peer)")
    a.mlxrl_missing = None
    if not a.no_mlxrl and not Path(a.mlxrl_python).is_file():
        a.mlxrl_missing = (f"mlxrl peer skipped: {a.mlxrl_python} not found. Install it with: {MLXRL_INSTALL} "
                           "(or pass --mlxrl-python PATH; --no-mlxrl silences this)")
    return a


def median_of(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows[1:]]  # the first step is a warm-up
    return float(statistics.median(vals)) if vals else float("nan")


def summarize(rows: list[dict]) -> dict:
    keys = ("step_s", "rollout_s", "reward_s", "update_s", "rollout_tok_s", "update_tok_s", "peak_memory_gib",
            "rollout_peak_memory_gib", "update_peak_memory_gib")
    out = {k: median_of(rows, k) for k in keys}
    if rows and "old_logprob_s" in rows[0]:  # mlxrl's extra forward
        out["old_logprob_s"] = median_of(rows, "old_logprob_s")
    if rows and "judge_s" in rows[0]:
        for k in ("judge_s", "judge_replies_s", "judge_peak_memory_gib", "real_step_s"):
            out[k] = median_of(rows, k)
    out["steps_measured"] = len(rows) - 1
    return out


# --------------------------------------------------------------------------- ours


def save_fp32_copy(loaded, dst: Path) -> None:
    """The fp32 (dequantized) weights we train, as an mlx-lm folder the peer can load."""
    from mlx_lm.utils import save_config, save_model

    save_model(dst, loaded.model)
    config = {k: v for k, v in loaded.config.items() if k not in ("quantization", "quantization_config")}
    save_config(config, dst / "config.json")
    src = Path(loaded.resolved.path)
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors" and f.name not in ("config.json", "model.safetensors.index.json"):
            shutil.copy2(f, dst / f.name)


def run_ours(args, loaded, cfg, question) -> tuple[list[dict], dict]:
    import mlx.core as mx
    import mlx.optimizers as optim
    import numpy as np
    from mlx.utils import tree_flatten

    from hmxfeel_mlx.errors import HmxError
    from hmxfeel_mlx.models.generation import generate_batch
    from hmxfeel_mlx.training import grpo
    from hmxfeel_mlx.training.judge import check_completion_scoring
    from hmxfeel_mlx.training.prompts import load_judge_template
    from hmxfeel_mlx.training.rollout import Rollout, encode_question, judge_rollout
    from hmxfeel_mlx.training.trainer import attach_lora, build_value_and_grad, grpo_update, pad_id, step_key

    model, tok = loaded.model, loaded.tokenizer
    adapter_config = attach_lora(model, cfg)
    optimizer = optim.AdamW(learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay)
    value_and_grad = build_value_and_grad(model, cfg)
    pid = pad_id(tok)
    template = load_judge_template("forward", "fewshot")
    G, T = cfg.group_size, cfg.max_new_tokens
    rows_q = [question] * G
    prompt = encode_question(tok, question.question, cfg.system_prompt)
    eos = tok.eos_token_ids
    info = {
        "trainable_parameters": int(sum(v.size for _, v in tree_flatten(model.trainable_parameters()))),
        "lora_modules": sum(1 for _, m in model.named_modules() if hasattr(m, "lora_a")),
        "adapter_config": adapter_config,
        "weight_dtypes": sorted({str(v.dtype) for _, v in tree_flatten(model.parameters())}),
        "prompt_tokens": len(prompt),
    }
    judge = not args.no_judge
    if judge and template.format == "completion":
        try:
            check_completion_scoring(tok)
        except HmxError as e:  # a tokenizer that merges the space into digits
            print(f"  self-judge skipped: {e}", flush=True)
            info["judge_error"], judge = str(e), False
    rows = []
    for step in range(1, args.steps + 1):
        mx.reset_peak_memory()
        t0 = time.perf_counter()
        gen = generate_batch(model, [prompt] * G, T, NEVER_EOS, cfg.temperature, key=step_key(cfg.seed, step),
                             max_batch=cfg.judge_batch)
        texts = [tok.decode([t for t in toks if t not in eos]) for toks in gen.tokens]  # as sample_rollout does
        t1 = time.perf_counter()
        rollout_peak = mx.get_peak_memory()
        mx.reset_peak_memory()
        rollout = Rollout(rows_q, [prompt] * G, gen.tokens, gen.logprobs, gen.finished, texts, t1 - t0)
        rewards = np.array([len(t) % 7 for t in texts], dtype=np.float32)
        adv = np.array(grpo.group_advantages(mx.array(rewards), G, scale_std=cfg.scale_rewards))
        t2 = time.perf_counter()
        upd = grpo_update(model, optimizer, value_and_grad, rollout, adv, cfg, pid)
        t3 = time.perf_counter()
        update_peak = mx.get_peak_memory()
        row = {
            "step": step, "step_s": t3 - t0, "rollout_s": t1 - t0, "reward_s": t2 - t1, "update_s": t3 - t2,
            "rollout_tokens": rollout.num_tokens, "update_tokens": upd["update_tokens"],
            "update_rows": int(np.count_nonzero(adv)), "completion_lengths": [len(t) for t in gen.tokens],
            "rollout_tok_s": rollout.num_tokens / (t1 - t0), "update_tok_s": upd["update_tokens"] / (t3 - t2),
            "peak_memory_gib": max(rollout_peak, update_peak) / GIB, "rollout_peak_memory_gib": rollout_peak / GIB,
            "update_peak_memory_gib": update_peak / GIB, "loss": upd["loss"], "reward_mean": float(rewards.mean()),
        }
        if judge:
            mx.reset_peak_memory()
            judged = judge_rollout(model, tok, rollout, template, "logprob", True, False,
                                   cfg.judge_max_tokens, cfg.judge_batch)
            row.update(judge_s=judged.seconds, judge_replies_s=len(texts) / judged.seconds,
                       judge_peak_memory_gib=mx.get_peak_memory() / GIB,
                       real_step_s=row["rollout_s"] + judged.seconds + row["update_s"],
                       judge_score_mean=float(np.nanmean(judged.scores)))
        rows.append(row)
        print(f"  ours step {step}: {row['step_s']:.2f} s (rollout {row['rollout_s']:.2f}, update "
              f"{row['update_s']:.2f})" + (f", judge {row['judge_s']:.2f} s" if "judge_s" in row else ""), flush=True)
    return rows, info


# --------------------------------------------------------------------------- peers


def peer_spec(args, cfg, model_dir: Path, prompt: list[int], prompt_text: str, work: Path) -> dict:
    """The setting, as both peer scripts read it (each adds only its own keys)."""
    return {
        "model_dir": str(model_dir), "prompt_ids": prompt, "prompt_text": prompt_text,
        "group_size": cfg.group_size, "max_tokens": cfg.max_new_tokens, "steps": args.steps,
        "lora_rank": cfg.lora_rank, "lora_scale": cfg.lora_scale, "lora_layers": cfg.lora_layers,
        "learning_rate": cfg.learning_rate, "seed": cfg.seed, "temperature": cfg.temperature,
        "beta": cfg.beta, "epsilon": cfg.epsilon, "loss_type": cfg.loss_type,
        "ref_model": args.peer_ref_model, "adapter_dir": str(work / "peer_adapters"),
        "rollout": args.mlxrl_rollout, "micro_batch_size": args.mlxrl_micro_batch_size,
    }


def run_peer(name: str, python: str, script: Path, spec: dict, work: Path, log_path: Path) -> dict:
    """Run one peer script in its own process (ours and the other peer are not running) and read its JSON."""
    from hmxfeel_mlx.models.backend import openblas_library

    work.mkdir(parents=True, exist_ok=True)
    spec = {**spec, "out": str(work / "result.json")}
    (work / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("_HMX_MLX")}
    lib = openblas_library()
    if lib is not None:
        env["LD_PRELOAD"] = str(lib)  # the same BLAS as ours
    env.pop("PYTHONPATH", None)
    print(f"{name}: {spec['steps']} steps, {python} {script.name} (log: {log_path})", flush=True)
    t = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.run([python, str(script), str(work / "spec.json")],
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(work))
    if proc.returncode != 0 or not (work / "result.json").is_file():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"the {name} peer failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}")
    result = json.loads((work / "result.json").read_text())
    result["wall_s"] = time.perf_counter() - t
    for r in result["steps"]:
        r["rollout_tok_s"] = r["rollout_tokens"] / r["rollout_s"]
        r["update_tok_s"] = r["update_tokens"] / r["update_s"]
        r["peak_memory_gib"] = max(r["rollout_peak_bytes"], r["update_peak_bytes"]) / GIB
        r["rollout_peak_memory_gib"] = r["rollout_peak_bytes"] / GIB
        r["update_peak_memory_gib"] = r["update_peak_bytes"] / GIB
        old = f", old log-probs {r['old_logprob_s']:.2f}" if "old_logprob_s" in r else ""
        print(f"  {name} step {r['step']}: {r['step_s']:.2f} s (rollout {r['rollout_s']:.2f}{old}, update "
              f"{r['update_s']:.2f})", flush=True)
    result["median"] = summarize(result["steps"])
    return result


RATIO_KEYS = ("step_s", "rollout_s", "update_s", "rollout_tok_s", "update_tok_s", "peak_memory_gib",
              "rollout_peak_memory_gib", "update_peak_memory_gib")


def ratios(ours: dict, peer: dict) -> dict:
    return {k: ours[k] / peer[k] for k in RATIO_KEYS if peer.get(k)}


# --------------------------------------------------------------------------- report


def table(result: dict) -> str:
    s, ours = result["settings"], result["ours"]["median"]
    sides = [(name, result[key]["median"]) for name, key in (("mlx-lm-lora", "peer"), ("mlxrl", "mlxrl"))
             if "median" in result.get(key, {})]
    lines = [
        f"GRPO step: {s['model']}, 1 prompt x G={s['group_size']}, {s['tokens']} new tokens (EOS ignored), "
        f"LoRA r{s['lora_rank']} on last {s['lora_layers']} blocks (all linear), beta 0, fp32, {result['machine']['blas']}",
        f"medians of {ours['steps_measured']} steps (first step = warm-up, excluded)",
        "",
        f"{'':26}{'ours':>10}" + "".join(f"{name:>13}{'ours/' + name.split('-')[-1]:>12}" for name, _ in sides),
    ]
    rows = [("step (s)", "step_s", "{:.2f}"), ("  rollout (s)", "rollout_s", "{:.2f}"),
            ("  reward (s)", "reward_s", "{:.4f}"), ("  old log-probs (s)", "old_logprob_s", "{:.2f}"),
            ("  update (s)", "update_s", "{:.2f}"),
            ("rollout tok/s", "rollout_tok_s", "{:.1f}"), ("update tok/s", "update_tok_s", "{:.1f}"),
            ("peak memory (GiB)", "peak_memory_gib", "{:.3f}"),
            ("  in rollout (GiB)", "rollout_peak_memory_gib", "{:.3f}"),
            ("  in reward+update (GiB)", "update_peak_memory_gib", "{:.3f}")]
    for label, key, fmt in rows:
        a = ours.get(key)
        line = f"{label:26}{(fmt.format(a) if a is not None else '-'):>10}"
        for _, peer in sides:
            b = peer.get(key)
            ratio = f"{a / b:.2f}" if a is not None and b else "-"
            line += f"{(fmt.format(b) if b is not None else '-'):>13}{ratio:>12}"
        lines.append(line)
    lines.append("(ours/peer: < 1 means ours is faster / smaller for s and GiB; > 1 means ours is faster for tok/s; "
                 "old log-probs: mlxrl's extra forward, the others have none)")
    if "judge_s" in ours:
        lines += ["", f"ours, self-judge (few-shot logprob, frozen base): {ours['judge_s']:.2f} s = "
                  f"{ours['judge_replies_s']:.1f} judged replies/s, peak {ours['judge_peak_memory_gib']:.3f} GiB",
                  f"ours, real step (rollout + self-judge + update): {ours['real_step_s']:.2f} s"]
    if "median" in result.get("peer", {}):
        lines.append(f"mlx-lm-lora {result['peer']['versions']['mlx-lm-lora']}, "
                     f"reference model loaded: {result['peer']['ref_model_loaded']}")
    mlxrl = result.get("mlxrl", {})
    if "median" in mlxrl:
        lines.append(f"mlxrl {mlxrl['versions']['inductive-mlxrl']}: rollout {mlxrl['rollout']}, "
                     f"micro_batch_size {mlxrl['micro_batch_size']}, {mlxrl['algorithm']}")
    elif "skipped" in mlxrl:
        lines.append(mlxrl["skipped"])
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from hmxfeel_mlx.models.backend import active_blas, device_name
    from hmxfeel_mlx.models.loading import load_model
    from hmxfeel_mlx.training.config import resolve_config
    from hmxfeel_mlx.training.prompts import load_questions
    from hmxfeel_mlx.training.rollout import encode_question

    cfg = resolve_config(overrides=dict(
        model=args.model, group_size=args.group_size, prompts_per_step=1, max_new_tokens=args.tokens,
        lora_rank=args.lora_rank, lora_layers=args.lora_layers, lora_scale=20.0, lora_keys=None, beta=0.0,
        loss_type="bnpo", temperature=1.0, learning_rate=1e-5, seed=args.seed, update_batch_size=args.update_batch_size,
        judge="base", judge_mode="logprob", judge_template="fewshot", mask_truncated=False,
    ))
    question = load_questions().train[0]
    t = time.perf_counter()
    loaded = load_model(args.model)
    load_s = time.perf_counter() - t
    prompt = encode_question(loaded.tokenizer, question.question, cfg.system_prompt)
    prompt_text = loaded.tokenizer.decode(prompt)
    result = {
        "benchmark": "grpo_step",
        "settings": {
            "model": args.model, "model_folder": str(loaded.resolved.path), "group_size": cfg.group_size,
            "prompts_per_step": 1, "tokens": cfg.max_new_tokens, "full_length": "EOS ignored on every side",
            "lora_rank": cfg.lora_rank, "lora_scale": cfg.lora_scale, "lora_layers": cfg.lora_layers,
            "lora_keys": "all linear layers of each block", "beta": cfg.beta, "loss_type": cfg.loss_type,
            "temperature": cfg.temperature, "learning_rate": cfg.learning_rate, "optimizer": "AdamW(wd=0)",
            "reward": "len(completion text) % 7", "question": question.question, "prompt_tokens": len(prompt),
            "steps": args.steps, "warmup_steps": 1, "seed": cfg.seed, "update_batch_size": cfg.update_batch_size,
        },
        "machine": {
            "platform": platform.platform(), "cpus": os.cpu_count(), "device": device_name(), "blas": active_blas(),
            "python": sys.version.split()[0], "load_avg_at_start": os.getloadavg(),
            "versions": {p: version(p) for p in ("mlx", "mlx-lm", "numpy")}, "model_load_s": load_s,
        },
    }
    run_mlxrl = not args.no_mlxrl and args.mlxrl_missing is None
    if args.mlxrl_missing:
        print(args.mlxrl_missing, flush=True)
        result["mlxrl"] = {"skipped": args.mlxrl_missing}
    work = Path(tempfile.mkdtemp(prefix="hmx-grpo-bench-"))
    try:
        peer_dir = peer_note = None
        if not args.no_peer or run_mlxrl:
            if loaded.dtype == "float32":  # CPU backend: we train dequantized fp32 weights; so do the peers
                peer_dir = work / "model-fp32"
                save_fp32_copy(loaded, peer_dir)  # before LoRA is attached
                peer_note = "fp32 (dequantized) copy of settings.model_folder, written by this run and deleted after"
            else:  # Metal: weights stay as stored on every side
                peer_dir = Path(loaded.resolved.path)
                peer_note = "settings.model_folder as stored"
        result["settings"]["weights"] = loaded.dtype
        print(f"ours: {args.steps} steps", flush=True)
        rows, info = run_ours(args, loaded, cfg, question)
        result["ours"] = {**info, "median": summarize(rows), "steps": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        spec = peer_spec(args, cfg, peer_dir, prompt, prompt_text, work) if peer_dir else None
        # One process after the other, never concurrently: each owns the machine while it is timed.
        if not args.no_peer:
            peer = run_peer("mlx-lm-lora", args.peer_python, PEER_SCRIPT, spec, work / "mlx-lm-lora",
                            args.out.with_suffix(".peer.log"))
            result["peer"] = {**peer, "model_folder": peer_note}
            result["ratio_ours_over_peer"] = ratios(result["ours"]["median"], peer["median"])
        if run_mlxrl:
            mlxrl = run_peer("mlxrl", args.mlxrl_python, MLXRL_SCRIPT, spec, work / "mlxrl",
                             args.out.with_suffix(".mlxrl.log"))
            result["mlxrl"] = {**mlxrl, "model_folder": peer_note}
            result["ratio_ours_over_mlxrl"] = ratios(result["ours"]["median"], mlxrl["median"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["machine"]["load_avg_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print()
    print(table(result))
    print(f"\nwritten: {args.out}")
    return result


if __name__ == "__main__":
    main()
