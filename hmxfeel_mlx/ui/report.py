"""`hmx-mlx report RUN_OR_EVAL...`: each run's reward curve and selected checkpoint, next to
the comparison table of its evaluations (``evals.compare``), on one screen.

A run folder contributes its curve and its newest evaluation (RUN/evals/*.json, as
`hmx-mlx compare` reads it); an evaluation JSON contributes itself and, when its
run folder is still there, that run's curve. ``--export`` saves what the terminal
showed, through Rich's recording console.

An experiment folder (written by `hmx-mlx replicate`, given alone) shows its runs and
its evaluations the same way; ``--export FILE.html`` then writes the experiment's own
page instead (``report_html.write_report``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..errors import HmxError
from ..evals.compare import compare, find_eval, print_table, read_eval
from .experiment_state import is_experiment, read_experiment
from .report_html import write_report
from .state import RunState, open_run
from .views import heldout_lines, reward_chart, reward_legend

EXPORTS = (".html", ".svg")
CHART_ROWS = 9


@dataclass
class ReportInputs:
    runs: list[RunState] = field(default_factory=list)
    evals: list[tuple[Path, dict]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _is_run(path: Path) -> bool:
    return path.is_dir() and (path / "config.json").is_file() and (path / "metrics.jsonl").is_file()


def _run_of_eval(path: Path, rec: dict) -> Path | None:
    """The run folder an evaluation came from, when it still exists (as recorded, or RUN/evals/x.json)."""
    for candidate in ([Path(rec["run"])] if rec.get("run") else []) + [path.resolve().parent.parent]:
        if _is_run(candidate):
            return candidate
    return None


def collect(args: list[str]) -> ReportInputs:
    """Runs and evaluations named on the command line (HmxError for anything else)."""
    if not args:
        raise HmxError("report needs at least one run folder or evaluation JSON.")
    out = ReportInputs()
    runs: dict[Path, Path] = {}
    evals: dict[Path, dict] = {}
    unevaluated: dict[Path, str] = {}  # run folders given without an evaluation of theirs
    for arg in args:
        path = Path(arg)
        if not path.exists():
            raise HmxError(f"{arg} not found. Pass run folders (written by `hmx-mlx train`) or evaluation JSON "
                           "files (written by `hmx-mlx eval`).")
        if path.is_dir():
            if not _is_run(path):
                raise HmxError(f"{arg} is not a run folder (it needs config.json and metrics.jsonl). Pass a folder "
                               "written by `hmx-mlx train`, an evaluation JSON, or an experiment folder "
                               "(with experiment.json) alone.")
            runs.setdefault(path.resolve(), path)
            try:
                found = find_eval(path)
            except HmxError:
                unevaluated[path.resolve()] = arg
                continue
            evals.setdefault(found.resolve(), read_eval(found))
        else:
            rec = read_eval(path)  # names the file and the fix when it is not an evaluation
            evals.setdefault(path.resolve(), rec)
            run = _run_of_eval(path, rec)
            if run is not None:
                runs.setdefault(run.resolve(), run)
            elif rec.get("run"):
                out.notes.append(f"the run folder {rec['run']} of {arg} is not here; its curve is not shown")
    evaluated = {run.resolve() for p, rec in evals.items() if (run := _run_of_eval(p, rec)) is not None}
    for run, arg in unevaluated.items():
        if run not in evaluated:
            out.notes.append(f"{arg} has no evaluation yet: `hmx-mlx eval {arg}` adds it to the table")
    out.runs = [open_run(p).state for p in runs.values()]
    out.evals = list(evals.items())
    return out


def experiment_inputs(root: Path) -> ReportInputs:
    """An experiment's run folders and evaluation files, for the terminal report."""
    exp = read_experiment(root)
    runs = [r.state for r in exp.runs if r.state is not None]
    evals = ([exp.base_eval] if exp.base_eval else []) + list(exp.evals.values())
    if not runs and not evals:
        raise HmxError(f"{root} has no run folder or evaluation yet. Wait for `hmx-mlx replicate` to train, "
                       "or pass run folders and evaluation files.")
    return ReportInputs(runs, evals, list(exp.problems))


def run_panel(state: RunState) -> Panel:
    """One run: reward curve with threshold and selected checkpoint, and the held-out numbers."""
    c = state.config
    chart = reward_chart(state, height=CHART_ROWS)
    status = state.status if state.status != "starting" else "no step yet"
    body = Group(chart, reward_legend(state), *heldout_lines(state))
    steps = f"step {state.last_step}/{state.total_steps}" if state.last_step is not None else "no step"
    return Panel(body, title=f"{state.name} · {c.get('direction', '?')} · seed {c.get('seed', '?')}",
                 subtitle=f"{steps} · {status}", title_align="left", subtitle_align="right")


def runs_grid(runs: list[RunState], width: int) -> Table:
    """The run panels, as many side by side as fit (about 50 columns each)."""
    per_row = max(1, min(len(runs), width // 50))
    grid = Table.grid(expand=True, padding=(0, 1))
    for _ in range(per_row):
        grid.add_column(ratio=1)
    panels = [run_panel(r) for r in runs]
    for i in range(0, len(panels), per_row):
        row = panels[i: i + per_row]
        grid.add_row(*row, *[""] * (per_row - len(row)))
    return grid


def print_report(inputs: ReportInputs, console: Console, threshold_rel: float = 0.02) -> None:
    names = ", ".join(r.name for r in inputs.runs) or "no run folder"
    console.print(Text.assemble(("hmx-mlx report", "bold"), f" · {names} · {len(inputs.evals)} evaluation(s)"))
    if inputs.runs:
        console.print(runs_grid(inputs.runs, console.width))
    if inputs.evals:
        print_table(compare(inputs.evals, threshold=threshold_rel), console)
    else:
        console.print("no evaluation among the arguments: run `hmx-mlx eval RUN` to add the comparison table",
                      style="yellow")
    for note in inputs.notes:
        console.print(f"note: {note}", style="dim")


def report(args: list[str], export: str | None = None, width: int | None = None, threshold: float = 0.02,
           console: Console | None = None) -> None:
    """`hmx-mlx report`: print the report; with ``export``, save what was printed (.html or .svg)."""
    if export and Path(export).suffix.lower() not in EXPORTS:
        raise HmxError(f"--export {export}: the file must end in .html or .svg (Rich's export formats).")
    if any(is_experiment(Path(a)) for a in args):
        if len(args) > 1:
            raise HmxError("an experiment folder is reported alone: pass only it, or run folders and evaluation "
                           "files without it.")
        if export and Path(export).suffix.lower() == ".html":
            console = console or Console()
            console.print(f"saved {write_report(args[0], export)}", style="dim", soft_wrap=True)
            return
        inputs = experiment_inputs(Path(args[0]))
    else:
        inputs = collect(args)
    if console is None:
        console = Console(record=bool(export), width=width)
        if width is None and not console.is_terminal:
            console = Console(record=bool(export), width=160)  # piped: do not wrap at 80
    print_report(inputs, console, threshold)
    if export:
        path = Path(export)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".svg":
            console.save_svg(str(path), title="hmx-mlx report")
        else:
            console.save_html(str(path))
        console.print(f"saved {path}", style="dim")  # after the export: not part of it
