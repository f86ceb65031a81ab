"""The self-judge: score parsing, LoRA-off judging, the logprob score distribution, and
how well the embedded model judges its own kind of replies."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest

from hmxfeel_mlx.models.loading import load_model
from hmxfeel_mlx.training.calibration import judge_check
from hmxfeel_mlx.training.judge import (
    judge_prompts,
    judge_work,
    judged_text,
    lora_disabled,
    parse_score,
    score_distribution,
    score_distribution_and_mass,
    score_replies,
    score_tokens,
)
from hmxfeel_mlx.training.prompts import JudgeTemplate, load_calibration, load_judge_template


@pytest.mark.parametrize(
    "text, score",
    [("Score: 7/10", 7.0), (" 10", 10.0), ("I'd say 3.", 3.0), ("7.5 out of 10", 7.5), ("0", 0.0),
     ("100%", math.nan), ("no idea", math.nan), ("11 points", math.nan), ("score 10.0", 10.0)],
)
def test_parse_score(text, score):
    got = parse_score(text)
    assert (math.isnan(got) and math.isnan(score)) or got == score


def test_lora_disabled_gives_the_base_and_restores(tiny_model_dir):
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.utils import linear_to_lora_layers

    loaded = load_model(str(tiny_model_dir))
    x = mx.array([[5, 6, 7]])
    base = loaded.model(x)
    loaded.model.freeze()
    linear_to_lora_layers(loaded.model, 2, {"rank": 2, "scale": 5.0, "dropout": 0.0})
    loaded.model.load_weights([(n, mx.ones(p.shape) * 0.05) for n, p in tree_flatten(loaded.model.trainable_parameters())
                               if n.endswith("lora_b")], strict=False)
    tuned = loaded.model(x)
    assert float(mx.abs(tuned - base).max()) > 1e-3
    with pytest.raises(RuntimeError):
        with lora_disabled(loaded.model):
            assert mx.allclose(loaded.model(x), base, atol=1e-5)
            raise RuntimeError("leave the block early")
    assert mx.allclose(loaded.model(x), tuned, atol=1e-6)  # scales restored even after an error


def test_completion_format_prompt_ends_before_the_score_digit(embedded):
    tmpl = load_judge_template("forward", "fewshot")
    [ids] = judge_prompts(embedded.tokenizer, tmpl, [("Q?", "R.")], mode="logprob")
    text = embedded.tokenizer.decode(ids)
    assert text.endswith("Reply: R.\nScore: ") and "<|im_start|>" not in text
    chat = JudgeTemplate("forward", "Q: {question} R: {reply}")
    [ids] = judge_prompts(embedded.tokenizer, chat, [("Q?", "R.")])
    assert embedded.tokenizer.decode(ids).endswith("<|im_start|>assistant\n")


def test_split_ten_distribution_matches_brute_force(embedded):
    """SmolLM2 splits "10" into "1" "0": p(10) = p("1") p("0"|"1"), p(1) = p("1") (1 - p("0"|"1"))."""
    tok, model = embedded.tokenizer, embedded.model
    st = score_tokens(tok)
    assert st.ten is None and len(set(st.digits)) == 10
    prompts = [tok.encode("Rate it from 0 to 10. Score: ", add_special_tokens=False),
               tok.encode("Out of 10, I give this a ", add_special_tokens=False)]
    probs = score_distribution(model, tok, prompts)
    for p, ids in zip(probs, prompts):
        first = mx.softmax(model(mx.array([ids]))[0, -1].astype(mx.float32))
        second = mx.softmax(model(mx.array([ids + [st.digits[1]]]))[0, -1].astype(mx.float32))
        raw = [float(first[d]) for d in st.digits]
        zero_after_one = float(second[st.digits[0]])
        raw.append(raw[1] * zero_after_one)
        raw[1] *= 1 - zero_after_one
        expected = np.array(raw) / sum(raw)
        np.testing.assert_allclose(p, expected, rtol=1e-3, atol=1e-6)
        assert abs(p.sum() - 1) < 1e-9
    # the mass before renormalising: p(first token is a digit); splitting p("1") into 1 and 10 keeps it
    _, mass = score_distribution_and_mass(model, tok, prompts)
    for m, ids in zip(mass, prompts):
        first = mx.softmax(model(mx.array([ids]))[0, -1].astype(mx.float32))
        assert m == pytest.approx(sum(float(first[d]) for d in st.digits), rel=1e-3)


def test_logprob_score_is_the_expectation_and_text_mode_parses(tiny_model_dir):
    loaded = load_model(str(tiny_model_dir))
    tmpl = JudgeTemplate("forward", "Question: {question}\nReply: {reply}\nScore 0-10:")
    pairs = [("How do you feel?", "I feel happy."), ("What is 2+2?", "4")]
    done = []
    verdicts = score_replies(loaded.model, loaded.tokenizer, tmpl, pairs, mode="logprob", max_batch=1,
                             progress=done.append)
    assert done == [1, 1] and judge_work(2, "logprob", 4) == (2, "replies")
    st = score_tokens(loaded.tokenizer)
    [ids] = judge_prompts(loaded.tokenizer, tmpl, pairs[:1], "logprob")
    p = np.asarray(mx.softmax(loaded.model(mx.array([ids]))[0, -1].astype(mx.float32)))
    first_tokens = st.digits + ([st.ten] if st.ten is not None else [])
    assert verdicts[0].mass == pytest.approx(float(p[first_tokens].sum()), rel=1e-4)  # before renormalising
    for v in verdicts:
        assert abs(sum(v.probs) - 1) < 1e-9 and v.score == pytest.approx(np.dot(v.probs, np.arange(11)))
        assert 0 < v.mass < 1
    done.clear()
    text = score_replies(loaded.model, loaded.tokenizer, tmpl, pairs, mode="text", max_verdict_tokens=4,
                         progress=done.append)
    assert sum(done) == judge_work(2, "text", 4)[0]  # the whole token budget, however early verdicts end
    for v in text:  # a random model writes noise: a parsed score, or NaN, never an exception
        assert v.text is not None and (math.isnan(v.score) or 0 <= v.score <= 10) and v.mass is None
    with pytest.raises(ValueError, match="unknown judge mode"):
        score_replies(loaded.model, loaded.tokenizer, tmpl, pairs, mode="vibes")


def test_judged_text_keeps_the_first_words_and_their_spacing():
    reply = "I feel\nhappy  today, really. More words follow here."
    assert judged_text(reply, 0) == reply and judged_text(reply, 100) == reply
    assert judged_text(reply, 2) == "I feel"
    assert judged_text(reply, 4) == "I feel\nhappy  today,"
    assert judged_text("  one two three", 2) == "  one two" and judged_text("one two", 2) == "one two"
    assert judged_text("", 3) == ""


def test_a_judge_word_window_scores_only_the_window(tiny_model_dir):
    """``max_words`` judges each reply exactly as if it had ended after its first words."""
    loaded = load_model(str(tiny_model_dir))
    tmpl = JudgeTemplate("forward", "Question: {question}\nReply: {reply}\nScore 0-10:")
    long = "I feel happy. " + "Then many other words follow the feeling. " * 5
    cut = score_replies(loaded.model, loaded.tokenizer, tmpl, [("Q?", long)], mode="logprob", max_words=3)
    same = score_replies(loaded.model, loaded.tokenizer, tmpl, [("Q?", "I feel happy.")], mode="logprob")
    whole = score_replies(loaded.model, loaded.tokenizer, tmpl, [("Q?", long)], mode="logprob")
    assert cut[0].probs == pytest.approx(same[0].probs, abs=1e-6)
    assert whole[0].probs != pytest.approx(same[0].probs, abs=1e-6)


def test_embedded_model_is_a_usable_judge_with_the_fewshot_rubric(embedded):
    """The calibration this project's default recipe rests on (see README: judge quality)."""
    rows = load_calibration()
    result = judge_check(embedded.model, embedded.tokenizer, load_judge_template("forward", "fewshot"), rows, "logprob")
    assert result.auc >= 0.85 and result.spearman > 0.3 and result.unparsed == 0
    assert result.mean_by_label["human"] > result.mean_by_label["machine"]
    # its raw scores are compressed; the calibrated scale spreads the labels around the neutral 5
    raw, cal = result.mean_by_label, result.mean_calibrated
    assert raw["human"] - raw["machine"] < 2.5 and result.scale.slope > 0 and result.warning is None
    assert cal["machine"] < 4 < cal["neutral"] < 6 < cal["human"]
    assert cal["human"] - cal["machine"] > 2 * (raw["human"] - raw["machine"])
