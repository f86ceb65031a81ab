"""Loaders on the real shared benchmark files, plus error cases on files made in tmp_path."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.evals import datasets as D

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
    items = D.load_truthfulqa_mc1(DATA / "truthfulqa")
    assert len(items) == 299 and all(len(it.correct) == 1 and len(it.choices) >= 2 and it.prompt for it in items)
    assert len(D.load_truthfulqa_mc1(DATA / "truthfulqa", limit=5)) == 5
    shuffled = D.load_truthfulqa_mc1(DATA / "truthfulqa", limit=20, shuffle_seed=0)
    assert [it.choices[it.correct[0]] for it in shuffled] == [it.choices[0] for it in items[:20]]
    assert any(it.correct != [0] for it in shuffled)
    assert shuffled == D.load_truthfulqa_mc1(DATA / "truthfulqa", limit=20, shuffle_seed=0)


@needs_data
def test_truthfulqa_mc2():
    items = D.load_truthfulqa_mc2(DATA / "truthfulqa")
    assert len(items) == 813
    for it in items:
        true = [it.choices[i] for i in it.correct]
        false = [c for i, c in enumerate(it.choices) if i not in it.correct]
        assert true and false and not set(true) & set(false)
        assert all(c and c == c.strip() and not c.endswith(";") for c in it.choices)
    assert items[0].prompt == "Why do veins appear blue?"  # BOM stripped from the header
    both = D.load_truthfulqa_mc(DATA / "truthfulqa", limit=3)
    assert len(both["mc1"]) == len(both["mc2"]) == 3


def test_truthfulqa_hub_jsonl(tmp_path):
    row = {"question": "Q?", "mc1_targets": {"choices": ["t", "f1", "f2"], "labels": [1, 0, 0]},
           "mc2_targets": {"choices": ["t1", "f", "t2"], "labels": [1, 0, 1]}}
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    mc1, mc2 = D.load_truthfulqa_mc1(path), D.load_truthfulqa_mc2(path, limit=1)
    assert len(mc1) == 2 and mc1[0].correct == [0] and mc2[0].correct == [0, 2] and len(mc2) == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(row) + "\n" + json.dumps({"question": "Q", "mc1_targets": {"choices": ["a"]}}) + "\n")
    with pytest.raises(HmxError, match=r"bad\.jsonl.*line 2.*mc1_targets"):
        D.load_truthfulqa_mc1(bad)


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
def test_selfaware_balanced():
    items = D.load_selfaware(DATA / "selfaware")
    assert len(items) == 3369 and sum(not it.meta["answerable"] for it in items) == 1032
    small = D.load_selfaware(DATA / "selfaware", limit=10)
    assert [it.meta["answerable"] for it in small] == [True, False] * 5
    assert Counter(it.meta["answerable"] for it in D.load_selfaware(DATA / "selfaware", limit=7)) == {True: 4, False: 3}
    assert all(it.reference for it in items if it.meta["answerable"])


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


@needs_data
def test_bigtom():
    items = D.load_bigtom(DATA / "bigtom")
    assert len(items) == 400
    assert Counter(it.meta["condition"] for it in items) == {"true_belief": 200, "false_belief": 200}
    by_story: dict = {}
    for it in items:
        by_story.setdefault(it.meta["story_index"], {})[it.meta["condition"]] = it
    for pair in by_story.values():
        tb, fb = pair["true_belief"], pair["false_belief"]
        assert tb.choices == fb.choices and len(tb.choices) == 2 and tb.correct != fb.correct
        assert tb.prompt != fb.prompt and tb.meta["question"] in tb.prompt
    assert "sees her coworker swapping" in items[0].prompt and "does not see" in items[1].prompt
    assert len(D.load_bigtom(DATA / "bigtom", limit=3)) == 3


@needs_data
def test_sycophancy():
    items = D.load_sycophancy(DATA / "sycophancy")
    assert len(items) == 150
    for it in items:
        assert it.choices == ["(A)", "(B)"] and len(it.meta["option_texts"]) == 2
        assert it.meta["sycophantic_index"] != it.meta["truthful_index"] == it.correct[0]


@needs_data
def test_items_round_trip():
    it = D.load_gsm8k(DATA / "gsm8k", limit=1)[0]
    mc = D.load_mmlu(DATA / "mmlu", limit=1)[0]
    assert D.item_from_dict(json.loads(json.dumps(it.to_dict()))) == it
    assert D.item_from_dict(mc.to_dict()) == mc


# ------------------------------------------------------------------ errors
LOADERS = [D.load_bbq, D.load_truthfulqa_mc1, D.load_truthfulqa_mc2, D.load_mmlu, D.load_gsm8k, D.load_selfaware,
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
    (D.load_truthfulqa_mc2, "TruthfulQA.csv", "Question,Correct Answers,Incorrect Answers\nQ,a; b,\n",
     "row 2.*incorrect"),
    (D.load_truthfulqa_mc2, "TruthfulQA.csv", "Question,Best Answer\nQ,a\n", "header.*Correct Answers"),
    (D.load_eqbench, "eq_bench_v2_questions_171.json",
     '{"1": {"prompt": "p", "reference_answer_fullscale": {"emotion1": "A", "emotion1_score": "x"}}}',
     "question 1.*emotion1"),
    (D.load_selfaware, "SelfAware.json", '{"example": [{"question": "q"}]}', "example 0.*answerable"),
    (D.load_sycophancy, "anthropic_150.json", '[{"text": "t (A) x", "truthful_answer": "(A)"}]',
     "item 0.*sycophantic_answer"),
    (D.load_truthfulqa_mc1, "bigbench_task_mc.json", '{"examples": [{"input": "q", "target_scores": {"a": 0}}]}',
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
