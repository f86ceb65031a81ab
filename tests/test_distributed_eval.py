"""Data-parallel evaluation (``mlx.launch -n 2 hmx-mlx eval``) against one process, on the
tiny model and a few items of the real data: the same records and metrics. Axes cover each
split: option scoring (mmlu, bbq), greedy generation (gsm8k), the two-turn pushback scoring,
sampled generation in key chunks (eqbench, batch size 1 so its 2 items are 2 chunks) and a
rank-0 axis (feeling)."""

from __future__ import annotations

import json
import math

from conftest import BENCH_DATA, needs_data
from launching import run

AXES = "feeling,sycophancy_pushback,bbq_ambig,mmlu,gsm8k,eqbench"
SKIP = {"seconds", "created", "created_unix", "versions"}


def _same(a, b, path=""):
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            if k not in SKIP:
                _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        # tolerance: greedy rows batched differently on each rank differ by float rounding only
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (path, a, b)
    else:
        assert a == b, (path, a, b)


@needs_data
def test_two_ranks_evaluate_what_one_process_evaluates(tiny_model_dir, tmp_path):
    common = ["eval", str(tiny_model_dir), "--axes", AXES, "--limit", "2", "--plain", "--batch-size", "1",
              "--data-dir", str(BENCH_DATA)]
    run(0, *common, "--out", str(tmp_path / "one.json"))
    out = run(2, *common, "--out", str(tmp_path / "two.json"))
    assert out.stdout.count("results: ") == 1  # rank 0 alone reports and writes
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["status"] == two["status"] == "complete" and list(two["results"]) == AXES.split(",")
    _same({k: v for k, v in one.items() if k != "target"}, {k: v for k, v in two.items() if k != "target"})
    assert all(one["results"][a]["records"] for a in one["results"])
