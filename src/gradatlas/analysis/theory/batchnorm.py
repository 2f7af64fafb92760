"""Batch-normalized MLPs at initialization: the per-layer gradient growth (Yang et al. 2019)."""

from __future__ import annotations

import math
from typing import Optional

from gradatlas.analysis.theory.gaussian import ActivationLike, activation_functions, gaussian_expectation


def batchnorm_chi(activation: ActivationLike, slope: Optional[float] = None) -> float:
    """Per-layer growth of the squared gradient norm backward through Linear -> BN -> phi at
    initialization, in the large-batch mean-field limit (Yang et al. 2019):

        E[phi'(u)^2] / Var[phi(u)],    u ~ N(0, 1).

    Batch norm makes every pre-activation u a unit Gaussian over the batch, whatever the
    weights; the next layer's z has variance sigma_w^2 Var[phi(u)], by which its batch norm
    divides the gradient, while phi' and W^T multiply it by sigma_w^2 E[phi'(u)^2]: the weight
    scale cancels. ReLU: (1/2) / ((pi - 1) / (2 pi)) = pi / (pi - 1). Finite batches of B
    examples shrink it by O(2/B) (batch norm's backward removes the mean and the u direction).
    """
    phi, dphi = activation_functions(activation, slope)
    mean = gaussian_expectation(phi, 1.0)
    variance = gaussian_expectation(lambda x: phi(x) ** 2, 1.0) - mean**2
    return gaussian_expectation(lambda x: dphi(x) ** 2, 1.0) / variance if variance > 0 else math.inf
