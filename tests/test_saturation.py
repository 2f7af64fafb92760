"""Saturation (claim 22): the mean field's saturated share against closed forms and a numpy
simulation of random MLPs (independent of the package), and the claim on synthetic tables
where Glorot and Bengio's statements hold and where each fails."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradatlas.analysis import claims
from gradatlas.analysis.claims import CONTRADICTED, SUPPORTED
from gradatlas.analysis.theory.saturation import saturated_share, saturation_edge
from tests.test_claims import Builder

pytestmark = pytest.mark.unit


def test_saturation_edges_are_the_closed_forms():
    s = 0.1
    # tanh' = 1 - tanh^2 = s  <=>  z = atanh(sqrt(1 - s)); sigmoid' = p(1 - p) = s / 4 with
    # p = (1 + sqrt(1 - s)) / 2  <=>  z = logit(p).
    assert saturation_edge("tanh", s) == pytest.approx(math.atanh(math.sqrt(1 - s)), rel=1e-10)
    p = (1 + math.sqrt(1 - s)) / 2
    assert saturation_edge("sigmoid", s) == pytest.approx(math.log(p / (1 - p)), rel=1e-10)


def test_saturation_edge_refuses_activations_without_a_bell_shaped_slope():
    with pytest.raises(ValueError, match="bell-shaped"):
        saturation_edge("relu", 0.1)
    with pytest.raises(ValueError, match="threshold"):
        saturation_edge("tanh", 1.5)


@pytest.mark.parametrize("activation,sigma_w2,sigma_b2", [("tanh", 1.5, 0.05), ("tanh", 3.0, 0.0),
                                                          ("sigmoid", 16.0, 0.5)])
def test_saturated_share_matches_a_numpy_simulation_of_wide_random_mlps(activation, sigma_w2, sigma_b2):
    rng = np.random.default_rng(7)
    width, depth, features, s = 1500, 4, 40, 0.1
    x = rng.normal(0.0, 1.0, (64, features)) * rng.uniform(0.6, 1.4, (64, 1))  # examples of unequal variance
    std_first = math.sqrt(1.0 / features)
    q_first = std_first**2 * (x**2).sum(axis=1) + sigma_b2
    phi = np.tanh if activation == "tanh" else (lambda z: 1.0 / (1.0 + np.exp(-z)))
    slope = (lambda z: 1 - np.tanh(z) ** 2) if activation == "tanh" else (lambda z: phi(z) * (1 - phi(z)))
    peak = float(slope(np.zeros(1))[0])
    shares = []
    for _ in range(3):
        h, measured = x, []
        for layer in range(depth):
            fan = h.shape[1]
            std = std_first if layer == 0 else math.sqrt(sigma_w2 / fan)
            z = h @ rng.normal(0.0, std, (fan, width)) + rng.normal(0.0, math.sqrt(sigma_b2), width)
            measured.append(float((slope(z) < s * peak).mean()))
            h = phi(z)
        shares.append(measured)
    simulated = np.mean(shares, axis=0)
    predicted = saturated_share(activation, sigma_w2, q_first, depth, s, sigma_b2)
    assert predicted.shape == (depth,)
    np.testing.assert_allclose(predicted, simulated, atol=0.01)
    assert simulated.max() > 0.05  # the cases saturate: the comparison is not of zeros


# ------------------------------------------------------------------------------ claim 22 on synthetic tables

STEPS = 5000
PROBES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 500, 1000, 1500, 2000, 3000, 4000, 4999)


def _sigmoid_means(step: int, top_drops: bool, depth: int = 5) -> list[float]:
    lower = [0.5 + 0.3 * (layer / (depth - 2)) * min(step / 1000, 1.0) for layer in range(depth - 1)]
    top = 0.5 * math.exp(-step / 200) + 0.01 if top_drops else 0.5
    return lower + [top]


def _tanh_shares(step: int, order: str, depth: int = 5) -> list[float]:
    onsets = [500 + 700 * layer for layer in range(depth)]
    if order == "top_first":
        onsets = onsets[::-1]
    return [min(max((step - onset) / 2000, 0.0), 0.9) for onset in onsets]


def _saturation_tables(top_drops: bool = True, order: str = "first_first", tanh_std_factor: float = 0.55,
                       tanh_norm_factor: float = 0.97, seeds: int = 5) -> Builder:
    b = Builder()
    for seed in range(seeds):
        jitter = 1 + 0.01 * (seed - 2)
        for activation in ("sigmoid", "tanh"):
            for init in ("default", "xavier_uniform"):
                run = b.run("saturation", seed, activation=activation, init=init, depth=5.0, width=64.0,
                            steps=float(STEPS))
                for step in PROBES:
                    if activation == "sigmoid":
                        b.layer(run, "act_mean", _sigmoid_means(step, top_drops), step=step, head=None)
                        b.layer(run, "saturated_frac", [0.0] * 5, step=step, head=None)
                    else:
                        b.layer(run, "act_mean", [0.0] * 5, step=step, head=None)
                        b.layer(run, "saturated_frac", _tanh_shares(step, order), step=step, head=None)
                factor = (tanh_std_factor if init == "default" else tanh_norm_factor) * jitter
                b.geometric(run, factor if activation == "tanh" else 0.3 * jitter, depth=5)
                # Inputs of variance 1e-6 per feature: the mean field saturates nothing, as the
                # synthetic step-0 shares say (0 for sigmoid; tanh's start below the onsets).
                for index in range(8):
                    b.layers.append({"run": run, "step": 0, "layer": index, "name": "input",
                                     "quantity": "input_sq_norm", "value": 4e-5})
    return b


def _parts(builder: Builder) -> dict:
    return {p.name: p for p in claims.CLAIMS[22].evaluate(*builder.tables()).parts}


def _decisive(parts: dict) -> dict:
    return {name: p.verdict for name, p in parts.items() if p.decisive}


def test_claim22_supported_where_every_statement_holds():
    result = claims.CLAIMS[22].evaluate(*_saturation_tables().tables())
    decisive = _decisive({p.name: p for p in result.parts})
    assert len(decisive) == 11
    assert set(decisive.values()) == {SUPPORTED}, decisive
    assert result.would_be == SUPPORTED


def test_claim22_contradicted_where_the_sigmoid_top_layer_never_saturates():
    parts = _parts(_saturation_tables(top_drops=False))
    top = {n: p.verdict for n, p in parts.items() if n.startswith("sigmoid, standard") and "top hidden" in n}
    assert set(top.values()) == {CONTRADICTED} and len(top) == 2


def test_claim22_contradicted_where_tanh_layers_saturate_from_the_top():
    parts = _parts(_saturation_tables(order="top_first"))
    onset = [p for n, p in parts.items() if n.startswith("tanh, standard") and "Spearman" in n]
    assert [p.verdict for p in onset] == [CONTRADICTED] and onset[0].value < -0.9  # probe-step ties: not -1


def test_claim22_contradicted_where_the_normalized_init_does_not_keep_the_gradient_level():
    parts = _parts(_saturation_tables(tanh_norm_factor=0.6))
    level = [p for n, p in parts.items() if n.startswith("tanh, normalized init: per-layer factor")]
    assert [p.verdict for p in level] == [CONTRADICTED]


def test_claim22_mean_field_share_contradicted_where_a_layer_saturates_at_step_0():
    b = _saturation_tables()
    for row in b.layers:
        if row["quantity"] == "saturated_frac" and row["step"] == 0 and row["layer"] == 2 and "tanh" in row["run"]:
            row["value"] = 0.3
    parts = _parts(b)
    shares = {n: p.verdict for n, p in parts.items() if "mean-field" in n}
    assert sorted(shares.values()) == [CONTRADICTED, CONTRADICTED, SUPPORTED, SUPPORTED], shares
