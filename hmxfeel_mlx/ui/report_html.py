"""`hmx-mlx report EXPERIMENT --export report.html`: an experiment as one self-contained page.

Renders what ``experiment_state.read_experiment`` read, top to bottom: the header
(model, seeds, directions, axes, limit, settings, wall time per stage from
plan.json), one reward chart per direction with the seeds overlaid, the selected
pairs (pairs.json), the comparison table (comparison.json, the columns and
headline of `hmx-mlx compare`), a forest plot of forward - reverse per metric, and
held-out replies at the selected checkpoints.

The page needs nothing else: inline CSS, inline SVG (``svg``), no script, no
external reference. Every string read from a file is escaped. A piece that is
missing (a stage not run yet, a run without evaluations) becomes a placeholder
saying which stage writes it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..evals.compare import BETTER_MARK, HEADERS, headline_lines, table_cells
from ..experiment.manipulation import fmt_number, verdict_sentence
from ..runfolder import write_bytes_atomic
from .experiment_state import (DRIFT_METRICS, STAGES, Experiment, RunEntry, comparison_rows, drift_of,
                               heldout_key, heldout_samples, interval, read_experiment, row_of, stage_of)
from .state import seconds_text, threshold
from .svg import ForestRow, LineChart, Series, esc, finite, forest_plot, line_chart, y_range_of
from .views import num, threshold_text

SEED_COLORS = ["#1f6fb4", "#e07b00", "#2a9d3a", "#c2185b", "#6a4fb3", "#7a5a2f"]
BETTER_COLOR, WORSE_COLOR, UNSURE_COLOR = "#1a7f37", "#c62828", "#8a8a8a"
TEXT_COLUMNS = ("axis", "metric", "better", "test", "decision")  # left-aligned in the comparison table
SAMPLE_QUESTIONS, SAMPLE_CHARS = 3, 1200


# ------------------------------------------------------------------ helpers
def placeholder(message: str) -> str:
    return f'<p class="placeholder">{esc(message)}</p>'


def job_state(exp: Experiment, job_id: str) -> str:
    state = exp.job(job_id).get("state")
    return f"job {job_id} is {state}" if state else f"job {job_id} is not in plan.json"


def missing(exp: Experiment, name: str, job_id: str, stage: str) -> str:
    """The placeholder of a file the page needs that is absent or unreadable."""
    if (exp.root / name).exists():
        return placeholder(f"{name} could not be read (see the warning at the top).")
    return placeholder(f"No {name} yet ({job_state(exp, job_id)}): the {stage} stage writes it.")


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def table(headers: list[str], rows: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h).replace('_', '_<wbr>')}</th>" for h in headers)  # long metric names may wrap
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def cell(value, cls: str = "", extra: str = "") -> str:
    attrs = (f' class="{cls}"' if cls else "") + extra
    return f"<td{attrs}>{esc(value)}</td>"


# ------------------------------------------------------------------- header
def stage_rows(jobs: list[dict]) -> list[str]:
    """Per stage: its jobs, their states and the sum of their ``seconds``; then the total."""
    by: dict[str, list[dict]] = {}
    for j in jobs:
        by.setdefault(stage_of(j), []).append(j)
    names = [s for s in STAGES if s in by] + [s for s in by if s not in STAGES]
    rows, total = [], 0.0
    for name in names:
        js = by[name]
        counts: dict[str, int] = {}
        for j in js:
            state = str(j.get("state", "?"))
            if state == "running" and j.get("kind") == "report":  # the job writing this very page
                state = "writing this page"
            counts[state] = counts.get(state, 0) + 1
        secs = sum(float(j["seconds"]) for j in js if finite(j.get("seconds")))
        total += secs
        rows.append("<tr>" + cell(name) + cell(len(js), "num")
                    + cell(", ".join(f"{n} {s}" for s, n in counts.items()))
                    + cell(seconds_text(secs) if any(finite(j.get("seconds")) for j in js) else "-", "num") + "</tr>")
    rows.append('<tr class="total">' + cell("all stages") + cell(len(jobs), "num") + cell("")
                + cell(seconds_text(total), "num") + "</tr>")
    return rows


def header_section(exp: Experiment, generated: str) -> str:
    m = exp.meta
    settings = m.get("settings") or {}
    settings_html = (" ".join(f"<code>{esc(k)}={esc(json.dumps(v))}</code>" for k, v in settings.items())
                     if isinstance(settings, dict) and settings else "defaults")
    facts = [("model", esc(m.get("model", "?"))), ("seeds", esc(", ".join(map(str, m.get("seeds") or [])) or "-")),
             ("directions", esc(", ".join(exp.directions))),
             ("axes", esc(", ".join(map(str, m.get("axes") or [])) or "-")), ("limit", esc(m.get("limit", "-"))),
             ("settings", settings_html), ("created", esc(m.get("created", "-"))), ("report written", esc(generated))]
    body = '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    if exp.jobs:
        body += "<h3>Wall time per stage</h3>" + table(["stage", "jobs", "states", "time (sum of job seconds)"],
                                                       stage_rows(exp.jobs), "stages")
        failed = [j for j in exp.jobs if j.get("state") == "failed"]
        body += "".join(f'<p class="warn">{esc(j.get("id"))} failed after {esc(j.get("attempts", "?"))} '
                        f'attempt(s): {esc(j.get("error") or "no error recorded")}</p>' for j in failed)
    else:
        body += placeholder("No plan.json yet: stage times appear once `hmx-mlx replicate` has planned the jobs.")
    body += "".join(f'<p class="warn">{esc(p)}</p>' for p in exp.problems)
    title = f"HMX-feel experiment · {m.get('model', '?')} · {exp.root.name}"
    return f'<header id="summary"><h1>{esc(title)}</h1>{body}</header>'


# ------------------------------------------------------------ reward curves
def direction_chart(direction: str, runs: list[RunEntry]) -> str:
    """The chart of one direction (seeds overlaid) and its legend, or a placeholder."""
    present = [r for r in runs if r.state is not None]
    if not present:
        return placeholder(f"{direction}: no run folder yet (jobs train-{direction}-s*).")
    key = heldout_key(present)
    scale = "calibrated 0-10 score" if key == "eval_score_cal" else "raw judge score"
    series, rings, values, legend = [], [], [], []
    for i, r in enumerate(runs):
        color = SEED_COLORS[i % len(SEED_COLORS)]
        swatch = f'<span class="swatch" style="background:{color}"></span>'
        if r.state is None:
            legend.append(f"<li>{swatch}seed {esc(r.seed)}: {esc(r.rel)} not written yet</li>")
            continue
        s = r.state
        train = [(m["step"], m.get("reward_mean")) for m in s.train_metrics]
        held = [(e["step"], e.get(key)) for e in s.evals]
        values += [v for _, v in train + held]
        series += [Series(train, color, width=1.2, opacity=0.55), Series(held, color, markers=True, dash="5 3",
                                                                         width=2)]
        at = dict(held).get(r.selected)
        if r.selected is not None and finite(at):
            rings.append((r.selected, at, "#111"))
        steps = f"step {s.last_step}/{s.total_steps}" if s.last_step is not None else "no step yet"
        picked = (f"selected step {r.selected} ({r.selected_from})" if r.selected is not None
                  else "no checkpoint selected")
        evals_note = "" if s.evals else "; no held-out evaluation yet"
        legend.append(f"<li>{swatch}seed {esc(r.seed)} · {esc(r.rel)} · {esc(steps)}, {esc(s.status)} · "
                      f"{esc(picked)}{esc(evals_note)}</li>")
    cfg = present[0].state.config
    # the rule reads the calibrated score when every evaluation has one, else the raw score: the
    # scale this chart shows (``selection.score_key``), so the threshold belongs on it either way
    hline = (threshold(cfg)[0], f"threshold {threshold_text(cfg)}")
    x_max = max([r.state.total_steps for r in present] + [m["step"] for r in present for m in r.state.metrics] + [1])
    chart = line_chart(LineChart(series, x_max, y_range_of(values), "step", "score / reward", hline, rings),
                       f"{direction}: training reward and held-out score per step")
    keys = ['<span class="key solid"></span>training reward (per step)',
            f'<span class="key dashed"></span>held-out score ({esc(scale)})',
            '<span class="key ring"></span>selected checkpoint']
    keys.append('<span class="key threshold"></span>selection threshold (when within the chart)')
    return (f'<figure class="chart"><figcaption>{esc(direction)}</figcaption>{chart}'
            f'<p class="keys">{" · ".join(keys)}</p><ul class="legend">{"".join(legend)}</ul></figure>')


def curves_section(exp: Experiment) -> str:
    if not exp.runs:
        return section("curves", "Reward curves", placeholder("experiment.json lists no seeds: no run to show."))
    charts = [direction_chart(d, [r for r in exp.runs if r.direction == d]) for d in exp.directions]
    return section("curves", "Reward curves", f'<div class="charts">{"".join(charts)}</div>')


# -------------------------------------------------------------------- pairs
def _crossed(v) -> str:
    return "-" if v is None else ("yes" if v else "no")


def pairs_section(exp: Experiment) -> str:
    if exp.pairs is None:
        return section("pairs", "Selected pairs", missing(exp, "pairs.json", "pair", "selection/pairing"))
    pairs = [p for p in exp.pairs.get("pairs") or [] if isinstance(p, dict)]
    if not pairs:
        return section("pairs", "Selected pairs", placeholder("pairs.json holds no pair."))
    drift = any(drift_of(exp, d, p.get("seed")) for p in pairs for d in ("forward", "reverse"))
    headers = ["seed", "direction", "step", "candidates", "held-out (raw)", "held-out (calibrated)", "KL / token",
               "KL / reply", "crossed"]
    headers += [f"drift: {m}" for m in DRIFT_METRICS] if drift else []
    headers += ["KL / reply gap", "KL / token gap"]
    rows = []
    for p in pairs:
        for k, d in enumerate(("forward", "reverse")):
            side = p.get(d) if isinstance(p.get(d), dict) else {}
            cand = (p.get("candidates") or {}).get(d) or []
            tr = (cell(p.get("seed"), "num", ' rowspan="2"') if k == 0 else "") + cell(d)
            tr += cell(side.get("step", "-"), "num") + cell(", ".join(map(str, cand)) or "-", "small")
            tr += "".join(cell(num(side.get(f), fmt), "num") for f, fmt in (
                ("eval_score", ".2f"), ("eval_score_cal", ".2f"), ("eval_kl", ".3f"), ("eval_kl_reply", ".2f")))
            tr += cell(_crossed(side.get("crossed")))
            if drift:
                tr += "".join(cell(num(drift_of(exp, d, p.get("seed")).get(m), ".3f"), "num") for m in DRIFT_METRICS)
            if k == 0:
                tr += "".join(cell(num(p.get(g), ".3f"), "num", ' rowspan="2"')
                              for g in ("kl_reply_gap", "kl_token_gap"))
            rows.append(f'<tr class="pair-start">{tr}</tr>' if k == 0 else f"<tr>{tr}</tr>")
    intro = (f"<p>Rule: <b>{esc(exp.pairs.get('rule', '?'))}</b>. Held-out scores and KL to the base model are the "
             "run's own evaluation at the selected step; drift columns come from each checkpoint's evaluation "
             "file (axis drift, measured against the base model).</p>")
    return section("pairs", "Selected pairs", intro + table(headers, rows, "pairs"))


# --------------------------------------------------------------- comparison
def comparison_section(exp: Experiment) -> str:
    title = "Comparison: base, forward (human-like), reverse (machine-like)"
    c = exp.comparison
    if c is None:
        return section("comparison", title, missing(exp, "comparison.json", "compare", "comparison"))
    rows = comparison_rows(c)
    models = list(c.get("evaluations") or {}) or list(dict.fromkeys(str(r.get("model")) for r in rows))
    body = ""
    for model in models:
        evs = (c.get("evaluations") or {}).get(model) or {}
        counts = ", ".join(f"{esc(cond)} {len(v)}" for cond, v in evs.items())
        trs = []
        for d in (r for r in rows if str(r.get("model")) == model):
            cls = ' class="sig"' if d.get("decision") in ("improved", "degraded") else ""
            trs.append(f"<tr{cls}>" + "".join(cell(v, "" if h in TEXT_COLUMNS else "num")
                                             for h, v in zip(HEADERS, table_cells(row_of(d)))) + "</tr>")
        body += f"<h3>{esc(model)} ({counts} evaluations)</h3>" + table(HEADERS, trs, "comparison")
        lines = headline_lines((c.get("headlines") or {}).get(model, {}))
        body += '<p class="headline">' + "<br>".join(esc(x) for x in lines) + "</p>"
    if rows:
        body += ('<p class="keys">As <code>hmx-mlx compare</code>: forward and reverse are mean ± std over seeds; '
                 "a highlighted row: significantly improved or degraded (Holm-adjusted p &lt; 0.05 and a 95% interval "
                 "excluding 0; see docs/statistics.md); Δ/base = (forward − reverse) / |base|; (info): not part of "
                 "the headline.</p>")
    else:
        body += placeholder("comparison.json has no row (no evaluation had a metric with a spec).")
    notes = [str(n) for n in c.get("notes") or []]
    if notes:
        body += '<ul class="notes">' + "".join(f"<li>note: {esc(n)}</li>" for n in notes) + "</ul>"
    return section("comparison", title, body)


# -------------------------------------------------------------- manipulation
def manipulation_section(exp: Experiment) -> str:
    title = "Manipulation check: did the training change what it is named for? (judge-free)"
    m = exp.manipulation
    if m is None:
        return section("manipulation", title, missing(exp, "manipulation.json", "compare", "comparison"))
    if not m.get("available"):
        return section("manipulation", title, placeholder(f"Not available: {m.get('why', '?')}."))
    b = m.get("base") or {}
    headers = ["direction", "seed", "checkpoint", "feeling", "change", "disclaimer", "change", "words",
               "length change", "distinct-3", "readable"]
    rows, verdicts = [], []
    for d in (m.get("directions") or {}).values():
        for r in d.get("per_seed") or []:
            vals = [d.get("direction"), r.get("seed"), r.get("checkpoint"), fmt_number(r.get("feeling_rate")),
                    fmt_number(r.get("feeling_rate_change"), True), fmt_number(r.get("disclaimer_rate")),
                    fmt_number(r.get("disclaimer_rate_change"), True), fmt_number(r.get("words"), digits=1),
                    fmt_number(r.get("length_change"), True, 2), fmt_number(r.get("distinct3")),
                    {True: "yes", False: "no", None: "unknown"}[r.get("readable")]]
            rows.append("<tr>" + "".join(cell(v, "" if i < 3 or i == 10 else "num") for i, v in enumerate(vals))
                        + "</tr>")
        verdicts.append(verdict_sentence(d))
    intro = (f"<p>The feeling axis's first-person feeling and AI-disclaimer markers (no judge) against the base's: "
             f"feeling {fmt_number(b.get('feeling_rate'))}, disclaimer {fmt_number(b.get('disclaimer_rate'))}, "
             f"{fmt_number(b.get('words'), digits=1)} words, distinct-3 {fmt_number(b.get('distinct3'))}. Readable: distinct-3 "
             "&gt;= 0.95 and mean length within 30% of the base's.</p>")
    body = intro + table(headers, rows, "manipulation")
    body += '<p class="headline">' + "<br>".join(esc(v) for v in verdicts) + "</p>"
    return section("manipulation", title, body)


# ------------------------------------------------------------------- forest
def forest_row(d: dict) -> ForestRow:
    lo, hi, source = interval(d)
    diff = float(d["diff"]) if finite(d.get("diff")) else float("nan")
    higher = d.get("higher_is_better", True)
    decision = d.get("decision")
    color = {"improved": BETTER_COLOR, "degraded": WORSE_COLOR}.get(decision, UNSURE_COLOR)
    label = f"{d.get('metric')} {BETTER_MARK[None if higher is None else bool(higher)]}"
    if not finite(diff):
        return ForestRow(label, diff, lo, hi, UNSURE_COLOR, "no value on one side")
    span = f" [{lo:+.3g}, {hi:+.3g}]" if finite(lo) else ""
    return ForestRow(label, diff, lo, hi, color, f"{diff:+.3g}{span} {source}")


def forest_section(exp: Experiment) -> str:
    title = "Forward − reverse per metric"
    rows = comparison_rows(exp.comparison or {})
    if not rows:
        why = "no comparison to plot" if exp.comparison is None else "comparison.json has no row"
        return section("forest", title, placeholder(f"No forest plot: {why}."))
    models = list(dict.fromkeys(str(r.get("model")) for r in rows))
    groups: dict[str, list[ForestRow]] = {}
    for d in rows:
        name = str(d.get("axis")) if len(models) == 1 else f"{d.get('model')} · {d.get('axis')}"
        groups.setdefault(name, []).append(forest_row(d))
    explain = ("<p>Each diamond is a metric's mean difference forward − reverse with its 95% interval, as "
               "<code>hmx-mlx compare</code> computed it (McNemar/Newcombe or a paired bootstrap over items with one "
               "seed a side, Welch over seeds otherwise). Metrics live on different scales, so <b>each row has its own symmetric axis</b> from −R to "
               "+R (R printed at both ends) centred on 0 = no difference: read each interval against its own zero "
               "line, and the printed numbers for sizes; lengths are not comparable between rows. Colour: "
               f'<span style="color:{BETTER_COLOR}">forward significantly better</span> or '
               f'<span style="color:{WORSE_COLOR}">significantly worse</span> '
               "(by the metric's better direction, ↑ or ↓; Holm-adjusted p &lt; 0.05 and an interval excluding 0, "
               f'the comparison\'s decision); <span style="color:{UNSURE_COLOR}">grey</span>: no significant change, '
               "or not tested.</p>")
    plot = forest_plot(list(groups.items()), "forward minus reverse per metric with 95% intervals")
    return section("forest", title, explain + f'<figure class="forest">{plot}</figure>')


# ------------------------------------------------------------------ samples
def samples_section(exp: Experiment) -> str:
    title = "Held-out replies at the selected checkpoints"
    by_dir = {d: [(r, heldout_samples(r)) for r in exp.runs if r.direction == d] for d in exp.directions}
    questions = list(dict.fromkeys(str(s.get("question", "")) for d in by_dir.values() for _, ss in d for s in ss))
    if not questions:
        return section("samples", title, placeholder(
            "No held-out reply at a selected checkpoint yet (the runs write them at each evaluation step)."))
    cards = []
    for q in questions[:SAMPLE_QUESTIONS]:
        replies = []
        for d, found in by_dir.items():
            hit = next(((r, s) for r, ss in found for s in ss if str(s.get("question", "")) == q), None)
            if hit is None:
                replies.append(f'<div class="reply"><h4>{esc(d)}</h4>{placeholder("no reply to this question")}</div>')
                continue
            r, s = hit
            text = str(s.get("completion", ""))
            cut = text[:SAMPLE_CHARS] + ("…" if len(text) > SAMPLE_CHARS else "")
            replies.append(f'<div class="reply"><h4>{esc(d)} · seed {esc(r.seed)} · step {esc(r.selected)} · '
                           f'score {esc(num(s.get("score"), ".1f"))}</h4><pre>{esc(cut)}</pre></div>')
        cards.append(f'<div class="sample"><p class="question">{esc(q)}</p>'
                     f'<div class="replies">{"".join(replies)}</div></div>')
    intro = ("<p>One reply per direction to the first held-out questions, from the lowest seed that has one; the "
             "score is the frozen base judge's, with the forward rubric (0-10).</p>")
    return section("samples", title, intro + "".join(cards))


# --------------------------------------------------------------------- page
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0;background:#fff}
main{max-width:1220px;margin:0 auto;padding:18px 24px 40px}
h1{font-size:22px;margin:6px 0 12px}h2{font-size:18px;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:30px}
h3{font-size:15px;margin:18px 0 6px}h4{font-size:12.5px;margin:0 0 4px;color:#444}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;font-size:13.5px;margin:0 0 8px}
dl.facts dt{color:#666}dl.facts dd{margin:0}
code{background:#f2f2f2;padding:1px 4px;border-radius:3px;font-size:12px;margin-right:4px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f3f3f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.small{font-size:11px;color:#555;white-space:nowrap}
tr.total td{font-weight:600}tr.sig td{background:#fff8e1}
tr.pair-start td{border-top:2px solid #bbb}td[rowspan]{vertical-align:middle}
.charts{display:grid;grid-template-columns:1fr 1fr;gap:18px}
figure{margin:0}figcaption{font-weight:600;font-size:14px;margin-bottom:2px}
.keys{font-size:12px;color:#444;margin:2px 0}.legend{font-size:12px;margin:2px 0;padding-left:0;list-style:none}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:5px;vertical-align:-1px}
.key{display:inline-block;width:22px;height:0;margin:0 5px 3px 0;vertical-align:middle;border-top:2px solid #555}
.key.dashed{border-top:2px dashed #555}.key.threshold{border-top:2px dashed #d08c00}
.key.ring{width:10px;height:10px;border:2px solid #111;border-radius:50%;margin-bottom:0}
.placeholder{color:#777;font-style:italic;background:#fafafa;border:1px dashed #ccc;padding:8px 12px}
.warn{color:#a33;font-size:13px}.headline{font-weight:600;font-size:13.5px}.notes{font-size:12.5px;color:#555}
.sample{border:1px solid #e2e2e2;border-radius:4px;padding:8px 12px;margin:10px 0}
.question{font-weight:600;margin:0 0 6px}.replies{display:grid;grid-template-columns:1fr 1fr;gap:12px}
pre{white-space:pre-wrap;word-wrap:break-word;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;
background:#f7f7f7;padding:6px 8px;margin:0;border-radius:3px}
footer{color:#888;font-size:12px;margin-top:30px}
"""


def render_page(exp: Experiment, generated: str) -> str:
    """The whole page, as a string."""
    title = f"HMX-feel experiment · {exp.meta.get('model', '?')} · {exp.root.name}"
    parts = [header_section(exp, generated), curves_section(exp), pairs_section(exp), manipulation_section(exp),
             comparison_section(exp), forest_section(exp), samples_section(exp)]
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f'<body><main>{"".join(parts)}<footer>Written by hmx-mlx report from {esc(exp.root)}.</footer>'
            "</main></body></html>\n")


def write_report(experiment_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the page of ``experiment_dir`` (default EXP/report.html) atomically; return its path."""
    exp = read_experiment(experiment_dir)
    out = Path(out_path) if out_path is not None else exp.root / "report.html"
    page = render_page(exp, time.strftime("%Y-%m-%d %H:%M:%S"))
    write_bytes_atomic(out, page.encode("utf-8"))
    return out
