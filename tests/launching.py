"""Running hmx-mlx under ``mlx.launch -n K --backend ring`` on localhost from the tests.

The ranks get one BLAS thread each (as two ranks on this 2-core machine do), and so does the
single-process reference run: results are then equal bit for bit when the batches align
(docs/distributed.md)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
HMX = str(BIN / "hmx-mlx")
LAUNCH = str(BIN / "mlx.launch")


def free_port(span: int = 4) -> int:
    """A port p with p .. p+span-1 free (the ring backend listens on one port per rank)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + span >= 65535:
            continue
        try:
            for q in range(port, port + span):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
            return port
        except OSError:
            continue
    raise RuntimeError("no free ports")


def env(**extra) -> dict:
    out = {**os.environ, "OPENBLAS_NUM_THREADS": "1", **extra}
    out.pop("_HMX_MLX_REEXEC", None)
    return out


def command(ranks: int, *args: str) -> list[str]:
    """The command line: ``hmx-mlx ARGS`` alone (ranks 0) or under mlx.launch with ``ranks`` ranks."""
    if ranks == 0:
        return [HMX, *args]
    return [LAUNCH, "-n", str(ranks), "--backend", "ring", "-p", str(free_port(ranks)), HMX, *args]


def run(ranks: int, *args: str, cwd: Path | None = None, timeout: float = 300, check: bool = True,
        **extra_env) -> subprocess.CompletedProcess:
    out = subprocess.run(command(ranks, *args), cwd=cwd, env=env(**extra_env), capture_output=True, text=True,
                         timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} on {ranks} rank(s) failed ({out.returncode}):\n{out.stdout}\n"
                             f"{out.stderr}")
    return out
