"""Pre-activation residual MLPs in mean field: the residual stream's variance and per-block factors."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from gradatlas.analysis.theory.gaussian import (
    Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectation)


def second_moment_variance(activation: ActivationLike, second_moment: float, slope: Optional[float] = None) -> float:
    """The variance q with E[phi(sqrt(q) z)^2] = ``second_moment`` (NaN if none in
    [Q_MIN, Q_MAX]); E[phi^2] increases with q for the activations here (bisection in log q)."""
    phi, _ = activation_functions(activation, slope)

    def gap(q: float) -> float:
        return gaussian_expectation(lambda x: phi(x) ** 2, q) - second_moment

    lo, hi = Q_MIN, Q_MAX
    if not (math.isfinite(second_moment) and gap(lo) <= 0 <= gap(hi)):
        return float("nan")
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if gap(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi / lo - 1.0 < 1e-12:
            break
    return math.sqrt(lo * hi)


def residual_factors(activation: ActivationLike, sigma_w2: float, q0: float, blocks: int,
                     sigma_b2: float = 0.0, slope: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activation residual MLP ``h_l = h_{l-1} + W_l phi(h_{l-1}) + b_l`` in mean field.

    The residual stream's variance adds up, q_l = q_{l-1} + sigma_w^2 E[phi(sqrt(q_{l-1}) z)^2]
    + sigma_b^2, and backward the skip adds the identity to the branch, so the squared gradient
    grows per block by 1 + sigma_w^2 E[phi'(sqrt(q_{l-1}) z)^2] (cross terms vanish at random
    initialization): never below 1, unlike a plain MLP's chi_1.

    Args:
        q0: the variance of the first block's input (the stem's output).
        blocks: the number of blocks.

    Returns:
        ``(q, factors)``: per block l = 1..blocks its input variance and the per-block factor
        sqrt(1 + sigma_w^2 E[phi'(sqrt(q) z)^2]) of the gradient norm, from block l to l - 1.
    """
    phi, dphi = activation_functions(activation, slope)
    qs, factors, q = np.empty(blocks), np.empty(blocks), float(q0)
    for index in range(blocks):
        qs[index] = q
        q_eval = min(max(q, Q_MIN), Q_MAX)
        factors[index] = math.sqrt(1.0 + sigma_w2 * gaussian_expectation(lambda x: dphi(x) ** 2, q_eval))
        q = q + sigma_w2 * gaussian_expectation(lambda x: phi(x) ** 2, q_eval) + sigma_b2
    return qs, factors
