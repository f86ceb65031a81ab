"""Make MLX fast on the machine it runs on.

On Apple silicon MLX uses Metal and quantized weights stay quantized. The Linux
``mlx[cpu]`` wheel links the reference BLAS (an fp32 GEMM at ~5 GFLOP/s on a
2-core machine); preloading Debian's OpenBLAS (``libopenblas0-pthread``) makes
the same GEMM ~100 GFLOP/s. The preload must happen before the process loads
MLX, so the CLI re-executes itself once with ``LD_PRELOAD`` set (set
``HMX_MLX_OPENBLAS=0`` to opt out). Quantized and bf16 matmuls on the CPU
backend stay slow whatever the BLAS, so there models run in fp32.

Which of those settings a process uses is decided here, once (``backend_path``): the
"metal" path is mlx-lm's defaults (weights as stored, mlx-lm's modules and kernels as
they are); the "cpu" path dequantizes to fp32 and turns on ``cpu_kernels`` (attention and
SwiGLU, and the host kernels inside ``cpu_kernels.inference()``). Metal (or CUDA) gets the
metal path, the CPU backend the cpu path; ``HMX_MLX_BACKEND_PATH=metal`` runs the metal
path's settings on the CPU backend, so tests there exercise what Apple silicon runs
(slowly: quantized matmuls on the CPU backend are not optimised). See docs/backends.md.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

_REEXEC_MARK = "_HMX_MLX_REEXEC"
PATH_ENV = "HMX_MLX_BACKEND_PATH"
PATHS = ("metal", "cpu")
_announced: set[str] = set()
APT_FIX = "apt-get install -y libopenblas0-pthread"


def openblas_library() -> Path | None:
    """Debian/Ubuntu's pthread OpenBLAS exposing the reference BLAS ABI, if installed."""
    if not sys.platform.startswith("linux"):
        return None
    triplet = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}.get(platform.machine())
    candidates = []
    if triplet:
        candidates.append(Path(f"/usr/lib/{triplet}/openblas-pthread/libblas.so.3"))
    candidates.append(Path("/usr/lib/openblas-pthread/libblas.so.3"))
    return next((p for p in candidates if p.is_file()), None)


def preload_active(lib: Path) -> bool:
    return str(lib) in os.environ.get("LD_PRELOAD", "").replace(":", " ").split()


def reexec_with_openblas() -> None:
    """Re-execute this process with OpenBLAS preloaded, when that helps and has not been tried.

    Call before anything imports mlx. Returns normally when nothing is to be done.
    """
    if os.environ.get("HMX_MLX_OPENBLAS", "1") == "0" or os.environ.get(_REEXEC_MARK):
        return
    from ..distributed.world import launched, threads_per_rank

    lib = openblas_library()
    env = dict(os.environ)
    if lib is not None and not preload_active(lib):
        env["LD_PRELOAD"] = " ".join(filter(None, [str(lib), env.get("LD_PRELOAD", "")]))
    # Under mlx.launch the ranks on one machine share its cores: OpenBLAS reads its thread
    # count when it loads, so it is set before the (re-)executed process starts.
    if lib is not None and launched() and not env.get("OPENBLAS_NUM_THREADS"):
        env["OPENBLAS_NUM_THREADS"] = str(threads_per_rank())
    if env == dict(os.environ):
        return
    env[_REEXEC_MARK] = "1"
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    argv[0] = sys.executable
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def uses_metal() -> bool:
    import mlx.core as mx

    return mx.metal.is_available()


def gpu_available() -> bool:
    import mlx.core as mx

    return uses_metal() or (hasattr(mx, "cuda") and mx.cuda.is_available())


def backend_path() -> str:
    """The settings this process runs with: "metal" (mlx-lm's defaults) or "cpu" (fp32 and
    ``cpu_kernels``). ``HMX_MLX_BACKEND_PATH`` overrides the device's own choice. Read at
    every call, so a test can set the variable for one run."""
    value = os.environ.get(PATH_ENV, "").strip().lower()
    if value:
        if value not in PATHS:
            from ..errors import HmxError

            raise HmxError(f"{PATH_ENV}={value!r} is not a backend path: use one of {', '.join(PATHS)}, or unset it.")
        return value
    return "metal" if gpu_available() else "cpu"


def cpu_speedups() -> bool:
    """Whether the CPU-only speed-ups are on (fp32 weights, ``cpu_kernels``, host kernels):
    the one check every such speed-up consults."""
    return backend_path() == "cpu"


def device_name() -> str:
    import mlx.core as mx

    if mx.metal.is_available():
        info = mx.device_info() if hasattr(mx, "device_info") else {}
        return f"Metal GPU ({info.get('device_name', 'Apple silicon')})"
    if hasattr(mx, "cuda") and mx.cuda.is_available():
        return "CUDA GPU"
    return f"CPU ({os.cpu_count()} cores)"


def active_blas() -> str:
    """Which BLAS this process has loaded (read from the process memory map on Linux)."""
    if sys.platform == "darwin":
        return "Accelerate (macOS)"
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    libs = {line.split()[-1] for line in maps.splitlines() if "blas" in line.lower() and "/" in line}
    # numpy wheels bundle their own OpenBLAS (numpy.libs/...scipy_openblas...); MLX does not use it.
    openblas = sorted(p for p in libs if "openblas" in p and "numpy.libs" not in p and "scipy_openblas" not in p)
    if openblas:
        return f"OpenBLAS ({openblas[0]})"
    if any("mlx_cpu.libs" in p for p in libs):
        return "reference BLAS bundled with mlx[cpu] (slow)"
    return "none loaded yet" if not libs else sorted(libs)[0]


def measure_gemm_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Median fp32 GEMM throughput of MLX's default device, in GFLOP/s."""
    import mlx.core as mx

    a = mx.random.normal((n, n), key=mx.random.key(0))
    b = mx.random.normal((n, n), key=mx.random.key(1))
    mx.eval(a @ b)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mx.eval(a @ b)
        times.append(time.perf_counter() - t)
    times.sort()
    return 2 * n**3 / times[len(times) // 2] / 1e9


def announce_once(message: str) -> None:
    if message not in _announced:
        _announced.add(message)
        print(message, file=sys.stderr)


def describe_metal_path_on_cpu() -> str:
    return (f"note: {PATH_ENV}=metal on the CPU backend: weights kept as stored (quantized), mlx-lm's kernels; "
            "slow, meant for tests of the Apple silicon path")


def describe_cpu_mode() -> str:
    lib = openblas_library()
    blas = active_blas()
    if "OpenBLAS" in blas:
        how = f"using {blas}"
    elif lib is not None:
        how = f"OpenBLAS is installed but not loaded (run with LD_PRELOAD={lib})"
    else:
        how = f"slow reference BLAS; install OpenBLAS: {APT_FIX}"
    return f"note: CPU-only MLX: {how}; weights dequantized to fp32 (quantized matmuls are slow on the CPU backend)"
