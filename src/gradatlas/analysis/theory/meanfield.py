"""The mean field of a wide fully connected network: fixed point q*, chi_1 and the per-layer factor.

A hidden layer computes ``z_{l+1} = W_{l+1} phi(z_l) + b_{l+1}`` with weight entries of variance
``sigma_w^2 / fan_in`` and bias entries of variance ``sigma_b^2``. In the wide limit the
pre-activations of a layer are Gaussian with variance ``q_l``, which follows the *length map*

    q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2,    z ~ N(0, 1),

and the squared norm of the backpropagated gradient dLoss/dz_l shrinks or grows per layer by

    chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]

at the fixed point ``q*`` of the length map, so the gradient norm itself changes by the
*per-layer factor* ``sqrt(chi_1)``: ``||dLoss/dz_l|| ~ sqrt(chi_1)^(L - l)``.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from gradatlas.analysis.theory.gaussian import (
    Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectation, gaussian_expectations)


def fixed_point(activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
                slope: Optional[float] = None, q0: float = 1.0, max_iter: int = 200) -> float:
    """The fixed point q* of the length map reached from q0 (default 1).

    The map is increasing in q for the activations here, so iterating it from q0 moves
    monotonically to the nearest fixed point in the direction of ``map(q0) - q0``. Instead of
    iterating (which converges only like 1/l at critical points such as tanh at sigma_w^2 = 1),
    the root of ``map(q) - q`` is bracketed on a logarithmic grid in that direction (factor
    10^(1/4) per step, at most ``max_iter`` steps) and refined by bisection.

    Returns:
        ``0.0`` when the map shrinks every q below q0 down to ``Q_MIN`` (no positive fixed point
        below q0: e.g. tanh or ReLU with sigma_b^2 = 0 and sigma_w^2 < 1 resp. < 2);
        ``math.inf`` when it grows every q above q0 up to ``Q_MAX`` (e.g. ReLU with
        sigma_w^2 > 2); ``q0`` itself when q0 is a fixed point, which for positively
        homogeneous activations at criticality (ReLU at sigma_w^2 = 2, linear at 1) holds for
        *every* q: there any value is a fixed point and q0 is returned.
    """
    if sigma_w2 < 0 or sigma_b2 < 0:
        raise ValueError(f"variances must be >= 0, got sigma_w2={sigma_w2}, sigma_b2={sigma_b2}")
    phi, _ = activation_functions(activation, slope)

    def gap(q: float) -> float:
        return sigma_w2 * gaussian_expectation(lambda x: phi(x) ** 2, q) + sigma_b2 - q

    g0 = gap(q0)
    if abs(g0) <= 1e-12 * max(q0, 1.0):
        return float(q0)
    direction = -1.0 if g0 < 0 else 1.0
    step = 10.0 ** (0.25 * direction)
    inner, q = q0, q0
    for _ in range(max_iter):
        q = q * step
        if q < Q_MIN:
            return 0.0
        if q > Q_MAX:
            return math.inf
        g = gap(q)
        if g == 0.0 or math.copysign(1.0, g) != math.copysign(1.0, g0):
            break
        inner = q
    else:
        return 0.0 if direction < 0 else math.inf
    # Bisection in log q between inner (same sign as g0) and q (sign changed).
    lo, hi = (q, inner) if direction < 0 else (inner, q)
    g_lo = gap(lo)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        g_mid = gap(mid)
        if g_mid == 0.0 or hi / lo - 1.0 < 1e-14:
            return mid
        if math.copysign(1.0, g_mid) == math.copysign(1.0, g_lo):
            lo, g_lo = mid, g_mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def chi1(activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
         slope: Optional[float] = None, q: Optional[float] = None) -> float:
    """chi_1 = sigma_w^2 E[phi'(sqrt(q) z)^2] at ``q`` (default: the fixed point q*).

    q = 0 and q = inf are evaluated as one-sided limits, at ``Q_MIN`` and ``Q_MAX``: at q = 0
    this gives phi'(0+)^2-like averages that respect the kink of ReLU-like units (ReLU:
    sigma_w^2 / 2, not phi'(0)^2 = 0), and for positively homogeneous activations (ReLU, leaky
    ReLU, PReLU, linear, step) chi_1 does not depend on q at all.
    """
    if q is None:
        q = fixed_point(activation, sigma_w2, sigma_b2, slope)
    q_eval = Q_MAX if q == math.inf else min(max(q, Q_MIN), Q_MAX)
    _, dphi = activation_functions(activation, slope)
    return sigma_w2 * gaussian_expectation(lambda x: dphi(x) ** 2, q_eval)


def predicted_factor(activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
                     slope: Optional[float] = None, q: Optional[float] = None) -> float:
    """sqrt(chi_1): the predicted per-layer factor of the backpropagated gradient norm."""
    return math.sqrt(chi1(activation, sigma_w2, sigma_b2, slope, q))


def layerwise_factor(activation: ActivationLike, sigma_w2: float, second_moments: np.ndarray,
                     sigma_b2: float = 0.0, slope: Optional[float] = None) -> float:
    """Per-layer factor predicted from the *measured* variances instead of the fixed point.

    A finite-depth network need not have reached q* (tanh at sigma_w^2 = 1 approaches q* = 0
    like 1/l). Given the measured second moments E[h_l^2] = act_mean^2 + act_std^2 of the
    hidden outputs h_0..h_{L-1}, layer l >= 1 has pre-activation variance
    q_l = sigma_w^2 E[h_{l-1}^2] + sigma_b^2; the step from layer l+1 back to l scales the
    gradient norm by sqrt(sigma_w^2 E[phi'(sqrt(q_l) z)^2]). Returns the geometric mean of these
    steps over l = 1..L-2 (the steps a fit over the hidden layers sees; layer 0's variance
    depends on the input, not on the map), or NaN with fewer than one usable step.
    """
    moments = np.asarray(second_moments, dtype=np.float64)
    qs = sigma_w2 * moments[: max(len(moments) - 2, 0)] + sigma_b2  # q_l for l = 1..L-2
    qs = qs[np.isfinite(qs) & (qs >= 0)]
    if len(qs) == 0:
        return float("nan")
    _, dphi = activation_functions(activation, slope)
    chis = sigma_w2 * gaussian_expectations(lambda x: dphi(x) ** 2, np.clip(qs, Q_MIN, Q_MAX))
    chis = chis[chis > 0]
    return float(np.exp(0.5 * np.mean(np.log(chis)))) if len(chis) else float("nan")
