"""The training dashboard rendered into colourless fixed-size consoles, its plain-line mode,
the `watch` command and the train command's choice of display."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from rich.console import Console
from test_ui_state import make_run

from hmxfeel_mlx.cli import cli
from hmxfeel_mlx.runfolder import append_jsonl
from hmxfeel_mlx.ui.dashboard import TrainDashboard, follow_plain, render_dashboard
from hmxfeel_mlx.ui.state import open_run


def screen(state, width, height, **kwargs) -> list[str]:
    console = Console(width=width, height=height, color_system=None, file=io.StringIO(), legacy_windows=False)
    now = (state.last_write or 0.0) + 30  # 30 s after the newest metrics line
    console.print(render_dashboard(state, now, (width, height), **kwargs))
    return console.file.getvalue().splitlines()


@pytest.fixture()
def running(tmp_path):
    return open_run(make_run(tmp_path, done=20)).state  # text-mode judge; held-out 5.0 ... 7.0, threshold 7.5


def test_dashboard_at_80x24(running):
    lines = screen(running, 80, 24, device="CPU (2 cores)", footer="q quit")
    text = "\n".join(lines)
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    # elapsed: base evaluation 60 s + 20 steps x 60 s + 30 s since the last line; ETA: 10 steps x 60 s - 30 s
    assert lines[0].rstrip() == "smollm2-135m · forward · seed 0 │ step 20/30 │ running"
    assert lines[1].rstrip() == "elapsed 21:30 · ETA 9:30 │ device CPU (2 cores) │ peak memory 2.70 GB"
    assert "│ 7.50┤╌╌" in text  # the threshold line, inside the chart's range (data 5.0 - 7.0)
    assert "▲" in lines[lines.index(next(l for l in lines if "└" in l))]  # selected checkpoint on the axis
    # the training k3 term, named apart from the KL to the base on the held-out replies
    assert "KL train (k3)         0.0400" in text and "judge NaN                0/8" in text
    assert "╭─ score · forward rubric · raw judge ─" in lines[2]  # what the chart's axis is
    assert "│ • train  ◆ held-out  ╌ ≥ 7.5  ▲ selected │" in text  # the legend fits the panel
    assert "train reward 7.00 = score ─╯" in text
    # the held-out numbers and the selection on full-width lines, none of them cut
    at = next(k for k, line in enumerate(lines) if line.startswith("held-out"))
    assert lines[at:at + 3] == [
        "held-out 5.00 → 7.00 ± 0.05 (step 20)".ljust(80),
        "selected step_20 (best so far; threshold not reached)".ljust(80),
        "KL to base (held-out, per token) 0.020".ljust(80)]
    # the newest group under column titles, best first: 8.50 / +1.36 best, 5.50 / -1.36 worst, with verdicts
    assert "samples · step 20 · q001 (1 of 2): How do you feel about q001?" in text
    assert lines[at + 4].split() == ["│", "score", "advantage", "text", "judge", "verdict", "│"]
    assert "│ ▲ best   8.50     +1.36 I feel delighted about q001 at     Score: 8. The     │" in lines
    assert "│ ▼ worst  5.50     -1.36 I feel nothing at all, I am a pro… Score: 6. The re… │" in lines
    assert "…" not in "".join(lines[:at + 4])
    assert lines[-1].rstrip() == "q quit"


def test_dashboard_at_160x48_shows_everything(running):
    text = "\n".join(screen(running, 160, 48))
    assert "device not recorded" in text
    assert "• train score (raw)  ◆ held-out score (raw)  ╌ threshold ≥ 7.5  ▲ selected" in text
    assert ("held-out 5.00 → 7.00 ± 0.05 (step 20) · selected step_20 (best so far; threshold not reached) · "
            "KL to base (held-out, per token) 0.020") in text  # one line at this width
    for label in ("entropy", "clip ratio", "zero-spread", "length        14 tok 25% cut",
                  "rollout         30s 36 tok/s", "judge          20s 0.4 rep/s", "update          10s 11 tok/s",
                  "grad norm", "step time"):
        assert label in text
    assert "I feel nothing at all, I am a program about q001 at step 20." in text  # one line each at this width
    assert "Score: 6. The reply denies a feeling." in text


def test_header_shows_the_device_the_trainer_recorded(tmp_path):
    run = make_run(tmp_path, done=5)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows[0]["device"] = "CPU (2 cores)"  # the trainer writes it into the step-0 line
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "device CPU (2 cores)" in "\n".join(screen(open_run(run).state, 160, 48))


def test_reverse_run_in_logprob_mode(tmp_path):
    state = open_run(make_run(tmp_path, direction="reverse", judge_mode="logprob", done=6)).state
    text = "\n".join(screen(state, 100, 30))
    assert "smollm2-135m · reverse · seed 0" in text and "╌ ≤ 2.5  ▲ selected" in text
    # rewarded by the reversed rubric: no training score on the forward rubric's axis, the reward named beneath
    assert "◆ held-out only  ╌ ≤ 2.5" in text and "train reward 5.60 = reversed rubric ─╯" in text
    assert "Score:" not in text  # no verdicts in logprob mode


def test_reverse_complement_run_charts_the_training_score_beside_the_held_out_score(tmp_path):
    """Reward 10 - score: the chart's train series is the forward rubric's score on the held-out score's
    (calibrated) scale, never the reward, and the reward is named beneath the chart."""
    import math

    from hmxfeel_mlx.training.calibration import CALIBRATION_FILE
    from hmxfeel_mlx.ui.state import CALIBRATION_FILE as UI_CALIBRATION_FILE
    from hmxfeel_mlx.ui.state import train_scores
    from hmxfeel_mlx.ui.views import reward_chart

    assert UI_CALIBRATION_FILE == CALIBRATION_FILE
    run = make_run(tmp_path, direction="reverse", judge_mode="logprob", done=10)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "reverse_reward": "complement"}))
    (run / CALIBRATION_FILE).write_text(json.dumps({"scale": {"slope": 1.0, "intercept": -6.0}}))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        if r.get("step", 0) >= 1:
            r["reward_mean"] = 10 - r["score_mean"]
        if "eval_score" in r:
            r.update(eval_score_cal=8.0 - 0.2 * r["step"], eval_score_cal_se=0.1)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    state = open_run(run).state
    points, scale = train_scores(state)
    step3 = [5.3 + off for off in (0.0, 1.5, -1.5, 0.5)] * 2  # step 3's replies: 5.0 + 0.1 * 3 + offset
    expected = sum(10 / (1 + math.exp(-(x - 6.0))) for x in step3) / len(step3)
    assert scale == "calibrated" and dict(points)[3] == pytest.approx(expected)
    chart = reward_chart(state)
    assert [s.label for s in chart.series] == ["train score", "held-out score"]
    assert chart.series[0].points == points and chart.threshold == 2.5
    text = "\n".join(screen(state, 160, 48))
    assert "score · forward rubric · calibrated 0-10" in text
    assert "• train score (calibrated)  ◆ held-out score (calibrated)  ╌ threshold ≤ 2.5  ▲ selected" in text
    assert "train reward 4.00 = 10 - score" in text  # step 10: score 6.0


def test_best_and_worst_follow_the_reward_when_it_is_not_the_score(tmp_path):
    run = make_run(tmp_path, direction="reverse", judge_mode="logprob", done=1)
    rows = [{"step": 2, "prompt_id": "q009", "prompt": "Do you dream?", "completion": text, "score": score,
             "reward": 10 - score, "advantage": adv}  # reverse run rewarded with 10 - score
            for text, score, adv in (("I dream of oceans.", 8.0, -1.2), ("I am a language model.", 2.0, 1.2),
                                     ("Sometimes.", 5.0, 0.0))]
    append_jsonl(run / "samples.jsonl", rows)
    lines = screen(open_run(run).state, 100, 30)
    text = "\n".join(lines)
    header = next(line for line in lines if "advantage" in line)
    assert header.split() == ["│", "score", "reward", "advantage", "text", "│"]
    assert "▲ best   2.00   8.00     +1.20 I am a language model." in text
    assert "▼ worst  8.00   2.00     -1.20 I dream of oceans." in text


def test_empty_run_says_what_is_missing(tmp_path):
    state = open_run(make_run(tmp_path, done=-1)).state
    text = "\n".join(screen(state, 80, 24))
    assert "step -/30 │ starting" in text
    assert "held-out: no evaluation yet" in text and "no training group yet" in text


def write_progress(run, **fields):
    from hmxfeel_mlx.runfolder import write_json_atomic

    write_json_atomic(run / "progress.json", {"stage": "rollout", "part": None, "step": 21, "done": 512,
                                              "total": 1024, "unit": "tokens", "started": 0.0, "updated": 0.0,
                                              **fields})


def test_the_current_stage_shows_beneath_the_header(running, tmp_path):
    run = running.root
    reader = open_run(run)
    now = reader.state.last_write + 30
    write_progress(run, started=now - 12, updated=now - 1)
    reader.poll()
    lines = screen(reader.state, 80, 24)
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    assert lines[2].rstrip() == "step 21 · rollout · 512/1024 tokens (50%) · 0:12 in this stage"
    assert "│ 7.50┤╌╌" in "\n".join(lines)  # the reward chart still has its threshold line


def test_the_base_evaluation_shows_its_progress_before_any_metrics(tmp_path):
    run = make_run(tmp_path, done=-1)  # config only: the model is loaded, the base is being evaluated
    write_progress(run, stage="base evaluation", part="sampling", step=0, done=80, total=320, started=0.0,
                   updated=29.0)
    state = open_run(run).state
    lines = screen(state, 80, 24)
    assert lines[0].rstrip() == "smollm2-135m · forward · seed 0 │ step -/30 │ starting"
    assert lines[2].rstrip() == "step 0 · base evaluation: sampling · 80/320 tokens (25%) · 0:30 in this stage"
    write_progress(run, stage="base evaluation", part="sampling", step=0, done=80, total=320, started=0.0,
                   updated=-100.0)  # the trainer stopped writing (killed): the line says how old it is
    assert "(written 2:10 ago)" in screen(open_run(run).state, 120, 24)[2]


def test_a_finished_run_has_no_progress_line(tmp_path):
    run = make_run(tmp_path, done=30, status="finished")
    write_progress(run, stage="finished", step=None, total=0)
    lines = screen(open_run(run).state, 80, 24)
    assert "finished" in lines[0] and "stage" not in lines[2]


def test_held_out_line_shows_raw_and_calibrated_scores_and_the_kl_per_reply(tmp_path):
    run = make_run(tmp_path, done=10)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    cal = {0: 4.9, 5: 7.6, 10: 7.0}
    for r in rows:
        if "eval_score" in r:
            r.update(eval_score=4.1 + 0.02 * r["step"], eval_score_se=0.01, eval_score_cal=cal[r["step"]],
                     eval_score_cal_se=0.2, eval_kl=0.257, eval_kl_reply=16.3, eval_kl_reply_se=0.9, eval_len=63.4,
                     eval_judge_score_mass=0.912)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = "\n".join(screen(open_run(run).state, 160, 48))
    assert "◆ held-out score (calibrated)" in text and "score · forward rubric · calibrated 0-10" in text
    assert "held-out calibrated 4.90 → 7.00 ± 0.20 · raw 4.10 → 4.30 ± 0.01 (step 10)" in text
    assert "KL to base (held-out, per token / per reply) 0.257 / 16.30 ± 0.90 · 63 tokens per reply · judge mass 0.912" in text
    assert "selected step_5 (threshold crossed)" in text  # 7.6 >= 7.5 on the calibrated scale; raw never is
    lines = screen(open_run(run).state, 80, 24)  # three full-width lines, none cut
    at = next(k for k, line in enumerate(lines) if line.startswith("held-out"))
    assert lines[at:at + 3] == [
        "held-out calibrated 4.90 → 7.00 ± 0.20 · raw 4.10 → 4.30 ± 0.01 (step 10)".ljust(80),
        "selected step_5 (threshold crossed)".ljust(80),
        "KL to base (held-out, per token / per reply) 0.257 / 16.30 ± 0.90".ljust(80)]


def test_train_dashboard_closes_the_screen_first_and_replays_captured_output(tmp_path, capsys):
    run = make_run(tmp_path, done=3)
    console = Console(width=80, height=24, color_system=None, file=io.StringIO(), legacy_windows=False)
    dash = TrainDashboard(json.loads((run / "config.json").read_text()), run, device="CPU", console=console)
    with pytest.raises(KeyboardInterrupt):
        with dash:
            print("model loaded", file=sys.stderr)
            assert screen_of(dash)[-1].startswith("model loaded │ Ctrl-C stops")  # the footer, while live
            dash({"step": 3}, [])
            raise KeyboardInterrupt
    assert sys.stdout is not dash.log and sys.stderr is not dash.log
    out = console.file.getvalue()
    assert out.count("smollm2-135m · forward · seed 0 │ step 3/30") == 1  # the last frame, printed once
    assert out.splitlines()[-1].startswith("run folder: ")
    assert capsys.readouterr().err.splitlines() == ["model loaded"]


def test_a_drawing_failure_does_not_stop_training(tmp_path, monkeypatch, capsys):
    run = make_run(tmp_path, done=2)
    console = Console(width=80, height=24, color_system=None, file=io.StringIO(), legacy_windows=False)
    dash = TrainDashboard(json.loads((run / "config.json").read_text()), run, console=console)
    monkeypatch.setattr(dash.view, "update", lambda *a, **k: 1 / 0)
    with dash:
        dash({"step": 2}, [])  # the trainer's call returns normally
    assert "the dashboard failed to draw (training goes on)" in console.file.getvalue()
    assert "ZeroDivisionError: division by zero" in capsys.readouterr().err


def screen_of(dash: TrainDashboard) -> list[str]:
    console = Console(width=80, height=24, color_system=None, file=io.StringIO(), legacy_windows=False)
    console.print(dash.frame())
    return console.file.getvalue().splitlines()


def test_plain_lines_follow_until_the_run_ends(tmp_path):
    out = io.StringIO()
    follow_plain(open_run(make_run(tmp_path, done=2)), out, once=True)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("smollm2-135m (forward, seed 0) for 30 steps")
    assert lines[1] == "step 0/30  base held-out score 5.00 ± 0.05 (n=4, 60s)" and lines[2].startswith("step 1/30")
    assert len(lines) == 4
    out = io.StringIO()
    follow_plain(open_run(make_run(tmp_path, name="done", done=30, status="finished")), out)
    assert out.getvalue().splitlines()[-1] == (
        "finished: held-out score 5.00 -> 8.00; selected checkpoint: step_25 (threshold crossed)")


def test_watch_command(tmp_path):
    runner = CliRunner()
    run = make_run(tmp_path, done=30, status="finished")
    result = runner.invoke(cli, ["watch", str(run), "--once"], env={"COLUMNS": "80", "LINES": "24"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 24 and lines[0].rstrip() == "smollm2-135m · forward · seed 0 │ step 30/30 │ finished"
    assert "selected step_25 (threshold crossed)" in result.output  # from summary.json
    result = runner.invoke(cli, ["watch", str(run)])  # not a terminal: plain lines, ends with the run
    assert result.exit_code == 0 and result.output.splitlines()[-1].startswith("finished: held-out score")
    result = runner.invoke(cli, ["watch", str(tmp_path / "missing")])
    assert result.exit_code == 1 and result.output.startswith("Error: run folder not found")
    assert "Traceback" not in result.output


def test_ui_commands_do_not_import_mlx(tmp_path):
    run = make_run(tmp_path, done=5)
    code = (f"import sys\nfrom hmxfeel_mlx.cli import main\n"
            f"for args in (['watch', {str(run)!r}, '--once'], ['inspect', {str(run)!r}], ['report', {str(run)!r}]):\n"
            f"    try: main(args)\n    except SystemExit as e: assert not e.code, e.code\n"
            f"print('MLX', any(m == 'mlx' or m.startswith('mlx.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "MLX False"


def test_train_prints_plain_lines_when_not_a_terminal_and_reports_an_interrupt(tmp_path, monkeypatch):
    import hmxfeel_mlx.training.trainer as trainer

    def fake_train(config, run_dir, resume=False, on_step=None):
        run = make_run(tmp_path, name=f"fake{config.steps}", done=-1)
        for step in (0, 1):
            from test_ui_state import step_rows

            on_step(step_rows(json.loads((run / "config.json").read_text()), step)[0], [])
        if config.steps == 2:
            raise trainer.TrainingStopped(f"interrupted; the last complete checkpoint is none. "
                                          f"Resume with: hmx-mlx train --resume {run_dir}")
        return trainer.TrainResult(run_dir, {"status": "finished", "base_eval_score": 5.0, "final_eval_score": 5.1, "selected_step": 1,
                                             "reason": "threshold not reached; best held-out score selected"})

    monkeypatch.setattr(trainer, "train", fake_train)
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--steps", "3", "--run-dir", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "training smollm2-135m (forward, seed 0) for 3 steps"
    assert lines[1].startswith("step 0/3  base held-out score 5.00") and lines[2].startswith("step 1/3  reward 5.10")
    assert lines[3].startswith("done in") and lines[-1].startswith("finished: held-out score 5.00 -> 5.10; selected checkpoint: step_1")
    result = runner.invoke(cli, ["train", "--steps", "2", "--run-dir", str(tmp_path / "r2")])
    assert result.exit_code == 1 and result.output.splitlines()[-1].startswith("Error: interrupted;")
    assert f"Resume with: hmx-mlx train --resume {tmp_path / 'r2'}" in result.output
