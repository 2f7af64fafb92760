"""The saturated share of each hidden layer at initialization, from the mean field.

The probe ``saturated_frac`` counts a unit saturated where |phi'(z)| < s * sup|phi'| (s is the
run's ``probe.saturation``). For the bell-shaped slopes of sigmoid and tanh (largest at z = 0,
falling with |z|) that is |z| > z_s, with phi'(z_s) = s * phi'(0). At initialization the
pre-activation of layer l is, in the mean field, N(0, q_l), with q_l iterated by the length map
from each example's q_0 through the actual depth (``length_map.length_trajectories``): the
predicted share is P(|z| > z_s) = 2 P(Z > z_s / sqrt(q_l)), averaged over the examples. Nothing
here assumes the fixed point is reached; with PyTorch's default initialization (sigma_w^2 = 1/3)
tanh's q_l falls toward 0 and sigmoid's toward a small q*, so the deep layers' share is tiny and
the first layer's is set by the input.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from gradatlas.analysis.theory.gaussian import activation_functions
from gradatlas.analysis.theory.length_map import length_trajectories

# The activations whose |phi'| peaks at 0 and falls monotonically in |z| (the edge is one number).
BELL_SLOPES = ("sigmoid", "tanh")
_EDGE_BRACKET = 60.0  # phi'(60) < 1e-25 for both: the edge lies inside [0, 60] for any s >= 1e-20


@lru_cache(maxsize=32)
def saturation_edge(activation: str, threshold: float) -> float:
    """z_s > 0 with phi'(z_s) = threshold * phi'(0), for an activation of ``BELL_SLOPES``.

    Raises:
        ValueError: for another activation or a threshold outside (0, 1).
    """
    if activation not in BELL_SLOPES:
        raise ValueError(f"saturation_edge: {activation!r} is not one of {BELL_SLOPES} (its |phi'| is not bell-shaped)")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"saturation_edge: threshold must lie in (0, 1), got {threshold}")
    _, dphi = activation_functions(activation)
    peak = float(dphi(np.array([0.0]))[0])
    return float(brentq(lambda z: float(dphi(np.array([z]))[0]) - threshold * peak, 0.0, _EDGE_BRACKET, xtol=1e-12))


def saturated_share(activation: str, sigma_w2: float, q_first: np.ndarray, depth: int, threshold: float,
                    sigma_b2: float = 0.0, slope: Optional[float] = None) -> np.ndarray:
    """The predicted saturated share of hidden layers 0..depth-1, averaged over the examples.

    Args:
        q_first: each example's variance of the first pre-activation (std_1^2 ||x||^2 + sigma_b1^2).
        sigma_w2, sigma_b2: the hidden layers' weight (fan_in * std^2) and bias variances.
        threshold: the probe's relative slope threshold s.
    """
    edge = saturation_edge(activation, threshold)
    q = length_trajectories(activation, sigma_w2, np.atleast_1d(q_first), depth, sigma_b2, slope)
    with np.errstate(divide="ignore"):
        scaled = np.where(q > 0, edge / np.sqrt(np.where(q > 0, q, 1.0)), math.inf)
    return (2.0 * norm.sf(scaled)).mean(axis=0)
