"""The recurrent-gain theory (claim 19) against an independent numpy simulation of the RNN at init:
orthogonal recurrent weights scaled by g, the adding problem's inputs, the gradient of the last
hidden state carried back through time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradatlas.analysis import theory

pytestmark = pytest.mark.unit

WIDTH, LENGTH = 128, 20


def _orthonormal_columns(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def _simulated_factor(gain: float, seed: int, width: int = WIDTH, length: int = LENGTH, batch: int = 256) -> float:
    """exp(-slope) of log ||dL/dh_t|| against t = 1..T for tanh h_t = tanh(g W x_t + g Q h_{t-1})."""
    rng = np.random.default_rng(seed)
    u = gain * _orthonormal_columns(rng, width, width)
    w = gain * _orthonormal_columns(rng, width, 2)  # entries of variance g^2 / width, as torch's orthogonal_
    values = rng.uniform(0.0, 1.0, (batch, length))
    markers = np.zeros((batch, length))
    rows = np.arange(batch)
    markers[rows, rng.integers(0, length // 2, batch)] = 1.0
    markers[rows, rng.integers(length // 2, length, batch)] = 1.0
    x = np.stack([values, markers], axis=-1)
    h, slopes = np.zeros((batch, width)), []
    for t in range(length):
        h = np.tanh(x[:, t] @ w.T + h @ u.T)
        slopes.append(1.0 - h**2)
    grad = rng.standard_normal((batch, width))  # dL/dh_T: any direction independent of the state
    norms = [np.linalg.norm(grad, axis=1).mean()]
    for t in reversed(range(1, length)):
        grad = (grad * slopes[t]) @ u  # dL/dh_{t-1} = U^T (phi'(a_t) * dL/dh_t)
        norms.append(np.linalg.norm(grad, axis=1).mean())
    log_norms = np.log(np.array(norms[::-1]))
    slope = np.polyfit(np.arange(1, length + 1), log_norms, 1)[0]
    return float(math.exp(-slope))


def _simulated(gain: float) -> float:
    return float(np.mean([_simulated_factor(gain, seed) for seed in range(2)]))


@pytest.mark.parametrize("gain", [0.8, 1.0, 1.2, 1.6])
def test_predicted_factor_matches_a_simulation_of_the_orthogonal_rnn(gain):
    predicted = theory.rnn_factor_of_gain("tanh", "orthogonal", WIDTH, "adding", LENGTH)(gain)
    # Mean field averages the drive over examples and treats the reused U as fresh: within 3 %.
    assert _simulated(gain) == pytest.approx(predicted, rel=0.03)


def test_crossing_gain_matches_the_simulated_crossing_and_lies_above_one():
    predicted = theory.crossing_gain(theory.rnn_factor_of_gain("tanh", "orthogonal", WIDTH, "adding", LENGTH))
    gains = np.linspace(1.0, 1.2, 5)
    log_factors = np.log([_simulated(g) for g in gains])
    simulated = float(np.interp(0.0, log_factors, gains))  # log factor increases with the gain here
    assert np.all(np.diff(log_factors) > 0)
    assert 1.0 < predicted
    assert simulated == pytest.approx(predicted, abs=0.03)


def test_no_gain_at_or_below_one_grows():
    # Orthogonal U and |tanh'| <= 1: every backward step has norm at most g ||v||.
    for gain in (0.9, 1.0):
        assert _simulated_factor(gain, 0) < 1.0
        assert theory.rnn_factor_of_gain("tanh", "orthogonal", WIDTH, "adding", LENGTH)(gain) < 1.0


def test_crossing_gain_is_nan_without_a_sign_change():
    assert math.isnan(theory.crossing_gain(lambda g: 0.5 * g, 0.5, 1.5))
    assert theory.crossing_gain(lambda g: g / 1.25, 0.5, 3.0) == pytest.approx(1.25, abs=1e-6)
