"""Gaussian expectations E[f(sqrt(q) z)] and activations as float64 numpy functions.

``gaussian_expectation`` defaults to composite Gauss-Legendre panels with breakpoints at z = 0 and
on the scale 1/sqrt(q). Plain Gauss-Hermite (``numpy.polynomial.hermite_e.hermegauss``,
``method="hermite"``) is exact for polynomials but converges slowly where the integrand has a kink
(phi' of ReLU, ELU, SELU jumps at 0: with an odd number of nodes the node at z = 0 alone biases
E[relu'(z)^2] by several per cent) or a sharp transition (tanh at large q). The panel rule reaches
machine precision for every activation of ``gradatlas.run.activations``; the tests check both rules
against closed forms and a Monte-Carlo estimate.
"""

from __future__ import annotations

import copy
import math
from functools import lru_cache
from typing import Callable, Optional, Union

import numpy as np
import torch

from gradatlas.run.activations import Activation, PReLU, make_activation

# Pre-activation variances outside [Q_MIN, Q_MAX] are treated as 0 and infinity.
Q_MIN = 1e-12
Q_MAX = 1e12

ActivationLike = Union[str, Activation]


@lru_cache(maxsize=8)
def _hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    return nodes, weights / weights.sum()  # weights of the standard normal (sum 1)


@lru_cache(maxsize=8)
def _legendre_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


# Truncation of the standard normal: P(|z| > 12) ~ 4e-33, far below float64 resolution of 1.
_Z_MAX = 12.0


@lru_cache(maxsize=256)
def _panel_rule(q: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (standard-normal measure) of the composite panel rule for variance q."""
    scale = math.sqrt(q)
    # Breakpoints: the kink at 0, unit steps of z (the Gaussian's own scale) and powers of two
    # of the pre-activation x = sqrt(q) z (the activation's scale), so each panel is smooth.
    pos = {float(k) for k in range(1, int(_Z_MAX) + 1)}
    pos.update(2.0 ** k / scale for k in range(-6, 8) if 2.0 ** k / scale < _Z_MAX)
    edges = np.array(sorted({0.0, *pos, *(-p for p in pos)}))
    x, w = _legendre_rule(points)
    left, right = edges[:-1, None], edges[1:, None]
    nodes = (0.5 * (right - left) * x + 0.5 * (right + left)).ravel()
    weights = (0.5 * (right - left) * w).ravel() * np.exp(-0.5 * nodes**2) / math.sqrt(2.0 * math.pi)
    return nodes, weights


def gaussian_expectation(f: Callable[[np.ndarray], np.ndarray], q: float = 1.0, *,
                         method: str = "panels", points: int = 100) -> float:
    """E[f(sqrt(q) z)] for z ~ N(0, 1).

    Args:
        f: a vectorised function of a float64 array.
        q: the variance of the argument (>= 0); q = 0 gives f(0).
        method: ``"panels"`` (composite Gauss-Legendre, default; accurate for kinks at 0) or
            ``"hermite"`` (Gauss-Hermite with ``points`` nodes, via ``hermegauss``).
        points: nodes of the Gauss-Hermite rule, or per panel of the panel rule (capped at 32
            there, where 16-32 already reach machine precision).

    Raises:
        ValueError: for a negative or non-finite q, or an unknown method.
    """
    if not (q >= 0 and math.isfinite(q)):
        raise ValueError(f"q must be finite and >= 0, got {q}")
    if q == 0:
        return float(np.asarray(f(np.zeros(1)), dtype=np.float64)[0])
    if method == "hermite":
        nodes, weights = _hermite_rule(points)
    elif method == "panels":
        nodes, weights = _panel_rule(float(q), min(points, 32))
    else:
        raise ValueError(f"unknown method {method!r}; known: panels, hermite")
    values = np.asarray(f(math.sqrt(q) * nodes), dtype=np.float64)
    return float(np.dot(weights, values))


def gaussian_expectations(f: Callable[[np.ndarray], np.ndarray], qs: np.ndarray, points: int = 32) -> np.ndarray:
    """``gaussian_expectation`` (panel rule) for many positive variances with one call of ``f``."""
    rules = [_panel_rule(float(q), min(points, 32)) for q in np.asarray(qs, dtype=np.float64)]
    if not rules:
        return np.zeros(0)
    args = np.concatenate([math.sqrt(q) * nodes for q, (nodes, _) in zip(qs, rules)])
    values = np.asarray(f(args), dtype=np.float64)
    out, start = np.empty(len(rules)), 0
    for i, (nodes, weights) in enumerate(rules):
        out[i] = np.dot(weights, values[start:start + len(nodes)])
        start += len(nodes)
    return out


def _as_activation(activation: ActivationLike, slope: Optional[float] = None) -> Activation:
    # float64 throughout (PReLU's learned slope is a float32 parameter); a copy, so that a
    # caller's module keeps its dtype.
    if isinstance(activation, Activation):
        return copy.deepcopy(activation).double()
    module = make_activation(activation, slope).double()
    if isinstance(module, PReLU):
        # The float32 parameter rounded the slope; set it again in float64.
        with torch.no_grad():
            module.weight.fill_(0.25 if slope is None else float(slope))
    return module


def activation_functions(activation: ActivationLike, slope: Optional[float] = None
                         ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """phi and phi' of an activation (a name or an ``Activation``) as float64 numpy functions."""
    module = _as_activation(activation, slope)

    def phi(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(x, dtype=torch.float64)).numpy()

    def dphi(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module.derivative(torch.as_tensor(x, dtype=torch.float64)).numpy()

    return phi, dphi


# The grid of ``squared_expectation``: log-spaced over [Q_MIN, Q_MAX], this many points per decade.
TABLE_POINTS_PER_DECADE = 48


@lru_cache(maxsize=64)
def _squared_table(activation: ActivationLike, slope: Optional[float], derivative: bool):
    from scipy.interpolate import CubicSpline

    phi, dphi = activation_functions(activation, slope)
    f = dphi if derivative else phi
    decades = math.log10(Q_MAX / Q_MIN)
    grid = np.geomspace(Q_MIN, Q_MAX, int(round(decades * TABLE_POINTS_PER_DECADE)) + 1)
    values = gaussian_expectations(lambda x: f(x) ** 2, grid)
    if np.all(values > 0):
        spline = CubicSpline(np.log(grid), np.log(values))
        return lambda q: np.exp(spline(np.log(q)))
    spline = CubicSpline(np.log(grid), values)  # e.g. phi' = 0 of a step: no logarithm
    return lambda q: spline(np.log(q))


def squared_expectation(activation: ActivationLike, qs: np.ndarray, *, derivative: bool = False,
                        slope: Optional[float] = None) -> np.ndarray:
    """E[phi(sqrt(q) z)^2] (or E[phi'(sqrt(q) z)^2]) for many variances at once, from a cubic
    spline (in log q, of the log) through ``gaussian_expectations`` on a log grid of
    ``TABLE_POINTS_PER_DECADE`` points per decade, built once per activation: relative error
    ~1e-8 against the panel rule (tests/test_length_map.py), at a cost independent of how many
    q there are. Variances are clipped to [Q_MIN, Q_MAX]."""
    q = np.clip(np.asarray(qs, dtype=np.float64), Q_MIN, Q_MAX)
    return np.asarray(_squared_table(activation, slope, derivative)(q), dtype=np.float64)
