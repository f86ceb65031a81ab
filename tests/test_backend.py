"""Backend choice: OpenBLAS re-exec decision, BLAS detection and the GEMM measurement."""

from __future__ import annotations

import os
import sys

import pytest

from hmxfeel_mlx import doctor
from hmxfeel_mlx.models import backend


def test_reexec_sets_preload_once(monkeypatch, tmp_path):
    lib = tmp_path / "libblas.so.3"
    lib.write_text("")
    calls = []
    monkeypatch.setattr(backend, "openblas_library", lambda: lib)
    monkeypatch.setattr(os, "execve", lambda exe, argv, env: calls.append((exe, argv, env)))
    monkeypatch.delenv("_HMX_MLX_REEXEC", raising=False)
    monkeypatch.delenv("HMX_MLX_OPENBLAS", raising=False)
    monkeypatch.setenv("LD_PRELOAD", "")
    backend.reexec_with_openblas()
    assert len(calls) == 1
    exe, argv, env = calls[0]
    assert exe == sys.executable and argv[0] == sys.executable
    assert env["LD_PRELOAD"].split()[0] == str(lib) and env["_HMX_MLX_REEXEC"] == "1"
    # Already marked (the re-executed child) or opted out: no second exec.
    monkeypatch.setenv("_HMX_MLX_REEXEC", "1")
    backend.reexec_with_openblas()
    monkeypatch.delenv("_HMX_MLX_REEXEC")
    monkeypatch.setenv("HMX_MLX_OPENBLAS", "0")
    backend.reexec_with_openblas()
    assert len(calls) == 1


def test_no_reexec_without_openblas(monkeypatch):
    monkeypatch.setattr(backend, "openblas_library", lambda: None)
    monkeypatch.setattr(os, "execve", lambda *a: pytest.fail("must not exec"))
    monkeypatch.delenv("_HMX_MLX_REEXEC", raising=False)
    backend.reexec_with_openblas()


def test_active_blas_matches_the_preload():
    import mlx.core as mx

    mx.eval(mx.ones((8, 8)) @ mx.ones((8, 8)))
    lib = backend.openblas_library()
    blas = backend.active_blas()
    if lib is not None and backend.preload_active(lib):
        assert blas.startswith("OpenBLAS") and str(lib) in blas
    else:
        assert "OpenBLAS" not in blas or sys.platform == "darwin"


def test_gemm_measurement_is_positive():
    assert backend.measure_gemm_gflops(n=128, repeats=3) > 0


def test_doctor_flags_slow_blas_with_the_fix(monkeypatch):
    monkeypatch.setattr(backend, "active_blas", lambda: "reference BLAS bundled with mlx[cpu] (slow)")
    monkeypatch.setattr(backend, "openblas_library", lambda: None)
    monkeypatch.setattr(backend, "uses_metal", lambda: False)
    monkeypatch.setattr(backend, "measure_gemm_gflops", lambda: 5.0)
    checks = {c.name: c for c in doctor.run_checks()}
    if sys.platform.startswith("linux"):
        assert not checks["blas"].ok and "apt-get install -y libopenblas0-pthread" in checks["blas"].fix
    assert not checks["fp32 GEMM"].ok and "5.0 GFLOP/s" in checks["fp32 GEMM"].value
