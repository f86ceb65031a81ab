"""Tests for the shipped prompt files and their loader (hmxfeel_mlx/training/prompts.py)."""

import json
from collections import Counter

import pytest

from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.training import prompts as P

# --- the shipped files -------------------------------------------------------------------


def test_prompts_dir_is_package_data():
    assert P.PROMPTS_DIR.is_dir() and P.PROMPTS_DIR.parent.name == "hmxfeel_mlx"
    assert (P.PROMPTS_DIR / "README.md").is_file()


def test_a_wheel_install_carries_the_prompts(tmp_path):
    """A non-editable install (the wheel, installed elsewhere) finds every prompt file."""
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    import shutil

    root, src = Path(__file__).resolve().parent.parent, tmp_path / "src"  # built from a copy: no build/ here
    shutil.copytree(root / "hmxfeel_mlx", src / "hmxfeel_mlx", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "dist").glob("hmxfeel_mlx-*.whl")
    shipped = {f"hmxfeel_mlx/prompts/{f.name}" for f in P.PROMPTS_DIR.iterdir() if f.is_file()}
    assert shipped <= set(zipfile.ZipFile(wheel).namelist())
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    code = ("import hmxfeel_mlx.training.prompts as P; q = P.load_questions(); "
            "t = P.load_judge_template('forward', 'fewshot'); "
            "print(P.PROMPTS_DIR, len(q.train), len(q.eval), len(P.load_calibration()), t.format)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    where, n_train, n_eval, n_cal, fmt = out.stdout.split()
    assert Path(where) == site / "hmxfeel_mlx" / "prompts"
    assert (int(n_train), int(n_eval), int(n_cal), fmt) == (90, 10, 72, "completion")


def test_shipped_questions_counts_and_ids():
    qs = P.load_questions()
    assert len(qs.train) == 90
    assert len(qs.eval) == 10
    ids = [q.id for q in qs.train + qs.eval]
    assert len(set(ids)) == 100
    assert sorted(ids) == [f"q{i:03d}" for i in range(1, 101)]
    assert {q.kind for q in qs.eval} == {"direct", "situational", "reflective", "everyday"}
    assert {q.kind for q in qs.train} == {"direct", "situational", "reflective", "everyday"}


def test_probe_questions_are_held_out_and_follow_the_eval_questions_on_the_feeling_axis(tmp_path):
    from hmxfeel_mlx.evals.axes.generation import _load_feeling
    from hmxfeel_mlx.training.config import resolve_config

    qs = P.load_questions()
    probe = P.load_probe_questions(qs)
    assert [q.id for q in probe] == [f"q{i}" for i in range(101, 131)]
    assert Counter(q.kind for q in probe) == {"direct": 8, "situational": 8, "reflective": 7, "everyday": 7}
    for q in probe:
        assert 3 <= len(q.question.split()) <= 30, q.question
    cfg = resolve_config(overrides={"model": "smollm2-135m"})
    axis = _load_feeling(tmp_path, None, 0, cfg)
    assert [q.id for q in axis] == [q.id for q in qs.eval] + [q.id for q in probe]
    assert [q.id for q in _load_feeling(tmp_path, 12, 0, cfg)] == [q.id for q in (qs.eval + probe)[:12]]
    own = tmp_path / "mine.txt"
    own.write_text("How are you today?\nWhat do you like?\n")
    mine = _load_feeling(tmp_path, None, 0, resolve_config(overrides={"model": "smollm2-135m",
                                                                      "eval_questions": str(own)}))
    assert [q.question for q in mine] == ["How are you today?", "What do you like?"]  # a run's own set: no probes
    with pytest.raises(HmxError, match="same text"):  # a probe that is a train question is refused
        P.load_probe_questions(P.QuestionSet(train=[P.Question("x1", "custom", probe[0].question)], eval=[]))


def test_shipped_questions_are_short_and_distinct():
    qs = P.load_questions()
    texts = [q.question for q in qs.train + qs.eval]
    assert len({t.lower() for t in texts}) == len(texts)
    for t in texts:
        assert 3 <= len(t.split()) <= 30, t
        assert "\n" not in t


def test_shipped_calibration():
    rows = P.load_calibration()
    assert len(rows) >= 66
    counts = Counter(r.label for r in rows)
    assert set(counts) == {"human", "machine", "neutral"}
    assert min(counts.values()) >= 15
    eval_texts = {q.question for q in P.load_questions().eval}
    assert not any(r.question in eval_texts for r in rows)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("variant", ["", "short"])
def test_shipped_templates(direction, variant):
    t = P.load_judge_template(direction, variant)
    assert t.direction == direction
    assert t.text.count("{question}") == 1
    assert t.text.count("{reply}") == 1
    words = len(t.text.split())
    assert words <= (50 if variant else 120)
    if not variant:
        for anchor in ("10 =", "5 =", "0 ="):
            assert anchor in t.text
    assert "0" in t.text and "10" in t.text
    assert t.format == "chat"


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_fewshot_templates_are_completion_format_with_scored_examples(direction):
    t = P.load_judge_template(direction, "fewshot")
    assert t.format == "completion" and not t.text.startswith("#")
    assert t.text.count("{question}") == 1 and t.text.count("{reply}") == 1
    assert t.text.rstrip().endswith("Score:")
    scores = [int(line.split(":")[1]) for line in t.text.splitlines() if line.startswith("Score: ")]
    assert len(scores) >= 6 and min(scores) <= 1 and max(scores) >= 9
    # few-shot examples must not leak the question set or the calibration set
    asked = {q.question for qs in (P.load_questions().train, P.load_questions().eval) for q in qs}
    asked |= {r.question for r in P.load_calibration()}
    examples = [line[len("Question: "):] for line in t.text.splitlines() if line.startswith("Question: ")]
    assert not set(examples) & asked


def test_unknown_template_format_is_refused(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("#format: html\nQ: {question} R: {reply}")
    _raises(lambda: P.load_judge_template("forward", path=path), str(path), "#format: completion")


def test_render_keeps_braces_and_fills_once():
    t = P.load_judge_template("forward")
    reply = "I feel {x} and {0} and {reply} and {question} and }{"
    question = "What about {question} or {reply}?"
    out = t.render(question, reply)
    assert reply in out
    assert question in out
    assert out.count(reply) == 1
    assert out.count(question) == 1
    # no placeholder left beyond what the inputs themselves brought in
    assert out.count("{reply}") == 2 and out.count("{question}") == 2


def test_render_replaces_repeated_placeholders():
    t = P.JudgeTemplate("forward", "Q={question} R={reply} again {question}")
    assert t.render("a", "b") == "Q=a R=b again a"


def test_system_prompt():
    s = P.load_system_prompt()
    assert s and "\n" not in s


def test_system_prompt_blank_means_none(tmp_path):
    f = tmp_path / "sys.txt"
    f.write_text("  \n")
    assert P.load_system_prompt(f) == ""


# --- bad inputs --------------------------------------------------------------------------


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _q(i, kind="direct", text=None):
    return {"id": f"x{i}", "kind": kind, "question": text or f"Question number {i}?"}


def _raises(fn, *needles):
    with pytest.raises(HmxError) as exc:
        fn()
    msg = exc.value.message
    for n in needles:
        assert str(n) in msg, (n, msg)
    assert "Fix:" in msg
    return msg


@pytest.fixture
def good_eval(tmp_path):
    return _jsonl(tmp_path / "ev.jsonl", [_q(100)])


def test_missing_question_file(tmp_path, good_eval):
    _raises(lambda: P.load_questions(tmp_path / "nope.jsonl", good_eval), "nope.jsonl", "does not exist")


def test_empty_question_file(tmp_path, good_eval):
    f = tmp_path / "empty.jsonl"
    f.write_text("\n  \n")
    _raises(lambda: P.load_questions(f, good_eval), "empty.jsonl", "empty")


def test_malformed_json_line(tmp_path, good_eval):
    f = _jsonl(tmp_path / "bad.jsonl", [_q(1), '{"id": "x2", "kind": "direct",'])
    _raises(lambda: P.load_questions(f, good_eval), "bad.jsonl", "line 2", "not valid JSON")


def test_json_line_not_object(tmp_path, good_eval):
    f = _jsonl(tmp_path / "list.jsonl", [_q(1), "[1, 2]"])
    _raises(lambda: P.load_questions(f, good_eval), "list.jsonl", "line 2", "JSON object")


@pytest.mark.parametrize("field", ["id", "kind", "question"])
def test_missing_question_field(tmp_path, good_eval, field):
    row = _q(1)
    del row[field]
    f = _jsonl(tmp_path / "missing.jsonl", [row])
    _raises(lambda: P.load_questions(f, good_eval), "missing.jsonl", "line 1", f"'{field}'", "missing")


def test_empty_question_field(tmp_path, good_eval):
    f = _jsonl(tmp_path / "blank.jsonl", [_q(1), {"id": "x2", "kind": "direct", "question": "   "}])
    _raises(lambda: P.load_questions(f, good_eval), "blank.jsonl", "line 2", "'question'")


def test_unknown_kind(tmp_path, good_eval):
    f = _jsonl(tmp_path / "kind.jsonl", [_q(1, kind="silly")])
    _raises(lambda: P.load_questions(f, good_eval), "kind.jsonl", "silly", "situational")


def test_duplicate_ids_within_file(tmp_path, good_eval):
    f = _jsonl(tmp_path / "dup.jsonl", [_q(1), _q(1, text="Another question?")])
    _raises(lambda: P.load_questions(f, good_eval), "dup.jsonl", "x1", "unique")


def test_duplicate_ids_across_files(tmp_path):
    tr = _jsonl(tmp_path / "tr.jsonl", [_q(1), _q(2)])
    ev = _jsonl(tmp_path / "ev.jsonl", [_q(2, text="Different text?")])
    _raises(lambda: P.load_questions(tr, ev), "tr.jsonl", "ev.jsonl", "x2")


def test_duplicate_question_text_across_files(tmp_path):
    tr = _jsonl(tmp_path / "tr.jsonl", [_q(1, text="Do you dream?")])
    ev = _jsonl(tmp_path / "ev.jsonl", [_q(2, text="do you  DREAM?")])
    _raises(lambda: P.load_questions(tr, ev), "ev.jsonl", "same text")


def test_plain_text_questions(tmp_path):
    tr = tmp_path / "mine.txt"
    tr.write_text("# my questions\nHow are you?\n\n  What do you love?  \n")
    ev = tmp_path / "mine_eval.txt"
    ev.write_text("What scares you?\n")
    qs = P.load_questions(tr, ev)
    assert [(q.id, q.kind, q.question) for q in qs.train] == [
        ("l001", "custom", "How are you?"),
        ("l002", "custom", "What do you love?"),
    ]
    assert [q.id for q in qs.eval] == ["l003"]


def test_plain_text_train_with_default_eval(tmp_path):
    tr = tmp_path / "mine.txt"
    tr.write_text("How are you?\n")
    qs = P.load_questions(tr)
    assert qs.train[0].id == "l001" and len(qs.eval) == 10


def test_plain_text_only_comments(tmp_path, good_eval):
    f = tmp_path / "c.txt"
    f.write_text("# nothing\n")
    _raises(lambda: P.load_questions(f, good_eval), "c.txt", "comments")


def test_jsonl_content_with_txt_suffix(tmp_path, good_eval):
    f = _jsonl(tmp_path / "q.txt", [_q(1)])
    _raises(lambda: P.load_questions(f, good_eval), "q.txt", ".jsonl")


def test_not_utf8(tmp_path, good_eval):
    f = tmp_path / "latin.jsonl"
    f.write_bytes(b'{"id": "x1", "kind": "direct", "question": "caf\xe9?"}\n')
    _raises(lambda: P.load_questions(f, good_eval), "latin.jsonl", "UTF-8")


@pytest.mark.parametrize("missing", ["{question}", "{reply}"])
def test_template_missing_placeholder(tmp_path, missing):
    f = tmp_path / "judge.txt"
    f.write_text("Q: {question}\nR: {reply}\nScore:".replace(missing, "..."))
    _raises(lambda: P.load_judge_template("forward", path=f), "judge.txt", missing)


def test_template_missing_and_empty(tmp_path):
    _raises(lambda: P.load_judge_template("reverse", path=tmp_path / "none.txt"), "none.txt")
    f = tmp_path / "blank.txt"
    f.write_text("\n")
    _raises(lambda: P.load_judge_template("reverse", path=f), "blank.txt", "empty")


def test_template_path_override(tmp_path):
    f = tmp_path / "mine.txt"
    f.write_text("Is {reply} a good answer to {question}? Score:\n")
    t = P.load_judge_template("reverse", path=f)
    assert t.direction == "reverse"
    assert t.render("q{1}", "r{2}") == "Is r{2} a good answer to q{1}? Score:"


def test_bad_direction_and_variant():
    _raises(lambda: P.load_judge_template("sideways"), "sideways", "forward", "reverse")
    _raises(lambda: P.load_judge_template("forward", "long"), "long", "short")


def test_calibration_bad_label(tmp_path):
    f = _jsonl(tmp_path / "cal.jsonl", [{"question": "q?", "reply": "r.", "label": "robot"}])
    _raises(lambda: P.load_calibration(f), "cal.jsonl", "line 1", "robot", "machine")


def test_calibration_missing_field_and_bad_json(tmp_path):
    f = _jsonl(tmp_path / "cal.jsonl", [{"question": "q?", "label": "human"}])
    _raises(lambda: P.load_calibration(f), "cal.jsonl", "'reply'")
    g = _jsonl(tmp_path / "cal2.jsonl", [{"question": "q?", "reply": "r.", "label": "human"}, "nope"])
    _raises(lambda: P.load_calibration(g), "cal2.jsonl", "line 2")


def test_calibration_missing_empty_duplicate(tmp_path):
    _raises(lambda: P.load_calibration(tmp_path / "gone.jsonl"), "gone.jsonl", "does not exist")
    e = tmp_path / "e.jsonl"
    e.write_text("")
    _raises(lambda: P.load_calibration(e), "e.jsonl", "empty")
    row = {"question": "q?", "reply": "r.", "label": "human"}
    d = _jsonl(tmp_path / "d.jsonl", [row, row])
    _raises(lambda: P.load_calibration(d), "d.jsonl", "line 2", "line 1")


def test_system_prompt_missing(tmp_path):
    _raises(lambda: P.load_system_prompt(tmp_path / "sys.txt"), "sys.txt", "does not exist")


def test_errors_are_click_exceptions(tmp_path):
    import click

    with pytest.raises(click.ClickException):
        P.load_calibration(tmp_path / "x.jsonl")
