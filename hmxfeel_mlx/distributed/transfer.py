"""Moving a folder's files between ranks, for machines that share no filesystem.

A folder travels as one uint8 buffer: an 8-byte header length, a JSON header
``{"files": [[relative path, size], ...]}``, then the files' bytes in that order.
``broadcast_folder`` gives rank 0's folder to every rank (a resumed run's checkpoint); the
grid (``experiment.grid``) broadcasts jobs' inputs and all-gathers their outputs the same way.
(Collectives rather than ``send``/``recv``: the ring backend sends only to a rank's two
neighbours.) ``write_files`` writes each file atomically (a temporary file in the same folder,
fsync, rename), so a kill leaves whole files only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..runfolder import write_bytes_atomic
from .collectives import broadcast_bytes, gather_objects
from .world import World

HEADER = 8


def collect(root: Path, rels: list[str] | None = None) -> dict[str, bytes]:
    """The regular files under ``root`` (or under its entries ``rels``: folders or files), by
    path relative to ``root``, sorted; hidden names (temporary folders of a killed write, lock
    files) are left out."""
    root = Path(root)
    tops = [root] if rels is None else [root / r for r in rels]
    found = []
    for top in tops:
        if top.is_file():
            found.append(top)
        elif top.is_dir():
            found += [p for p in top.rglob("*") if p.is_file()]
    out = {}
    for p in sorted(set(found)):
        rel = p.relative_to(root)
        if not any(part.startswith(".") for part in rel.parts):
            out[rel.as_posix()] = p.read_bytes()
    return out


def pack_files(files: dict[str, bytes]) -> np.ndarray:
    """Files (relative path -> bytes) as one uint8 buffer."""
    header = json.dumps({"files": [[rel, len(data)] for rel, data in files.items()]}).encode("utf-8")
    out = bytearray(len(header).to_bytes(HEADER, "little"))
    out += header
    for data in files.values():
        out += data
    return np.frombuffer(bytes(out), dtype=np.uint8)


def pack_folder(root: Path, rels: list[str] | None = None) -> np.ndarray:
    """Every file under ``root`` (or its entries ``rels``) as one uint8 buffer (``collect``)."""
    return pack_files(collect(root, rels))


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
    return write_files(unpack(buf), root)


def write_files(files: dict[str, bytes], root: Path) -> list[Path]:
    """Write files (relative path -> bytes) under ``root``, each atomically
    (``runfolder.write_bytes_atomic``); return their paths."""
    written = []
    for rel, data in files.items():
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise ValueError(f"refusing to write {rel!r} outside {root}")
        target = Path(root) / rel
        write_bytes_atomic(target, data)
        written.append(target)
    return written


def broadcast_folder(root: Path | None, world: World) -> np.ndarray:
    """Rank 0's folder ``root`` (None: no folder, an empty buffer) as a buffer on every rank."""
    data = pack_folder(root) if world.main and root is not None else None
    if world.main and data is None:
        data = np.zeros(0, dtype=np.uint8)
    return broadcast_bytes(data, world)


__all__ = ["broadcast_folder", "collect", "gather_objects", "pack_files", "pack_folder", "unpack", "unpack_into",
           "write_files"]
