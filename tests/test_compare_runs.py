"""benchmarks/compare_runs.py on hand-made run folders."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "benchmarks" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_runs)


def write_run(root: Path, metrics: list[dict], replies: list[str]) -> Path:
    root.mkdir()
    (root / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (root / "samples.jsonl").write_text("".join(json.dumps({"step": 1, "completion": t}) + "\n" for t in replies))
    return root


def test_largest_relative_difference_per_step_ignores_timings(tmp_path):
    a = write_run(tmp_path / "a", [{"step": 0, "eval_score": 4.0, "eval_seconds": 30.0},
                                   {"step": 1, "reward_mean": 2.0, "loss": 0.5, "rollout_s": 9.0, "ranks": 1}],
                  ["one", "two", "three"])
    b = write_run(tmp_path / "b", [{"step": 0, "eval_score": 4.0, "eval_seconds": 99.0},
                                   {"step": 1, "reward_mean": 2.002, "loss": 0.5, "rollout_s": 1.0, "ranks": 2}],
                  ["one", "two", "four"])
    out = compare_runs.compare(a, b)
    assert out["steps"][0] == {"step": 0, "max_rel_diff": 0.0, "metric": None}
    assert out["steps"][1]["metric"] == "reward_mean"
    assert out["steps"][1]["max_rel_diff"] == pytest.approx(0.002 / 2.002)
    assert out["identical_samples"] == 2 and out["samples"] == 3
    assert compare_runs.main([str(a), str(tmp_path / "none")]) == 2
