"""The pieces of the distributed path that need no second process: shares, the global loss
normalisers split across ranks (by hand), folder packing, collectives on one rank."""

from __future__ import annotations

import numpy as np
import pytest

from hmxfeel_mlx.distributed.collectives import broadcast_object, gather_objects, sum_tree
from hmxfeel_mlx.distributed.sharding import map_chunks, map_items
from hmxfeel_mlx.distributed.transfer import pack_folder, unpack, unpack_into
from hmxfeel_mlx.distributed.world import shard_range, single, threads_per_rank
from hmxfeel_mlx.training.update import micro_batch_plan


def test_shares_are_contiguous_and_cover_every_item_once():
    for n in range(0, 9):
        for k in range(1, 4):
            parts = [shard_range(n, r, k) for r in range(k)]
            assert [i for p in parts for i in p] == list(range(n))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [list(shard_range(3, r, 2)) for r in range(2)] == [[0, 1], [2]]
    assert threads_per_rank(cores=2, ranks_here=2) == 1 and threads_per_rank(cores=8, ranks_here=3) == 2


# 5 rows (lengths 2, 4, 0, 3, 1: row 2 was truncated and masked, row 4 has zero advantage),
# micro-batches of 2 rows: [0, 1], [2, 3], [4]. Rank 0 holds rows 0-2, rank 1 rows 3-4 (uneven).
LENGTHS = np.array([2.0, 4.0, 0.0, 3.0, 1.0])
USABLE = np.array([True, True, False, True, False])
# by hand, per micro-batch: rows run, their tokens, the micro-batch's tokens
#   [0, 1]: rows 0, 1 (6 tokens of 6); [2, 3]: row 3 (3 of 3); [4]: none (0 of 1). 10 tokens, 5 rows, 3 batches.
HAND = {
    "dapo": {(0, 1): 6 / 10, (3,): 3 / 10},
    "bnpo": {(0, 1): 6 / 6 / 3, (3,): 3 / 3 / 3},
    "grpo": {(0, 1): 2 / 5, (3,): 1 / 5},
    "dr_grpo": {(0, 1): 2 / 5, (3,): 1 / 5},
}


@pytest.mark.parametrize("loss_type", sorted(HAND))
def test_global_normalisers_with_uneven_shares_match_a_hand_computation(loss_type):
    whole = {tuple(used): w for _, used, w in micro_batch_plan(loss_type, LENGTHS, USABLE, 2) if used}
    assert whole == pytest.approx(HAND[loss_type])
    ranks = [micro_batch_plan(loss_type, LENGTHS, USABLE, 2, rows) for rows in (range(0, 3), range(3, 5))]
    held = [[held for held, _, _ in plan] for plan in ranks]
    assert held == [[[0, 1], [2], []], [[], [3], [4]]]  # the micro-batches of the whole rollout, split
    pieces = {tuple(used): w for plan in ranks for _, used, w in plan if used}
    assert pieces == pytest.approx(HAND[loss_type])  # each piece keeps its weight in the global loss


def test_a_micro_batch_split_between_ranks_keeps_the_global_weights():
    # micro-batch [0, 1, 2, 3] with rank 0 holding rows 0-1 and rank 1 rows 2-3: bnpo's normaliser
    # is the tokens of the whole micro-batch (2 + 4 + 0 + 3 = 9) on both ranks, over 2 micro-batches
    lengths, usable = LENGTHS, np.array([True, True, False, True, True])
    a = micro_batch_plan("bnpo", lengths, usable, 4, range(0, 2))
    b = micro_batch_plan("bnpo", lengths, usable, 4, range(2, 5))
    assert [w for _, used, w in a if used] == pytest.approx([6 / 9 / 2])
    assert [w for _, used, w in b if used] == pytest.approx([3 / 9 / 2, 1 / 1 / 2])
    one = micro_batch_plan("bnpo", lengths, usable, 4)
    assert sum(w for _, u, w in one if u) == pytest.approx(sum(w for plan in (a, b) for _, u, w in plan if u))


def test_a_folder_travels_as_one_buffer(tmp_path):
    src = tmp_path / "src"
    (src / "checkpoints" / "step_2").mkdir(parents=True)
    (src / "metrics.jsonl").write_text('{"step": 1}\n')
    (src / "checkpoints" / "step_2" / "adapters.safetensors").write_bytes(bytes(range(256)) * 3)
    (src / "checkpoints" / ".step_3.tmp").mkdir()  # a killed write: not sent
    (src / "checkpoints" / ".step_3.tmp" / "x").write_text("partial")
    (src / "empty").write_bytes(b"")
    buf = pack_folder(src)
    assert buf.dtype == np.uint8
    files = unpack(buf)
    assert sorted(files) == ["checkpoints/step_2/adapters.safetensors", "empty", "metrics.jsonl"]
    written = unpack_into(buf, tmp_path / "dst")
    assert len(written) == 3
    for rel, data in files.items():
        assert (tmp_path / "dst" / rel).read_bytes() == (src / rel).read_bytes() == data
    assert unpack(pack_folder(tmp_path / "missing")) == {}


def test_collectives_on_one_rank_are_the_identity():
    import mlx.core as mx

    one = single()
    obj = {"a": [1.5, float("nan")], "b": "text"}
    assert gather_objects(obj, one) == [obj] and broadcast_object(obj, one) is obj
    tree = {"w": mx.ones((2, 2))}
    assert sum_tree(tree, one) is tree
    assert map_items(one, 3, lambda r: [i * 2 for i in r]) == [0, 2, 4]
    assert map_chunks(one, 2, lambda c: [c, c]) == [0, 0, 1, 1]


def test_doctor_reports_the_launch():
    import json

    from launching import run

    # no thread count given: each rank re-executes itself with its share of the cores (2 cores, 2 ranks)
    rows = json.loads(run(2, "doctor", "--no-bench", "--format", "json", OPENBLAS_NUM_THREADS="").stdout)
    line = next(r for r in rows if r["check"] == "distributed")
    assert line["status"] == "ok" and "ring backend, rank 0 of world size 2" in line["value"]
    assert "0: " in line["value"] and "1: " in line["value"]  # rank 0 alone prints, naming both
    import os

    if (os.cpu_count() or 1) == 2 and "OpenBLAS" in next(r for r in rows if r["check"] == "blas")["value"]:
        assert line["value"].count("1 BLAS threads") == 2
    alone = json.loads(run(0, "doctor", "--no-bench", "--format", "json").stdout)
    assert "one process" in next(r for r in alone if r["check"] == "distributed")["value"]
