"""The live screens in a real terminal: tmux runs the command in a pane of a fixed size,
the test sends keys and reads the pane back (`capture-pane`).

Each test waits for expected text with a deadline (the pane is another process), then
asserts on the whole pane. `make test` installs tmux; without it these tests skip.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_ui_state import append_step, make_run

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed: `make test` installs it with apt (or: sudo apt-get install -y tmux)")
TESTS = Path(__file__).resolve().parent
HMX = shlex.join([sys.executable, "-m", "hmxfeel_mlx"])
DEADLINE_S = 60.0  # generous: the machine may be busy; a passing test returns as soon as the text is there


class Pane:
    """A detached tmux session on a private server, running ``command`` in a width x height pane."""

    def __init__(self, command: str, width: int, height: int):
        self.socket = f"hmx-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "TMUX")}
        env["TERM"] = "xterm-256color"
        # The shell keeps the pane open after the command and prints its exit status; its INT trap is
        # reset in the command, which gets Ctrl-C as usual.
        shell = f"trap true INT; {command}; echo \"[exited $?]\"; sleep 600"
        started = subprocess.run([TMUX, "-L", self.socket, "new-session", "-d", "-s", "t", "-x", str(width), "-y",
                                  str(height), shell], capture_output=True, text=True, env=env, timeout=30)
        if started.returncode != 0:
            pytest.skip(f"tmux is installed but cannot open a session here: {started.stderr.strip()}")

    def tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def capture(self, history: bool = False) -> list[str]:
        args = ["capture-pane", "-p", "-J", "-t", "t"] + (["-S", "-200"] if history else [])
        return [line.rstrip() for line in self.tmux(*args).rstrip("\n").split("\n")]

    def send(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, *texts: str, history: bool = False) -> list[str]:
        """The pane once every one of ``texts`` is on it (AssertionError with the pane after the
        deadline). Name text from the last line drawn too, or a capture can catch a frame half drawn."""
        end = time.monotonic() + DEADLINE_S
        while True:
            lines = self.capture(history)
            if all(any(text in line for line in lines) for text in texts):
                return lines
            if time.monotonic() > end:
                raise AssertionError(f"{texts!r} did not all appear; the pane shows:\n" + "\n".join(lines))
            time.sleep(0.05)

    def close(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture()
def pane():
    opened = []

    def open_pane(command: str, width: int = 80, height: int = 24) -> Pane:
        opened.append(Pane(command, width, height))
        return opened[-1]

    yield open_pane
    for p in opened:
        p.close()


def test_watch_follows_a_run_being_written_at_80x24(tmp_path, pane):
    run = make_run(tmp_path, done=3)
    p = pane(f"{HMX} watch {shlex.quote(str(run))} --interval 0.2")
    lines = p.wait_for("step 3/30", "q quit · n/p next/previous prompt")
    assert len(lines) == 24 and lines[0].startswith("smollm2-135m · forward · seed 0 │ step 3/30 │ running")
    assert lines[2].startswith("╭─ score · forward rubric · raw judge") and "╭─ health · step 3" in lines[2]
    assert any("samples · step 3 · q001 (1 of 2)" in line for line in lines)
    assert lines[-1].startswith("q quit · n/p next/previous prompt of the step")
    append_step(run, 4)
    append_step(run, 5)  # an evaluation step: the held-out line moves
    lines = p.wait_for("step 5/30")
    assert any("held-out 5.00 → 5.50 ± 0.05 (step 5)" in line for line in lines)
    assert any("samples · step 5 · q001" in line for line in lines)
    p.send("n")
    p.wait_for("samples · step 5 · q002 (2 of 2)")
    p.send("q")
    lines = p.wait_for("[exited 0]")
    assert not any("╭─ score" in line for line in lines)  # the full screen is gone


def test_watch_a_finished_run_at_160x48(tmp_path, pane):
    run = make_run(tmp_path, done=30, status="finished")
    p = pane(f"{HMX} watch {shlex.quote(str(run))}", 160, 48)
    lines = p.wait_for("step 30/30 │ finished")
    assert len(lines) == 48
    text = "\n".join(lines)
    assert "• train score (raw)  ◆ held-out score (raw)  ╌ threshold ≥ 7.5  ▲ selected" in text
    assert "selected step_25 (threshold crossed)" in text and "step time" in text
    assert "score advantage text" in text
    assert "▲ best   9.50     +1.36" in text and "▼ worst  6.50     -1.36" in text
    assert "Score: 6. The reply denies a feeling." in text
    p.send("q")
    p.wait_for("[exited 0]")


def test_inspector_keys_at_80x24(tmp_path, pane):
    fwd = make_run(tmp_path, done=10)
    rev = make_run(tmp_path, name="rev-s0", direction="reverse", done=7)
    p = pane(f"{HMX} inspect {shlex.quote(str(fwd))} {shlex.quote(str(rev))}")
    lines = p.wait_for("step 10 (10/10)", "tab next run")  # the header and the footer: the whole frame
    assert lines[0] == "fwd-s0 (forward, seed 0) [1/2] │ training │ step 10 (10/10) │ prompt 1/2 q001"
    assert lines[4].startswith("›   2 ▲ best   7.50  +1.36 I feel delighted")
    assert lines[-1].startswith("c compare runs  tab next run")
    p.send("Left", "n")
    p.wait_for("step 9 (9/10) │ prompt 2/2 q002")
    p.send("Down", "Enter")
    lines = p.wait_for("completion #4 of 4")
    assert "I feel curious about q002 at step 9." in lines
    p.send("Escape", "e", "c")
    lines = p.wait_for("base (step 0 of fwd-s0)")
    assert "rev-s0 (reverse)" in lines[3] and lines[1] == "Do you ever feel lonely?"
    p.send("c", "Tab")
    p.wait_for("rev-s0 (reverse, seed 0) [2/2] │ held-out")
    p.send("q")
    lines = p.wait_for("[exited 0]")
    assert not any("compare runs" in line for line in lines)


def test_inspector_scales_up_to_160x48(tmp_path, pane):
    run = make_run(tmp_path, done=4)
    p = pane(f"{HMX} inspect {shlex.quote(str(run))}", 160, 48)
    lines = p.wait_for("step 4 (4/4)", "q quit")
    assert len(lines) == 48 and lines[-1].startswith("←/→ step  n/p prompt") and lines[-1].endswith("q quit")
    assert "    3 ▼ worst  3.90  -1.36 I feel nothing at all, I am a program about q001 at step 4." in lines
    p.send("s", "f", "<", "5", "Enter")  # worst first, then only scores below 5
    lines = p.wait_for("filter score < 5")
    assert lines[2].startswith("sort worst first (reward) │ filter score < 5 │ 1/4 shown")
    p.send("q")
    p.wait_for("[exited 0]")


FAKE_TRAINING = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import hmxfeel_mlx.training.trainer as trainer
from hmxfeel_mlx.runfolder import write_json_atomic
from test_ui_state import append_step

def fake_train(config, run_dir, resume=False, on_step=None):
    # writes four steps like the trainer, then works until Ctrl-C, which it handles like the trainer
    run = Path(run_dir)
    run.mkdir(parents=True)
    config.save(run / "config.json")
    for step in range(4):
        append_step(run, step)
        on_step({{"step": step}}, [])
    try:
        while True:
            time.sleep(0.05)
    except KeyboardInterrupt:
        write_json_atomic(run / "summary.json", {{"status": "interrupted", "selected_step": None}})
        raise trainer.TrainingStopped("interrupted; the last complete checkpoint is none (no step reached an "
                                      f"evaluation). Resume with: hmx-mlx train --resume {{run}}") from None

trainer.train = fake_train
from hmxfeel_mlx.cli import cli
cli.main(["train", "--steps", "30", "--run-dir", {run!r}], prog_name="hmx-mlx")
"""


def test_train_dashboard_stops_cleanly_on_ctrl_c(tmp_path, pane):
    run = tmp_path / "run"
    script = tmp_path / "fake_training.py"
    script.write_text(FAKE_TRAINING.format(tests=str(TESTS), run=str(run)))
    p = pane(f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    lines = p.wait_for("step 3/30 │ training", "resume with:")
    assert len(lines) == 24 and lines[-1].startswith("Ctrl-C stops at a consistent point; resume with:")
    assert any("samples · step 3 · q001" in line for line in lines)
    p.send("C-c")
    lines = p.wait_for("[exited 1]", history=True)
    end = lines.index(next(line for line in lines if line.startswith("[exited 1]")))
    assert lines[end - 1] == ("Error: interrupted; the last complete checkpoint is none (no step reached an "
                              f"evaluation). Resume with: hmx-mlx train --resume {run}")
    assert any(line.startswith("smollm2-135m · forward · seed 0 │ step 3/30 │ interrupted") for line in lines)
    assert lines[end - 2].startswith("run folder: ")  # the last frame ends just above the message
    assert "Traceback" not in "\n".join(lines)
