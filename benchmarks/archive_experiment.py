"""The small files of a finished experiment folder, for committing next to the docs.

    python benchmarks/archive_experiment.py EXP OUT [--log FILE]

Copies the experiment's settings, plan, pairs, comparison and manipulation check; for each run its
config, summary and training metrics; for each evaluation its metrics without the per-item records
(`summarize_eval.py`: those records quote the benchmarks' items), and the feeling axis's records
(the replies to the project's own questions, with their markers), so that the judge-free rates can
be read again under later markers. The report page and the checkpoints stay in EXP.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarize_eval import summarize  # noqa: E402

TOP = ("experiment.json", "plan.json", "pairs.json", "comparison.md", "comparison.json", "manipulation.json")
PER_RUN = {"config.json": "config.json", "summary.json": "summary.json", "metrics.jsonl": "train-metrics.jsonl"}


def archive(exp: Path, out: Path, log: Path | None = None) -> list[Path]:
    if not (exp / "plan.json").is_file():
        raise SystemExit(f"{exp} is not an experiment folder (no plan.json).")
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, data: str | None = None, src: Path | None = None) -> None:
        dst = out / name
        if src is not None:
            shutil.copyfile(src, dst)
        else:
            dst.write_text(data)
        written.append(dst)

    for name in TOP:
        if (exp / name).is_file():
            put(name, src=exp / name)
    for run in sorted((exp / "runs").iterdir()) if (exp / "runs").is_dir() else []:
        for src, dst in PER_RUN.items():
            if (run / src).is_file():
                put(f"{run.name}.{dst}", src=run / src)
    for ev in sorted((exp / "evals").glob("*.json")):
        rec = json.loads(ev.read_text())
        put(f"{ev.stem}.metrics.json", json.dumps(summarize(rec), indent=1, ensure_ascii=False) + "\n")
        feeling = rec.get("results", {}).get("feeling", {}).get("records")
        if feeling:
            put(f"{ev.stem}.feeling.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in feeling))
    if log is not None:
        put("replicate.log", src=log)
    return written


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("exp", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--log", type=Path, help="the replicate command's output, copied as replicate.log")
    a = ap.parse_args()
    files = archive(a.exp, a.out, a.log)
    print(f"wrote {len(files)} files to {a.out} ({sum(f.stat().st_size for f in files) / 1e3:.0f} kB)")
