"""Mean-field theory against closed forms, a Monte-Carlo estimate and synthetic measurements."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import integrate, special, stats

from gradatlas.analysis import theory
from gradatlas.run.activations import make_activation


@pytest.mark.parametrize("sigma_w2", [0.5, 1.0, 2.0, 3.0])
def test_relu_chi1_is_half_the_weight_variance(sigma_w2):
    assert theory.chi1("relu", sigma_w2) == pytest.approx(sigma_w2 / 2, rel=1e-12)
    assert theory.predicted_factor("relu", sigma_w2) == pytest.approx(math.sqrt(sigma_w2 / 2), rel=1e-12)


@pytest.mark.parametrize("slope", [0.01, 0.2, 0.5])
@pytest.mark.parametrize("sigma_w2", [1.0, 2.0, 2.5])
def test_leaky_relu_chi1(slope, sigma_w2):
    expected = sigma_w2 * (1 + slope**2) / 2
    assert theory.chi1("leaky_relu", sigma_w2, slope=slope) == pytest.approx(expected, rel=1e-12)
    # PReLU at initialization is a leaky ReLU with its initial slope.
    assert theory.chi1("prelu", sigma_w2, slope=slope) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("sigma_w2", [0.25, 1.0, 4.0])
def test_linear_chi1_and_fixed_point(sigma_w2):
    assert theory.chi1("linear", sigma_w2) == pytest.approx(sigma_w2, rel=1e-12)
    expected_q = 0.0 if sigma_w2 < 1 else (1.0 if sigma_w2 == 1 else math.inf)
    assert theory.fixed_point("linear", sigma_w2) == expected_q


def test_linear_and_relu_fixed_point_with_bias_variance():
    # q = sigma_w^2 q + sigma_b^2  ->  q* = sigma_b^2 / (1 - sigma_w^2); ReLU halves sigma_w^2.
    assert theory.fixed_point("linear", 0.5, 0.2) == pytest.approx(0.4, rel=1e-10)
    assert theory.fixed_point("relu", 1.5, 0.1) == pytest.approx(0.4, rel=1e-10)
    assert theory.fixed_point("relu", 1.0, 0.5) == pytest.approx(1.0, rel=1e-10)


def test_relu_fixed_point_is_zero_infinite_or_any_value():
    assert theory.fixed_point("relu", 1.0) == 0.0
    assert theory.fixed_point("relu", 3.0) == math.inf
    # At sigma_w^2 = 2 every q is a fixed point: the starting value comes back.
    assert theory.fixed_point("relu", 2.0) == 1.0
    assert theory.fixed_point("relu", 2.0, q0=0.3) == 0.3


@pytest.mark.parametrize("sigma_w2", [0.3, 0.6, 0.95])
def test_tanh_below_one_has_q_star_zero_and_chi1_sigma_w2(sigma_w2):
    assert theory.fixed_point("tanh", sigma_w2) == 0.0
    assert theory.chi1("tanh", sigma_w2) == pytest.approx(sigma_w2, rel=1e-9)


# The activations in closed form (numpy), independent of gradatlas.run.activations.
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805
_CLOSED_FORM = {
    "tanh": np.tanh,
    "sigmoid": special.expit,
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0.0))),
}


def _length_map(q, activation, sigma_w2, sigma_b2=0.0):
    """sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 by adaptive quadrature (scipy), split at the kink z = 0."""
    phi = _CLOSED_FORM[activation]

    def integrand(z):
        return phi(math.sqrt(q) * z) ** 2 * stats.norm.pdf(z)

    halves = [integrate.quad(integrand, a, b, epsabs=1e-15, epsrel=1e-13)[0] for a, b in ((-np.inf, 0), (0, np.inf))]
    return sigma_w2 * sum(halves) + sigma_b2


@pytest.mark.parametrize("activation,sigma_w2,sigma_b2", [("tanh", 2.0, 0.0), ("tanh", 1.5, 0.05),
                                                          ("sigmoid", 1.0, 0.0), ("elu", 1.2, 0.1)])
def test_fixed_point_is_a_fixed_point(activation, sigma_w2, sigma_b2):
    q = theory.fixed_point(activation, sigma_w2, sigma_b2)
    assert 0 < q < math.inf
    assert _length_map(q, activation, sigma_w2, sigma_b2) == pytest.approx(q, rel=1e-10)


def test_selu_self_normalizing_fixed_point():
    # The SELU constants make variance 1 a fixed point with lecun weights (sigma_w^2 = 1).
    assert _length_map(1.0, "selu", 1.0) == pytest.approx(1.0, abs=1e-6)
    assert theory.fixed_point("selu", 1.0) == pytest.approx(1.0, abs=1e-5)


def test_step_has_zero_gradient_factor():
    assert theory.chi1("step", 2.0) == 0.0
    assert theory.predicted_factor("step", 2.0) == 0.0


def _monte_carlo(fn, q, n=400_000, seed=0):
    z = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    values = fn(math.sqrt(q) * z)
    return float(values.mean()), float(values.std() / math.sqrt(n))


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "elu", "selu", "silu", "gelu", "leaky_relu"])
@pytest.mark.parametrize("q", [0.3, 2.0, 25.0])
def test_gaussian_expectations_match_monte_carlo(name, q):
    act = make_activation(name).double()
    phi, dphi = theory.activation_functions(name)
    with torch.no_grad():
        for numpy_fn, torch_fn in [(lambda x: phi(x) ** 2, lambda z: act(z) ** 2),
                                   (lambda x: dphi(x) ** 2, lambda z: act.derivative(z) ** 2)]:
            mean, err = _monte_carlo(torch_fn, q)
            quad = theory.gaussian_expectation(numpy_fn, q)
            assert abs(quad - mean) < 5 * err + 1e-12, (name, q, quad, mean, err)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "silu", "gelu"])
def test_hermite_rule_agrees_with_panels_for_smooth_activations(name):
    phi, dphi = theory.activation_functions(name)
    for fn in (lambda x: phi(x) ** 2, lambda x: dphi(x) ** 2):
        hermite = theory.gaussian_expectation(fn, 1.0, method="hermite", points=101)
        panels = theory.gaussian_expectation(fn, 1.0)
        assert hermite == pytest.approx(panels, rel=1e-9, abs=1e-12)


def test_panels_are_exact_where_odd_hermite_is_not():
    # E[relu'(z)^2] = 1/2: the odd Gauss-Hermite rule puts a node on the kink and misses.
    _, dphi = theory.activation_functions("relu")
    assert theory.gaussian_expectation(lambda x: dphi(x) ** 2, 1.0) == pytest.approx(0.5, abs=1e-13)
    assert abs(theory.gaussian_expectation(lambda x: dphi(x) ** 2, 1.0, method="hermite", points=101) - 0.5) > 1e-3
    with pytest.raises(ValueError):
        theory.gaussian_expectation(np.square, -1.0)


def _geometric_layers(ratio: float, depth: int = 10, scale: float = 0.9, step: int = 0, run: str = "r") -> pd.DataFrame:
    rows = [{"run": run, "step": step, "layer": l, "name": f"hidden.{l}", "quantity": "backprop_norm",
             "value": scale * ratio ** (depth - 1 - l)} for l in range(depth)]
    rows.append({"run": run, "step": step, "layer": depth, "name": "head", "quantity": "backprop_norm", "value": 123.0})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("ratio", [0.25, 0.9, 1.0, 1.7])
def test_measured_factor_recovers_a_geometric_ratio(ratio):
    layers = _geometric_layers(ratio)
    # Noise elsewhere must not matter: other quantities, later steps, a stem row.
    noise = pd.DataFrame([
        {"run": "r", "step": 0, "layer": 3, "name": "hidden.3", "quantity": "act_std", "value": 77.0},
        {"run": "r", "step": 5, "layer": 2, "name": "hidden.2", "quantity": "backprop_norm", "value": 1e9},
    ])
    layers = pd.concat([layers, noise], ignore_index=True)
    assert theory.measured_factor(layers) == pytest.approx(ratio, rel=1e-12)
    fit = theory.factor_fit(layers)
    assert fit["r2"] == pytest.approx(1.0) and fit["n"] == 10


def test_measured_factor_ignores_zero_and_non_finite_norms_and_stem():
    layers = _geometric_layers(0.5)
    layers.loc[layers["layer"] == 0, "value"] = 0.0
    layers.loc[layers["layer"] == 4, "value"] = np.nan
    stem = pd.DataFrame([{"run": "r", "step": 0, "layer": -1, "name": "stem", "quantity": "backprop_norm", "value": 5.0}])
    assert theory.measured_factor(pd.concat([layers, stem])) == pytest.approx(0.5, rel=1e-12)
    # Fewer than two usable layers: undefined.
    assert math.isnan(theory.measured_factor(layers[layers["layer"] <= 1]))


def _run(run, activation="relu", init="lecun_normal", gain=1.0, width=64, depth=10, **extra):
    row = {"run": run, "study": "meanfield", "cell": run, "seed": 0, "model": "mlp", "activation": activation,
           "slope": np.nan, "init": init, "gain": gain, "init_std": 0.01, "width": float(width),
           "depth": float(depth), "bias": 0.0, "norm": "none"}
    row.update(extra)
    return row


def test_theory_table_predicts_and_measures():
    runs = pd.DataFrame([
        _run("a", gain=math.sqrt(2.0)),                 # sigma_w^2 = 2: critical ReLU, factor 1
        _run("b", gain=1.0),                            # sigma_w^2 = 1: factor sqrt(1/2)
        _run("c", init="normal", init_std=0.25, width=32, bias=np.nan),  # sigma_w^2 = 32 / 16 = 2
        _run("d", norm="batch"),                        # excluded: normalised
        _run("e", bias=-1.0),                           # excluded: constant nonzero bias
        _run("f", model="resmlp"),                      # excluded: not a plain MLP
        _run("g", init="default", bias=np.nan),         # sigma_w^2 = 1/3, sigma_b^2 = 1/(3 width)
    ])
    layers = pd.concat([_geometric_layers(r, run=name) for name, r in
                        [("a", 1.0), ("b", math.sqrt(0.5)), ("c", 1.1), ("d", 1.0), ("e", 1.0), ("f", 1.0), ("g", 0.4)]])
    table = theory.theory_table(runs, layers)
    # The batch-norm run has a row of its own theory (beyond_meanfield_rows), not a mean-field one.
    assert table.loc[table["run"] == "d", "theory"].tolist() == [theory.BATCHNORM]
    table = table[table["theory"] == theory.MEANFIELD].set_index("run")
    assert sorted(table.index) == ["a", "b", "c", "g"]
    assert table.loc["a", "sigma_w2"] == pytest.approx(2.0)
    assert table.loc["a", "predicted_factor"] == pytest.approx(1.0)
    assert table.loc["a", "measured_factor"] == pytest.approx(1.0)
    assert table.loc["b", "rel_error"] == pytest.approx(0.0, abs=1e-12)
    assert table.loc["c", "sigma_w2"] == pytest.approx(2.0)
    assert table.loc["c", "rel_error"] == pytest.approx(0.1, rel=1e-9)
    assert table.loc["g", "sigma_w2"] == pytest.approx(1 / 3)
    assert table.loc["g", "sigma_b2"] == pytest.approx(1 / (3 * 64))
    assert set(theory.THEORY_COLUMNS) <= set(table.reset_index().columns)


def test_layerwise_factor_uses_measured_variances():
    # ReLU: chi_1 does not depend on q, so the layerwise prediction equals the fixed-point one.
    assert theory.layerwise_factor("relu", 2.0, np.full(10, 0.7)) == pytest.approx(1.0)
    # tanh near q = 0 has chi_1 -> sigma_w^2; at a finite variance it is smaller.
    small = theory.layerwise_factor("tanh", 1.0, np.full(10, 1e-8))
    large = theory.layerwise_factor("tanh", 1.0, np.full(10, 0.5))
    assert small == pytest.approx(1.0, abs=1e-6) and large < 0.9
    assert math.isnan(theory.layerwise_factor("tanh", 1.0, np.array([0.5, 0.5])))


# ---------------------------------------------------------------------------------------
# Underflow: left out of the fits, and counted.


def test_factor_fit_leaves_out_underflowed_layers_and_counts_them():
    layers = _geometric_layers(0.5)
    # Layers 0 and 1 "underflowed": their norms are float32 garbage that would bend the fit.
    layers.loc[layers["layer"] <= 1, "value"] = 1e-45
    flags = pd.DataFrame([{"run": "r", "step": 0, "layer": l, "name": f"hidden.{l}", "quantity": "underflow",
                           "value": float(l <= 1)} for l in range(10)])
    fit = theory.factor_fit(pd.concat([layers, flags], ignore_index=True))
    assert fit["factor"] == pytest.approx(0.5, rel=1e-12) and fit["n"] == 8 and fit["excluded"] == 2
    assert theory.factor_fit(layers)["factor"] < 0.4  # without the flags the garbage bends the fit


def _time_rows(factor, length=12, flagged=(), run="r"):
    rows = [{"run": run, "step": 0, "t": t, "quantity": "hidden_grad_norm",
             "value": 1e-45 if t in flagged else 2.0 * factor ** (length - t)} for t in range(1, length + 1)]
    rows += [{"run": run, "step": 0, "t": t, "quantity": "underflow", "value": float(t in flagged)}
             for t in range(1, length + 1)]
    return pd.DataFrame(rows)


def test_time_factor_fit_recovers_factor_and_excludes_underflow():
    fit = theory.time_factor_fit(_time_rows(0.6, flagged=(1, 2, 3)))
    assert fit["factor"] == pytest.approx(0.6, rel=1e-12) and fit["n"] == 9 and fit["excluded"] == 3


# ---------------------------------------------------------------------------------------
# Batch norm at initialization (Yang et al. 2019): closed form and a numpy simulation.


def test_batchnorm_relu_gradient_grows_by_pi_over_pi_minus_one():
    assert theory.batchnorm_chi("relu") == pytest.approx(math.pi / (math.pi - 1), rel=1e-12)
    # Linear: E[phi'^2] = Var[phi] = 1, batch norm keeps the norm.
    assert theory.batchnorm_chi("linear") == pytest.approx(1.0, rel=1e-12)


def _simulate_batchnorm(phi, dphi, n=512, batch=512, depth=12, seed=0, eps=1e-5):
    """A wide Linear -> BN -> phi stack in numpy with BN's backward written out; per-layer ratio
    ||dL/dz_l||^2 / ||dL/dz_{l+1}||^2 over the interior layers."""
    rng = np.random.default_rng(seed)
    h, weights, caches = rng.standard_normal((batch, n)), [], []
    for _ in range(depth):
        w = rng.standard_normal((n, n)) * 1.3 / math.sqrt(n)  # any scale: batch norm cancels it
        z = h @ w.T
        sd = np.sqrt(z.var(0) + eps)
        u = (z - z.mean(0)) / sd
        h = phi(u)
        weights.append(w)
        caches.append((u, sd))
    grad_h, norms = rng.standard_normal((batch, n)), np.zeros(depth)
    for layer in reversed(range(depth)):
        u, sd = caches[layer]
        g_u = grad_h * dphi(u)
        g_z = (g_u - g_u.mean(0) - u * (g_u * u).mean(0)) / sd
        norms[layer] = np.sum(g_z**2)
        grad_h = g_z @ weights[layer]
    ratios = norms[:-1] / norms[1:]
    return float(np.mean(ratios[1:-1]))


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_batchnorm_chi_matches_a_numpy_simulation(name):
    phi = {"relu": lambda u: np.maximum(u, 0), "tanh": np.tanh, "sigmoid": lambda u: 1 / (1 + np.exp(-u))}[name]
    dphi = {"relu": lambda u: (u > 0).astype(float), "tanh": lambda u: 1 - np.tanh(u) ** 2,
            "sigmoid": lambda u: phi(u) * (1 - phi(u))}[name]
    measured = _simulate_batchnorm(phi, dphi)
    assert measured == pytest.approx(theory.batchnorm_chi(name), rel=0.01)
    assert theory.batchnorm_chi(name) > 1  # batch norm makes each of them explode backward


# ---------------------------------------------------------------------------------------
# Pre-activation residual MLP.


def test_residual_relu_factor_closed_form():
    qs, factors = theory.residual_factors("relu", 1 / 3, 1.0, 5)
    np.testing.assert_allclose(factors, math.sqrt(1 + 1 / 6), rtol=1e-12)  # 1 + sigma_w^2 / 2
    np.testing.assert_allclose(qs, [(1 + 1 / 6) ** k for k in range(5)], rtol=1e-12)  # q grows by the same
    assert theory.second_moment_variance("relu", 0.35) == pytest.approx(0.7, rel=1e-9)


def _simulate_residual(phi, dphi, sigma_w2, q0, n=1000, batch=64, blocks=16, seed=0):
    rng = np.random.default_rng(seed)
    h, weights, inputs = rng.standard_normal((batch, n)) * math.sqrt(q0), [], []
    for _ in range(blocks):
        w = rng.standard_normal((n, n)) * math.sqrt(sigma_w2 / n)
        inputs.append(h)
        weights.append(w)
        h = h + phi(h) @ w.T
    g, norms = rng.standard_normal((batch, n)), np.zeros(blocks)
    for block in reversed(range(blocks)):
        norms[block] = np.sum(g**2)
        g = g + dphi(inputs[block]) * (g @ weights[block])
    return np.sqrt(norms[:-1] / norms[1:])  # step from block l + 1 back to block l


def test_residual_tanh_factors_match_a_numpy_simulation():
    sigma_w2, q0 = 1.0, 0.3
    simulated = _simulate_residual(np.tanh, lambda u: 1 - np.tanh(u) ** 2, sigma_w2, q0)
    _, factors = theory.residual_factors("tanh", sigma_w2, q0, 16)
    np.testing.assert_allclose(simulated, factors[1:], rtol=0.01)
    assert factors[1] > factors[-1] + 0.05  # the stream's variance grows, tanh' shrinks: a real test


# ---------------------------------------------------------------------------------------
# Vanilla RNN over time.


def test_rnn_without_input_drive_has_factor_sigma_u():
    _, factors = theory.rnn_time_factors("tanh", 0.49, 0.0, 0.0, 10)
    np.testing.assert_allclose(factors, 0.7, rtol=1e-9)  # q* = 0, tanh'(0) = 1
    _, linear = theory.rnn_time_factors("linear", 0.8, 0.3, 0.1, 10)
    np.testing.assert_allclose(linear, math.sqrt(0.8), rtol=1e-12)


def _simulate_rnn(phi, dphi, sigma_u2, entry_w, sigma_b2, length=40, n=1000, batch=128, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n, n)) * math.sqrt(sigma_u2 / n)
    w = rng.standard_normal((n, 2)) * math.sqrt(entry_w)
    b = rng.standard_normal(n) * math.sqrt(sigma_b2)
    x = rng.uniform(0, 1, (batch, length, 2))
    h, pre = np.zeros((batch, n)), []
    for t in range(length):
        a = x[:, t] @ w.T + h @ u.T + b
        h = phi(a)
        pre.append(a)
    g, norms = rng.standard_normal((batch, n)), [0.0] * length
    norms[-1] = np.sum(g**2)
    for t in reversed(range(1, length)):
        g = (g * dphi(pre[t])) @ u
        norms[t - 1] = np.sum(g**2)
    norms = np.array(norms)
    return float(np.exp(np.mean(np.log(np.sqrt(norms[:-1] / norms[1:]))[5:]))), float(np.mean(np.sum(x**2, -1)))


@pytest.mark.parametrize(("sigma_u2", "entry_w", "sigma_b2"), [(1 / 3, 1 / 3, 0.01), (0.9, 1.0, 0.0)])
def test_rnn_time_factor_matches_a_numpy_simulation(sigma_u2, entry_w, sigma_b2):
    tanh, dtanh = np.tanh, lambda a: 1 - np.tanh(a) ** 2
    simulated, power = _simulate_rnn(tanh, dtanh, sigma_u2, entry_w, sigma_b2)
    _, factors = theory.rnn_time_factors("tanh", sigma_u2, entry_w * power, sigma_b2, 40)
    predicted = float(np.exp(np.mean(np.log(factors[6:]))))
    # Mean field treats the reused U as fresh and averages the drive over examples: ~3 %.
    assert simulated == pytest.approx(predicted, rel=0.04)
    _, undriven = theory.rnn_time_factors("tanh", sigma_u2, 0.0, sigma_b2, 40)
    assert abs(float(np.exp(np.mean(np.log(undriven[6:])))) - simulated) > 0.08  # the drive matters


def test_adding_input_power_matches_generated_data():
    from gradatlas.run.data import adding_problem

    for length in (10, 50):
        x, _ = adding_problem(20000, length, torch.Generator().manual_seed(0))
        measured = float(x.double().pow(2).sum(-1).mean())
        assert measured == pytest.approx(theory.adding_input_power(length), rel=0.01)


def test_rnn_variances_of_default_init():
    sigma_u2, entry_w, sigma_b2 = theory.rnn_variances("default", 64, 2, 1.0, 0.01, None)
    assert sigma_u2 == pytest.approx(1 / 3) and entry_w == pytest.approx(1 / (3 * 64))
    assert sigma_b2 == pytest.approx(2 / (3 * 64))
    assert theory.rnn_variances("default", 64, 2, 1.0, 0.01, 0.5) is None


# ---------------------------------------------------------------------------------------
# The table: one row per qualifying run and theory.


def test_theory_table_rows_beyond_meanfield():
    runs = pd.DataFrame([
        _run("bn", norm="batch", init="default", bias=np.nan, depth=6),
        _run("res", model="resmlp", activation="relu", init="default", bias=np.nan, depth=6),
        _run("rnn", model="rnn", activation="tanh", init="default", bias=np.nan, depth=1, data="adding", length=12),
        _run("lstm", model="lstm", activation="tanh", init="default", bias=np.nan, depth=1, data="adding", length=12),
    ])
    bn_factor = math.sqrt(math.pi / (math.pi - 1))
    res_factor = math.sqrt(1 + 1 / 6)
    bn = _geometric_layers(bn_factor, depth=6, run="bn")
    bn.loc[bn["layer"] == 0, "value"] *= 3  # layer 0 has another factor: not fitted
    res = _geometric_layers(res_factor, depth=6, run="res")
    res["layer"] += 1  # blocks are layers 1..5 after the stem
    res = res[res["name"] != "hidden.5"]
    res["name"] = res["name"].str.replace("hidden", "block")
    stats = pd.DataFrame([{"run": "res", "step": 0, "layer": l, "name": f"block.{l}", "quantity": q, "value": v}
                          for l in range(1, 6) for q, v in (("act_mean", 0.3), ("act_std", 0.4))])
    layers = pd.concat([bn, res, stats], ignore_index=True)
    _, factors = theory.rnn_time_factors("tanh", 1 / 3, theory.adding_input_power(12) / (3 * 64),
                                         2 / (3 * 64), 12)
    timesteps = pd.concat([_time_rows(0.5, run="rnn"), _time_rows(0.5, run="lstm")], ignore_index=True)
    table = theory.theory_table(runs, layers, timesteps).set_index("run")
    assert table.loc["bn", "theory"] == theory.BATCHNORM
    assert table.loc["bn", "predicted_factor"] == pytest.approx(bn_factor)
    assert table.loc["bn", "measured_factor"] == pytest.approx(bn_factor, rel=1e-9)
    assert table.loc["res", "theory"] == theory.RESIDUAL
    assert table.loc["res", "predicted_factor"] == pytest.approx(res_factor, rel=1e-9)
    assert table.loc["res", "rel_error"] == pytest.approx(0.0, abs=1e-9)
    assert table.loc["rnn", "theory"] == theory.RNN_TIME
    assert table.loc["rnn", "predicted_factor"] == pytest.approx(np.exp(np.mean(np.log(factors[1:]))), rel=1e-9)
    assert table.loc["rnn", "measured_factor"] == pytest.approx(0.5, rel=1e-9)
    assert "lstm" not in table.index
    assert (table["underflow_excluded"] == 0).all()
