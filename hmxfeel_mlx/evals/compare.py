"""`hmx-mlx compare`: base vs forward (human-like) vs reverse (machine-like) evaluations.

Evaluations are grouped by model, then by condition (a run's config.json
``direction``; a plain model is "base"). Per axis metric (those with a
``metric_specs`` entry): the base value (mean if several base evaluations), the
forward and reverse mean ± sample std over runs (= training seeds; a run given
twice, e.g. as two evaluation files, counts once with its newest evaluation), the
difference forward - reverse with a test, and the relative change
(forward - reverse) / |reverse| (``stats.relative_change``).

Test: Welch's t-test over the per-seed values when both sides have >= 2
evaluations; otherwise a 95% percentile bootstrap interval of the difference of
per-item means (``stats.bootstrap_diff_ci``, seed 0), the items of each side's
evaluations pooled, for metrics that are a mean of a per-item record field
(``MetricSpec.item_field``); none for the others (F1, BBQ s_amb). Significant:
p < 0.05, or an interval that excludes 0.

Headline (``stats.headline_share``): over the metrics marked ``headline``, the
share that improved or degraded by less than ``threshold`` (2%) relative,
forward vs reverse, signed by each metric's ``higher_is_better``, and the
largest degradation.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import HmxError
from . import stats
from .axes import AXIS_ORDER, EVAL_SCHEMA, clean

CONDITIONS = ("base", "forward", "reverse")


@dataclass
class Row:
    model: str
    axis: str
    metric: str
    higher_is_better: bool
    headline: bool
    base: float
    forward_mean: float
    forward_std: float
    forward_n: int
    reverse_mean: float
    reverse_std: float
    reverse_n: int
    diff: float
    test: str  # "welch", "bootstrap" or "" (none possible)
    p_value: float
    ci_low: float
    ci_high: float
    significant: bool | None
    relative_change: float


@dataclass
class Comparison:
    rows: list[Row]
    headlines: dict[str, dict]  # model -> stats.headline_share(...)
    evaluations: dict[str, dict[str, list[str]]]  # model -> condition -> eval files
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return clean({"rows": [asdict(r) for r in self.rows], "headlines": self.headlines,
                      "evaluations": self.evaluations, "notes": self.notes})


# ---------------------------------------------------------------------- input
def read_eval(path: Path) -> dict:
    """An evaluation JSON written by `hmx-mlx eval` (HmxError naming the file otherwise)."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HmxError(f"evaluation file not found: {path}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HmxError(f"{path} is not valid JSON ({e}). Pass a file written by `hmx-mlx eval`.") from None
    if not isinstance(rec, dict) or rec.get("schema") != EVAL_SCHEMA or not isinstance(rec.get("results"), dict):
        raise HmxError(f"{path} is not an evaluation result (expected schema {EVAL_SCHEMA!r} with 'results'). "
                       "Pass a file written by `hmx-mlx eval`, or a run folder.")
    return rec


def find_eval(arg: str | Path) -> Path:
    """An evaluation JSON itself, or a run folder's newest evaluation (RUN/evals/*.json;
    complete ones preferred, newest by ``created_unix``)."""
    path = Path(arg)
    if path.is_file():
        return path
    if not path.is_dir():
        raise HmxError(f"{arg} is neither an evaluation JSON nor a run folder.")
    found = []
    for f in sorted((path / "evals").glob("*.json")):
        try:
            rec = read_eval(f)
        except HmxError:
            continue  # other JSON files in evals/ are not ours
        found.append((rec.get("status") == "complete", rec.get("created_unix") or f.stat().st_mtime, f))
    if not found:
        raise HmxError(f"no evaluation under {path / 'evals'}. Run `hmx-mlx eval {arg}` first, or pass an "
                       "evaluation JSON.")
    return max(found)[2]


# ----------------------------------------------------------------- computing
def _f(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _metric(rec: dict, axis: str, metric: str) -> float:
    return _f(rec["results"].get(axis, {}).get("metrics", {}).get(metric))


def _items(recs: Sequence[dict], axis: str, field_name: str) -> list[float]:
    return [_f(r.get(field_name)) for rec in recs for r in rec["results"].get(axis, {}).get("records", [])
            if isinstance(r, dict)]


def _group(evals: Sequence[tuple[Path, dict]], notes: list[str]) -> dict[str, dict[str, list[tuple[Path, dict]]]]:
    groups: dict[str, dict[str, list]] = {}
    for path, rec in evals:
        cond = rec.get("condition", "base")
        if cond not in CONDITIONS:
            raise HmxError(f"{path}: unknown condition {cond!r} (expected one of {', '.join(CONDITIONS)}).")
        groups.setdefault(str(rec.get("model")), {c: [] for c in CONDITIONS})[cond].append((path, rec))
    for model, by in groups.items():
        for cond in ("forward", "reverse"):  # a run is one seed: its newest evaluation counts, once
            newest: dict[Any, tuple] = {}
            for path, rec in by[cond]:
                key = rec.get("run") or str(path)
                if key in newest:
                    notes.append(f"{model} {cond}: run {key} was given more than once; its newest evaluation is used")
                if key not in newest or _f(rec.get("created_unix")) > _f(newest[key][1].get("created_unix")):
                    newest[key] = (path, rec)
            by[cond] = list(newest.values())
        all_recs = [rec for c in CONDITIONS for _, rec in by[c]]
        for what in ("limit", "seed", "data_files"):
            if len({json.dumps(r.get(what), sort_keys=True) for r in all_recs}) > 1:
                notes.append(f"{model}: the evaluations differ in {what}; compare with care")
        if len(by["base"]) > 1:
            notes.append(f"{model}: {len(by['base'])} base evaluations; their mean is the base value")
        if any(r.get("status") != "complete" for r in all_recs):
            notes.append(f"{model}: some evaluations are partial (interrupted); missing axes count as absent")
    return groups


def _row(model: str, axis: str, metric: str, spec: dict, by: dict, n_boot: int) -> Row:
    base = [_metric(r, axis, metric) for _, r in by["base"]]
    fwd = [_metric(r, axis, metric) for _, r in by["forward"]]
    rev = [_metric(r, axis, metric) for _, r in by["reverse"]]
    bm, _ = stats.mean_std(base)
    fm, fs = stats.mean_std(fwd)
    rm, rs = stats.mean_std(rev)
    nf, nr = sum(not math.isnan(v) for v in fwd), sum(not math.isnan(v) for v in rev)
    diff = fm - rm
    test, p, lo, hi, sig = "", float("nan"), float("nan"), float("nan"), None
    if nf >= 2 and nr >= 2:
        test = "welch"
        _, _, p = stats.welch_t_test(fwd, rev)
        sig = None if math.isnan(p) else p < 0.05
    elif nf >= 1 and nr >= 1 and spec.get("item_field"):
        f_items = _items([r for _, r in by["forward"]], axis, spec["item_field"])
        r_items = _items([r for _, r in by["reverse"]], axis, spec["item_field"])
        lo, hi = stats.bootstrap_diff_ci(f_items, r_items, n_boot=n_boot, seed=0)
        if not math.isnan(lo):
            test, sig = "bootstrap", lo > 0 or hi < 0
    return Row(model, axis, metric, bool(spec.get("higher_is_better", True)), bool(spec.get("headline", False)),
               bm, fm, fs, nf, rm, rs, nr, diff, test, p, lo, hi, sig, stats.relative_change(fm, rm))


def compare(evals: Sequence[tuple[Path, dict]], threshold: float = 0.02, n_boot: int = 5000) -> Comparison:
    """Rows for every (model, axis, metric with a spec) and a headline per model."""
    notes: list[str] = []
    groups = _group(evals, notes)
    rows: list[Row] = []
    headlines: dict[str, dict] = {}
    for model, by in groups.items():
        recs = [rec for c in CONDITIONS for _, rec in by[c]]
        axes = sorted({a for rec in recs for a in rec["results"]},
                      key=lambda a: (AXIS_ORDER.index(a) if a in AXIS_ORDER else len(AXIS_ORDER), a))
        model_rows = []
        for axis in axes:
            specs: dict[str, dict] = {}
            for rec in recs:
                for name, spec in rec["results"].get(axis, {}).get("metric_specs", {}).items():
                    specs.setdefault(name, spec)
            model_rows += [_row(model, axis, m, s, by, n_boot) for m, s in specs.items()]
        rows += model_rows
        if by["forward"] and by["reverse"]:
            headlines[model] = stats.headline_share(
                [(f"{r.axis}/{r.metric}", r.relative_change, r.higher_is_better) for r in model_rows if r.headline],
                threshold)
    evaluations = {m: {c: [str(p) for p, _ in by[c]] for c in CONDITIONS} for m, by in groups.items()}
    return Comparison(rows, headlines, evaluations, notes)


def compare_paths(args: Sequence[str | Path], threshold: float = 0.02, n_boot: int = 5000) -> Comparison:
    """``compare`` on evaluation files and run folders (a run = its newest evaluation)."""
    if not args:
        raise HmxError("compare needs at least one run folder or evaluation JSON.")
    paths = [find_eval(a) for a in args]
    return compare([(p, read_eval(p)) for p in dict.fromkeys(paths)], threshold, n_boot)


# ---------------------------------------------------------------- formatting
def _num(v: float) -> str:
    return "—" if v is None or math.isnan(v) else f"{v:.3f}"


def _mean_std(m: float, s: float, n: int) -> str:
    """Mean ± std over seeds; one seed has no spread to show."""
    if n == 0:
        return "—"
    return f"{m:.3f} (n=1)" if n == 1 else f"{m:.3f} ± {s:.3f} (n={n})"


def _test(r: Row) -> str:
    star = " *" if r.significant else ""
    if r.test == "welch":
        return "Welch: no variance" if math.isnan(r.p_value) else f"Welch p={r.p_value:.3g}{star}"
    if r.test == "bootstrap":
        return f"95% CI [{r.ci_low:+.3f}, {r.ci_high:+.3f}]{star}"
    return "—"


def _rel(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:+.1%}"


HEADERS = ["axis", "metric", "better", "base", "forward", "reverse", "fwd − rev", "test", "rel. change"]


def table_cells(r: Row) -> list[str]:
    better = ("↑" if r.higher_is_better else "↓") + ("" if r.headline else " (info)")
    return [r.axis, r.metric, better, _num(r.base), _mean_std(r.forward_mean, r.forward_std, r.forward_n),
            _mean_std(r.reverse_mean, r.reverse_std, r.reverse_n), _num(r.diff) if not math.isnan(r.diff) else "—",
            _test(r), _rel(r.relative_change)]


def headline_text(h: dict) -> str:
    if not h or not h.get("n"):
        return "headline: no headline metric has both a forward and a reverse value"
    worst = h["largest_degradation"]
    worst_s = f"{worst[0]} ({worst[1]:+.1%})" if worst else "none"
    return (f"headline: {h['n_ok']} of {h['n']} metrics ({h['share_ok']:.0%}) improved or degraded by less than "
            f"{h['threshold']:.0%} (forward vs reverse, relative); {h['share_improved']:.0%} improved; "
            f"largest degradation: {worst_s}")


def to_markdown(c: Comparison) -> str:
    out = []
    for model in c.evaluations:
        out += [f"### {model}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(table_cells(r)) + " |" for r in c.rows if r.model == model]
        out += ["", headline_text(c.headlines.get(model, {})), ""]
    out += [f"- note: {n}" for n in c.notes]
    return "\n".join(out).rstrip() + "\n"


def to_csv(c: Comparison) -> str:
    buf = io.StringIO()
    names = list(Row.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in c.rows:
        w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(r).items()})
    return buf.getvalue()


def to_json(c: Comparison) -> str:
    return json.dumps(c.to_dict(), indent=2, ensure_ascii=False) + "\n"


def print_table(c: Comparison, console=None) -> None:
    """Rich tables, one per model, each followed by its headline."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for model, evs in c.evaluations.items():
        counts = ", ".join(f"{cond} {len(v)}" for cond, v in evs.items())
        table = Table(title=f"{model} ({counts} evaluations)")
        for h in HEADERS:
            table.add_column(h, justify="left" if h in ("axis", "metric", "test") else "right",
                             no_wrap=h in ("axis", "metric"))
        for r in c.rows:
            if r.model == model:
                table.add_row(*table_cells(r))
        console.print(table)
        console.print(headline_text(c.headlines.get(model, {})))
    for n in c.notes:
        console.print(f"note: {n}")
