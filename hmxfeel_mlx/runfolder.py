"""The run folder: the interface between training, evaluation, the dashboard and reports.

    RUN/config.json          resolved TrainConfig
    RUN/metrics.jsonl        one line per step (StepMetrics)
    RUN/samples.jsonl        one line per judged completion
    RUN/checkpoints/step_N/  adapters (mlx-lm format), optimizer and RNG state, data cursor
    RUN/summary.json         selected checkpoint and why, how the held-out reward moved

Whole files are written atomically (temporary file in the same folder, fsync,
rename). JSONL lines are appended with a single ``write`` each and fsynced; a
reader skips a final line that a kill cut short, so no file is ever unreadable.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from .errors import HmxError


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        return self.root / "samples.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step_{step}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the file itself is synced
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=True) + "\n").encode())


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Append rows, one ``write`` per line, then fsync."""
    data = [(json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows]
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for line in data:
            os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: Path) -> list[dict]:
    """All complete lines of a JSONL file; a damaged final line (cut by a kill) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if i >= len(lines) - 2:  # the last line: an interrupted append
                break
            raise HmxError(f"{path} line {i + 1} is not valid JSON. The file was edited or damaged; restore it.")
    return rows


def rewrite_jsonl(path: Path, keep: Callable[[dict], bool]) -> None:
    """Keep only the rows for which ``keep`` is true (atomically)."""
    rows = [r for r in read_jsonl(path) if keep(r)]
    write_bytes_atomic(path, b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows))


def read_json(path: Path, what: str, fix: str = "Is this a run folder written by `hmx-mlx train`?") -> dict:
    """A JSON object from ``path``; HmxError naming ``what``, the file and ``fix`` otherwise."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HmxError(f"{what} not found: {path}. {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise HmxError(f"{what} {path} is not valid JSON ({e}). {fix}") from None
    if not isinstance(data, dict):
        raise HmxError(f"{what} {path} is not a JSON object. {fix}")
    return data
