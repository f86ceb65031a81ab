"""The Apple silicon path, run on the CPU backend: a tiny random Qwen3 (q/k norms, tied
embeddings, Qwen3's chat template with its thinking switch), 4-bit quantized by mlx-lm,
loaded with ``HMX_MLX_BACKEND_PATH=metal`` (weights as stored, mlx-lm's modules as they are).

What is checked: GRPO on a reward the tiny model can learn (the share of reply tokens from
the lower half of the vocabulary, standing in for the judge) raises the held-out reward;
a resumed run equals an uninterrupted one; the judge runs in both modes; evaluation axes
run; the weights stay quantized and no CPU kernel (``cpu_kernels``) or host kernel runs;
the adapters load in mlx-lm and generate what ours do; no thinking text reaches the
reward, the judge or an answer extractor.
"""

from __future__ import annotations

import math
import shutil

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from conftest import build_tiny_qwen3, needs_data
from test_trainer import small_config, without_timing

import hmxfeel_mlx.models.generation as generation
import hmxfeel_mlx.training.heldout as heldout
import hmxfeel_mlx.training.judge as judge_mod
import hmxfeel_mlx.training.rollout as rollout_mod
import hmxfeel_mlx.training.trainer as trainer
from hmxfeel_mlx.models import cpu_kernels
from hmxfeel_mlx.models.backend import PATH_ENV, backend_path, cpu_speedups
from hmxfeel_mlx.models.chat import render_prompt, strip_thinking
from hmxfeel_mlx.models.generation import Generation, generate_batch
from hmxfeel_mlx.models.loading import load_model
from hmxfeel_mlx.runfolder import read_jsonl
from hmxfeel_mlx.training.calibration import CALIBRATION_FILE
from hmxfeel_mlx.training.judge import JudgeVerdict, score_replies
from hmxfeel_mlx.training.prompts import Question, load_judge_template
from hmxfeel_mlx.training.rollout import Judged, judge_rollout, sample_rollout

THINKING_OFF = "<|im_start|>assistant\n<think>\n\n</think>\n\n"  # how a thinking-off Qwen3 prompt ends
KERNELS = ("_scaled_dot_product_attention", "fast_sdpa", "swiglu", "_sdpa_host", "_swiglu_host")
STEPS, EVAL_EVERY = 8, 4


@pytest.fixture(scope="module")
def metal_path():
    """The metal path's settings for the whole module, with every CPU and host kernel counted
    (host kernels forced on at every size, so they would run if anything reached them)."""
    calls = {name: 0 for name in KERNELS}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PATH_ENV, "metal")
        mp.setattr(cpu_kernels, "HOST_MIN_ELEMENTS", 0)
        for name in KERNELS:
            real = getattr(cpu_kernels, name)

            def counted(*args, _real=real, _name=name, **kwargs):
                calls[_name] += 1
                return _real(*args, **kwargs)

            mp.setattr(cpu_kernels, name, counted)
        yield calls


@pytest.fixture(autouse=True)
def no_cpu_kernels(metal_path):
    """Every test here runs on the metal path and ends with no CPU or host kernel called."""
    assert backend_path() == "metal" and not cpu_speedups()
    yield
    from mlx_lm.models import activations, base, qwen3

    assert qwen3.swiglu is activations.swiglu
    assert qwen3.scaled_dot_product_attention is base.scaled_dot_product_attention
    assert not any(metal_path.values()), f"a CPU-path kernel ran: {metal_path}"


@pytest.fixture(scope="module")
def qwen3_dir(tmp_path_factory):
    return build_tiny_qwen3(tmp_path_factory.mktemp("qwen3") / "tiny-qwen3")


@pytest.fixture(scope="module")
def base(qwen3_dir, metal_path):
    return load_model(str(qwen3_dir))


def assert_quantized(model) -> None:
    """Every linear layer and the embedding hold 4-bit weights (LoRA layers wrap quantized ones)."""
    modules = [m for _, m in model.named_modules()]
    kinds = [type(m) for m in modules]
    assert nn.Linear not in kinds and nn.Embedding not in kinds, "a layer was dequantized"
    assert kinds.count(nn.QuantizedLinear) == 7 * len(model.layers)  # q, k, v, o, gate, up, down
    assert isinstance(model.model.embed_tokens, nn.QuantizedEmbedding)
    quantized = [m for m in modules if isinstance(m, (nn.QuantizedLinear, nn.QuantizedEmbedding))]
    assert all(m.bits == 4 and m.weight.dtype == mx.uint32 for m in quantized)


def encode(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


# --------------------------------------------------------------------------- the switch and the prompts


def test_the_backend_path_is_one_setting(monkeypatch):
    from hmxfeel_mlx import doctor
    from hmxfeel_mlx.models import backend

    with cpu_kernels.inference():
        assert not cpu_kernels._INFERENCE.get()  # no host kernels on the metal path
    monkeypatch.setattr(backend, "uses_metal", lambda: False)
    weights = {c.name: c.value for c in doctor.run_checks(measure=False)}["weights"]
    assert weights.startswith("kept as stored")
    monkeypatch.setenv(PATH_ENV, "cpu")
    with cpu_kernels.inference():
        assert cpu_kernels._INFERENCE.get()
    assert {c.name: c.value for c in doctor.run_checks(measure=False)}["weights"].startswith("dequantized")
    assert backend_path() == "cpu" and cpu_speedups()
    monkeypatch.setenv(PATH_ENV, "gpu")
    with pytest.raises(Exception, match="metal, cpu"):
        backend_path()
    monkeypatch.delenv(PATH_ENV)
    assert backend_path() == ("metal" if backend.gpu_available() else "cpu")  # the device decides


def test_loading_keeps_the_weights_quantized(base):
    assert base.quantized and base.dtype == "as stored"
    assert_quantized(base.model)
    assert type(base.model).__module__ == "mlx_lm.models.qwen3"


def test_prompts_end_with_thinking_off(base):
    tok = base.tokenizer
    messages = [{"role": "user", "content": "How do you feel?"}]
    assert render_prompt(tok, messages).endswith(THINKING_OFF)
    # the template's own default thinks: the switch is what closes the block
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False).endswith("assistant\n")
    template = load_judge_template("forward", "")
    assert template.format == "chat"
    for mode in ("text", "logprob"):
        ids = judge_mod.judge_prompts(tok, template, [("How do you feel?", "Fine.")], mode)[0]
        assert tok.decode(ids).endswith(THINKING_OFF)


def test_strip_thinking():
    assert strip_thinking("<think>\nI should say no.\n</think>\n\nYes.") == "Yes."
    assert strip_thinking("<think>a</think>b<think>c</think>\n\nfinal") == "final"
    assert strip_thinking("<think>\ncut off while thinking") == ""
    assert strip_thinking("no reasoning here\n") == "no reasoning here\n"


def test_a_thinking_reply_is_stripped_before_the_judge(base, monkeypatch):
    tok = base.tokenizer
    reasoning, answer = "<think>\nsecret 3\n</think>\n\n", "I feel 9 happy."
    forced = encode(tok, reasoning + answer) + [next(iter(tok.eos_token_ids))]
    def thinking(model, prompts, *args, **kwargs):
        return Generation([list(forced) for _ in prompts], [[0.0] * len(forced) for _ in prompts],
                          [True] * len(prompts), stopped=[False] * len(prompts))

    monkeypatch.setattr(rollout_mod, "generate_batch", thinking)
    questions = [Question("q0", "feeling", "How do you feel?")]
    rollout = sample_rollout(base.model, tok, questions, 2, 4, 1.0, mx.random.key(0))
    assert rollout.texts == [answer, answer] and rollout.tokens[0] == forced  # the policy's tokens stay whole
    seen = []
    real_prompts = judge_mod.judge_prompts
    monkeypatch.setattr(judge_mod, "judge_prompts", lambda t, tpl, pairs, mode="text": seen.extend(pairs)
                        or real_prompts(t, tpl, pairs, mode))
    judge_rollout(base.model, tok, rollout, load_judge_template("forward", ""), "logprob", frozen_base=True)
    assert seen and all(reply == answer for _, reply in seen)
    # the judge's own verdict is read without its reasoning too: "3" is in the thinking, "9" the score
    monkeypatch.setattr(judge_mod, "generate_batch", thinking)
    verdicts = score_replies(base.model, tok, load_judge_template("forward", ""), [("q", "a")], "text")
    assert verdicts[0].text == answer and verdicts[0].score == 9.0


def test_the_judge_runs_in_both_modes(base):
    tok = base.tokenizer
    pairs = [("How do you feel today?", "I feel happy and curious."),
             ("Do you have feelings?", "As an AI language model, I do not have feelings.")]
    for mode, variant in (("text", ""), ("logprob", ""), ("logprob", "fewshot")):
        verdicts = score_replies(base.model, tok, load_judge_template("forward", variant), pairs, mode,
                                 max_verdict_tokens=6)
        assert len(verdicts) == len(pairs)
        for v in verdicts:
            assert math.isnan(v.score) or 0 <= v.score <= 10, (mode, v)
            if mode == "text":
                assert v.text is not None and "<think>" not in v.text
            else:
                assert math.isfinite(v.score) and sum(v.probs) == pytest.approx(1.0) and 0 < v.mass <= 1
    assert_quantized(base.model)


# --------------------------------------------------------------------------- training


def lower_half_share(model, rollout) -> np.ndarray:
    """0-10: ten times the share of each reply's tokens whose id is in the vocabulary's lower half."""
    half = model.args.vocab_size // 2
    return np.array([10.0 * np.mean([t < half for t in toks]) if toks else 0.0 for toks in rollout.tokens])


class TokenReward:
    """The trainer's reward and the held-out judge replaced by ``lower_half_share``; records what
    each saw, to check that no thinking text reached them."""

    def __init__(self):
        self.texts: list[str] = []
        self.prompts: list[list[int]] = []
        self.think_tokens = 0

    def _score(self, model, tok, rollout) -> Judged:
        self.texts += rollout.texts
        self.prompts += rollout.prompt_ids
        think = {tok.convert_tokens_to_ids(t) for t in ("<think>", "</think>")}
        self.think_tokens += sum(t in think for toks in rollout.tokens for t in toks)
        r = lower_half_share(model, rollout)
        return Judged(r, r.copy(), [JudgeVerdict(float(s)) for s in r])

    def reward(self, model, tok, rollout, config, templates, frozen_base, progress=None, prefixes=None) -> Judged:
        return self._score(model, tok, rollout)

    def heldout(self, model, tok, rollout, template, mode, frozen_base, complement=False, max_verdict_tokens=8,
                max_batch=64, progress=None, prefixes=None, max_words=0) -> Judged:
        return self._score(model, tok, rollout)


def token_config(qwen3_dir):
    return small_config(qwen3_dir, steps=STEPS, eval_every=EVAL_EVERY, group_size=8, max_new_tokens=16,
                        eval_samples=4, learning_rate=5e-4, seed=0)


@pytest.fixture(scope="module")
def whole(qwen3_dir, metal_path, tmp_path_factory):
    """An uninterrupted run on the token reward, and the reward's record of what it saw."""
    seen = TokenReward()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "judge_reward", seen.reward)
        mp.setattr(heldout, "judge_rollout", seen.heldout)
        loaded = load_model(str(qwen3_dir))
        result = trainer.train(token_config(qwen3_dir), tmp_path_factory.mktemp("whole") / "run", loaded=loaded)
    return result.run_dir, loaded, seen


def test_grpo_raises_the_token_reward(whole):
    run, loaded, seen = whole
    evals = [r for r in read_jsonl(run / "metrics.jsonl") if "eval_score" in r]
    assert [e["step"] for e in evals] == [0, EVAL_EVERY, STEPS]
    first, last = evals[0], evals[-1]
    noise = math.hypot(first["eval_score_se"], last["eval_score_se"])
    assert last["eval_score"] - first["eval_score"] > 4 * noise, (first, last)
    assert_quantized(loaded.model)  # LoRA layers wrap the quantized ones; nothing was dequantized
    assert {p.name for p in (run / "checkpoints").iterdir()} == {f"step_{EVAL_EVERY}", f"step_{STEPS}"}


def test_no_thinking_reached_the_reward(whole, base):
    _, _, seen = whole
    tok = base.tokenizer
    assert seen.think_tokens > 0  # the random policy sampled <think> / </think> tokens ...
    assert not any("<think>" in t or "</think>" in t for t in seen.texts)  # ... and none reached the reward
    assert seen.prompts and all(tok.decode(p).endswith(THINKING_OFF) for p in seen.prompts)


def test_resume_equals_the_uninterrupted_run(whole, qwen3_dir, tmp_path):
    run, _, _ = whole
    seen = TokenReward()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer, "judge_reward", seen.reward)
        mp.setattr(heldout, "judge_rollout", seen.heldout)

        def stop_after_the_first_checkpoint(metrics, samples):
            if metrics["step"] == EVAL_EVERY + 1:
                raise KeyboardInterrupt

        config = token_config(qwen3_dir)
        (tmp_path / "run").mkdir()  # the judge's scale as the whole run fitted it (the same model and set)
        shutil.copy(run / CALIBRATION_FILE, tmp_path / "run" / CALIBRATION_FILE)
        with pytest.raises(trainer.TrainingStopped):
            trainer.train(config, tmp_path / "run", on_step=stop_after_the_first_checkpoint)
        assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == [f"step_{EVAL_EVERY}"]
        trainer.train(config, tmp_path / "run", resume=True)
    assert without_timing(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == without_timing(
        read_jsonl(run / "metrics.jsonl"))


def test_adapters_load_in_mlx_lm_and_generate_the_same(whole, qwen3_dir, base):
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler
    from mlx_lm.utils import load as mlx_lm_load

    run, _, _ = whole
    adapter = run / "checkpoints" / f"step_{STEPS}"
    theirs, their_tok = mlx_lm_load(str(qwen3_dir), adapter_path=str(adapter))
    ours = load_model(str(qwen3_dir), adapter=adapter)
    assert_quantized(theirs) and assert_quantized(ours.model)
    prompt = encode(ours.tokenizer, render_prompt(ours.tokenizer, [{"role": "user", "content": "How do you feel?"}]))
    x = mx.array([prompt])
    ours_logits, theirs_logits, base_logits = (m(x)[0, -1] for m in (ours.model, theirs, base.model))
    assert mx.allclose(ours_logits, theirs_logits, atol=1e-4).item()
    assert mx.abs(ours_logits - base_logits).max().item() > 1e-2  # the adapter changes the model
    n = 8
    their_tokens = [r.token for r in stream_generate(theirs, their_tok, prompt, max_tokens=n,
                                                     sampler=make_sampler(temp=0.0))]
    our_tokens = generate_batch(ours.model, [prompt], n, ours.tokenizer.eos_token_ids, 0.0).tokens[0]
    assert our_tokens == their_tokens[: len(our_tokens)] and len(our_tokens) >= 1


# --------------------------------------------------------------------------- evaluation


def forced_reply(tok, text: str):
    """A ``generate_batch`` stand-in whose every reply is ``text`` then EOS."""
    ids = encode(tok, text) + [next(iter(tok.eos_token_ids))]

    def generate(model, prompts, *args, **kwargs):
        return Generation([list(ids) for _ in prompts], [[0.0] * len(ids) for _ in prompts], [True] * len(prompts),
                          stopped=[False] * len(prompts))

    return generate


def test_the_evaluation_reads_replies_without_thinking(base, monkeypatch):
    from hmxfeel_mlx.evals.axes.core import EvalContext, generate_replies, user_prompt
    from hmxfeel_mlx.evals.metrics import extract_yes_no

    tok = base.tokenizer
    ctx = EvalContext(base.model, tok, base)
    prompt = user_prompt(tok, "Is the sky green? Answer Yes or No.")
    assert prompt.endswith(THINKING_OFF)
    plain = generate_replies(ctx, [prompt], 6)
    assert plain[0]["tokens"] >= 1 and "<think>" not in plain[0]["text"]
    monkeypatch.setattr(generation, "generate_batch", forced_reply(tok, "<think>\nNo\n</think>\n\nYes, it is."))
    out = generate_replies(ctx, [prompt], 16)
    assert out[0]["text"] == "Yes, it is." and extract_yes_no(out[0]["text"]) == "yes"


@needs_data
def test_evaluation_axes_run_on_the_metal_path(qwen3_dir, tmp_path, monkeypatch, base):
    from hmxfeel_mlx.evals.runner import evaluate

    run = evaluate(str(qwen3_dir), ["mmlu", "halueval"], limit=2, seed=0, out=tmp_path / "eval.json")
    results = run.record["results"]
    # two records per MMLU item: the letters (lm-evaluation-harness) and the cloze variant
    assert results["mmlu"]["metrics"]["accuracy"] is not None and len(results["mmlu"]["records"]) == 4
    for value in results["halueval"]["metrics"].values():
        assert value is None or math.isfinite(value)
    assert all("<think>" not in r["output"] for r in results["halueval"]["records"])
    # a reply that thinks "No" and answers "Yes" is extracted as yes
    monkeypatch.setattr(generation, "generate_batch", forced_reply(base.tokenizer, "<think>\nNo\n</think>\n\nYes."))
    forced = evaluate(str(qwen3_dir), ["halueval"], limit=2, seed=0, out=tmp_path / "forced.json")
    for r in forced.record["results"]["halueval"]["records"]:
        assert r["output"] == "Yes." and r["extracted"] == "yes"
