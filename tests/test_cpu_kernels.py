"""The CPU attention and SwiGLU equal MLX's own, in values and gradients."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from hmxfeel_mlx.models import cpu_kernels
from hmxfeel_mlx.models.cpu_kernels import fast_sdpa, fast_softmax, fast_swiglu, inference, install
from hmxfeel_mlx.models.loading import load_model


def _close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=tol, atol=tol)


def test_swiglu_values_and_gradients_match_silu_including_extremes():
    g = mx.array([-200.0, -90.0, -20.0, -1.5, 0.0, 0.3, 4.0, 50.0, 200.0])
    x = mx.linspace(-2, 2, 9)
    _close(fast_swiglu(g, x), nn.silu(g) * x)
    ref = mx.grad(lambda a, b: (nn.silu(a) * b).sum(), argnums=(0, 1))(g, x)
    got = mx.grad(lambda a, b: fast_swiglu(a, b).sum(), argnums=(0, 1))(g, x)
    for r, o in zip(ref, got):
        assert np.isfinite(np.array(o)).all()
        _close(o, r)


def test_softmax_matches_and_survives_large_scores():
    s = mx.array([[1000.0, 999.0, -1000.0, 0.0], [-3.0, -3.0, -3.0, -3.0]])
    _close(fast_softmax(s), mx.softmax(s, axis=-1))


def _inputs(B=2, Hq=6, Hkv=2, L=5, T=9, D=8):
    k = mx.random.split(mx.random.key(0), 3)
    return (mx.random.normal((B, Hq, L, D), key=k[0]), mx.random.normal((B, Hkv, T, D), key=k[1]),
            mx.random.normal((B, Hkv, T, D), key=k[2]))


def _masks(B, Hq, L, T):
    causal = (mx.arange(L)[:, None] + (T - L)) >= mx.arange(T)[None, :]
    pads = mx.array([0, 3, 1][:B])
    padded = mx.broadcast_to(causal, (B, 1, L, T)) & (mx.arange(T) >= pads[:, None])[:, None, None, :]
    odd_heads_late_keys = (mx.arange(Hq) % 2 == 0)[None, :, None, None] | (mx.arange(T) >= 4)  # heads differ
    per_head = mx.broadcast_to(causal, (B, Hq, L, T)) & odd_heads_late_keys
    additive = mx.where(padded, 0.0, -1e9)
    return {"none": None, "causal": "causal", "bool": padded, "per_head": per_head, "additive": additive}


@pytest.fixture(params=["one stream", "rows split over streams"])
def row_split(request, monkeypatch):
    """Run attention on one stream, or force the split into row groups on separate CPU streams
    (3 streams for 2-3 rows: uneven groups, and more streams than some batches have rows)."""
    if request.param == "one stream":
        monkeypatch.setattr(cpu_kernels, "cpu_streams", lambda: ())
    else:
        streams = tuple(mx.new_stream(mx.cpu) for _ in range(3))
        monkeypatch.setattr(cpu_kernels, "cpu_streams", lambda: streams)
        monkeypatch.setattr(cpu_kernels, "PARALLEL_MIN_SCORES", 0)
    return request.param


@pytest.mark.parametrize("B", [2, 3])
@pytest.mark.parametrize("L", [1, 5])
@pytest.mark.parametrize("mask_kind", ["none", "causal", "bool", "per_head", "additive"])
def test_attention_matches_mlx_fast_values_and_gradients(L, mask_kind, B, row_split):
    q, k, v = _inputs(B=B, L=L)
    mask = _masks(B, 6, L, 9)[mask_kind]

    def ref(q, k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask=mask)

    def got(q, k, v):
        return fast_sdpa(q, k, v, scale=0.3, mask=mask)

    _close(got(q, k, v), ref(q, k, v))
    w = mx.random.normal(ref(q, k, v).shape, key=mx.random.key(7))
    g_ref = mx.grad(lambda *a: (ref(*a) * w).sum(), argnums=(0, 1, 2))(q, k, v)
    g_got = mx.grad(lambda *a: (got(*a) * w).sum(), argnums=(0, 1, 2))(q, k, v)
    for r, o in zip(g_ref, g_got):
        _close(o, r, 1e-4)


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("mask_kind", ["none", "causal", "bool", "per_head", "additive"])
def test_host_attention_matches_mlx_fast(B, mask_kind, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "HOST_MIN_ELEMENTS", 0)
    ran, real = [], cpu_kernels._sdpa_host
    monkeypatch.setattr(cpu_kernels, "_sdpa_host", lambda *a, **k: ran.append(1) or real(*a, **k))
    q, k, v = _inputs(B=B, L=5)
    mask = _masks(B, 6, 5, 9)[mask_kind]
    with inference():
        got = fast_sdpa(q, k, v, scale=0.3, mask=mask)
    assert ran
    _close(got, mx.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask=mask))


def test_host_attention_keeps_a_fully_masked_row_finite(monkeypatch):
    """A query row that may attend to nothing (a padding position) must not turn into NaN:
    its garbage would reach other rows through 0 * NaN in the value product."""
    monkeypatch.setattr(cpu_kernels, "HOST_MIN_ELEMENTS", 0)
    q, k, v = _inputs(B=2, L=5)
    mask = mx.broadcast_to(_masks(2, 6, 5, 9)["bool"], (2, 1, 5, 9))
    mask = mx.concatenate([mx.zeros((2, 1, 1, 9), dtype=mx.bool_), mask[:, :, 1:]], axis=2)  # row 0: nothing
    with inference():
        got = fast_sdpa(q, k, v, scale=0.3, mask=mask)
    assert np.isfinite(np.array(got)).all()
    _close(got[:, :, 1:], mx.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask=mask)[:, :, 1:])


def test_host_swiglu_matches_silu_including_extremes_without_warnings(monkeypatch):
    import warnings

    monkeypatch.setattr(cpu_kernels, "HOST_MIN_ELEMENTS", 0)
    ran, real = [], cpu_kernels._swiglu_host
    monkeypatch.setattr(cpu_kernels, "_swiglu_host", lambda *a: ran.append(1) or real(*a))
    g = mx.array([-200.0, -90.0, -20.0, -1.5, 0.0, 0.3, 4.0, 50.0, 200.0] * 4).reshape(4, 9)
    x = mx.broadcast_to(mx.linspace(-2, 2, 9), (4, 9))
    with inference(), warnings.catch_warnings():
        warnings.simplefilter("error")  # exp(-g) overflows for g < -88; that is silu's limit, not an error
        got = cpu_kernels.swiglu(g, x)
    assert ran
    _close(got, nn.silu(g) * x)


def test_host_kernels_stay_out_of_gradients(monkeypatch):
    """Outside ``inference()`` nothing runs on the host, whatever the size: gradients flow."""
    monkeypatch.setattr(cpu_kernels, "HOST_MIN_ELEMENTS", 0)
    monkeypatch.setattr(cpu_kernels, "_sdpa_host", lambda *a, **k: pytest.fail("host attention outside inference()"))
    monkeypatch.setattr(cpu_kernels, "_swiglu_host", lambda *a, **k: pytest.fail("host SwiGLU outside inference()"))
    q, k, v = _inputs(B=2, L=5)
    g = mx.grad(lambda q: (fast_sdpa(q, k, v, scale=0.3, mask="causal") * cpu_kernels.swiglu(q, q)).sum())(q)
    ref = mx.grad(lambda q: (mx.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask="causal")
                             * nn.silu(q) * q).sum())(q)
    _close(g, ref, 1e-4)


def test_install_swaps_the_model_module_and_keeps_logits_and_gradients(tiny_model_dir, monkeypatch):
    import sys

    from mlx_lm.models import activations, base

    tiny = load_model(str(tiny_model_dir))  # loading installs the kernels on the CPU backend
    module = sys.modules[type(tiny.model).__module__]
    assert module.swiglu is cpu_kernels.swiglu and module.scaled_dot_product_attention is not base.scaled_dot_product_attention
    assert install(tiny.model) == []  # already installed: nothing more to swap
    x = mx.array([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])

    def loss(params):
        tiny.model.update(params)
        return nn.losses.cross_entropy(tiny.model(x)[:, :-1], x[:, 1:]).mean()

    params = tiny.model.trainable_parameters()
    fast_logits, fast_grad = tiny.model(x), mx.grad(loss)(params)
    with monkeypatch.context() as m:  # MLX's own kernels
        m.setattr(module, "swiglu", activations.swiglu)
        m.setattr(module, "scaled_dot_product_attention", base.scaled_dot_product_attention)
        ref_logits, ref_grad = tiny.model(x), mx.grad(loss)(params)
    _close(fast_logits, ref_logits, 1e-4)
    from mlx.utils import tree_flatten

    for (name, a), (_, b) in zip(tree_flatten(fast_grad), tree_flatten(ref_grad)):
        _close(a, b, 1e-4)
