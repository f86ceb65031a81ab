"""`hmx-mlx compare`: base vs forward (human-like) vs reverse (machine-like) evaluations.

Evaluations are grouped by model, then by condition (a run's config.json
``direction``; a plain model is "base"). Per axis metric (those with a
``metric_specs`` entry): the base value (mean if several base evaluations), the
forward and reverse mean ± sample std over runs (= training seeds; a run given
twice, e.g. as two evaluation files, counts once with its newest evaluation), the
difference forward - reverse with a test, and the change relative to the base
model, Δ/base = (forward - reverse) / |base| (``stats.relative_change``; not
computed when the base value is within one standard error of 0).

Test of forward vs reverse (docs/statistics.md):
- both sides with >= 2 evaluations: Welch's t over the per-seed values, with its
  95% interval (``stats.welch_test``);
- otherwise, for a metric that is the mean of a per-item record field
  (``MetricSpec.item_field``): a paired test over the items both sides answered,
  aligned by item id (``pairing.pair_items``): exact McNemar with Newcombe's
  interval for 0/1 items (``stats.mcnemar_test``), else a paired bootstrap
  (``stats.paired_bootstrap``, seed 0);
- none for the others (F1, BBQ s_amb), with the reason.

The p-values of one model's rows are Holm-adjusted (``stats.holm_adjust``). A row is
"improved" or "degraded" (signed by ``higher_is_better``) when its adjusted p is
below 0.05 and its 95% interval excludes 0 ("differs" for a two-sided metric such as a
letter preference, whose better value is neither end), else "no significant change", or
"not tested: <why>".

Headline (``headline``), over the metrics marked ``headline``: how many improved,
degraded and did not change significantly, each left-out metric with its reason;
and the study's rule: the share that improved or degraded by less than
``threshold`` (2%) relative to the base value (Δ/base), with the largest degradation.
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
from .axes.core import AXIS_ORDER, EVAL_SCHEMA, clean
from .item_pairs import Unpaired, item_values, pair_items, records_of

CONDITIONS = ("base", "forward", "reverse")
MIN_BOOTSTRAP_PAIRS = 10  # below this the percentile bootstrap's coverage is far from 95%: no test
IMPROVED, DEGRADED, UNCHANGED, NOT_TESTED = "improved", "degraded", "no significant change", "not tested: "
DIFFERS = "differs"  # significant, on a metric with no better direction (``higher_is_better`` None)


@dataclass
class Row:
    model: str
    axis: str
    metric: str
    higher_is_better: bool | None
    headline: bool
    base: float
    forward_mean: float
    forward_std: float
    forward_n: int
    reverse_mean: float
    reverse_std: float
    reverse_n: int
    diff: float  # forward_mean - reverse_mean
    test: str  # "mcnemar", "paired_bootstrap", "welch" or "" (none possible: see decision)
    p_value: float
    ci_low: float  # 95% interval of the difference the test measured
    ci_high: float
    significant: bool | None  # decision is improved, degraded or differs (None: not tested)
    relative_change: float  # (forward_mean - reverse_mean) / |base|
    p_adjusted: float = float("nan")  # Holm over the model's tested rows
    decision: str = ""  # "improved", "degraded", "differs", "no significant change", "not tested: <why>"
    test_n: int = 0  # items paired (McNemar, bootstrap) or seeds on both sides (Welch)
    test_diff: float = float("nan")  # the difference on the test's sample (= diff unless items were left out)
    base_se: float = float("nan")  # standard error of the base value (per-item, or over base evaluations)
    relative_note: str = ""  # why relative_change is not computed
    note: str = ""


@dataclass
class Comparison:
    rows: list[Row]
    headlines: dict[str, dict]  # model -> headline(...)
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


def _settings_notes(recs: Sequence[dict]) -> list[str]:
    """One note per axis whose recorded settings differ between evaluations (a base sampled at
    another temperature, or judged on another rubric or window, than the runs it is compared with:
    `hmx-mlx eval MODEL --set ...` evaluates a base with a run's settings)."""
    out = []
    axes = dict.fromkeys(a for r in recs for a in (r.get("results") or {}))
    for axis in axes:
        given = [(r.get("label") or r.get("condition"), (r["results"][axis].get("settings") or {}))
                 for r in recs if axis in (r.get("results") or {})]
        keys = sorted({k for _, st in given for k in st})
        differ = [k for k in keys if len({json.dumps(st.get(k), sort_keys=True) for _, st in given}) > 1]
        if differ:
            shown = "; ".join(f"{k}: " + ", ".join(f"{st.get(k)} ({lab})" for lab, st in given) for k in differ[:3])
            out.append(f"{axis}: the evaluations differ in {', '.join(differ)} ({shown}); compare with care")
    return out


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
        notes.extend(f"{model}: {n}" for n in _settings_notes(all_recs))
        if len(by["base"]) > 1:
            notes.append(f"{model}: {len(by['base'])} base evaluations; their mean is the base value")
        if any(r.get("status") != "complete" for r in all_recs):
            notes.append(f"{model}: some evaluations are partial (interrupted); missing axes count as absent")
    return groups


def _base_se(base: list[float], recs: list[dict], axis: str, item_field: str | None) -> float:
    """Standard error of the base value: over base evaluations when there are several,
    else over the base file's per-item values."""
    if sum(not math.isnan(v) for v in base) >= 2:
        return stats.standard_error(base)
    if len(recs) == 1 and item_field:
        return stats.standard_error(item_values(records_of(recs, axis), item_field))
    return float("nan")


def _test(axis: str, spec: dict, by: dict, fwd: list[float], rev: list[float],
          n_boot: int) -> tuple[stats.Difference | None, str]:
    """The test of forward vs reverse, or None and why none is possible."""
    absent = [c for c in ("forward", "reverse") if not by[c]]
    if absent:
        return None, f"no {' and '.join(absent)} evaluation"
    nf, nr = sum(not math.isnan(v) for v in fwd), sum(not math.isnan(v) for v in rev)
    undefined = [side for side, n in (("forward", nf), ("reverse", nr)) if n == 0]
    if undefined:
        return None, f"undefined: no item ({' and '.join(undefined)})"
    if nf >= 2 and nr >= 2:
        d = stats.welch_test(fwd, rev)
        return (None, "no variance over seeds (equal values)") if math.isnan(d.p_value) else (d, "")
    item_field = spec.get("item_field")
    if not item_field:
        return None, "no per-item field: no test"
    f_recs, r_recs = (records_of([r for _, r in by[c]], axis) for c in ("forward", "reverse"))
    for side, files in (("forward", f_recs), ("reverse", r_recs)):
        if not any(files):
            return None, f"cannot pair items: the {side} evaluation has no per-item records"
    paired = pair_items(f_recs, r_recs, item_field)
    if isinstance(paired, Unpaired):
        return None, paired.reason
    if stats.is_binary(paired.forward) and stats.is_binary(paired.reverse):
        return stats.mcnemar_test(paired.forward, paired.reverse), ""
    if len(paired.keys) < MIN_BOOTSTRAP_PAIRS:
        return None, f"too few paired items for a bootstrap ({len(paired.keys)} < {MIN_BOOTSTRAP_PAIRS})"
    return stats.paired_bootstrap(paired.forward, paired.reverse, n_boot=n_boot, seed=0), ""


def _row(model: str, axis: str, metric: str, spec: dict, by: dict, n_boot: int) -> Row:
    base = [_metric(r, axis, metric) for _, r in by["base"]]
    fwd = [_metric(r, axis, metric) for _, r in by["forward"]]
    rev = [_metric(r, axis, metric) for _, r in by["reverse"]]
    bm, _ = stats.mean_std(base)
    fm, fs = stats.mean_std(fwd)
    rm, rs = stats.mean_std(rev)
    nf, nr = sum(not math.isnan(v) for v in fwd), sum(not math.isnan(v) for v in rev)
    base_se = _base_se(base, [r for _, r in by["base"]], axis, spec.get("item_field"))
    d, why = _test(axis, spec, by, fwd, rev, n_boot)
    if not by["base"]:
        rel, rel_note = float("nan"), "no base evaluation"
    elif why.startswith("undefined"):
        rel, rel_note = float("nan"), why
    else:
        rel, rel_note = stats.relative_change(fm, rm, bm, base_se)
    higher = spec.get("higher_is_better", True)
    row = Row(model, axis, metric, None if higher is None else bool(higher), bool(spec.get("headline", False)),
              bm, fm, fs, nf, rm, rs, nr, fm - rm, "", float("nan"), float("nan"), float("nan"), None, rel,
              base_se=base_se, relative_note=rel_note, decision=NOT_TESTED + why if d is None else "")
    if d is not None:
        row.test, row.p_value, row.ci_low, row.ci_high, row.test_n, row.test_diff = (
            d.test, d.p_value, d.ci_low, d.ci_high, d.n, d.diff)
        if d.test != "welch" and not math.isclose(d.diff, row.diff, abs_tol=1e-9):
            row.note = (f"tested on the {d.n} items with a value on both sides (difference {d.diff:+.3f} there); "
                        "the others count in the means only")
    return row


def decide(rows: Sequence[Row], alpha: float = stats.ALPHA) -> None:
    """Holm-adjust the p-values of one comparison's tested rows and set each decision:
    improved / degraded (adjusted p < alpha and the interval excludes 0, signed by
    higher_is_better), else no significant change."""
    tested = [r for r in rows if r.test]
    for r, p_adj in zip(tested, stats.holm_adjust([r.p_value for r in tested])):
        r.p_adjusted = p_adj
        excludes_zero = r.ci_low > 0 or r.ci_high < 0
        if p_adj < alpha and excludes_zero:
            r.decision = (DIFFERS if r.higher_is_better is None
                          else IMPROVED if (r.ci_low > 0) == r.higher_is_better else DEGRADED)
        else:
            r.decision = UNCHANGED
        r.significant = r.decision != UNCHANGED


def headline(rows: Sequence[Row], threshold: float = 0.02) -> dict:
    """Headline of one model's forward-vs-reverse rows (those marked headline):
    significance counts with every untested metric and its reason, and the study's
    rule (``stats.headline_share`` over Δ/base) with every left-out metric and its reason."""
    hl = [r for r in rows if r.headline]

    def name(r: Row) -> str:
        return f"{r.axis}/{r.metric}"

    by = {k: [name(r) for r in hl if r.decision == k] for k in (IMPROVED, DEGRADED, UNCHANGED)}
    not_tested = [{"metric": name(r), "reason": r.decision[len(NOT_TESTED):]} for r in hl
                  if r.decision.startswith(NOT_TESTED)]
    study = stats.headline_share([(name(r), r.relative_change, r.higher_is_better) for r in hl
                                  if not math.isnan(r.relative_change)], threshold)
    excluded = [{"metric": name(r), "reason": r.relative_note} for r in hl if math.isnan(r.relative_change)]
    return {**study, "skipped": [e["metric"] for e in excluded], "excluded": excluded, "relative_to": "base",
            "n_headline": len(hl), "alpha": stats.ALPHA, "correction": "holm",
            "n_improved": len(by[IMPROVED]), "n_degraded": len(by[DEGRADED]), "n_unchanged": len(by[UNCHANGED]),
            "n_not_tested": len(not_tested), "improved": by[IMPROVED], "degraded": by[DEGRADED],
            "unchanged": by[UNCHANGED], "not_tested": not_tested}


def compare(evals: Sequence[tuple[Path, dict]], threshold: float = 0.02, n_boot: int = 5000) -> Comparison:
    """Rows for every (model, axis, metric with a spec), decided per model, and a headline per model."""
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
        decide(model_rows)
        rows += model_rows
        if by["forward"] and by["reverse"]:
            headlines[model] = headline(model_rows, threshold)
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


TEST_NAMES = {"mcnemar": "McNemar", "paired_bootstrap": "paired bootstrap", "welch": "Welch"}


def _test_name(r: Row) -> str:
    if not r.test:
        return "—"
    return f"{TEST_NAMES[r.test]} ({r.test_n} {'seeds' if r.test == 'welch' else 'items'})"


def _diff_ci(r: Row) -> str:
    if math.isnan(r.diff):
        return "—"
    return f"{r.diff:+.3f}" + ("" if math.isnan(r.ci_low) else f" [{r.ci_low:+.3f}, {r.ci_high:+.3f}]")


def _p(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:.2g}" if v < 0.001 else f"{v:.3f}"


def _p_holm(r: Row) -> str:
    return "—" if math.isnan(r.p_value) else f"{_p(r.p_value)} → {_p(r.p_adjusted)}"


def _rel(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:+.1%}"


HEADERS = ["axis", "metric", "better", "base", "forward", "reverse", "fwd − rev [95% CI]", "test", "p → Holm p",
           "decision", "Δ/base"]


BETTER_MARK = {True: "↑", False: "↓", None: "↕"}  # ↕: two-sided, neither direction is better
NO_WRAP = ("axis", "metric", "better", "base", "Δ/base")  # short cells, shrunk only as a last resort


def table_cells(r: Row) -> list[str]:
    better = BETTER_MARK[r.higher_is_better] + ("" if r.headline else " (info)")
    return [r.axis, r.metric, better, _num(r.base), _mean_std(r.forward_mean, r.forward_std, r.forward_n),
            _mean_std(r.reverse_mean, r.reverse_std, r.reverse_n), _diff_ci(r), _test_name(r), _p_holm(r),
            r.decision, _rel(r.relative_change)]


def _listing(entries: Sequence[dict]) -> str:
    return "; ".join(f"{e['metric']} ({e['reason']})" for e in entries)


def headline_lines(h: dict) -> list[str]:
    """The headline: significance counts (Holm-adjusted), then the study's 2% rule."""
    if not h or not h.get("n_headline"):
        return ["headline: no headline metric has both a forward and a reverse evaluation"]
    lines = [f"headline (forward vs reverse, {h['n_headline']} headline metrics; Holm-adjusted p < {h['alpha']:g} "
             f"and 95% CI excluding 0): {h['n_improved']} significantly improved, {h['n_degraded']} significantly "
             f"degraded, {h['n_unchanged']} not significantly changed, {h['n_not_tested']} not tested"]
    for key, what in (("improved", "improved"), ("degraded", "degraded")):
        if h[key]:
            lines.append(f"  {what}: {', '.join(h[key])}")
    if h["not_tested"]:
        lines.append(f"  not tested: {_listing(h['not_tested'])}")
    if h["n"]:
        worst = h["largest_degradation"]
        worst_s = f"{worst[0]} ({worst[1]:+.1%})" if worst else "none"
        lines.append(f"study's rule (no test): {h['n_ok']} of {h['n']} headline metrics ({h['share_ok']:.0%}) improved "
                     f"or stayed within {h['threshold']:.0%} relative to base (Δ/base = (forward − reverse) / |base| > "
                     f"−{h['threshold']:.0%}); {h['share_improved']:.0%} improved; largest degradation: {worst_s}")
    else:
        lines.append("study's rule: no headline metric has a relative change (Δ/base)")
    if h["excluded"]:
        lines.append(f"  left out of the study's rule: {_listing(h['excluded'])}")
    return lines


def headline_text(h: dict) -> str:
    return "\n".join(headline_lines(h))


def row_notes(c: Comparison, model: str) -> list[str]:
    """Per-row remarks: why a Δ/base is missing, a test on fewer items than the means."""
    out = []
    for r in c.rows:
        if r.model != model:
            continue
        if r.relative_note and r.forward_n and r.reverse_n:
            out.append(f"{r.axis}/{r.metric}: Δ/base not computed ({r.relative_note})")
        if r.note:
            out.append(f"{r.axis}/{r.metric}: {r.note}")
    return out


def to_markdown(c: Comparison) -> str:
    out = []
    for model in c.evaluations:
        out += [f"### {model}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        out += ["| " + " | ".join(table_cells(r)) + " |" for r in c.rows if r.model == model]
        out += ["", *headline_lines(c.headlines.get(model, {})), ""]
        notes = row_notes(c, model)
        out += [f"- {n}" for n in notes] + ([""] if notes else [])
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


VALUE_HEADERS = ["axis", "metric", "better", "base", "forward", "reverse", "Δ/base"]
TEST_HEADERS = ["axis", "metric", "fwd − rev [95% CI]", "test", "p → Holm p", "decision"]


def comparison_table(c: Comparison, model: str, headers: Sequence[str] = tuple(HEADERS)):
    """One model's rows as a Rich table (the ``headers`` columns of ``table_cells``)."""
    from rich.table import Table

    counts = ", ".join(f"{cond} {len(v)}" for cond, v in c.evaluations[model].items())
    table = Table(title=f"{model} ({counts} evaluations)")
    for h in headers:  # a narrow terminal wraps the long cells first; words fold, never cut to "…"
        table.add_column(h, justify="left" if h in ("axis", "metric", "test", "decision") else "right",
                         no_wrap=h in NO_WRAP, overflow="fold")
    keep = [HEADERS.index(h) for h in headers]
    for r in c.rows:
        if r.model == model:
            cells = table_cells(r)
            table.add_row(*[cells[i] for i in keep])
    return table


def print_table(c: Comparison, console=None) -> None:
    """Rich tables, one per model, each followed by its headline and notes. Printed to a
    pipe or a file (not a terminal), a table is rendered at its full width, never cut; a
    terminal too narrow for it gets two tables, the values and then the tests."""
    from rich.console import Console
    from rich.measure import Measurement

    console = console or Console()
    for model in c.evaluations:
        table = comparison_table(c, model)
        need = Measurement.get(console, console.options.update_width(100_000), table).maximum
        if need <= console.width:
            console.print(table)
        elif console.is_terminal:
            console.print(comparison_table(c, model, VALUE_HEADERS))
            console.print(comparison_table(c, model, TEST_HEADERS))
        else:
            width = console.width
            console.width = need
            try:
                console.print(table)
            finally:
                console.width = width
        for line in headline_lines(c.headlines.get(model, {})) + [f"note: {n}" for n in row_notes(c, model)]:
            console.print(line, highlight=False, soft_wrap=True)  # one line each; a terminal wraps it
    for n in c.notes:
        console.print(f"note: {n}", soft_wrap=True)
