"""`hmx-mlx report`: run curves next to the comparison table, and its HTML/SVG export."""

from __future__ import annotations

import html
import io
import json
import re

import pytest
from click.testing import CliRunner
from rich.console import Console

from hmxfeel_mlx.cli import cli
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.evals.axes.core import EVAL_SCHEMA
from hmxfeel_mlx.evals.compare import compare, headline_lines
from hmxfeel_mlx.evals.stats import newcombe_paired_ci
from hmxfeel_mlx.ui.report import collect, report
from test_ui_state import make_run

SPEC = {"accuracy": {"higher_is_better": True, "headline": True, "item_field": "correct"}}


def write_eval(path, condition, run, accuracy, correct):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "schema": EVAL_SCHEMA, "status": "complete", "condition": condition, "model": "smollm2-135m",
        "run": str(run) if run else None, "checkpoint": "step_25" if run else None, "seed": 0, "limit": 4,
        "data_files": {}, "created_unix": 1.0,
        "results": {"mmlu": {"metrics": {"accuracy": accuracy}, "metric_specs": SPEC,
                             "records": [{"id": f"mmlu/{i}", "correct": c} for i, c in enumerate(correct)],
                             "settings": {}, "n": len(correct)}}}))
    return path


@pytest.fixture()
def study(tmp_path):
    fwd = make_run(tmp_path, done=30, status="finished")
    rev = make_run(tmp_path, name="rev-s0", direction="reverse", done=30, status="finished")
    write_eval(fwd / "evals" / "step_25.json", "forward", fwd, 0.75, [1, 1, 1, 0])
    write_eval(rev / "evals" / "step_25.json", "reverse", rev, 0.5, [1, 0, 1, 0])
    base = write_eval(tmp_path / "base.json", "base", None, 0.5, [0, 1, 1, 0])
    return fwd, rev, base


def text_of(args, width=160) -> str:
    console = Console(width=width, color_system=None, file=io.StringIO(), legacy_windows=False)
    report([str(a) for a in args], console=console)
    return console.file.getvalue()


def test_curves_and_table_on_one_screen(study):
    fwd, rev, base = study
    out = text_of([fwd, rev, base])
    lines = out.splitlines()
    assert lines[0] == "hmx-mlx report · fwd-s0, rev-s0 · 3 evaluation(s)"
    panels = lines[1]
    assert "╭─ fwd-s0 · forward · seed 0 " in panels and "╭─ rev-s0 · reverse · seed 0 " in panels  # side by side
    assert "╌ threshold ≥ 7.5" in out and "╌ threshold ≤ 2.5" in out
    assert out.count("selected step_25 (threshold crossed)") == 2 and "step 30/30 · finished" in out
    assert "held-out 5.00 → 8.00 ± 0.05 (step 30)" in out
    table = lines[lines.index(next(line for line in lines if "evaluations)" in line)):]
    assert "smollm2-135m (base 1, forward 1, reverse 1 evaluations)" in table[0]
    row = next(line for line in table if line.startswith("│ mmlu"))
    assert "0.500" in row and "0.750 (n=1)" in row and "+50.0%" in row  # (0.75 - 0.5) / |base 0.5|
    # paired by item id: n11 = 2, n10 = 1 (item 1), n01 = 0, n00 = 1: exact McNemar p = 1, Newcombe's interval
    lo, hi = newcombe_paired_ci(2, 1, 0, 1)
    assert f"[{lo:+.3f}, {hi:+.3f}]" in row and "McNemar (4 items)" in row and "no significant change" in row
    assert "…" not in out
    # the same headline as `hmx-mlx compare`, each on one line
    shown = compare([(p, json.loads(p.read_text())) for p in (fwd / "evals" / "step_25.json",
                                                               rev / "evals" / "step_25.json", base)])
    expected = headline_lines(shown.headlines["smollm2-135m"])
    assert expected[0].startswith("headline (forward vs reverse, 1 headline metrics")
    assert expected[-1].startswith("study's rule (no test): 1 of 1 headline metrics (100%)")
    assert lines[-len(expected):] == expected


def test_evaluation_file_brings_its_run_and_a_run_without_evaluation_is_noted(study, tmp_path):
    fwd, rev, base = study
    args = collect([str(fwd / "evals" / "step_25.json"), str(base)])
    assert [r.name for r in args.runs] == ["fwd-s0"] and len(args.evals) == 2 and args.notes == []
    bare = make_run(tmp_path, name="bare", done=3)
    out = text_of([bare], width=80)
    assert "╭─ bare · forward · seed 0" in out and "step 3/30 · running" in out
    words = " ".join(out.split())  # the notes wrap at 80 columns
    assert "no evaluation among the arguments: run `hmx-mlx eval RUN` to add the comparison table" in words
    assert f"note: {bare} has no evaluation yet" in words


def test_export_saves_what_was_shown(study, tmp_path):
    fwd, rev, base = study
    page = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(cli, ["report", str(fwd), str(rev), str(base), "--export", str(page),
                                      "--width", "120"])
    assert result.exit_code == 0, result.output
    shown = result.output.splitlines()
    assert shown[-1] == f"saved {page}"
    code = re.search(r"<code[^>]*>(.*)</code>", page.read_text(), re.S).group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", code)).splitlines() == shown[:-1]
    picture = tmp_path / "report.svg"
    result = CliRunner().invoke(cli, ["report", str(fwd), "--export", str(picture)])
    assert result.exit_code == 0 and picture.read_text().lstrip().startswith("<svg")
    assert "hmx-mlx&#160;report" in picture.read_text()  # the title line, spaces as &#160;


@pytest.mark.parametrize("make_arg, message", [
    (lambda p: p / "missing", "not found. Pass run folders"),
    (lambda p: p, "is not a run folder (it needs config.json and metrics.jsonl)"),
    (lambda p: make_run(p, done=1) / "metrics.jsonl", "is not valid JSON"),
    (lambda p: make_run(p, done=1) / "config.json", "is not an evaluation result"),
])
def test_bad_arguments_are_one_clear_error(tmp_path, make_arg, message):
    result = CliRunner().invoke(cli, ["report", str(make_arg(tmp_path))])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_export_format_is_checked_first(study):
    with pytest.raises(HmxError, match="must end in .html or .svg"):
        report([str(study[0])], export="report.pdf")
