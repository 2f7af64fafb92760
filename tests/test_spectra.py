"""The free-probability spread of the Jacobian spectrum (theory.spectra) against closed forms
and an independent numpy simulation of random nets at the quick scale's width."""

from __future__ import annotations

import numpy as np
import pytest
from spectra_simulation import simulate

from gradatlas.analysis.theory.spectra import (
    mean_sv2, normalized_variance, preactivation_variances, weight_ensemble)

pytestmark = pytest.mark.unit

ROOT2 = float(np.sqrt(2.0))
WIDTH, DEPTHS = 64, (1, 2, 4, 8, 16)  # the quick scale: L <= n/4, as the study's deepest product (128, to 32, passes too)
# Relative tolerance of the simulated mean over nets against the wide-limit prediction at
# L = n/4: the finite-width shortfall (~5 %, heavy tails) plus the nets' spread.
SIM_RTOL = 0.15
# Absolute tolerance where the prediction is near 0 (orthogonal linear and tanh at q -> 0).
SIM_ATOL = 0.03


@pytest.mark.parametrize("activation, ensemble, per_layer", [
    ("linear", "iid", 1.0), ("linear", "orthogonal", 0.0), ("relu", "iid", 2.0), ("relu", "orthogonal", 1.0)])
def test_homogeneous_activations_grow_linearly_at_the_closed_form_slope(activation, ensemble, per_layer):
    for q in (0.3, 1.0, 7.0):  # no dependence on the scale
        qs = preactivation_variances(activation, 2.0 if activation == "relu" else 1.0, q, 10)
        assert normalized_variance(activation, ensemble, qs) == pytest.approx(per_layer * np.arange(1, 11), abs=1e-9)


def test_critical_homogeneous_nets_keep_the_mean_at_one_and_tanh_isometry_needs_small_q():
    assert mean_sv2("relu", 2.0, np.ones(20)) == pytest.approx(np.ones(20), rel=1e-9)
    assert mean_sv2("linear", 1.0, np.full(5, 3.0)) == pytest.approx(np.ones(5), rel=1e-9)
    # tanh, orthogonal weights: mu_2/mu_1^2 - 1 ~ 8 q^2 per layer as q -> 0.
    for q in (1e-2, 1e-3):
        per_layer = normalized_variance("tanh", "orthogonal", np.array([q]))[0]
        assert per_layer == pytest.approx(8 * q**2, rel=0.1)
    # Gaussian weights add at least 1 per layer whatever q.
    assert normalized_variance("tanh", "iid", np.full(8, 1e-4)) == pytest.approx(np.arange(1, 9), rel=1e-3)
    # tanh at sigma_w^2 = 1 approaches q* = 0 like 1/(2l).
    qs = preactivation_variances("tanh", 1.0, 1.0, 400)
    assert qs[-1] * 2 * 400 == pytest.approx(1.0, rel=0.1)


def test_every_iid_init_is_marchenko_pastur_and_orthogonal_is_not():
    assert weight_ensemble("orthogonal") == "orthogonal"
    assert {weight_ensemble(name) for name in ("lecun_normal", "he_uniform", "default", "normal")} == {"iid"}
    with pytest.raises(ValueError, match="unknown weight ensemble"):
        normalized_variance("relu", "haar", np.ones(2))


@pytest.mark.parametrize("activation, gain", [("linear", 1.0), ("tanh", 1.0), ("tanh", ROOT2), ("relu", ROOT2)])
@pytest.mark.parametrize("ensemble", ["iid", "orthogonal"])
def test_prediction_matches_a_numpy_simulation_at_the_same_width(activation, gain, ensemble):
    seconds, simulated = simulate(activation, ensemble, gain, WIDTH, DEPTHS, nets=6, seed=7)
    depths = np.array(DEPTHS)
    predicted = np.array([normalized_variance(activation, ensemble, preactivation_variances(
        activation, gain**2, gain**2 * second, max(DEPTHS)))[depths - 1] for second in seconds])
    assert simulated.mean(axis=0) == pytest.approx(predicted.mean(axis=0), rel=SIM_RTOL, abs=SIM_ATOL)
