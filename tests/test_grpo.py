"""Tests for hmxfeel_mlx.training.grpo: hand-computed values, finite-difference gradients."""

import math

import mlx.core as mx
import numpy as np
import pytest

from hmxfeel_mlx.training.grpo import (
    LOSS_TYPES,
    group_advantages,
    grpo_loss,
    kl_k3,
    mask_truncated,
    token_logprobs,
    zero_spread_groups,
)

NAN = float("nan")


def np_(a: mx.array) -> np.ndarray:
    return np.array(a.astype(mx.float32) if a.dtype != mx.bool_ else a)


# --------------------------------------------------------------------------- #
# group_advantages / zero_spread_groups
# --------------------------------------------------------------------------- #


def test_group_advantages_hand_example():
    # group [1,2,3]: mean 2, unbiased var (1+0+1)/2 = 1, std 1 -> [-1,0,1]/(1+1e-4)
    # group [0,0,6]: mean 2, var (4+4+16)/2 = 12, std 3.4641016
    adv = group_advantages(mx.array([1.0, 2.0, 3.0, 0.0, 0.0, 6.0]), 3)
    assert adv.dtype == mx.float32 and adv.shape == (6,)
    s = math.sqrt(12.0)
    want = [-1 / 1.0001, 0.0, 1 / 1.0001, -2 / (s + 1e-4), -2 / (s + 1e-4), 4 / (s + 1e-4)]
    np.testing.assert_allclose(np_(adv), want, rtol=1e-6, atol=1e-7)


def test_group_advantages_no_std_scaling():
    # Dr. GRPO: just r - mean. [1,2,3] -> [-1,0,1]; [0,0,6] -> [-2,-2,4]
    adv = group_advantages(mx.array([1.0, 2.0, 3.0, 0.0, 0.0, 6.0]), 3, scale_std=False)
    np.testing.assert_allclose(np_(adv), [-1, 0, 1, -2, -2, 4], atol=1e-7)


def test_group_advantages_int_rewards_give_float32():
    adv = group_advantages(mx.array([1, 2, 3]), 3)
    assert adv.dtype == mx.float32
    np.testing.assert_allclose(np_(adv), [-1 / 1.0001, 0, 1 / 1.0001], rtol=1e-6)


def test_group_advantages_nan_rewards_excluded():
    # group 0 [1, nan, 3]: finite {1,3}, mean 2, unbiased var (1+1)/1 = 2,
    #   std 1.41421356 -> [-1/(1.41421356+1e-4), 0, +1/(...)]
    # group 1 [nan, 5, nan]: one finite reward -> all zeros
    # group 2 [inf, 2, 4]: inf treated like nan -> [0, -1/(s+eps), 1/(s+eps)]
    r = mx.array([1.0, NAN, 3.0, NAN, 5.0, NAN, float("inf"), 2.0, 4.0])
    adv = np_(group_advantages(r, 3))
    s = math.sqrt(2.0) + 1e-4
    np.testing.assert_allclose(adv, [-1 / s, 0, 1 / s, 0, 0, 0, 0, -1 / s, 1 / s], rtol=1e-6)
    assert np.all(np.isfinite(adv))


def test_group_advantages_all_nan_group_is_zero():
    adv = np_(group_advantages(mx.array([NAN, NAN, 1.0, 2.0]), 2))
    # group 0 all nan -> 0,0 ; group 1 [1,2]: mean 1.5, var 0.5, std 0.70710678
    s = math.sqrt(0.5) + 1e-4
    np.testing.assert_allclose(adv, [0, 0, -0.5 / s, 0.5 / s], rtol=1e-6)


def test_group_advantages_identical_rewards_zero():
    adv = group_advantages(mx.array([0.7, 0.7, 0.7, 0.7]), 4)
    assert np.all(np_(adv) == 0.0)
    adv = group_advantages(mx.array([0.7, 0.7, 0.7, 0.7]), 4, scale_std=False)
    assert np.all(np_(adv) == 0.0)


@pytest.mark.parametrize("n,g", [(5, 2), (4, 1), (4, 0), (6, 4)])
def test_group_advantages_bad_group_size(n, g):
    with pytest.raises(ValueError):
        group_advantages(mx.zeros((n,)), g)
    with pytest.raises(ValueError):
        zero_spread_groups(mx.zeros((n,)), g)


def test_zero_spread_groups():
    r = mx.array([
        1.0, 1.0, 1.0,        # all equal -> True
        1.0, 1.0 + 1e-8, 1.0,  # equal within tol -> True
        1.0, 2.0, 1.0,        # spread -> False
        NAN, 3.0, NAN,        # one finite -> True
        NAN, NAN, NAN,        # none finite -> True
        NAN, 3.0, 3.0,        # finite ones equal -> True
        NAN, 3.0, 4.0,        # finite ones differ -> False
    ])
    z = zero_spread_groups(r, 3)
    assert z.dtype == mx.bool_ and z.shape == (7,)
    assert np_(z).tolist() == [True, True, False, True, True, True, False]
    # Consistent with advantages: flagged groups have all-zero advantages.
    adv = np_(group_advantages(r, 3)).reshape(7, 3)
    assert np.all(adv[np_(z)] == 0.0)


# --------------------------------------------------------------------------- #
# token_logprobs
# --------------------------------------------------------------------------- #


def test_token_logprobs_hand_example():
    logits = mx.array([[[1.0, 2.0, 3.0]]])  # (1, 1, 3)
    # logsumexp = 3 + log(1 + e^-1 + e^-2) = 3 + log(1.50321472) = 3.40760596
    # target 2 -> 3 - 3.40760596 = -0.40760596 ; target 0 -> 1 - 3.40760596
    lp = token_logprobs(logits, mx.array([[2]]))
    assert lp.dtype == mx.float32 and lp.shape == (1, 1)
    assert abs(lp.item() - (-0.40760596)) < 1e-6
    assert abs(token_logprobs(logits, mx.array([[0]])).item() - (-2.40760596)) < 1e-6
    # T = 2: logits/2 = [0.5, 1, 1.5]; lse = 1.5 + log(1 + e^-0.5 + e^-1)
    #   = 1.5 + log(1.97441010) = 1.5 + 0.68026967 -> target 2: -0.68026967
    lp2 = token_logprobs(logits, mx.array([[2]]), temperature=2.0)
    assert abs(lp2.item() - (-0.68026967)) < 1e-6


def test_token_logprobs_low_precision_inputs_are_float32():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 11)).astype(np.float32) * 3
    targets = mx.array(rng.integers(0, 11, size=(2, 5)))
    ref = np_(token_logprobs(mx.array(x), targets, temperature=0.7))
    for dt in (mx.bfloat16, mx.float16):
        low = mx.array(x).astype(dt)
        lp = token_logprobs(low, targets, temperature=0.7)
        assert lp.dtype == mx.float32
        # Exact (up to fp32 roundoff) against fp32 maths on the rounded inputs...
        same = np_(token_logprobs(low.astype(mx.float32), targets, temperature=0.7))
        np.testing.assert_allclose(np_(lp), same, rtol=1e-6, atol=1e-6)
        # ...and close to the full-precision result (bf16 keeps ~3 digits).
        np.testing.assert_allclose(np_(lp), ref, atol=0.15)


def test_token_logprobs_bad_temperature_and_shapes():
    with pytest.raises(ValueError):
        token_logprobs(mx.zeros((1, 1, 3)), mx.array([[0]]), temperature=0.0)
    with pytest.raises(ValueError):
        token_logprobs(mx.zeros((1, 2, 3)), mx.array([[0]]))


# --------------------------------------------------------------------------- #
# kl_k3 / mask_truncated
# --------------------------------------------------------------------------- #


def test_kl_k3():
    x = mx.array([-1.0, -0.3, -5.0])
    assert np.all(np_(kl_k3(x, x)) == 0.0)
    # ref - logp = ln 2: 2 - 0.69314718 - 1 = 0.30685282
    # ref - logp = -1:  e^-1 + 1 - 1 = 0.36787944
    k = kl_k3(mx.array([-1.0, -1.0]), mx.array([-1.0 + math.log(2), -2.0]))
    np.testing.assert_allclose(np_(k), [0.30685282, 0.36787944], rtol=1e-6)
    rng = np.random.default_rng(2)
    a, b = (mx.array(rng.normal(size=200).astype(np.float32) * 3) for _ in range(2))
    assert np.all(np_(kl_k3(a, b)) >= 0.0)


def test_mask_truncated():
    mask = mx.array([[1, 1, 0], [1, 1, 1], [1, 0, 0]], dtype=mx.float32)
    out = mask_truncated(mask, mx.array([False, True, False]))
    assert out.dtype == mx.float32
    assert np_(out).tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]
    with pytest.raises(ValueError):
        mask_truncated(mask, mx.array([True]))


# --------------------------------------------------------------------------- #
# grpo_loss values
# --------------------------------------------------------------------------- #

# Shared off-policy example. Two sequences, eps = 0.2 (band [0.8, 1.2]).
#  seq 0: A = +1, 3 tokens, ratios [1.1, 1.5, 0.5]
#     clipped [1.1, 1.2, 0.8]; -min(r*A, c*A) = [-1.1, -1.2, -0.5]   sum -2.8
#  seq 1: A = -2, 2 tokens, ratios [0.5, 1.5, (masked, ratio e^50)]
#     r*A = [-1.0, -3.0], c*A = [-1.6, -2.4]; -min = [1.6, 3.0]     sum 4.6
RATIOS = [[1.1, 1.5, 0.5], [0.5, 1.5, 1.0]]
MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
ADV = [1.0, -2.0]


def _example():
    old = mx.array([[-1.0, -2.0, -0.5], [-1.5, -0.7, -60.0]])
    logp = old + mx.log(mx.array(RATIOS))
    # Garbage on the masked token: a huge log-ratio must not leak (inf/nan).
    logp = mx.where(mx.array(MASK) > 0, logp, mx.array(-10.0))
    return logp, old, mx.array(ADV), mx.array(MASK)


@pytest.mark.parametrize(
    "loss_type,kw,want",
    [
        ("grpo", {}, (-2.8 / 3 + 4.6 / 2) / 2),  # (-0.93333 + 2.3) / 2 = 0.68333
        ("bnpo", {}, 1.8 / 5),  # (-2.8 + 4.6) / 5 tokens = 0.36
        ("dapo", {}, 1.8 / 5),  # one process, no accumulation: = bnpo
        ("dr_grpo", {"max_completion_length": 4}, 1.8 / 8),  # 1.8 / (B=2 * 4) = 0.225
    ],
)
def test_grpo_loss_types_hand_values(loss_type, kw, want):
    logp, old, adv, mask = _example()
    loss, m = grpo_loss(logp, old, adv, mask, loss_type=loss_type, **kw)
    assert loss.shape == () and loss.dtype == mx.float32
    assert abs(loss.item() - want) < 1e-5
    # Clip metrics over 5 mask tokens: low = seq1 tok0 (0.5 < 0.8, A < 0);
    # high = seq0 tok1 (1.5 > 1.2, A > 0). seq0 tok2 (0.5, A > 0) and seq1
    # tok1 (1.5, A < 0) are outside the band but not clipped by the min.
    assert abs(m["clip_ratio/low_mean"].item() - 0.2) < 1e-6
    assert abs(m["clip_ratio/high_mean"].item() - 0.2) < 1e-6
    assert abs(m["clip_ratio/region_mean"].item() - 0.4) < 1e-6
    assert m["kl"].item() == 0.0


def test_grpo_loss_epsilon_high():
    # eps_high = 0.6 -> band [0.8, 1.6]: seq0 tok1 (1.5) is no longer clipped,
    # its term becomes -1.5 instead of -1.2: sums -3.1 and 4.6 -> bnpo 1.5 / 5 = 0.3
    logp, old, adv, mask = _example()
    loss, m = grpo_loss(logp, old, adv, mask, loss_type="bnpo", epsilon_high=0.6)
    assert abs(loss.item() - 0.3) < 1e-5
    assert m["clip_ratio/high_mean"].item() == 0.0
    assert abs(m["clip_ratio/low_mean"].item() - 0.2) < 1e-6


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_grpo_loss_on_policy_is_weighted_mean_advantage(loss_type):
    # ratio = 1 everywhere -> per-token loss = -A.
    # seq0: A=1, 3 tokens -> -3 ; seq1: A=-2, 1 token -> +2
    # grpo: (-1 + 2)/2 = 0.5 ; bnpo/dapo: -1/4 = -0.25 ; dr_grpo (L=4): -1/8
    want = {"grpo": 0.5, "bnpo": -0.25, "dapo": -0.25, "dr_grpo": -0.125}[loss_type]
    logp = mx.array([[-1.0, -2.0, -3.0], [-0.5, -0.6, -0.7]])
    mask = mx.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    loss, m = grpo_loss(logp, logp, mx.array([1.0, -2.0]), mask,
                        loss_type=loss_type, max_completion_length=4)
    assert abs(loss.item() - want) < 1e-6
    assert m["clip_ratio/region_mean"].item() == 0.0


def test_grpo_loss_beta_adds_k3_mean():
    logp, old, adv, mask = _example()
    # ref - logp on the 5 mask tokens: [ln2, 0, 0, -1, 0]  (masked token: anything)
    d = mx.array([[math.log(2), 0.0, 0.0], [-1.0, 0.0, 123.0]])
    ref = logp + d
    # k3 = [0.30685282, 0, 0, 0.36787944, 0]; mean over 5 = 0.13494645
    k3_mean = (0.30685282 + 0.36787944) / 5
    base, _ = grpo_loss(logp, old, adv, mask, loss_type="bnpo")
    loss, m = grpo_loss(logp, old, adv, mask, ref_logp=ref, beta=0.1, loss_type="bnpo")
    assert abs(m["kl"].item() - k3_mean) < 1e-6
    assert abs(loss.item() - (base.item() + 0.1 * k3_mean)) < 1e-6
    assert np.isfinite(loss.item())


def test_grpo_loss_beta_zero_ignores_ref_and_beta_needs_ref():
    logp, old, adv, mask = _example()
    # beta == 0: ref_logp is never read, even a wrongly-shaped one.
    grpo_loss(logp, old, adv, mask, ref_logp=mx.zeros((7,)), beta=0.0)
    with pytest.raises(ValueError):
        grpo_loss(logp, old, adv, mask, beta=0.04)


def test_grpo_loss_bad_arguments():
    logp, old, adv, mask = _example()
    with pytest.raises(ValueError, match="grpo.*bnpo.*dapo.*dr_grpo"):
        grpo_loss(logp, old, adv, mask, loss_type="sum")
    with pytest.raises(ValueError):
        grpo_loss(logp, old, adv, mask, loss_type="dr_grpo")
    with pytest.raises(ValueError):
        grpo_loss(logp, old, mx.array([1.0]), mask)
    with pytest.raises(ValueError):
        grpo_loss(logp, old[:, :2], adv, mask)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_grpo_loss_zero_length_sequences_finite(loss_type):
    logp = mx.array([[-1.0, -2.0], [-0.5, -0.5]])
    old = logp - 0.1
    ref = logp + 0.2
    # one empty sequence in the batch
    mask = mx.array([[1.0, 1.0], [0.0, 0.0]])
    loss, m = grpo_loss(logp, old, mx.array([1.0, -1.0]), mask, ref_logp=ref, beta=0.1,
                        loss_type=loss_type, max_completion_length=2)
    assert np.isfinite(loss.item()) and all(np.isfinite(v.item()) for v in m.values())
    # whole batch empty -> loss 0 and metrics 0, not nan
    loss, m = grpo_loss(logp, old, mx.array([1.0, -1.0]), mx.zeros((2, 2)), ref_logp=ref,
                        beta=0.1, loss_type=loss_type, max_completion_length=2)
    assert loss.item() == 0.0 and all(v.item() == 0.0 for v in m.values())


# --------------------------------------------------------------------------- #
# Gradients
# --------------------------------------------------------------------------- #

B, T, V = 2, 3, 4
TARGETS = mx.array([[0, 3, 1], [2, 2, 0]])
GMASK = mx.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
# log(ratio) offsets at logits0: +0.5 (ratio 1.65, clipped if A > 0),
# -0.5 (0.61, clipped if A < 0), 0 and +-0.05 (inside the band). All are
# far from the band edges, so an eps = 1e-3 step never crosses them.
OFFSETS = mx.array([[0.5, -0.5, 0.05], [0.5, -0.05, 0.0]])


def _grad_setup(seed=3):
    rng = np.random.default_rng(seed)
    logits0 = mx.array(rng.normal(size=(B, T, V)).astype(np.float32))
    lp0 = token_logprobs(logits0, TARGETS)
    old = mx.stop_gradient(lp0 - OFFSETS)
    ref = mx.array(np.array(lp0) + rng.normal(size=(B, T)).astype(np.float32) * 0.3)
    return logits0, old, ref


@pytest.mark.parametrize(
    "loss_type,beta,adv",
    [
        ("grpo", 0.0, [1.0, -0.7]),
        ("dr_grpo", 0.0, [-1.3, 0.9]),
        ("grpo", 0.2, [1.0, -0.7]),
        ("dr_grpo", 0.2, [0.8, 0.6]),
        ("dapo", 0.2, [-1.0, 1.0]),
    ],
)
def test_grpo_loss_gradient_matches_finite_differences(loss_type, beta, adv):
    logits0, old, ref = _grad_setup()
    A = mx.array(adv)

    def f(logits):
        lp = token_logprobs(logits, TARGETS, temperature=0.9)
        loss, _ = grpo_loss(lp, old, A, GMASK, ref_logp=ref, beta=beta,
                            loss_type=loss_type, max_completion_length=5)
        return loss

    g = np.array(mx.grad(f)(logits0))
    x0 = np.array(logits0)
    h = 1e-3
    fd = np.zeros_like(x0)
    for idx in np.ndindex(*x0.shape):
        xp, xm = x0.copy(), x0.copy()
        xp[idx] += h
        xm[idx] -= h
        fd[idx] = (f(mx.array(xp)).item() - f(mx.array(xm)).item()) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=1e-2, atol=2e-3)
    assert np.abs(g).max() > 1e-2  # not vacuous
    # Masked position (seq 1, token 2) gets no gradient at all.
    assert np.all(g[1, 2] == 0.0)


def test_identical_rewards_group_gives_exactly_zero_gradient():
    adv = group_advantages(mx.array([0.5, 0.5, 0.5, 0.5]), 4)  # (4,)
    assert np.all(np_(adv) == 0.0)
    rng = np.random.default_rng(4)
    logits0 = mx.array(rng.normal(size=(4, 3, V)).astype(np.float32))
    targets = mx.array(rng.integers(0, V, size=(4, 3)))
    # Off-policy ratios inside and outside the clip band.
    old = mx.stop_gradient(token_logprobs(logits0, targets)
                           - mx.array(rng.normal(size=(4, 3)).astype(np.float32)))
    mask = mx.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    for loss_type in LOSS_TYPES:
        def f(logits):
            lp = token_logprobs(logits, targets)
            return grpo_loss(lp, old, adv, mask, loss_type=loss_type,
                             max_completion_length=3)[0]

        loss, g = mx.value_and_grad(f)(logits0)
        assert loss.item() == 0.0
        assert np.all(np.array(g) == 0.0)
