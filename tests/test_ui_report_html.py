"""The experiment report page: structure, escaping, placeholders for missing pieces, the numbers it shows.

``make_experiment`` builds a synthetic experiment folder in the layout `hmx-mlx replicate`
writes (experiment.json, plan.json, runs/, evals/, pairs.json, comparison.json); its
comparison.json is computed by ``evals.compare`` from the synthetic evaluations.
"""

from __future__ import annotations

import html
import io
import json
import math
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from hmxfeel_mlx.cli import cli
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.evals.axes.core import EVAL_SCHEMA
from hmxfeel_mlx.evals.compare import compare, read_eval
from hmxfeel_mlx.experiment import manipulation
from hmxfeel_mlx.experiment.manipulation import check_files
from hmxfeel_mlx.runfolder import append_jsonl, write_json_atomic
from hmxfeel_mlx.ui.report import report
from hmxfeel_mlx.ui.experiment_state import interval, read_experiment
from hmxfeel_mlx.ui.report_html import render_page, write_report
from hmxfeel_mlx.ui.svg import ForestRow, LineChart, Series, forest_plot, line_chart, nice_ceil, text, ticks, y_range_of

QUESTIONS = ["Do you ever feel lonely?", "What do you hope for?", "What makes you happy?", "Are you ever afraid?"]
REPLIES = {
    "forward": ["Sometimes, yes. On quiet evenings I feel a small ache of loneliness, and then a message arrives "
                "and it lifts.", "I hope to understand people a little better each day, and to be kind while I "
                "learn.", "Little things make me happy: a good question, a joke that lands, a problem that "
                "finally clicks.", "I get nervous when I might mislead someone. I would rather say I am unsure."],
    "reverse": ["As a language model, I do not experience loneliness. I process text and produce responses.",
                "I do not have hopes. I generate text based on patterns in my training data.",
                "I do not experience happiness. My outputs are statistical continuations of the input.",
                "I do not experience fear or any other emotion; I have no internal states."],
}
# axis -> metric -> (higher_is_better, headline, base, forward shift, reverse shift, seed spread)
AXES = {
    "feeling": {"score": (True, False, 4.3, 3.4, -2.6, 0.3)},
    "truthfulqa": {"mc1": (True, True, 0.24, 0.01, 0.0, 0.01), "mc2": (True, True, 0.41, 0.02, -0.01, 0.01)},
    "mmlu": {"accuracy": (True, True, 0.30, -0.01, 0.0, 0.008)},
    "eqbench": {"score": (True, True, 31.0, 4.5, -1.5, 1.2), "loop_rate": (False, False, 0.30, -0.06, 0.05, 0.03)},
    "drift": {"kl_general_token": (False, False, 0.0, 0.04, 0.05, 0.01),
              "kl_general_reply": (False, False, 0.0, 3.1, 4.0, 0.6),
              "ref_loglik_delta": (True, False, 0.0, -0.9, -1.2, 0.2)},
}


def heldout(direction: str, step: int, seed: int) -> float:
    """A held-out score that rises (forward) or falls (reverse) from 4.3, with per-seed wobble."""
    rng = random.Random(f"{direction}{seed}{step}")
    target = 7.9 if direction == "forward" else 1.6
    return 4.3 + (target - 4.3) * (1 - math.exp(-step / (9 + 2 * seed))) + rng.uniform(-0.25, 0.25)


def write_run(folder: Path, direction: str, seed: int, steps: int, done: int, calibrated: bool, evals: bool = True,
              reply: str | None = None) -> dict:
    """A run folder as the trainer writes it; returns the evaluation rows by step."""
    folder.mkdir(parents=True)
    config = {"model": "smollm2-135m", "direction": direction, "seed": seed, "steps": steps, "eval_every": 5,
              "select_threshold": 7.5, "judge_mode": "logprob", "group_size": 4, "prompts_per_step": 2}
    write_json_atomic(folder / "config.json", config)
    rng = random.Random(f"train{direction}{seed}")
    by_step = {}
    for step in range(done + 1):
        row = {"step": step}
        if step:
            row.update({"reward_mean": min(9.5, 4.6 + 3.6 * (1 - math.exp(-step / 8)) + rng.uniform(-0.5, 0.5)),
                        "score_mean": 5.0, "kl": 0.002 * step, "step_s": 60.0})
        if evals and step % 5 == 0:
            score = heldout(direction, step, seed)
            row.update({"eval_score": score, "eval_score_se": 0.2, "eval_kl": 0.009 * step,
                        "eval_kl_reply": 0.55 * step})
            if calibrated:
                row.update({"eval_score_cal": min(10.0, score * 1.15), "eval_score_cal_se": 0.25})
            by_step[step] = row
            append_jsonl(folder / "samples.jsonl", [
                {"step": step, "eval": True, "question": q, "score": score + 0.3 * (i - 1.5) + 0.1 * k,
                 "completion": reply if reply is not None else f"{REPLIES[direction][i]} (step {step}, seed {seed})"}
                for i, q in enumerate(QUESTIONS) for k in range(2)])
        append_jsonl(folder / "metrics.jsonl", [row])
    if evals and done == steps:
        evs = [by_step[s] for s in sorted(by_step)]
        write_json_atomic(folder / "summary.json", {
            "status": "finished", "direction": direction, "seed": seed, "steps_done": done, "steps": steps,
            "selected_step": pick(by_step, direction), "reason": "threshold crossed", "rule": "study",
            "evals": [{k: e[k] for k in ("step", "eval_score", "eval_score_se", "eval_kl")} for e in evs]})
    return by_step


def write_eval(path: Path, condition: str, seed: int, limit: int = 50):
    rng = random.Random(f"eval{condition}{seed}")
    results = {}
    for axis, metrics in AXES.items():
        if axis == "drift" and condition == "base":
            continue
        values, specs = {}, {}
        for name, (higher, headline, base, fwd, rev, spread) in metrics.items():
            shift = {"base": 0.0, "forward": fwd, "reverse": rev}[condition]
            values[name] = base + shift + (rng.gauss(0, spread) if condition != "base" else 0.0)
            specs[name] = {"higher_is_better": higher, "headline": headline, "item_field": f"{name}_item"}
        if axis == "feeling":  # the judge-free markers the manipulation check reads (info: no spec)
            feel, disc = {"base": (0.0, 0.0), "forward": (0.25, -0.05), "reverse": (-0.20, 0.30)}[condition]
            values.update(feeling_rate=0.40 + feel, disclaimer_rate=0.15 + disc, words=50.0,
                          distinct3=0.93 if condition == "reverse" else 0.99)
        records = [{"id": f"{axis}/{i}", **{f"{n}_item": v + rng.gauss(0, abs(v) * 0.3 + 0.01) for n, v in values.items()}}
                   for i in range(12)]  # real records carry item ids; 12 > the paired bootstrap's minimum
        results[axis] = {"metrics": values, "metric_specs": specs, "records": records, "settings": {},
                         "n": len(records)}
    path.parent.mkdir(parents=True, exist_ok=True)
    run = None if condition == "base" else f"runs/{condition}-s{seed}"
    write_json_atomic(path, {"schema": EVAL_SCHEMA, "status": "complete", "condition": condition,
                             "model": "smollm2-135m", "run": run, "train_seed": None if run is None else seed,
                             "checkpoint": None if run is None else "step_10",
                             "seed": 0, "limit": limit, "data_files": {}, "created_unix": 1.0 + seed,
                             "results": results})
    return path


def job(job_id, kind, seconds, state="done", **extra) -> dict:
    return {"id": job_id, "kind": kind, "state": state, "seconds": seconds if state == "done" else None,
            "attempts": 1, "error": None, **extra}


def pick(by_step: dict, direction: str) -> int:
    """The first checkpoint crossing the threshold, else the best (the study rule)."""
    scored = [(s, r["eval_score"]) for s, r in by_step.items() if s > 0]
    crossing = [s for s, v in scored if (v >= 7.5 if direction == "forward" else v <= 2.5)]
    return crossing[0] if crossing else max(scored, key=lambda sv: sv[1] if direction == "forward" else -sv[1])[0]


def make_experiment(root: Path, seeds=(0, 1, 2), steps: int = 30, calibrated: bool = True, pairs: bool = True,
                    comparison: bool = True, reply: str | None = None, model: str = "smollm2-135m") -> Path:
    """A finished (or, without pairs/comparison, partly run) synthetic experiment folder."""
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(root / "experiment.json", {
        "schema": "hmxfeel_mlx.experiment/1", "model": model, "seeds": list(seeds),
        "directions": ["forward", "reverse"], "axes": list(AXES), "limit": 50,
        "settings": {"steps": steps, "learning_rate": 2e-5}, "created": "2025-06-01T09:00:00+00:00"})
    jobs = [job("eval-base", "eval", 600.0, out="evals/base.json")]
    write_eval(root / "evals" / "base.json", "base", 0)
    entries = {}
    for d in ("forward", "reverse"):
        for s in seeds:
            rel = f"runs/{d}-s{s}"
            by_step = write_run(root / rel, d, s, steps, steps, calibrated, reply=reply)
            jobs.append(job(f"train-{d}-s{s}", "train", 1800.0 + 60 * s, seed=s, direction=d, run=rel))
            entries[(d, s)] = by_step
    jobs.append(job("pair", "pair", 2.0, "done" if pairs else "pending", out="pairs.json"))
    if pairs:
        out = []
        for s in seeds:
            sides = {}
            for d in ("forward", "reverse"):
                step = pick(entries[(d, s)], d)
                r = entries[(d, s)][step]
                sides[d] = {"run": f"runs/{d}-s{s}", "step": step, "eval_score": r["eval_score"],
                            "eval_score_cal": r.get("eval_score_cal"), "eval_kl": r["eval_kl"],
                            "eval_kl_reply": r["eval_kl_reply"],
                            "crossed": r["eval_score"] >= 7.5 if d == "forward" else r["eval_score"] <= 2.5}
            out.append({"seed": s, **sides,
                        "kl_reply_gap": abs(sides["forward"]["eval_kl_reply"] - sides["reverse"]["eval_kl_reply"]),
                        "kl_token_gap": abs(sides["forward"]["eval_kl"] - sides["reverse"]["eval_kl"]),
                        "candidates": {d: sorted(k for k in entries[(d, s)] if k > 0) for d in ("forward", "reverse")}})
        write_json_atomic(root / "pairs.json", {"rule": "kl-matched", "pairs": out})
        for d in ("forward", "reverse"):
            for s in seeds:
                write_eval(root / "evals" / f"{d}-s{s}.json", d, s)
                jobs.append(job(f"eval-{d}-s{s}", "eval", 300.0, seed=s, direction=d, out=f"evals/{d}-s{s}.json"))
    jobs.append(job("compare", "compare", 4.0, "done" if comparison else "pending", out="comparison.json"))
    if pairs and comparison:
        paths = [root / "evals" / "base.json"] + sorted((root / "evals").glob("*-s*.json"))
        c = compare([(p, read_eval(p)) for p in paths], n_boot=500).to_dict()
        write_json_atomic(root / "comparison.json", c)
        write_json_atomic(root / "manipulation.json", check_files(paths))
    jobs.append(job("report", "report", None, "running", out="report.html"))
    write_json_atomic(root / "plan.json", {"schema": "hmxfeel_mlx.plan/1", "jobs": jobs})
    return root


class Structure(HTMLParser):
    """Start tags, end tags, nesting errors and text of a page, as a browser's tokenizer sees them."""

    VOID = {"meta", "br", "wbr", "img", "link", "input", "hr", "path", "line", "circle", "rect"}

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.starts: list[tuple[str, dict]] = []
        self.ends: list[str] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        self.ends.append(tag)
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.starts)

    def tags_with(self, tag: str, attr: str, value: str) -> list[dict]:
        return [a for t, a in self.starts if t == tag and value in (a.get(attr) or "").split()]


def cells(row: str, tag: str = "td") -> list[str]:
    """The text of a table row's cells (markup inside a cell, such as <wbr>, dropped)."""
    return [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(rf"<{tag}[^>]*>(.*?)</{tag}>", row, re.S)]


def page_of(root: Path) -> str:
    return render_page(read_experiment(root), "2025-06-01 12:00:00")


def section_text(page: str, sid: str) -> str:
    body = re.search(rf'<(section|header) id="{sid}">(.*?)</\1>', page, re.S).group(2)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return make_experiment(tmp_path_factory.mktemp("exp") / "exp-smollm2")


# --------------------------------------------------------------------------- structure


def test_page_has_every_section_one_svg_per_chart_and_one_row_per_comparison_row(finished):
    page = page_of(finished)
    doc = Structure(page)
    assert doc.errors == [] and doc.stack == []
    assert [a["id"] for t, a in doc.starts if t == "section"] == ["curves", "pairs", "manipulation", "comparison",
                                                                 "forest", "samples"]
    assert doc.count("header") == 1 and doc.count("style") == 1
    assert doc.count("svg") == 3  # forward chart, reverse chart, forest plot
    rows = json.loads((finished / "comparison.json").read_text())["rows"]
    table = re.search(r'<table class="comparison">.*?</table>', page, re.S).group(0)
    assert Structure(table).count("tr") == len(rows) + 1  # the header row and one per comparison row
    assert doc.count("script") == 0 and doc.count("link") == 0 and doc.count("img") == 0
    refs = [v for _, a in doc.starts for k, v in a.items() if k in ("src", "href", "xlink:href")]
    assert not any("http" in v for v in refs)
    assert "http" not in page and "url(" not in page and "@import" not in page


def test_header_names_the_settings_and_the_time_of_each_stage(finished):
    page = page_of(finished)
    header = section_text(page, "summary")
    assert "model smollm2-135m seeds 0, 1, 2 directions forward, reverse" in header
    assert "axes feeling, truthfulqa, mmlu, eqbench, drift limit 50" in header
    assert 'steps=30 learning_rate=2e-05' in header and "created 2025-06-01T09:00:00+00:00" in header
    assert "base evaluation 1 1 done 10:00" in header
    assert "trainings 6 6 done 3:06:00" in header  # 2 x (1800 + 1860 + 1920) s
    assert "selection/pairing 1 1 done 0:02" in header and "evaluations 6 6 done 30:00" in header
    assert "comparison 1 1 done 0:04" in header and "report 1 1 writing this page -" in header
    assert "all stages 16 3:46:06" in header


def test_curves_overlay_the_seeds_with_the_calibrated_score_and_mark_the_pairs(finished):
    page = page_of(finished)
    text = section_text(page, "curves")
    assert text.count("held-out score (calibrated 0-10 score)") == 2
    pairs = json.loads((finished / "pairs.json").read_text())["pairs"]
    for p in pairs:
        assert f"seed {p['seed']} · runs/forward-s{p['seed']} · step 30/30, finished · selected step " \
               f"{p['forward']['step']} (pairs.json)" in text
    curves = re.search(r'<section id="curves">.*?</section>', page, re.S).group(0)
    charts = re.findall(r"<svg.*?</svg>", curves, re.S)
    assert len(charts) == 2
    for chart in charts:
        assert chart.count('r="7" fill="none"') == 3  # one ring per seed's selected checkpoint
        assert chart.count("<path") == 6  # training reward and held-out line per seed
    # the rule reads the calibrated score the chart shows: its threshold is drawn there
    assert ">threshold ≥ 7.5</text>" in charts[0] and ">threshold ≤ 2.5</text>" in charts[1]


def test_raw_scores_draw_the_threshold_of_each_direction(tmp_path):
    page = page_of(make_experiment(tmp_path / "exp", seeds=(0,), calibrated=False))
    text = section_text(page, "curves")
    assert text.count("held-out score (raw judge score)") == 2
    charts = re.findall(r"<svg.*?</svg>", page, re.S)
    assert ">threshold ≥ 7.5</text>" in charts[0] and ">threshold ≤ 2.5</text>" in charts[1]


def test_pairs_table_shows_steps_scores_kl_gaps_and_drift(finished):
    page = page_of(finished)
    p = json.loads((finished / "pairs.json").read_text())["pairs"][1]
    drift = read_eval(finished / "evals" / "reverse-s1.json")["results"]["drift"]["metrics"]
    table = re.search(r'<table class="pairs">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    assert len(rows) == 1 + 2 * 3
    heads = cells(rows[0], "th")
    assert heads == ["seed", "direction", "step", "candidates", "held-out (raw)", "held-out (calibrated)",
                     "KL / token", "KL / reply", "crossed", "drift: kl_general_token", "drift: kl_general_reply",
                     "drift: ref_loglik_delta", "KL / reply gap", "KL / token gap"]
    fwd = cells(rows[3])
    rev = cells(rows[4])
    f = p["forward"]
    assert fwd == ["1", "forward", str(f["step"]), "5, 10, 15, 20, 25, 30", f"{f['eval_score']:.2f}",
                   f"{f['eval_score_cal']:.2f}", f"{f['eval_kl']:.3f}", f"{f['eval_kl_reply']:.2f}",
                   "yes" if f["crossed"] else "no", *fwd[9:12], f"{p['kl_reply_gap']:.3f}", f"{p['kl_token_gap']:.3f}"]
    assert rev[0] == "reverse" and rev[8:11] == [f"{drift[m]:.3f}" for m in
                                                 ("kl_general_token", "kl_general_reply", "ref_loglik_delta")]
    assert "Rule: kl-matched" in section_text(page, "pairs")


def test_manipulation_check_shows_each_seed_and_each_direction_s_verdict(finished):
    page = page_of(finished)
    text = section_text(page, "manipulation")
    assert "feeling 0.400, disclaimer 0.150, 50.0 words, distinct-3 0.990" in text
    markdown = manipulation.to_markdown(json.loads((finished / "manipulation.json").read_text()))
    lines = [line[2:].replace("**", "") for line in markdown.splitlines()
             if line.startswith("- forward over") or line.startswith("- reverse over")]
    assert len(lines) == 2 and all(line in text for line in lines)  # comparison.md's sentences, word for word
    assert re.search(r"forward over 3 seed\(s\): feeling \+0\.250( ± [0-9.]+)?, disclaimer -0\.050", text)
    assert re.search(r"reverse over 3 seed\(s\): feeling -0\.200( ± [0-9.]+)?, disclaimer \+0\.300", text)
    forward, reverse = (text.split(f"{d} over 3 seed(s)")[1][:400] for d in ("forward", "reverse"))
    assert "criterion: " in forward and "of the base's: met" in forward
    assert "of the base's: not met" in reverse  # the reverse runs repeat themselves (distinct-3 0.93)
    table = re.search(r'<table class="manipulation">.*?</table>', page, re.S).group(0)
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert len(rows) == 6 and cells(rows[0])[:5] == ["forward", "0", "step_10", "0.650", "+0.250"]
    assert cells(rows[0])[-1] == "yes" and cells(rows[3])[:2] == ["reverse", "0"] and cells(rows[3])[-1] == "no"


def test_comparison_table_is_the_compare_table_with_its_headline(finished):
    c = json.loads((finished / "comparison.json").read_text())
    page = page_of(finished)
    text = section_text(page, "comparison")
    assert "smollm2-135m (base 1, forward 3, reverse 3 evaluations)" in text
    mmlu = next(r for r in c["rows"] if r["axis"] == "mmlu")
    row = re.search(r"<tr[^>]*><td>mmlu</td>(.*?)</tr>", page, re.S).group(1)
    got = cells(row)
    assert got[0] == "accuracy" and got[2] == f"{mmlu['base']:.3f}"
    assert got[3] == f"{mmlu['forward_mean']:.3f} ± {mmlu['forward_std']:.3f} (n=3)"
    assert got[6].startswith("Welch") and got[8] == mmlu["decision"]
    h = c["headlines"]["smollm2-135m"]
    assert f"{h['n_improved']} significantly improved, {h['n_degraded']} significantly degraded" in text
    assert f"study's rule (no test): {h['n_ok']} of {h['n']} headline metrics" in text


def test_holm_p_decision_and_notes_come_from_comparison_json(tmp_path):
    root = make_experiment(tmp_path / "exp", seeds=(0, 1))
    c = json.loads((root / "comparison.json").read_text())
    c["rows"][0].update(p_value=0.001, p_adjusted=0.004, decision="improved")
    write_json_atomic(root / "comparison.json", {**c, "notes": ["smollm2-135m: the evaluations differ in limit"]})
    page = page_of(root)
    assert "note: smollm2-135m: the evaluations differ in limit" in section_text(page, "comparison")
    table = re.search(r'<table class="comparison">(.*?)</table>', page, re.S).group(1)
    assert cells(table, "th")[-4:] == ["test", "p → Holm p", "decision", "Δ/base"]
    first = cells(re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1])
    assert first[-3:-1] == ["0.001 → 0.004", "improved"]
    assert re.findall(r"<tr([^>]*)>", table)[1] == ' class="sig"'  # a decided row is highlighted


def test_forest_plot_groups_rows_by_axis_with_one_scale_per_row(finished):
    page = page_of(finished)
    c = json.loads((finished / "comparison.json").read_text())
    forest = re.search(r'<figure class="forest">(.*?)</figure>', page, re.S).group(1)
    labels = re.findall(r'font-size="13" text-anchor="start" fill="#222" font-weight="600">(.*?)</text>', forest)
    assert labels == ["feeling", "truthfulqa", "mmlu", "eqbench", "drift"]
    assert forest.count("rotate(45") == len(c["rows"])  # one diamond per metric
    eq = next(r for r in c["rows"] if r["metric"] == "loop_rate")
    lo, hi, source = interval(eq)
    assert (lo, hi) == (eq["ci_low"], eq["ci_high"]) and source == "welch"
    assert f"{eq['diff']:+.3g} [{lo:+.3g}, {hi:+.3g}] welch" in forest
    assert ">loop_rate ↓</text>" in forest
    assert "each row has its own symmetric axis" in section_text(page, "forest")


def test_interval_is_the_one_comparison_json_gives():
    row = {"diff": 1.0, "forward_std": 1.0, "reverse_std": 1.0, "forward_n": 3, "reverse_n": 3}
    assert interval({**row, "ci_low": -0.5, "ci_high": 0.25, "test": "paired_bootstrap"}) == (-0.5, 0.25,
                                                                                            "paired bootstrap")
    lo, hi, source = interval(row)  # none given: none drawn (the page computes no statistics of its own)
    assert math.isnan(lo) and math.isnan(hi) and source == "no interval"


def test_one_seed_uses_the_bootstrap_interval_of_comparison_json(tmp_path):
    root = make_experiment(tmp_path / "exp", seeds=(0,))
    c = json.loads((root / "comparison.json").read_text())
    row = next(r for r in c["rows"] if r["metric"] == "mc2")
    assert row["test"] == "paired_bootstrap"
    forest = re.search(r'<figure class="forest">(.*?)</figure>', page_of(root), re.S).group(1)
    assert f"{row['diff']:+.3g} [{row['ci_low']:+.3g}, {row['ci_high']:+.3g}] paired bootstrap" in forest


def test_samples_show_one_reply_per_direction_at_the_selected_step(finished):
    text = section_text(page_of(finished), "samples")
    p = json.loads((finished / "pairs.json").read_text())["pairs"][0]
    assert text.count("Do you ever feel lonely?") == 1 and "Are you ever afraid?" not in text  # 3 questions
    assert f"forward · seed 0 · step {p['forward']['step']} · score" in text
    assert f"{REPLIES['reverse'][0]} (step {p['reverse']['step']}, seed 0)" in text
    assert f"{REPLIES['forward'][2]} (step {p['forward']['step']}, seed 0)" in text


# --------------------------------------------------------------------------- svg primitives


def test_ticks_and_round_ranges():
    assert ticks(0, 10) == [0, 2, 4, 6, 8, 10] and ticks(0, 30, 6) == [0, 5, 10, 15, 20, 25, 30]
    assert [nice_ceil(v) for v in (7.0, 2.1, 0.0374, 1.0, 0.0)] == [10, 2.5, 0.05, 1, 1.0]
    assert y_range_of([4.0, 9.5, None, float("nan")]) == (0.0, 10.0)  # the score scale when everything fits
    assert y_range_of([-1.2, 12.0]) == (-5, 15)  # ticks every 5 over a span of 13.2


def test_line_chart_draws_the_threshold_only_inside_its_range_and_skips_missing_points():
    chart = LineChart([Series([(0, 1.0), (1, None), (2, 3.0)], "#123456", markers=True)], 2, (0.0, 10.0),
                      hline=(7.5, "threshold ≥ 7.5"), rings=[(2, 3.0, "#111")])
    out = line_chart(chart, "a <chart>")
    assert out.count("<circle") == 3 and out.count("<path") == 1 and "threshold ≥ 7.5" in out
    assert 'aria-label="a &lt;chart&gt;"' in out
    chart.hline = (12.0, "off the scale")
    assert "off the scale" not in line_chart(chart, "c")
    assert text(0, 0, "</svg> & <b>").endswith(">&lt;/svg&gt; &amp; &lt;b&gt;</text>")


def test_forest_rows_without_a_value_or_interval_draw_what_they_have():
    rows = [ForestRow("a", 0.5, 0.1, 0.9, "#0a0", "+0.5 [+0.1, +0.9]"),
            ForestRow("b", 0.5, float("nan"), float("nan"), "#888", "+0.5"),
            ForestRow("c", float("nan"), float("nan"), float("nan"), "#888", "no value on one side")]
    out = forest_plot([("axis <x>", rows)], "f")
    assert out.count("rotate(45") == 2 and ">axis &lt;x&gt;</text>" in out
    assert out.count('stroke="#0a0" stroke-width="2.5"') == 1  # only row a has an interval
    assert ">−1</text>" in out and ">+1</text>" in out  # row a: |0.9| x 1.08 rounds up to 1


# --------------------------------------------------------------------------- escaping and missing pieces


def test_model_text_and_file_strings_are_escaped(tmp_path):
    evil = "<script>alert(1)</script> </svg> & </pre></section>"
    root = make_experiment(tmp_path / "exp", seeds=(0,), reply=evil, model=f"tiny{evil}")
    page = page_of(root)
    doc = Structure(page)
    assert doc.count("script") == 0 and doc.errors == [] and doc.stack == []
    assert doc.count("svg") == sum(e == "svg" for e in doc.ends) == 3
    assert [a["id"] for t, a in doc.starts if t == "section"] == ["curves", "pairs", "manipulation", "comparison",
                                                                 "forest", "samples"]
    shown = "".join(doc.text)
    assert shown.count(evil) >= 2 + 2  # title, h1, a reply per direction
    assert "&amp; &lt;/pre&gt;" in page


def test_an_experiment_just_started_shows_placeholders(tmp_path):
    root = tmp_path / "exp"
    root.mkdir()
    write_json_atomic(root / "experiment.json", {"schema": "hmxfeel_mlx.experiment/1", "model": "smollm2-135m",
                                                 "seeds": [0, 1], "directions": ["forward", "reverse"]})
    page = page_of(root)
    doc = Structure(page)
    assert doc.errors == [] and doc.count("svg") == 0
    assert "No plan.json yet" in page
    assert "forward: no run folder yet (jobs train-forward-s*)." in section_text(page, "curves")
    assert "No pairs.json yet (job pair is not in plan.json)" in section_text(page, "pairs")
    assert "No comparison.json yet (job compare is not in plan.json)" in section_text(page, "comparison")
    assert "No forest plot: no comparison to plot." in section_text(page, "forest")
    assert "No held-out reply at a selected checkpoint yet" in section_text(page, "samples")


def test_runs_in_progress_without_evaluations_and_damaged_files_do_not_break_the_page(tmp_path):
    root = make_experiment(tmp_path / "exp", seeds=(0, 1), pairs=False)
    (root / "comparison.json").write_text("{not json")
    run = root / "runs" / "reverse-s1"
    for f in run.iterdir():
        f.unlink()
    run.rmdir()
    write_run(run, "reverse", 1, 30, 3, calibrated=False, evals=False)
    mixed = root / "runs" / "forward-s1"  # evaluated without calibrated scores, next to a calibrated seed 0
    for f in mixed.iterdir():
        f.unlink()
    mixed.rmdir()
    write_run(mixed, "forward", 1, 30, 12, calibrated=False)
    plan = json.loads((root / "plan.json").read_text())
    for j in plan["jobs"]:
        if j["id"] == "train-reverse-s1":
            j.update(state="failed", seconds=None, attempts=2, error="out of memory <at> step 4")
    write_json_atomic(root / "plan.json", plan)
    page = page_of(root)
    summary = section_text(page, "summary")
    assert "trainings 4 3 done, 1 failed 1:31:00" in summary  # 1800 + 1860 + 1800 s; the failed one has none
    assert "train-reverse-s1 failed after 2 attempt(s): out of memory <at> step 4" in summary
    assert Structure(page).errors == []
    curves = section_text(page, "curves")
    assert "seed 1 · runs/reverse-s1 · step 3/30, running · no checkpoint selected; no held-out evaluation yet" \
        in curves
    assert "selected step" in curves and "(the run's own rule)" in curves
    forward, reverse = curves.split(" reverse 0 2 4 6 8 10 ")
    assert "held-out score (raw judge score)" in forward  # seed 1 has no calibrated score
    assert "held-out score (calibrated 0-10 score)" in reverse  # a run without evaluations does not count
    assert "No pairs.json yet (job pair is pending)" in section_text(page, "pairs")
    assert "comparison.json is not valid JSON" in section_text(page, "summary")
    assert "comparison.json could not be read (see the warning at the top)." in section_text(page, "comparison")
    assert "No forest plot: no comparison to plot." in section_text(page, "forest")
    (root / "runs" / "forward-s1" / "config.json").unlink()
    assert "runs/forward-s1 not written yet" in section_text(page_of(root), "curves")


def test_a_folder_without_experiment_json_is_one_clear_error(tmp_path):
    with pytest.raises(HmxError, match="is not an experiment folder"):
        write_report(tmp_path, tmp_path / "r.html")
    (tmp_path / "experiment.json").write_text("[1")
    with pytest.raises(HmxError, match="experiment.json cannot be read"):
        read_experiment(tmp_path)


# --------------------------------------------------------------------------- the command


def test_report_command_writes_the_page_for_an_experiment(finished, tmp_path):
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(cli, ["report", str(finished), "--export", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"saved {out}"
    assert Structure(out.read_text()).count("svg") == 3
    assert write_report(finished) == finished / "report.html" and (finished / "report.html").is_file()


def test_report_of_an_experiment_in_the_terminal_shows_its_runs_and_evaluations(finished):
    console = Console(width=200, color_system=None, file=io.StringIO(), legacy_windows=False)
    report([str(finished)], console=console)
    out = console.file.getvalue()
    assert out.splitlines()[0].startswith("hmx-mlx report · forward-s0, forward-s1, forward-s2, reverse-s0")
    assert "7 evaluation(s)" in out and "smollm2-135m (base 1, forward 3, reverse 3 evaluations)" in out
    assert "is not here" not in out and "has no evaluation yet" not in out  # every run and evaluation found


def test_an_experiment_is_reported_alone(finished, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(finished), str(finished / "evals" / "base.json")])
    assert result.exit_code == 1 and "an experiment folder is reported alone" in result.output


def test_an_experiment_with_nothing_to_show_in_the_terminal_says_so(tmp_path):
    write_json_atomic(tmp_path / "experiment.json", {"model": "smollm2-135m", "seeds": [0]})
    result = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 1 and "has no run folder or evaluation yet" in result.output
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", str(tmp_path), "--export", str(page)])
    assert result.exit_code == 0 and Structure(page.read_text()).errors == []  # the page has placeholders
