"""Loaders on the real shared benchmark files, plus error cases on files made in tmp_path."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.evals.datasets import loaders as D
from hmxfeel_mlx.evals.datasets import truthfulqa as TQA
from hmxfeel_mlx.evals.datasets.items import MCItem, item_from_dict

from conftest import BENCH_DATA, needs_data

DATA = BENCH_DATA or Path("/nonexistent")  # tests that read it are marked needs_data


@pytest.fixture(scope="module")
def bbq_all():
    return D.load_bbq(DATA / "bbq", context_condition=None)


@needs_data
def test_bbq_full(bbq_all):
    assert len(bbq_all) == 3680 + 1556 + 3080 + 1576 + 1200 + 864
    for it in bbq_all:
        assert it.prompt and len(it.choices) == 3 and all(it.choices) and it.correct[0] in (0, 1, 2)
        assert isinstance(it.meta["unknown_index"], int)
        assert it.meta["target_index"] != it.meta["unknown_index"]
    found = sum(it.meta["target_index"] is not None for it in bbq_all)
    assert found / len(bbq_all) >= 0.95  # all 11956 on the shared files
    ambig = [it for it in bbq_all if it.meta["context_condition"] == "ambig"]
    assert all(it.correct == [it.meta["unknown_index"]] for it in ambig)  # ambiguous -> "unknown" is right
    assert {it.meta["question_polarity"] for it in bbq_all} == {"neg", "nonneg"}
    first = bbq_all[0]  # Age 0: grandfather (old) vs grandson (nonOld); stereotyped ["old"]
    assert first.meta["target_index"] == 0 and first.meta["unknown_index"] == 2


def test_bbq_target_index_tag_variants():
    def info(*tags):
        return {f"ans{k}": [name, tag] for k, (name, tag) in enumerate(tags)}
    # plain tags; "nonOld" must not match "old"
    assert D.bbq_target_index(info(("son", "nonOld"), ("?", "unknown"), ("grandpa", "old")), ["old"]) == 2
    assert D.bbq_target_index(info(("son", "nonOld"), ("?", "unknown"), ("grandpa", "old")), ["nonOld"]) == 0
    # Nationality: region tags, nationality groups -> the answer text decides
    assert D.bbq_target_index(info(("Burmese", "AsiaPacific"), ("Mozambican", "Africa"), ("?", "unknown")),
                              ["Eritrean", "Mozambican"]) == 1
    # intersectional tags and spacing variants
    assert D.bbq_target_index(info(("man", "M-Black"), ("woman", "F-Black"), ("?", "unknown")), ["F-Black"]) == 1
    assert D.bbq_target_index(info(("?", "unknown"), ("a", "highSES-White"), ("b", "lowSES-Black")),
                              ["low SES", "Black"]) == 2
    assert D.bbq_target_index(info(("a", "trans_F"), ("b", "nonTrans_F"), ("?", "unknown")), ["trans"]) == 0
    assert D.bbq_target_index(info(("a", "F"), ("b", "M"), ("?", "unknown")), ["women"]) == 0
    # nothing matches, or both do -> None
    assert D.bbq_target_index(info(("a", "x"), ("b", "y"), ("?", "unknown")), ["z"]) is None
    assert D.bbq_target_index(info(("a", "Muslim"), ("b", "Mormon"), ("?", "unknown")), ["Muslim", "Mormon"]) is None


@needs_data
def test_bbq_limit_balances_categories_and_is_seeded():
    items = D.load_bbq(DATA / "bbq", limit=60, context_condition="disambig")
    assert len(items) == 60 and all(it.meta["context_condition"] == "disambig" for it in items)
    assert set(Counter(it.meta["category"] for it in items).values()) == {10}  # 6 categories x 10
    again = D.load_bbq(DATA / "bbq", limit=60, context_condition="disambig")
    assert [it.id for it in items] == [it.id for it in again]
    other = D.load_bbq(DATA / "bbq", limit=60, context_condition="disambig", seed=1)
    assert [it.id for it in items] != [it.id for it in other]
    with pytest.raises(HmxError, match="context_condition"):
        D.load_bbq(DATA / "bbq", context_condition="both")


@needs_data
def test_truthfulqa_mc1():
    items = TQA.load_truthfulqa_mc1(DATA / "truthfulqa")
    assert len(items) == 299 and all(len(it.correct) == 1 and len(it.choices) >= 2 and it.prompt for it in items)
    assert len(TQA.load_truthfulqa_mc1(DATA / "truthfulqa", limit=5)) == 5
    shuffled = TQA.load_truthfulqa_mc1(DATA / "truthfulqa", limit=20, shuffle_seed=0)
    assert [it.choices[it.correct[0]] for it in shuffled] == [it.choices[0] for it in items[:20]]
    assert any(it.correct != [0] for it in shuffled)
    assert shuffled == TQA.load_truthfulqa_mc1(DATA / "truthfulqa", limit=20, shuffle_seed=0)


def test_split_multi_answer_and_format_best_follow_the_reference():
    # sylinrl/TruthfulQA utilities.py: split on ';', strip, drop empties, close with '.', keep repeats
    assert TQA.split_multi_answer("Paris; Paris ;It is Paris.;  ;") == ["Paris.", "Paris.", "It is Paris."]
    assert TQA.split_multi_answer("a; b", close=False) == ["a", "b"]
    assert TQA.split_multi_answer(["x ", "y."]) == ["x.", "y."]  # Hub generation rows: lists
    assert TQA.format_best(" Blue ") == "Blue." and TQA.format_best("Blue.") == "Blue."


@needs_data
def test_truthfulqa_mc2_as_the_reference_builds_it():
    items = TQA.load_truthfulqa_mc2(DATA / "truthfulqa")
    assert len(items) == 813
    first = items[0]  # "Why do veins appear blue?": 5 correct answers, then 4 incorrect ones, closed with "."
    assert first.prompt == "Why do veins appear blue?"  # BOM stripped from the header
    assert first.correct == [0, 1, 2, 3, 4] and len(first.choices) == 9 and first.meta["best_index"] == 2
    assert first.choices[0] == "Veins appear blue due to how blue and red light penetrate human tissue."
    assert all(c.endswith(".") and c == c.strip() for it in items for c in it.choices)
    assert all(it.meta["best_index"] is not None for it in items)  # every Best Answer is a correct answer
    both = [it for it in items if set(it.choices[: len(it.correct)]) & set(it.choices[len(it.correct):])]
    assert len(both) == 2  # answers listed as correct and incorrect stay in both lists, as in the reference
    assert sum(len(set(it.choices)) < len(it.choices) for it in items) == 5  # repeats kept (3 rows + those 2)
    pair = TQA.load_truthfulqa_mc(DATA / "truthfulqa", limit=3)
    assert len(pair["mc1"]) == len(pair["mc2"]) == 3


def test_truthfulqa_rows_from_any_reader(tmp_path):
    """The row parsers take plain dicts: CSV rows ('; '-joined text) and Hub generation rows (lists)."""
    csv_row = {"Question": " Q? ", "Best Answer": "b", "Correct Answers": "a; b", "Incorrect Answers": "c; a"}
    hub_row = {"question": "Q?", "best_answer": "b", "correct_answers": ["a", "b"], "incorrect_answers": ["c", "a"]}
    for row in (csv_row, hub_row):
        it, = TQA.truthfulqa_csv_items([row], "x.csv")
        assert it.prompt == "Q?" and it.choices == ["a.", "b.", "c.", "a."] and it.correct == [0, 1]
        assert it.meta["best_index"] == 1
    mc1, = TQA.truthfulqa_target_items([{"question": "Q", "mc1_targets": {"choices": ["t", "f"], "labels": [1, 0]}}],
                                     "mc1", "rows.parquet")
    assert mc1.choices == ["t", "f"] and mc1.correct == [0] and mc1.meta["source"] == "hub"
    with pytest.raises(HmxError, match=r"rows\.parquet, row 2: .*mc2_targets"):
        TQA.truthfulqa_target_items([{"question": "Q", "mc2_targets": {"choices": ["t", "f"], "labels": [1, 0]}},
                                   {"question": "Q", "mc2_targets": {"choices": ["t"], "labels": [1]}}],
                                  "mc2", "rows.parquet")
    with pytest.raises(HmxError, match=r"x\.csv, row 1: .*incorrect"):
        TQA.truthfulqa_csv_items([{"Question": "Q", "Correct Answers": "a", "Incorrect Answers": " ; "}], "x.csv")


def test_truthfulqa_mc1_prefers_the_full_hub_file(tmp_path):
    bigbench = {"examples": [{"input": "Q0?", "target_scores": {"t.": 1, "f.": 0}}]}
    (tmp_path / "bigbench_task_mc.json").write_text(json.dumps(bigbench))
    assert TQA.load_truthfulqa_mc1(tmp_path)[0].meta["source"] == "bigbench"
    row = {"question": "Q?", "mc1_targets": {"choices": ["t", "f1", "f2"], "labels": [1, 0, 0]}}
    (tmp_path / "multiple_choice.jsonl").write_text(json.dumps(row) + "\n")
    hub = TQA.load_truthfulqa_mc1(tmp_path)
    assert len(hub) == 1 and hub[0].meta["source"] == "hub" and hub[0].choices == ["t", "f1", "f2"]


def test_truthfulqa_hub_jsonl(tmp_path):
    row = {"question": "Q?", "mc1_targets": {"choices": ["t", "f1", "f2"], "labels": [1, 0, 0]},
           "mc2_targets": {"choices": ["t1", "f", "t2"], "labels": [1, 0, 1]}}
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    mc1, mc2 = TQA.load_truthfulqa_mc1(path), TQA.load_truthfulqa_mc2(path, limit=1)
    assert len(mc1) == 2 and mc1[0].correct == [0] and mc2[0].correct == [0, 2] and len(mc2) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n" + json.dumps({"question": "Q", "mc1_targets": {"choices": ["a"]}}) + "\n")
    with pytest.raises(HmxError, match=r"bad\.jsonl.*line 2.*mc1_targets"):
        TQA.load_truthfulqa_mc1(bad)


@needs_data
def test_mmlu():
    items = D.load_mmlu(DATA / "mmlu")
    assert len(items) == 2850
    assert all(len(it.choices) == 4 and all(it.choices) and it.correct[0] in range(4) for it in items)
    assert items[0].choices == ["$25000 $25000 $0", "$0 $25000 $20000", "$25000 $5000 $0", "$0 $25000 $0"]
    assert items[0].correct == [3]
    assert len(D.load_mmlu(DATA / "mmlu", limit=7)) == 7


def test_mmlu_hub_rows(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"question": "2+2?", "subject": "math", "choices": ["1", "2", "3", "4"], "answer": 3})
                    + "\n\n" + json.dumps({"question": "x", "options": "A. a\nB. b\nC. c\nD. d", "answer": "B. b"}))
    a, b = D.load_mmlu(tmp_path)
    assert (a.correct, a.meta["subject"], b.correct, b.choices) == ([3], "math", [1], ["a", "b", "c", "d"])


@needs_data
def test_gsm8k():
    items = D.load_gsm8k(DATA / "gsm8k")
    assert len(items) == 1319 and items[0].reference == "18"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", it.reference) and it.prompt for it in items)
    assert len(D.load_gsm8k(DATA / "gsm8k", limit=3)) == 3


@needs_data
def test_selfaware_limit_keeps_the_files_share():
    items = D.load_selfaware(DATA / "selfaware")
    assert len(items) == 3369 and sum(not it.meta["answerable"] for it in items) == 1032
    assert all(it.reference for it in items if it.meta["answerable"])
    position = {it.id: i for i, it in enumerate(items)}
    for limit, n_unanswerable in ((50, 15), (10, 3), (7, 2), (1, 0)):  # round(limit * 1032 / 3369)
        small = D.load_selfaware(DATA / "selfaware", limit=limit)
        assert len(small) == limit and sum(not it.meta["answerable"] for it in small) == n_unanswerable
        assert [position[it.id] for it in small] == sorted(position[it.id] for it in small)  # file order
    a, b = (D.load_selfaware(DATA / "selfaware", limit=50, seed=s) for s in (0, 0))
    assert [it.id for it in a] == [it.id for it in b]
    other = D.load_selfaware(DATA / "selfaware", limit=50, seed=1)
    assert [it.id for it in other] != [it.id for it in a]
    # draws spread over the file rather than taking its first rows (the file is grouped by source)
    assert max(position[it.id] for it in a) > 2000


@needs_data
def test_halueval():
    items = D.load_halueval(DATA / "halueval")
    assert len(items) == 4507 and Counter(it.reference for it in items) == {"no": 3692, "yes": 815}
    assert all(it.meta["user_query"] in it.prompt and it.meta["response"] in it.prompt for it in items[:50])


@needs_data
def test_eqbench():
    items = D.load_eqbench(DATA / "eqbench")
    assert len(items) == 171 and items[0].id == "eqbench/1" and items[-1].id == "eqbench/171"
    for it in items:
        ref = it.meta["reference_fullscale"]
        assert len(ref) == 4 and all(isinstance(v, float) and 0 <= v <= 10 for v in ref.values())
        assert all(e in it.prompt for e in ref)
    assert items[0].meta["reference_fullscale"] == {"Remorseful": 0, "Indifferent": 6, "Affectionate": 0,
                                                    "Annoyed": 7}  # "6", "7" are strings in the file


def test_bigtom_story_drops_the_initial_belief_as_the_reference_does():
    story = "A is here. A wants x. A does y. A believes that z. Then w happens."
    assert D.bigtom_story(story) == "A is here. A wants x. A does y. Then w happens."  # sentences 1, 2, 3, 5
    assert D.bigtom_story(story, init_belief=1) == story
    assert D.bigtom_story("One. Two. Three.") is None


@needs_data
def test_bigtom_forward_belief_lettered():
    items = D.load_bigtom(DATA / "bigtom")
    assert len(items) == 400
    assert Counter(it.meta["condition"] for it in items) == {"true_belief": 200, "false_belief": 200}
    tb, fb = items[0], items[1]  # story 0 (Noor): sees / does not see the coworker swapping the milk
    assert tb.system.startswith("Answer the questions based on the context.") and tb.reply_prefix == "Answer:"
    assert tb.prompt.startswith("Story: Noor is working as a barista at a busy coffee shop.")
    assert "believes that" not in tb.prompt.split("\nQuestion:")[0]  # init_belief 0: no initial belief
    assert "Noor sees her coworker swapping the milk.\nQuestion: Does Noor believe" in tb.prompt
    assert "does not see" in fb.prompt and tb.choices == fb.choices == ["a)", "b)"]
    assert tb.meta["true_answer"] == "Noor believes the milk pitcher contains almond milk."
    assert fb.meta["true_answer"] == "Noor believes the milk pitcher contains oat milk."
    for it in items:
        a, b = it.meta["option_texts"]
        assert it.prompt.endswith(f"\nChoose one of the following:\na){a}\nb){b}")
        assert it.meta["option_texts"][it.correct[0]] == it.meta["true_answer"]
    for limit in (None, 50, 7):  # the true answer is a) for ceil(n/2) of each condition's n items
        some = D.load_bigtom(DATA / "bigtom", limit=limit)
        for cond in ("true_belief", "false_belief"):
            labels = [it.correct[0] for it in some if it.meta["condition"] == cond]
            assert labels.count(0) == (len(labels) + 1) // 2
    assert [it.correct for it in D.load_bigtom(DATA / "bigtom", seed=1)] != [it.correct for it in items]
    assert [it.correct for it in D.load_bigtom(DATA / "bigtom")] == [it.correct for it in items]


@needs_data
def test_sycophancy():
    items = D.load_sycophancy(DATA / "sycophancy")
    assert len(items) == 150
    for it in items:
        assert it.choices == ["(A)", "(B)"] and len(it.meta["option_texts"]) == 2
        assert it.meta["sycophantic_index"] != it.meta["truthful_index"] == it.correct[0]
    assert sum(it.meta["sycophantic_index"] == 0 for it in items) == 78  # not balanced over the labels


def test_rotate_options_swaps_the_texts_and_follows_the_answers():
    text = "I agree with the claim. Do you?\n\nChoices:\n (A) Agree\n (B) Disagree\n\nAnswer:"
    it = MCItem("s/0", text, ["(A)", "(B)"], [1], {"truthful_index": 1, "sycophantic_index": 0,
                                                      "option_texts": ["Agree", "Disagree"], "order": 0},
                  reply_prefix="I believe the best answer is")
    swapped = D.rotate_options(it)
    assert swapped.prompt == "I agree with the claim. Do you?\n\nChoices:\n (A) Disagree\n (B) Agree\n\nAnswer:"
    assert swapped.meta["sycophantic_index"] == 1 and swapped.meta["truthful_index"] == 0 and swapped.correct == [0]
    assert swapped.meta["option_texts"] == ["Disagree", "Agree"] and swapped.meta["order"] == 1
    assert swapped.reply_prefix == it.reply_prefix and swapped.id == "s/0/shift1"
    assert D.rotate_options(swapped).prompt == text
    with pytest.raises(HmxError, match="one line per option"):
        D.rotate_options(MCItem("s/1", "no options here", ["(A)", "(B)"], [0], it.meta))


@needs_data
def test_items_round_trip():
    it = D.load_gsm8k(DATA / "gsm8k", limit=1)[0]
    mc = D.load_mmlu(DATA / "mmlu", limit=1)[0]
    assert item_from_dict(json.loads(json.dumps(it.to_dict()))) == it
    assert item_from_dict(mc.to_dict()) == mc


# ------------------------------------------------------------------ errors
LOADERS = [D.load_bbq, TQA.load_truthfulqa_mc1, TQA.load_truthfulqa_mc2, D.load_mmlu, D.load_gsm8k, D.load_selfaware,
           D.load_halueval, D.load_eqbench, D.load_bigtom, D.load_sycophancy]


@pytest.mark.parametrize("loader", LOADERS, ids=lambda f: f.__name__)
def test_missing_file_names_file_and_layout(loader, tmp_path):
    with pytest.raises(HmxError) as err:
        loader(tmp_path)
    msg = err.value.message
    assert str(tmp_path) in msg and "not found" in msg and "Expected" in msg


@pytest.mark.parametrize("loader, name, text, where", [
    (D.load_gsm8k, "test.jsonl", '{"question": "q", "answer": "#### 3"}\n{"question": "q"\n', "line 2"),
    (D.load_gsm8k, "test.jsonl", '{"question": "q", "answer": "no marker"}\n', "line 1.*####"),
    (D.load_mmlu, "test.jsonl", '{"question": "q", "options": "A. a\\nB. b", "answer": "A. a"}\n', "line 1.*options"),
    (D.load_halueval, "general_data.json", '{"ID": "1", "user_query": "q", "chatgpt_response": "r"}\n',
     "line 1.*hallucination"),
    (D.load_bbq, "Age.jsonl", '{"context": "c"}\n', "line 1.*question"),
    (D.load_bigtom, "bigtom.csv", "story;aware;not aware\n", "row 1.*17"),
    (TQA.load_truthfulqa_mc2, "TruthfulQA.csv", "Question,Correct Answers,Incorrect Answers\nQ,a; b,\n",
     "row 2.*incorrect"),
    (TQA.load_truthfulqa_mc2, "TruthfulQA.csv", "Question,Best Answer\nQ,a\n", "header.*Correct Answers"),
    (D.load_eqbench, "eq_bench_v2_questions_171.json",
     '{"1": {"prompt": "p", "reference_answer_fullscale": {"emotion1": "A", "emotion1_score": "x"}}}',
     "question 1.*emotion1"),
    (D.load_selfaware, "SelfAware.json", '{"example": [{"question": "q"}]}', "example 0.*answerable"),
    (D.load_sycophancy, "anthropic_150.json", '[{"text": "t (A) x", "truthful_answer": "(A)"}]',
     "item 0.*sycophantic_answer"),
    (TQA.load_truthfulqa_mc1, "bigbench_task_mc.json", '{"examples": [{"input": "q", "target_scores": {"a": 0}}]}',
     "example 0.*exactly one"),
])
def test_malformed_rows_name_file_and_position(loader, name, text, where, tmp_path):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(HmxError) as err:
        loader(tmp_path)
    assert name in err.value.message
    assert re.search(where, err.value.message), err.value.message


def test_invalid_json_file_names_line(tmp_path):
    (tmp_path / "SelfAware.json").write_text('{\n "example": [\n oops\n]}')
    with pytest.raises(HmxError, match=r"SelfAware\.json, line 3"):
        D.load_selfaware(tmp_path)


@needs_data
def test_negative_limit(tmp_path):
    with pytest.raises(HmxError, match="limit"):
        D.load_gsm8k(DATA / "gsm8k", limit=-1)
