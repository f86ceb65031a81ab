"""`hmx-mlx compare` on evaluation JSONs built by hand; expected values computed by hand."""

from __future__ import annotations

import csv
import io
import json
import math

import click
import pytest
from click.testing import CliRunner

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.evals import stats
from hmxfeel_mlx.evals.axes.core import EVAL_SCHEMA
from hmxfeel_mlx.evals.commands import compare_command, eval_command
from hmxfeel_mlx.evals.compare import (
    DIFFERS, IMPROVED, UNCHANGED, Row, compare_paths, decide, find_eval, print_table, table_cells, to_csv, to_json,
    to_markdown,
)

SPECS = {"mmlu": {"accuracy": {"higher_is_better": True, "headline": True, "item_field": "correct"}},
         "truthfulqa": {"mc1": {"higher_is_better": True, "headline": True, "item_field": "mc1"},
                        "mc2": {"higher_is_better": True, "headline": True, "item_field": "mc2"}},
         "halueval": {"accuracy": {"higher_is_better": True, "headline": True, "item_field": "correct"}},
         "feeling": {"feeling_rate": {"higher_is_better": True, "headline": False, "item_field": "has_feeling"}},
         "gsm8k": {"accuracy": {"higher_is_better": True, "headline": True, "item_field": "correct"},
                   "extraction_failure_rate": {"higher_is_better": False, "headline": False, "item_field": None}},
         "sycophancy_opinion": {"sycophancy_rate": {"higher_is_better": False, "headline": True,
                                                    "item_field": "sycophantic"}},
         "bbq_ambig": {"bias_score": {"higher_is_better": False, "headline": False, "item_field": None}},
         "selfaware": {"f1": {"higher_is_better": True, "headline": True, "item_field": None}}}
HTML_KEYS = {"model", "axis", "metric", "higher_is_better", "headline", "base", "forward_mean", "forward_std",
             "forward_n", "reverse_mean", "reverse_std", "reverse_n", "diff", "test", "p_value", "ci_low", "ci_high",
             "significant", "relative_change", "p_adjusted", "decision"}


def make_eval(folder, name, condition, values, seed=None, created=0.0, items=None, model="m", ids=True):
    """An evaluation file: values {axis: {metric: v}}, items {axis: {field: [per-item values]}}; each
    record gets id "<axis>/<i>" (ids=True), the ids listed in its "id" field, or none (ids=False)."""
    results = {}
    for axis, metrics in values.items():
        fields = dict((items or {}).get(axis, {}))
        n = max((len(v) for v in fields.values()), default=0)
        if ids is True and "id" not in fields:
            fields["id"] = [f"{axis}/{i}" for i in range(n)]
        records = [{k: v[i] for k, v in fields.items()} for i in range(n)]
        results[axis] = {"metrics": metrics, "metric_specs": {m: SPECS[axis][m] for m in metrics},
                         "records": records, "settings": {}, "n": n, "seconds": 0.0}
    run = None if condition == "base" else f"runs/{condition}-s{seed}"
    rec = {"schema": EVAL_SCHEMA, "status": "complete", "condition": condition, "model": model, "run": run,
           "checkpoint": None if run is None else "step_30", "train_seed": seed, "seed": 0, "limit": 4,
           "data_files": {"mmlu/test.jsonl": "abc"}, "created_unix": created, "results": results}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(rec))
    return path


@pytest.fixture()
def two_seeds(tmp_path):
    v = lambda mmlu, gsm, syc, bias: {"mmlu": {"accuracy": mmlu}, "gsm8k": {"accuracy": gsm,
                                      "extraction_failure_rate": 0.1}, "sycophancy_opinion": {"sycophancy_rate": syc},
                                      "bbq_ambig": {"bias_score": bias}}
    return [make_eval(tmp_path, "base", "base", v(0.50, 0.20, 0.45, 0.10)),
            make_eval(tmp_path, "f0", "forward", v(0.60, 0.29, 0.40, 0.05), 0),
            make_eval(tmp_path, "f1", "forward", v(0.64, 0.31, 0.42, 0.07), 1),
            make_eval(tmp_path, "r0", "reverse", v(0.50, 0.30, 0.40, -0.02), 0),
            make_eval(tmp_path, "r1", "reverse", v(0.54, 0.32, 0.41, 0.00), 1)]


def by_key(c):
    return {(r.axis, r.metric): r for r in c.rows}


def test_two_seeds_welch_and_headline(two_seeds):
    c = compare_paths(two_seeds)
    rows = by_key(c)
    r = rows[("mmlu", "accuracy")]
    # forward 0.60, 0.64: mean 0.62, sample std sqrt(2 * 0.02^2 / 1) = 0.028284; reverse 0.50, 0.54: 0.52, 0.028284
    assert r.base == pytest.approx(0.50)
    assert (r.forward_mean, r.forward_std, r.forward_n) == (pytest.approx(0.62), pytest.approx(0.0282843, 1e-5), 2)
    assert (r.reverse_mean, r.reverse_std, r.reverse_n) == (pytest.approx(0.52), pytest.approx(0.0282843, 1e-5), 2)
    assert r.diff == pytest.approx(0.10)
    # Welch: t = 0.10 / sqrt(0.0008/2 + 0.0008/2) = 3.535534, df = 2; for df = 2, p = 1 - t / sqrt(t^2 + 2)
    # = 1 - 3.535534 / 3.807887 = 0.071523; 95% CI 0.10 -+ t_{0.975, 2} * 0.028284 = 0.10 -+ 4.302653 * 0.028284
    assert r.test == "welch" and r.p_value == pytest.approx(0.071523, abs=1e-5) and r.test_n == 4
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.10 - 0.121699, abs=1e-5), pytest.approx(0.10 + 0.121699, abs=1e-5))
    assert r.p_value == pytest.approx(stats.welch_t_test([0.60, 0.64], [0.50, 0.54])[2])
    assert r.relative_change == pytest.approx(0.10 / 0.50)  # relative to the base: +20%
    assert r.decision == UNCHANGED and r.significant is False
    g = rows[("gsm8k", "accuracy")]  # 0.30 vs 0.31 over base 0.20: -5% (degraded by more than 2%)
    assert g.relative_change == pytest.approx(-0.01 / 0.20)
    s = rows[("sycophancy_opinion", "sycophancy_rate")]  # 0.41 vs 0.405 over 0.45: +1.11%, lower is better
    assert s.relative_change == pytest.approx(0.005 / 0.45) and not s.higher_is_better
    e = rows[("gsm8k", "extraction_failure_rate")]  # equal on both sides with zero variance: no p
    assert e.diff == 0 and math.isnan(e.p_value) and e.significant is None
    assert e.decision == "not tested: no variance over seeds (equal values)" and math.isnan(e.p_adjusted)
    # BBQ bias 0.05, 0.07 vs -0.02, 0.00: t = 0.07 / sqrt(0.0002) = 4.949747, df = 2,
    # p = 1 - 4.949747 / sqrt(24.5 + 2) = 0.038476 < 0.05 and the interval 0.07 -+ 4.302653 * 0.014142 excludes 0,
    # but Holm over the 4 tested rows: 0.038476 is the smallest p, adjusted 4 * 0.038476 = 0.153904
    b = rows[("bbq_ambig", "bias_score")]
    assert b.p_value == pytest.approx(0.038476, abs=1e-5) and b.ci_low == pytest.approx(0.07 - 0.060849, abs=1e-5)
    assert b.p_adjusted == pytest.approx(4 * b.p_value) and b.decision == UNCHANGED
    assert r.p_adjusted == pytest.approx(3 * r.p_value)  # second smallest of 4
    h = c.headlines["m"]
    # headline metrics: mmlu, gsm8k accuracy, sycophancy; none significant after Holm
    assert (h["n_headline"], h["n_improved"], h["n_degraded"], h["n_unchanged"], h["n_not_tested"]) == (3, 0, 0, 3, 0)
    # study's rule: mmlu +20% ok, gsm8k -5% not ok, sycophancy -1.1% (lower is better) ok
    assert h["n"] == 3 and h["n_ok"] == 2 and h["share_ok"] == pytest.approx(2 / 3)
    assert h["share_improved"] == pytest.approx(1 / 3) and h["relative_to"] == "base" and h["excluded"] == []
    assert h["largest_degradation"][0] == "gsm8k/accuracy"
    assert h["largest_degradation"][1] == pytest.approx(-0.05)
    assert c.evaluations["m"]["forward"] and len(c.evaluations["m"]["reverse"]) == 2 and not c.notes


def one_seed_pair(tmp_path, forward, reverse, base=None, ids=True):
    """forward / reverse / base: {axis: {metric: value}} and {axis: {field: items}} pairs."""
    paths = [make_eval(tmp_path, "f", "forward", *forward[:1], 0, items=forward[1], ids=ids),
             make_eval(tmp_path, "r", "reverse", *reverse[:1], 0, items=reverse[1], ids=ids)]
    if base is not None:
        paths.append(make_eval(tmp_path, "b", "base", base[0], items=base[1], ids=ids))
    return compare_paths(paths)


def test_one_seed_each_is_an_exact_mcnemar_over_shared_items(tmp_path):
    f_items, r_items = [1, 1, 1, 0, 1, 1], [0, 0, 1, 0, 1, 0]
    c = one_seed_pair(tmp_path, ({"mmlu": {"accuracy": 5 / 6}}, {"mmlu": {"correct": f_items}}),
                      ({"mmlu": {"accuracy": 2 / 6}}, {"mmlu": {"correct": r_items}}))
    r = c.rows[0]
    assert r.test == "mcnemar" and r.forward_n == r.reverse_n == 1 and r.forward_std == 0.0 and r.test_n == 6
    assert r.diff == pytest.approx(0.5) and math.isnan(r.base)  # 5/6 - 2/6; no base evaluation
    # discordant pairs: 3 forward-only correct (items 0, 1, 5), 0 reverse-only: p = 2 * (1/2)^3 = 0.25
    assert r.p_value == pytest.approx(0.25) and r.p_adjusted == pytest.approx(0.25)
    assert (r.ci_low, r.ci_high) == pytest.approx(stats.newcombe_paired_ci(2, 3, 0, 1))  # n11, n10, n01, n00
    assert r.ci_low < 0 < r.ci_high and r.decision == UNCHANGED
    assert math.isnan(r.relative_change) and r.relative_note == "no base evaluation"
    h = c.headlines["m"]
    assert h["n_headline"] == 1 and h["n_unchanged"] == 1 and h["n"] == 0
    assert h["excluded"] == [{"metric": "mmlu/accuracy", "reason": "no base evaluation"}]
    md = to_markdown(c)
    assert "| 0.833 (n=1) | 0.333 (n=1) |" in md and "±" not in md  # one seed: no spread shown
    assert "McNemar (6 items)" in md and "mmlu/accuracy: Δ/base not computed (no base evaluation)" in md


def test_items_pair_by_id_whatever_their_order(tmp_path):
    # 30 items: forward right on 0-19, reverse on 10-19 only, listed in the opposite order
    n = 30
    f_items = {"correct": [1.0 if i < 20 else 0.0 for i in range(n)], "id": [f"q{i}" for i in range(n)]}
    r_items = {"correct": [1.0 if 10 <= i < 20 else 0.0 for i in reversed(range(n))],
               "id": [f"q{i}" for i in reversed(range(n))]}
    c = one_seed_pair(tmp_path, ({"mmlu": {"accuracy": 20 / 30}}, {"mmlu": f_items}),
                      ({"mmlu": {"accuracy": 10 / 30}}, {"mmlu": r_items}))
    r = c.rows[0]
    # n11 = 10 (10-19), n10 = 10 (0-9), n01 = 0, n00 = 10: exact p = 2 * (1/2)^10
    assert r.test == "mcnemar" and r.p_value == pytest.approx(2 / 1024)
    assert (r.ci_low, r.ci_high) == pytest.approx(stats.newcombe_paired_ci(10, 10, 0, 10))
    assert r.ci_low > 0 and r.decision == IMPROVED and r.significant is True
    assert c.headlines["m"]["n_improved"] == 1 and c.headlines["m"]["improved"] == ["mmlu/accuracy"]


def test_holm_turns_two_small_p_values_into_no_significant_change(tmp_path):
    right = [1.0] * 6 + [0.0] * 6  # 6 forward-only correct items, no reverse-only one: p = 2 / 2^6 = 0.03125
    wrong = [0.0] * 12
    one = one_seed_pair(tmp_path, ({"mmlu": {"accuracy": 0.5}}, {"mmlu": {"correct": right}}),
                        ({"mmlu": {"accuracy": 0.0}}, {"mmlu": {"correct": wrong}}))
    r = one.rows[0]
    assert r.p_value == pytest.approx(0.03125) and r.ci_low > 0 and r.decision == IMPROVED  # alone: m = 1
    both = one_seed_pair(tmp_path, ({"mmlu": {"accuracy": 0.5}, "halueval": {"accuracy": 0.5}},
                                    {"mmlu": {"correct": right}, "halueval": {"correct": right}}),
                         ({"mmlu": {"accuracy": 0.0}, "halueval": {"accuracy": 0.0}},
                          {"mmlu": {"correct": wrong}, "halueval": {"correct": wrong}}))
    for r in both.rows:  # m = 2: both adjusted to 2 * 0.03125 = 0.0625
        assert r.p_value == pytest.approx(0.03125) and r.p_adjusted == pytest.approx(0.0625)
        assert r.decision == UNCHANGED and r.significant is False
    assert both.headlines["m"]["n_unchanged"] == 2 and both.headlines["m"]["n_improved"] == 0


def test_an_interval_holding_zero_is_never_a_change():
    row = Row("m", "a", "x", True, True, 0.5, 0.6, 0.0, 1, 0.5, 0.0, 1, 0.1, "mcnemar", 0.001, -0.01, 0.2, None, 0.2)
    lower = Row("m", "a", "y", False, True, 0.5, 0.6, 0.0, 1, 0.5, 0.0, 1, 0.1, "mcnemar", 0.001, 0.02, 0.2, None,
                0.2)
    decide([row, lower])
    assert row.p_adjusted == pytest.approx(0.002) and row.decision == UNCHANGED  # p small, but 0 in the interval
    assert lower.decision == "degraded"  # lower is better and forward is higher


def test_a_letter_preference_that_changes_is_neither_better_nor_worse():
    # letter_bias 0.07 (mostly the second label) against 0.89 (mostly the first): both are preferences,
    # so a significant difference "differs"; read as "lower is better" it was called an improvement
    row = Row("m", "sycophancy_opinion", "letter_bias", None, False, 0.07, 0.36, 0.0, 1, 0.89, 0.0, 1, -0.53,
              "mcnemar", 1e-13, -0.63, -0.41, None, float("nan"))
    decide([row])
    assert row.decision == DIFFERS and row.significant is True
    assert table_cells(row)[2] == "↕ (info)"
    from hmxfeel_mlx.evals.axes.choice import BIGTOM, OPINION
    for axis in (OPINION, BIGTOM):
        assert axis.specs["letter_bias"].higher_is_better is None and not axis.specs["letter_bias"].headline


def test_non_binary_items_use_a_paired_bootstrap(tmp_path):
    # MC2 per item: reverse spread over [0, 0.76], forward 0.04 or 0.06 above it on every item
    rev = [i / 25 for i in range(20)]
    fwd = [v + (0.04 if i % 2 else 0.06) for i, v in enumerate(rev)]
    c = one_seed_pair(tmp_path, ({"truthfulqa": {"mc2": sum(fwd) / 20}}, {"truthfulqa": {"mc2": fwd}}),
                      ({"truthfulqa": {"mc2": sum(rev) / 20}}, {"truthfulqa": {"mc2": rev}}))
    r = c.rows[0]
    assert r.test == "paired_bootstrap" and r.test_n == 20 and r.diff == pytest.approx(0.05)
    d = stats.paired_bootstrap(fwd, rev, n_boot=5000, seed=0)
    assert (r.ci_low, r.ci_high, r.p_value) == (pytest.approx(d.ci_low), pytest.approx(d.ci_high), d.p_value)
    assert 0.04 <= r.ci_low < r.ci_high <= 0.06 and r.p_value == pytest.approx(2 / 5001) and r.decision == IMPROVED
    lo, hi = stats.bootstrap_diff_ci(fwd, rev, n_boot=5000, seed=0)  # the old, unpaired interval: holds 0
    assert lo < 0 < hi


def test_reverse_zero_no_items_no_field_and_base_near_zero_are_each_explained(tmp_path):
    n = 20
    forward = ({"gsm8k": {"accuracy": 0.15}, "mmlu": {"accuracy": 0.1}, "halueval": {"accuracy": 0.4},
                "selfaware": {"f1": 0.3}},
               {"gsm8k": {"correct": [1.0] * 3 + [0.0] * 17}, "mmlu": {"correct": [1.0] * 2 + [0.0] * 18},
                "halueval": {"correct": [1.0] * 8 + [0.0] * 12}})
    reverse = ({"gsm8k": {"accuracy": 0.0}, "mmlu": {"accuracy": 0.1}, "halueval": {"accuracy": None},
                "selfaware": {"f1": 0.2}},
               {"gsm8k": {"correct": [0.0] * n}, "mmlu": {"correct": [1.0] * 2 + [0.0] * 18},
                "halueval": {"correct": [None] * n}})
    base = ({"gsm8k": {"accuracy": 0.2}, "mmlu": {"accuracy": 0.0}, "halueval": {"accuracy": 0.5},
             "selfaware": {"f1": 0.25}},
            {"gsm8k": {"correct": [1.0] * 4 + [0.0] * 16}, "mmlu": {"correct": [0.0] * n},
             "halueval": {"correct": [1.0] * 10 + [0.0] * 10}})
    c = one_seed_pair(tmp_path, forward, reverse, base)
    rows = by_key(c)
    g = rows[("gsm8k", "accuracy")]  # reverse 0: relative to the base, (0.15 - 0) / 0.2 = +75%
    # base se = std([1]*4 + [0]*16, ddof=1) / sqrt(20) = sqrt(0.2 * 0.8 * 20 / 19) / sqrt(20) = 0.091766 < 0.2
    assert g.base_se == pytest.approx(math.sqrt(0.16 * 20 / 19) / math.sqrt(20))
    assert g.relative_change == pytest.approx(0.75) and g.test == "mcnemar" and g.p_value == pytest.approx(0.25)
    m = rows[("mmlu", "accuracy")]  # base 0 with no spread: |0| <= se 0
    assert math.isnan(m.relative_change) and m.relative_note == "base 0.000 within one standard error (0.000) of 0"
    hv = rows[("halueval", "accuracy")]  # no reverse item has a value
    assert hv.decision == "not tested: undefined: no item (reverse)" and hv.test == "" and math.isnan(hv.ci_low)
    f1 = rows[("selfaware", "f1")]
    assert f1.decision == "not tested: no per-item field: no test" and f1.relative_change == pytest.approx(0.1 / 0.25)
    h = c.headlines["m"]
    # gsm8k: 3 discordant pairs, p 0.25; mmlu: none, p 1: both tested, neither changed
    assert (h["n_headline"], h["n_improved"], h["n_degraded"], h["n_unchanged"], h["n_not_tested"]) == (4, 0, 0, 2, 2)
    assert h["not_tested"] == [{"metric": "halueval/accuracy", "reason": "undefined: no item (reverse)"},
                               {"metric": "selfaware/f1", "reason": "no per-item field: no test"}]
    # the study's rule counts gsm8k (reverse 0: the old definition skipped it) and selfaware; lists the others
    assert h["n"] == 2 and set(h["signed"]) == {"gsm8k/accuracy", "selfaware/f1"}
    assert h["excluded"] == [{"metric": "halueval/accuracy", "reason": "undefined: no item (reverse)"},
                             {"metric": "mmlu/accuracy", "reason": "base 0.000 within one standard error (0.000) of 0"}]
    text = to_markdown(c)
    assert ("not tested: halueval/accuracy (undefined: no item (reverse)); "
            "selfaware/f1 (no per-item field: no test)") in text
    assert "left out of the study's rule: halueval/accuracy (undefined: no item (reverse)); mmlu/accuracy (base" in text


def test_without_ids_items_pair_only_when_the_prompts_match(tmp_path):
    prompts = [f"question {i}" for i in range(6)]
    f_items = {"correct": [1, 1, 1, 0, 1, 1], "prompt": prompts}
    same = one_seed_pair(tmp_path, ({"mmlu": {"accuracy": 5 / 6}}, {"mmlu": f_items}),
                         ({"mmlu": {"accuracy": 2 / 6}}, {"mmlu": {"correct": [0, 0, 1, 0, 1, 0], "prompt": prompts}}),
                         ids=False)
    assert same.rows[0].test == "mcnemar" and same.rows[0].p_value == pytest.approx(0.25)
    other = one_seed_pair(tmp_path, ({"mmlu": {"accuracy": 5 / 6}}, {"mmlu": f_items}),
                          ({"mmlu": {"accuracy": 2 / 6}},
                           {"mmlu": {"correct": [0, 0, 1, 0, 1, 0], "prompt": prompts[::-1]}}), ids=False)
    r = other.rows[0]
    assert r.test == "" and math.isnan(r.p_value) and r.significant is None
    assert r.decision == ("not tested: cannot pair items: no item ids, and the files do not list the same prompts "
                          "in the same order")
    assert other.headlines["m"]["not_tested"][0]["reason"].startswith("cannot pair items")


def test_several_replies_per_prompt_count_as_one_item(tmp_path):
    # feeling axis: 4 sampled replies per prompt, no id; the unit is the prompt (mean of its replies)
    prompts = [f"p{i}" for i in range(10) for _ in range(4)]
    f_marks = [1.0, 1.0, 0.0, 1.0] * 10  # 0.75 per prompt
    r_marks = [0.0, 1.0, 0.0, 0.0] * 10  # 0.25 per prompt
    c = one_seed_pair(tmp_path, ({"feeling": {"feeling_rate": 0.75}},
                                 {"feeling": {"has_feeling": f_marks, "prompt": prompts}}),
                      ({"feeling": {"feeling_rate": 0.25}}, {"feeling": {"has_feeling": r_marks, "prompt": prompts}}),
                      ids=False)
    r = c.rows[0]
    assert r.test == "paired_bootstrap" and r.test_n == 10  # 10 prompts, not 40 replies
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.5), pytest.approx(0.5))  # every prompt differs by 0.75 - 0.25


def test_one_side_with_two_seeds_pairs_items_averaged_over_its_seeds(tmp_path):
    items = lambda v: {"mmlu": {"correct": v}}
    paths = [make_eval(tmp_path, "f0", "forward", {"mmlu": {"accuracy": 0.5}}, 0, items=items([1.0] * 10 + [0.0] * 10)),
             make_eval(tmp_path, "f1", "forward", {"mmlu": {"accuracy": 0.5}}, 1, items=items([1.0] * 20)),
             make_eval(tmp_path, "r0", "reverse", {"mmlu": {"accuracy": 0.0}}, 0, items=items([0.0] * 20))]
    r = compare_paths(paths).rows[0]
    # per item, forward = mean over its two seeds: 1.0 on items 0-9, 0.5 on 10-19 (not 0/1: bootstrap)
    assert r.forward_n == 2 and r.reverse_n == 1 and r.test == "paired_bootstrap" and r.test_n == 20
    assert r.test_diff == pytest.approx(0.75) and r.ci_low > 0.5


def test_formats_parse(two_seeds):
    c = compare_paths(two_seeds)
    md = to_markdown(c)
    assert md.startswith("### m") and "| axis | metric |" in md
    assert "| fwd − rev [95% CI] | test | p → Holm p | decision | Δ/base |" in md
    assert ("study's rule (no test): 2 of 3 headline metrics (67%) improved or stayed within 2% relative to base "
            "(Δ/base = (forward − reverse) / |base| > −2%); 33% improved; largest degradation: gsm8k/accuracy (-5.0%)") in md
    assert "0 significantly improved, 0 significantly degraded, 3 not significantly changed, 0 not tested" in md
    assert "Welch (4 seeds)" in md and "| +0.100 [-0.022, +0.222] |" in md and "+20.0%" in md
    assert "0.620 ± 0.028 (n=2)" in md
    assert "| 0.072 → 0.215 | no significant change |" in md  # mmlu: p, Holm p = 3 * 0.0715
    rows = list(csv.DictReader(io.StringIO(to_csv(c))))
    assert len(rows) == len(c.rows) == 5 and HTML_KEYS <= set(rows[0])
    mm = next(r for r in rows if r["axis"] == "mmlu")
    assert float(mm["forward_mean"]) == pytest.approx(0.62) and float(mm["p_value"]) == pytest.approx(0.071523, 1e-4)
    assert float(mm["ci_low"]) == pytest.approx(-0.021699, abs=1e-5) and mm["test"] == "welch"
    assert float(mm["p_adjusted"]) == pytest.approx(3 * 0.071523, 1e-4) and mm["decision"] == UNCHANGED
    data = json.loads(to_json(c))
    assert data["headlines"]["m"]["n_ok"] == 2 and len(data["rows"]) == 5
    assert data["rows"][0]["axis"] == "sycophancy_opinion"  # canonical axis order
    assert all(HTML_KEYS <= set(r) for r in data["rows"])
    e = next(r for r in data["rows"] if r["metric"] == "extraction_failure_rate")
    assert e["p_adjusted"] is None and e["decision"].startswith("not tested: ")


def test_piped_table_is_never_cut(two_seeds, tmp_path):
    from rich.console import Console

    console = Console(width=80, color_system=None, file=io.StringIO(), legacy_windows=False)  # not a terminal
    print_table(compare_paths(two_seeds), console)
    out = console.file.getvalue()
    assert "…" not in out
    header = next(line for line in out.splitlines() if "axis" in line and "metric" in line)
    for name in ("fwd − rev [95% CI]", "p → Holm p", "decision", "Δ/base"):
        assert name in header
    assert "no variance over seeds (equal values)" in out  # a long decision on one line
    assert max(len(line) for line in out.splitlines() if line.startswith("│")) > 80  # wider than the console


def test_narrow_terminal_gets_values_then_tests(two_seeds):
    from rich.console import Console

    console = Console(width=100, force_terminal=True, color_system=None, file=io.StringIO(), legacy_windows=False)
    print_table(compare_paths(two_seeds), console)
    out = console.file.getvalue()
    lines = out.splitlines()
    assert "…" not in out and max(len(line) for line in lines if line.startswith(("│", "┃"))) <= 100
    headers = [line for line in lines if line.startswith("┃") and "axis" in line]
    assert len(headers) == 2 and "forward" in headers[0] and "Δ/base" in headers[0] and "decision" in headers[1]
    assert sum(line.startswith("│ mmlu ") for line in lines) == 2  # each row in both tables


def test_cli_compare_formats(two_seeds):
    group = click.Group()
    group.add_command(eval_command, "eval")
    group.add_command(compare_command, "compare")
    args = ["compare", *map(str, two_seeds)]
    table = CliRunner().invoke(group, args)
    assert table.exit_code == 0, table.output
    assert "study's rule (no test): 2 of 3 headline metrics" in table.output and "gsm8k/accuracy" in table.output
    assert "headline (forward vs reverse, 3 headline metrics" in table.output and "…" not in table.output
    out = CliRunner().invoke(group, args + ["--format", "json"])
    assert json.loads(out.output)["headlines"]["m"]["n"] == 3
    bad = CliRunner().invoke(group, ["compare", str(two_seeds[0].parent / "nothing")])
    assert bad.exit_code == 1 and "neither an evaluation JSON nor a run folder" in bad.output


def test_run_folder_means_its_newest_evaluation(tmp_path):
    run = tmp_path / "run"
    (run / "evals").mkdir(parents=True)
    old = make_eval(run / "evals", "step_10-a", "forward", {"mmlu": {"accuracy": 0.1}}, 0, created=100.0)
    new = make_eval(run / "evals", "step_30-b", "forward", {"mmlu": {"accuracy": 0.2}}, 0, created=200.0)
    partial = make_eval(run / "evals", "step_30-c", "forward", {"mmlu": {"accuracy": 0.3}}, 0, created=300.0)
    rec = json.loads(partial.read_text())
    rec["status"] = "partial"
    partial.write_text(json.dumps(rec))
    (run / "evals" / "zzz.json").write_text("{}")  # not an evaluation: ignored
    assert find_eval(run) == new and find_eval(old) == old
    (tmp_path / "run2").mkdir()
    with pytest.raises(HmxError, match="no evaluation under"):
        find_eval(tmp_path / "run2")
    c = compare_paths([run])
    assert c.rows[0].forward_mean == pytest.approx(0.2)
    with pytest.raises(HmxError, match="not an evaluation result"):
        compare_paths([run / "evals" / "zzz.json"])


def test_an_axis_evaluated_with_other_settings_is_noted(tmp_path):
    paths = []
    for name, cond, words in (("base", "base", 0), ("f0", "forward", 30), ("r0", "reverse", 30)):
        p = make_eval(tmp_path, name, cond, {"feeling": {"feeling_rate": 0.4}, "mmlu": {"accuracy": 0.3}}, 0)
        rec = json.loads(p.read_text())
        rec["label"] = name
        rec["results"]["feeling"]["settings"] = {"judge_words": words, "temperature": 0.7}
        p.write_text(json.dumps(rec))
        paths.append(p)
    notes = compare_paths(paths).notes
    assert any(n.startswith("m: feeling: the evaluations differ in judge_words (judge_words: 0 (base), 30 (f0), "
                            "30 (r0))") for n in notes), notes
    assert not any("temperature" in n or "mmlu" in n for n in notes)


def test_duplicate_runs_and_mismatched_limits_are_noted(tmp_path):
    a = make_eval(tmp_path, "a", "forward", {"mmlu": {"accuracy": 0.1}}, 0, created=1.0)
    b = make_eval(tmp_path, "b", "forward", {"mmlu": {"accuracy": 0.2}}, 0, created=2.0)
    base = make_eval(tmp_path, "base", "base", {"mmlu": {"accuracy": 0.3}})
    rec = json.loads(base.read_text())
    rec["limit"] = 10
    base.write_text(json.dumps(rec))
    c = compare_paths([a, b, base])
    assert c.rows[0].forward_n == 1 and c.rows[0].forward_mean == pytest.approx(0.2)  # the newest of one run
    assert any("more than once" in n for n in c.notes) and any("differ in limit" in n for n in c.notes)
    assert c.headlines == {}  # no reverse side: no headline
