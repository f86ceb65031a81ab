"""Per-item alignment of forward and reverse records (evals.item_pairs)."""

from hmxfeel_mlx.evals.item_pairs import Paired, Unpaired, item_values, key_kind, pair_items, records_of, unit_values


def recs(values, ids=None, prompts=None, field="correct"):
    out = []
    for i, v in enumerate(values):
        r = {field: v}
        if ids is not None:
            r["id"] = ids[i]
        if prompts is not None:
            r["prompt"] = prompts[i]
        out.append(r)
    return out


def test_key_kind_prefers_ids_then_identical_prompt_order():
    assert key_kind([recs([1, 0], ids=["a", "b"]), recs([0], ids=["b"])]) == "id"
    same = ["p", "q"]
    assert key_kind([recs([1, 0], prompts=same), recs([0, 1], prompts=same)]) == "prompt"
    assert key_kind([recs([1, 0], prompts=same), recs([0, 1], prompts=same[::-1])]) is None  # other order
    assert key_kind([recs([1, 0], ids=["a", "b"], prompts=same), recs([0, 1], prompts=same)]) == "prompt"  # ids missing
    assert key_kind([recs([1, 0]), recs([0, 1])]) is None  # neither ids nor prompts


def test_records_sharing_a_key_are_averaged_and_missing_values_skipped():
    files = [recs([1.0, 0.0, None, 1.0], ids=["a", "a", "b", "c"]), recs([0.0, None], ids=["c", "d"])]
    assert unit_values(files, "correct", "id") == {"a": 0.5, "c": 0.5}  # b and d have no value
    assert sorted(item_values(files, "correct").tolist()) == [0.5, 0.5]
    assert sorted(item_values([recs([1.0, None, 0.0])], "correct").tolist()) == [0.0, 1.0]  # no key: per record


def test_pair_items_aligns_by_key_and_says_why_not():
    fwd = [recs([1, 1, 0], ids=["x", "y", "z"])]
    rev = [recs([None, 0, 1], ids=["z", "y", "x"])]
    p = pair_items(fwd, rev, "correct")
    assert isinstance(p, Paired) and p.by == "id" and p.keys == ["x", "y"]  # z has no reverse value
    assert p.forward.tolist() == [1.0, 1.0] and p.reverse.tolist() == [1.0, 0.0]
    assert (p.n_forward, p.n_reverse) == (3, 2)
    none = pair_items(fwd, [recs([None, None, None], ids=["x", "y", "z"])], "correct")
    assert isinstance(none, Unpaired) and none.reason == "undefined: no item (reverse)"
    apart = pair_items([recs([1], ids=["x"])], [recs([0], ids=["y"])], "correct")
    assert apart.reason == "cannot pair items: no item has a value on both sides"
    order = pair_items([recs([1, 0], prompts=["p", "q"])], [recs([1, 0], prompts=["q", "p"])], "correct")
    assert order.reason.startswith("cannot pair items: no item ids, and the files do not list the same prompts")


def test_records_of_reads_each_evaluation():
    ev = {"results": {"mmlu": {"records": [{"id": "a", "correct": 1.0}, "junk"]}}}
    assert records_of([ev, {"results": {}}], "mmlu") == [[{"id": "a", "correct": 1.0}], []]
