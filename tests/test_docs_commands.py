"""Every `hmx-mlx ...` command in README.md, docs/*.md and the Makefile exists and parses
(``tools/doc_commands.py``), and the cheap ones run for real.

The real runs happen in a sandbox folder holding what the documented commands read: a run
folder for every run they name, an evaluation file for every one they name that a documented
`eval` writes (its --out, or the name `eval` gives by default), and an experiment for `EXP` and
for every folder a documented `replicate` writes. A command that names a file no documented
command writes fails here, as it would for a reader following the documentation.
"""

from __future__ import annotations

import glob
import json
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from hmxfeel_mlx.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import doc_commands as D  # noqa: E402

COMMANDS = D.documented_commands()
# What runs for real: commands that read run folders, evaluations and experiments, or only the
# machine, and `train` up to its resolved configuration (--print-config).
REAL = {("watch",), ("inspect",), ("report",), ("compare",), ("models",), ("doctor",), ("data", "list"), ("train",)}
STAMP = time.mktime((2025, 1, 1, 12, 0, 0, 0, 1, -1))  # the time in default evaluation file names


def names_of(cmd: D.DocCommand) -> tuple[str, ...]:
    return tuple(D.resolve(cli, cmd.argv)[2])


def params_of(cmd: D.DocCommand) -> dict:
    command, rest, names = D.resolve(cli, cmd.argv)
    return command.make_context(" ".join(names), list(rest)).params


REAL_COMMANDS = [c for c in COMMANDS if c.kind == "block" and names_of(c) in REAL and "..." not in c.argv]


def test_the_documentation_has_commands_to_check():
    kinds = {names_of(c)[:1] for c in COMMANDS}
    assert len(COMMANDS) > 50 and {("train",), ("eval",), ("compare",), ("watch",), ("replicate",)} <= kinds
    assert len(REAL_COMMANDS) > 15


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.source for c in COMMANDS])
def test_documented_command_exists_and_parses(cmd):
    problem = D.check(cmd)
    assert problem is None, f"{cmd}\n  {problem}"


def test_the_check_finds_a_missing_command_a_missing_option_and_a_bad_value():
    text = "\n".join([
        "```bash", "hmx-mlx frobnicate runs/x", "hmx-mlx train --no-such-flag", "hmx-mlx eval m --axes mmlu,nope",
        "hmx-mlx watch", "hmx-mlx compare a.json \\", "    --format yaml", "hmx-mlx data pull mmlu  # fine", "```",
        "```text", "hmx-mlx shown-output-not-a-command", "```",
        "Inline: `hmx-mlx inspect RUN --sort` and `hmx-mlx generate --adapter` and `hmx-mlx`.",
        "    hmx-mlx report EXP --width 10"])
    found = D.markdown_commands(text, "x.md")
    assert [c.source for c in found] == ["x.md:2", "x.md:3", "x.md:4", "x.md:5", "x.md:6", "x.md:8", "x.md:13",
                                         "x.md:13", "x.md:13", "x.md:14"]
    problems = [D.check(c) for c in found]
    assert problems[0] == "no such command: hmx-mlx frobnicate"
    assert "No such option '--no-such-flag'" in problems[1]
    assert problems[2].startswith("--axes mmlu,nope: unknown axis 'nope'")
    assert "Missing argument 'RUN'" in problems[3]
    assert "'yaml' is not one of" in problems[4] and found[4].argv[-2:] == ["--format", "yaml"]
    assert problems[5] is None  # a comment is not an argument
    assert problems[6] == "hmx-mlx inspect has no option --sort"  # an inline reference: its options must exist
    assert problems[7] is None and problems[8] is None  # a reference to an option, the tool's name
    assert "10 is not in the range x>=60" in problems[9]  # an indented code block is a command to type


def test_makefile_recipes_are_checked():
    found = D.makefile_commands("demo: setup\n\t$(VENV)/bin/hmx-mlx train smollm2-135m --stepz 4\n", "Makefile")
    assert [c.argv for c in found] == [["train", "smollm2-135m", "--stepz", "4"]]
    assert "No such option '--stepz'" in D.check(found[0])


# --------------------------------------------------------------------------- the cheap commands, for real


def _direction(name: str) -> str:
    return "reverse" if "rev" in Path(name).name else "forward"


def _written_evaluations() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The evaluation files documented `eval` commands write: {path: condition}, and the run
    targets they evaluate (their files go to RUN/evals/)."""
    from hmxfeel_mlx.evals.runner import default_out
    from hmxfeel_mlx.targets import Target

    files, runs = {}, []
    for c in COMMANDS:
        if names_of(c) != ("eval",):
            continue
        try:
            p = params_of(c)
        except click.ClickException:  # a reference without its arguments ("`hmx-mlx eval`")
            continue
        looks_like_run = "/" in p["target"]
        condition = _direction(p["target"]) if looks_like_run else "base"
        if p["out"]:
            files[p["out"]] = condition
        elif looks_like_run:
            runs.append((p["target"], condition))
        else:
            files[str(default_out(Target(model=p["target"]), STAMP))] = "base"
    return files, runs


def _experiments() -> set[str]:
    from hmxfeel_mlx.experiment.commands import default_out

    found = {"EXP", "EXPERIMENT"}
    for c in COMMANDS:
        if c.kind == "block" and names_of(c) == ("replicate",):
            p = params_of(c)
            found.add(p["out"] or str(default_out(p["model"])))
    return found


def _read_paths(cmd: D.DocCommand) -> list[str]:
    p = params_of(cmd)
    names = names_of(cmd)
    if names == ("watch",):
        return [p["run"]]
    if names in (("inspect",),):
        return list(p["runs"])
    if names in (("report",), ("compare",)):
        return list(p["targets"])
    if names == ("train",) and p.get("resume"):
        return [p["resume"]]
    return []


def build_sandbox(root: Path, commands: list[D.DocCommand]) -> dict[str, str]:
    """Fill ``root`` with what ``commands`` read (see the module doc); return the problems found
    ({path: message} for a file no documented command writes)."""
    from hmxfeel_mlx.evals.runner import default_out
    from hmxfeel_mlx.targets import Target
    from test_ui_report import write_eval
    from test_ui_report_html import make_experiment
    from test_ui_state import make_run

    evaluations, evaluated_runs = _written_evaluations()
    experiments = _experiments()
    problems: dict[str, str] = {}
    runs: dict[str, str] = {}
    for cmd in commands:
        for path in _read_paths(cmd):
            if glob.has_magic(path):
                continue
            if path in experiments:
                if not (root / path).exists():
                    make_experiment(root / path, seeds=(0,))
                    plan = json.loads((root / path / "plan.json").read_text())
                    for job in plan["jobs"]:  # a finished experiment: `watch` follows it to its end
                        job["state"] = "done"
                    (root / path / "plan.json").write_text(json.dumps(plan))
            elif path.endswith(".json"):
                if path not in evaluations:
                    problems[path] = (f"{cmd}\n  reads {path}, which no documented command writes (`hmx-mlx eval` "
                                      "writes RUN/evals/<checkpoint>-<time>.json, runs/evals/<model>-<time>.json, "
                                      "or its --out)")
            else:
                runs[path] = _direction(path)
    runs.update({r: d for r, d in evaluated_runs})
    for path, direction in runs.items():
        folder = root / path
        if not folder.exists():
            make_run(folder.parent, name=folder.name, direction=direction, done=30, status="finished")
        target = Target(model="smollm2-135m", adapter=folder / "checkpoints" / "step_25", run=folder)
        write_eval(root / default_out(target, STAMP), direction, folder, 0.6, [1, 1, 0, 1])
    for path, condition in evaluations.items():
        write_eval(root / path, condition, None, 0.5, [1, 0, 0, 1])
    return problems


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs")
    return root, build_sandbox(root, REAL_COMMANDS)


def _expand(argv: list[str], root: Path) -> list[str]:
    """What the shell passes: globs matched in ``root`` (sorted; kept as written when nothing matches)."""
    out = []
    for arg in argv:
        matches = sorted(str(Path(m)) for m in glob.glob(arg, root_dir=root)) if glob.has_magic(arg) else []
        out += matches or [arg]
    return out


def _no_waiting(*_):
    raise AssertionError("the command waits for more output: a documented real run must end by itself")


@pytest.mark.parametrize("cmd", REAL_COMMANDS, ids=[c.source for c in REAL_COMMANDS])
def test_cheap_documented_command_runs(cmd, sandbox, monkeypatch):
    root, problems = sandbox
    for path in _read_paths(cmd):
        assert path not in problems, problems[path]
    monkeypatch.chdir(root)
    monkeypatch.setattr(time, "sleep", _no_waiting)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = _expand(cmd.argv, root)
    if names_of(cmd) == ("train",):
        argv.append("--print-config")  # the real command, up to the configuration it would train with
    result = CliRunner().invoke(cli, argv, env={"COLUMNS": "120", "LINES": "40"})
    assert result.exit_code == 0, f"{cmd}\n{result.output}"
    assert "Traceback" not in result.output
    params = params_of(cmd)
    for written in (params.get("export"), params.get("out") if names_of(cmd) == ("compare",) else None):
        if written:
            assert (root / written).is_file(), f"{cmd}: {written} was not written"


def test_a_command_that_names_an_unwritten_file_is_reported(tmp_path):
    """README.md once compared `runs/base-eval.json`, a file no documented command writes."""
    text = "```bash\nhmx-mlx compare runs/base-eval.json runs/fwd-s0\nhmx-mlx watch EXP --once\n```\n"
    problems = build_sandbox(tmp_path, D.markdown_commands(text, "x.md"))
    assert list(problems) == ["runs/base-eval.json"] and "no documented command writes" in problems["runs/base-eval.json"]
    assert (tmp_path / "runs" / "fwd-s0" / "config.json").is_file()  # a run folder it names is made
    assert (tmp_path / "EXP" / "experiment.json").is_file()  # and the experiment
    assert list((tmp_path / "runs" / "fwd-s0" / "evals").glob("step_25-*.json"))  # with an evaluation in it
