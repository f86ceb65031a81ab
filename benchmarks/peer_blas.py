"""Which BLAS a peer process of benchmarks/grpo_step.py actually loaded (it cannot import hmxfeel_mlx).

Shared by the peer scripts (``peer_grpo_*.py``), which run in their own virtualenvs
with only the standard library and the peer's packages.
"""

from __future__ import annotations

from pathlib import Path


def active_blas() -> str:
    """The BLAS library mapped into this process, as a short label."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    libs = sorted({line.split()[-1] for line in maps.splitlines() if "blas" in line.lower() and "/" in line})
    openblas = [p for p in libs if "openblas" in p and "numpy.libs" not in p and "scipy_openblas" not in p]
    if openblas:
        return f"OpenBLAS ({openblas[0]})"
    if any("mlx_cpu.libs" in p for p in libs):
        return "reference BLAS bundled with mlx[cpu] (slow)"
    return libs[0] if libs else "none loaded"
