"""Data-parallel GRPO (``mlx.launch -n 2 hmx-mlx train``) against one process.

Tolerance: none is needed here. The tiny run's batches align with the ranks' shares (judge
and update batches of one prompt's group, G = 4), so both runs do the same arithmetic in the
same order and the metrics, samples and adapters are equal bit for bit; the test allows a
relative 1e-6 on the metrics and 1e-6 on the adapters for the order of floating-point sums
(docs/distributed.md says when that order differs)."""

from __future__ import annotations

import json
import math
import shutil

import mlx.core as mx
import pytest
from launching import run
from test_trainer import SMALL_CALIBRATION

from hmxfeel_mlx.runfolder import read_jsonl

TIMING = ("_s", "seconds", "tok_s", "replies_s", "peak_memory_gb", "ranks")
# 3 prompts per step: uneven shares (2 and 1 prompts) on 2 ranks
CONFIG = {"steps": 3, "eval_every": 2, "group_size": 4, "prompts_per_step": 3, "max_new_tokens": 8,
          "judge_mode": "logprob", "judge_template": "fewshot", "eval_samples": 1, "learning_rate": 5e-3,
          "update_batch_size": 4, "judge_batch": 4, "calibration_set": str(SMALL_CALIBRATION), "seed": 0}


def _metrics(run_dir):
    return [{k: v for k, v in r.items() if not k.endswith(TIMING)} for r in read_jsonl(run_dir / "metrics.jsonl")]


def assert_same_run(a, b):
    ma, mb = _metrics(a), _metrics(b)
    assert [r["step"] for r in ma] == [r["step"] for r in mb] == [0, 1, 2, 3]
    for ra, rb in zip(ma, mb):
        assert set(ra) == set(rb), (set(ra) ^ set(rb))
        for k, v in ra.items():
            w = rb[k]
            if isinstance(v, float) and isinstance(w, float):
                assert math.isclose(v, w, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(v) and math.isnan(w)), (k, v, w)
            else:
                assert v == w, (ra["step"], k, v, w)
    sa, sb = read_jsonl(a / "samples.jsonl"), read_jsonl(b / "samples.jsonl")
    assert len(sa) == len(sb) == 3 * 12 + 3 * 10  # three steps of 3 x 4 replies; held-out at steps 0, 2, 3
    for x, y in zip(sa, sb):  # the same replies, in the same order, with the same judgement
        assert x.keys() == y.keys() and x["completion"] == y["completion"], (x, y)
        assert all(x[k] == pytest.approx(y[k], rel=1e-6) for k in x if isinstance(x[k], float)), (x, y)
    for step in (2, 3):
        wa = mx.load(str(a / "checkpoints" / f"step_{step}" / "adapters.safetensors"))
        wb = mx.load(str(b / "checkpoints" / f"step_{step}" / "adapters.safetensors"))
        assert set(wa) == set(wb)
        for k in wa:
            assert mx.allclose(wa[k], wb[k], rtol=0, atol=1e-6).item(), k
    assert json.loads((a / "summary.json").read_text())["selected_step"] == \
           json.loads((b / "summary.json").read_text())["selected_step"]


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tmp_path_factory):
    """The same 3-step run in one process and on two ranks."""
    root = tmp_path_factory.mktemp("dp")
    cfg = root / "config.json"
    cfg.write_text(json.dumps({**CONFIG, "model": str(tiny_model_dir)}))
    one, two = root / "one", root / "two"
    run(0, "train", "--config", str(cfg), "--run-dir", str(one), "--plain")
    out = run(2, "train", "--config", str(cfg), "--run-dir", str(two), "--plain")
    assert out.stdout.count("run: ") == 1  # rank 0 alone reports
    return one, two


def test_two_ranks_train_what_one_process_trains(runs):
    one, two = runs
    assert_same_run(one, two)
    rows = read_jsonl(two / "metrics.jsonl")
    assert all(r["ranks"] == 2 and r["gather_s"] >= 0 for r in rows[1:])
    assert not list(two.glob("*.rank*"))  # rank 1 wrote nothing of its own


def _cut_after(run_dir, step, dest):
    """The run as a kill after step ``step``'s checkpoint leaves it (later lines stay: the resume drops them)."""
    shutil.copytree(run_dir, dest)
    for ckpt in (dest / "checkpoints").glob("step_*"):
        if int(ckpt.name.split("_")[1]) > step:
            shutil.rmtree(ckpt)
    return dest


def test_a_two_rank_run_resumes_on_one_rank_and_back(runs, tmp_path):
    one, two = runs
    # a 2-rank run killed after step 2, resumed in one process
    cut = _cut_after(two, 2, tmp_path / "from-two")
    run(0, "train", "--resume", str(cut), "--plain")
    assert_same_run(one, cut)
    # a 1-process run killed after step 2, resumed on two ranks
    cut = _cut_after(one, 2, tmp_path / "from-one")
    run(2, "train", "--resume", str(cut), "--plain")
    assert_same_run(one, cut)
