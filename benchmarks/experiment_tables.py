"""Markdown tables of a finished experiment, for the docs: the stage times, the chosen pairs with
their distance to the base, the judge-free manipulation check per seed, and the comparison's
headline and drift rows.

    python benchmarks/experiment_tables.py EXP            # an experiment folder
    python benchmarks/experiment_tables.py ARCHIVE        # or its archive (archive_experiment.py)

Everything is read from the experiment's own files (plan.json, pairs.json, manipulation.json,
comparison.json); nothing is recomputed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def _read(folder: Path, name: str) -> dict | None:
    p = folder / name
    return json.loads(p.read_text()) if p.is_file() else None


def _minutes(s: float) -> str:
    return f"{s:,.0f} s ({s / 60:.1f} min)"


def _utc(t: float) -> str:
    return time.strftime("%H:%M", time.gmtime(t))


def stage_table(plan: dict) -> list[str]:
    out = ["| job | wall time | attempts | note |", "|---|---|---|---|"]
    jobs = plan["jobs"]
    for j in jobs:
        out.append(f"| `{j['id']}` | {_minutes(j.get('seconds') or 0.0)} | {j.get('attempts', 0)} | {(j.get('note') or '').splitlines()[0] if j.get('note') else ''} |")
    total = sum(j.get("seconds") or 0.0 for j in jobs)
    started = [j["started"] for j in jobs if j.get("started")]
    finished = [j["finished"] for j in jobs if j.get("finished")]
    span = f"{_utc(min(started))} to {_utc(max(finished))} UTC" if started and finished else ""
    out.append(f"| **total of the jobs** | **{_minutes(total)}** | | {span} |")
    return out


def _side(s: dict) -> str:
    cal = s.get("eval_score_cal")
    return (f"step {s['step']} | {s['eval_score']:.3f}" + (f" ({cal:.2f})" if cal is not None else "")
            + f" | {s['eval_kl']:.3f} / {s['eval_kl_reply']:.1f}")


def pairs_table(pairs: dict) -> list[str]:
    out = [f"rule: {pairs['rule']}", "",
           "| seed | forward | held-out raw (cal.) | KL tok / reply | reverse | held-out raw (cal.) | KL tok / reply | gap / reply |",
           "|---|---|---|---|---|---|---|---|"]
    for p in pairs["pairs"]:
        gap = p.get("kl_reply_gap")
        out.append(f"| {p['seed']} | {_side(p['forward'])} | {_side(p['reverse'])} | "
                   + (f"{gap:.1f} |" if gap is not None else "- |"))
    return out


def _f(v, signed: bool = False, digits: int = 3) -> str:
    if v is None:
        return "-"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def manipulation_table(m: dict) -> list[str]:
    if not m.get("available"):
        return [f"manipulation check not available: {m.get('why')}"]
    b = m["base"]
    out = [f"base: feeling {_f(b['feeling_rate'])}, disclaimer {_f(b['disclaimer_rate'])}, service formula "
           f"{_f(b['politeness_rate'])}, {_f(b['words'], digits=1)} words, distinct-3 {_f(b['distinct3'])}, "
           f"distinct openings {_f(b['distinct_openings'], digits=2)} ({_f(b['n'], digits=0)} replies)", "",
           "| direction | seed | checkpoint | feeling (change) | disclaimer (change) | service formula | words | distinct-3 | distinct openings |",
           "|---|---|---|---|---|---|---|---|---|"]
    for d, c in m["directions"].items():
        for r in c["per_seed"]:
            out.append(f"| {d} | {r['seed']} | {r['checkpoint']} | {_f(r['feeling_rate'])} ({_f(r.get('feeling_rate_change'), True)}) | "
                       f"{_f(r['disclaimer_rate'])} ({_f(r.get('disclaimer_rate_change'), True)}) | {_f(r['politeness_rate'])} | "
                       f"{_f(r['words'], digits=1)} | {_f(r['distinct3'])} | {_f(r['distinct_openings'], digits=2)} |")
    for d, c in m["directions"].items():
        se = lambda k: f" ± {c[k + '_se']:.3f}" if c.get(k + "_se") is not None else ""  # noqa: E731
        out.append(f"| **{d}, mean of {c['seeds']}** | | | **{_f(c['feeling_rate_change'], True)}{se('feeling_rate_change')}** | "
                   f"**{_f(c['disclaimer_rate_change'], True)}{se('disclaimer_rate_change')}** | | | | |")
    out.append("")
    for d, c in m["directions"].items():
        out.append(f"- {d}: {c['criterion']}: moved {c['moved']}, readable {c['readable']}, met {c['met']}"
                   + (f"; collapsed openings in seeds {c['collapsed_seeds']}" if c["collapsed_seeds"] else ""))
    return out


def _mean(r: dict, side: str) -> str:
    n, m, s = r.get(f"{side}_n"), r.get(f"{side}_mean"), r.get(f"{side}_std")
    return _f(m) + (f" ± {s:.3f}" if n and n > 1 and s is not None else "")


def comparison_table(c: dict, drift: bool = True) -> list[str]:
    """The headline rows, and the feeling and drift axes' rows (values as comparison.json has them)."""
    out = ["| axis | metric | base | forward (mean ± sd over seeds) | reverse | fwd − rev [95% CI] | test | Holm p | decision |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in c["rows"]:
        if not (r.get("headline") or r["axis"] == "feeling" or (drift and r["axis"] == "drift")):
            continue
        ci = _f(r.get("diff"), True) + (f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                                        if r.get("ci_low") is not None and r.get("ci_high") is not None else "")
        test = f"{r['test']} ({r.get('test_n', 0)})" if r.get("test") else "-"
        out.append(f"| {r['axis']} | {r['metric']} | {_f(r.get('base'))} | {_mean(r, 'forward')} | {_mean(r, 'reverse')} | "
                   f"{ci} | {test} | {_f(r.get('p_adjusted'))} | {r.get('decision', '')} |")
    out.append("")
    from hmxfeel_mlx.evals.compare import headline_text

    for model, h in c.get("headlines", {}).items():
        out.append(f"{model}: {headline_text(h)}")
    return out


def main(folder: Path) -> None:
    plan = _read(folder, "plan.json")
    if plan is None:
        raise SystemExit(f"{folder} has no plan.json: pass an experiment folder or its archive.")
    print("## Stages\n")
    print("\n".join(stage_table(plan)))
    for name, fn in (("pairs.json", pairs_table), ("manipulation.json", manipulation_table),
                     ("comparison.json", comparison_table)):
        data = _read(folder, name)
        print(f"\n## {name}\n")
        print("\n".join(fn(data)) if data is not None else f"({name} not written yet)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
