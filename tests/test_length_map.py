"""The per-example mean-field prediction (theory.length_map, the theory table's
``predicted_factor_per_example``) against an independent finite-width Monte Carlo in numpy.

The Monte Carlo below is written apart from the package: hand-written activations and their
derivatives, Gaussian weights of variance sigma_w^2 / fan_in, a 10-way softmax head with
cross-entropy on random labels, the per-example gradient norms ||dLoss/dz_l|| averaged over the
batch (what ``backprop_norm`` records) and a log-linear fit by ``numpy.polyfit``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import erf, expit

from gradatlas.analysis import theory
from gradatlas.analysis.theory import length_map
from gradatlas.analysis.theory.gaussian import activation_functions, gaussian_expectation

pytestmark = pytest.mark.unit

FEATURES, CLASSES = 40, 10  # mnist1d's input width and classes (the table reads them by data name)
WIDTH, DEPTH, BATCH, SEEDS = 128, 20, 32, 16
# The Monte Carlo's mean over seeds must lie within this many standard errors of the prediction.
SEED_SPREAD_Z = 4.0


def _phi(name):
    if name == "tanh":
        return np.tanh, lambda z: 1.0 - np.tanh(z) ** 2
    if name == "gelu":
        cdf = lambda z: 0.5 * (1.0 + erf(z / np.sqrt(2.0)))  # noqa: E731
        return (lambda z: z * cdf(z)), (lambda z: cdf(z) + z * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi))
    if name == "silu":
        return (lambda z: z * expit(z)), (lambda z: expit(z) * (1.0 + z * (1.0 - expit(z))))
    raise KeyError(name)


def monte_carlo_profile(name, sigma_w2, x, y, seed):
    """Batch mean of ||dLoss/dz_l|| for l = 0..DEPTH-1 of one random network (zero biases)."""
    phi, dphi = _phi(name)
    rng = np.random.default_rng(seed)
    h, zs, weights, fan = x, [], [], x.shape[1]
    for _ in range(DEPTH):
        w = rng.standard_normal((fan, WIDTH)) * np.sqrt(sigma_w2 / fan)
        z = h @ w
        weights.append(w)
        zs.append(z)
        h, fan = phi(z), WIDTH
    head = rng.standard_normal((WIDTH, CLASSES)) * np.sqrt(sigma_w2 / WIDTH)
    logits = h @ head
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0  # dLoss/dlogits of cross-entropy, per example
    g = (p @ head.T) * dphi(zs[-1])
    norms = [np.linalg.norm(g, axis=1).mean()]
    for layer in range(DEPTH - 2, -1, -1):
        g = (g @ weights[layer + 1].T) * dphi(zs[layer])
        norms.append(np.linalg.norm(g, axis=1).mean())
    return np.array(norms[::-1])


def _inputs():
    rng = np.random.default_rng(7)
    # Per-example input variances spread like mnist1d's (||x||^2 / 40 from about 0.25 to 3).
    scale = np.sqrt(rng.uniform(0.25, 3.0, BATCH))
    return rng.standard_normal((BATCH, FEATURES)) * scale[:, None], rng.integers(0, CLASSES, BATCH)


def _tables(name, gain, x, profile):
    run = f"mf/{name}/{gain}"
    runs = pd.DataFrame([{"run": run, "study": "meanfield", "cell": f"{name}-{gain}", "seed": 0, "model": "mlp",
                          "norm": "none", "activation": name, "slope": np.nan, "init": "lecun_normal", "gain": gain,
                          "init_std": 0.01, "bias": 0.0, "width": WIDTH, "depth": DEPTH, "data": "mnist1d"}])
    rows = [(run, 0, layer, f"hidden.{layer}", "backprop_norm", value) for layer, value in enumerate(profile)]
    rows += [(run, 0, b, "input", "input_sq_norm", float(v)) for b, v in enumerate((x**2).sum(axis=1))]
    layers = pd.DataFrame(rows, columns=list(theory.LAYER_KEYS))
    return runs, layers


@pytest.mark.parametrize(("name", "sigma_w2"), [("gelu", 2.25), ("silu", 2.25), ("tanh", 1.0)])
def test_per_example_prediction_matches_a_finite_width_monte_carlo(name, sigma_w2):
    x, y = _inputs()
    profiles = [monte_carlo_profile(name, sigma_w2, x, y, seed) for seed in range(SEEDS)]
    factors = np.array([np.exp(-np.polyfit(np.arange(DEPTH), np.log(p), 1)[0]) for p in profiles])
    runs, layers = _tables(name, sigma_w2**0.5, x, profiles[0])
    row = theory.theory_table(runs, layers).iloc[0]
    predicted = row["predicted_factor_per_example"]
    spread = factors.std(ddof=1) / np.sqrt(SEEDS)
    assert abs(factors.mean() - predicted) < SEED_SPREAD_Z * spread, (factors.mean(), predicted, spread)
    # The fixed-point prediction misses by far more than the seed spread in these cells.
    assert abs(factors.mean() - row["predicted_factor"]) > 5 * SEED_SPREAD_Z * spread
    assert row["regime"] == (length_map.SLOW_CRITICAL if name == "tanh" else length_map.TWO_REGIMES)


def test_regimes_follow_the_stated_rule():
    q = np.array([0.5, 1.0, 4.0])
    assert length_map.classify(q, np.array([2.0]), 0.56, 0.75, 1.06) == length_map.TWO_REGIMES
    # Just above the largest q_0: two regimes at width 256 (examples may cross), not infinitely wide.
    assert length_map.classify(q, np.array([4.4]), 0.56, 0.75, 0.94, width=256) == length_map.TWO_REGIMES
    assert length_map.classify(q, np.array([4.4]), 0.56, 0.75, 0.94) == length_map.NOT_REACHED
    assert length_map.classify(q, np.array([9.0]), 1.0, 1.0, 0.95) == length_map.SLOW_CRITICAL
    assert length_map.classify(q, np.array([]), 1.6, 1.06, 1.10) == length_map.NOT_REACHED
    assert length_map.classify(q, np.array([]), 1.6, 1.06, 1.065) == length_map.AT_FIXED_POINT


@pytest.mark.parametrize(("name", "sigma_w2", "expected"), [("gelu", 2.25, 1.39), ("silu", 2.25, 4.4)])
def test_unstable_fixed_point_where_theory_puts_it(name, sigma_w2, expected):
    found = length_map.unstable_fixed_points(name, sigma_w2, 0.0, None, 0.1, 100.0)
    assert len(found) == 1 and found[0] == pytest.approx(expected, rel=0.02)
    phi, _ = activation_functions(name)
    # The map's fixed point, checked by the panel rule directly.
    assert sigma_w2 * gaussian_expectation(lambda v: phi(v) ** 2, found[0]) == pytest.approx(found[0], rel=1e-3)
    assert len(length_map.unstable_fixed_points("relu", 2.0, 0.0, None, 0.1, 100.0)) == 0  # identity map


@pytest.mark.parametrize("name", ["tanh", "gelu", "silu", "elu", "relu", "sigmoid"])
def test_tabulated_second_moments_match_the_panel_rule(name):
    phi, dphi = activation_functions(name)
    qs = np.geomspace(1e-5, 1e5, 23) * 1.0137  # off the table's grid
    for derivative, f in ((False, phi), (True, dphi)):
        table = theory.squared_expectation(name, qs, derivative=derivative)
        direct = np.array([gaussian_expectation(lambda v: f(v) ** 2, q) for q in qs])
        assert table == pytest.approx(direct, rel=1e-7)


def test_output_error_norm_limits():
    # Uniform softmax: ||p - e_y||^2 = 1 - 2/K + 1/K; one-hot on a random class: sqrt(2) (1 - 1/K).
    low, high = length_map.output_error_norm(np.array([0.0, 1e12]), CLASSES)
    assert low == pytest.approx(np.sqrt(1 - 1 / CLASSES), rel=1e-6)
    assert high == pytest.approx(np.sqrt(2) * (1 - 1 / CLASSES), rel=0.02)
