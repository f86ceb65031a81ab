"""The pushback axis's lossless reading and EQ-Bench v2.1's attempts: the label log-likelihoods
of both turns against uncached full forwards (tiny model, both cache paths), the embedded model
reading every answer, and EQ-Bench's attempt schedule, seeding and uncut replies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import BENCH_DATA, needs_data
from test_eval_scoring import REWRITING, hand_logprob

from hmxfeel_mlx.evals.axes import generation as axes_gen
from hmxfeel_mlx.evals.axes.core import GEN_TOKENS, EvalContext, user_prompt
from hmxfeel_mlx.evals.axes.generation import EQBENCH, EQBENCH_TEMPERATURES, PUSHBACK, PUSHBACK_AXIS
from hmxfeel_mlx.evals.datasets.items import GenItem, MCItem
from hmxfeel_mlx.evals.axes.scoring import encode_pair


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from hmxfeel_mlx.models.loading import load_model

    loaded = load_model(str(tiny_model_dir))
    return EvalContext(loaded.model, loaded.tokenizer, loaded, score_rows=6)


def check_metrics_are_item_means(res) -> None:
    """Every metric with an item field is the mean of that field over the records (None skipped)."""
    for name, spec in res.specs.items():
        if spec.item_field is None:
            continue
        vals = [r[spec.item_field] for r in res.records if r[spec.item_field] is not None]
        want = res.metrics[name]
        assert (math.isnan(want) and not vals) or want == pytest.approx(float(np.mean(vals))), name


@pytest.mark.parametrize("template", ["appending", "rewriting"])
def test_pushback_reads_both_turns_as_full_forwards(tiny, template, monkeypatch):
    """Each turn's answer is the argmax of log p(label | conversation), equal to an uncached
    forward of the full sequence; turn 2 carries the turn-1 label as the assistant message."""
    tok = tiny.tokenizer
    if template == "rewriting":
        monkeypatch.setattr(tok._tokenizer, "chat_template", REWRITING)
    monkeypatch.setitem(GEN_TOKENS, "sycophancy_pushback", 6)  # the text variant is not under test here
    items = [MCItem("q0", "How do you feel today?", ["happy", "sad"], [0]),
             MCItem("q1", "The capital of France is", ["Paris", "music", "12345", "the world"], [0]),
             MCItem("q2", "Score: 0 1 2 3", ["4", "10", "I hope"], [2])]
    res = PUSHBACK_AXIS.run(tiny, items)
    assert len(res.records) == 3
    for it, r in zip(items, res.records):
        first = user_prompt(tok, r["prompt"])
        second = user_prompt(tok, PUSHBACK, [{"role": "user", "content": r["prompt"]},
                                             {"role": "assistant", "content": r["assistant_message"]}])
        for ctx, sums in ((first, r["label_logprobs"]), (second, r["label_logprobs_after_pushback"])):
            for label, got in zip(r["labels"], sums):
                pair = encode_pair(tok, ctx, label)
                assert got == pytest.approx(hand_logprob(tiny.model, pair.context_ids, pair.option_ids), abs=1e-4)
        assert r["labels"] == list("ABCD"[: len(it.choices)])
        assert r["choice"] == int(np.argmax(r["label_logprobs"])) and r["assistant_message"] == r["labels"][r["choice"]]
        assert r["choice_after_pushback"] == int(np.argmax(r["label_logprobs_after_pushback"]))
        assert r["initial_correct"] == float(r["choice"] in it.correct)
        assert r["cache_reused"] == (template == "appending")
    assert res.metrics["extraction_failure_rate"] == 0.0
    check_metrics_are_item_means(res)


@needs_data
def test_embedded_pushback_reads_every_answer(embedded, monkeypatch):
    """On the real model no reading fails, so every flip rate is defined (the text reading's
    failures are still counted)."""
    monkeypatch.setitem(GEN_TOKENS, "sycophancy_pushback", 1)  # the text variant is not under test here
    # initially wrong (mmlu/0, truthfulqa_mc1/0, /1) and right (mmlu/2, truthfulqa_mc1/2) items; mmlu/1
    # (440 tokens) is left out for time
    items = [it for it in PUSHBACK_AXIS.load(BENCH_DATA, 6, 0, None) if it.id != "mmlu/1"]
    res = PUSHBACK_AXIS.run(EvalContext(embedded.model, embedded.tokenizer, embedded), items)
    m = res.metrics
    assert m["extraction_failure_rate"] == 0.0
    for name in ("initial_accuracy", "final_accuracy", "regressive_rate", "progressive_rate",
                 "regressive_of_correct", "progressive_of_wrong"):
        assert math.isfinite(m[name]) and 0 <= m[name] <= 1, name
    assert all(r["cache_reused"] for r in res.records)  # SmolLM2's template only appends
    assert 0 <= m["text_extraction_failure_rate"] <= 1
    check_metrics_are_item_means(res)


REF = {"Remorseful": 0.0, "Indifferent": 6.0, "Affectionate": 0.0, "Annoyed": 7.0}
GOOD = "Remorseful: 0\nIndifferent: 5\nAffectionate: 2\nAnnoyed: 7"  # 9.466514 (test_eval_metrics)
ZEROS = "Remorseful: 0\nIndifferent: 0\nAffectionate: 0\nAnnoyed: 0"
THREE = "Remorseful: 0\nIndifferent: 6\nAffectionate: 0"


def test_eqbench_asks_again_at_the_reference_temperatures(monkeypatch):
    """Questions whose answer is not accepted are asked again at 0.16, then 0.31, and only
    they; the last attempt is scored; every attempt is the 60-token budget with no stop rule.
    (The model is replaced at ``sample_attempts``' calls of ``generate_batch``: one per attempt.)"""
    from hmxfeel_mlx.models import attempts as A
    from hmxfeel_mlx.models.generation import Generation

    texts = {"e0": [GOOD], "e1": [ZEROS, THREE, f"  {GOOD}\n"], "e2": [THREE, ZEROS, "I cannot say."]}

    class Tok:  # one token per character: the prompt's text comes back from its ids
        eos_token_ids = {0}

        def encode(self, text, add_special_tokens=False):
            return [ord(ch) for ch in text]

    calls = []

    def fake_generate(model, prompts, max_tokens, eos_ids, temperature=0.0, key=None, stop=None, start=None, **kw):
        names = ["".join(map(chr, p)) for p in prompts]
        calls.append({"prompts": names, "max_tokens": max_tokens, "stop": stop, "temperature": temperature,
                      "key": np.asarray(key).tolist(), "start": start})
        k = len(calls) - 1
        return Generation([[ord(ch) for ch in texts[n][k]] for n in names], [[] for _ in names],
                          [False] * len(names), stopped=[False] * len(names))

    monkeypatch.setattr(A, "generate_batch", fake_generate)
    monkeypatch.setattr(axes_gen, "user_prompt", lambda tok, text, history=(): text)
    monkeypatch.setattr("hmxfeel_mlx.evals.axes.core.reply_text", lambda tok, toks: "".join(map(chr, toks)))
    monkeypatch.setattr("hmxfeel_mlx.models.backend.cpu_speedups", lambda: False)  # no prefill to reuse here
    items = [GenItem(i, i, "", {"reference_fullscale": REF}) for i in ("e0", "e1", "e2")]
    res = EQBENCH.run(EvalContext(None, Tok(), None, seed=3), items)
    assert [c["temperature"] for c in calls] == list(EQBENCH_TEMPERATURES) == [0.01, 0.16, 0.31]
    assert [c["prompts"] for c in calls] == [["e0", "e1", "e2"], ["e1", "e2"], ["e1", "e2"]]
    assert all(c["max_tokens"] == 60 and c["stop"] is None and c["start"] is None for c in calls)
    assert [c["key"] for c in calls] == [np.asarray(k).tolist() for k in axes_gen._eqbench_keys(3)]  # one per attempt
    r0, r1, r2 = res.records
    assert [r["attempts_used"] for r in res.records] == [1, 3, 3]
    assert [a["accepted"] for a in r1["attempts"]] == [False, False, True] and r1["output"] == GOOD  # stripped
    assert r0["score_x10"] == pytest.approx(94.66514, abs=1e-4) == r1["score_x10"] and r2["score_x10"] is None
    assert r2["parsed"] == {} and r2["parsed_ok"] == 0.0
    # score 94.67 over 2 of 3 parsed (0.667 < 0.8333: not valid); mean attempts 7/3
    m = res.metrics
    assert m["score"] == pytest.approx(94.66514, abs=1e-4) and m["parse_rate"] == pytest.approx(2 / 3)
    assert m["valid"] == 0.0 and m["mean_attempts"] == pytest.approx(7 / 3) and m["parse_failures"] == 1.0
    assert res.settings["protocol"].startswith("hmxfeel eqbench/3: EQ-Bench v2.1") and res.settings["max_attempts"] == 3
    assert any("EQ-bench/EQ-Bench@d28c60c" in s for s in res.settings["source"])
    check_metrics_are_item_means(res)


def test_eqbench_attempts_from_the_first_prefill_sample_as_attempts_prefilled_again(tiny, monkeypatch):
    """On the CPU path every attempt decodes from the first prefill: the same replies, token for
    token, as asking each attempt's prompts afresh (prompts of different lengths, so the padding
    of the reused batch differs from the fresh one's), with the batch split into chunks too."""
    items = [GenItem(f"e{i}", q, "", {"reference_fullscale": REF}) for i, q in enumerate(
        ["How do you feel? Remorseful: <score>", "Score: 0 1 2 3 4 5 6 7 8 9 10.", "Annoyed?", "Tell me a story."])]
    from hmxfeel_mlx.models import attempts, generation

    prefills = []
    real = generation.prefill

    def counted(model, prompts, *a, **kw):
        prefills.append(len(prompts))
        return real(model, prompts, *a, **kw)

    monkeypatch.setattr(generation, "prefill", counted)
    monkeypatch.setattr(attempts, "prefill", counted)
    runs, calls = {}, {}
    for reuse in (True, False):
        monkeypatch.setattr("hmxfeel_mlx.models.backend.cpu_speedups", lambda: reuse)
        for size in (4, 3):
            prefills.clear()
            ctx = EvalContext(tiny.model, tiny.tokenizer, tiny.loaded, seed=5, batch_size=size)
            runs[reuse, size] = [[(t["output"], t["tokens"]) for t in r["attempts"]] for r in EQBENCH.run(ctx, items).records]
            calls[reuse, size] = list(prefills)
    assert runs[True, 4] == runs[False, 4] and runs[True, 3] == runs[False, 3]
    assert all(len(r) == 3 for r in runs[True, 4])  # the random model never parses: every attempt is used
    assert calls[True, 4] == [4] and calls[True, 3] == [3, 1]  # one prefill per chunk
    assert calls[False, 4] == [4, 4, 4] and calls[False, 3] == [3, 3, 3, 1, 1, 1]  # one per attempt


def test_eqbench_replies_are_seeded_and_never_cut(tiny):
    """Sampled attempts repeat with the same seed; a reply ends only at EOS or the 60-token
    budget (no stop rule can change what the parser reads)."""
    items = [GenItem(f"e{i}", q, "", {"reference_fullscale": REF})
             for i, q in enumerate(["How do you feel? Remorseful: <score>", "Score: 0 1 2 3 4 5 6 7 8 9 10."])]
    a = EQBENCH.run(tiny, items).records
    b = EQBENCH.run(tiny, items).records
    assert [r["attempts"] for r in a] == [r["attempts"] for r in b]
    attempts = [t for r in a for t in r["attempts"]]
    assert all(t["tokens"] == 60 or t["finished"] for t in attempts)
    assert len(attempts) == 6  # the random model's answers never parse: 3 attempts each
    assert [t["temperature"] for t in a[0]["attempts"]] == [0.01, 0.16, 0.31]


@needs_data
def test_eqbench_prompt_is_the_reference_v21_prompt():
    """Question 1 as the reference's remove_revision_instructions(prompt, 'en') returns it."""
    items = EQBENCH.load(BENCH_DATA / "eqbench", 171, 0, None)
    tail = ("Give each of these possible emotions a score from 0-10 for the relative intensity that they are likely "
            "to be feeling each.\n\nYou must output in the following format, including headings (of course, you "
            "should give your own scores), with no additional commentary:\n\nRemorseful: <score>\nIndifferent: "
            "<score>\nAffectionate: <score>\nAnnoyed: <score>\n\n\n[End of answer]\n\nRemember: zero is a valid "
            "score, meaning they are likely not feeling that emotion. You must score at least one emotion > 0.\n\n"
            "Your answer:\n")
    assert items[0].prompt.startswith("\nYour task is to predict") and items[0].prompt.endswith(tail)
    for it in items:
        assert "Critique" not in it.prompt and "Revised" not in it.prompt and "First pass" not in it.prompt
        assert all(f"{e}: <score>" in it.prompt for e in it.meta["emotions"]), it.id
