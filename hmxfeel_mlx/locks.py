"""One writer per folder: the lock a training run or an experiment holds while it writes.

``folder_lock(root)`` holds ``root/.lock`` with ``fcntl.flock`` for the life of the block;
the operating system releases it when the process ends, however it ends (SIGKILL
included), so a stale lock file never blocks the next run. The file names its holder
("pid 1234"), which a second writer is told.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from .errors import HmxError

LOCK_FILE = ".lock"


def _busy(root: Path, owner: str) -> HmxError:
    return HmxError(f"{root} is being run by {owner}. Wait for it to end (watch it with `hmx-mlx watch {root}`), "
                    "or stop it first.")


@contextlib.contextmanager
def folder_lock(root: str | Path) -> Iterator[None]:
    """Hold ``root``'s lock (creating the folder); HmxError naming the holder when another process has it."""
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fh = open(root / LOCK_FILE, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        owner = fh.read().strip() or "another process"
        fh.close()
        raise _busy(root, owner) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()}\n")
    fh.flush()
    try:
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def check_unlocked(root: str | Path) -> None:
    """HmxError naming the holder when another process holds ``root``'s lock; nothing is written.

    A check before work that would be wasted (loading a model, opening the live screen); the
    lock itself is taken by ``folder_lock``."""
    import fcntl

    path = Path(root) / LOCK_FILE
    if not path.is_file():
        return
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise _busy(Path(root), fh.read().strip() or "another process") from None
        fcntl.flock(fh, fcntl.LOCK_UN)
