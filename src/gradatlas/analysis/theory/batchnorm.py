"""Normalized MLPs at initialization: the per-layer gradient growth under batch norm (Yang et
al. 2019), at any batch size, and under layer norm.

Both take Linear -> norm -> phi layers with zero biases, in the mean-field (infinite-width)
limit with gradients independent of the forward pass; the values are the per-layer factor of
the *squared* gradient norm backward (the norm's factor is their square root).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np

from gradatlas.analysis.theory.gaussian import ActivationLike, activation_functions, gaussian_expectation

# The smallest batch with a finite rate: batch norm's 1/||P z||^2 has a finite mean over the
# batch's B - 1 centred directions only from B = 4 on (E[1/chi^2_k] = 1/(k - 2)).
MIN_BATCH = 4
# Monte-Carlo draws (batch vectors times batch size) of the finite-batch rate: its relative
# standard error is below 1e-3 for the activations of gradatlas.run.activations.
BATCH_DRAWS = 2**21
BATCH_SEED = 0


def batchnorm_chi(activation: ActivationLike, slope: Optional[float] = None, batch: Optional[int] = None) -> float:
    """Per-layer growth of the squared gradient norm backward through Linear -> BN -> phi.

    ``batch=None``: the large-batch limit, ``E[phi'(u)^2] / Var[phi(u)]`` with u ~ N(0, 1).
    Batch norm makes every pre-activation u a unit Gaussian over the batch, whatever the
    weights; the next layer's z has variance sigma_w^2 Var[phi(u)], by which its batch norm
    divides the gradient, while phi' and W^T multiply it by sigma_w^2 E[phi'(u)^2]: the weight
    scale cancels. ReLU: (1/2) / ((pi - 1) / (2 pi)) = pi / (pi - 1). By the Gaussian
    Poincare inequality Var[phi] <= E[phi'^2], with equality only for a linear phi: every
    nonlinearity explodes.

    ``batch=B`` (>= ``MIN_BATCH``): the rate at B examples, ``batchnorm_chi_at``.
    """
    if batch is not None:
        name = activation if isinstance(activation, str) else type(activation).__name__.lower()
        if not isinstance(activation, str):
            raise TypeError("batchnorm_chi with a batch size takes the activation's name")
        return batchnorm_chi_at(name, slope, int(batch))
    phi, dphi = activation_functions(activation, slope)
    mean = gaussian_expectation(phi, 1.0)
    variance = gaussian_expectation(lambda x: phi(x) ** 2, 1.0) - mean**2
    return gaussian_expectation(lambda x: dphi(x) ** 2, 1.0) / variance if variance > 0 else math.inf


@lru_cache(maxsize=256)
def batchnorm_chi_at(activation: str, slope: Optional[float], batch: int) -> float:
    """The squared-gradient rate of a batch-normalized MLP at batch size B (Yang et al. 2019).

    Batch norm sees each unit's B values of z; at the forward pass's symmetric fixed point
    their centred part P z (P = I - 11^T/B) is isotropic in the B - 1 centred directions, so
    u = BN(z) = sqrt(B) v with v uniform on the unit sphere there, and ||P z||^2 =
    sigma_w^2 s chi^2_{B-1}, independent of v, where s is the coefficient of I in
    E[phi(u) phi(u)^T]. Backward, dz = sqrt(B) / ||P z|| (P - v v^T) diag(phi'(u)) dx and
    dx = W^T dz of the next layer: the gradients' second moment Pi maps linearly,
    Pi -> B / (s (B - 3)) E[Q D Pi D Q] with Q = P - v v^T, D = diag(phi'(u)). Its trace
    grows at the eigenvalue of the adjoint map on the permutation-invariant matrices, the
    coefficient of I in B / (s (B - 3)) E[D Q D] (the 11^T part maps to 0):

        lambda(B) = B / (B - 3) (E[d_1^2 (1 - 1/B - v_1^2)] + E[d_1 d_2 (1/B + v_1 v_2)]) / s,
        s = E[phi(u_1)^2] - E[phi(u_1) phi(u_2)].

    The expectations are averages over ``BATCH_DRAWS`` / B seeded draws of v, every coordinate
    and pair of each draw used; as B grows lambda(B) tends to ``batchnorm_chi(activation)``.

    Raises:
        ValueError: for B below ``MIN_BATCH``.
    """
    if batch < MIN_BATCH:
        raise ValueError(f"batch norm's gradient rate needs a batch of at least {MIN_BATCH}, got {batch}")
    phi, dphi = activation_functions(activation, slope)
    rng = np.random.default_rng(BATCH_SEED)
    draws = max(BATCH_DRAWS // batch, 1024)
    total_d, total_s = 0.0, 0.0
    for chunk in np.array_split(np.arange(draws), max(1, draws * batch // 2**20)):
        g = rng.standard_normal((len(chunk), batch))
        centred = g - g.mean(axis=1, keepdims=True)
        v = centred / np.linalg.norm(centred, axis=1, keepdims=True)
        d, f = dphi(math.sqrt(batch) * v), phi(math.sqrt(batch) * v)
        d2 = d**2
        diagonal = (d2 * (1 - 1 / batch - v**2)).sum(axis=1) / batch
        pairs = ((d.sum(axis=1) ** 2 - d2.sum(axis=1)) / batch
                 + (d * v).sum(axis=1) ** 2 - (d2 * v**2).sum(axis=1)) / (batch * (batch - 1))
        f2 = (f**2).sum(axis=1)
        s = f2 / batch - (f.sum(axis=1) ** 2 - f2) / (batch * (batch - 1))
        total_d += float((diagonal + pairs).sum())
        total_s += float(s.sum())
    return batch / (batch - 3) * total_d / total_s if total_s > 0 else math.inf


def layernorm_chi(activation: ActivationLike, slope: Optional[float] = None) -> float:
    """Per-layer growth of the squared gradient norm backward through Linear -> LN -> phi:

        E[phi'(u)^2] / E[phi(u)^2],    u ~ N(0, 1).

    Layer norm normalizes each example over its N units: in a wide layer u is a unit Gaussian
    over the units, and the next layer's z = W phi(u) has, over its units, mean 0 and variance
    sigma_w^2 E[phi(u)^2] (W has mean zero, so phi's mean is not removed, unlike batch norm's
    Var[phi]); removing the example's mean and direction takes out 2 of N directions, nothing
    at large N. ReLU: (1/2) / (1/2) = 1, no growth; an odd phi (tanh) has E[phi^2] = Var[phi]
    and grows as under batch norm at large batch; sigmoid's mean makes E[phi^2] large and the
    gradient vanish.
    """
    phi, dphi = activation_functions(activation, slope)
    second = gaussian_expectation(lambda x: phi(x) ** 2, 1.0)
    return gaussian_expectation(lambda x: dphi(x) ** 2, 1.0) / second if second > 0 else math.inf
