"""Atomic whole-file writes, crash-tolerant JSONL and the run folder layout."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

import hmxfeel_mlx.runfolder as runfolder
from hmxfeel_mlx.errors import HmxError
from hmxfeel_mlx.runfolder import (
    RunPaths,
    append_jsonl,
    read_json,
    read_jsonl,
    rewrite_jsonl,
    write_bytes_atomic,
    write_json_atomic,
)


# --------------------------------------------------------------------------- atomic writes


def test_write_bytes_atomic_creates_parents(tmp_path):
    path = tmp_path / "a" / "b" / "file.bin"
    write_bytes_atomic(path, b"\x00\x01hello")
    assert path.read_bytes() == b"\x00\x01hello"
    assert os.listdir(path.parent) == ["file.bin"]


def test_write_bytes_atomic_replaces(tmp_path):
    path = tmp_path / "file.txt"
    write_bytes_atomic(path, b"first version, longer")
    write_bytes_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_write_json_atomic(tmp_path):
    path = tmp_path / "x.json"
    obj = {"name": "café", "n": [1, 2.5, None], "nested": {"ok": True}}
    write_json_atomic(path, obj)
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    assert "café".encode() in raw  # ensure_ascii=False: UTF-8, not \u escapes
    assert json.loads(raw) == obj
    assert os.listdir(tmp_path) == ["x.json"]


def test_write_json_atomic_allows_nan(tmp_path):
    path = tmp_path / "nan.json"
    write_json_atomic(path, {"kl": math.nan})
    assert math.isnan(json.loads(path.read_text())["kl"])


def test_failed_replace_keeps_old_content(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"version": 1})
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runfolder.os, "replace", boom)
    with pytest.raises(OSError):
        write_json_atomic(path, {"version": 2, "padding": "x" * 1000})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert json.loads(path.read_text()) == {"version": 1}
    assert os.listdir(tmp_path) == ["summary.json"]


def test_failed_fsync_keeps_old_content(tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    write_bytes_atomic(path, b"old")

    def boom(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(runfolder.os, "fsync", boom)
    with pytest.raises(OSError):
        write_bytes_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["data.bin"]


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(runfolder.os, "replace", boom)
    with pytest.raises(OSError):
        write_bytes_atomic(tmp_path / "new.txt", b"data")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- JSONL


def test_jsonl_round_trip(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows1 = [{"step": 1, "reward": 5.5}, {"step": 2, "reward": 6.0, "note": "ünïcode"}]
    rows2 = [{"step": 3, "reward": None, "list": [1, 2]}]
    append_jsonl(path, rows1)
    append_jsonl(path, rows2)
    assert read_jsonl(path) == rows1 + rows2
    assert path.read_bytes().count(b"\n") == 3
    assert path.read_bytes().endswith(b"\n")


def test_append_nothing_creates_nothing(tmp_path):
    path = tmp_path / "samples.jsonl"
    append_jsonl(path, [])
    assert not path.exists()
    append_jsonl(path, iter([]))
    assert not path.exists()


def test_read_missing_jsonl_is_empty(tmp_path):
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_truncated_final_line_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}])
    with open(path, "ab") as f:
        f.write(b'{"step": 3, "rew')  # a kill in the middle of an append: no newline
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}]


def test_damaged_last_line_with_newline_is_skipped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"step": 1}\n{"step": 2, \n')
    assert read_jsonl(path) == [{"step": 1}]


def test_blank_lines_are_ignored(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\n   \n{"a": 2}\n\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_damaged_middle_line_raises(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}])
    with open(path, "ab") as f:
        f.write(b'{"step": 2, "rew\n')
    append_jsonl(path, [{"step": 3}])
    with pytest.raises(HmxError) as excinfo:
        read_jsonl(path)
    msg = excinfo.value.message
    assert str(path) in msg
    assert "line 2 " in msg


def test_damaged_line_number_counts_blank_lines(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n\nnot json\n{"a": 2}\n')
    with pytest.raises(HmxError) as excinfo:
        read_jsonl(path)
    assert "line 3 " in excinfo.value.message


def test_rewrite_jsonl_keeps_by_predicate(tmp_path):
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": s, "v": s * 10} for s in range(6)])
    rewrite_jsonl(path, lambda r: r["step"] <= 3)
    assert read_jsonl(path) == [{"step": s, "v": s * 10} for s in range(4)]
    assert os.listdir(tmp_path) == ["metrics.jsonl"]
    rewrite_jsonl(path, lambda r: False)
    assert path.read_bytes() == b""
    assert read_jsonl(path) == []


def test_rewrite_drops_truncated_tail_so_appends_stay_readable(tmp_path):
    # The resume path: a kill left a partial line; rewrite, then append more steps.
    path = tmp_path / "metrics.jsonl"
    append_jsonl(path, [{"step": 1}, {"step": 2}, {"step": 3}])
    with open(path, "ab") as f:
        f.write(b'{"step": 4, "rew')
    rewrite_jsonl(path, lambda r: r["step"] <= 2)
    append_jsonl(path, [{"step": 3, "again": True}, {"step": 4}])
    assert read_jsonl(path) == [{"step": 1}, {"step": 2}, {"step": 3, "again": True}, {"step": 4}]


def test_rewrite_missing_file_creates_empty(tmp_path):
    path = tmp_path / "samples.jsonl"
    rewrite_jsonl(path, lambda r: True)
    assert path.read_bytes() == b""


# --------------------------------------------------------------------------- read_json


def test_read_json_ok(tmp_path):
    path = tmp_path / "summary.json"
    write_json_atomic(path, {"selected": 20})
    assert read_json(path, "summary") == {"selected": 20}


def test_read_json_missing(tmp_path):
    path = tmp_path / "config.json"
    with pytest.raises(HmxError) as excinfo:
        read_json(path, "run config")
    msg = excinfo.value.message
    assert msg.startswith("run config not found")
    assert str(path) in msg


def test_read_json_invalid(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"steps": ')
    with pytest.raises(HmxError) as excinfo:
        read_json(path, "run config")
    msg = excinfo.value.message
    assert "not valid JSON" in msg
    assert str(path) in msg


# --------------------------------------------------------------------------- RunPaths


def test_run_paths(tmp_path):
    paths = RunPaths(tmp_path / "run")
    root = tmp_path / "run"
    assert paths.config == root / "config.json"
    assert paths.metrics == root / "metrics.jsonl"
    assert paths.samples == root / "samples.jsonl"
    assert paths.summary == root / "summary.json"
    assert paths.checkpoints == root / "checkpoints"
    assert paths.checkpoint(7) == root / "checkpoints" / "step_7"
    assert paths.checkpoint(120).name == "step_120"
    assert isinstance(paths.config, Path)
    assert RunPaths(root) == paths  # frozen dataclass: compares by value
    with pytest.raises(AttributeError):
        paths.root = tmp_path
