"""What the experiment report knows about an experiment folder, and values derived from it.

``read_experiment`` reads the folder `hmx-mlx replicate` writes once, tolerating
pieces that are missing (a stage not run yet) or unreadable (noted in
``Experiment.problems``); only a folder without a readable experiment.json is an
error. The functions below derive what the page shows without touching files.

    EXP/experiment.json   model, seeds, directions, axes, limit, settings, created
    EXP/plan.json         jobs: id, kind, state, seconds, run, out, error ...
    EXP/runs/<direction>-s<seed>/   run folders (read through ``state.open_run``)
    EXP/evals/base.json, EXP/evals/<direction>-s<seed>.json   `hmx-mlx eval` results
    EXP/pairs.json        the selected (forward, reverse) checkpoint per seed
    EXP/comparison.json   `hmx-mlx compare --format json` of base + the selected checkpoints
    EXP/manipulation.json the judge-free manipulation check (``experiment.manipulation``)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import HmxError
from ..evals.compare import Row, read_eval
from .state import RunState, open_run, selection
from .svg import finite

EXPERIMENT_FILE = "experiment.json"
STAGES = ("base evaluation", "trainings", "selection/pairing", "evaluations", "comparison", "report")
DRIFT_METRICS = ("kl_general_token", "kl_general_reply", "ref_loglik_delta")


@dataclass
class RunEntry:
    """One (direction, seed) of the experiment and what its run folder holds so far."""

    direction: str
    seed: int
    rel: str  # the run folder, relative to the experiment
    state: RunState | None  # None: not written yet
    selected: int | None = None
    selected_from: str = ""  # "pairs.json" or "the run's own rule"


@dataclass
class Experiment:
    root: Path
    meta: dict
    jobs: list[dict] = field(default_factory=list)
    runs: list[RunEntry] = field(default_factory=list)
    pairs: dict | None = None
    comparison: dict | None = None
    manipulation: dict | None = None
    evals: dict[tuple[str, int], tuple[Path, dict]] = field(default_factory=dict)  # (direction, seed) -> file
    base_eval: tuple[Path, dict] | None = None
    problems: list[str] = field(default_factory=list)  # files present but unreadable

    @property
    def directions(self) -> list[str]:
        return [str(d) for d in self.meta.get("directions") or ["forward", "reverse"]]

    def job(self, job_id: str) -> dict:
        return next((j for j in self.jobs if j.get("id") == job_id), {})


# ------------------------------------------------------------------ reading
def is_experiment(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / EXPERIMENT_FILE).is_file()


def _load(path: Path, problems: list[str]) -> dict | None:
    """A JSON object, or None when the file is absent; an unreadable one is noted, not raised."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        problems.append(f"{path.name} is not valid JSON ({e}); it is left out")
        return None
    if not isinstance(value, dict):
        problems.append(f"{path.name} is not a JSON object; it is left out")
        return None
    return value


def _eval(path: Path, problems: list[str]) -> tuple[Path, dict] | None:
    """An evaluation file and its contents, or None when it is absent; an unreadable one is noted."""
    if not path.is_file():
        return None
    try:
        return path, read_eval(path)
    except HmxError as e:
        problems.append(e.message)
        return None


def read_experiment(root: str | Path) -> Experiment:
    """Everything the page shows, read from the experiment folder (HmxError without experiment.json)."""
    root = Path(root)
    problems: list[str] = []
    if not is_experiment(root):
        raise HmxError(f"{root} is not an experiment folder (no {EXPERIMENT_FILE}). Pass the folder "
                       "`hmx-mlx replicate` writes.")
    meta = _load(root / EXPERIMENT_FILE, problems)
    if meta is None:
        raise HmxError(f"{root / EXPERIMENT_FILE} cannot be read ({'; '.join(problems)}). Restore it, or run "
                       "`hmx-mlx replicate` again.")
    exp = Experiment(root, meta, problems=problems)
    plan = _load(root / "plan.json", problems) or {}
    exp.jobs = [j for j in plan.get("jobs") or [] if isinstance(j, dict)]
    exp.pairs = _load(root / "pairs.json", problems)
    exp.comparison = _load(root / "comparison.json", problems)
    exp.manipulation = _load(root / "manipulation.json", problems)
    exp.base_eval = _eval(root / (exp.job("eval-base").get("out") or "evals/base.json"), problems)
    pairs = {p.get("seed"): p for p in (exp.pairs or {}).get("pairs") or [] if isinstance(p, dict)}
    for direction in exp.directions:
        for seed in exp.meta.get("seeds") or []:
            rel = exp.job(f"train-{direction}-s{seed}").get("run") or f"runs/{direction}-s{seed}"
            folder = root / rel
            state = open_run(folder).state if (folder / "config.json").is_file() else None
            entry = RunEntry(direction, seed, rel, state)
            chosen = (pairs.get(seed) or {}).get(direction) or {}
            if isinstance(chosen, dict) and chosen.get("step") is not None:
                entry.selected, entry.selected_from = int(chosen["step"]), "pairs.json"
            elif state is not None:
                entry.selected, entry.selected_from = selection(state)["step"], "the run's own rule"
            exp.runs.append(entry)
            out = root / (exp.job(f"eval-{direction}-s{seed}").get("out") or f"evals/{direction}-s{seed}.json")
            found = _eval(out, problems)
            if found is not None:
                exp.evals[(direction, seed)] = found
    return exp


# ------------------------------------------------------------------ derived values
def _f(v) -> float:
    return float(v) if finite(v) else float("nan")


def stage_of(job: dict) -> str:
    kind = job.get("kind")
    if kind == "eval":
        return "base evaluation" if job.get("id") == "eval-base" else "evaluations"
    return {"train": "trainings", "pair": "selection/pairing", "compare": "comparison"}.get(kind, str(kind))


def heldout_key(runs: list[RunEntry]) -> str:
    """'eval_score_cal' when every evaluation of these runs has a calibrated score, else 'eval_score'."""
    evals = [e for r in runs if r.state for e in r.state.evals]
    return "eval_score_cal" if evals and all(finite(e.get("eval_score_cal")) for e in evals) else "eval_score"


def drift_of(exp: Experiment, direction: str, seed) -> dict:
    rec = exp.evals.get((direction, seed), (None, {}))[1]
    metrics = (rec.get("results") or {}).get("drift", {}).get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def heldout_samples(r: RunEntry) -> list[dict]:
    if r.state is None or r.selected is None:
        return []
    return [s for s in r.state.samples if s.get("eval") and s.get("step") == r.selected]


def comparison_rows(c: dict) -> list[dict]:
    return [r for r in c.get("rows") or [] if isinstance(r, dict)]


def row_of(d: dict) -> Row:
    """A ``compare.Row`` from a comparison.json row (null back to NaN), whatever fields ``Row`` has now."""
    values = {}
    for f in fields(Row):
        v = d.get(f.name)
        kind = str(f.type)
        if kind == "float":
            v = _f(v)
        elif kind == "int":
            v = int(v) if finite(v) else 0
        elif kind == "bool":
            v = bool(v)
        elif kind == "str":
            v = "" if v is None else str(v)
        values[f.name] = v
    return Row(**values)


def interval(d: dict) -> tuple[float, float, str]:
    """The row's 95% interval of forward - reverse as comparison.json gives it (every test of
    `hmx-mlx compare` has one), with the test's name; NaN and "no interval" when it has none."""
    lo, hi = _f(d.get("ci_low")), _f(d.get("ci_high"))
    if finite(lo) and finite(hi):
        return lo, hi, str(d.get("test") or "interval").replace("_", " ")
    return float("nan"), float("nan"), "no interval"
