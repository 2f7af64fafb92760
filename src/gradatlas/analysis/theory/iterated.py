"""The length map iterated from the input through a finite depth, and the per-layer factor a fit
of the recorded gradient norms would see (instead of the fixed point's sqrt(chi_1)).

A plain MLP's first pre-activation has variance q_0 = sigma_w^2 m_x + sigma_b^2, with m_x the
input's mean squared feature (LeCun-normal weights, fan_in = input dimension), and the length
map gives q_1..q_{L-1}. Backward, dLoss/dz_l = phi'(z_l) * W_{l+1}^T dLoss/dz_{l+1}: the squared
norm changes from layer l+1 to l by chi(q_l) = sigma_w^2 E[phi'(sqrt(q_l) z)^2]. The predicted
profile log ||dLoss/dz_l|| = sum_{k=l}^{L-2} ln chi(q_k) / 2 (+ const) is fitted like the
measured one (``fits.factor_fit``: least squares of the log norm against the layer index), so
that near a slowly converging fixed point (tanh at sigma_w^2 = 1, SELU, the critical line) the
prediction is what the measurement can be compared with. ``crossing_sigma_w2`` is where that
fitted factor crosses 1 along sigma_w^2.

Per example m_x differs (MNIST-1D: 5-95 % quantiles 0.45-1.9 about a mean of 1.0); ``input_moments``
may be several, and the profile is then the mean over them of the per-example norms (the probe
averages per-example norms over the batch).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.optimize import brentq
from functools import lru_cache

from gradatlas.analysis.theory.gaussian import activation_functions, gaussian_expectations

# The Gaussian averages E[phi^2](q) and E[phi'^2](q) are tabulated once per activation on
# TABLE_POINTS log-spaced q in [TABLE_LOW, TABLE_HIGH] and interpolated by cubic splines in
# log q (of log E where E > 0): the iteration then costs no quadrature (tests: against the
# quadrature at other q, relative error below 1e-7).
TABLE_LOW = 1e-10
TABLE_HIGH = 1e10
TABLE_POINTS = 801

# The mean squared feature of MNIST-1D inputs (the generator's, not standardized): 0.9993 over
# the 4000 training examples of data seed 0 (0.961 over 200 examples); per example 0.45-1.9 (5-95 %).
MNIST1D_MEAN_SQUARE = 1.0

Moments = Union[float, Sequence[float], np.ndarray]


class _Spline:
    """E[f(sqrt(q) z)] interpolated in log q (of log E when E > 0 throughout)."""

    def __init__(self, values: np.ndarray, log_q: np.ndarray) -> None:
        self.log = bool((values > 0).all())
        self.spline = CubicSpline(log_q, np.log(values) if self.log else values)
        self.low, self.high = values[0], values[-1]

    def __call__(self, q: np.ndarray) -> np.ndarray:
        log_q = np.log(np.clip(q, TABLE_LOW, TABLE_HIGH))
        out = self.spline(log_q)
        return np.exp(out) if self.log else out


@lru_cache(maxsize=32)
def _tables(activation: str, slope: Optional[float]) -> tuple[_Spline, _Spline]:
    phi, dphi = activation_functions(activation, slope)
    qs = np.geomspace(TABLE_LOW, TABLE_HIGH, TABLE_POINTS)
    log_q = np.log(qs)
    return (_Spline(gaussian_expectations(lambda x: phi(x) ** 2, qs), log_q),
            _Spline(gaussian_expectations(lambda x: dphi(x) ** 2, qs), log_q))


def moments(activation: str, q: np.ndarray, slope: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """E[phi(sqrt(q) z)^2] and E[phi'(sqrt(q) z)^2] at the variances ``q`` (interpolated; q
    outside [TABLE_LOW, TABLE_HIGH] is clipped to it, as the quadrature's Q_MIN, Q_MAX do)."""
    second, derivative = _tables(str(activation), slope)
    q = np.asarray(q, dtype=np.float64)
    return second(q), derivative(q)


def length_map_path(activation: str, sigma_w2: float, sigma_b2: float, input_moments: Moments,
                    depth: int, slope: Optional[float] = None) -> np.ndarray:
    """q_l for l = 0..depth-1 (rows) and each input second moment (columns)."""
    second, _ = _tables(str(activation), slope)
    q = sigma_w2 * np.atleast_1d(np.asarray(input_moments, dtype=np.float64)) + sigma_b2
    path = np.empty((depth, len(q)))
    for layer in range(depth):
        path[layer] = q
        q = sigma_w2 * second(q) + sigma_b2
    return path


def layer_chis(activation: str, sigma_w2: float, path: np.ndarray, slope: Optional[float] = None) -> np.ndarray:
    """chi(q_l) = sigma_w^2 E[phi'(sqrt(q_l) z)^2] for every entry of ``path``."""
    _, derivative = _tables(str(activation), slope)
    return sigma_w2 * derivative(path)


def predicted_profile(activation: str, sigma_w2: float, sigma_b2: float, input_moments: Moments,
                      depth: int, slope: Optional[float] = None) -> np.ndarray:
    """log of the predicted backprop_norm of the hidden layers 0..depth-1 (the last one at 0)."""
    chis = layer_chis(activation, sigma_w2, length_map_path(activation, sigma_w2, sigma_b2, input_moments, depth,
                                                             slope), slope)
    with np.errstate(divide="ignore"):
        steps = 0.5 * np.log(chis[:-1])             # from layer l+1 back to l, l = 0..depth-2
    logs = np.vstack([np.flipud(np.cumsum(np.flipud(steps), axis=0)), np.zeros((1, chis.shape[1]))])
    top = logs.max(axis=1, keepdims=True)           # mean of the per-example norms, in logs
    return (top + np.log(np.mean(np.exp(logs - top), axis=1, keepdims=True))).ravel()


def iterated_factor(activation: str, sigma_w2: float, sigma_b2: float = 0.0,
                    input_moments: Moments = MNIST1D_MEAN_SQUARE, depth: int = 20,
                    slope: Optional[float] = None) -> float:
    """The per-layer factor exp(-slope) of a least-squares fit of the predicted log profile
    against the layer index, as ``fits.factor_fit`` fits the measured one (NaN below 2 layers
    or for a profile with non-finite entries)."""
    if depth < 2:
        return math.nan
    logs = predicted_profile(activation, sigma_w2, sigma_b2, input_moments, depth, slope)
    if not np.isfinite(logs).all():
        return math.nan
    slope_fit = np.polyfit(np.arange(depth, dtype=np.float64), logs, 1)[0]
    return float(math.exp(-slope_fit))


def crossing_sigma_w2(activation: str, low: float, high: float, sigma_b2: float = 0.0,
                      input_moments: Moments = MNIST1D_MEAN_SQUARE, depth: int = 20,
                      slope: Optional[float] = None, grid: int = 16) -> float:
    """The sigma_w^2 in [low, high] where ``iterated_factor`` first crosses 1 from below, or NaN
    if it does not in that range: a logarithmic grid of ``grid`` points, refined by Brent's
    method in log sigma_w^2."""
    def gap(log_w: float) -> float:
        factor = iterated_factor(activation, math.exp(log_w), sigma_b2, input_moments, depth, slope)
        return math.log(factor) if factor > 0 else -math.inf

    points = np.linspace(math.log(low), math.log(high), grid)
    gaps = [gap(p) for p in points]
    for a, b, ga, gb in zip(points[:-1], points[1:], gaps[:-1], gaps[1:]):
        if ga < 0 <= gb:
            return float(math.exp(brentq(gap, a, b, xtol=1e-10))) if gb > 0 else float(math.exp(b))
    return math.nan
