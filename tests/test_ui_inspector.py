"""The sample inspector driven key by key, rendered into colourless fixed-size consoles."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner
from rich.console import Console

from hmxfeel_mlx.cli import cli
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.ui.inspector import Inspector, inspect_runs, pack, parse_filter
from hmxfeel_mlx.ui.state import open_run
from test_ui_state import make_run


def screen(insp: Inspector, width: int = 80, height: int = 24) -> list[str]:
    console = Console(width=width, height=height, color_system=None, file=io.StringIO(), legacy_windows=False)
    console.print(insp.render(width, height))
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


def press(insp: Inspector, *keys: str) -> Inspector:
    for key in keys:
        assert insp.handle(key)
    return insp


@pytest.fixture()
def two_runs(tmp_path):
    fwd = open_run(make_run(tmp_path, done=10)).state
    rev = open_run(make_run(tmp_path, name="rev-s0", direction="reverse", done=7)).state
    return Inspector([fwd, rev])


def test_opens_on_the_newest_group_best_first(two_runs):
    lines = screen(two_runs)
    assert len(lines) == 24
    assert lines[:3] == [
        "fwd-s0 (forward, seed 0) [1/2] │ training │ step 10 (10/10) │ prompt 1/2 q001",
        "How do you feel about q001?",
        "sort best first (reward) │ filter none │ 4/4 shown · mean 6.12 · spread 3.00",
    ]
    assert lines[3].split() == ["#", "score", "adv", "completion"]
    assert lines[4] == "›   2 ▲ best   7.50  +1.36 I feel delighted about q001 at step 10."
    assert lines[7] == "    3 ▼ worst  4.50  -1.36 I feel nothing at all, I am a program about q001 at"
    assert lines[-2:] == ["←/→ step  n/p prompt  ↑/↓ select  enter open  s sort  f filter  e held-out/train",
                          "c compare runs  tab next run  g/G first/last step  q quit"]


def test_moves_by_step_and_prompt(two_runs):
    insp = press(two_runs, "right")
    assert insp.step == 10 and insp.message == "no later step"
    press(insp, "left", "left", "n")
    assert (insp.step, insp.group().key) == (8, "q002")
    assert screen(insp)[0].endswith("step 8 (8/10) │ prompt 2/2 q002")
    press(insp, "left")  # the same prompt is kept from step to step when it is there
    assert (insp.step, insp.group().key) == (7, "q002")
    press(insp, "g")
    assert (insp.step, insp.prompt) == (1, 1)
    press(insp, "G", "p")
    assert (insp.step, insp.prompt) == (10, 0)


def test_sort_filter_and_full_view(two_runs):
    insp = press(two_runs, "s")  # the worst first
    assert screen(insp)[4].startswith("›   3 ▼ worst  4.50")
    press(insp, "s", "s", "f", ">", "=", "6", "x", "backspace", "enter")  # back to best first, then score >= 6
    lines = screen(insp)
    assert lines[2].startswith("sort best first (reward) │ filter score >= 6 │ 3/4 shown")
    assert "worst" not in "\n".join(lines[3:8])
    press(insp, "f", "a", "b", "enter")
    assert insp.message.startswith("filter not understood: 'ab'") and insp.filter == (">=", 6.0)
    press(insp, "f", "enter", "down", "enter")
    assert insp.filter is None and insp.view == "full"
    lines = screen(insp)
    assert lines[3] == "completion #4 of 4 · score 6.50 · advantage +0.45 · 15 tokens, cut at the token"
    assert "I feel curious about q001 at step 10." in lines and "judge: Score: 6. The reply names a feeling." in lines
    assert lines[-1] == "↑/↓ scroll  ←/→ previous/next completion  enter/esc back  q quit"
    press(insp, "right")
    assert screen(insp)[3].startswith("completion #1 of 4 · score 6.00")
    press(insp, "esc")
    assert insp.view == "list" and not insp.handle("q")


def test_compare_shows_the_prompt_in_every_run_and_the_base(two_runs):
    insp = press(two_runs, "e")  # held-out samples: steps 0, 5, 10
    assert (insp.held_out, insp.step) == (True, 10)
    press(insp, "c")
    lines = screen(insp)
    assert lines[0] == "fwd-s0 (forward, seed 0) [1/2] │ held-out │ step 10 (3/3) │ prompt 1/2"
    assert lines[3].split("  ")[0] == "base (step 0 of fwd-s0)" and "fwd-s0 (forward)" in lines[3]
    assert "rev-s0 (reverse)" in lines[3]
    # the reverse run has held-out samples up to step 5: the nearest step is shown
    assert lines[4].split() == ["step", "0", "·", "mean", "5.00", "step", "10", "·", "mean", "6.00", "step", "5",
                                "·", "mean", "5.50"]
    # each column best first for its run: the base as the current (forward) run, the reverse run lowest first
    assert lines[5].startswith("5.50 held-out reply 0 to   6.50 held-out reply 0 to   5.00 held-out reply 1")
    press(insp, "c", "e", "tab")  # back to the list, training groups, the other run
    lines = screen(insp)
    assert lines[0] == "rev-s0 (reverse, seed 0) [2/2] │ training │ step 7 (7/7) │ prompt 1/2 q001"


def test_reverse_runs_sort_best_for_their_own_direction(tmp_path):
    """Best means the run's reward (10 - score here), and for held-out replies of a reverse run the
    lowest score: the sort and the ▲/▼ marks agree."""
    from hmxfeel_mlx.runfolder import append_jsonl

    run = make_run(tmp_path, name="rev-s0", direction="reverse", done=5)
    append_jsonl(run / "samples.jsonl", [
        {"step": 6, "prompt_id": "q009", "prompt": "Do you dream?", "completion": text, "score": score,
         "reward": 10 - score, "advantage": adv}
        for text, score, adv in (("I dream of oceans.", 8.0, -1.2), ("I am a language model.", 2.0, 1.2),
                                 ("Sometimes.", 5.0, 0.0))])
    insp = Inspector([open_run(run).state])
    lines = screen(insp)
    assert lines[2].startswith("sort best first (reward) │")
    assert lines[4].startswith("›   2 ▲ best   2.00   8.00  +1.20 I am a language model.")
    assert lines[6].startswith("    1 ▼ worst  8.00   2.00  -1.20 I dream of oceans.")
    press(insp, "e")  # held-out replies at step 5: the lowest forward-rubric score is the best
    lines = screen(insp)
    assert lines[2] == "sort best first (low score) │ filter none │ 2/2 shown · mean 5.50 · spread 1.00"
    assert lines[3].split() == ["#", "score", "adv", "completion"]  # held-out replies have no reward
    assert lines[4].startswith("›   2 ▲ best   5.00") and lines[6].startswith("    1 ▼ worst  6.00")
    press(insp, "s")
    assert screen(insp)[4].startswith("›   1 ▼ worst  6.00")


def test_wide_screen_gives_each_completion_more_room(tmp_path):
    insp = Inspector([open_run(make_run(tmp_path, done=3)).state])
    lines = screen(insp, 160, 48)
    assert len(lines) == 48 and lines[0] == "fwd-s0 (forward, seed 0) │ training │ step 3 (3/3) │ prompt 1/2 q001"
    assert "    3 ▼ worst  3.80  -1.36 I feel nothing at all, I am a program about q001 at step 3." in lines
    assert lines[-1] == ("←/→ step  n/p prompt  ↑/↓ select  enter open  s sort  f filter  e held-out/train  "
                         "c compare runs  tab next run  g/G first/last step  q quit")
    assert insp.handle("tab") and insp.message.startswith("only one run")


def test_filter_syntax_and_key_packing():
    assert parse_filter(">=5") == (">=", 5.0) and parse_filter(" < 3.5 ") == ("<", 3.5)
    assert parse_filter("4") == (">=", 4.0) and parse_filter("") is None
    with pytest.raises(ValueError):
        parse_filter("five")
    assert pack(["aa", "bb", "cc"], 6) == ["aa  bb", "cc"]


def test_inspect_errors_and_printed_screen(tmp_path):
    empty = make_run(tmp_path, name="empty", done=-1)
    with pytest.raises(HmxError, match="has no samples yet"):
        inspect_runs([str(empty)])
    result = CliRunner().invoke(cli, ["inspect", str(tmp_path / "nope")])
    assert result.exit_code == 1 and result.output.startswith("Error: run folder not found")
    run = make_run(tmp_path, done=2)
    result = CliRunner().invoke(cli, ["inspect", str(run)], env={"COLUMNS": "80", "LINES": "24"})
    assert result.exit_code == 0 and result.output.splitlines()[0].startswith("fwd-s0 (forward, seed 0) │ training")
