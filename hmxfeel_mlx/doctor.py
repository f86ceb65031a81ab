"""`hmx-mlx doctor`: what this machine gives MLX, and the exact fix for each problem."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

from .models import backend, registry

MIN_GOOD_GFLOPS = 50.0


@dataclass
class Check:
    name: str
    value: str
    ok: bool = True
    fix: str = ""


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass  # no /proc (macOS): ask sysconf instead
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def run_checks(measure: bool = True) -> list[Check]:
    import mlx.core as mx

    checks = [
        Check("platform", f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"),
        Check("mlx", f"{mx.__version__}, device {backend.device_name()}"),
    ]
    metal = backend.uses_metal()
    if metal:
        checks.append(Check("weights", "kept quantized (Metal)"))
    else:
        blas = backend.active_blas()
        lib = backend.openblas_library()
        fix = ""
        if "OpenBLAS" not in blas:
            if lib is None and sys.platform.startswith("linux"):
                sudo = "" if os.geteuid() == 0 else "sudo "
                fix = f"{sudo}apt-get update && {sudo}{backend.APT_FIX}"
            elif lib is not None:
                fix = f"run through `hmx-mlx` (it preloads OpenBLAS) or set LD_PRELOAD={lib}"
        checks.append(Check("blas", blas, ok="OpenBLAS" in blas or sys.platform == "darwin", fix=fix))
        checks.append(Check("weights", "dequantized to fp32 at load (CPU backend)" if backend.cpu_speedups()
                            else f"kept as stored, mlx-lm's kernels ({backend.PATH_ENV}=metal)"))
    if measure:
        gflops = backend.measure_gemm_gflops()
        good = metal or gflops >= MIN_GOOD_GFLOPS
        checks.append(
            Check(
                "fp32 GEMM",
                f"{gflops:.1f} GFLOP/s (1024x1024, median of 5)",
                ok=good,
                fix="" if good else "install and preload OpenBLAS (see the blas line)",
            )
        )
    mem = available_memory_bytes()
    if mem is not None:
        gib = mem / 2**30
        checks.append(
            Check(
                "free memory",
                f"{gib:.1f} GiB",
                ok=gib >= 2,
                fix="" if gib >= 2 else "close other programs: training the default model needs about 2 GiB",
            )
        )
    checks.append(distributed_check())
    checks.append(Check("model cache", str(registry.cache_dir())))
    hf_home = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    checks.append(Check("hf cache", hf_home))
    for row in registry.cached_status():
        if row["available"]:
            checks.append(Check(f"model {row['alias']}", f"available offline ({row['location']})"))
        elif "embedded" in row["source"]:
            install = row["source"][len("embedded (") : -1]
            checks.append(Check(f"model {row['alias']}", "embedded wheel not installed", ok=False, fix=install))
        else:
            checks.append(
                Check(f"model {row['alias']}", f"not cached (downloads {row['source']} on first use)")
            )
    return checks


def distributed_check() -> Check:
    """The launch this process is part of: backend, rank and world size, and where each rank runs."""
    from .distributed.collectives import gather_objects
    from .distributed.world import world

    here = world()
    if not here.distributed:
        return Check("distributed", "one process (not launched; `mlx.launch -n K hmx-mlx ...` runs K ranks, "
                                    "see docs/distributed.md)")
    hosts = gather_objects(f"{platform.node()} (pid {os.getpid()}, {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}"
                           " BLAS threads)", here)
    ranks = "; ".join(f"{r}: {h}" for r, h in enumerate(hosts))
    return Check("distributed", f"{here.backend} backend, rank {here.rank} of world size {here.size}; ranks {ranks}")
