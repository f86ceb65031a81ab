"""An evaluation result file without its per-item records (which quote the benchmarks' items):
metrics, metric specs, settings and times per axis, for committing next to the docs.

    python benchmarks/summarize_eval.py EVAL.json OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def summarize(rec: dict) -> dict:
    keep = {k: v for k, v in rec.items() if k != "results"}
    keep["results"] = {axis: {k: v for k, v in res.items() if k != "records"}
                       for axis, res in rec.get("results", {}).items()}
    return keep


if __name__ == "__main__":
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.write_text(json.dumps(summarize(json.loads(src.read_text())), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
