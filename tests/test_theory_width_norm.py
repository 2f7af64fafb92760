"""Theory of finite-width fluctuations and of normalized MLPs, against closed forms and
numpy simulations written apart from the package."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradatlas.analysis.theory import batchnorm, finite_width

pytestmark = pytest.mark.unit


def _relu(u):
    return np.maximum(u, 0.0)


def _drelu(u):
    return (u > 0).astype(float)


# ---------------------------------------------------------------------------------------
# Finite width (Hanin and Nica 2019).


def test_one_layer_log_moments_match_a_monte_carlo_of_the_masked_gaussian():
    rng = np.random.default_rng(0)
    width, draws = 24, 400_000
    active = rng.binomial(width, 0.5, size=draws)
    active = active[active > 0]
    factor = 2.0 / width * rng.chisquare(active)
    mean, variance = finite_width.layer_log_moments(width)
    assert np.log(factor).mean() == pytest.approx(mean, abs=0.005)
    assert np.log(factor).var() == pytest.approx(variance, rel=0.01)


def test_log_variance_per_beta_tends_to_five():
    _, variance = finite_width.layer_log_moments(2048)
    assert variance * 2048 == pytest.approx(finite_width.LOG_VARIANCE_PER_BETA, rel=0.005)
    assert finite_width.beta([16, 48, 16, 48]) == pytest.approx(2 / 16 + 2 / 48)
    assert finite_width.mlp_widths(5, 16, 48.0) == [16, 48, 16, 48, 16]
    assert finite_width.mlp_widths(3, 16, float("nan")) == [16, 16, 16]


def _simulate_log_gain(widths, nets=3000, d_in=40, d_out=10, seed=0):
    """ln ||dz_0||^2 / ||g||^2 in He-initialized ReLU nets (forward then backward, many nets at
    once), for a random output gradient g and a random input; zero gradients left out."""
    rng = np.random.default_rng(seed)
    dims = [d_in, *widths]
    h = rng.standard_normal((nets, d_in, 1))
    weights, masks = [], []
    for i, n in enumerate(widths):
        w = rng.standard_normal((nets, n, dims[i])) * np.sqrt(2.0 / dims[i])
        z = w @ h
        weights.append(w)
        masks.append(z > 0)
        h = np.maximum(z, 0.0)
    head = rng.standard_normal((nets, d_out, widths[-1])) * np.sqrt(2.0 / widths[-1])
    g = rng.standard_normal((nets, d_out, 1))
    top = (g**2).sum(axis=(1, 2))
    g = masks[-1] * (head.transpose(0, 2, 1) @ g)
    for i in range(len(widths) - 1, 0, -1):
        g = masks[i - 1] * (weights[i].transpose(0, 2, 1) @ g)
    ratio = (g**2).sum(axis=(1, 2)) / top
    return ratio, np.log(ratio[ratio > 0])


@pytest.mark.parametrize("widths", [[32] * 8, [16, 48] * 4, [64] * 4])
def test_log_gain_moments_match_a_simulated_network(widths):
    ratio, logs = _simulate_log_gain(widths)
    mean, variance = finite_width.log_gain_moments(widths)
    assert logs.var() == pytest.approx(variance, rel=0.1)
    assert logs.mean() == pytest.approx(mean, abs=0.08)
    assert ratio.mean() == pytest.approx(1.0, rel=0.1)  # He: the mean gain stays 1


def test_equal_beta_gives_equal_fluctuation_whatever_the_depth():
    _, shallow = _simulate_log_gain([32] * 4, seed=1)
    _, deep = _simulate_log_gain([64] * 8, seed=2)
    assert shallow.var() == pytest.approx(deep.var(), rel=0.15)
    _, wide = _simulate_log_gain([128] * 4, seed=3)  # the shallow one's depth, a quarter of its beta
    assert wide.var() < 0.5 * shallow.var()


# ---------------------------------------------------------------------------------------
# Batch norm at a finite batch, layer norm.


def _simulate_normalized(phi, dphi, batch, axis, n=256, depth=24, nets=6, seed=0, eps=1e-5):
    """Per-layer ratio of ||dL/dz_l||^2 over the interior layers of a Linear -> norm -> phi
    stack in numpy, with the norm's backward written out; statistics over the batch (axis 0,
    batch norm) or over the units (axis 1, layer norm)."""
    rng = np.random.default_rng(seed)
    logs = []
    for _ in range(nets):
        h, weights, caches = rng.standard_normal((batch, n)), [], []
        for _ in range(depth):
            w = rng.standard_normal((n, n)) * 0.7 / math.sqrt(n)  # any scale: the norm cancels it
            z = h @ w.T
            sd = np.sqrt(z.var(axis, keepdims=True) + eps)
            u = (z - z.mean(axis, keepdims=True)) / sd
            h = phi(u)
            weights.append(w)
            caches.append((u, sd))
        grad_h, norms = rng.standard_normal((batch, n)), np.zeros(depth)
        for layer in reversed(range(depth)):
            u, sd = caches[layer]
            g_u = grad_h * dphi(u)
            g_z = (g_u - g_u.mean(axis, keepdims=True) - u * (g_u * u).mean(axis, keepdims=True)) / sd
            norms[layer] = np.sum(g_z**2)
            grad_h = g_z @ weights[layer]
        logs.append(np.log(norms))
    slope = np.polyfit(np.arange(4, depth - 4), np.mean(logs, axis=0)[4 : depth - 4], 1)[0]
    return float(np.exp(-slope))


@pytest.mark.parametrize("batch", [8, 32])
def test_finite_batch_rate_matches_a_simulated_relu_network(batch):
    measured = _simulate_normalized(_relu, _drelu, batch, axis=0)
    assert measured == pytest.approx(batchnorm.batchnorm_chi("relu", batch=batch), rel=0.04)


def test_finite_batch_rate_closed_form_for_linear_and_its_large_batch_limit():
    # phi(u) = u: d = 1, s = B / (B - 1), so lambda(B) = (B - 2) / (B - 3).
    for batch in (4, 8, 32):
        assert batchnorm.batchnorm_chi("linear", batch=batch) == pytest.approx((batch - 2) / (batch - 3), rel=1e-9)
    relu = [batchnorm.batchnorm_chi("relu", batch=b) for b in (8, 32, 512)]
    assert relu[0] > relu[1] > relu[2] > batchnorm.batchnorm_chi("relu")  # smaller batch, faster growth
    assert relu[2] == pytest.approx(math.pi / (math.pi - 1), rel=0.01)
    with pytest.raises(ValueError, match="at least 4"):
        batchnorm.batchnorm_chi("relu", batch=3)


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_layernorm_chi_matches_a_simulated_network(name):
    phi, dphi = {"relu": (_relu, _drelu), "tanh": (np.tanh, lambda u: 1 - np.tanh(u) ** 2)}[name]
    measured = _simulate_normalized(phi, dphi, batch=16, axis=1, n=512, nets=3)
    assert measured == pytest.approx(batchnorm.layernorm_chi(name), rel=0.03)
    assert batchnorm.layernorm_chi("relu") == pytest.approx(1.0, rel=1e-9)
