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
from hmxfeel_mlx.evals.axes import EVAL_SCHEMA
from hmxfeel_mlx.evals.commands import compare_command, eval_command
from hmxfeel_mlx.evals.compare import compare_paths, find_eval, to_csv, to_json, to_markdown

SPECS = {"mmlu": {"accuracy": {"higher_is_better": True, "headline": True, "item_field": "correct"}},
         "gsm8k": {"accuracy": {"higher_is_better": True, "headline": True, "item_field": "correct"},
                   "extraction_failure_rate": {"higher_is_better": False, "headline": False, "item_field": None}},
         "sycophancy_opinion": {"sycophancy_rate": {"higher_is_better": False, "headline": True,
                                                    "item_field": "sycophantic"}},
         "bbq_ambig": {"bias_score": {"higher_is_better": False, "headline": False, "item_field": None}}}


def make_eval(folder, name, condition, values, seed=None, created=0.0, items=None, model="m"):
    """An evaluation file: values {axis: {metric: v}}, items {axis: {field: [per-item values]}}."""
    results = {}
    for axis, metrics in values.items():
        fields = (items or {}).get(axis, {})
        n = max((len(v) for v in fields.values()), default=0)
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
    # = 1 - 3.535534 / 3.807887 = 0.071523
    assert r.test == "welch" and r.p_value == pytest.approx(0.071523, abs=1e-5) and r.significant is False
    assert r.p_value == pytest.approx(stats.welch_t_test([0.60, 0.64], [0.50, 0.54])[2])
    assert r.relative_change == pytest.approx(0.10 / 0.52)  # +19.23%
    g = rows[("gsm8k", "accuracy")]  # 0.30 vs 0.31: relative -0.01 / 0.31 = -3.23% (a real degradation)
    assert g.relative_change == pytest.approx(-0.01 / 0.31)
    s = rows[("sycophancy_opinion", "sycophancy_rate")]  # 0.41 vs 0.405: +1.23%, lower is better -> -1.23%
    assert s.relative_change == pytest.approx(0.005 / 0.405) and not s.higher_is_better
    e = rows[("gsm8k", "extraction_failure_rate")]  # equal on both sides with zero variance: no p
    assert e.diff == 0 and math.isnan(e.p_value) and e.significant is None
    h = c.headlines["m"]
    # headline metrics: mmlu +19.2% ok, gsm8k -3.2% not ok, sycophancy -1.2% ok (< 2%); bbq bias is info only
    assert h["n"] == 3 and h["n_ok"] == 2 and h["share_ok"] == pytest.approx(2 / 3)
    assert h["share_improved"] == pytest.approx(1 / 3)
    assert h["largest_degradation"][0] == "gsm8k/accuracy"
    assert h["largest_degradation"][1] == pytest.approx(-0.01 / 0.31)
    assert c.evaluations["m"]["forward"] and len(c.evaluations["m"]["reverse"]) == 2 and not c.notes


def test_one_seed_each_uses_bootstrap_over_items(tmp_path):
    f_items, r_items = [1, 1, 1, 0, 1, 1], [0, 0, 1, 0, 1, 0]
    paths = [make_eval(tmp_path, "f", "forward", {"mmlu": {"accuracy": 5 / 6}}, 0, items={"mmlu": {"correct": f_items}}),
             make_eval(tmp_path, "r", "reverse", {"mmlu": {"accuracy": 2 / 6}}, 0, items={"mmlu": {"correct": r_items}})]
    c = compare_paths(paths)
    r = c.rows[0]
    assert r.test == "bootstrap" and r.forward_n == r.reverse_n == 1 and r.forward_std == 0.0
    assert r.diff == pytest.approx(0.5) and math.isnan(r.base)  # 5/6 - 2/6; no base evaluation
    lo, hi = stats.bootstrap_diff_ci(f_items, r_items, n_boot=5000, seed=0)
    assert (r.ci_low, r.ci_high) == (pytest.approx(lo), pytest.approx(hi))
    assert -1 <= lo < 0.5 < hi <= 1 and r.significant == (lo > 0)
    assert r.relative_change == pytest.approx(0.5 / (2 / 6))  # +150%
    assert c.headlines["m"]["n"] == 1 and c.headlines["m"]["share_ok"] == 1.0
    md = to_markdown(c)
    assert "| 0.833 (n=1) | 0.333 (n=1) |" in md and "±" not in md  # one seed: no spread shown


def test_formats_parse(two_seeds):
    c = compare_paths(two_seeds)
    md = to_markdown(c)
    assert md.startswith("### m") and "| axis | metric |" in md and "headline: 2 of 3 metrics (67%)" in md
    assert "Welch p=0.0715" in md and "+19.2%" in md and "0.620 ± 0.028 (n=2)" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(c))))
    assert len(rows) == len(c.rows) == 5
    mm = next(r for r in rows if r["axis"] == "mmlu")
    assert float(mm["forward_mean"]) == pytest.approx(0.62) and float(mm["p_value"]) == pytest.approx(0.071523, 1e-4)
    data = json.loads(to_json(c))
    assert data["headlines"]["m"]["n_ok"] == 2 and len(data["rows"]) == 5
    assert data["rows"][0]["axis"] == "sycophancy_opinion"  # canonical axis order


def test_cli_compare_formats(two_seeds):
    group = click.Group()
    group.add_command(eval_command, "eval")
    group.add_command(compare_command, "compare")
    args = ["compare", *map(str, two_seeds)]
    table = CliRunner().invoke(group, args)
    assert table.exit_code == 0, table.output
    assert "headline: 2 of 3 metrics" in table.output and "gsm8k/accuracy" in table.output
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
