"""Moving a folder's files between ranks, for machines that share no filesystem.

A folder travels as one uint8 buffer: an 8-byte header length, a JSON header
``{"files": [[relative path, size], ...]}``, then the files' bytes in that order.
``broadcast_folder`` gives rank 0's folder to every rank (a resumed run's checkpoint);
``send_folder``/``recv_folder`` carry one rank's folder to another (a finished grid job to
rank 0, with ``mx.distributed.send``/``recv``). ``unpack_into`` writes each file atomically
(a temporary file in the same folder, fsync, rename), so a kill leaves whole files only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .collectives import broadcast_bytes, gather_objects
from .world import World

HEADER = 8


def pack_folder(root: Path, skip: tuple[str, ...] = ()) -> np.ndarray:
    """Every regular file under ``root`` (sorted; names starting with ``skip`` prefixes and
    hidden temporary folders left out), as one uint8 buffer."""
    root = Path(root)
    files = []
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and not rel.startswith(skip) and not any(part.startswith(".") for part in p.relative_to(root).parts):
                files.append((rel, p.read_bytes()))
    header = json.dumps({"files": [[rel, len(data)] for rel, data in files]}).encode("utf-8")
    out = bytearray(len(header).to_bytes(HEADER, "little"))
    out += header
    for _, data in files:
        out += data
    return np.frombuffer(bytes(out), dtype=np.uint8)


def unpack(buf: np.ndarray) -> dict[str, bytes]:
    raw = bytes(buf)
    n = int.from_bytes(raw[:HEADER], "little")
    header = json.loads(raw[HEADER : HEADER + n].decode("utf-8"))
    out, at = {}, HEADER + n
    for rel, size in header["files"]:
        out[rel] = raw[at : at + size]
        at += size
    return out


def unpack_into(buf: np.ndarray, root: Path) -> list[Path]:
    """Write the buffer's files under ``root``, each atomically; return their paths."""
    written = []
    for rel, data in unpack(buf).items():
        target = Path(root) / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"refusing to write {rel!r} outside {root}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written


def broadcast_folder(root: Path | None, world: World) -> np.ndarray:
    """Rank 0's folder ``root`` (None: no folder, an empty buffer) as a buffer on every rank."""
    data = pack_folder(root) if world.main and root is not None else None
    if world.main and data is None:
        data = np.zeros(0, dtype=np.uint8)
    return broadcast_bytes(data, world)


def send_folder(root: Path, dst: int, world: World) -> None:
    """Send ``root``'s files to rank ``dst`` (which calls ``recv_folder``)."""
    import mlx.core as mx

    buf = pack_folder(root)
    mx.eval(mx.distributed.send(mx.array([len(buf)], dtype=mx.int64), dst, group=world.group, stream=mx.cpu))
    if len(buf):
        mx.eval(mx.distributed.send(mx.array(buf), dst, group=world.group, stream=mx.cpu))


def recv_folder(src: int, world: World) -> np.ndarray:
    """The buffer rank ``src`` sent with ``send_folder``."""
    import mlx.core as mx

    n = int(np.array(mx.distributed.recv((1,), mx.int64, src, group=world.group, stream=mx.cpu))[0])
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.array(mx.distributed.recv((n,), mx.uint8, src, group=world.group, stream=mx.cpu))


__all__ = ["broadcast_folder", "gather_objects", "pack_folder", "recv_folder", "send_folder", "unpack",
           "unpack_into"]
