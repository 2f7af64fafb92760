"""Mean-field theory against closed forms, a Monte-Carlo estimate and synthetic measurements."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from gradatlas import theory
from gradatlas.activations import make_activation


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


@pytest.mark.parametrize("activation,sigma_w2,sigma_b2", [("tanh", 2.0, 0.0), ("tanh", 1.5, 0.05),
                                                          ("sigmoid", 1.0, 0.0), ("elu", 1.2, 0.1)])
def test_fixed_point_is_a_fixed_point(activation, sigma_w2, sigma_b2):
    q = theory.fixed_point(activation, sigma_w2, sigma_b2)
    assert 0 < q < math.inf
    assert theory.length_map(q, activation, sigma_w2, sigma_b2) == pytest.approx(q, rel=1e-10)


def test_selu_self_normalizing_fixed_point():
    # The SELU constants make variance 1 a fixed point with lecun weights (sigma_w^2 = 1).
    assert theory.length_map(1.0, "selu", 1.0) == pytest.approx(1.0, abs=1e-6)
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
    table = theory.theory_table(runs, layers).set_index("run")
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
